"""Helpers for tests that tamper with a copy of a shared smoke run."""
from labutils.artifacts import read_json, write_json


def make_another_runs(record_path) -> dict:
    """Rewrite a metrics record as an older run in the same folder left it; returns the record."""
    record = read_json(record_path)
    write_json(record_path, record | {"run": record["run"] | {"run_id": "smoke-older-run"}})
    return record
