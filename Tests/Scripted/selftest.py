#!/usr/bin/env python3
"""Self-test of changestream_server.py: drives every scenario with pymongo's
watch() (a real driver) and, when a C compiler and libmongoc are present, with
watch_probe.c (libmongoc, the driver cachesync uses), and asserts the events
and the recorded reopen options.

    python3 Tests/Scripted/selftest.py [-k NAME]

Ends with the line "N passed, N failed, N skipped"; exit code 0 when none failed.
"""

import datetime
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import bson
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
import pymongo
from pymongo.errors import NotPrimaryError, OperationFailure

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "changestream_server.py")
PROBE_SRC = os.path.join(HERE, "watch_probe.c")
MAX_BSON = 16 * 1024 * 1024
HOSTILE_COLL = "ünï cödé ☃ 集合 coll"


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Server(object):
    """The scripted server as a subprocess; stopping it asserts a clean SIGTERM exit."""

    def __init__(self, scenario, *extra, db="app", coll=None, tmp=None):
        self.record = os.path.join(tmp, "record-%s-%d.jsonl" % (scenario, time.monotonic_ns()))
        self.db = db
        args = [sys.executable, SERVER, "--scenario", scenario, "--db", db,
                "--record", self.record] + list(extra)
        if coll is not None:
            args += ["--coll", coll]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        if not ready:
            self.proc.kill()
            raise AssertionError("server printed nothing within 15 s")
        line = self.proc.stdout.readline().decode()
        check(line.startswith("READY "), "first stdout line is READY <port>, got %r" % line)
        self.port = int(line.split()[1])
        self.uri = "mongodb://127.0.0.1:%d/" % self.port
        self.client = None

    def mongo(self):
        self.client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000,
                                          connectTimeoutMS=5000, socketTimeoutMS=20000)
        return self.client

    def stop(self, sig=signal.SIGTERM):
        if self.client is not None:
            self.client.close()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within 5 s of %s" % sig)
        rest = self.proc.stdout.read().decode()
        err = self.proc.stderr.read().decode()
        check(rc == 0, "server exit code %r on %s (stderr: %s)" % (rc, sig, err[-2000:]))
        check(rest == "", "nothing but READY on stdout, got %r" % rest)
        check("internal error" not in err, "server reported an internal error: %s" % err)

    def records(self):
        out = []
        with open(self.record, encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line))
        return out

    def commands(self, name):
        return [r for r in self.records() if r.get("command") == name]

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.proc.poll() is None:
            if exc_type is None:
                self.stop()
            else:
                self.proc.kill()
                self.proc.wait()
        return False


def next_events(stream, n, timeout=10.0):
    """Exactly the next n events of a pymongo change stream (bounded in time)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        check(time.monotonic() < deadline, "only %d of %d events within %.0f s: %r" % (
            len(out), n, timeout, [e.get("operationType") for e in out]))
        ev = stream.try_next()
        if ev is not None:
            out.append(ev)
    return out


def ops(events):
    return [e["operationType"] for e in events]


def tok(ev):
    return ev["_id"]["_data"]


def check_common_format(events, db, coll):
    tokens = [tok(e) for e in events]
    for e in events:
        check(isinstance(e["_id"], dict) and list(e["_id"].keys()) == ["_data"],
              "_id is {_data}: %r" % e["_id"])
        check(isinstance(e["clusterTime"], Timestamp), "clusterTime is a BSON Timestamp")
        check(isinstance(e["wallTime"], datetime.datetime), "wallTime is a date")
        check(e["ns"]["db"] == db, "ns.db is %r" % db)
        if e["operationType"] != "dropDatabase":
            check(e["ns"]["coll"] == coll, "ns.coll is %r, got %r" % (coll, e["ns"]))
    for a, b in zip(tokens, tokens[1:]):
        check(len(a) == len(b) and a < b, "tokens increase: %s < %s" % (a, b))
        int(a, 16)
    check(len(set(tokens)) == len(tokens), "tokens unique")


# ---------------------------------------------------------------------------
# pymongo tests
# ---------------------------------------------------------------------------

def test_handshake_and_simple_commands(tmp):
    with Server("basic", tmp=tmp) as srv:
        c = srv.mongo()
        hello = c.admin.command("hello")
        check(hello["isWritablePrimary"] is True, "hello: writable primary")
        check(hello["maxWireVersion"] == 17, "maxWireVersion 17")
        check(hello["setName"] == "rs0" and hello["hosts"] == ["127.0.0.1:%d" % srv.port],
              "replica set name and hosts")
        check(hello["logicalSessionTimeoutMinutes"] == 30, "sessions supported")
        legacy = c.admin.command("isMaster")
        check(legacy["ismaster"] is True, "legacy isMaster answers ismaster: true")
        check(c.admin.command("ping")["ok"] == 1.0, "ping ok")
        check(c.admin.command("buildInfo")["versionArray"][0] == 6, "buildInfo 6.x")
        try:
            c.admin.command("serverStatus")
            raise AssertionError("unknown command must fail")
        except OperationFailure as err:
            check(err.code == 59, "unknown command -> 59 CommandNotFound, got %r" % err.code)
        check(c.app.items.find_one({}) is None, "find before any event: empty collection")
        c.close()
        srv.client = None
        srv.stop()
        names = [r.get("command") for r in srv.records()]
        check(names[0] is None and srv.records()[0]["kind"] == "start", "record starts with start")
        for n in ("hello", "isMaster", "ping", "buildInfo", "serverStatus", "find", "endSessions"):
            check(n in names, "%s recorded: %r" % (n, names))


def test_basic(tmp):
    with Server("basic", tmp=tmp) as srv:
        coll = srv.mongo().app.items
        with coll.watch(full_document="updateLookup") as cs:
            evs = next_events(cs, 12)
            t0 = time.monotonic()
            for _ in range(4):
                check(cs.try_next() is None, "idle after the script")
            idle = time.monotonic() - t0
            hwm = cs.resume_token["_data"]
        check_common_format(evs, "app", "items")
        check(ops(evs) == ["insert"] * 4 + ["update", "update", "replace", "delete",
                                            "createIndexes", "futureOp", "insert", "update"],
              "basic op sequence: %r" % ops(evs))
        ids = [e["documentKey"]["_id"] for e in evs[:4]]
        check(isinstance(ids[0], ObjectId), "ObjectId id")
        check(ids[1] == 42 and type(ids[1]) is int, "int32 id")
        check(ids[2] == "Zoë's key ☃ 集合 with spaces", "unicode string id")
        check(isinstance(ids[3], Binary) and ids[3].subtype == 4, "UUID id is binary subtype 4")
        for e in evs[:4]:
            check(e["fullDocument"]["_id"] == e["documentKey"]["_id"], "insert carries the doc")
        up = evs[4]
        check(up["updateDescription"]["updatedFields"] == {"n": 2, "tags.1": "x"}, "updatedFields")
        check(up["updateDescription"]["removedFields"] == ["old"], "removedFields")
        check(up["updateDescription"]["truncatedArrays"] == [{"field": "arr", "newSize": 1}],
              "truncatedArrays")
        check(up["fullDocument"]["n"] == 2, "update with updateLookup carries the doc")
        check("fullDocument" in evs[5] and evs[5]["fullDocument"] is None,
              "update whose lookup found nothing: fullDocument null")
        check("updateDescription" not in evs[6] and evs[6]["fullDocument"]["name"] == "replaced",
              "replace: whole document, no updateDescription")
        check("fullDocument" not in evs[7], "delete: no fullDocument")
        for e in evs[8:10]:
            check("documentKey" not in e, "unknown types carry no documentKey")
        check(list(evs[10]["documentKey"].keys()) == ["region", "_id"],
              "sharded documentKey keeps the shard key first")
        check(idle >= 0.3, "empty getMores are paced (4 took %.3f s)" % idle)
        check(hwm > tok(evs[-1]), "idle postBatchResumeToken is a later high-water mark")

        # A stream without updateLookup gets no fullDocument on updates; resuming
        # from a high-water-mark token works and finds nothing new.
        with coll.watch(resume_after={"_data": tok(evs[3])}) as cs:
            more = next_events(cs, 2)
            check(ops(more) == ["update", "update"], "resume after the 4th event")
            check(all("fullDocument" not in e for e in more),
                  "fullDocument absent on update without updateLookup")
        with coll.watch(resume_after={"_data": hwm}, full_document="updateLookup") as cs:
            check(cs.try_next() is None, "resume from the high-water mark: nothing new")

        check(coll.find_one({"_id": ids[0]})["n"] == 2, "find sees the updated doc")
        check(coll.find_one({"_id": 42}) is None, "find: int id gone (lookup was null)")
        check(coll.find_one({"_id": 42.0}) is None, "find by 42.0 also finds nothing")
        check(coll.find_one({"_id": ids[2]})["name"] == "replaced", "find sees the replacement")
        check(coll.find_one({"_id": ids[3]}) is None, "find: deleted UUID id is gone")
        check(len(list(coll.find({"_id": {"$in": [ids[0], ids[2]]}}))) == 2, "find $in")
        check(srv.client.app["other"].find_one({}) is None, "other collection is empty")
        srv.stop()
        aggs = srv.commands("aggregate")
        check(aggs[0]["fullDocument"] == "updateLookup" and aggs[0]["resumeAfter"] is None
              and aggs[0]["startAfter"] is None, "first open: updateLookup, from now")
        check(aggs[1]["resumeAfter"] == tok(evs[3]) and aggs[1]["fullDocument"] == "default",
              "second open: resumeAfter recorded")
        check(aggs[2]["resumeAfter"] == hwm and aggs[2]["tokenKind"] == "hwm",
              "third open: high-water-mark token recognised")
        check(srv.commands("killCursors"), "closing the stream kills its cursor")


def test_history_lost(tmp):
    with Server("history_lost", tmp=tmp) as srv:
        coll = srv.mongo().app.items
        cs = coll.watch(full_document="updateLookup")
        evs = next_events(cs, 2)
        check(ops(evs) == ["insert", "insert"], "two inserts first")
        try:
            next_events(cs, 1)
            raise AssertionError("getMore must fail with 286")
        except OperationFailure as err:
            check(err.code == 286, "getMore error 286, got %r" % err.code)
            check(err.details.get("codeName") == "ChangeStreamHistoryLost", "codeName")
        cs.close()
        try:
            coll.watch(resume_after={"_data": tok(evs[1])})
            raise AssertionError("resumeAfter must fail with 286")
        except OperationFailure as err:
            check(err.code == 286, "reopen with resumeAfter: 286 again, got %r" % err.code)
        with coll.watch(full_document="updateLookup") as cs2:
            ev = next_events(cs2, 1)[0]
            check(ev["documentKey"]["_id"] == "h3", "restart from now delivers h3")
        srv.stop()
        aggs = srv.commands("aggregate")
        check([a["resumeAfter"] for a in aggs] == [None, tok(evs[1]), None],
              "opens: from now, resumeAfter(h2), from now: %r" % [a["resumeAfter"] for a in aggs])
        check(aggs[1]["reply"]["code"] == 286 and aggs[2]["reply"]["ok"] == 1, "replies")
        gm = [g for g in srv.commands("getMore") if g["reply"].get("code") == 286]
        check(len(gm) == 1, "exactly one getMore failed with 286")


def test_resumable(tmp):
    with Server("resumable", tmp=tmp) as srv:
        coll = srv.mongo().app.items
        with coll.watch(full_document="updateLookup") as cs:
            evs = next_events(cs, 4)
        check(ops(evs) == ["insert", "insert", "update", "insert"], "resumed transparently")
        check(evs[2]["fullDocument"] == {"_id": "r1", "v": 10}, "update after resume has doc")
        srv.stop()
        aggs = srv.commands("aggregate")
        check(len(aggs) == 2, "one reopen: %d aggregates" % len(aggs))
        check(aggs[1]["resumeAfter"] == tok(evs[1]), "reopened with the last token")
        check(aggs[1]["matchesLastPostBatchResumeToken"] is True, "token matches the last PBRT")
        check(aggs[1]["fullDocument"] == "updateLookup", "reopen keeps updateLookup")
        errs = [g for g in srv.commands("getMore") if g["reply"].get("code") == 91]
        check(len(errs) == 1 and errs[0]["reply"]["errorLabels"] == ["ResumableChangeStreamError"],
              "one labelled 91 error")


def test_resumable_surfaced(tmp):
    with Server("resumable", "--fail-resumes", "2", tmp=tmp) as srv:
        coll = srv.mongo().app.items
        cs = coll.watch(full_document="updateLookup")
        evs = next_events(cs, 2)
        surfaced = 0
        got = []
        for _ in range(4):
            try:
                got = next_events(cs, 2)
                break
            except (OperationFailure, NotPrimaryError) as err:
                code = getattr(err, "code", None) or err.details.get("code")
                check(code == 91 and err.has_error_label("ResumableChangeStreamError"),
                      "surfaced error is the labelled 91: %r" % err)
                surfaced += 1
                token = cs.resume_token
                cs.close()
                cs = coll.watch(full_document="updateLookup", resume_after=token)
        cs.close()
        check(surfaced >= 1, "the error reached the application")
        check(ops(got) == ["update", "insert"], "events after the application's reopen")
        srv.stop()
        aggs = [a for a in srv.commands("aggregate") if a["resumeAfter"]]
        check(all(a["resumeAfter"] == tok(evs[1]) for a in aggs), "every reopen used the last token")
        check([a["reply"]["ok"] for a in aggs][:2] == [0, 0] and aggs[-1]["reply"]["ok"] == 1,
              "two failed reopens, then success: %r" % [a["reply"] for a in aggs])


def invalidating(scenario, tmp, expect_ops, check_extra):
    with Server(scenario, tmp=tmp) as srv:
        coll = srv.mongo().app.items
        cs = coll.watch(full_document="updateLookup")
        evs = next_events(cs, len(expect_ops))
        check(ops(evs) == expect_ops, "%s ops: %r" % (scenario, ops(evs)))
        check_common_format(evs, "app", "items")
        for e in evs[2:]:
            check("documentKey" not in e and "fullDocument" not in e,
                  "%s has no documentKey/fullDocument" % e["operationType"])
        check_extra(evs)
        check(cs.try_next() is None and not cs.alive, "cursor closed after invalidate")
        cs.close()
        inv = tok(evs[-1])
        try:
            coll.watch(resume_after={"_data": inv})
            raise AssertionError("resumeAfter an invalidate must fail")
        except OperationFailure as err:
            check(err.code == 260, "resumeAfter invalidate -> 260, got %r" % err.code)
        with coll.watch(start_after={"_data": inv}, full_document="updateLookup") as cs2:
            ev = next_events(cs2, 1)[0]
            check(ev["operationType"] == "insert", "startAfter the invalidate: new insert")
        srv.stop()
        aggs = srv.commands("aggregate")
        check(aggs[1]["resumeAfter"] == inv and aggs[1]["reply"]["code"] == 260, "260 recorded")
        check(aggs[2]["startAfter"] == inv and aggs[2]["resumeAfter"] is None
              and aggs[2]["reply"]["ok"] == 1, "startAfter recorded and accepted")
        gm = [g for g in srv.commands("getMore") if "invalidate" in
              [e["operationType"] for e in g["reply"].get("events", [])]]
        check(gm and gm[0]["reply"]["cursorId"] == 0, "invalidate batch closes the cursor")


def test_drop(tmp):
    invalidating("drop", tmp, ["insert", "insert", "drop", "invalidate"], lambda evs: None)


def test_rename(tmp):
    def extra(evs):
        check(evs[2]["to"] == {"db": "app", "coll": "items renamed"}, "rename carries to")
    invalidating("rename", tmp, ["insert", "insert", "rename", "invalidate"], extra)


def test_drop_database(tmp):
    def extra(evs):
        check(evs[3]["ns"] == {"db": "app"}, "dropDatabase ns has only db")
    invalidating("dropDatabase", tmp, ["insert", "insert", "drop", "dropDatabase", "invalidate"],
                 extra)


def test_hostile(tmp):
    with Server("hostile", db="dbü_ünï", tmp=tmp) as srv:
        client = srv.mongo()
        coll = client["dbü_ünï"][HOSTILE_COLL]
        with coll.watch(full_document="updateLookup") as cs:
            evs = next_events(cs, 22 + 4 + 2, timeout=30)
        check_common_format(evs, "dbü_ünï", HOSTILE_COLL)
        ids = [e["documentKey"]["_id"] for e in evs[:22]]
        expect = [float, float, float, int, Int64, Decimal128, bytes, Binary, datetime.datetime,
                  dict, list, bool, type(None), MinKey, MaxKey, Regex, Timestamp, ObjectId,
                  str, str, str, str]
        for got, want in zip(ids, expect):
            check(isinstance(got, want), "id %r is a %s" % (got, want.__name__))
        check(ids[0] == 1.0 and ids[1] == 2.5 and ids[4] == 9007199254740993, "numbers kept")
        check(ids[5] == Decimal128("1.10"), "decimal kept")
        check(ids[19] == "line1\nline2" and ids[20] == "nul\x00inside", "control chars kept")
        big = evs[26]
        check(big["operationType"] == "insert" and big["documentKey"]["_id"] == "big-16mb",
              "big insert")
        size = len(bson.encode(big))
        check(MAX_BSON - 2048 < size <= MAX_BSON, "big event just under 16 MiB: %d" % size)
        check(evs[27]["operationType"] == "delete", "then the big doc is deleted")
        check(coll.find_one({"_id": Int64(9007199254740993)})["label"] == "updated",
              "find by int64")
        check(coll.find_one({"_id": {"a": 1, "b": "x"}})["label"] == "updated", "find by doc id")
        check(coll.find_one({"_id": 2.5}) is None, "deleted double id gone")
        check(coll.find_one({"_id": MinKey()})["label"] == "minKey", "find by MinKey")
        srv.stop()
        aggs = srv.commands("aggregate")
        check(aggs[0]["collection"] == HOSTILE_COLL and aggs[0]["db"] == "dbü_ünï",
              "unicode names recorded")


def test_big_document_find(tmp):
    with Server("hostile", tmp=tmp) as srv:
        coll = srv.mongo().app[HOSTILE_COLL]
        with coll.watch() as cs:
            next_events(cs, 27, timeout=30)
        doc = coll.find_one({"_id": "big-16mb"})
        check(doc is not None and len(doc["blob"]) > MAX_BSON - 4096, "find returns the big doc")


def test_find_binary_ids(tmp):
    """find matches binary _ids by subtype and bytes, as a real server does (cachesync's read-through of UUID ids)."""
    uid = Binary(bytes.fromhex("00112233445566778899aabbccddeeff"), 4)
    with Server("hostile", coll="items", tmp=tmp) as srv:
        coll = srv.mongo().app["items"]
        with coll.watch() as cs:
            next_events(cs, 22, timeout=30)
        check((coll.find_one({"_id": uid}) or {}).get("label") == "uuid subtype 4", "find by UUID (subtype 4)")
        check(coll.find_one({"_id": Binary(bytes(uid), 3)}) is None,
              "the same 16 bytes as subtype 3 are another value")
        check(coll.find_one({"_id": Binary(bytes.fromhex("3b241101e2bb42558caf4136c566a962"), 4)}) is None,
              "a UUID not in the collection finds nothing")
        check((coll.find_one({"_id": {"$in": [uid]}}) or {}).get("label") == "uuid subtype 4", "find by UUID in $in")
        check((coll.find_one({"_id": Binary(b"\x00\x01\xfe\xff bin", 0)}) or {}).get("label") == "binary subtype 0",
              "find by binary subtype 0")
        srv.stop()
        filters = [f["filter"] for f in srv.commands("find")]
        check({"_id": {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}}} in filters,
              "the record shows the UUID filter as binary subtype 04: %r" % filters)


def test_other_namespace_is_idle(tmp):
    with Server("basic", tmp=tmp) as srv:
        coll = srv.mongo().app["not scripted"]
        with coll.watch() as cs:
            check(cs.try_next() is None and cs.try_next() is None, "no events elsewhere")
        srv.stop()
        agg = srv.commands("aggregate")[0]
        check(agg["stream"].startswith("idle"), "record says the stream is idle")


def test_sigint_exits_cleanly(tmp):
    with Server("basic", tmp=tmp) as srv:
        srv.mongo().admin.command("ping")
        srv.stop(signal.SIGINT)


def test_fixed_port(tmp):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with Server("basic", "--port", str(port), tmp=tmp) as srv:
        check(srv.port == port, "--port honoured")
        check(srv.mongo().admin.command("ping")["ok"] == 1.0, "ping on the fixed port")


# ---------------------------------------------------------------------------
# libmongoc (the driver cachesync uses), through watch_probe.c
# ---------------------------------------------------------------------------

_PROBE = {}


def probe_binary(tmp):
    if "path" in _PROBE:
        return _PROBE["path"]
    cc = shutil.which("cc") or shutil.which("gcc")
    pc = shutil.which("pkg-config")
    if not cc or not pc:
        raise Skip("no C compiler or pkg-config")
    flags = subprocess.run([pc, "--cflags", "--libs", "libmongoc-1.0"],
                           capture_output=True, text=True)
    if flags.returncode != 0:
        raise Skip("libmongoc-1.0 not installed")
    out = os.path.join(tmp, "watch_probe")
    res = subprocess.run([cc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O1", "-o", out,
                          PROBE_SRC] + flags.stdout.split(), capture_output=True, text=True,
                         timeout=120)
    check(res.returncode == 0, "watch_probe builds: %s" % res.stderr)
    _PROBE["path"] = out
    return out


def run_probe(tmp, srv, n, seconds, *token, db="app", coll="items"):
    res = subprocess.run([probe_binary(tmp), srv.uri, db, coll, str(n), str(seconds)]
                         + list(token), capture_output=True, text=True, timeout=seconds + 20)
    lines = res.stdout.splitlines()
    events = [json.loads(l[6:]) for l in lines if l.startswith("EVENT ")]
    tokens = [l[6:] for l in lines if l.startswith("TOKEN ")]
    errors = [l[6:] for l in lines if l.startswith("ERROR ")]
    check(lines and lines[-1].startswith("DONE "), "probe finished: %r %s" % (lines, res.stderr))
    return events, tokens, errors


def test_libmongoc_basic(tmp):
    probe_binary(tmp)
    with Server("basic", db="dbü", coll="ünï cödé ☃ coll", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 12, 10, db="dbü", coll="ünï cödé ☃ coll")
        check(not errors and len(evs) == 12, "libmongoc reads 12 events: %r" % errors)
        check(evs[5]["fullDocument"] is None, "libmongoc: update with null fullDocument")
        check(tokens == [e["_id"]["_data"] for e in evs],
              "mongoc_change_stream_get_resume_token follows the events")
        srv.stop()
        recs = srv.records()
        check(recs[1]["command"] == "isMaster" and recs[1]["opcode"] == "OP_QUERY",
              "libmongoc handshakes with legacy OP_QUERY isMaster")
        check(srv.commands("aggregate")[0]["fullDocument"] == "updateLookup", "updateLookup sent")
        gms = srv.commands("getMore")
        check(all(g["maxTimeMS"] == 150 for g in gms), "maxAwaitTimeMS reaches getMore")


def test_libmongoc_resumable(tmp):
    probe_binary(tmp)
    with Server("resumable", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 4, 10)
        check(not errors and len(evs) == 4, "libmongoc resumes by itself once: %r" % errors)
        srv.stop()
        aggs = srv.commands("aggregate")
        check(aggs[1]["resumeAfter"] == tokens[1], "libmongoc resumed after the last token")
    with Server("resumable", "--fail-resumes", "2", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 4, 5)
        check(len(evs) == 2 and errors and errors[0].split()[1] == "91",
              "with --fail-resumes 2 the error reaches the application: %r" % errors)
        evs2, _, errors2 = run_probe(tmp, srv, 2, 5, "resumeAfter", tokens[-1])
        check(not errors2 and [e["operationType"] for e in evs2] == ["update", "insert"],
              "the application's own reopen continues after the last token")


def test_libmongoc_invalidate_and_history(tmp):
    probe_binary(tmp)
    with Server("drop", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 10, 5)
        check([e["operationType"] for e in evs] == ["insert", "insert", "drop", "invalidate"],
              "libmongoc sees drop + invalidate")
        _, _, errors = run_probe(tmp, srv, 1, 3, "resumeAfter", tokens[-1])
        check(errors and errors[0].split()[1] == "260", "libmongoc: 260 on resumeAfter invalidate")
        evs, _, errors = run_probe(tmp, srv, 1, 5, "startAfter", tokens[-1])
        check(not errors and evs[0]["operationType"] == "insert", "libmongoc: startAfter works")
    with Server("history_lost", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 10, 5)
        check(len(evs) == 2 and errors and errors[0].split()[1] == "286",
              "libmongoc surfaces 286: %r" % errors)


def test_libmongoc_hostile(tmp):
    probe_binary(tmp)
    with Server("hostile", tmp=tmp) as srv:
        evs, tokens, errors = run_probe(tmp, srv, 28, 30, coll=HOSTILE_COLL)
        check(not errors and len(evs) == 28, "libmongoc reads every hostile event: %r" % errors)
        kinds = [list(e["documentKey"]["_id"].keys())[0] if isinstance(e["documentKey"]["_id"], dict)
                 else type(e["documentKey"]["_id"]).__name__ for e in evs[:22]]
        check(kinds[:8] == ["$numberDouble", "$numberDouble", "$numberDouble", "$numberInt",
                            "$numberLong", "$numberDecimal", "$binary", "$binary"],
              "typed ids reach libmongoc: %r" % kinds)
        check(len(evs[26]["fullDocument"]["blob"]) > MAX_BSON - 4096,
              "libmongoc reads the near-16 MiB event")


def test_sigterm_while_client_polls(tmp):
    probe_binary(tmp)
    srv = Server("basic", tmp=tmp)
    probe = subprocess.Popen([probe_binary(tmp), srv.uri, "app", "items", "1000", "30"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 10
        while len([g for g in srv.commands("getMore") if not g["reply"].get("events")]) < 2:
            check(time.monotonic() < deadline, "probe reached idle polling")
            time.sleep(0.1)
        started = time.monotonic()
        srv.stop()
        check(time.monotonic() - started < 5, "SIGTERM exit while a client polls")
    finally:
        probe.kill()
        probe.wait()


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]


def main():
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    passed = failed = skipped = 0
    tmp = tempfile.mkdtemp(prefix="cachesync-scripted-")
    try:
        for t in TESTS:
            if only and only not in t.__name__:
                continue
            start = time.monotonic()
            try:
                t(tmp)
                passed += 1
                print("PASS %s (%.1fs)" % (t.__name__, time.monotonic() - start), flush=True)
            except Skip as s:
                skipped += 1
                print("SKIP %s: %s" % (t.__name__, s), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s\n%s" % (t.__name__, traceback.format_exc()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
