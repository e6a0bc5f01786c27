#!/usr/bin/env bash
# Installs everything, builds, and runs every test: unit, bridge and integration tests (real redis-server and
# nx-27017 started on free loopback ports), scripted-server tests, the offline deploy checks, and a smoke run of the
# benchmark command at tiny sizes (so it cannot rot; its figures are not checked: BENCHMARKS.md records real runs).
# Set MONGODB_URI (a replica set) and/or REDIS_URL to run the same suites against existing servers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh
source scripts/env.sh
swift build --build-tests
# The deploy checks need the binary as the Docker image builds it: release, with the Swift runtime linked in.
swift build -c release --static-swift-stdlib --product cachesync
scripts/check-deploy.sh "$(swift build -c release --show-bin-path)/cachesync"
python3 Tests/Scripted/selftest.py
# Every secret the tests hand to cachesync (passwords, private keys) is searched for in everything it printed; a
# find lands in this file (Tests/TestSupport/TestSecrets.swift), and any find fails the run.
export CACHESYNC_SECRET_LEAKS="$(mktemp "${TMPDIR:-/tmp}/cachesync-secret-leaks.XXXXXX")"
swift test --skip-build --no-parallel
if [[ -s "$CACHESYNC_SECRET_LEAKS" ]]; then
    echo "test: cachesync printed a secret:" >&2
    cat "$CACHESYNC_SECRET_LEAKS" >&2
    exit 1
fi
rm -f "$CACHESYNC_SECRET_LEAKS"
"$(swift build --show-bin-path)/cachesync-bench" --events 2560 --rounds 1 --bulk 1000 --lag-writes 60 --ready-runs 1 --idle-collections 5 --warmup-documents 2000 >/dev/null
# Each fuzz target for 5 s after the sanitizer build (about 2 minutes from a cold .build-fuzz); scripts/fuzz.sh without
# arguments runs each for 10 minutes (SECURITY.md).
scripts/fuzz.sh 5
