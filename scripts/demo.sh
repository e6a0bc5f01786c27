#!/usr/bin/env bash
# Installs everything, builds cachesync, starts a local redis-server and a local MongoDB wire server (nx-27017)
# on free ports, runs cachesync against them, and shows Redis following MongoDB writes. Stops everything at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/install.sh
source scripts/env.sh
echo "== building cachesync"
swift build --product cachesync 2>&1 | tail -1
bin="$(swift build --show-bin-path)/cachesync"

work="$(mktemp -d /tmp/cachesync-demo.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); mongo_port=$(free_port); http_port=$(free_port)

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
nx-27017 --host 127.0.0.1 -p "$mongo_port" --db "$work/mongo.sqlite" \
    --log-file "$work/nx.log" --pid-file "$work/nx.pid" >"$work/nx.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && python3 -c "import socket; socket.create_connection(('127.0.0.1',$mongo_port))" 2>/dev/null && break
    sleep 0.1
done

export MONGODB_URI="mongodb://127.0.0.1:$mongo_port/?directConnection=true"
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export HTTP_LISTEN="127.0.0.1:$http_port"
echo "== config (examples/demo.yaml), as cachesync check-config sees it"
"$bin" check-config --config examples/demo.yaml | head -12
"$bin" run --config examples/demo.yaml --log-format text >"$work/cachesync.log" 2>&1 &
pids+=($!)
sleep 1

python3 scripts/demo.py --redis-port "$redis_port" --mongo-uri "$MONGODB_URI" --http "http://$HTTP_LISTEN"
echo
echo "== the last lines cachesync logged"
tail -n 8 "$work/cachesync.log"
