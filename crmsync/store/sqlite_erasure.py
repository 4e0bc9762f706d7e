"""The SQLite store's part of an erasure (mixed into SQLiteStore and its transaction): find
the person's rows, and remove every local trace.

Finding: one pass over the mirror with the caller's ``candidate`` test (the erasure
:class:`~crmsync.compliance.erasure_match.Matcher`'s) registered as an SQL function over each
row's stored JSON bytes (no row is parsed unless it may match), the same over the legacy
copies (``snapshot_objects``, store versions < 5) and the plan items' details.

Removing, in one write transaction with ``PRAGMA secure_delete`` on (SQLite overwrites deleted
content with zeros instead of leaving it in free pages): the mirror rows (not marked: deleted;
the search index's delete trigger queues their text, and the queue is indexed in the same
transaction, so the contentless FTS index drops them), the details of every plan item that
named the person, the legacy copies, and the earlier audit entries' record ids (the one
update the audit log permits). Afterwards (:meth:`ErasureStoreMixin.scrub`) the search index
is merged ('optimize': deleted tokens are gone from its segments, not only marked), the file
is rebuilt (``VACUUM``: older versions written over without secure_delete) and the WAL is
checkpointed and truncated, so no old page version survives in it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from crmsync.audit.model import record_ref
from crmsync.plans.model import PlanItem
from crmsync.store.base import MirrorRecord, StoreTransaction
from crmsync.store.sqlite_plans import _ITEM_COLUMNS, _item

FUNCTION = "crmsync_erase_candidate"


class ErasureStoreMixin:
    """Erasure for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    def _candidate(self, candidate: Callable[[bytes], bool]) -> None:
        self._db.create_function(FUNCTION, 1, candidate, deterministic=True)

    def mirror_candidates(
        self, candidate: Callable[[bytes], bool], connections: Sequence[str]
    ) -> list[MirrorRecord]:
        if not connections:
            return []
        self._candidate(candidate)
        marks = ", ".join("?" * len(connections))
        rows = self._db.execute(
            "SELECT connection, module, record_id, modified_at, status, data, content_hash,"
            f" crm_deleted_at FROM mirror WHERE connection IN ({marks})"
            f" AND {FUNCTION}(CAST(data AS BLOB))",
            list(connections),
        ).fetchall()  # candidates only: a handful
        return [MirrorRecord(*row[:5], orjson.loads(row[5]), *row[6:]) for row in rows]

    def legacy_candidates(
        self, candidate: Callable[[bytes], bool], connections: Sequence[str]
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        if not connections:
            return []
        self._candidate(candidate)
        marks = ", ".join("?" * len(connections))
        rows = self._db.execute(
            "SELECT r.connection, r.module, r.record_id, o.data FROM snapshot_objects o"
            " JOIN snapshot_records r ON r.hash = o.hash"
            f" WHERE r.connection IN ({marks}) AND {FUNCTION}(CAST(o.data AS BLOB))",
            list(connections),
        ).fetchall()
        return [(conn, module, rid, json.loads(data)) for conn, module, rid, data in rows]

    def plan_detail_candidates(
        self, candidate: Callable[[bytes], bool]
    ) -> list[tuple[str, str, str, str, str, Any]]:
        self._candidate(candidate)
        rows = self._db.execute(
            "SELECT plan_id, policy, connection, module, record_id, detail FROM plan_items"
            f" WHERE detail IS NOT NULL AND {FUNCTION}(CAST(detail AS BLOB))"
        ).fetchall()
        return [(*row[:5], json.loads(row[5])) for row in rows]

    def legacy_copy_count(self, connection: str, module: str, record_id: str) -> int:
        (n,) = self._db.execute(
            "SELECT count(DISTINCT o.hash) FROM snapshot_records r JOIN snapshot_objects o"
            " ON o.hash = r.hash WHERE r.connection = ? AND r.module = ? AND r.record_id = ?",
            (connection, module, record_id),
        ).fetchone()
        return int(n)

    def all_plan_items(self, plan_id: str, policy: str) -> list[PlanItem]:
        rows = self._db.execute(
            f"SELECT {_ITEM_COLUMNS} FROM plan_items WHERE plan_id = ? AND policy = ?"
            " ORDER BY record_id",
            (plan_id, policy),
        )
        return [_item(row) for row in rows]

    def erase_records(
        self,
        refs: Sequence[tuple[str, str, str]],
        keep_plan: str,
        details: Sequence[Sequence[str]] = (),
        finish: Callable[[StoreTransaction], None] | None = None,
    ) -> dict[str, int]:
        from crmsync.store.sqlite import SQLiteTransaction
        from crmsync.store.sqlite_search import SearchStoreMixin

        db = self._db
        counts = {"mirror": 0, "plan_details": 0, "legacy_copies": 0, "audit_redacted": 0}
        db.execute("PRAGMA secure_delete = ON")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for conn, module, rid in refs:
                    where = (conn, module, rid)
                    counts["mirror"] += db.execute(
                        "DELETE FROM mirror WHERE connection = ? AND module = ? AND record_id = ?",
                        where,
                    ).rowcount
                    counts["plan_details"] += db.execute(
                        "UPDATE plan_items SET detail = NULL WHERE connection = ? AND module = ?"
                        " AND record_id = ? AND detail IS NOT NULL AND plan_id != ?",
                        (*where, keep_plan),
                    ).rowcount
                    for (digest,) in db.execute(
                        "SELECT DISTINCT hash FROM snapshot_records WHERE connection = ?"
                        " AND module = ? AND record_id = ?",
                        where,
                    ).fetchall():
                        counts["legacy_copies"] += db.execute(
                            "DELETE FROM snapshot_objects WHERE hash = ?", (digest,)
                        ).rowcount
                    db.execute(
                        "DELETE FROM snapshot_records WHERE connection = ? AND module = ?"
                        " AND record_id = ?",
                        where,
                    )
                    counts["audit_redacted"] += db.execute(
                        "UPDATE audit_log SET record_id = NULL WHERE record_ref = ?"
                        " AND record_id = ? AND connection = ?",
                        (record_ref(rid), rid, conn),
                    ).rowcount
                for plan_id, policy, rid in details:  # other records' details quoting them
                    counts["plan_details"] += db.execute(
                        "UPDATE plan_items SET detail = NULL WHERE plan_id = ? AND policy = ?"
                        " AND record_id = ?",
                        (plan_id, policy, rid),
                    ).rowcount
                SearchStoreMixin.index_pending(db)  # the deleted rows leave the search index
                if finish is not None:
                    tx = SQLiteTransaction(db)
                    try:
                        finish(tx)
                    finally:
                        tx._db = None
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.execute("PRAGMA secure_delete = OFF")
        return counts

    def scrub(self) -> dict[str, int]:
        db = self._db
        db.execute("PRAGMA secure_delete = ON")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO mirror_fts (mirror_fts) VALUES ('optimize')")
                # VACUUM may renumber the mirror's rowids, which snapshot marks count new rows
                # by (schema 9): the next snapshot of each connection reads the whole mirror.
                db.execute("DELETE FROM snapshot_marks")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            db.execute("VACUUM")
        finally:
            db.execute("PRAGMA secure_delete = OFF")
        busy, log, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return {"busy": int(busy), "log": int(log), "checkpointed": int(done)}


class ErasureTransactionMixin:
    """Erasure writes that join a :meth:`Store.transaction`."""

    _conn: Any  # SQLiteTransaction's: the open connection

    def insert_plan_items(self, items: Sequence[PlanItem]) -> None:
        self._conn().executemany(
            "INSERT INTO plan_items (plan_id, policy, connection, module, record_id,"
            " planned_modified_at, planned_hash, before_status, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i.plan_id, i.policy, i.connection, i.module, i.record_id,
                 i.planned_modified_at, i.planned_hash, i.before_status,
                 None if i.detail is None else orjson.dumps(i.detail).decode())
                for i in items
            ],
        )  # fmt: skip

    def clear_audit_record_id(self, seq: int) -> None:
        self._conn().execute("UPDATE audit_log SET record_id = NULL WHERE seq = ?", (seq,))
