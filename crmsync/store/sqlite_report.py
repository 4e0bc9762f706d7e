"""The aggregates ``crmsync report`` reads from the SQLite mirror (mixed into SQLiteStore).

Every method is one SQL statement over one module (the status counts: over the whole mirror)
that returns a handful of rows, however large the module: GROUP BY sorts spill to SQLite's
temporary files, never into Python. Fields are read as the policy compiler reads them
(:func:`crmsync.policy.sql.field_sql`, times through
:func:`crmsync.policy.filters.time_key_sql`), so a report and a policy agree on what a value
and a time are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from crmsync.policy.duplicates import SQL_FUNCTION as DUPKEY
from crmsync.policy.filters import FieldSQL, time_key_sql
from crmsync.policy.model import FieldRef
from crmsync.policy.sql import field_sql
from crmsync.report.model import (
    DuplicateCounts,
    ProfileCounts,
    ReportScope,
    StatusCount,
    ValueCount,
    ValueCounts,
)

# Whitespace a blank text may hold: space, tab, newlines, ideographic (full-width) space.
_BLANKS = "' ' || char(9, 10, 13, 12288)"


def _field(name: str) -> FieldSQL:
    return field_sql(FieldRef.parse(name))


def _scope_sql(scope: ReportScope) -> tuple[str, list[Any]]:
    marks = ", ".join("?" * len(scope.statuses))
    return (
        f"connection = ? AND module = ? AND crm_deleted_at IS NULL AND status IN ({marks})",
        [scope.connection, scope.module, *scope.statuses],
    )


def _empty_sql(f: FieldSQL) -> str:
    """1 when the field has no value: missing, null, blank text, [] or {}; else 0."""
    return (
        f"(CASE WHEN {f.t} IS NULL OR {f.t} = 'null' THEN 1"
        f" WHEN {f.t} = 'text' THEN trim({f.v}, {_BLANKS}) = ''"
        f" WHEN {f.t} = 'array' THEN {f.v} = '[]'"
        f" WHEN {f.t} = 'object' THEN {f.v} = '{{}}' ELSE 0 END)"
    )


class ReportStoreMixin:
    """Report aggregates for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    def report_status_counts(
        self, connection: str | None = None, module: str | None = None
    ) -> list[StatusCount]:
        where, args = [], []
        for column, value in (("connection", connection), ("module", module)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (
            "SELECT connection, module, status, crm_deleted_at IS NOT NULL, count(*)"
            " FROM mirror"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        return [StatusCount(c, m, s, bool(d), n) for c, m, s, d, n in self._db.execute(sql, args)]

    def report_profile(
        self,
        scope: ReportScope,
        *,
        time_fields: Sequence[str],
        cutoffs: Sequence[str],
        fields: Sequence[str],
    ) -> ProfileCounts:
        keys = [time_key_sql(_field(name)) for name in time_fields]
        tk = keys[0] if len(keys) == 1 else f"coalesce({', '.join(keys)})"
        columns = [f"{tk} AS tk"] + [
            f"{_empty_sql(_field(name))} AS m{i}" for i, name in enumerate(fields)
        ]
        sums = ["count(*)", "count(tk)"]
        sums += ["coalesce(sum(tk >= ?), 0)" for _ in cutoffs]
        sums += [f"coalesce(sum(m{i}), 0)" for i in range(len(fields))]
        where, args = _scope_sql(scope)
        rows = f"SELECT {', '.join(columns)} FROM mirror WHERE {where}"
        sql = f"SELECT {', '.join(sums)} FROM ({rows})"
        row = self._db.execute(sql, [*cutoffs, *args]).fetchone()
        n_cut = len(cutoffs)
        return ProfileCounts(
            records=row[0],
            timed=row[1],
            since=tuple(row[2 : 2 + n_cut]),
            missing={name: row[2 + n_cut + i] for i, name in enumerate(fields)},
        )

    def report_values(self, scope: ReportScope, field: str, *, limit: int) -> ValueCounts:
        f = _field(field)
        where, args = _scope_sql(scope)
        # Each record gives its array's elements, or its one value; no value (and a blank
        # text, an empty array or object) is one NULL, listed first whatever its count. An
        # object (a lookup such as Zoho's {"name": .., "id": ..}) counts by its name.
        items = (
            "CASE WHEN t = 'array' AND v <> '[]' THEN v"
            " WHEN t = 'object' AND v <> '{}' THEN json_array(json(v))"
            " WHEN t IS NULL OR t IN ('null', 'array', 'object')"
            f" OR trim(v, {_BLANKS}) = '' THEN '[null]'"
            " ELSE json_array(v) END"
        )
        element = (
            "CASE WHEN j.type = 'object' THEN coalesce(json_extract(j.value, '$.name'), j.value)"
            f" WHEN trim(j.value, {_BLANKS}) = '' THEN NULL ELSE j.value END"
        )
        sql = (
            "SELECT value, n, count(*) OVER (), sum(n) OVER () FROM ("
            f"SELECT {element} AS value, count(*) AS n"
            f" FROM (SELECT {f.t} AS t, {f.v} AS v FROM mirror WHERE {where}) AS m,"
            f" json_each({items}) AS j GROUP BY 1)"
            " ORDER BY value IS NULL DESC, n DESC, value LIMIT ?"
        )
        rows = self._db.execute(sql, [*args, limit + 1]).fetchall()
        if not rows:
            return ValueCounts(top=(), none=0, distinct=0, total=0)
        none = rows[0][1] if rows[0][0] is None else 0
        values = [ValueCount(v, n) for v, n, _, _ in rows if v is not None][:limit]
        return ValueCounts(
            top=tuple(values),
            none=none,
            distinct=rows[0][2] - (1 if none else 0),
            total=rows[0][3],
        )

    def report_duplicates(
        self, scope: ReportScope, field: str, mode: str, *, limit: int
    ) -> DuplicateCounts:
        f = _field(field)
        where, args = _scope_sql(scope)
        sql = (
            "SELECT k, n, count(*) OVER (), sum(n) OVER () FROM ("
            f"SELECT k, count(*) AS n FROM (SELECT {DUPKEY}(?, {f.t}, {f.v}) AS k"
            f" FROM mirror WHERE {where}) WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1)"
            " ORDER BY n DESC, k LIMIT ?"
        )
        rows = self._db.execute(sql, [mode, *args, max(limit, 1)]).fetchall()
        if not rows:
            return DuplicateCounts(clusters=0, records=0, largest=())
        return DuplicateCounts(
            clusters=rows[0][2],
            records=rows[0][3],
            largest=tuple(ValueCount(k, n) for k, n, _, _ in rows[:limit]),
        )
