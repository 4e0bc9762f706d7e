"""Export the audit log to JSONL or CSV, and read an export back to verify it.

Exports stream entry by entry and carry every column, hashes included, with ``detail`` as its
exact stored text (a JSON string inside the JSON line), so a file can be verified on its own:
``crmsync audit verify --file audit.jsonl``, or by any tool that follows
:mod:`crmsync.audit.model`. In CSV an empty cell is null (crmsync never stores empty strings).
Values are written as they are: a spreadsheet may treat a cell starting with ``=`` as a
formula, so open CSV exports as text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from crmsync.audit.model import FIELDS, INT_FIELDS, AuditRecord
from crmsync.audit.verify import MalformedEntry

FORMATS = ("jsonl", "csv")


def write_jsonl(records: Iterable[AuditRecord], out: IO[str]) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record.as_dict(), ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


def write_csv(records: Iterable[AuditRecord], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for record in records:
        writer.writerow(["" if v is None else v for v in (getattr(record, f) for f in FIELDS)])
        count += 1
    return count


def write_export(records: Iterable[AuditRecord], out: IO[str], fmt: str) -> int:
    if fmt == "jsonl":
        return write_jsonl(records, out)
    if fmt == "csv":
        return write_csv(records, out)
    raise ValueError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")


def _record(values: dict[str, Any], where: str) -> AuditRecord:
    missing = [f for f in FIELDS if f not in values]
    if missing:
        raise MalformedEntry(where, f"missing {', '.join(missing)}")
    for name in INT_FIELDS:
        value = values[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MalformedEntry(where, f"{name} must be an integer, not {value!r}")
    for name in FIELDS:
        value = values[name]
        if name not in INT_FIELDS and value is not None and not isinstance(value, str):
            raise MalformedEntry(where, f"{name} must be a string, not {value!r}")
    return AuditRecord(**{f: values[f] for f in FIELDS})


def read_jsonl(path: Path) -> Iterator[AuditRecord]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                values = json.loads(line)
            except ValueError as exc:
                raise MalformedEntry(where, f"not JSON ({exc})") from None
            if not isinstance(values, dict):
                raise MalformedEntry(where, "not a JSON object")
            yield _record(values, where)


def read_csv(path: Path) -> Iterator[AuditRecord]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        if tuple(header) != FIELDS:
            raise MalformedEntry(f"{path.name} line 1", "not a crmsync audit CSV header")
        for number, row in enumerate(reader, 2):
            where = f"{path.name} line {number}"
            if len(row) != len(FIELDS):
                raise MalformedEntry(where, f"{len(row)} columns, expected {len(FIELDS)}")
            values: dict[str, Any] = {}
            for name, cell in zip(FIELDS, row, strict=True):
                if cell == "":
                    values[name] = None
                elif name in INT_FIELDS:
                    try:
                        values[name] = int(cell)
                    except ValueError:
                        raise MalformedEntry(where, f"{name} is not an integer") from None
                else:
                    values[name] = cell
            yield _record(values, where)


def detect_format(path: Path) -> str:
    """By extension, else by the first character (``{`` starts a JSON line)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix == "csv":
        return "csv"
    with path.open(encoding="utf-8", errors="replace") as fh:
        return "jsonl" if fh.read(1) == "{" else "csv"


def read_export(path: Path, fmt: str | None = None) -> Iterator[AuditRecord]:
    fmt = fmt or detect_format(path)
    return read_jsonl(path) if fmt == "jsonl" else read_csv(path)
