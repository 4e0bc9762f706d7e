"""Classification policies: action ``classify`` — rules as data that tag records or set a
category field, written back through the connector like any policy::

    [[policies]]
    name = "classify-accounts"
    connection = "sandbox"
    module = "Accounts"
    action = "classify"
    match = "first"                 # or "all"
    filter = { field = "@status", op = "eq", value = "active" }   # optional: which records

    [[policies.rules]]
    name = "vip"
    when = { field = "industry", op = "in", value = ["Finance", "Energy"] }
    tags = ["重要客户"]
    set = { category = "VIP" }

    [[policies.rules]]              # no `when`: every record no earlier rule took
    tags = ["潜在客户"]

**Rules.** ``when`` is a filter exactly like a policy's (fields, ops, ``older_than`` /
``newer_than`` on ``created_at`` or ``@modified_at`` for time periods and activity,
``all``/``any``/``not``); without ``when`` a rule matches every record. ``tags`` are added to
the record's ``tags`` list (kept tags stay, order kept, no repeats); ``set`` writes fields.
A rule needs ``tags`` or ``set`` (or both). At most 62 rules.

**Matching.** ``match = "first"`` (the default): a record takes the first rule it matches, in
the order written — the usual "if / else if" of a classification. ``"all"``: every rule it
matches; tags add up, and for a field two rules set, the earlier rule wins.

**Planned records.** A record is planned only when its matching rules would change it — a tag
it lacks, a field with another value — so records already classified are not planned again,
and a classification re-planned after apply (and a pull) finds nothing. Each planned item
carries ``{"fields": {new values}, "before": {old values}, "rules": [indexes]}``.

**Write-back.** Through the connector's ``tag`` operation when a rule adds tags (fields a rule
sets travel with it, as extra fields of the change); through ``update`` when the rules only set
fields. The ``tags`` value sent is the record's whole new list (also when only a field changes:
the tag operation always carries it).

**SQL.** Each rule's filter compiles to a 0/1 expression; ``(r0 << 0) + (r1 << 1) + ...`` is
the record's rule mask, and ``crmsync_classify(spec, mask, data)`` (a Python SQL function)
turns mask and data into the item's detail, or NULL when nothing would change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from crmsync.policy import filters
from crmsync.policy.filters import Scope, SqlParams
from crmsync.policy.model import Filter

SQL_FUNCTION = "crmsync_classify"
TAGS_FIELD = "tags"
MAX_RULES = 62
MATCH = ("first", "all")

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["tags"]}, {"required": ["set"]}],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "when": {"type": "object"},
        "tags": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
        },
        "set": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
    },
}
RULES_SCHEMA: dict[str, Any] = {"type": "array", "minItems": 1, "maxItems": MAX_RULES}


@dataclass(frozen=True)
class Rule:
    when: Filter
    tags: tuple[str, ...] = ()
    set: dict[str, Any] = field(default_factory=dict)
    name: str = ""


def rule_problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(key under the rule, message) for problems of meaning in one rule."""
    out = []
    for key in raw.get("set") or {}:
        if key.startswith("@"):
            out.append((f"set.{key}", "field names starting with '@' are crmsync's"))
        elif key == TAGS_FIELD:
            out.append((f"set.{key}", "tags are added with `tags = [...]`, not set"))
    return out


def operation(params: Mapping[str, Any]) -> str:
    """The connector operation that writes this classification: tag, or update."""
    return "tag" if any(r.get("tags") for r in params.get("rules") or ()) else "update"


def spec_text(params: Mapping[str, Any]) -> str:
    rules = [{"tags": r.get("tags") or [], "set": r.get("set") or {}} for r in params["rules"]]
    spec = {"match": params.get("match", "first"), "rules": rules, "op": operation(params)}
    return orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()


def mask_sql(rules: tuple[Rule, ...], now: datetime, scope: Scope) -> SqlParams:
    """The rule mask of the current mirror row: bit i set when rule i matches."""
    from crmsync.policy.sql import compile_filter

    parts: list[str] = []
    params: list[Any] = []
    for i, rule in enumerate(rules):
        sql, sub = compile_filter(rule.when, now, scope)
        parts.append(f"(({sql}) << {i})")
        params += sub
    return "(" + " + ".join(parts) + ")", params


@lru_cache(maxsize=64)
def _spec(text: str) -> tuple[str, list[dict[str, Any]], bool]:
    spec = orjson.loads(text)
    return spec["match"], spec["rules"], spec.get("op") == "tag"


def changes(spec: str, mask: int, data: dict[str, Any]) -> dict[str, Any] | None:
    """The record's ``{"fields", "before", "rules"}`` for its rule mask, or None."""
    if not mask:
        return None
    match, rules, by_tag = _spec(spec)
    chosen = [i for i in range(len(rules)) if mask >> i & 1]
    if match == "first":
        chosen = chosen[:1]
    current = data.get(TAGS_FIELD)
    tags = list(current) if isinstance(current, list) else []
    wanted: dict[str, Any] = {}
    for i in chosen:
        for tag in rules[i]["tags"]:
            if tag not in tags:
                tags.append(tag)
        for key, value in rules[i]["set"].items():
            wanted.setdefault(key, value)
    new: dict[str, Any] = {}
    if tags != (current if isinstance(current, list) else []):
        new[TAGS_FIELD] = tags
    for key, value in wanted.items():
        if not same_value(data.get(key), value):
            new[key] = value
    if not new:
        return None
    if by_tag and TAGS_FIELD not in new:
        new[TAGS_FIELD] = tags  # the tag operation always carries the record's whole list
    before = {k: data.get(k) for k in new}
    return {"fields": new, "before": before, "rules": chosen}


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON values (1 == 1.0, but true != 1)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _sql_classify(spec: str, mask: int, data: str) -> str | None:
    if not mask:
        return None
    found = changes(spec, mask, orjson.loads(data))
    return None if found is None else orjson.dumps(found).decode()


filters.sql_functions[SQL_FUNCTION] = (3, _sql_classify)
