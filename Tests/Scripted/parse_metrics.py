"""Parse Prometheus text format from stdin with prometheus_client's parser; print JSON for the Swift tests.

Output: {"families": {name: type}, "samples": [{"name": ..., "labels": {...}, "value": ...}]}.
Exits 1 with the parser's message when the text does not parse.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    families = {}
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    except Exception as error:  # the parser raises ValueError and others on bad input
        print(f"metrics do not parse: {error}", file=sys.stderr)
        return 1
    json.dump({"families": families, "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
