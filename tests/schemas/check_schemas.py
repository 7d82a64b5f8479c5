#!/usr/bin/env python3
"""Checks the wire schemas against the examples and against the codec.

1. Every schema is a valid draft 2020-12 schema; every topic has examples.
2. Every example in schemas/examples/<topic>/ and every record the codec
   writes (wire_schema_tool write) validates against <topic>.v<N>.schema.json
   for its "v" (requests have a v1 and a v2) and is strict UTF-8 JSON.
3. The decoder accepts all of them.
4. Schema and decoder agree: each record is mutated member by member (removed,
   replaced by another type, by an out-of-range number, by an empty string, an
   unknown member added) and the schema's verdict must equal the decoder's.
"""
import argparse
import copy
import json
import pathlib
import subprocess
import sys
import tempfile

from jsonschema import Draft202012Validator

TOPICS = ["requests", "results", "mismatches", "summary", "dlq", "gaps"]


def load_schemas(schema_dir):
    """{topic: {major version: validator}} for every <topic>.v<N>.schema.json."""
    validators = {}
    for topic in TOPICS:
        for path in sorted(schema_dir.glob(f"{topic}.v*.schema.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
            version = int(path.name[len(topic) + 2:-len(".schema.json")])
            validators.setdefault(topic, {})[version] = Draft202012Validator(schema)
        if 1 not in validators.get(topic, {}):
            raise SystemExit(f"no {topic}.v1.schema.json in {schema_dir}")
    return validators


def validator_for(validators, topic, document):
    """The schema of the record's own major version; v1's (which refuses any
    other "v") when the record names none this repository defines."""
    version = document.get("v") if isinstance(document, dict) else None
    by_version = validators[topic]
    if isinstance(version, int) and not isinstance(version, bool) and version in by_version:
        return by_version[version]
    return by_version[1]


def load_records(directory, origin):
    """(topic, name, document) for every <topic>/*.json under directory."""
    records = []
    for topic in TOPICS:
        files = sorted((directory / topic).glob("*.json"))
        if not files:
            raise SystemExit(f"no {origin} records for topic {topic} in {directory / topic}")
        for path in files:
            raw = path.read_bytes()
            text = raw.decode("utf-8")  # strict: the codec must never write invalid UTF-8
            records.append((topic, f"{origin} {topic}/{path.name}", json.loads(text)))
    return records


def replacements(value):
    """Values to put in place of `value`: other types and edge values."""
    if isinstance(value, bool):
        return ["7"]
    if isinstance(value, str):
        return [7] + ([""] if value else [])
    if isinstance(value, int):
        return ["7", -1, 1.5, 2**63, 2**64]
    if isinstance(value, float):
        return ["7", -1, 1.5]
    if value is None:
        return [7]
    if isinstance(value, dict):
        return [[]]
    if isinstance(value, list):
        return [{}] + ([[]] if value else [])
    raise AssertionError(value)


def mutations(document):
    """(description, mutated document, empties_columns) for every member."""
    def walk(node, path):
        if isinstance(node, dict):
            extended = copy.deepcopy(document)
            target(extended, path)["zz_unknown_member"] = {"added_in": [1, 3], "flag": None}
            yield f"{'.'.join(map(str, path)) or '<root>'} + unknown member", extended, False
            for key in list(node):
                removed = copy.deepcopy(document)
                del target(removed, path)[key]
                yield f"{'.'.join(map(str, path + (key,)))} removed", removed, False
                yield from replaced(node[key], path, key)
                yield from walk(node[key], path + (key,))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from replaced(item, path, index)
                yield from walk(item, path + (index,))

    def replaced(value, path, key):
        for replacement in replacements(value):
            changed = copy.deepcopy(document)
            target(changed, path)[key] = replacement
            # columns and params have members parallel to them (digests, param_types, param_formats)
            empties_columns = key in ("columns", "params") and replacement == []
            yield f"{'.'.join(map(str, path + (key,)))} = {json.dumps(replacement)}", changed, empties_columns

    def target(root, path):
        for step in path:
            root = root[step]
        return root

    return walk(document, ())


def decode_all(tool, records):
    lines = "".join(f"{topic}\t{json.dumps(doc, ensure_ascii=False, separators=(',', ':'))}\n" for topic, _, doc in records)
    output = subprocess.run([tool, "check"], input=lines.encode("utf-8"), capture_output=True, check=True).stdout
    verdicts = output.decode("utf-8").splitlines()
    assert len(verdicts) == len(records), (len(verdicts), len(records))
    return verdicts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True, help="wire_schema_tool executable")
    parser.add_argument("--schemas", required=True, type=pathlib.Path, help="the schemas/ folder")
    args = parser.parse_args()

    validators = load_schemas(args.schemas)
    with tempfile.TemporaryDirectory() as written_dir:
        subprocess.run([args.tool, "write", written_dir], check=True)
        records = load_records(args.schemas / "examples", "example") + load_records(pathlib.Path(written_dir), "written")

    failures = []
    for topic, name, document in records:
        for error in validator_for(validators, topic, document).iter_errors(document):
            failures.append(f"{name}: schema: {'/'.join(map(str, error.absolute_path))}: {error.message}")
    for (topic, name, _), verdict in zip(records, decode_all(args.tool, records)):
        if verdict != "ok":
            failures.append(f"{name}: decoder: {verdict}")

    mutated = []
    skipped = 0
    for topic, name, document in records:
        for description, changed, empties_columns in mutations(document):
            # A schema cannot say "as many column digests as columns"; the decoder checks it.
            if empties_columns:
                skipped += 1
                continue
            mutated.append((topic, f"{name}: {description}", changed))
    for (topic, name, changed), verdict in zip(mutated, decode_all(args.tool, mutated)):
        schema_ok = validator_for(validators, topic, changed).is_valid(changed)
        decoder_ok = verdict == "ok"
        if schema_ok != decoder_ok:
            failures.append(f"{name}: schema says {'valid' if schema_ok else 'invalid'}, decoder says {verdict}")

    print(f"{len(records)} records ({sum(1 for r in records if r[1].startswith('example'))} examples), "
          f"{len(mutated)} mutations compared, {skipped} skipped (column- and parameter-count rules)")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
