#!/usr/bin/env python3
"""cross_check.py — validates the schema sample corpus with Python's jsonschema.

The independent check that dtmq's schemas (schemas/) mean what dtmq's own C
validator (connectors/daemon/schema/json_schema.c, tested by
tests/unit/test_json_schema.c on the same files) thinks they mean: every file
under tests/schemas/samples/<schema>/valid/ must validate against
schemas/<schema>.schema.json (the first '-' of the directory name stands for
the '/', e.g. kafka-submit_reply -> schemas/kafka/submit_reply.schema.json),
and every file under .../invalid/ must not.

Each sample is one check. The output ends, like a Check test binary's, with
    100%: Checks: N, Failures: F, Errors: E
(a failure is a sample judged the wrong way; an error is a sample or schema
that cannot be read). Exit status 0 only when every check passed.
Needs python3-jsonschema (Debian), draft 2020-12 support (jsonschema >= 4).

    python3 tests/schemas/cross_check.py [-v]     (from anywhere)
"""
import json
import os
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError as e:  # pragma: no cover - reported as one error
    print(f"cross_check.py: cannot import jsonschema with draft 2020-12 support ({e}); "
          "install python3-jsonschema")
    print("0%: Checks: 1, Failures: 0, Errors: 1")
    sys.exit(1)

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SAMPLES = os.path.join(REPO, "tests", "schemas", "samples")
SCHEMAS = os.path.join(REPO, "schemas")


def schema_path(sample_dir):
    """kafka-submit_reply -> <repo>/schemas/kafka/submit_reply.schema.json"""
    return os.path.join(SCHEMAS, sample_dir.replace("-", "/", 1) + ".schema.json")


def load_validator(path):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def rel(path):
    return os.path.relpath(path, REPO)


def check_sample(validator, path, expect_valid):
    """Returns (outcome, message): outcome is 'pass', 'fail' or 'error'."""
    try:
        with open(path, encoding="utf-8") as f:
            instance = json.load(f)
    except (OSError, ValueError) as e:
        return "error", f"cannot read the sample: {e}"
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if expect_valid and error is not None:
        where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
        return "fail", f"should be valid, but {where}: {error.message}"
    if not expect_valid and error is None:
        return "fail", "should be invalid, but validates"
    return "pass", "" if error is None else error.message


def main():
    verbose = "-v" in sys.argv[1:]
    checks = failures = errors = 0
    print(f"Running suite(s): schema samples (python jsonschema)")
    for sample_dir in sorted(os.listdir(SAMPLES)):
        group = os.path.join(SAMPLES, sample_dir)
        if not os.path.isdir(group):
            continue
        files = [(kind, os.path.join(group, kind, name))
                 for kind in ("valid", "invalid") if os.path.isdir(os.path.join(group, kind))
                 for name in sorted(os.listdir(os.path.join(group, kind))) if name.endswith(".json")]
        try:
            validator = load_validator(schema_path(sample_dir))
        except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
            checks += max(len(files), 1)
            errors += max(len(files), 1)
            print(f"{rel(schema_path(sample_dir))}:0:E:{sample_dir}:schema:0: {e}")
            continue
        for kind, path in files:
            checks += 1
            outcome, message = check_sample(validator, path, kind == "valid")
            if outcome == "fail":
                failures += 1
                print(f"{rel(path)}:0:F:{sample_dir}:{kind}:0: {message}")
            elif outcome == "error":
                errors += 1
                print(f"{rel(path)}:0:E:{sample_dir}:{kind}:0: {message}")
            elif verbose:
                print(f"{rel(path)}: ok{' (' + message + ')' if message else ''}")
    if checks == 0:
        print(f"cross_check.py: no samples under {rel(SAMPLES)}")
        checks = errors = 1
    percent = (checks - failures - errors) * 100 // checks
    print(f"{percent}%: Checks: {checks}, Failures: {failures}, Errors: {errors}")
    return 0 if failures == 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
