#!/usr/bin/env bash
# Fuzzes the parsers of outside input with libFuzzer and AddressSanitizer (issue 22, SECURITY.md).
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 600), one after another; targets:
#                                           bson change-event extended-json config document-id (default all)
# Builds cachesync-fuzz in .build-fuzz (a target Package.swift declares only when CACHESYNC_FUZZ is set), writes the
# seeds from the fixtures (scripts/fuzz_seeds.py) into .fuzz/seeds, and keeps what each target found in
# .fuzz/corpus/<target> (read again on the next run), its output in .fuzz/logs/<target>.log and a crashing input in
# .fuzz/crashes/<target>/. Exits 1 when any target crashed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
seconds="${1:-600}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(bson change-event extended-json config document-id)
scripts/install.sh >/dev/null
source scripts/env.sh
mkdir -p .fuzz/logs
# One build at a time on the machine (another may be running); the fuzzers themselves run without the lock.
if ! CACHESYNC_FUZZ=1 flock /tmp/swiftbuild.lock swift build -c release -Xswiftc -sanitize=fuzzer,address \
    --product cachesync-fuzz --build-path .build-fuzz >.fuzz/logs/build.log 2>&1; then
    cat .fuzz/logs/build.log >&2
    exit 1
fi
fuzzer=.build-fuzz/release/cachesync-fuzz
rm -rf .fuzz/seeds
.venv/bin/python scripts/fuzz_seeds.py .fuzz/seeds
# The Swift runtime's backtracer, started on a crash, reads memory that AddressSanitizer then reports; libFuzzer
# prints the stack itself.
export SWIFT_BACKTRACE=enable=no
status=0
for target in "${targets[@]}"; do
    # Events and documents from the fixtures are under 1 kB, the configs about 1 kB; an id is a path segment.
    case "$target" in
        document-id) max_len=256 ;;
        *) max_len=4096 ;;
    esac
    mkdir -p ".fuzz/corpus/$target" ".fuzz/crashes/$target"
    log=".fuzz/logs/$target.log"
    if "$fuzzer" --target="$target" -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix=".fuzz/crashes/$target/" ".fuzz/corpus/$target" ".fuzz/seeds/$target" >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        echo "fuzz: $target: $runs runs in $seconds s, no crash; $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | sed 's/.*DONE *//')"
    else
        status=1
        echo "fuzz: $target failed ($log):" >&2
        grep -E "Fatal error|ERROR|SUMMARY|Test unit written" "$log" >&2 || tail -20 "$log" >&2
    fi
done
exit "$status"
