#!/usr/bin/env bash
# Benchmarks cachesync end to end (release build, static Swift runtime, as in the Docker image) against a local
# redis-server and nx-27017, and prints a Markdown table: change-to-cache latency, apply throughput, read-through
# latency and throughput, resident memory and idle CPU. Results are recorded in BENCHMARKS.md.
#   scripts/bench.sh [--events N] [--reads N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh >/dev/null
source scripts/env.sh
echo "building release (static Swift runtime)..." >&2
swift build -c release --static-swift-stdlib --product cachesync >/dev/null
bin="$(swift build -c release --show-bin-path)/cachesync"
python3 scripts/bench.py --binary "$bin" "$@"
