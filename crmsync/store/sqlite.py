"""SQLite implementation of :class:`~crmsync.store.base.Store` (WAL, file mode 0600)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmsync.audit.model import (
    FIELDS as AUDIT_FIELDS,
)
from crmsync.audit.model import (
    GENESIS_HASH,
    AuditEntry,
    AuditQuery,
    AuditRecord,
    record_ref,
    seal,
)
from crmsync.errors import StoreError
from crmsync.hookspecs import PulledRecord
from crmsync.policy.sql import install_sql_functions
from crmsync.store.base import (
    CursorState,
    MirrorRecord,
    ModuleCount,
    PageStats,
    Run,
    Store,
    StoreTransaction,
    canonical_record,
)
from crmsync.store.migrations import MIGRATIONS, SCHEMA_VERSION
from crmsync.store.sqlite_compliance import ComplianceStoreMixin
from crmsync.store.sqlite_erasure import ErasureStoreMixin, ErasureTransactionMixin
from crmsync.store.sqlite_holds import HoldStoreMixin, HoldTransactionMixin
from crmsync.store.sqlite_plans import PlanStoreMixin, PlanTransactionMixin
from crmsync.store.sqlite_purge import PurgeStoreMixin, PurgeTransactionMixin
from crmsync.store.sqlite_report import ReportStoreMixin
from crmsync.store.sqlite_search import SearchStoreMixin
from crmsync.store.sqlite_snapmarks import SnapshotMarkStoreMixin


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds CRM data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)


_AUDIT_COLUMNS = ", ".join(AUDIT_FIELDS)
_AUDIT_INSERT = (
    f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES ({', '.join('?' * len(AUDIT_FIELDS))})"
)


class SQLiteTransaction(
    HoldTransactionMixin,
    PurgeTransactionMixin,
    ErasureTransactionMixin,
    PlanTransactionMixin,
    StoreTransaction,
):
    """The handle :meth:`SQLiteStore.transaction` yields; dead once the block ends."""

    def __init__(self, db: sqlite3.Connection):
        self._db: sqlite3.Connection | None = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("this store transaction has already ended")
        return self._db

    def append_audit(self, entries: Iterable[AuditEntry]) -> list[AuditRecord]:
        db = self._conn()
        # Read the head inside the transaction: BEGIN IMMEDIATE holds the write lock, so no
        # other process can append between this read and our insert (no forked chain).
        head = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = head if head else (0, GENESIS_HASH)
        now = utcnow()
        sealed = []
        for entry in entries:
            seq += 1
            record = seal(entry, seq=seq, time=now, prev_hash=prev)
            prev = record.hash
            sealed.append(record)
        db.executemany(
            _AUDIT_INSERT, [tuple(getattr(r, name) for name in AUDIT_FIELDS) for r in sealed]
        )
        return sealed

    def set_status(
        self,
        connection: str,
        module: str,
        record_id: str,
        status: str,
        *,
        expected: str | None = None,
        modified_at: str | None = None,
    ) -> bool:
        sql = (
            "UPDATE mirror SET status = ?, updated_at = ?, modified_at = COALESCE(?, modified_at)"
            " WHERE connection = ? AND module = ? AND record_id = ?"
        )
        args: list[Any] = [status, utcnow(), modified_at, connection, module, record_id]
        if expected is not None:
            sql += " AND status = ?"
            args.append(expected)
        return self._conn().execute(sql, args).rowcount > 0


def _audit_record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(*row)


class SQLiteStore(
    PlanStoreMixin,
    ReportStoreMixin,
    SearchStoreMixin,
    ComplianceStoreMixin,
    HoldStoreMixin,
    PurgeStoreMixin,
    ErasureStoreMixin,
    SnapshotMarkStoreMixin,
    Store,
):
    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            _create_private(self.path)
            # SQLite creates the -wal/-shm files with the database file's permissions.
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            # Policy queries read records through indexes, scattered over the mirror: map the
            # file rather than pay a read() per page (1M records: 231 ms -> 135 ms per query).
            # Address space only; the OS pages in what a query touches.
            self._db.execute(f"PRAGMA mmap_size = {1 << 30}")
            install_sql_functions(self._db)  # regexp() and other functions policy filters use
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create store {self.path}: {exc}") from None

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this crmsync "
                f"understands ({SCHEMA_VERSION}); upgrade crmsync"
            )
        for number in range(version, SCHEMA_VERSION):
            # executescript commits implicitly, so wrap each step explicitly.
            script = (
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\n"
                f"PRAGMA user_version={number + 1};\nCOMMIT;"
            )
            try:
                self._db.executescript(script)
            except sqlite3.DatabaseError:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        if self._db.in_transaction:
            raise StoreError("a store transaction is already open (they do not nest)")
        with self._tx() as db:
            tx = SQLiteTransaction(db)
            try:
                yield tx
            finally:
                tx._db = None

    # ------------------------------------------------------------------ audit

    def audit_head(self) -> AuditRecord | None:
        row = self._db.execute(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return _audit_record(row) if row else None

    def iter_audit(self, *, after_seq: int = 0, batch: int = 1000) -> Iterator[AuditRecord]:
        last = after_seq
        while True:
            rows = self._db.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _audit_record(row)
            last = rows[-1][0]

    def find_audit(self, query: AuditQuery) -> list[AuditRecord]:
        where: list[str] = []
        args: list[Any] = []
        if query.record_id is not None:
            # By digest, so entries whose id was redacted are still found.
            where.append("record_ref = ?")
            args.append(record_ref(query.record_id))
        for column in (
            "connection",
            "module",
            "policy",
            "plan_id",
            "run_id",
            "action",
            "operator",
        ):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.outcome is not None:
            # "failed" matches every failed:<code>; "failed:409" only that code.
            if ":" in query.outcome:
                where.append("outcome = ?")
                args.append(query.outcome)
            else:
                where.append("(outcome = ? OR outcome LIKE ?)")
                args += [query.outcome, query.outcome + ":%"]
        if query.since is not None:
            where.append("time >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("time < ?")
            args.append(query.until)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if query.limit is not None:
            sql += " LIMIT ?"
            args.append(query.limit)
        rows = self._db.execute(sql, args).fetchall()
        return [_audit_record(row) for row in reversed(rows)]

    def redact_audit_record(self, record_id: str, connection: str | None = None) -> int:
        # The migration's trigger allows exactly this update (record_id -> NULL, all else kept).
        sql = "UPDATE audit_log SET record_id = NULL WHERE record_ref = ? AND record_id = ?"
        args: list[Any] = [record_ref(record_id), record_id]
        if connection is not None:
            sql += " AND connection = ?"
            args.append(connection)
        with self._tx() as db:
            return db.execute(sql, args).rowcount

    # ------------------------------------------------------------------ runs

    def start_run(self, kind: str, connection: str | None, module: str | None) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (kind, connection, module, started_at, status)"
                " VALUES (?, ?, ?, ?, 'running')",
                (kind, connection, module, utcnow()),
            )
            return int(cur.lastrowid)

    def finish_run(
        self, run_id: int, status: str, summary: Mapping[str, Any], error: str | None = None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ?, error = ? WHERE id = ?",
                (utcnow(), status, json.dumps(summary, sort_keys=True), error, run_id),
            )

    def runs(self, limit: int = 20, kind: str | None = None) -> list[Run]:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        return [
            Run(
                id=r[0],
                kind=r[1],
                connection=r[2],
                module=r[3],
                started_at=r[4],
                finished_at=r[5],
                status=r[6],
                summary=json.loads(r[7] or "{}"),
                error=r[8],
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ cursors

    def cursor(self, connection: str, module: str) -> CursorState | None:
        row = self._db.execute(
            "SELECT cursor, updated_at, last_full_pull_at FROM sync_cursors"
            " WHERE connection = ? AND module = ?",
            (connection, module),
        ).fetchone()
        if row is None:
            return None
        return CursorState(connection, module, row[0], row[1], row[2])

    def _set_cursor(
        self, db: sqlite3.Connection, connection: str, module: str, cursor: str, full_at: str | None
    ) -> None:
        db.execute(
            "INSERT INTO sync_cursors (connection, module, cursor, updated_at, last_full_pull_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (connection, module) DO UPDATE SET cursor = excluded.cursor,"
            " updated_at = excluded.updated_at,"
            " last_full_pull_at = COALESCE(excluded.last_full_pull_at, last_full_pull_at)",
            (connection, module, cursor, utcnow(), full_at),
        )

    # ------------------------------------------------------------------ mirror

    def commit_page(
        self,
        connection: str,
        module: str,
        run_id: int,
        records: Sequence[PulledRecord],
        deleted_ids: Sequence[str] = (),
        checkpoint: str | None = None,
    ) -> PageStats:
        now = utcnow()
        rows: dict[str, tuple[str | None, str | None, str, str]] = {}
        for rec in records:  # a page may repeat a record: the last copy wins
            rows[rec.id] = (rec.modified_at, rec.status, *canonical_record(rec.data))
        with self._tx() as db:
            known = self._known_hashes(db, connection, module, list(rows))
            new, changed, unchanged = [], [], []
            for rid, (modified, status, text, digest) in rows.items():
                old = known.get(rid)
                if old is None:
                    new.append(
                        (connection, module, rid, modified, status, text, digest, now, now, run_id)
                    )
                elif old[0] != digest or old[1] is not None:
                    changed.append(
                        (modified, status, text, digest, now, run_id, connection, module, rid)
                    )
                else:
                    unchanged.append((run_id, connection, module, rid))
            db.executemany(
                "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
                " content_hash, first_seen_at, updated_at, seen_run)"
                " VALUES (?, ?, ?, ?, COALESCE(?, 'active'), ?, ?, ?, ?, ?)",
                new,
            )
            db.executemany(
                # The CRM's status wins when the connector reports one (an archive done in the
                # CRM's own UI shows up here); otherwise crmsync's own record of it stays.
                "UPDATE mirror SET modified_at = ?, status = COALESCE(?, status), data = ?,"
                " content_hash = ?, updated_at = ?,"
                " seen_run = ?, crm_deleted_at = NULL"
                " WHERE connection = ? AND module = ? AND record_id = ?",
                changed,
            )
            db.executemany(
                "UPDATE mirror SET seen_run = ?"
                " WHERE connection = ? AND module = ? AND record_id = ?",
                unchanged,
            )
            deleted = 0
            if deleted_ids:
                cur = db.executemany(
                    "UPDATE mirror SET crm_deleted_at = ? WHERE connection = ? AND module = ?"
                    " AND record_id = ? AND crm_deleted_at IS NULL",
                    [(now, connection, module, str(i)) for i in deleted_ids],
                )
                deleted = cur.rowcount
            if checkpoint is not None:
                self._set_cursor(db, connection, module, checkpoint, None)
            self.index_pending(db)  # the search index, in the page's transaction
        return PageStats(len(new), len(changed), len(unchanged), deleted)

    @staticmethod
    def _known_hashes(
        db: sqlite3.Connection, connection: str, module: str, ids: list[str]
    ) -> dict[str, tuple[str, str | None]]:
        known: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for rid, digest, deleted in db.execute(
                "SELECT record_id, content_hash, crm_deleted_at FROM mirror"
                f" WHERE connection = ? AND module = ? AND record_id IN ({marks})",
                (connection, module, *chunk),
            ):
                known[rid] = (digest, deleted)
        return known

    def finish_pull(
        self, connection: str, module: str, run_id: int, *, full: bool, checkpoint: str | None
    ) -> int:
        now = utcnow()
        marked = 0
        with self._tx() as db:
            if full:
                cur = db.execute(
                    "UPDATE mirror SET crm_deleted_at = ? WHERE connection = ? AND module = ?"
                    " AND crm_deleted_at IS NULL AND (seen_run IS NULL OR seen_run != ?)",
                    (now, connection, module, run_id),
                )
                marked = cur.rowcount
            if checkpoint is not None or full:
                self._set_cursor(db, connection, module, checkpoint, now if full else None)
        return marked

    def _record(self, row: Sequence[Any]) -> MirrorRecord:
        return MirrorRecord(
            connection=row[0],
            module=row[1],
            record_id=row[2],
            modified_at=row[3],
            status=row[4],
            data=json.loads(row[5]),
            content_hash=row[6],
            crm_deleted_at=row[7],
        )

    _COLUMNS = (
        "connection, module, record_id, modified_at, status, data, content_hash, crm_deleted_at"
    )

    def get_record(self, connection: str, module: str, record_id: str) -> MirrorRecord | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM mirror"
            " WHERE connection = ? AND module = ? AND record_id = ?",
            (connection, module, record_id),
        ).fetchone()
        return self._record(row) if row else None

    def iter_records(
        self, connection: str, module: str, *, include_deleted: bool = False, batch: int = 500
    ) -> Iterator[MirrorRecord]:
        # Keyset pages so memory stays bounded and no read transaction is held across yields.
        last = ""
        live = "" if include_deleted else " AND crm_deleted_at IS NULL"
        while True:
            rows = self._db.execute(
                f"SELECT {self._COLUMNS} FROM mirror WHERE connection = ? AND module = ?"
                f" AND record_id > ?{live} ORDER BY record_id LIMIT ?",
                (connection, module, last, batch),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield self._record(row)
            last = rows[-1][2]

    def iter_record_texts(
        self, connection: str, module: str, *, batch: int = 1000, with_text: bool = True
    ) -> Iterator[tuple[str, str | None, str]]:
        # data is stored as canonical JSON and content_hash is its SHA-256: no parsing here.
        data = "data" if with_text else "NULL"
        last = ""
        while True:
            rows = self._db.execute(
                f"SELECT record_id, {data}, content_hash FROM mirror WHERE connection = ?"
                " AND module = ? AND record_id > ? AND crm_deleted_at IS NULL"
                " ORDER BY record_id LIMIT ?",
                (connection, module, last, batch),
            ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def record_texts(
        self, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for start in range(0, len(record_ids), 500):  # SQLite's parameter limit
            chunk = list(record_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for rid, text, digest in self._db.execute(
                "SELECT record_id, data, content_hash FROM mirror WHERE connection = ?"
                f" AND module = ? AND record_id IN ({marks})",
                (connection, module, *chunk),
            ):
                out[rid] = (text, digest)
        return out

    def count(self, connection: str, module: str, *, include_deleted: bool = False) -> int:
        live = "" if include_deleted else " AND crm_deleted_at IS NULL"
        return self._db.execute(
            f"SELECT count(*) FROM mirror WHERE connection = ? AND module = ?{live}",
            (connection, module),
        ).fetchone()[0]

    def module_counts(self, connection: str | None = None) -> list[ModuleCount]:
        sql = (
            "SELECT connection, module, sum(crm_deleted_at IS NULL),"
            " sum(crm_deleted_at IS NOT NULL) FROM mirror"
        )
        args: tuple = ()
        if connection:
            sql += " WHERE connection = ?"
            args = (connection,)
        sql += " GROUP BY connection, module ORDER BY connection, module"
        return [ModuleCount(*row) for row in self._db.execute(sql, args)]

    def lifecycle_counts(self) -> dict[tuple[str, str], dict[str, int]]:
        # sums per (connection, module), in primary-key order: no sort of the mirror
        statuses = ("active", "archived", "voided")
        live = "crm_deleted_at IS NULL"
        sums = "".join(f", sum(status = '{s}' AND {live})" for s in statuses)
        known = ", ".join(f"'{s}'" for s in statuses)
        sql = (
            f"SELECT connection, module{sums}, sum(status NOT IN ({known}) AND {live}),"
            " sum(crm_deleted_at IS NOT NULL) FROM mirror GROUP BY connection, module"
        )
        keys = (*statuses, "other", "deleted_in_crm")
        return {
            (c, m): dict(zip(keys, counts, strict=True))
            for c, m, *counts in self._db.execute(sql).fetchall()
        }
