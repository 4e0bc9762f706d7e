"""SQLite storage of the fake Zoho org: live records and the recycle bin.

Each module has a table ``(id, ct, mt, body)``: ``ct``/``mt`` are Created/Modified_Time as
epoch seconds (``mt`` NULL for modules without Modified_Time), ``body`` the record's JSON with
every field. Deleted records move to ``deleted`` with their deleted time and type (``recycle``
or ``permanent``). One connection, shared by the server threads and serialised by a lock, as
the bundled sandbox does.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from crmsync_connectors.zoho.fake import schema as sc
from crmsync_connectors.zoho.fake.data import Row

_CHUNK = 5000
SORT_COLUMNS = {"id": "id", "Created_Time": "ct", "Modified_Time": "mt"}


def _table(module: str) -> str:
    return f"r{sc.MODULE_NAMES.index(module)}"  # ValueError for unknown modules


class Store:
    """Records of every module. Thread-safe. ``path`` None = a private temporary file."""

    def __init__(self, path: str | None = None) -> None:
        self._tmpdir: str | None = None
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="crmsync-fake-zoho-")
            path = os.path.join(self._tmpdir, "zoho.db")
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._finalizer = weakref.finalize(self, _release, self.db, self._tmpdir)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=MEMORY",
                       "cache_size=-65536"):  # fmt: skip
            self.db.execute(f"PRAGMA {pragma}")
        for module in sc.MODULE_NAMES:
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(module)} (id INTEGER PRIMARY KEY, "
                "ct INTEGER NOT NULL, mt INTEGER, body BLOB NOT NULL)"
            )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS deleted (module TEXT NOT NULL, id INTEGER NOT NULL, "
            "dt INTEGER NOT NULL, type TEXT NOT NULL, item BLOB NOT NULL, record BLOB, "
            "PRIMARY KEY (module, id))"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS deleted_dt ON deleted (module, dt, id)")
        self._counts = {m: self._count(m) for m in sc.MODULE_NAMES}

    def _count(self, module: str) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM {_table(module)}").fetchone()[0]

    # ----------------------------------------------------------------------- loading

    def load(self, module: str, rows: Iterable[Row]) -> int:
        table = _table(module)
        n = 0
        with self.lock:
            self.db.execute("BEGIN")
            try:
                batch: list[tuple[int, int, int | None, bytes]] = []
                for row in rows:
                    batch.append((row.id, row.created, row.modified, orjson.dumps(row.record)))
                    if len(batch) >= _CHUNK:
                        self.db.executemany(f"INSERT INTO {table} VALUES (?,?,?,?)", batch)
                        n += len(batch)
                        batch.clear()
                self.db.executemany(f"INSERT INTO {table} VALUES (?,?,?,?)", batch)
                n += len(batch)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {table}_mt ON {table} (mt, id)")
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {table}_ct ON {table} (ct, id)")
            self._counts[module] = self._count(module)
        return n

    # ----------------------------------------------------------------------- reading

    def page(
        self,
        module: str,
        *,
        sort_by: str,
        desc: bool,
        limit: int,
        since: int | None = None,
        offset: int = 0,
        after: tuple[int, int] | None = None,
        ids: list[int] | None = None,
    ) -> list[tuple[int, int, bytes]]:
        """Rows ``(sort key, id, body)`` in ``sort_by`` order (ties by id, same direction),
        ``mt >= since`` when given, strictly after the keyset key ``after`` or past ``offset``
        rows."""
        col = SORT_COLUMNS[sort_by]
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("mt >= ?")
            args.append(since)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if after is not None:
            op = "<" if desc else ">"
            if col == "id":
                where.append(f"id {op} ?")
                args.append(after[1])
            else:
                where.append(f"({col}, id) {op} (?, ?)")
                args.extend(after)
        direction = "DESC" if desc else "ASC"
        key = col
        sql = f"SELECT {key}, id, body FROM {_table(module)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {key} {direction}, id {direction} LIMIT ? OFFSET ?"
        args.extend((limit, offset))
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def get(self, module: str, record_id: int) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(
                f"SELECT body FROM {_table(module)} WHERE id = ?", (record_id,)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def count(self, module: str) -> int:
        with self.lock:
            return self._counts[module]

    def ids(self, module: str) -> list[int]:
        with self.lock:
            return [r[0] for r in self.db.execute(f"SELECT id FROM {_table(module)} ORDER BY id")]

    # ----------------------------------------------------------------------- writing

    def put(self, module: str, record: Mapping[str, Any], modified: int | None) -> None:
        """Replace a live record's body (and its modified epoch when not None)."""
        with self.lock:
            if modified is None:
                self.db.execute(
                    f"UPDATE {_table(module)} SET body = ? WHERE id = ?",
                    (orjson.dumps(record), int(record["id"])),
                )
            else:
                self.db.execute(
                    f"UPDATE {_table(module)} SET body = ?, mt = ? WHERE id = ?",
                    (orjson.dumps(record), modified, int(record["id"])),
                )

    def delete(self, module: str, record_id: int, item: Mapping[str, Any], when: int) -> bool:
        """Move a live record to the recycle bin; False if it is not live."""
        with self.lock:
            table = _table(module)
            row = self.db.execute(f"SELECT body FROM {table} WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                return False
            self.db.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,))
            self.db.execute(
                "INSERT OR REPLACE INTO deleted VALUES (?, ?, ?, 'recycle', ?, ?)",
                (module, record_id, when, orjson.dumps(item), row[0]),
            )
            self._counts[module] -= 1
            return True

    def empty_recycle_bin(self, module: str | None, permanent_item: Any) -> int:
        """Turn recycle-bin entries permanent (their details nulled by ``permanent_item``)."""
        with self.lock:
            rows = self.db.execute(
                "SELECT module, id, item FROM deleted WHERE type = 'recycle'"
                + (" AND module = ?" if module else ""),
                (module,) if module else (),
            ).fetchall()
            for mod, rid, item in rows:
                self.db.execute(
                    "UPDATE deleted SET type = 'permanent', item = ?, record = NULL "
                    "WHERE module = ? AND id = ?",
                    (orjson.dumps(permanent_item(orjson.loads(item))), mod, rid),
                )
            return len(rows)

    def deleted_page(
        self, module: str, *, kind: str, since: int | None, limit: int, offset: int
    ) -> list[bytes]:
        """Deleted items, newest deletion first (ties: higher id first)."""
        where = ["module = ?"]
        args: list[Any] = [module]
        if kind != "all":
            where.append("type = ?")
            args.append(kind)
        if since is not None:
            where.append("dt >= ?")
            args.append(since)
        sql = (
            "SELECT item FROM deleted WHERE "
            + " AND ".join(where)
            + " ORDER BY dt DESC, id DESC LIMIT ? OFFSET ?"
        )
        args.extend((limit, offset))
        with self.lock:
            return [r[0] for r in self.db.execute(sql, args)]

    def deleted_ids(self, module: str) -> list[int]:
        with self.lock:
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM deleted WHERE module = ? ORDER BY id", (module,)
                )
            ]

    def close(self) -> None:
        with self.lock:
            self._finalizer()


def _release(db: sqlite3.Connection, tmpdir: str | None) -> None:
    db.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)
