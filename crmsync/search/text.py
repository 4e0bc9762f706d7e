"""A record's searchable text, its display name and a snippet around a match, in Python.

:func:`record_text` is what the search index holds of a record (crmsync.store.sqlite_search
indexes it) and what snapshot records are matched against, so the two always agree. The rule:
every JSON string value of the record — top-level, in lists, in nested objects — except empty
strings, ISO dates and times (``2024-05-01...``: use --since/--until), the record's own ``id``,
CRM system keys starting with ``$`` (Zoho's ``$state``, ``$approval``...) and the CRM's
bookkeeping of who owns and edited it (:data:`SKIPPED_KEYS`: a sales rep's name would match a
tenth of the records; ``--field owner=NAME`` filters on it). Values under a
key whose name contains "name" or "company" (ASCII case-insensitive; for a nested value, any
key on its path, e.g. ``Account_Name.name`` but not ``Owner.name``) form the *name* text, which
ranks above a match in the rest (*body*). Values are joined by newlines, and each text ends in
two, so that every one- and two-character substring starts a trigram of the index.

Changing these rules needs a store migration that re-indexes the mirror ('delete-all', then
queue every record): a contentless index removes a record by the text it indexed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Top-level keys (ASCII case-insensitive) left out of the index: who owns, made and changed
# the record (sandbox, Zoho, Fxiaoke, Jiandaoyun, DingTalk), and the record's own id.
SKIPPED_KEYS = frozenset(
    ("id", "owner", "created_by", "modified_by", "last_modified_by", "creator", "updater",
     "deleter", "creator_userid")
)  # fmt: skip

# What the table shows as a record's name: the first of these keys a record has.
NAME_KEYS = (
    "full_name", "Full_Name", "name", "Name", "Account_Name", "Deal_Name", "Last_Name",
    "company", "Company",
)  # fmt: skip


def _names_a_name(key: object) -> bool:
    if not isinstance(key, str):
        return False
    folded = key.translate(_ASCII_LOWER)
    return "name" in folded or "company" in folded


def _indexed(value: str) -> bool:
    return value != "" and not _DATE.match(value)


def _walk(value: Any, is_name: bool, names: list[str], body: list[str]) -> None:
    """Nested values in document order (json_tree's); ``is_name``: a key on the path names a
    name. Keys of nested objects count for their children, not for themselves."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            if isinstance(child, str):
                if _indexed(child):
                    (names if is_name else body).append(child)
            else:
                _walk(child, is_name or _names_a_name(key), names, body)
    elif isinstance(value, list):
        for child in value:
            if isinstance(child, str):
                if _indexed(child):
                    (names if is_name else body).append(child)
            else:
                _walk(child, is_name, names, body)


def record_values(data: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(name values, body values) of a record, in document order."""
    names: list[str] = []
    body: list[str] = []
    for key, value in data.items():
        if key.startswith("$") or key.translate(_ASCII_LOWER) in SKIPPED_KEYS:
            continue
        if isinstance(value, str):
            if _indexed(value):
                (names if _names_a_name(key) else body).append(value)
        else:
            _walk(value, _names_a_name(key), names, body)
    return names, body


def _joined(values: Sequence[str]) -> str | None:
    return "\n".join(values) + "\n\n" if values else None


def record_text(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(name text, body text) exactly as the store's search index reads them."""
    names, body = record_values(data)
    return _joined(names), _joined(body)


def display_name(data: Mapping[str, Any]) -> str:
    """A short name for a record (a person's or company's), or ''."""
    for key in NAME_KEYS:
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("name")
        if isinstance(value, str) and value.strip():
            return value.strip()
    names, _ = record_values(data)
    return names[0].strip() if names else ""


def _mark(value: str, literals: Sequence[str], width: int) -> str | None:
    """``value`` cut to about ``width`` characters around its first match, every match of a
    literal in [brackets]; None when no literal occurs in it."""
    folded = value.lower()
    spans: list[tuple[int, int]] = []
    for lit in literals:
        needle = lit.lower()
        start = folded.find(needle)
        while start >= 0 and needle:
            spans.append((start, start + len(needle)))
            start = folded.find(needle, start + len(needle))
    if not spans:
        return None
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    first = merged[0][0]
    lo = max(0, first - width // 3)
    hi = min(len(value), lo + width)
    lo = max(0, min(lo, hi - width))
    out = ["…" if lo > 0 else ""]
    pos = lo
    for a, b in merged:
        if b <= lo or a >= hi:
            continue
        a, b = max(a, lo), min(b, hi)
        out += [value[pos:a], "[", value[a:b], "]"]
        pos = b
    out.append(value[pos:hi])
    if hi < len(value):
        out.append("…")
    return "".join(out).replace("\n", " ")


def snippet(data: Mapping[str, Any], literals: Sequence[str], *, width: int = 60) -> str:
    """Up to two of the record's values that contain a literal, matches in [brackets], name
    values first; '' when none does (a search by filters only)."""
    if not literals:
        return ""
    names, body = record_values(data)
    parts = []
    for value in (*names, *body):
        marked = _mark(value, literals, width)
        if marked is not None and marked not in parts:
            parts.append(marked)
            if len(parts) == 2:
                break
    return " · ".join(parts)
