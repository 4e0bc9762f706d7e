"""Normalisation policies: action ``update`` with ``normalize`` — each record's new values are
computed from its own, by transforms (:mod:`crmsync.cleaning.transforms`)::

    [[policies]]
    name = "clean-contact-fields"
    connection = "sandbox"
    module = "Contacts"
    action = { type = "update", default_region = "CN", normalize = {
      phone = "e164", email = ["trim", "lower"], full_name = "collapse_space" } }
    filter = { all = [] }

(``normalize`` and ``default_region`` may also stand at the policy level next to
``action = "update"``.)

**Planned records.** Only records where at least one field's value would change: a field that
is missing or null, whose value a transform does not read (not text; a phone number that cannot
be read), or that is already clean, is left out of the record's change; a record with nothing
left is not planned. Each planned record carries ``{"fields": {new values}, "before": {old
values}}`` (the plan item's ``detail``), which ``crmsync plan`` samples as before -> after and
``apply`` writes through the connector's ``update`` operation — after the drift check, so a
record edited since the plan is skipped, never overwritten with values computed from its old
content.

**SQL.** ``crmsync_normalize(spec, data)`` (a Python SQL function) returns that detail as JSON
text, or NULL when nothing would change; the planner keeps the rows where it is not NULL.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from crmsync.cleaning.phones import region_problem, supported_region
from crmsync.cleaning.transforms import PHONE_TRANSFORMS, TRANSFORMS, apply_chain
from crmsync.policy import filters

SQL_FUNCTION = "crmsync_normalize"

TRANSFORM_LIST_SCHEMA: dict[str, Any] = {
    "type": ["string", "array"],
    "items": {"type": "string"},
    "minItems": 1,
}
NORMALIZE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": TRANSFORM_LIST_SCHEMA,
}


def transform_names(spec: str | list[str]) -> list[str]:
    return [spec] if isinstance(spec, str) else list(spec)


def problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(key under the action, message) for unknown transforms, '@' fields, bad regions."""
    out: list[tuple[str, str]] = []
    known = ", ".join(sorted(TRANSFORMS))
    for name, spec in (params.get("normalize") or {}).items():
        if name.startswith("@"):
            out.append((f"normalize.{name}", "field names starting with '@' are crmsync's"))
        for i, transform in enumerate(transform_names(spec)):
            if transform not in TRANSFORMS:
                where = f"normalize.{name}" if isinstance(spec, str) else f"normalize.{name}[{i}]"
                out.append((where, f"unknown transform {transform!r}; expected one of: {known}"))
    region = params.get("default_region")
    if region is not None and not supported_region(region):
        out.append(("default_region", region_problem(region)))
    return out


def uses_phone(params: dict[str, Any]) -> bool:
    return any(
        t in PHONE_TRANSFORMS
        for spec in (params.get("normalize") or {}).values()
        for t in transform_names(spec)
    )


def spec_text(params: dict[str, Any]) -> str:
    """The ``crmsync_normalize`` spec of an action's params (canonical JSON)."""
    fields = {k: transform_names(v) for k, v in params["normalize"].items()}
    spec = {"fields": fields, "region": params.get("default_region")}
    return orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()


@lru_cache(maxsize=64)
def _spec(text: str) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], str | None]:
    spec = orjson.loads(text)
    fields = tuple((k, tuple(v)) for k, v in spec["fields"].items())
    return fields, spec.get("region")


def changes(spec: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """``{"fields": {...}, "before": {...}}`` for a record's data, or None when clean."""
    fields, region = _spec(spec)
    new: dict[str, Any] = {}
    before: dict[str, Any] = {}
    for name, chain in fields:
        value = data.get(name)
        if value is None:
            continue
        clean = apply_chain(chain, value, region)
        if clean is not None and clean != value:
            new[name], before[name] = clean, value
    return {"fields": new, "before": before} if new else None


def _sql_normalize(spec: str, data: str) -> str | None:
    found = changes(spec, orjson.loads(data))
    return None if found is None else orjson.dumps(found).decode()


filters.sql_functions[SQL_FUNCTION] = (2, _sql_normalize)
