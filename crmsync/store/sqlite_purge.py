"""What purging and restricting ask of the SQLite store (mixed into SQLiteStore and its
transaction): compiled queries over the mirror run as given (the conditions are built by
:mod:`crmsync.compliance.purge` from retention rules, holds and policy filters, as
:mod:`crmsync.policy.sql` compiles filters), the hashes snapshots were noted with, and the
restricted / purged marks written with their audit entries."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from crmsync.store.sqlite_holds import CHUNK


class PurgeStoreMixin:
    """Purge reads for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    def mirror_values(
        self, connection: str, module: str, record_ids: Sequence[str], expressions: Sequence[str]
    ) -> dict[str, tuple[Any, ...]]:
        columns = ", ".join(expressions)
        out: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(record_ids), CHUNK):
            chunk = list(record_ids[start : start + CHUNK])
            marks = ", ".join("?" * len(chunk))
            for rid, *values in self._db.execute(
                f"SELECT record_id, {columns} FROM mirror WHERE connection = ? AND module = ?"
                f" AND record_id IN ({marks})",
                [connection, module, *chunk],
            ):
                out[rid] = tuple(values)
        return out

    def query_mirror(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._db.execute(sql, list(params))]

    def snapshot_hashes(
        self, snapshot_id: str, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(record_ids), CHUNK):
            chunk = list(record_ids[start : start + CHUNK])
            marks = ", ".join("?" * len(chunk))
            out.update(
                self._db.execute(
                    "SELECT record_id, hash FROM snapshot_records WHERE snapshot_id = ?"
                    f" AND connection = ? AND module = ? AND record_id IN ({marks})",
                    [snapshot_id, connection, module, *chunk],
                ).fetchall()
            )
        return out


class PurgeTransactionMixin:
    """Restricted and purged marks that join a :meth:`Store.transaction`."""

    _conn: Any  # SQLiteTransaction's: the open connection

    def mark_restricted(
        self, connection: str, module: str, record_id: str, reason: str, at: str
    ) -> None:
        self._conn().execute(
            "UPDATE mirror SET restricted_at = coalesce(restricted_at, ?), restricted_reason = ?"
            " WHERE connection = ? AND module = ? AND record_id = ?",
            (at, reason, connection, module, record_id),
        )

    def mark_purged(self, connection: str, module: str, record_id: str, at: str) -> None:
        self._conn().execute(
            "UPDATE mirror SET status = 'purged', crm_deleted_at = coalesce(crm_deleted_at, ?),"
            " restricted_at = NULL, restricted_reason = NULL"
            " WHERE connection = ? AND module = ? AND record_id = ?",
            (at, connection, module, record_id),
        )
