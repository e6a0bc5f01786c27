#!/usr/bin/env bash
# Benchmarks cachesync on this machine and prints Markdown for BENCHMARKS.md (progress goes to standard error):
#   1. cachesync-bench: the apply path per strategy beside a raw pipelined hiredis loop sending the same commands,
#      end to end through nx-27017 beside a bare change stream on the same server (bulk convergence, lag at a
#      steady write rate), start-to-ready time, resident memory and CPU; the apply path over TLS beside plaintext,
#      and start-to-ready against a TLS-only Redis beside a plaintext one;
#   2. scripts/bench_readthrough.py: read-through hit and miss latency.
# Both use the release build with the static Swift runtime, as in the Docker image.
#   scripts/bench.sh [cachesync-bench options, e.g. --rounds 5 --bulk 20000 --rate 300]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh >/dev/null
source scripts/env.sh
echo "building release (static Swift runtime)..." >&2
for product in cachesync cachesync-bench; do
    swift build -c release --static-swift-stdlib --product "$product" >/dev/null
done
bin="$(swift build -c release --show-bin-path)"
echo "## Run on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"
echo
"$bin/cachesync-bench" "$@"
echo "### Read-through (one keep-alive connection, sequential requests)"
echo
python3 scripts/bench_readthrough.py --binary "$bin/cachesync"
