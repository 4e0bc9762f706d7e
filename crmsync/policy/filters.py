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
from datetime import UTC, datetime
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


registry: Registry[FilterOp] = Registry("filter op")
register = registry.register


def scalar_eq(f: FieldSQL, value: Any) -> SqlParams:
    """The field holds a value of ``value``'s JSON type that equals it (1 == 1.0; true != 1)."""
    if isinstance(value, bool):
        return f"{f.t} = '{'true' if value else 'false'}'", []
    if isinstance(value, str):
        return f"({f.v} = ? AND {f.t} = 'text')", [value]
    return f"({f.v} = ? AND {f.t} IN {NUMBER_TYPES})", [value]


@register("eq")
class Eq(FilterOp):
    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return scalar_eq(f, value)


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
        if strings:
            parts.append(f"({f.v} IN ({', '.join('?' * len(strings))}) AND {f.t} = 'text')")
            params += strings
        if numbers:
            marks = ", ".join("?" * len(numbers))
            parts.append(f"({f.v} IN ({marks}) AND {f.t} IN {NUMBER_TYPES})")
            params += numbers
        if bools:
            parts.append(f"{f.t} IN ({', '.join(repr(b) for b in bools)})")
        return "(" + " OR ".join(parts) + ")", params


@register("not_in")
class NotIn(In):
    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        sql, params = super().to_sql(f, value, now)
        return f"NOT coalesce({sql}, 0)", params


class _Compare(FilterOp):
    """Numbers numerically, strings by code point (UTF-8 byte order); never across types."""

    value_schema = {"type": ["number", "string"]}
    sql_op = "<"

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        kind = "= 'text'" if isinstance(value, str) else f"IN {NUMBER_TYPES}"
        return f"({f.v} {self.sql_op} ? AND {f.t} {kind})", [value]


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
    v = f.v
    return (
        f"CASE WHEN {f.t} = 'text' THEN CASE"
        f" WHEN {v} GLOB '{_SECONDS_Z}' THEN substr({v}, 1, 19) || '.000000'"
        f" WHEN {v} GLOB '{_MICROS_Z}' THEN substr({v}, 1, 26)"
        f" WHEN {v} GLOB '{_DATE}*' THEN strftime('%Y-%m-%dT%H:%M:%f', {v}) || '000'"
        " END END"
    )


def cutoff(now: datetime, duration: str) -> str:
    """``now - duration`` as a time key (see :func:`time_key_sql`)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        moment = now.astimezone(UTC) - parse_duration(duration)
    except OverflowError:
        moment = datetime.min.replace(tzinfo=UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


class _Age(FilterOp):
    value_schema = {"type": "string", "pattern": DURATION_PATTERN}
    sql_op = "<"

    def to_sql(self, f: FieldSQL, value: Any, now: datetime) -> SqlParams:
        return f"({time_key_sql(f)} {self.sql_op} ?)", [cutoff(now, value)]


@register("older_than")
class OlderThan(_Age):
    """The field's time is strictly before ``now - value``."""

    sql_op = "<"


@register("newer_than")
class NewerThan(_Age):
    """The field's time is strictly after ``now - value``."""

    sql_op = ">"
