#!/usr/bin/env bash
# Installs everything, builds, and runs every test: unit, bridge and integration tests (real redis-server and
# nx-27017 started on free loopback ports), scripted-server tests, and the offline deploy checks.
# Set MONGODB_URI (a replica set) and/or REDIS_URL to run the same suites against existing servers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh
source scripts/env.sh
swift build --build-tests
if [ -x scripts/check-deploy.sh ]; then
    scripts/check-deploy.sh "$(swift build --show-bin-path)/cachesync"
fi
swift test --no-parallel
