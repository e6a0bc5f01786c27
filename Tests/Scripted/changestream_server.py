#!/usr/bin/env python3
"""Scripted MongoDB wire server that speaks the real change-stream format.

It stands in for a replica-set primary (maxWireVersion 17, MongoDB 6.0) so that
cachesync's integration tests can drive behaviours the local test server
nx-27017 cannot show: drop / rename / dropDatabase / invalidate events, error
286 (ChangeStreamHistoryLost), resumable errors with the
ResumableChangeStreamError label, BSON Timestamp clusterTime, typed
documentKey ids and near-16 MB documents.

The wire layer is mockupdb (OP_MSG and the legacy OP_QUERY handshake); every
request goes to one catch-all handler that plays a scenario script.  See
README.md beside this file for the scenarios and the record-file format.

    python3 Tests/Scripted/changestream_server.py --scenario basic \
        --db app --coll items --record /tmp/rec.jsonl [--port 0]

prints exactly one line ``READY <port>`` on stdout once it accepts
connections and runs until SIGTERM or SIGINT (exit code 0).
"""

import argparse
import datetime
import random
import signal
import sys
import threading
import time
import traceback
import uuid

import bson
from bson import SON
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.json_util import RELAXED_JSON_OPTIONS, dumps as ejson_dumps
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

import mockupdb

MAX_BSON = 16 * 1024 * 1024
MAX_WIRE_VERSION = 17
BASE_TIME = 1717000000  # 2024-05-29T16:26:40Z: every clusterTime is (BASE_TIME, seq)
LOOKUP_MODES = ("updateLookup", "whenAvailable", "required")
IDLE_WAIT_DEFAULT_MS = 100
IDLE_WAIT_MAX_MS = 200
IDLE_WAIT_MIN_MS = 20

_MISSING = object()


def log(msg):
    """Diagnostics go to stderr: stdout carries only the READY line."""
    sys.stderr.write("changestream_server: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

def event_token(ts, seq):
    """Resume token of event number `seq` (uppercase hex, like a real server)."""
    return "82%08X%08X2B0229%06X0004" % (ts.time, ts.inc, seq)


def hwm_token(ts, pos):
    """High-water-mark token for stream position `pos` (sorts after the event before it)."""
    return "82%08X%08X2B0429%06X0004" % (ts.time, ts.inc, pos)


IDLE_TOKEN = "82%08X000000002B0629FFFFFF0004" % BASE_TIME


def token_hex(value):
    """The `_data` string of a resume token document, or None."""
    if isinstance(value, dict) and isinstance(value.get("_data"), str):
        return value["_data"]
    return None


# ---------------------------------------------------------------------------
# Event specs (what a scenario writes) and the script (what the server plays)
# ---------------------------------------------------------------------------

def insert(doc, key=None):
    return {"operationType": "insert", "fullDocument": doc,
            "documentKey": key if key is not None else {"_id": doc["_id"]}}


def update(_id, updated, removed=(), truncated=(), lookup=None, key=None):
    """An update; `lookup` is what fullDocument: updateLookup finds (None = null)."""
    return {"operationType": "update",
            "documentKey": key if key is not None else {"_id": _id},
            "updateDescription": SON([("updatedFields", updated),
                                      ("removedFields", list(removed)),
                                      ("truncatedArrays", list(truncated))]),
            "_lookup": lookup}


def replace(doc, key=None):
    return {"operationType": "replace", "fullDocument": doc,
            "documentKey": key if key is not None else {"_id": doc["_id"]}}


def delete(_id, key=None):
    return {"operationType": "delete",
            "documentKey": key if key is not None else {"_id": _id}}


def drop():
    return {"operationType": "drop"}


def rename(to_db, to_coll):
    return {"operationType": "rename", "to": SON([("db", to_db), ("coll", to_coll)])}


def drop_database():
    return {"operationType": "dropDatabase", "_ns_db_only": True}


def invalidate():
    return {"operationType": "invalidate"}


def other(op_type, **fields):
    spec = {"operationType": op_type}
    spec.update(fields)
    return spec


class Entry(object):
    """One step of the script: an event, a batch break, or a one-shot error."""

    def __init__(self, kind, **kw):
        self.kind = kind  # "event" | "break" | "error"
        self.__dict__.update(kw)


class Script(object):
    """A scenario's events and errors, flattened into positions.

    Position p means "before entry p". An event token resolves to the
    position right after its event; a high-water-mark token to its position.
    """

    def __init__(self, db, coll):
        self.db = db
        self.coll = coll
        self.entries = []
        self.seq = 0

    def batch(self, *specs):
        for spec in specs:
            self._event(spec)
        self.entries.append(Entry("break"))

    def error(self, code, code_name, errmsg, labels=(), loses_history=False):
        self.entries.append(Entry("error", code=code, code_name=code_name, errmsg=errmsg,
                                  labels=list(labels), loses_history=loses_history,
                                  fired=False))

    def _event(self, spec):
        self.seq += 1
        ts = Timestamp(BASE_TIME, self.seq)
        wall = datetime.datetime.fromtimestamp(BASE_TIME, datetime.timezone.utc).replace(
            tzinfo=None) + datetime.timedelta(milliseconds=self.seq)
        op = spec["operationType"]
        ev = SON()
        ev["_id"] = SON([("_data", event_token(ts, self.seq))])
        ev["operationType"] = op
        ev["clusterTime"] = ts
        ev["wallTime"] = wall
        if "fullDocument" in spec:
            ev["fullDocument"] = spec["fullDocument"]
        if spec.get("_ns_db_only"):
            ev["ns"] = SON([("db", self.db)])
        else:
            ev["ns"] = SON([("db", self.db), ("coll", self.coll)])
        for k, v in spec.items():
            if k in ("operationType", "fullDocument", "_lookup", "_ns_db_only", "_pre"):
                continue
            ev[k] = v
        entry = Entry("event", seq=self.seq, ts=ts, event=ev, op=op,
                      lookup=spec.get("_lookup", _MISSING), pre=spec.get("_pre"),
                      token=ev["_id"]["_data"])
        self.entries.append(entry)

    # -- positions ----------------------------------------------------------

    def ts_before(self, pos):
        """clusterTime of the last event before position `pos` (or the start)."""
        for i in range(min(pos, len(self.entries)) - 1, -1, -1):
            e = self.entries[i]
            if e.kind == "event":
                return e.ts
        return Timestamp(BASE_TIME, 0)

    def hwm(self, pos):
        return hwm_token(self.ts_before(pos), pos)

    def resolve(self, hex_token):
        """(kind, position, entry) for a token: kind is event, hwm or unknown."""
        for i, e in enumerate(self.entries):
            if e.kind == "event" and e.token == hex_token:
                return "event", i + 1, e
        for pos in range(len(self.entries) + 1):
            if self.hwm(pos) == hex_token:
                return "hwm", pos, None
        return "unknown", None, None

    def position_at_time(self, ts):
        for i, e in enumerate(self.entries):
            if e.kind == "event" and (e.ts.time, e.ts.inc) >= (ts.time, ts.inc):
                return i
        return len(self.entries)

    def history_lost_before(self):
        """Position up to which history is lost (an error 286 that has fired), or -1."""
        lost = -1
        for i, e in enumerate(self.entries):
            if e.kind == "error" and e.loses_history and e.fired:
                lost = i
        return lost

    def collect(self, pos, limit, slim=False, split=False):
        """Events from `pos` up to the end of a batch: (entries, new_pos, closes, error).

        An event marked too large fails the batch that would carry it with 10334 (BSONObjectTooLarge), as
        a real server does for an event over 16 MiB, unless the cursor is slim (its pipeline projects the
        documents away) or splits large events; the error does not move the cursor past it."""
        out = []
        closes = False
        n = len(self.entries)
        while pos < n:
            e = self.entries[pos]
            if e.kind == "event" and getattr(e, "too_large", False) and not slim and not split:
                if out:
                    break
                return out, pos, False, TOO_LARGE_ERROR
            if e.kind == "break":
                pos += 1
                if out:
                    break
                continue
            if e.kind == "error":
                if e.fired:
                    pos += 1
                    continue
                if out:
                    break
                return out, pos, False, e
            if limit and len(out) >= limit:
                break
            out.append(e)
            pos += 1
            if e.op == "invalidate":
                closes = True
                break
        return out, pos, closes, None


TOO_LARGE_ERROR = Entry("error", code=10334, code_name="BSONObjectTooLarge",
                        errmsg="Executor error during getMore :: caused by :: BSONObj size: 17825792 (0x1100000) "
                               "is invalid. Size must be between 0 and 16793600(16MB)",
                        labels=[], loses_history=False, fired=False, repeats=True)

SLIM_FIELDS = ("fullDocument", "fullDocumentBeforeChange", "updateDescription")


def is_split(pipeline):
    """Whether a change-stream pipeline ends with $changeStreamSplitLargeEvent."""
    return bool(pipeline) and isinstance(pipeline[-1], dict) and "$changeStreamSplitLargeEvent" in pipeline[-1]


def fragments(ev, entry):
    """A too-large event as $changeStreamSplitLargeEvent sends it: every field but fullDocument in the first
    fragment, fullDocument in the second; each with its own resume token, the last with the event's."""
    first = SON([("_id", SON([("_data", entry.token + "F1")]))])
    for k, v in ev.items():
        if k not in ("_id", "fullDocument"):
            first[k] = v
    first["splitEvent"] = SON([("fragment", 1), ("of", 2)])
    second = SON([("_id", ev["_id"]), ("fullDocument", ev.get("fullDocument")),
                  ("splitEvent", SON([("fragment", 2), ("of", 2)]))])
    return [first, second]


def is_slim(pipeline):
    """Whether a change-stream pipeline projects every document field away (cachesync's slim stream)."""
    for stage in pipeline[1:]:
        if isinstance(stage, dict) and isinstance(stage.get("$project"), dict):
            proj = stage["$project"]
            if all(proj.get(f) in (0, False) for f in SLIM_FIELDS):
                return True
    return False


def render(entry, full_document_mode, slim=False, before_mode=None):
    """The event document as the server sends it for a stream's fullDocument and fullDocumentBeforeChange modes
    (a pre-image, null when the scenario has none, on update, replace and delete, as MongoDB 6.0 does for a
    collection with changeStreamPreAndPostImages enabled)."""
    ev = SON(entry.event)
    if slim:
        for field in SLIM_FIELDS:
            ev.pop(field, None)
        return ev
    if entry.op == "update" and full_document_mode in LOOKUP_MODES:
        ev["fullDocument"] = None if entry.lookup is _MISSING else entry.lookup
    if before_mode in ("whenAvailable", "required") and entry.op in ("update", "replace", "delete"):
        ev["fullDocumentBeforeChange"] = getattr(entry, "pre", None)
    return ev


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

def scenario_basic(s):
    oid = ObjectId("665a0f0c1a2b3c4d5e6f7a01")
    sid = "Zoë's key ☃ 集合 with spaces"
    uid = Binary(uuid.UUID("3b241101-e2bb-4255-8caf-4136c566a962").bytes, 4)
    shard_oid = ObjectId("665a0f0c1a2b3c4d5e6f7a02")
    created = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000)
    s.batch(
        insert(SON([("_id", oid), ("name", "Ada"), ("n", 1), ("old", True),
                    ("tags", ["a", "b"]), ("arr", [1, 2, 3]), ("created", created)])),
        insert(SON([("_id", 42), ("name", "int id")])),
        insert(SON([("_id", sid), ("name", "string id")])),
        insert(SON([("_id", uid), ("name", "uuid id")])),
    )
    s.batch(
        update(oid, SON([("n", 2), ("tags.1", "x")]), removed=["old"],
               truncated=[SON([("field", "arr"), ("newSize", 1)])],
               lookup=SON([("_id", oid), ("name", "Ada"), ("n", 2), ("tags", ["a", "x"]),
                           ("arr", [1]), ("created", created)])),
        update(42, SON([("name", "gone before lookup")]), lookup=None),
        replace(SON([("_id", sid), ("name", "replaced"), ("v", 2)])),
        delete(uid),
    )
    s.batch(
        other("createIndexes", operationDescription=SON([("indexes", [
            SON([("v", 2), ("key", SON([("name", 1)])), ("name", "name_1")])])])),
        other("futureOp", futureField="something a newer server might send"),
    )
    s.batch(
        insert(SON([("_id", shard_oid), ("region", "eu"), ("v", 1)]),
               key=SON([("region", "eu"), ("_id", shard_oid)])),
        update(shard_oid, SON([("v", 2)]),
               lookup=SON([("_id", shard_oid), ("region", "eu"), ("v", 2)]),
               key=SON([("region", "eu"), ("_id", shard_oid)])),
    )


def scenario_history_lost(s):
    s.batch(insert(SON([("_id", "h1"), ("v", 1)])),
            insert(SON([("_id", "h2"), ("v", 2)])))
    s.error(286, "ChangeStreamHistoryLost",
            "Executor error during getMore :: caused by :: Resume of change stream was not "
            "possible, as the resume point may no longer be in the oplog.",
            loses_history=True)
    s.batch(insert(SON([("_id", "h3"), ("v", 3)])))


def scenario_resumable(s, code):
    names = {91: "ShutdownInProgress", 10107: "NotWritablePrimary",
             11600: "InterruptedAtShutdown", 189: "PrimarySteppedDown"}
    msgs = {91: "The server is in quiesce mode and will shut down",
            10107: "not primary",
            11600: "interrupted at shutdown",
            189: "Primary stepped down while waiting for replication"}
    s.batch(insert(SON([("_id", "r1"), ("v", 1)])),
            insert(SON([("_id", "r2"), ("v", 2)])))
    s.error(code, names.get(code, "ResumableError"), msgs.get(code, "resumable error"),
            labels=["ResumableChangeStreamError"])
    s.batch(update("r1", SON([("v", 10)]), lookup=SON([("_id", "r1"), ("v", 10)])),
            insert(SON([("_id", "r3"), ("v", 3)])))


def scenario_drop(s):
    s.batch(insert(SON([("_id", "p1"), ("v", 1)])),
            insert(SON([("_id", "p2"), ("v", 2)])))
    s.batch(drop(), invalidate())
    s.batch(insert(SON([("_id", "p3"), ("v", 3)])))


def scenario_rename(s):
    s.batch(insert(SON([("_id", "n1"), ("v", 1)])),
            insert(SON([("_id", "n2"), ("v", 2)])))
    s.batch(rename(s.db, s.coll + " renamed"), invalidate())
    s.batch(insert(SON([("_id", "n3"), ("v", 3)])))


def scenario_drop_database(s):
    s.batch(insert(SON([("_id", "d1"), ("v", 1)])),
            insert(SON([("_id", "d2"), ("v", 2)])))
    s.batch(drop(), drop_database(), invalidate())
    s.batch(insert(SON([("_id", "d3"), ("v", 3)])))


HOSTILE_IDS = [
    ("double 1.0", 1.0),
    ("double 2.5", 2.5),
    ("double -0.1", -0.1),
    ("int32 -7", -7),
    ("int64 2^53+1", Int64(9007199254740993)),
    ("decimal128 1.10", Decimal128("1.10")),
    ("binary subtype 0", Binary(b"\x00\x01\xfe\xff bin", 0)),
    ("uuid subtype 4", Binary(uuid.UUID("00112233-4455-6677-8899-aabbccddeeff").bytes, 4)),
    ("date", datetime.datetime(2024, 5, 6, 7, 8, 9, 123000)),
    ("embedded document", SON([("a", 1), ("b", "x")])),
    ("array", [1, "two", SON([("three", 3)])]),
    ("bool true", True),
    ("null", None),
    ("minKey", MinKey()),
    ("maxKey", MaxKey()),
    ("regex", Regex("^ab.*c$", "i")),
    ("timestamp", Timestamp(1700000000, 7)),
    ("objectId", ObjectId("665a0f0c1a2b3c4d5e6f7a99")),
    ("string unicode+spaces", "  ünï cödé ☃ 🚀 集合  "),
    ("string newline", "line1\nline2"),
    ("string NUL", "nul\x00inside"),
    ("string empty", ""),
]

BIG_ID = "big-16mb"


def big_document(db, coll):
    """A fullDocument whose insert event is just under 16 MiB (1 KiB margin)."""
    probe = Script(db, coll)
    doc = SON([("_id", BIG_ID), ("blob", "")])
    probe.batch(insert(doc))
    overhead = len(bson.encode(probe.entries[0].event))
    doc["blob"] = "x" * (MAX_BSON - 1024 - overhead)
    return doc


def scenario_hostile(s):
    s.batch(*[insert(SON([("_id", v), ("label", label)])) for label, v in HOSTILE_IDS])
    s.batch(
        update(Int64(9007199254740993), SON([("label", "updated"), ("a.b.ü", 1)]),
               lookup=SON([("_id", Int64(9007199254740993)), ("label", "updated"),
                           ("a", SON([("b", SON([("ü", 1)]))]))])),
        update(SON([("a", 1), ("b", "x")]), SON([("label", "updated")]),
               lookup=SON([("_id", SON([("a", 1), ("b", "x")])), ("label", "updated")])),
        delete(2.5),
        delete(None),
    )
    s.batch(insert(big_document(s.db, s.coll)))
    s.batch(delete(BIG_ID))


def scenario_poison(s):
    """Events cachesync cannot decode: one that names no document (the collection is flushed), then one that names
    its document (its key must go); the stream goes on after each."""
    s.batch(insert(SON([("_id", "p2"), ("v", 1)])))
    s.batch(other("insert", fullDocument=SON([("_id", "p9"), ("v", 1)]), documentKey="not a document"))
    s.batch(insert(SON([("_id", "p1"), ("v", 1)])),
            insert(SON([("_id", "p3"), ("v", 1)])))
    s.batch(other(7, documentKey=SON([("_id", "p1")]),
                  fullDocument=SON([("_id", "p1"), ("v", "an operationType that is not a string")])))
    s.batch(insert(SON([("_id", "p5"), ("v", 1)])))


def scenario_large_event(s):
    """An update whose event (with its looked-up document) is over 16 MiB: a stream with documents fails on it
    with 10334 every time; a slim one gets it without documents. Events around it are ordinary."""
    s.batch(insert(SON([("_id", "l1"), ("v", 1)])),
            insert(SON([("_id", "l2"), ("v", 1)])))
    s.batch(update("l1", SON([("v", 2)]), lookup=SON([("_id", "l1"), ("v", 2)])))
    s.entries[-2].too_large = True
    s.batch(insert(SON([("_id", "l3"), ("v", 1)])))


def scenario_emails(s):
    """40 users whose email changes 1,000 times at random (seeded), 12 of them deleted on the way, in batches of
    25 events; every update and delete carries its pre-image (served when the stream asks for one)."""
    rng = random.Random(7)
    users = {}
    specs = []
    for i in range(40):
        users[i] = SON([("_id", i), ("email", "u%d-0@example.com" % i), ("name", "user %d" % i)])
        specs.append(insert(SON(users[i])))
    for n in range(1, 1001):
        if n % 80 == 0 and len(users) > 28:
            victim = rng.choice(sorted(users))
            spec = delete(victim)
            spec["_pre"] = users.pop(victim)
            specs.append(spec)
        uid = rng.choice(sorted(users))
        before = users[uid]
        after = SON(before)
        after["email"] = "u%d-%d@example.com" % (uid, n)
        users[uid] = after
        spec = update(uid, SON([("email", after["email"])]), lookup=SON(after))
        spec["_pre"] = before
        specs.append(spec)
    for start in range(0, len(specs), 25):
        s.batch(*specs[start:start + 25])


def build_script(name, db, coll, resumable_code):
    s = Script(db, coll)
    if name == "basic":
        scenario_basic(s)
    elif name == "history_lost":
        scenario_history_lost(s)
    elif name == "resumable":
        scenario_resumable(s, resumable_code)
    elif name == "drop":
        scenario_drop(s)
    elif name == "rename":
        scenario_rename(s)
    elif name == "dropDatabase":
        scenario_drop_database(s)
    elif name == "hostile":
        scenario_hostile(s)
    elif name == "poison":
        scenario_poison(s)
    elif name == "large_event":
        scenario_large_event(s)
    elif name == "emails":
        scenario_emails(s)
    else:
        raise ValueError(name)
    return s


SCENARIOS = ["basic", "history_lost", "resumable", "drop", "rename", "dropDatabase", "hostile", "poison", "large_event",
             "emails"]
DEFAULT_COLL = {"hostile": "ünï cödé ☃ 集合 coll"}


# ---------------------------------------------------------------------------
# Collection state for find
# ---------------------------------------------------------------------------

def bson_equal(a, b):
    """MongoDB-like equality for ids: numbers by value, bool only with bool."""
    if isinstance(a, Binary) and a.subtype == 0:
        a = bytes(a)
    if isinstance(b, Binary) and b.subtype == 0:
        b = bytes(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Decimal128):
        a = a.to_decimal()
    if isinstance(b, Decimal128):
        b = b.to_decimal()
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, dict) and isinstance(b, dict)):
        if not (isinstance(a, num) and isinstance(b, num)):
            return False
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return False
        return all(bson_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(bson_equal(x, y) for x, y in zip(a, b))
    try:
        return a == b
    except Exception:
        return False


def matches(doc, flt):
    for field, cond in flt.items():
        if field.startswith("$"):
            return False
        if field not in doc:
            if cond is None:
                continue
            return False
        value = doc[field]
        if isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            for op, arg in cond.items():
                if op == "$eq":
                    if not bson_equal(value, arg):
                        return False
                elif op == "$in":
                    if not any(bson_equal(value, x) for x in arg):
                        return False
                elif op == "$gt":
                    if type(value) is not type(arg) or not value > arg:
                        return False
                else:
                    return False
        elif not bson_equal(value, cond):
            return False
    return True


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class Cursor(object):
    def __init__(self, cid, db, coll, pos, full_document, idle, slim=False, split=False, before=None):
        self.before = before
        self.slim = slim
        self.split = split
        self.id = cid
        self.db = db
        self.coll = coll
        self.pos = pos
        self.full_document = full_document
        self.idle = idle


class CommandError(Exception):
    def __init__(self, code, code_name, errmsg, labels=()):
        Exception.__init__(self, errmsg)
        self.code = code
        self.code_name = code_name
        self.errmsg = errmsg
        self.labels = list(labels)


class ScriptedServer(object):
    def __init__(self, args):
        self.args = args
        self.script = build_script(args.scenario, args.db, args.coll, args.resumable_code)
        self.lock = threading.RLock()
        self.record_lock = threading.Lock()
        self.cursors = {}
        self.next_cursor = 7340000000000001
        self.high_water = 0
        self.last_pbrt = None
        self.resume_failures_left = args.fail_resumes
        self.resumable_fired = False
        self.seq = 0
        self.record = open(args.record, "a", encoding="utf-8") if args.record else None
        self.mock = mockupdb.MockupDB(port=args.port or None, request_timeout=int(1e6))
        self.mock.autoresponds(self.handle)
        self.port = None

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        self.port = self.mock.run()
        self.me = "127.0.0.1:%d" % self.port
        self.write_record({"kind": "start", "scenario": self.args.scenario, "port": self.port,
                           "db": self.args.db, "coll": self.args.coll,
                           "events": self.script.seq})
        return self.port

    def stop(self):
        t = threading.Thread(target=self.mock.stop, daemon=True)
        t.start()
        t.join(3)
        with self.record_lock:
            if self.record:
                self.record.flush()
                self.record.close()
                self.record = None

    # -- recording -----------------------------------------------------------

    def write_record(self, rec):
        with self.record_lock:
            self.seq += 1
            rec = dict(rec)
            rec["seq"] = self.seq
            rec["time"] = round(time.time(), 3)
            if self.record:
                self.record.write(ejson_dumps(rec, json_options=RELAXED_JSON_OPTIONS,
                                              ensure_ascii=False) + "\n")
                self.record.flush()
            if self.args.verbose:
                log(ejson_dumps(rec, json_options=RELAXED_JSON_OPTIONS, ensure_ascii=False)[:400])

    # -- dispatch ------------------------------------------------------------

    def handle(self, request):
        doc = request.doc
        if "$query" in doc and isinstance(doc["$query"], dict):
            doc = doc["$query"]
        name = next(iter(doc), "") if doc else ""
        lname = name.lower()
        rec = {"kind": "command", "command": name,
               "db": doc.get("$db", getattr(request, "namespace", None)),
               "conn": request.client_port,
               "opcode": "OP_MSG" if isinstance(request, mockupdb.OpMsg) else "OP_QUERY"}
        try:
            handler = {
                "hello": self.cmd_hello, "ismaster": self.cmd_hello,
                "ping": self.cmd_ok, "buildinfo": self.cmd_build_info,
                "endsessions": self.cmd_ok, "killcursors": self.cmd_kill_cursors,
                "find": self.cmd_find, "count": self.cmd_count, "aggregate": self.cmd_aggregate,
                "getmore": self.cmd_get_more,
            }.get(lname)
            if handler is None:
                raise CommandError(59, "CommandNotFound", "no such command: '%s'" % name)
            reply = handler(doc, rec)
        except CommandError as err:
            reply = SON([("ok", 0.0), ("errmsg", err.errmsg), ("code", err.code),
                         ("codeName", err.code_name)])
            if err.labels:
                reply["errorLabels"] = err.labels
            rec["reply"] = {"ok": 0, "code": err.code, "codeName": err.code_name,
                            "errorLabels": err.labels}
        except Exception as exc:  # a bug here must not hang the client
            log("internal error: %s" % traceback.format_exc())
            reply = SON([("ok", 0.0), ("errmsg", "scripted server internal error: %r" % exc),
                         ("code", 1), ("codeName", "InternalError")])
            rec["reply"] = {"ok": 0, "code": 1, "codeName": "InternalError"}
        self.write_record(rec)
        request.replies(reply)
        return True

    # -- simple commands -----------------------------------------------------

    def cmd_ok(self, doc, rec):
        rec["reply"] = {"ok": 1}
        return SON([("ok", 1.0)])

    def cmd_hello(self, doc, rec):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        optime = self.script.ts_before(self.high_water)
        reply = SON()
        if doc and next(iter(doc)) == "hello":
            reply["isWritablePrimary"] = True
        else:
            reply["ismaster"] = True
        reply.update([
            ("topologyVersion", None),
            ("helloOk", True),
            ("secondary", False),
            ("setName", self.args.set_name),
            ("setVersion", 1),
            ("hosts", [self.me]),
            ("primary", self.me),
            ("me", self.me),
            ("electionId", ObjectId("7fffffff0000000000000001")),
            ("lastWrite", SON([("opTime", SON([("ts", optime), ("t", Int64(1))])),
                               ("lastWriteDate", now),
                               ("majorityOpTime", SON([("ts", optime), ("t", Int64(1))])),
                               ("majorityWriteDate", now)])),
            ("maxBsonObjectSize", MAX_BSON),
            ("maxMessageSizeBytes", 48000000),
            ("maxWriteBatchSize", 100000),
            ("localTime", now),
            ("logicalSessionTimeoutMinutes", 30),
            ("connectionId", int(rec.get("conn") or 0)),
            ("minWireVersion", 0),
            ("maxWireVersion", MAX_WIRE_VERSION),
            ("readOnly", False),
            ("ok", 1.0),
        ])
        # No topologyVersion: clients then poll hello instead of the streaming
        # (exhaust) protocol, which this scripted server does not implement.
        del reply["topologyVersion"]
        rec["reply"] = {"ok": 1}
        return reply

    def cmd_build_info(self, doc, rec):
        rec["reply"] = {"ok": 1}
        version = [int(x) for x in self.args.server_version.split(".")]
        return SON([("version", self.args.server_version), ("versionArray", version + [0]),
                    ("gitVersion", "scripted"), ("bits", 64), ("maxBsonObjectSize", MAX_BSON),
                    ("ok", 1.0)])

    def cmd_kill_cursors(self, doc, rec):
        ids = list(doc.get("cursors") or [])
        killed, missing = [], []
        with self.lock:
            for cid in ids:
                if self.cursors.pop(int(cid), None) is not None:
                    killed.append(Int64(cid))
                else:
                    missing.append(Int64(cid))
        rec["collection"] = doc.get("killCursors")
        rec["cursors"] = [int(c) for c in ids]
        rec["reply"] = {"ok": 1, "cursorsKilled": [int(c) for c in killed],
                        "cursorsNotFound": [int(c) for c in missing]}
        return SON([("cursorsKilled", killed), ("cursorsNotFound", missing),
                    ("cursorsAlive", []), ("cursorsUnknown", []), ("ok", 1.0)])

    # -- find ----------------------------------------------------------------

    def state(self):
        """Documents of the collection after every event up to the high-water mark."""
        docs = []

        def remove(_id):
            docs[:] = [d for d in docs if not bson_equal(d.get("_id"), _id)]

        for e in self.script.entries[:self.high_water]:
            if e.kind != "event":
                continue
            if e.op in ("insert", "replace"):
                remove(e.event["fullDocument"]["_id"])
                docs.append(e.event["fullDocument"])
            elif e.op == "update":
                _id = e.event["documentKey"]["_id"]
                remove(_id)
                if e.lookup is not None and e.lookup is not _MISSING:
                    docs.append(e.lookup)
            elif e.op == "delete":
                remove(e.event["documentKey"]["_id"])
            elif e.op in ("drop", "rename", "dropDatabase"):
                docs[:] = []
        return docs

    def cmd_find(self, doc, rec):
        db = doc.get("$db")
        coll = doc.get("find")
        flt = doc.get("filter") or {}
        limit = abs(int(doc.get("limit") or 0))
        rec["collection"] = coll
        rec["filter"] = flt
        with self.lock:
            if db == self.args.db and coll == self.args.coll:
                found = [d for d in self.state() if matches(d, flt)]
            else:
                found = []
        # sort by _id and min: {_id: x} (inclusive), as a warm-up reads its chunks; ids of one type only.
        if "_id" in (doc.get("sort") or {}):
            found.sort(key=lambda d: d["_id"], reverse=doc["sort"]["_id"] < 0)
        bound = (doc.get("min") or {}).get("_id", _MISSING)
        if bound is not _MISSING:
            found = [d for d in found if d["_id"] >= bound]
        if limit:
            found = found[:limit]
        rec["reply"] = {"ok": 1, "count": len(found)}
        return SON([("cursor", SON([("firstBatch", found), ("id", Int64(0)),
                                    ("ns", "%s.%s" % (db, coll))])),
                    ("ok", 1.0)])

    def cmd_count(self, doc, rec):
        db = doc.get("$db")
        coll = doc.get("count")
        with self.lock:
            if db == self.args.db and coll == self.args.coll:
                found = [d for d in self.state() if matches(d, doc.get("query") or {})]
            else:
                found = []
        rec["reply"] = {"ok": 1, "n": len(found)}
        return SON([("n", len(found)), ("ok", 1.0)])

    # -- change streams ------------------------------------------------------

    def new_cursor_id(self):
        self.next_cursor += 7919
        return self.next_cursor

    def cmd_aggregate(self, doc, rec):
        db = doc.get("$db")
        target = doc.get("aggregate")
        pipeline = doc.get("pipeline") or []
        cursor_opts = doc.get("cursor") or {}
        explicit_batch = cursor_opts.get("batchSize") if isinstance(cursor_opts, dict) else None
        batch_size = int(explicit_batch or 0)
        rec["collection"] = target
        rec["pipelineStages"] = [next(iter(st), None) for st in pipeline if isinstance(st, dict)]
        # The $project stages after $changeStream, as sent (cachesync's slim stream, or a collection's projection).
        rec["projections"] = [st["$project"] for st in pipeline[1:]
                              if isinstance(st, dict) and isinstance(st.get("$project"), dict)]
        rec["batchSize"] = explicit_batch
        stage = None
        if pipeline and isinstance(pipeline[0], dict) and "$changeStream" in pipeline[0]:
            stage = pipeline[0]["$changeStream"] or {}
        if stage is None:
            rec["reply"] = {"ok": 1, "cursorId": 0, "events": []}
            return SON([("cursor", SON([("firstBatch", []), ("id", Int64(0)),
                                        ("ns", "%s.%s" % (db, target))])), ("ok", 1.0)])
        resume_after = token_hex(stage.get("resumeAfter"))
        start_after = token_hex(stage.get("startAfter"))
        start_at = stage.get("startAtOperationTime")
        full_document = stage.get("fullDocument", "default")
        rec["changeStream"] = stage
        rec["resumeAfter"] = resume_after
        rec["startAfter"] = start_after
        rec["startAtOperationTime"] = (
            {"t": start_at.time, "i": start_at.inc} if isinstance(start_at, Timestamp) else None)
        rec["fullDocument"] = full_document
        ns = "%s.%s" % (db, target)

        with self.lock:
            rec["matchesLastPostBatchResumeToken"] = (
                (resume_after or start_after) is not None
                and (resume_after or start_after) == self.last_pbrt)
            scripted = (db == self.args.db and target == self.args.coll)
            if not scripted:
                cid = self.new_cursor_id()
                self.cursors[cid] = Cursor(cid, db, target, 0, full_document, idle=True)
                rec["stream"] = "idle (not the scripted namespace %s.%s)" % (
                    self.args.db, self.args.coll)
                rec["reply"] = {"ok": 1, "cursorId": cid, "events": [],
                                "postBatchResumeToken": IDLE_TOKEN}
                return self.cursor_reply("firstBatch", cid, ns, [], IDLE_TOKEN,
                                         Timestamp(BASE_TIME, 0))
            stage_keys = [k for k in ("resumeAfter", "startAfter", "startAtOperationTime")
                          if k in stage]
            if len(stage_keys) > 1:
                raise CommandError(40674, "Location40674",
                                   "Only one type of resume option is allowed, but multiple "
                                   "were found.")
            token = resume_after or start_after
            if ("resumeAfter" in stage or "startAfter" in stage) and token is None:
                raise CommandError(40647, "Location40647",
                                   "resume token must be a document with a string _data field")
            if token is not None:
                if self.resumable_fired and self.resume_failures_left > 0:
                    self.resume_failures_left -= 1
                    err = self.resumable_error_entry()
                    raise CommandError(err.code, err.code_name, err.errmsg, err.labels)
                pos = self.position_for_token(token, resume_after is not None, rec)
            elif isinstance(start_at, Timestamp):
                pos = self.script.position_at_time(start_at)
                rec["tokenKind"] = "operationTime"
            else:
                pos = self.high_water
                rec["tokenKind"] = "none (from now)"
            rec["position"] = pos
            cid = self.new_cursor_id()
            cur = Cursor(cid, db, target, pos, full_document, idle=False, slim=is_slim(pipeline),
                         split=is_split(pipeline), before=stage.get("fullDocumentBeforeChange"))
            rec["slim"] = cur.slim
            rec["split"] = cur.split
            self.cursors[cid] = cur
            events, closes = [], False
            if (token is not None or isinstance(start_at, Timestamp)) and explicit_batch != 0:
                # Resuming with history available: what is there comes in firstBatch.
                events, cur.pos, closes, _ = self.script.collect(cur.pos, batch_size, cur.slim, cur.split)
            return self.deliver(cur, "firstBatch", ns, events, rec, closes=closes)

    def resumable_error_entry(self):
        for e in self.script.entries:
            if e.kind == "error" and "ResumableChangeStreamError" in e.labels:
                return e
        return Entry("error", code=91, code_name="ShutdownInProgress",
                     errmsg="The server is in quiesce mode and will shut down",
                     labels=["ResumableChangeStreamError"])

    def position_for_token(self, token, is_resume_after, rec):
        try:
            bytes.fromhex(token)
        except ValueError:
            rec["tokenKind"] = "malformed"
            raise CommandError(260, "InvalidResumeToken",
                               "Failed to decode resume token: _data is not a hex string")
        kind, pos, entry = self.script.resolve(token)
        rec["tokenKind"] = kind
        if kind == "event":
            rec["tokenEvent"] = {"seq": entry.seq, "operationType": entry.op}
        if kind == "unknown":
            raise CommandError(286, "ChangeStreamHistoryLost",
                               "PlanExecutor error during aggregation :: caused by :: Resume of "
                               "change stream was not possible, as the resume point may no "
                               "longer be in the oplog.")
        if pos <= self.script.history_lost_before():
            raise CommandError(286, "ChangeStreamHistoryLost",
                               "PlanExecutor error during aggregation :: caused by :: Resume of "
                               "change stream was not possible, as the resume point may no "
                               "longer be in the oplog.")
        if kind == "event" and entry.op == "invalidate" and is_resume_after:
            raise CommandError(260, "InvalidResumeToken",
                               "Attempting to resume a change stream using 'resumeAfter' is not "
                               "allowed from an invalidate notification.")
        return pos

    def cursor_reply(self, batch_field, cid, ns, docs, pbrt, optime):
        return SON([("cursor", SON([(batch_field, docs),
                                    ("postBatchResumeToken", SON([("_data", pbrt)])),
                                    ("id", Int64(cid)), ("ns", ns)])),
                    ("ok", 1.0), ("operationTime", optime)])

    def deliver(self, cur, batch_field, ns, events, rec, closes=False):
        """Reply with `events` for cursor `cur` (already advanced); lock held."""
        docs = []
        for e in events:
            ev = render(e, cur.full_document, cur.slim, cur.before)
            docs.extend(fragments(ev, e) if cur.split and getattr(e, "too_large", False) else [ev])
        pbrt = events[-1].token if events else self.script.hwm(cur.pos)
        self.high_water = max(self.high_water, cur.pos)
        self.last_pbrt = pbrt
        cid = cur.id
        if closes:
            self.cursors.pop(cur.id, None)
            cid = 0
        rec["reply"] = {"ok": 1, "cursorId": cid,
                        "events": [{"seq": e.seq, "operationType": e.op, "token": e.token}
                                   for e in events],
                        "postBatchResumeToken": pbrt}
        return self.cursor_reply(batch_field, cid, ns, docs, pbrt, self.script.ts_before(cur.pos))

    def cmd_get_more(self, doc, rec):
        cid = int(doc.get("getMore"))
        batch_size = int(doc.get("batchSize") or 0)
        max_time = doc.get("maxTimeMS")
        rec["cursorId"] = cid
        rec["collection"] = doc.get("collection")
        rec["batchSize"] = doc.get("batchSize")
        rec["maxTimeMS"] = max_time
        with self.lock:
            cur = self.cursors.get(cid)
            if cur is None:
                raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
            ns = "%s.%s" % (cur.db, cur.coll)
            if not cur.idle:
                events, new_pos, closes, err = self.script.collect(cur.pos, batch_size, cur.slim, cur.split)
                cur.pos = new_pos
                if err is not None and getattr(err, "repeats", False):
                    # Not a scripted one-shot: the cursor dies where it stands, and fails again there.
                    self.cursors.pop(cid, None)
                    rec["scriptedError"] = True
                    raise CommandError(err.code, err.code_name, err.errmsg, err.labels)
                if err is not None:
                    err.fired = True
                    cur.pos += 1
                    self.high_water = max(self.high_water, cur.pos)
                    self.cursors.pop(cid, None)
                    if "ResumableChangeStreamError" in err.labels:
                        self.resumable_fired = True
                    rec["scriptedError"] = True
                    raise CommandError(err.code, err.code_name, err.errmsg, err.labels)
                if events:
                    return self.deliver(cur, "nextBatch", ns, events, rec, closes=closes)
        # Nothing to send: wait like an awaitData cursor so the client does not spin.
        wait_ms = IDLE_WAIT_DEFAULT_MS if max_time is None else max(
            IDLE_WAIT_MIN_MS, min(int(max_time), IDLE_WAIT_MAX_MS))
        # mockupdb serves every connection under one lock; its private _unlock()
        # releases it so other connections are answered while this one waits.
        with self.mock._unlock():
            time.sleep(wait_ms / 1000.0)
        with self.lock:
            cur = self.cursors.get(cid)
            if cur is None:
                raise CommandError(43, "CursorNotFound", "cursor id %d not found" % cid)
            if cur.idle:
                rec["reply"] = {"ok": 1, "cursorId": cid, "events": [],
                                "postBatchResumeToken": IDLE_TOKEN}
                return self.cursor_reply("nextBatch", cid, ns, [], IDLE_TOKEN,
                                         Timestamp(BASE_TIME, 0))
            return self.deliver(cur, "nextBatch", ns, [], rec)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    p.add_argument("--db", default="app")
    p.add_argument("--coll", default=None,
                   help="collection name (default: items; hostile: a unicode name)")
    p.add_argument("--record", default=None, help="append one JSON line per command to FILE")
    p.add_argument("--set-name", default="rs0", help="replica set name in hello")
    p.add_argument("--server-version", default="6.0.14",
                   help="the version buildInfo reports (6.0.9 and later split large events)")
    p.add_argument("--resumable-code", type=int, default=91, choices=[91, 10107, 11600, 189],
                   help="error code of the resumable error (scenario resumable)")
    p.add_argument("--fail-resumes", type=int, default=0,
                   help="scenario resumable: fail this many token-carrying aggregates after "
                        "the resumable error with the same labelled error")
    p.add_argument("--verbose", action="store_true", help="log every command to stderr")
    args = p.parse_args(argv)
    if args.coll is None:
        args.coll = DEFAULT_COLL.get(args.scenario, "items")
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    server = ScriptedServer(args)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    port = server.start()
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
