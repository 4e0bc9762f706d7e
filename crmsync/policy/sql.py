"""Compile a policy to one SQL query over the ``mirror`` table.

Semantics (the tests' reference evaluator, ``tests/policy_reference.py``, says the same in
Python, and property tests hold the two together):

**Fields.** ``field = "Name"`` is one top-level key of the record's ``data`` — dots, quotes and
any Unicode are part of the name. ``field = ["Owner", "name"]`` walks nested objects.
``@id``, ``@status`` and ``@modified_at`` are the mirror's columns (record id, lifecycle status
'active'|'archived'|'voided', the CRM's modified time in UTC); ``@@x`` is the data key ``@x``.

**No value.** A key that is missing, a JSON ``null`` and a path through a non-object all mean
"no value". Every condition is then simply true or false — never unknown:

* a field with no value is never equal to, less than, greater than, containing, starting with
  or matching anything, and is never a time: ``eq lt le gt ge in contains startswith regex
  older_than newer_than`` are false;
* ``ne`` and ``not_in`` are the exact negations of ``eq`` and ``in``, so they are *true* for
  a field with no value ("status is not Lost" includes records with no status);
* ``empty`` is true for no value, ``""``, ``[]`` and ``{}``; ``not_empty`` is its negation;
* ``not = {...}`` is the complement of its condition, ``all = []`` is true, ``any = []`` false.

**Types.** Values compare only within their JSON type: numbers numerically (``1 == 1.0``),
strings exactly and case-sensitively by code point, booleans as booleans (``true != 1``,
``"1" != 1``). Arrays and objects equal nothing. ``contains`` is a substring test on a text
field and element membership (with ``eq`` semantics) on an array field.

**Times.** ``older_than = "365d"`` is true when the field's time is strictly before
``now - 365d`` (``newer_than``: strictly after; exactly at the cutoff, neither). Units
s, m (minutes), h, d, w, y (365 d). Without ``field`` it reads ``@modified_at``. A time is a
text value: the mirror's forms ``YYYY-MM-DDTHH:MM:SSZ`` and ``...SS.ffffffZ`` compare to the
microsecond; any other text beginning with ``YYYY-MM-DD`` (offsets, date only, other fractions)
is read by SQLite's date functions, to the millisecond. Anything else is not a time.

**Scope.** :func:`select_sql` adds what the filter does not say: the policy's connection and
module, live records only (``crm_deleted_at IS NULL``), and only the lifecycle statuses the
action applies to (archive: active; void: active, archived; restore: archived, voided).

Field names go into the SQL as JSON-path literals (quoted for SQL and for the JSON path);
values are always bound parameters. Keys a JSON path cannot quote (containing ``"``, ``\\`` or
control characters) are read through ``json_each`` instead.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from functools import lru_cache
from typing import Any

from crmsync.policy import actions, filters
from crmsync.policy.filters import FieldSQL, Scope, SqlParams
from crmsync.policy.model import All, AnyOf, Condition, FieldRef, Filter, Not, Policy

SELECT_COLUMNS = "record_id, modified_at, status, content_hash"


def install_sql_functions(conn: sqlite3.Connection) -> None:
    """Register ``regexp(pattern, text)`` (Python ``re.search``) — needed by the ``regex`` op.

    Whoever runs a compiled policy on a connection must call this first (the store should do
    it when it opens its connection).
    """
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    for name, (nargs, function) in filters.sql_functions.items():
        conn.create_function(name, nargs, function, deterministic=True)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool:
    if pattern is None or not isinstance(value, str):
        return False
    return _compiled(pattern).search(value) is not None


# --------------------------------------------------------------------------- fields


def _sql_literal(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a field name cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"


def path_quotable(key: str) -> bool:
    """Whether a JSON path ``$."key"`` finds ``key`` in canonical JSON across SQLite versions."""
    return not any(c in '"\\' or ord(c) < 0x20 for c in key)


def field_sql(ref: FieldRef) -> FieldSQL:
    """The type and value expressions of a field of the current row (see :class:`FieldSQL`)."""
    if ref.column:
        col = ref.column
        kind = "'text'" if col in ("record_id", "status") else f"iif({col} IS NULL, NULL, 'text')"
        return FieldSQL(kind, col)
    if all(path_quotable(k) for k in ref.path):
        path = _sql_literal("$" + "".join(f'."{k}"' for k in ref.path))
        return FieldSQL(f"json_type(data, {path})", f"json_extract(data, {path})")
    if len(ref.path) == 1:
        key = _sql_literal(ref.path[0])
        sub = "(SELECT {} FROM json_each(data) WHERE key = " + key + ")"
        return FieldSQL(sub.format("type"), sub.format("value"))
    raise ValueError("a nested field path cannot contain quotes, backslashes or control characters")


# --------------------------------------------------------------------------- filters


def compile_filter(node: Filter, now: datetime, scope: Scope | None = None) -> SqlParams:
    """A WHERE expression (always 0 or 1, never NULL) and its parameters."""
    if isinstance(node, Condition):
        op = filters.registry[node.op]
        sql, params = op.scoped_sql(field_sql(node.field), node.value, now, scope)
        return f"coalesce({sql}, 0)", list(params)
    if isinstance(node, Not):
        sql, params = compile_filter(node.item, now, scope)
        return f"NOT {sql}", params
    if isinstance(node, All | AnyOf):
        if not node.items:
            return ("1" if isinstance(node, All) else "0"), []
        joiner = " AND " if isinstance(node, All) else " OR "
        parts, params = [], []
        for item in node.items:
            sql, sub = compile_filter(item, now, scope)
            parts.append(sql)
            params += sub
        return "(" + joiner.join(parts) + ")", params
    raise TypeError(f"not a filter node: {node!r}")


def compile_policy(policy: Policy, now: datetime) -> SqlParams:
    """The policy's filter alone, as ``(sql_where, params)``; :func:`select_sql` scopes it."""
    return compile_filter(policy.filter, now, Scope(policy.connection, policy.module))


def _scope(policy: Policy, now: datetime) -> SqlParams:
    where, params = compile_policy(policy, now)
    scope = "connection = ? AND module = ? AND crm_deleted_at IS NULL"
    scoped: list[Any] = [policy.connection, policy.module]
    statuses = actions.registry[policy.action.type].from_statuses
    if statuses is not None:
        scope += f" AND status IN ({', '.join('?' * len(statuses))})"
        scoped += statuses
    return f"{scope} AND {where}", scoped + params


def select_sql(policy: Policy, now: datetime, columns: str = SELECT_COLUMNS) -> SqlParams:
    """One query: the live records of the policy's connection/module its action would touch."""
    where, params = _scope(policy, now)
    return f"SELECT {columns} FROM mirror WHERE {where} ORDER BY record_id", params


def count_sql(policy: Policy, now: datetime) -> SqlParams:
    """``SELECT count(*)`` of what :func:`select_sql` selects."""
    where, params = _scope(policy, now)
    return f"SELECT count(*) FROM mirror WHERE {where}", params
