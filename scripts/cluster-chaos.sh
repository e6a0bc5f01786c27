#!/usr/bin/env bash
# The Redis Cluster chaos run of issue 19, five times in a row: a 6-node cluster, steady inserts, updates and deletes
# on three collections, 1,000 slots moved between masters and a master SIGKILLed (its replica takes over); after
# each run every key must match MongoDB and verify must exit 0. The test command runs it once.
#   CACHESYNC_CLUSTER_CHAOS_RUNS=5 (default here)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh >/dev/null
source scripts/env.sh
swift build --build-tests >/dev/null
CACHESYNC_CLUSTER_CHAOS_RUNS="${CACHESYNC_CLUSTER_CHAOS_RUNS:-5}" swift test --skip-build --filter RedisClusterChaosTests 2>&1 \
    | grep -E "cluster chaos|✔|✘|passed|failed"
