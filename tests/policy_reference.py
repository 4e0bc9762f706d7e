"""Reference evaluator for policy filters: the semantics of crmsync.policy.sql, in plain Python.

It exists only for the tests, which prove that the compiled SQL agrees with it. Written from the
documented semantics, not from the SQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from crmsync.policy.duplicates import dup_key, key_fields, time_field
from crmsync.policy.filters import cutoff
from crmsync.policy.model import All, AnyOf, Condition, FieldRef, Filter, Not

MISSING = object()

_SECONDS_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_MICROS_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def lookup(record: dict[str, Any], ref: FieldRef) -> Any:
    if ref.column:
        value = record[ref.column]
        return MISSING if value is None else value
    node: Any = record["data"]
    for key in ref.path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return MISSING if node is None else node


def kind(value: Any) -> str:
    if value is MISSING:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def equal(field: Any, value: Any) -> bool:
    return kind(field) == kind(value) and field == value


def time_key(value: Any) -> str | None:
    """The instant as 'YYYY-MM-DDTHH:MM:SS.ffffff' UTC; other forms only to the millisecond."""
    if not isinstance(value, str):
        return None
    if _SECONDS_Z.match(value):
        return value[:19] + ".000000"
    if _MICROS_Z.match(value):
        return value[:26]
    if not _DATE.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    millis = round(moment.microsecond / 1000)  # SQLite keeps milliseconds
    return moment.replace(microsecond=0).isoformat() + f".{millis:03d}000"


def condition(op: str, field: Any, value: Any, now: datetime) -> bool:
    if op == "eq":
        return equal(field, value)
    if op == "ne":
        return not equal(field, value)
    if op == "in":
        return any(equal(field, v) for v in value)
    if op == "not_in":
        return not any(equal(field, v) for v in value)
    if op in ("lt", "le", "gt", "ge"):
        if kind(field) != kind(value):
            return False
        return {
            "lt": field < value,
            "le": field <= value,
            "gt": field > value,
            "ge": field >= value,
        }[op]
    if op == "contains":
        if kind(field) == "string" and isinstance(value, str):
            return value in field
        if kind(field) == "array":
            return any(equal(item if item is not None else MISSING, value) for item in field)
        return False
    if op == "startswith":
        return kind(field) == "string" and field.startswith(value)
    if op == "regex":
        return kind(field) == "string" and re.search(value, field) is not None
    if op in ("empty", "not_empty"):
        empty = field is MISSING or (kind(field) in ("string", "array", "object") and not field)
        return empty if op == "empty" else not empty
    if op in ("older_than", "newer_than"):
        key = time_key(field)
        if key is None:
            return False
        limit = cutoff(now, value)
        return key < limit if op == "older_than" else key > limit
    raise ValueError(op)


def _dup_keys(table: dict[str, Any], record: dict[str, Any]) -> tuple[str, ...] | None:
    """The record's duplicate key, or None when it takes no part (crmsync.policy.duplicates)."""
    if record.get("crm_deleted_at") is not None or record["status"] not in ("active", "archived"):
        return None
    keys = []
    for ref, mode in key_fields(table):
        value = lookup(record, ref)
        key = dup_key(mode, None if value is MISSING else value)
        if key is None:
            return None
        keys.append(key)
    return tuple(keys)


def filled_fields(data: dict[str, Any]) -> int:
    """Top-level fields with a value (keep = most_complete)."""
    return sum(
        1
        for v in data.values()
        if v is not None
        and not (isinstance(v, str) and (not v or v.isspace()))
        and not (isinstance(v, list | dict) and not v)
    )


def _rank(table: dict[str, Any]) -> Any:
    """The kept record of a group is the largest by this key (``keep = "oldest"``: the
    smallest)."""
    by = time_field(table)
    keep = table.get("keep", "newest")
    newest = keep != "oldest"

    def rank(r: dict[str, Any]) -> tuple:
        # Active first; (most_complete: then the filled fields;) then the time (no time = older
        # than any), then the record id.
        when = time_key(lookup(r, by))
        active = r["status"] == "active"
        filled = filled_fields(r["data"]) if keep == "most_complete" else 0
        first = active if newest else not active
        return (first, filled, when is not None, when or "", r["record_id"])

    return rank


def _kept(table: dict[str, Any], group: list[dict]) -> dict[str, Any]:
    rank = _rank(table)
    return max(group, key=rank) if table.get("keep", "newest") != "oldest" else min(group, key=rank)


def duplicate_of(table: dict[str, Any], record: dict[str, Any], records: list[dict]) -> bool:
    """Another record of the group is the kept one. ``records``: the module's mirror rows."""
    mine = _dup_keys(table, record)
    if mine is None:
        return False
    group = [r for r in records if _dup_keys(table, r) == mine]
    return _kept(table, group)["record_id"] != record["record_id"]


def duplicate_clusters(
    table: dict[str, Any], records: list[dict]
) -> dict[str, tuple[tuple[str, ...], str]]:
    """record id -> (the key of its cluster, the survivor's id) of every record ``duplicate_of``
    selects. ``records``: the module's mirror rows."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for r in records:
        key = _dup_keys(table, r)
        if key is not None:
            groups.setdefault(key, []).append(r)
    out = {}
    for key, group in groups.items():
        kept = _kept(table, group)["record_id"]
        out.update((r["record_id"], (key, kept)) for r in group if r["record_id"] != kept)
    return out


def evaluate(
    node: Filter, record: dict[str, Any], now: datetime, records: list[dict] | None = None
) -> bool:
    """``records``: every mirror row of the record's connection and module (for duplicate_of)."""
    if isinstance(node, Condition):
        if node.op == "duplicate_of":
            if records is None:
                raise ValueError("duplicate_of needs the module's records")
            return duplicate_of(node.value, record, records)
        return condition(node.op, lookup(record, node.field), node.value, now)
    if isinstance(node, Not):
        return not evaluate(node.item, record, now, records)
    if isinstance(node, All):
        return all(evaluate(item, record, now, records) for item in node.items)
    if isinstance(node, AnyOf):
        return any(evaluate(item, record, now, records) for item in node.items)
    raise TypeError(node)
