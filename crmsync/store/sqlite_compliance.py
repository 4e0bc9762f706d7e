"""The aggregates ``crmsync compliance report`` reads from the SQLite store (mixed into
SQLiteStore): a handful of rows each, however big the mirror or the audit log.

The conditions counted over the mirror are the purge planner's own SQL
(:func:`crmsync.compliance.purge.conditions`), so the report and ``crmsync purge`` agree on
what is due, held or restricted; this mixin only sums them, one pass per module.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from crmsync.compliance.report.model import AuditGroup, ErasedRef, RestrictedGroup
from crmsync.store.sqlite_report import ReportStoreMixin

# mark_restricted writes "<basis>: <kind>[ <hold id>][ until <ISO time>]"; grouping by the
# text before " until " keeps one group per hold or floor instead of one per record.
_UNTIL = "instr(restricted_reason, ' until ')"
_REASON = f"CASE WHEN {_UNTIL} > 0 THEN substr(restricted_reason, 1, {_UNTIL} - 1)" \
    " ELSE restricted_reason END"  # fmt: skip
_ENDS = f"CASE WHEN {_UNTIL} > 0 THEN substr(restricted_reason, {_UNTIL} + 7) END"


class ComplianceStoreMixin:
    """Compliance report aggregates for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    def bulk_reads(self) -> AbstractContextManager[Any]:
        return ReportStoreMixin._scanning(self)  # type: ignore[arg-type]

    def mirror_condition_counts(
        self, connection: str, module: str, conditions: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        if not conditions:
            return []
        sums = ", ".join(f"coalesce(sum(({sql}) != 0), 0)" for sql, _ in conditions)
        params = [p for _, ps in conditions for p in ps]
        # a whole module is read: without memory-mapped reads, as crmsync report reads it
        # (mapped pages would count as the process's resident memory, the mirror's size)
        with self.bulk_reads() as db:
            row = db.execute(
                f"SELECT {sums} FROM mirror WHERE connection = ? AND module = ?"
                " AND crm_deleted_at IS NULL",
                [*params, connection, module],
            ).fetchone()
        return [int(n) for n in row]

    def restricted_groups(self, connection: str, module: str, limit: int) -> list[RestrictedGroup]:
        rows = self._db.execute(
            f"SELECT {_REASON} AS reason, count(*), min(restricted_at), max({_ENDS}),"
            f" count({_ENDS}) FROM mirror WHERE connection = ? AND module = ?"
            " AND restricted_at IS NOT NULL AND crm_deleted_at IS NULL"
            " GROUP BY reason ORDER BY count(*) DESC, reason LIMIT ?",
            (connection, module, limit),
        ).fetchall()
        # a group where some reasons have no end (a hold without expiry) has no end
        return [
            RestrictedGroup(reason or "", n, since, until if ended == n else None)
            for reason, n, since, until, ended in rows
        ]

    def audit_groups(
        self, actions: Sequence[str], since: str, until: str, connection: str | None = None
    ) -> list[AuditGroup]:
        marks = ", ".join("?" * len(actions))
        where = f"action IN ({marks}) AND time >= ? AND time < ?"
        params: list[Any] = [*actions, since, until]
        if connection is not None:
            where += " AND connection = ?"
            params.append(connection)
        rows = self._db.execute(
            "SELECT action, plan_id, connection, module, operator, outcome,"
            " json_extract(detail, '$.basis') AS basis, count(*), min(time), max(time)"
            f" FROM audit_log WHERE {where}"
            " GROUP BY action, plan_id, connection, module, operator, outcome, basis"
            " ORDER BY min(time), plan_id, action, connection, module",
            params,
        ).fetchall()
        return [AuditGroup(*row) for row in rows]

    def open_plan_ids(self, kinds: Sequence[str], limit: int) -> tuple[list[str], int]:
        marks = ", ".join("?" * len(kinds))
        where = f"kind IN ({marks}) AND status IN ('planned', 'applying')"
        total = self._db.execute(f"SELECT count(*) FROM plans WHERE {where}", list(kinds))
        rows = self._db.execute(
            f"SELECT id FROM plans WHERE {where} ORDER BY created_at, id LIMIT ?",
            [*kinds, limit],
        ).fetchall()
        return [r[0] for r in rows], int(total.fetchone()[0])

    def erased_refs(
        self, since: str, until: str, limit: int, connection: str | None = None
    ) -> tuple[list[ErasedRef], int]:
        where = "action = 'erase' AND outcome = 'ok' AND time >= ? AND time < ?"
        params: list[Any] = [since, until]
        if connection is not None:
            where += " AND connection = ?"
            params.append(connection)
        total = self._db.execute(f"SELECT count(*) FROM audit_log WHERE {where}", params)
        rows = self._db.execute(
            "SELECT time, plan_id, connection, module, record_ref FROM audit_log"
            f" WHERE {where} ORDER BY seq LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [ErasedRef(*row) for row in rows], int(total.fetchone()[0])
