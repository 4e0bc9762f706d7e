"""What changed in the mirror since a snapshot (store schema 9): an incremental snapshot
reads these rows instead of the whole mirror (crmsync.snapshots.source.snapshot_mirror)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from crmsync.store.base import ChangePoint, MirrorChange, SnapshotMark


class SnapshotMarkStoreMixin:
    _db: sqlite3.Connection

    def begin_snapshot_changes(self) -> ChangePoint:
        with self._tx() as db:  # type: ignore[attr-defined]
            # Writes before this transaction carry a generation below ``gen``, writes after it
            # ``gen`` or above: the next snapshot from this point reads the latter only.
            gen = db.execute("SELECT n FROM mirror_generation").fetchone()[0] + 1
            db.execute("UPDATE mirror_generation SET n = ?", (gen,))
            max_rowid = db.execute("SELECT coalesce(max(rowid), 0) FROM mirror").fetchone()[0]
        return ChangePoint(gen, max_rowid)

    def snapshot_mark(
        self, connection: str, modules: Sequence[str], repository: str
    ) -> SnapshotMark | None:
        row = self._db.execute(
            "SELECT snapshot_id, indexes, gen, max_rowid FROM snapshot_marks"
            " WHERE connection = ? AND modules = ? AND repository = ?",
            (connection, json.dumps(sorted(modules)), repository),
        ).fetchone()
        if row is None:
            return None
        return SnapshotMark(
            connection, tuple(sorted(modules)), repository, row[0],
            tuple(json.loads(row[1])), ChangePoint(row[2], row[3]),
        )  # fmt: skip

    def put_snapshot_mark(self, mark: SnapshotMark) -> None:
        with self._tx() as db:  # type: ignore[attr-defined]
            db.execute(
                "INSERT OR REPLACE INTO snapshot_marks (connection, modules, repository,"
                " snapshot_id, indexes, gen, max_rowid) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    mark.connection, json.dumps(sorted(mark.modules)), mark.repository,
                    mark.snapshot_id, json.dumps(sorted(mark.indexes)), mark.since.gen,
                    mark.since.max_rowid,
                ),
            )  # fmt: skip

    def drop_snapshot_marks(self, connection: str | None = None) -> None:
        with self._tx() as db:  # type: ignore[attr-defined]
            if connection is None:
                db.execute("DELETE FROM snapshot_marks")
            else:
                db.execute("DELETE FROM snapshot_marks WHERE connection = ?", (connection,))

    def iter_changed_record_texts(
        self, connection: str, module: str, since: ChangePoint, *, batch: int = 1000
    ) -> Iterator[MirrorChange]:
        # Two index ranges (the change stamp, the rowids inserted since), one sorted stream:
        # SQLite's sorter spills to disk, so memory stays a batch however much changed. One
        # statement, one read transaction: a consistent view of the changes.
        cur = self._db.execute(
            "SELECT record_id, data, content_hash, crm_deleted_at IS NOT NULL FROM mirror"
            " WHERE connection = ? AND module = ? AND change_gen >= ?"
            " UNION ALL"
            " SELECT record_id, data, content_hash, crm_deleted_at IS NOT NULL FROM mirror"
            " WHERE rowid > ? AND connection = ? AND module = ?"
            " AND (change_gen IS NULL OR change_gen < ?)"
            " ORDER BY 1",
            (connection, module, since.gen, since.max_rowid, connection, module, since.gen),
        )
        try:
            while rows := cur.fetchmany(batch):
                for rid, text, digest, deleted in rows:
                    yield MirrorChange(rid, None if deleted else text, digest, bool(deleted))
        finally:
            cur.close()
