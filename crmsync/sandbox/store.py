"""SQLite storage of the sandbox CRM's records.

Records are kept as their UTF-8 JSON bytes (so a list response is the stored bodies joined,
never decoded or re-serialised) beside the few columns queries need: the numeric id,
modified_at and status. Deleted records move to a tombstone table. Each module has its own
pair of tables, so every listing is a plain range scan of one index: keyset pages cost O(page)
at any depth.

One connection, shared by the server's threads and serialised by a lock: SQLite is fast enough
that the lock is never what limits the sandbox, and it keeps the semantics trivially atomic.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crmsync.sandbox.data import MODULES, GeneratedRecord

SORTS = ("id", "modified_at")
_CHUNK = 5000


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode(obj: Any) -> bytes:
    """``obj`` as the JSON the sandbox stores and sends: compact UTF-8, not \\u-escaped."""
    return _ENCODER.encode(obj).encode()


@dataclass(frozen=True)
class PageRows:
    """One page read from a table: the JSON bodies, and the key after the last one."""

    bodies: list[bytes]
    has_more: bool
    last_key: tuple[str, int] | None  # (timestamp, id) of the last row, None if empty


class RecordStore:
    """Records of every module, live and deleted. Thread-safe.

    ``path``: a SQLite file to use, ``":memory:"``, or None for a private temporary file
    (removed by :meth:`close`); a file keeps a 1M-record sandbox out of the process's RSS.
    """

    def __init__(self, path: str | None = None) -> None:
        self._tmpdir: str | None = None
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="crmsync-sandbox-")
            path = os.path.join(self._tmpdir, "sandbox.db")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # Frees the connection and the temporary file even if close() is never called.
        self._finalizer = weakref.finalize(self, _release, self._db, self._tmpdir)
        for pragma in (
            "journal_mode=OFF",  # a sandbox: nothing to recover after a crash
            "synchronous=OFF",
            "temp_store=MEMORY",
            "cache_size=-65536",  # 64 MiB page cache
        ):
            self._db.execute(f"PRAGMA {pragma}")
        for module in MODULES:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {_live(module)} (id INTEGER PRIMARY KEY, "
                "ts TEXT NOT NULL, status TEXT NOT NULL, body BLOB NOT NULL)"
            )
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {_dead(module)} (id INTEGER PRIMARY KEY, "
                "ts TEXT NOT NULL, status TEXT NOT NULL, body BLOB NOT NULL)"
            )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS duplicates (module TEXT NOT NULL, id INTEGER NOT NULL, "
            "original INTEGER NOT NULL, PRIMARY KEY (module, id))"
        )
        self._counts = {(m, dead): self._count_all(m, dead) for m in MODULES for dead in (0, 1)}
        # COUNT(*) with a filter is O(matches); cache it until the module next changes, so a
        # deep pull with modified_since does not pay it on every page.
        self._versions = dict.fromkeys(MODULES, 0)
        self._total_cache: dict[tuple[str, bool, str | None], tuple[int, int]] = {}

    # ----------------------------------------------------------------------- loading

    def load(self, records: Iterable[GeneratedRecord]) -> int:
        """Insert generated records in chunks (memory stays bounded by a chunk); index after."""
        loaded = 0
        with self._lock:
            for module in MODULES:
                self._db.execute(f"DROP INDEX IF EXISTS {_live(module)}_ts")
            self._db.execute("BEGIN")
            try:
                rows: dict[str, list[tuple[int, str, str, bytes]]] = {}
                dups: list[tuple[str, int, int]] = []
                for rec in records:
                    data = rec.data
                    bucket = rows.setdefault(rec.module, [])
                    bucket.append(
                        (int(data["id"]), data["modified_at"], data["status"], encode(data))
                    )
                    if rec.duplicate_of is not None:
                        dups.append((rec.module, int(data["id"]), int(rec.duplicate_of)))
                    if len(bucket) >= _CHUNK:
                        loaded += self._insert(rec.module, bucket)
                        bucket.clear()
                for module, bucket in rows.items():
                    loaded += self._insert(module, bucket)
                self._db.executemany("INSERT INTO duplicates VALUES (?, ?, ?)", dups)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for module in MODULES:
                for table in (_live(module), _dead(module)):
                    self._db.execute(f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts, id)")
                self._counts[(module, 0)] = self._count_all(module, 0)
                self._versions[module] += 1
            # Statistics let the planner pick the (ts, id) index for a narrow modified_since and
            # the primary key otherwise; a sampled ANALYZE is enough and stays fast at 1M rows.
            self._db.execute("PRAGMA analysis_limit=1000")
            self._db.execute("ANALYZE")
        return loaded

    def _insert(self, module: str, rows: list[tuple[int, str, str, bytes]]) -> int:
        self._db.executemany(f"INSERT INTO {_live(module)} VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def _count_all(self, module: str, dead: int) -> int:
        table = _dead(module) if dead else _live(module)
        return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # ----------------------------------------------------------------------- reading

    def page(
        self,
        module: str,
        *,
        limit: int,
        deleted: bool = False,
        sort: str = "id",
        since: str | None = None,
        after: tuple[str, int] | None = None,
        offset: int = 0,
    ) -> PageRows:
        """Read up to ``limit`` rows in ``sort`` order with ``ts >= since``, strictly after the
        keyset key ``after`` (timestamp, id) when given, else skipping ``offset`` rows."""
        table = _dead(module) if deleted else _live(module)
        where, args = _filter(since)
        if after is not None:
            if sort == "id":
                where.append("id > ?")
                args.append(after[1])
            else:
                where.append("(ts, id) > (?, ?)")
                args.extend(after)
        order = "id" if sort == "id" else "ts, id"
        sql = f"SELECT ts, id, body FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order} LIMIT ? OFFSET ?"
        args.extend((limit + 1, offset))  # one extra row says whether there is a next page
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        last = (rows[-1][0], rows[-1][1]) if rows else None
        return PageRows([r[2] for r in rows], has_more, last)

    def total(self, module: str, *, deleted: bool = False, since: str | None = None) -> int:
        """How many rows match ``ts >= since`` (all rows when None)."""
        with self._lock:
            if since is None:
                return self._counts[(module, 1 if deleted else 0)]
            key = (module, deleted, since)
            cached = self._total_cache.get(key)
            if cached and cached[0] == self._versions[module]:
                return cached[1]
            table = _dead(module) if deleted else _live(module)
            where, args = _filter(since)
            sql = f"SELECT COUNT(*) FROM {table} WHERE " + " AND ".join(where)
            n = self._db.execute(sql, args).fetchone()[0]
            if len(self._total_cache) > 1000:
                self._total_cache.clear()
            self._total_cache[key] = (self._versions[module], n)
            return n

    def get_body(self, module: str, record_id: int) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT body FROM {_live(module)} WHERE id = ?", (record_id,)
            ).fetchone()
        return row[0] if row else None

    def get(self, module: str, record_id: int) -> dict | None:
        body = self.get_body(module, record_id)
        return json.loads(body) if body is not None else None

    def count(self, module: str) -> int:
        """Live records of ``module``."""
        with self._lock:
            return self._counts[(module, 0)]

    def ids(self, module: str, *, deleted: bool = False) -> list[int]:
        table = _dead(module) if deleted else _live(module)
        with self._lock:
            return [r[0] for r in self._db.execute(f"SELECT id FROM {table} ORDER BY id")]

    def sample_ids(self, module: str, count: int, rng: random.Random) -> list[int]:
        """``count`` live ids picked at random (all of them if fewer), ascending."""
        ids = self.ids(module)
        return sorted(rng.sample(ids, min(count, len(ids))))

    def duplicates(self, module: str) -> dict[int, int]:
        """Generated near-duplicates of ``module``: duplicate id -> the id it copies."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, original FROM duplicates WHERE module = ? ORDER BY id", (module,)
            ).fetchall()
        return dict(rows)

    # ----------------------------------------------------------------------- writing

    def update(
        self, module: str, record_id: int, changes: Mapping[str, Any], now: str
    ) -> dict | None:
        """Apply ``changes`` and set modified_at = ``now``; the new record, or None if absent."""
        with self._lock:
            row = self._db.execute(
                f"SELECT body FROM {_live(module)} WHERE id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return None
            record = json.loads(row[0])
            record.update(changes)
            record["modified_at"] = now
            self._db.execute(
                f"UPDATE {_live(module)} SET ts = ?, status = ?, body = ? WHERE id = ?",
                (now, record["status"], encode(record), record_id),
            )
            self._versions[module] += 1
            return record

    def delete(self, module: str, record_id: int, now: str) -> bool:
        """Move a live record to the tombstones (deleted_at = ``now``); False if absent."""
        with self._lock:
            row = self._db.execute(
                f"SELECT status FROM {_live(module)} WHERE id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return False
            self._db.execute(f"DELETE FROM {_live(module)} WHERE id = ?", (record_id,))
            tomb = encode({"id": str(record_id), "deleted_at": now})
            self._db.execute(
                f"INSERT OR REPLACE INTO {_dead(module)} VALUES (?, ?, ?, ?)",
                (record_id, now, row[0], tomb),
            )
            self._counts[(module, 0)] -= 1
            self._counts[(module, 1)] += 1
            self._versions[module] += 1
            return True

    def close(self) -> None:
        with self._lock:
            self._finalizer()


def _release(db: sqlite3.Connection, tmpdir: str | None) -> None:
    db.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _live(module: str) -> str:
    if module not in MODULES:  # table names are interpolated: only known modules get there
        raise ValueError(f"unknown module {module!r}")
    return f"live_{module.lower()}"


def _dead(module: str) -> str:
    return "deleted_" + _live(module).removeprefix("live_")


def _filter(since: str | None) -> tuple[list[str], list[Any]]:
    if since is None:
        return [], []
    return ["ts >= ?"], [since]
