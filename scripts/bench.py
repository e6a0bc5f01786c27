"""End-to-end benchmark of a cachesync binary: starts redis-server, nx-27017 and cachesync on free ports,
drives a workload through MongoDB and the read-through API, and prints the figures as a Markdown table."""
import argparse
import http.client
import os
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
parser.add_argument("--events", type=int, default=20000)
parser.add_argument("--reads", type=int, default=5000)
parser.add_argument("--latency-samples", type=int, default=200)
args = parser.parse_args()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    rss_start = rss_mib(sidecar.pid)
    cpu0, t0 = cpu_seconds(sidecar.pid), time.time()
    time.sleep(5)
    idle_cpu = (cpu_seconds(sidecar.pid) - cpu0) / (time.time() - t0) * 100
    rows.append(("idle CPU, 2 watched collections", f"{idle_cpu:.1f} % of a core"))
    rows.append(("resident memory after start", f"{rss_start:.1f} MiB"))

    # Change-to-cache latency: one insert at a time, poll Redis until the key appears.
    latencies = []
    for i in range(args.latency_samples):
        start = time.perf_counter()
        db.products.insert_one({"_id": f"lat{i}", "v": i})
        while redis("EXISTS", f"products:lat{i}") != "1":
            time.sleep(0.002)
        latencies.append((time.perf_counter() - start) * 1000)
    rows.append(("change → cache latency p50 / p99 (insert to key visible)",
                 f"{statistics.median(latencies):.1f} ms / {pct(latencies, 0.99):.1f} ms"))

    # Apply throughput: a burst of inserts, timed until the applied counter has them all.
    before = int(redis("HGET", "cachesync:applied:bench.products", "events") or 0)
    docs = [{"_id": n, "name": f"product {n}", "price": n % 100, "tags": ["a", "b"], "stock": {"eu": n, "us": 2 * n}}
            for n in range(args.events)]
    start = time.perf_counter()
    for k in range(0, len(docs), 1000):
        db.products.insert_many(docs[k:k + 1000])
    written = time.perf_counter() - start
    while int(redis("HGET", "cachesync:applied:bench.products", "events") or 0) < before + args.events:
        time.sleep(0.01)
    applied = time.perf_counter() - start
    rows.append((f"apply throughput ({args.events} inserts via insert_many)",
                 f"{args.events / applied:,.0f} events/s (MongoDB took {written:.1f} s to accept them, cache done at {applied:.1f} s)"))
    rows.append(("resident memory after the burst", f"{rss_mib(sidecar.pid):.1f} MiB"))

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

    hits = timed_gets([f"/v1/cache/products/{i % args.events}" for i in range(args.reads)], "HIT")
    rows.append((f"read-through hit latency p50 / p99 ({args.reads} sequential GETs)",
                 f"{statistics.median(hits):.2f} ms / {pct(hits, 0.99):.2f} ms ({args.reads / (sum(hits) / 1000):,.0f} req/s on one connection)"))
    db.users.insert_many([{"_id": f"u{n}", "n": n} for n in range(1000)])
    misses = timed_gets([f"/v1/cache/users/u{n}" for n in range(1000)], "MISS")
    rows.append(("read-through miss latency p50 / p99 (MongoDB read + lease + cache fill)",
                 f"{statistics.median(misses):.2f} ms / {pct(misses, 0.99):.2f} ms"))
    rows.append(("resident memory at the end", f"{rss_mib(sidecar.pid):.1f} MiB"))

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
