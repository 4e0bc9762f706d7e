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
module, live and unrestricted records only (``crm_deleted_at IS NULL``, ``restricted_at IS
NULL``), and only the lifecycle statuses the
action applies to (archive: active; void: active, archived; restore: archived, voided).

Field names go into the SQL as JSON-path literals (quoted for SQL and for the JSON path);
values are always bound parameters. Keys a JSON path cannot quote (containing ``"``, ``\\`` or
control characters) are read through ``json_each`` instead.

**Indexes.** The conditions at the top level of the filter (a bare condition, or the items of
a top-level ``all``, nested ``all`` flattened) that compare a field with values — eq, in, lt,
le, gt, ge, older_than, newer_than — also emit a plain *prefilter* on the bare value
expression (``json_extract(data, '$."Field"') IN (?, ?)``, ``modified_at < ?``), ANDed with the
exact condition; it is a superset of the condition, so no result changes, and SQLite can
serve it from an index on that exact expression. Where the prefilter *is* the condition (eq
or in on strings not starting with '[' or '{', or on numbers other than 0 and 1) it stands
alone, and an index answers the condition without reading the record's JSON.
:func:`index_columns` names the index a policy wants; the store creates it
(``Store.ensure_policy_indexes``). Without it the same query scans the module.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from crmsync.policy import actions, filters
from crmsync.policy.filters import FieldSQL, Prefilter, Scope, SqlParams
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


def json_path_sql(ref: FieldRef) -> str | None:
    """The JSON path of a data field as an SQL literal (``'$."Owner"."name"'``), or None for a
    mirror column or a key a path cannot quote."""
    if ref.column or not all(path_quotable(k) for k in ref.path):
        return None
    return _sql_literal("$" + "".join(f'."{k}"' for k in ref.path))


def field_sql(ref: FieldRef) -> FieldSQL:
    """The type and value expressions of a field of the current row (see :class:`FieldSQL`)."""
    if ref.column:
        col = ref.column
        kind = "'text'" if col in ("record_id", "status") else f"iif({col} IS NULL, NULL, 'text')"
        return FieldSQL(kind, col)
    path = json_path_sql(ref)
    if path is not None:
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


def conjuncts(node: Filter) -> list[Filter]:
    """The filter as items that must all hold: nested top-level ``all`` flattened."""
    if isinstance(node, All):
        return [leaf for item in node.items for leaf in conjuncts(item)]
    return [node]


def prefilter(node: Filter, now: datetime) -> Prefilter | None:
    """The index-friendly superset of a condition (see :class:`~crmsync.policy.filters.Prefilter`)
    when its field is a mirror column or a JSON path (not a ``json_each`` lookup)."""
    if not isinstance(node, Condition):
        return None
    f = field_sql(node.field)
    if not node.field.column and not f.v.startswith("json_extract("):
        return None
    return filters.registry[node.op].prefilter(f.v, node.value, now)


def compile_where(node: Filter, now: datetime, scope: Scope | None = None) -> SqlParams:
    """A complete WHERE expression for ``node`` (true/false, or NULL meaning false) with the
    top-level prefilters (module docstring, "Indexes"); compile_filter gives the exact part."""
    items = conjuncts(node)
    if not items:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    for item in items:
        pre = prefilter(item, now)
        if pre is not None:
            parts.append(pre.sql)
            params += pre.params
            if pre.exact:
                continue
        sql, sub = compile_filter(item, now, scope)
        parts.append(sql)
        params += sub
    return "(" + " AND ".join(parts) + ")", params


def index_columns(policy: Policy, now: datetime | None = None) -> tuple[str, ...] | None:
    """The columns of the index that serves the policy's query, or None when the filter has no
    top-level prefilter (the query then scans the module).

    The value expressions of up to three equality prefilters come first, then connection and
    module, then the first range prefilter's expression (SQLite can use equalities on any
    columns and then one range). Leading with the policy's own values — not with connection,
    module — keeps these indexes out of the way of the queries the (connection, module)
    indexes serve: module totals, keyset pages. A range-only filter gets (range, connection,
    module). SQLite uses an index on an expression only for that very expression, which is why
    the columns come from here, the compiler.
    """
    now = now or datetime.now(UTC)
    eq: list[str] = []
    ranges: list[str] = []
    for item in conjuncts(policy.filter):
        pre = prefilter(item, now)
        if pre is None or not isinstance(item, Condition):
            continue
        expr = field_sql(item.field).v
        if expr == "record_id" or expr in eq or expr in ranges:
            continue  # the primary key already serves record ids
        (eq if pre.kind == "eq" else ranges).append(expr)
    if eq:
        return (*eq[:3], "connection", "module", *ranges[:1])
    if ranges:
        return (ranges[0], "connection", "module")
    return None


def index_name(columns: tuple[str, ...]) -> str:
    """``mirror_f_`` and a digest of the indexed expressions: one index per distinct list."""
    return "mirror_f_" + hashlib.sha256("\x1f".join(columns).encode()).hexdigest()[:16]


def compile_policy(policy: Policy, now: datetime) -> SqlParams:
    """The policy's filter alone, as ``(sql_where, params)``; :func:`select_sql` scopes it."""
    return compile_where(policy.filter, now, Scope(policy.connection, policy.module))


def _scope(policy: Policy, now: datetime) -> SqlParams:
    where, params = compile_policy(policy, now)
    # Restricted records (crmsync.compliance: deletion due but blocked) are out of every
    # policy's reach; only an admin's restore or the purge when the block ends touch them.
    scope = "connection = ? AND module = ? AND crm_deleted_at IS NULL AND restricted_at IS NULL"
    scoped: list[Any] = [policy.connection, policy.module]
    statuses = actions.registry[policy.action.type].from_statuses
    if statuses is not None:
        scope += f" AND status IN ({', '.join('?' * len(statuses))})"
        scoped += statuses
    return f"{scope} AND {where}", scoped + params


def where_sql(policy: Policy, now: datetime) -> SqlParams:
    """The WHERE of :func:`select_sql` (the policy's scope and filter over ``mirror``)."""
    return _scope(policy, now)


def select_sql(
    policy: Policy,
    now: datetime,
    columns: str = SELECT_COLUMNS,
    column_params: Sequence[Any] = (),
) -> SqlParams:
    """One query: the live records of the policy's connection/module its action would touch.
    ``column_params`` are the parameters of ``columns``' placeholders (bound before WHERE's)."""
    where, params = _scope(policy, now)
    # '+record_id': sort the (few) selected rows rather than walk the primary key in order,
    # which would read every record of the module instead of using the policy's index.
    sql = f"SELECT {columns} FROM mirror WHERE {where} ORDER BY +record_id"
    return sql, [*column_params, *params]


def count_sql(policy: Policy, now: datetime) -> SqlParams:
    """``SELECT count(*)`` of what :func:`select_sql` selects."""
    where, params = _scope(policy, now)
    return f"SELECT count(*) FROM mirror WHERE {where}", params
