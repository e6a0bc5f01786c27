#!/usr/bin/env bash
# The warm-up chaos run of issue 21, five times in a row: 50,000 documents, warm-up `all` while 2,000 random updates
# and deletes run, kill -9 once half the documents are done, restart; the restart must resume the warm-up (not start
# over), and after convergence every key must hold MongoDB's document and no deleted document may have a key.
# The test command runs a short variant (3,000 documents, once).
#   CACHESYNC_WARMUP_CHAOS_DOCS=50000 CACHESYNC_WARMUP_CHAOS_RUNS=5 (defaults here)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh >/dev/null
source scripts/env.sh
flock /tmp/swiftbuild.lock swift build --build-tests >/dev/null
CACHESYNC_WARMUP_CHAOS_DOCS="${CACHESYNC_WARMUP_CHAOS_DOCS:-50000}" \
CACHESYNC_WARMUP_CHAOS_RUNS="${CACHESYNC_WARMUP_CHAOS_RUNS:-5}" \
    swift test --skip-build --no-parallel --filter "WarmupTests/killedHalfWayResumes" 2>&1 \
    | grep -E "warm-up chaos|✔|✘|passed|failed|Expectation failed"
