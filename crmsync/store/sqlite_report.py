"""The aggregates ``crmsync report`` reads from the SQLite mirror (mixed into SQLiteStore).

:meth:`ReportStoreMixin.report_module` reads a module's records **once**: one INSERT ..
SELECT copies what the report needs of each record in use (its time key, a 0/1 per key field
with no value, each category field's value, each duplicate key) into a narrow temporary
table, parsing each record's JSON once; the counts then come from GROUP BYs over that table.
A scan per figure would parse every record again for each (~4 us a record per scan). The
temporary table lives in SQLite's temp file, and GROUP BY sorts spill to temporary files, so
memory stays SQLite's page cache whatever the size of the module; each query returns a
handful of rows.

Fields are read as the policy compiler reads them (:func:`crmsync.policy.sql.field_sql`, times
through :func:`crmsync.policy.filters.time_key_sql`, duplicate keys through the
``crmsync_dupkey`` SQL function), so a report and a policy agree on what a value, a time and a
duplicate are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crmsync.policy.duplicates import SQL_FUNCTION as DUPKEY
from crmsync.policy.filters import FieldSQL, time_key_sql
from crmsync.policy.model import FieldRef
from crmsync.policy.sql import field_sql
from crmsync.report.model import (
    LIFECYCLE_STATUSES,
    DuplicateCounts,
    ModuleCounts,
    ModuleQuery,
    ModuleStatus,
    ProfileCounts,
    ReportScope,
    ValueCount,
    ValueCounts,
)

TABLE = "temp.crmsync_report"
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


def _missing_sql(f: FieldSQL) -> str:
    """1 when the field has no value: missing, null, blank text, [] or {}; else 0."""
    return (
        f"CASE coalesce({f.t}, 'null') WHEN 'null' THEN 1"
        f" WHEN 'text' THEN trim({f.v}, {_BLANKS}) = ''"
        f" WHEN 'array' THEN {f.v} = '[]' WHEN 'object' THEN {f.v} = '{{}}' ELSE 0 END"
    )


def _value_sql(f: FieldSQL) -> str:
    """A scalar value (an object by its name), NULL for none and for arrays."""
    return (
        f"CASE {f.t} WHEN 'text' THEN iif(trim({f.v}, {_BLANKS}) = '', NULL, {f.v})"
        f" WHEN 'object' THEN iif({f.v} = '{{}}', NULL, coalesce(json_extract({f.v}, '$.name'),"
        f" {f.v})) WHEN 'array' THEN NULL ELSE {f.v} END"
    )


# An array element: objects by name; null and blank elements are no value (skipped).
_ELEMENT = (
    "CASE j.type WHEN 'object' THEN coalesce(json_extract(j.value, '$.name'), j.value)"
    f" WHEN 'text' THEN iif(trim(j.value, {_BLANKS}) = '', NULL, j.value) ELSE j.value END"
)


class ReportStoreMixin:
    """Report aggregates for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    @contextmanager
    def _scanning(self) -> Iterator[sqlite3.Connection]:
        """The connection with memory-mapped reads off: a report reads whole modules in
        order, which read() serves as fast, and mapped pages would count as the process's
        resident memory (the size of the mirror) though they are only the OS's cache."""
        mapped = self._db.execute("PRAGMA mmap_size").fetchone()[0]
        self._db.execute("PRAGMA mmap_size = 0")
        try:
            yield self._db
        finally:
            self._db.execute(f"PRAGMA mmap_size = {int(mapped)}")

    def report_status_counts(
        self, connection: str | None = None, module: str | None = None
    ) -> list[ModuleStatus]:
        # Sums per (connection, module) in primary-key order: no sort of a million rows. A
        # status crmsync does not know (another tool wrote the mirror) gets a second query.
        where, args = [], []
        for column, value in (("connection", connection), ("module", module)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        known = ", ".join(f"'{s}'" for s in LIFECYCLE_STATUSES)
        sums = "".join(f", sum(status = '{s}')" for s in LIFECYCLE_STATUSES)
        sql = (
            f"SELECT connection, module{sums}, sum(status NOT IN ({known})),"
            " sum(crm_deleted_at IS NOT NULL) FROM mirror"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY connection, module ORDER BY connection, module"
        )
        out = []
        with self._scanning() as db:
            for c, m, *counts, other, deleted in db.execute(sql, args).fetchall():
                status = dict(zip(LIFECYCLE_STATUSES, counts, strict=True))
                if other:
                    status.update(
                        db.execute(
                            "SELECT status, count(*) FROM mirror WHERE connection = ?"
                            f" AND module = ? AND status NOT IN ({known}) GROUP BY 1",
                            (c, m),
                        ).fetchall()
                    )
                out.append(ModuleStatus(c, m, status, deleted))
        return out

    def report_module(self, scope: ReportScope, query: ModuleQuery) -> ModuleCounts:
        # Pass 1 copies each field's JSON type and value once (one lookup each, however many
        # figures use the field); the figures are then computed from those columns.
        names = list(dict.fromkeys(
            [*query.missing_fields, *query.category_fields, *(f for f, _ in query.duplicate_keys)]
        ))  # fmt: skip
        col = {name: FieldSQL(f"t{i}", f"v{i}") for i, name in enumerate(names)}
        keys = [time_key_sql(_field(name)) for name in query.time_fields]
        columns = [("tk", keys[0] if len(keys) == 1 else f"coalesce({', '.join(keys)})")]
        for name in names:
            f = _field(name)
            columns += [(col[name].t, f.t), (col[name].v, f.v)]
        where, args = _scope_sql(scope)
        with self._scanning() as db:
            db.execute(f"DROP TABLE IF EXISTS {TABLE}")
            db.execute(f"CREATE TABLE {TABLE} ({', '.join(name for name, _ in columns)})")
            try:
                db.execute(
                    f"INSERT INTO {TABLE} SELECT {', '.join(expr for _, expr in columns)}"
                    f" FROM mirror WHERE {where}",
                    args,
                )
                return ModuleCounts(
                    profile=self._profile(query, [col[n] for n in query.missing_fields]),
                    categories=tuple(
                        self._values(col[n], query.limit) for n in query.category_fields
                    ),
                    duplicates=tuple(
                        self._clusters(col[n], mode, query.limit)
                        for n, mode in query.duplicate_keys
                    ),
                )
            finally:
                db.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def _profile(self, query: ModuleQuery, missing: list[FieldSQL]) -> ProfileCounts:
        sums = ["count(*)", "count(tk)"]
        sums += ["coalesce(sum(tk >= ?), 0)" for _ in query.cutoffs]
        sums += [f"coalesce(sum({_missing_sql(f)}), 0)" for f in missing]
        row = self._db.execute(f"SELECT {', '.join(sums)} FROM {TABLE}", query.cutoffs).fetchone()
        n_cut = len(query.cutoffs)
        return ProfileCounts(
            records=row[0],
            timed=row[1],
            since=tuple(row[2 : 2 + n_cut]),
            missing={name: row[2 + n_cut + i] for i, name in enumerate(query.missing_fields)},
        )

    def _values(self, f: FieldSQL, limit: int) -> ValueCounts:
        # Scalars (NULL: no value, listed first whatever its count), then array elements.
        sql = (
            "SELECT value, n, count(*) OVER (), sum(n) OVER () FROM ("
            "SELECT value, count(*) AS n FROM ("
            f"SELECT {_value_sql(f)} AS value FROM {TABLE} WHERE {f.t} IS NOT 'array'"
            f" OR {f.v} = '[]' UNION ALL SELECT value FROM (SELECT {_ELEMENT} AS value"
            f" FROM {TABLE} AS t, json_each(t.{f.v}) AS j WHERE t.{f.t} = 'array')"
            " WHERE value IS NOT NULL)"
            " GROUP BY value) ORDER BY value IS NULL DESC, n DESC, value LIMIT ?"
        )
        rows = self._db.execute(sql, (limit + 1,)).fetchall()
        if not rows:
            return ValueCounts(top=(), none=0, distinct=0, total=0)
        none = rows[0][1] if rows[0][0] is None else 0
        values = [ValueCount(v, n) for v, n, _, _ in rows if v is not None][:limit]
        return ValueCounts(
            top=tuple(values), none=none, distinct=rows[0][2] - (1 if none else 0), total=rows[0][3]
        )

    def _clusters(self, f: FieldSQL, mode: str, limit: int) -> DuplicateCounts:
        # The key function (Python) runs once per distinct raw value, not once per record:
        # company names repeat (a sort is cheaper than a call); e-mails and phones mostly not.
        sql = (
            "SELECT k, n, count(*) OVER (), sum(n) OVER () FROM ("
            f"SELECT {DUPKEY}(?, t, v) AS k, sum(n) AS n FROM (SELECT {f.t} AS t, {f.v} AS v,"
            f" count(*) AS n FROM {TABLE} GROUP BY 1, 2) GROUP BY 1 HAVING k IS NOT NULL"
            " AND sum(n) > 1) ORDER BY n DESC, k LIMIT ?"
        )
        rows = self._db.execute(sql, (mode, max(limit, 1))).fetchall()
        if not rows:
            return DuplicateCounts(clusters=0, records=0, largest=())
        return DuplicateCounts(
            clusters=rows[0][2],
            records=rows[0][3],
            largest=tuple(ValueCount(k, n) for k, n, _, _ in rows[:limit]),
        )
