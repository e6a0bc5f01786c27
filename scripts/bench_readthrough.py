"""Read-through benchmark of a cachesync binary: starts redis-server, nx-27017 and cachesync on free ports, caches
products through MongoDB, then times hits and misses of `GET /v1/cache/...` on one keep-alive connection and prints
a Markdown table. (The apply path, end to end and footprint figures come from `cachesync-bench`.)"""
import argparse
import http.client
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pymongo

parser = argparse.ArgumentParser()
parser.add_argument("--binary", required=True)
parser.add_argument("--products", type=int, default=5000)
parser.add_argument("--reads", type=int, default=5000)
args = parser.parse_args()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


work = tempfile.mkdtemp(prefix="cachesync-bench-")
procs = []
try:
    redis_port, mongo_port, http_port = free_port(), free_port(), free_port()
    procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL))
    procs.append(subprocess.Popen(["nx-27017", "--host", "127.0.0.1", "-p", str(mongo_port), "--db", "memory",
                                   "--log-file", f"{work}/nx.log", "--pid-file", f"{work}/nx.pid"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", mongo_port)).close()
            socket.create_connection(("127.0.0.1", redis_port)).close()
            break
        except OSError:
            time.sleep(0.05)
    uri = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
    db = pymongo.MongoClient(uri).bench
    db.products.insert_one({"_id": "warmup"})
    db.users.insert_one({"_id": "warmup"})
    config = f"""
mongodb: {{ uri: "{uri}", database: bench }}
redis: {{ url: "redis://127.0.0.1:{redis_port}/0" }}
http: {{ listen: "127.0.0.1:{http_port}" }}
collections:
  products: {{ strategy: update }}
  users: {{ strategy: invalidate }}
"""
    with open(f"{work}/cachesync.yaml", "w") as f:
        f.write(config)
    log = open(f"{work}/cachesync.log", "w")
    sidecar = subprocess.Popen([args.binary, "run", "--config", f"{work}/cachesync.yaml"], stdout=log, stderr=log)
    procs.append(sidecar)

    def redis(*command):
        return subprocess.run(["redis-cli", "-p", str(redis_port), *command], capture_output=True, text=True).stdout.strip()

    for _ in range(200):
        if redis("EXISTS", "cachesync:resume:bench.products") == "1" and redis("EXISTS", "cachesync:resume:bench.users") == "1":
            break
        time.sleep(0.05)
    time.sleep(1)
    rows = []
    # Cache the products through MongoDB (update strategy), then wait until every insert was applied.
    docs = [{"_id": n, "name": f"product {n}", "price": n % 100, "tags": ["a", "b"], "stock": {"eu": n, "us": 2 * n}}
            for n in range(args.products)]
    for k in range(0, len(docs), 1000):
        db.products.insert_many(docs[k:k + 1000])
    while int(redis("HGET", "cachesync:applied:bench.products", "events") or 0) < args.products:
        time.sleep(0.05)

    # Read-through: hits on cached products, misses on users (invalidate strategy caches on read).
    conn = http.client.HTTPConnection("127.0.0.1", http_port)

    def timed_gets(paths, expected):
        """Sequential GETs on one keep-alive connection; returns their latencies in ms."""
        latencies = []
        for path in paths:
            start = time.perf_counter()
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            latencies.append((time.perf_counter() - start) * 1000)
            assert reply.getheader("X-Cache") == expected, (path, reply.status)
        return latencies

    hits = timed_gets([f"/v1/cache/products/{i % args.products}" for i in range(args.reads)], "HIT")
    rows.append((f"read-through hit latency p50 / p99 ({args.reads} sequential GETs)",
                 f"{statistics.median(hits):.2f} ms / {pct(hits, 0.99):.2f} ms ({args.reads / (sum(hits) / 1000):,.0f} req/s on one connection)"))
    db.users.insert_many([{"_id": f"u{n}", "n": n} for n in range(1000)])
    misses = timed_gets([f"/v1/cache/users/u{n}" for n in range(1000)], "MISS")
    rows.append(("read-through miss latency p50 / p99 (MongoDB read + lease + cache fill)",
                 f"{statistics.median(misses):.2f} ms / {pct(misses, 0.99):.2f} ms"))

    print("| measure | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
finally:
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
