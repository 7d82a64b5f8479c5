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
    schema = json.loads((args.schemas / f"{topic}.v1.schema.json").read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    count = 0
    for number, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if args.max_per_topic and count >= args.max_per_topic:
            break
        count += 1
        try:
            errors = sorted(validator.iter_errors(json.loads(line)), key=lambda e: list(e.path))
        except json.JSONDecodeError as error:
            errors = [error]
        if errors:
            failures += 1
            if failures <= 5:
                print(f"{topic} record {number} does not validate: {errors[0]}", file=sys.stderr)
    if topic in args.require and count == 0:
        failures += 1
        print(f"{topic}: no records to validate", file=sys.stderr)
    print(f"{topic}: {count} records checked against {topic}.v1.schema.json")
print(f"records: {failures} failed")
sys.exit(1 if failures else 0)
