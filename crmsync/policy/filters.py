"""The filter-op registry: every ``op`` a condition can use, with its value schema, its
meaning check and its SQL.

An op receives a :class:`FieldSQL` — two SQL expressions for the field: ``t`` (the JSON type,
as ``json_type`` names it: NULL when missing, 'null', 'true', 'false', 'integer', 'real',
'text', 'array', 'object') and ``v`` (the SQL value, as ``json_extract`` returns it) — and
returns ``(sql, params)``. The compiler wraps every condition in ``coalesce(..., 0)``, so an op
may yield NULL for "no value" and still never makes ``not`` three-valued. The meaning of each
op is written down in :mod:`crmsync.policy.sql`; the tests hold a Python reference of it.

A plugin adds an op like this (and the tests do exactly that)::

    from crmsync.policy.filters import FieldSQL, FilterOp, registry

    @registry.register("longer_than")
    class LongerThan(FilterOp):
        value_schema = {"type": "integer", "minimum": 0}

        def to_sql(self, f: FieldSQL, value, now):
            return f"({f.t} = 'text' AND length({f.v}) > ?)", [value]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.policy.model import (
    DURATION_PATTERN,
    LIFECYCLE_STATUSES,
    FieldRef,
    Registry,
    parse_duration,
)

SqlParams = tuple[str, list[Any]]

NUMBER_TYPES = "('integer', 'real')"
SCALAR_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}


@dataclass(frozen=True)
class FieldSQL:
    """SQL expressions for one field of the current ``mirror`` row (no parameters inside)."""

    t: str
    v: str


@dataclass(frozen=True)
class Prefilter:
    """A plain comparison of a field's value expression (``v``) with bound values, which an
    index on that expression can serve: ``v = ?``, ``v IN (?, ...)``, ``v < ?`` and so on.

    It is a *superset* of its condition (every row the condition selects satisfies it), so
    ANDing it next to the exact SQL never changes a result. ``exact`` says it is also a subset
    — it *is* the condition wherever NULL and false mean the same (the top level of a WHERE),
    so the compiler may emit it alone. ``kind`` is 'eq' (equality or IN: an index column any
    later column can follow) or 'range'.
    """

    sql: str
    params: list[Any]
    exact: bool
    kind: str


@dataclass(frozen=True)
class Scope:
    """The connection and module a policy's query reads: for ops whose SQL reads other rows."""

    connection: str
    module: str


# SQL functions ops use: name -> (number of arguments, function); install_sql_functions adds them.
sql_functions: dict[str, tuple[int, Callable[..., Any]]] = {}


class FilterOp:
    """Base class of every op. ``value_schema`` None means the op takes no ``value``.

    A ``standalone`` op is written as its own table, ``{ <name> = ..., <options> }``, not as
    ``{field, op, value}``: its value is that whole table (``value_schema`` describes it), its
    field is ``@id``, ``field_specs(value)`` names the fields inside it (checked like ``field``).
    """

    name: str = ""
    value_schema: dict[str, Any] | None = SCALAR_SCHEMA
    standalone: bool = False

    def field_specs(self, value: Any) -> dict[str, Any]:
        """Standalone ops: key path under the condition -> field spec it holds."""
        return {}

    def table_problems(self, value: Any) -> list[tuple[str, str]]:
        """Standalone ops: (key path under the condition, message) for each problem of meaning."""
        return []

    def scoped_sql(self, f: FieldSQL, value: Any, now: datetime, scope: Scope | None) -> SqlParams:
        """:meth:`to_sql`, told the policy's scope (None outside a policy); override to use it."""
        return self.to_sql(f, value, now)

    def validate(self, value: Any, field: FieldRef) -> str | None:
        """A message when ``value`` is well-formed but meaningless; None when fine."""
        if isinstance(value, float) and not math.isfinite(value):
            return "value must be a finite number"
        if field.column == "status":
            values = value if isinstance(value, list) else [value]
            bad = [x for x in values if isinstance(x, str) and x not in LIFECYCLE_STATUSES]
            if bad and self.name in ("eq", "ne", "in", "not_in"):
                return f"@status is one of {', '.join(LIFECYCLE_STATUSES)}; got {bad[0]!r}"
        return None

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        raise NotImplementedError

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        """An index-friendly superset of this condition on the value expression ``v``
        (see :class:`Prefilter`), or None (the default: no index can help)."""
        return None


registry: Registry[FilterOp] = Registry("filter op")
register = registry.register


def value_is_type_exact(value: Any) -> bool:
    """Whether ``v = value`` alone already implies that the field has ``value``'s JSON type.

    ``json_extract`` gives text for a JSON string and also for an array or object (their JSON,
    which starts with '[' or '{'), 1/0 for true/false, and a number for a number; SQL compares
    text only with text and numbers only with numbers. So equality alone is type-exact for a
    string not starting with '[' or '{' and for a number other than 0 and 1.
    """
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return not value.startswith(("[", "{"))
    return value not in (0, 1)


def scalar_eq(f: FieldSQL, value: Any) -> SqlParams:
    """The field holds a value of ``value``'s JSON type that equals it (1 == 1.0; true != 1)."""
    if isinstance(value, bool):
        return f"{f.t} = '{'true' if value else 'false'}'", []
    if value_is_type_exact(value):  # no json_type: one JSON parse less per row
        return f"{f.v} = ?", [value]
    if isinstance(value, str):
        return f"({f.v} = ? AND {f.t} = 'text')", [value]
    return f"({f.v} = ? AND {f.t} IN {NUMBER_TYPES})", [value]


def _as_sql_value(value: Any) -> Any:
    """What ``json_extract`` gives for a JSON scalar equal to ``value`` (true -> 1)."""
    return int(value) if isinstance(value, bool) else value


@register("eq")
class Eq(FilterOp):
    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return scalar_eq(f, value)

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        return Prefilter(f"{v} = ?", [_as_sql_value(value)], value_is_type_exact(value), "eq")


@register("ne")
class Ne(FilterOp):
    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        sql, params = scalar_eq(f, value)
        return f"NOT coalesce({sql}, 0)", params


@register("in")
class In(FilterOp):
    value_schema = {"type": "array", "items": SCALAR_SCHEMA, "minItems": 1}

    def validate(self, value: Any, field: FieldRef) -> str | None:
        for item in value:
            problem = super().validate(item, field)
            if problem:
                return problem
        return None

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        strings = [x for x in value if isinstance(x, str)]
        numbers = [x for x in value if isinstance(x, int | float) and not isinstance(x, bool)]
        bools = sorted({"true" if x else "false" for x in value if isinstance(x, bool)})
        parts, params = [], []
        if strings and all(map(value_is_type_exact, strings)):
            parts.append(f"{f.v} IN ({', '.join('?' * len(strings))})")
            params += strings
        elif strings:
            parts.append(f"({f.v} IN ({', '.join('?' * len(strings))}) AND {f.t} = 'text')")
            params += strings
        if numbers:
            marks = ", ".join("?" * len(numbers))
            parts.append(f"({f.v} IN ({marks}) AND {f.t} IN {NUMBER_TYPES})")
            params += numbers
        if bools:
            parts.append(f"{f.t} IN ({', '.join(repr(b) for b in bools)})")
        return "(" + " OR ".join(parts) + ")", params

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        values = list(dict.fromkeys(_as_sql_value(x) for x in value))
        exact = all(map(value_is_type_exact, value))
        return Prefilter(f"{v} IN ({', '.join('?' * len(values))})", values, exact, "eq")


@register("not_in")
class NotIn(In):
    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        sql, params = super().to_sql(f, value, now)
        return f"NOT coalesce({sql}, 0)", params

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        return None  # a negation: no range of values holds what it selects


class _Compare(FilterOp):
    """Numbers numerically, strings by code point (UTF-8 byte order); never across types."""

    value_schema = {"type": ["number", "string"]}
    sql_op = "<"

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        kind = "= 'text'" if isinstance(value, str) else f"IN {NUMBER_TYPES}"
        return f"({f.v} {self.sql_op} ? AND {f.t} {kind})", [value]

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        # Not exact: SQL orders every number before every text (and true/false are 1/0).
        return Prefilter(f"{v} {self.sql_op} ?", [value], False, "range")


@register("lt")
class Lt(_Compare):
    sql_op = "<"


@register("le")
class Le(_Compare):
    sql_op = "<="


@register("gt")
class Gt(_Compare):
    sql_op = ">"


@register("ge")
class Ge(_Compare):
    sql_op = ">="


@register("contains")
class Contains(FilterOp):
    """Substring of a text field, or (any value type) an element of an array field."""

    def validate(self, value: Any, field: FieldRef) -> str | None:
        if value == "":
            return "an empty string is contained in every text; use not_empty"
        return super().validate(value, field)

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        member, params = scalar_eq(FieldSQL("e.type", "e.value"), value)
        in_array = f"EXISTS (SELECT 1 FROM json_each({f.v}) AS e WHERE {member})"
        if isinstance(value, str):
            sql = (
                f"CASE {f.t} WHEN 'text' THEN instr({f.v}, ?) > 0 WHEN 'array' THEN {in_array} END"
            )
            return sql, [value, *params]
        # CASE, not AND: SQLite may evaluate both sides of AND, and json_each fails on text.
        return f"CASE WHEN {f.t} = 'array' THEN {in_array} END", params


@register("startswith")
class StartsWith(FilterOp):
    value_schema = {"type": "string", "minLength": 1}

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        # substr counts characters, as Python does; no length() on data (it stops at NUL).
        return f"(substr({f.v}, 1, ?) = ? AND {f.t} = 'text')", [len(value), value]


@register("regex")
class Regex(FilterOp):
    """Python ``re.search`` on text fields, via the ``regexp`` SQL function
    (:func:`crmsync.policy.sql.install_sql_functions` must have been called on the connection).
    """

    value_schema = {"type": "string", "minLength": 1}

    def validate(self, value: Any, field: FieldRef) -> str | None:
        try:
            re.compile(value)
        except re.error as exc:
            return f"not a valid regular expression: {exc}"
        return None

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return f"({f.t} = 'text' AND regexp(?, {f.v}))", [value]


def empty_sql(f: FieldSQL) -> str:
    return (
        f"({f.t} IS NULL OR {f.t} = 'null' OR ({f.t} = 'text' AND {f.v} = '')"
        f" OR ({f.t} = 'array' AND {f.v} = '[]') OR ({f.t} = 'object' AND {f.v} = '{{}}'))"
    )


@register("empty")
class Empty(FilterOp):
    """Missing, null, "", [] or {}. (A string of spaces is not empty.)"""

    value_schema = None

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return empty_sql(f), []


@register("not_empty")
class NotEmpty(FilterOp):
    value_schema = None

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return f"NOT {empty_sql(f)}", []


# --------------------------------------------------------------------------- time

_D = "[0-9]"
_DATE = f"{_D * 4}-{_D * 2}-{_D * 2}"
_SECONDS_Z = f"{_DATE}T{_D * 2}:{_D * 2}:{_D * 2}Z"
_MICROS_Z = f"{_DATE}T{_D * 2}:{_D * 2}:{_D * 2}.{_D * 6}Z"


def time_key_sql(f: FieldSQL) -> str:
    """A text that sorts as the time does: 'YYYY-MM-DDTHH:MM:SS.ffffff' in UTC, or NULL.

    The mirror's own forms ('...SSZ' and '...SS.ffffffZ') are rewritten exactly; any other text
    that starts with a date (offsets, other fractions, date only) goes through SQLite's
    ``strftime`` and so counts to the millisecond. Numbers and other text are not times.
    """
    # No json_type check (one JSON parse less per row): only text can match these patterns —
    # a number's text has no '-' after four digits, an array's or object's JSON starts with
    # '[' or '{', and true/false are 1/0.
    v = f.v
    return (
        f"CASE WHEN {v} GLOB '{_SECONDS_Z}' THEN substr({v}, 1, 19) || '.000000'"
        f" WHEN {v} GLOB '{_MICROS_Z}' THEN substr({v}, 1, 26)"
        f" WHEN {v} GLOB '{_DATE}*' THEN strftime('%Y-%m-%dT%H:%M:%f', {v}) || '000'"
        " END"
    )


def cutoff_moment(now: datetime, duration: str) -> datetime:
    """``now - duration`` in UTC (naive), the earliest time there is if that underflows."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        moment = now.astimezone(UTC) - parse_duration(duration)
    except OverflowError:
        moment = datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=None)


def cutoff(now: datetime, duration: str) -> str:
    """``now - duration`` as a time key (see :func:`time_key_sql`)."""
    return cutoff_moment(now, duration).isoformat(timespec="microseconds")


# How far the time a text means can lie from the date it starts with: an offset moves it by
# at most 14:59 either way, and SQLite's date parser rolls day 31 of a short month and hour 24
# over into later days (at most four more). So a time before the cutoff has a text date before
# cutoff + 2 days, and a time after it a text date from cutoff - 8 days on.
_TEXT_DATE_AFTER = timedelta(days=2)
_TEXT_DATE_BEFORE = timedelta(days=8)


class _Age(FilterOp):
    value_schema = {"type": "string", "pattern": DURATION_PATTERN}
    sql_op = "<"

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return f"({time_key_sql(f)} {self.sql_op} ?)", [cutoff(now, value)]

    def prefilter(self, v: str, value: Any, now: datetime) -> Prefilter | None:
        """A plain text range on the raw value: every time the condition accepts is a text
        starting with 'YYYY-MM-DD', and such texts sort by that date (numbers, which sort
        before all text, may pass too; the exact condition still decides)."""
        moment = cutoff_moment(now, value)
        try:
            if self.sql_op == "<":
                return Prefilter(f"{v} < ?", [_date(moment + _TEXT_DATE_AFTER)], False, "range")
            return Prefilter(f"{v} >= ?", [_date(moment - _TEXT_DATE_BEFORE)], False, "range")
        except OverflowError:
            return None


def _date(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


@register("older_than")
class OlderThan(_Age):
    """The field's time is strictly before ``now - value``."""

    sql_op = "<"


@register("newer_than")
class NewerThan(_Age):
    """The field's time is strictly after ``now - value``."""

    sql_op = ">"
