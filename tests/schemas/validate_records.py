#!/usr/bin/env python3
"""Validates records taken from real topics against the wire schemas.

    validate_records.py --schemas DIR requests=FILE results=FILE ...

Each FILE holds one JSON record per line, as the programs published them.
Exits 1 naming the first few records that do not validate, 0 otherwise.
"""
import argparse
import json
import pathlib
import sys

from jsonschema import Draft202012Validator

parser = argparse.ArgumentParser()
parser.add_argument("--schemas", required=True, type=pathlib.Path)
parser.add_argument("--require", action="append", default=[], help="topic that must hold at least one record")
parser.add_argument("--max-per-topic", type=int, default=0, help="check only the first N records of each topic")
parser.add_argument("files", nargs="+", help="topic=file")
args = parser.parse_args()

failures = 0
for entry in args.files:
    topic, _, path = entry.partition("=")
    # Each record against the schema of its own "v" (requests have v1 and v2).
    validators = {}
    for schema_path in sorted(args.schemas.glob(f"{topic}.v*.schema.json")):
        version = int(schema_path.name[len(topic) + 2:-len(".schema.json")])
        validators[version] = Draft202012Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    by_version = {}
    count = 0
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if args.max_per_topic and count >= args.max_per_topic:
            break
        count += 1
        try:
            record = json.loads(line)
            version = record.get("v") if isinstance(record, dict) else None
            validator = validators.get(version if isinstance(version, int) else 1, validators[1])
            by_version[version] = by_version.get(version, 0) + 1
            errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        except json.JSONDecodeError as error:
            errors = [error]
        if errors:
            failures += 1
            if failures <= 5:
                print(f"{topic} record {number} does not validate: {errors[0]}", file=sys.stderr)
    if topic in args.require and count == 0:
        failures += 1
        print(f"{topic}: no records to validate", file=sys.stderr)
    versions = ", ".join(f"{n} v{v}" for v, n in sorted(by_version.items(), key=lambda item: str(item[0])))
    print(f"{topic}: {count} records checked against {topic}.v<N>.schema.json ({versions})")
print(f"records: {failures} failed")
sys.exit(1 if failures else 0)
