"""Legal holds in the SQLite store (store schema 8: ``legal_holds``, ``legal_hold_records``),
mixed into SQLiteStore and its transaction. Holds are few and read whole; the records they
cover are asked for by id, at most :data:`CHUNK` ids per statement."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from crmsync.compliance.hold_model import Hold

CHUNK = 500  # ids per IN (...): under SQLite's default parameter limit

_COLUMNS = (
    "id, kind, reason, created_by, created_at, connection, module, spec, expires_at,"
    " released_at, released_by, release_reason,"
    " (SELECT count(*) FROM legal_hold_records r WHERE r.hold_id = legal_holds.id)"
)


def _hold(row: Sequence[Any]) -> Hold:
    return Hold(*row[:7], json.loads(row[7] or "{}"), *row[8:])


def select_ids(
    db: sqlite3.Connection,
    sql: str,
    before: Sequence[Any],
    ids: Sequence[str],
    after: Sequence[Any] = (),
) -> set[str]:
    """The ids a query with ``IN ({})`` returns, asked :data:`CHUNK` at a time."""
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        query = sql.format(", ".join("?" * len(chunk)))
        found |= {row[0] for row in db.execute(query, [*before, *chunk, *after])}
    return found


class HoldStoreMixin:
    """Legal hold reads for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection

    def list_holds(self, *, include_released: bool = False) -> list[Hold]:
        sql = f"SELECT {_COLUMNS} FROM legal_holds"
        if not include_released:
            sql += " WHERE released_at IS NULL"
        return [_hold(r) for r in self._db.execute(sql + " ORDER BY created_at, id")]

    def get_hold(self, hold_id: str) -> Hold | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM legal_holds WHERE id = ?", (hold_id,))
        found = row.fetchone()
        return _hold(found) if found else None

    def hold_record_ids(
        self, hold_id: str, connection: str, module: str, record_ids: Sequence[str]
    ) -> set[str]:
        return select_ids(
            self._db,
            "SELECT record_id FROM legal_hold_records WHERE hold_id = ? AND connection = ?"
            " AND module = ? AND record_id IN ({})",
            [hold_id, connection, module],
            record_ids,
        )

    def mirror_ids_where(
        self,
        connection: str,
        module: str,
        record_ids: Sequence[str],
        condition: tuple[str, Sequence[Any]],
    ) -> set[str]:
        sql, params = condition
        return select_ids(
            self._db,
            "SELECT record_id FROM mirror WHERE connection = ? AND module = ?"
            " AND record_id IN ({}) AND " + sql.replace("{", "{{").replace("}", "}}"),
            [connection, module],
            record_ids,
            params,
        )


class HoldTransactionMixin:
    """Legal hold writes that join a :meth:`Store.transaction` (with their audit entries)."""

    _conn: Any  # SQLiteTransaction's: the open connection

    def add_hold(self, hold: Hold, records: Sequence[tuple[str, str, str]]) -> None:
        db = self._conn()
        spec = json.dumps(dict(hold.spec), sort_keys=True, ensure_ascii=False)
        db.execute(
            "INSERT INTO legal_holds (id, kind, connection, module, spec, reason, created_by,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (hold.id, hold.kind, hold.connection, hold.module, spec, hold.reason,
             hold.created_by, hold.created_at, hold.expires_at),
        )  # fmt: skip
        db.executemany(
            "INSERT OR IGNORE INTO legal_hold_records (hold_id, connection, module, record_id)"
            " VALUES (?, ?, ?, ?)",
            [(hold.id, *row) for row in records],
        )

    def release_hold(self, hold_id: str, *, released_at: str, operator: str, reason: str) -> bool:
        return (
            self._conn()
            .execute(
                "UPDATE legal_holds SET released_at = ?, released_by = ?, release_reason = ?"
                " WHERE id = ? AND released_at IS NULL",
                (released_at, operator, reason, hold_id),
            )
            .rowcount
            > 0
        )
