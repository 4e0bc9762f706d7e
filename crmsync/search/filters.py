"""Search filters: reading them from the command line, and applying them to a record in Python
(snapshot records; the store applies the same rules in SQL, crmsync.store.sqlite_search).

- ``--tag T``: the record's ``tags`` list (or Zoho's ``Tag``, a list of ``{name, id}``) has T,
  compared ignoring ASCII case.
- ``--field KEY=VALUE``: the top-level field KEY equals VALUE: a text exactly, a number
  numerically (``amount=1000`` matches 1000.0), ``true``/``false`` a boolean, a lookup object
  (Zoho's ``Owner``, ``{"name": ..., "id": ...}``) by its name or id. Records are schemaless,
  so any KEY is accepted; a record without it (or with null, a list) does not match.
- ``--since/--until``: the modified time (the mirror's) or the created time (the first of
  :data:`CREATED_KEYS` the record has) compared as a time, in UTC; ``--until`` is exclusive,
  and a date alone means the end of that day. Records with no such time do not match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.audit.model import parse_time
from crmsync.report.model import STALE_FIELDS
from crmsync.search.model import SearchFilters

CREATED_KEYS: tuple[str, ...] = (*STALE_FIELDS["created"], "gmt_create")
"""Where a record's creation time is (the first of these it has), per CRM: sandbox, Zoho,
Jiandaoyun, Fxiaoke (epoch ms are not read as times), Salesforce-style, DingTalk."""

MODIFIED_KEYS: tuple[str, ...] = (
    "modified_at", "Modified_Time", "updateTime", "last_modified_time", "LastModifiedDate",
    "gmt_modified",
)  # fmt: skip
"""A snapshot record's modified time (the mirror keeps the CRM's in a column)."""

TAG_KEYS: tuple[str, ...] = ("tags", "Tag")

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SECONDS_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MICROS_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def parse_field(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (KEY, VALUE); the first ``=`` splits. Raises ValueError."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE (e.g. industry=Software), got {text!r}")
    return key.strip(), value


def number_of(value: str) -> float | None:
    """``value`` as a number when it is written as one (``1000``, ``-2.5``, ``1e3``)."""
    return float(value) if _NUMBER.fullmatch(value.strip()) else None


def time_bound(text: str, *, end: bool = False, now: datetime | None = None) -> str:
    """A --since (``end=False``) or --until bound as a time key. Dates, ISO times (naive:
    UTC) and ages (``30d``, ``12h``, ``2w``) are accepted; an --until date alone is the end of
    that day. Raises ValueError."""
    text = text.strip()
    moment = parse_time(text, now=now).removesuffix("Z")
    if end and _DATE_ONLY.fullmatch(text):
        day = datetime.fromisoformat(moment) + timedelta(days=1)
        return day.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return moment


def time_key(value: Any) -> str | None:
    """A time value as a time key (what ``crmsync.policy.filters.time_key_sql`` gives in SQL),
    or None when it is not a time."""
    if not isinstance(value, str) or not _DATE_ONLY.match(value):
        return None
    if _SECONDS_Z.fullmatch(value):
        return value[:19] + ".000000"
    if _MICROS_Z.fullmatch(value):
        return value[:26]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}000"


def first_time(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first of ``keys`` the record has (not null)."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def has_tag(data: Mapping[str, Any], tag: str) -> bool:
    wanted = _fold(tag)
    for key in TAG_KEYS:
        value = data.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            name = item.get("name") if isinstance(item, Mapping) else item
            if isinstance(name, str) and _fold(name) == wanted:
                return True
    return False


def field_equals(data: Mapping[str, Any], key: str, value: str) -> bool:
    actual = data.get(key)
    if isinstance(actual, bool):
        return value == ("true" if actual else "false")
    if isinstance(actual, str):
        return actual == value
    if isinstance(actual, int | float):
        number = number_of(value)
        return number is not None and actual == number
    if isinstance(actual, Mapping):
        return value in (actual.get("name"), actual.get("id"))
    return False


def accepts(filters: SearchFilters, data: Mapping[str, Any]) -> bool:
    """Whether a snapshot record passes the tag, field and time filters (connection, module
    and status are the caller's)."""
    if not all(has_tag(data, tag) for tag in filters.tags):
        return False
    if not all(field_equals(data, key, value) for key, value in filters.fields):
        return False
    if filters.since is None and filters.until is None:
        return True
    keys = CREATED_KEYS if filters.time_field == "created" else MODIFIED_KEYS
    moment = time_key(first_time(data, keys))
    if moment is None:
        return False
    if filters.since is not None and moment < filters.since:
        return False
    return filters.until is None or moment < filters.until
