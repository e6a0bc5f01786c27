"""Drives the demo: writes to MongoDB and shows what cachesync did in Redis after each step."""
import argparse
import subprocess
import time
import urllib.error
import urllib.request

import pymongo

parser = argparse.ArgumentParser()
parser.add_argument("--redis-port", required=True)
parser.add_argument("--mongo-uri", required=True)
parser.add_argument("--http", required=True)
args = parser.parse_args()


def redis(*command):
    out = subprocess.run(["redis-cli", "-p", args.redis_port, *command], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def show(title, keys):
    time.sleep(0.5)
    print(f"\n-- {title}")
    for key in keys:
        value = redis("GET", key)
        ttl = redis("TTL", key)
        print(f"   {key:<14} = {value or '(not cached)'}" + (f"   (ttl {ttl} s)" if value else ""))


def read_through(collection, doc_id):
    try:
        with urllib.request.urlopen(f"{args.http}/v1/cache/{collection}/{doc_id}", timeout=5) as reply:
            return reply.headers.get("X-Cache"), reply.read().decode()
    except urllib.error.HTTPError as error:
        return str(error.code), error.read().decode()
    except OSError as error:
        return "unavailable", str(error)


db = pymongo.MongoClient(args.mongo_uri).shop
for _ in range(100):
    if redis("EXISTS", "cachesync:resume:shop.products") == "1":
        break
    time.sleep(0.1)

print("== products use the update strategy (write-through)")
db.products.insert_one({"_id": 1, "name": "desk lamp", "price": 25})
show("insert product 1 → cached", ["products:1"])
db.products.update_one({"_id": 1}, {"$set": {"price": 19}})
show("update its price → cache holds the new document", ["products:1"])
redis("SET", "products:1:access_count", "150")
db.products.update_one({"_id": 1}, {"$set": {"price": 18}})
show("after 150 reads the next write gets a longer TTL (tier 100 → 1800 s)", ["products:1"])
db.products.delete_one({"_id": 1})
show("delete it → key removed", ["products:1"])

print("\n== sessions use preserve-ttl")
db.sessions.insert_one({"_id": "s-42", "user": "ada"})
show("insert a session → cached with the base TTL", ["sessions:s-42"])
redis("EXPIRE", "sessions:s-42", "120")
db.sessions.update_one({"_id": "s-42"}, {"$set": {"cart": 3}})
show("update it → new document, remaining TTL (~120 s) kept", ["sessions:s-42"])

print("\n== users use invalidate, and the read-through API fills the cache")
db.users.insert_one({"_id": "ada", "email": "ada@example.org"})
status, body = read_through("users", "ada")
print(f"   GET /v1/cache/users/ada → {status}: {body}")
status, body = read_through("users", "ada")
print(f"   GET /v1/cache/users/ada → {status}: {body}")
db.users.update_one({"_id": "ada"}, {"$set": {"email": "ada@lovelace.dev"}})
show("update the user → the cached copy is invalidated", ["users:ada"])
status, body = read_through("users", "ada")
print(f"   GET /v1/cache/users/ada → {status}: {body}")
