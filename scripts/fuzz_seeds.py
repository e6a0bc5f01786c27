"""Writes the seed inputs of the fuzz targets (scripts/fuzz.sh) into DIR/<target>/, from the project's fixtures:
the change events of Tests/CacheSyncCoreTests/Fixtures/events and of every Tests/Scripted scenario (as BSON, their
full documents alone, and as Extended JSON), the configs of examples/ and of the test fixtures, and the events'
document ids as read-through path segments.

    python3 scripts/fuzz_seeds.py DIR
"""
import pathlib
import sys
import urllib.parse

import bson
from bson import json_util
from bson.binary import Binary
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS

root = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "Tests" / "Scripted"))
import changestream_server as scripted  # noqa: E402

# scripts/fuzz.sh's -max_len: a longer seed (the scripted near-16 MiB event) would only be cut.
MAX_LEN = 4096
out = pathlib.Path(sys.argv[1])


def write(target, name, data):
    if len(data) <= MAX_LEN:
        (out / target).mkdir(parents=True, exist_ok=True)
        (out / target / name).write_bytes(data)


def id_text(value):
    """The text a read-through path gives for an `_id` (README "Keys")."""
    if isinstance(value, Binary) and value.subtype == 4:
        return str(value.as_uuid())
    if isinstance(value, (str, int, bson.ObjectId)) and not isinstance(value, bool):
        return str(value)
    return json_util.dumps(value, json_options=RELAXED_JSON_OPTIONS)


events = []
for path in sorted((root / "Tests/CacheSyncCoreTests/Fixtures/events").glob("*.json")):
    write("extended-json", path.name, path.read_bytes())
    events.append((path.stem, json_util.loads(path.read_text(), json_options=CANONICAL_JSON_OPTIONS)))
for scenario in scripted.SCENARIOS:
    script = scripted.build_script(scenario, "app", scripted.DEFAULT_COLL.get(scenario, "items"), 91)
    for entry in script.entries:
        if entry.kind == "event":
            events.append((f"{scenario}-{entry.seq}", scripted.render(entry, "updateLookup")))

ids = set()
for name, event in events:
    write("bson", name, bson.encode(event))
    write("change-event", name, bson.encode(event))
    if isinstance(event.get("fullDocument"), dict):
        write("bson", name + "-fullDocument", bson.encode(event["fullDocument"]))
    write("extended-json", name + "-relaxed.json", json_util.dumps(event, json_options=RELAXED_JSON_OPTIONS).encode())
    if "_id" in event.get("documentKey", {}):
        ids.add(id_text(event["documentKey"]["_id"]))
for index, text in enumerate(sorted(ids)):
    write("document-id", f"id-{index}", urllib.parse.quote(text, safe="").encode())

for path in sorted(root.glob("examples/*.yaml")) + sorted(root.glob("Tests/CacheSyncCoreTests/Fixtures/config/*.yaml")):
    write("config", path.name, path.read_bytes())
