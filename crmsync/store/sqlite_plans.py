"""Plans, approvals and the catalogue of pre-change snapshots in the SQLite store (mixed
into SQLiteStore).

The copies themselves live in the snapshot repository (crmsync.snapshots); the store notes
which record version each pre-change snapshot holds (``snapshot_records``), so ``restore``
finds a copy by record or by hash. ``snapshot_objects`` holds copies taken before store
version 5, when they lived here; it is only read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from crmsync.audit.model import AuditEntry
from crmsync.plans.model import PlanInfo, PlanItem, PlanPolicy
from crmsync.policy.model import Policy

_ITEM_COLUMNS = (
    "plan_id, policy, connection, module, record_id, planned_modified_at, planned_hash,"
    " before_status, state, error, snapshot_id, source_hash, detail"
)


def _item(row: Sequence[Any]) -> PlanItem:
    """A PlanItem from a row of ``_ITEM_COLUMNS`` (detail is stored as JSON text)."""
    detail = row[12]
    return PlanItem(*row[:12], detail=json.loads(detail) if detail is not None else None)


def _now() -> str:
    from crmsync.store.sqlite import utcnow

    return utcnow()


class PlanTransactionMixin:
    """Plan writes that join a :meth:`Store.transaction` (the apply engine's checkpoints)."""

    _conn: Any  # SQLiteTransaction's: the open connection

    def set_item_state(
        self,
        item: PlanItem,
        state: str,
        *,
        error: str | None = None,
    ) -> None:
        self._conn().execute(
            "UPDATE plan_items SET state = ?, error = ?"
            " WHERE plan_id = ? AND policy = ? AND record_id = ?",
            (state, error, item.plan_id, item.policy, item.record_id),
        )


class PlanStoreMixin:
    """Plan storage for SQLiteStore. Relies on its ``_db``, ``_tx`` and ``transaction``."""

    # Provided by SQLiteStore: the connection, a write transaction, and Store.transaction().
    _db: sqlite3.Connection
    _tx: Any
    transaction: Any

    # ------------------------------------------------------------------ policy indexes

    def ensure_policy_indexes(
        self, policies: Sequence[Policy], *, keep: Sequence[Policy] | None = None
    ) -> list[str]:
        """One index per distinct column list :func:`~crmsync.policy.sql.index_columns` asks
        for, named by its digest; building one reads every mirror row once. With ``keep`` (every
        configured policy), policy indexes none of them needs are dropped: each index costs a
        JSON parse per record written by every pull."""
        from crmsync.policy.sql import index_columns, index_name

        def wanted_by(chosen: Sequence[Policy]) -> dict[str, Any]:
            out = {}
            for policy in chosen:
                columns = index_columns(policy)
                if columns is not None:
                    out[index_name(columns)] = columns
            return out

        wanted = wanted_by(policies)
        existing = {
            name
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        if keep is not None:
            needed = set(wanted) | set(wanted_by(keep))
            for name in sorted(existing):
                if name.startswith("mirror_f_") and name not in needed:
                    with self._tx() as db:
                        db.execute(f'DROP INDEX IF EXISTS "{name}"')
        created = []
        for name, columns in wanted.items():
            if name in existing:
                continue
            with self._tx() as db:
                db.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON mirror ({", ".join(columns)})')
            created.append(name)
        return created

    # ------------------------------------------------------------------ plans

    def create_plan(
        self,
        *,
        plan_id: str,
        created_at: str,
        created_by: str,
        expires_at: str,
        config_hash: str,
        queries: Sequence[tuple[str, str, list[Any]]],
        kind: str = "policy",
    ) -> dict[str, int]:
        """Store a plan being made, copying each policy's selected records into it in SQL
        (``queries``: (policy, SELECT of connection, module, record_id, modified_at,
        content_hash, status, detail (JSON text or NULL); its params)). Returns records per
        policy. The plan stays ``creating`` until :meth:`set_plan_policies` completes it."""
        counts: dict[str, int] = {}
        with self._tx() as db:
            db.execute(
                "INSERT INTO plans (id, kind, created_at, created_by, expires_at, config_hash,"
                " status) VALUES (?, ?, ?, ?, ?, ?, 'creating')",
                (plan_id, kind, created_at, created_by, expires_at, config_hash),
            )
            for policy, sql, params in queries:
                cur = db.execute(
                    "INSERT OR IGNORE INTO plan_items (plan_id, policy, connection, module,"
                    " record_id, planned_modified_at, planned_hash, before_status, detail)"
                    f" SELECT ?, ?, * FROM ({sql})",
                    [plan_id, policy, *params],
                )
                counts[policy] = cur.rowcount
        return counts

    def add_plan_items(self, plan_id: str, policy: str, items: Sequence[PlanItem]) -> int:
        """Add explicitly chosen records to a plan being made (restore by id)."""
        with self._tx() as db:
            cur = db.executemany(
                "INSERT OR IGNORE INTO plan_items (plan_id, policy, connection, module,"
                " record_id, planned_modified_at, planned_hash, before_status, source_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        plan_id,
                        policy,
                        i.connection,
                        i.module,
                        i.record_id,
                        i.planned_modified_at,
                        i.planned_hash,
                        i.before_status,
                        i.source_hash,
                    )
                    for i in items
                ],
            )
            return cur.rowcount

    def set_plan_policies(self, plan_id: str, policies: Sequence[PlanPolicy]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT INTO plan_policies (plan_id, policy, connection, module, action, params,"
                " matched, module_total, max_records, max_percent, require_approval, guard)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        plan_id,
                        p.policy,
                        p.connection,
                        p.module,
                        p.action,
                        json.dumps(p.params, sort_keys=True),
                        p.matched,
                        p.module_total,
                        p.max_records,
                        p.max_percent,
                        int(p.require_approval),
                        p.guard,
                    )
                    for p in policies
                ],
            )
            db.execute("UPDATE plans SET status = 'planned' WHERE id = ?", (plan_id,))

    def get_plan(self, plan_id: str) -> PlanInfo | None:
        row = self._db.execute(
            "SELECT id, created_at, created_by, expires_at, config_hash, status, kind"
            " FROM plans WHERE id = ? AND status != 'creating'",
            (plan_id,),
        ).fetchone()
        return self._plan(row) if row else None

    def list_plans(self, limit: int = 20) -> list[PlanInfo]:
        rows = self._db.execute(
            "SELECT id, created_at, created_by, expires_at, config_hash, status, kind"
            " FROM plans WHERE status != 'creating' ORDER BY created_at DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._plan(r) for r in rows]

    def _plan(self, row: Sequence[Any]) -> PlanInfo:
        policies = [
            PlanPolicy(
                policy=r[0],
                connection=r[1],
                module=r[2],
                action=r[3],
                params=json.loads(r[4]),
                matched=r[5],
                module_total=r[6],
                max_records=r[7],
                max_percent=r[8],
                require_approval=bool(r[9]),
                guard=r[10],
            )
            for r in self._db.execute(
                "SELECT policy, connection, module, action, params, matched, module_total,"
                " max_records, max_percent, require_approval, guard FROM plan_policies"
                " WHERE plan_id = ? ORDER BY rowid",
                (row[0],),
            )
        ]
        approvals = [
            (a, t)
            for a, t in self._db.execute(
                "SELECT approver, approved_at FROM plan_approvals WHERE plan_id = ?"
                " ORDER BY approved_at",
                (row[0],),
            )
        ]
        return PlanInfo(
            id=row[0],
            created_at=row[1],
            created_by=row[2],
            expires_at=row[3],
            config_hash=row[4],
            status=row[5],
            kind=row[6],
            policies=policies,
            approvals=approvals,
        )

    def set_plan_status(self, plan_id: str, status: str, audit: AuditEntry | None = None) -> None:
        with self.transaction() as tx:
            tx._conn().execute("UPDATE plans SET status = ? WHERE id = ?", (status, plan_id))
            if audit is not None:
                tx.append_audit([audit])

    def approve_plan(self, plan_id: str, approver: str, audit: AuditEntry) -> None:
        with self.transaction() as tx:
            tx._conn().execute(
                "INSERT OR IGNORE INTO plan_approvals (plan_id, approver, approved_at)"
                " VALUES (?, ?, ?)",
                (plan_id, approver, _now()),
            )
            tx.append_audit([audit])

    # ------------------------------------------------------------------ items

    def plan_items(
        self,
        plan_id: str,
        policy: str,
        *,
        states: Sequence[str],
        limit: int | None = None,
        after: str = "",
    ) -> list[PlanItem]:
        marks = ", ".join("?" * len(states))
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM plan_items WHERE plan_id = ? AND policy = ?"
            f" AND record_id > ? AND state IN ({marks}) ORDER BY record_id"
        )
        params: list[Any] = [plan_id, policy, after, *states]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_item(row) for row in self._db.execute(sql, params)]

    def iter_plan_items(
        self, plan_id: str, policy: str, *, states: Sequence[str], batch: int = 1000
    ) -> Iterator[PlanItem]:
        after = ""
        while True:
            items = self.plan_items(plan_id, policy, states=states, limit=batch, after=after)
            if not items:
                return
            yield from items
            after = items[-1].record_id

    def drifted_plan_items(
        self, plan_id: str, policy: str, *, after: str = "", limit: int = 1000
    ) -> list[tuple[PlanItem, bool]]:
        """Pending items whose record changed in the mirror since the plan (modified time, or
        content where the module has none), paired with whether it is gone (deleted in the
        CRM or no longer mirrored)."""
        columns = ", ".join(f"i.{c.strip()}" for c in _ITEM_COLUMNS.split(","))
        rows = self._db.execute(
            f"SELECT {columns}, (m.record_id IS NULL OR m.crm_deleted_at IS NOT NULL)"
            " FROM plan_items i LEFT JOIN mirror m ON m.connection = i.connection"
            " AND m.module = i.module AND m.record_id = i.record_id"
            " WHERE i.plan_id = ? AND i.policy = ? AND i.state = 'pending' AND i.record_id > ?"
            " AND (m.record_id IS NULL OR m.crm_deleted_at IS NOT NULL"
            " OR (i.planned_modified_at IS NOT NULL"
            "     AND m.modified_at IS NOT i.planned_modified_at)"
            " OR (i.planned_modified_at IS NULL AND m.content_hash != i.planned_hash))"
            " ORDER BY i.record_id LIMIT ?",
            (plan_id, policy, after, limit),
        ).fetchall()
        return [(_item(row[:-1]), bool(row[-1])) for row in rows]

    def plan_item_states(self, plan_id: str) -> dict[str, dict[str, int]]:
        """Per policy (part) of the plan: how many items are in each state."""
        out: dict[str, dict[str, int]] = {}
        for policy, state, n in self._db.execute(
            "SELECT policy, state, count(*) FROM plan_items WHERE plan_id = ?"
            " GROUP BY policy, state",
            (plan_id,),
        ):
            out.setdefault(policy, {})[state] = n
        return out

    def count_plan_items(self, plan_id: str, *, states: Sequence[str]) -> int:
        marks = ", ".join("?" * len(states))
        return self._db.execute(
            f"SELECT count(*) FROM plan_items WHERE plan_id = ? AND state IN ({marks})",
            (plan_id, *states),
        ).fetchone()[0]

    def annotate_plan_items(self, plan_id: str, policy: str, sql: str, params: list[Any]) -> int:
        """Set ``detail`` of a plan's items from ``sql`` (rows of record_id, detail JSON text)."""
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE plan_items SET detail = d.detail FROM ({sql}) AS d"
                " WHERE plan_items.plan_id = ? AND plan_items.policy = ?"
                " AND plan_items.record_id = d.record_id",
                [*params, plan_id, policy],
            )
            return max(cur.rowcount, 0)

    def plan_details(
        self, plan_id: str, policy: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """(record_id, detail) of up to ``limit`` items that have one, by record id."""
        return [
            (rid, json.loads(detail))
            for rid, detail in self._db.execute(
                "SELECT record_id, detail FROM plan_items WHERE plan_id = ? AND policy = ?"
                " AND detail IS NOT NULL ORDER BY record_id LIMIT ?",
                (plan_id, policy, limit),
            )
        ]

    def plan_clusters(
        self, plan_id: str, policy: str, limit: int
    ) -> list[tuple[Any, str, list[str]]]:
        """Up to ``limit`` duplicate clusters of a plan, largest first: (key — text, or a list
        for a key of several fields —, survivor, the record ids the plan voids)."""
        rows = self._db.execute(
            "SELECT json_extract(detail, '$.cluster') AS k, json_type(detail, '$.cluster'),"
            " json_extract(detail, '$.survivor'), json_group_array(record_id) FROM plan_items"
            " WHERE plan_id = ? AND policy = ? AND json_extract(detail, '$.cluster') IS NOT NULL"
            " GROUP BY k ORDER BY count(*) DESC, k LIMIT ?",
            (plan_id, policy, limit),
        ).fetchall()
        return [
            (json.loads(key) if kind == "array" else key, survivor, sorted(json.loads(ids)))
            for key, kind, survivor, ids in rows
        ]

    def plan_samples(self, plan_id: str, policy: str, limit: int) -> list[tuple[str, dict]]:
        return [
            (rid, json.loads(data))
            for rid, data in self._db.execute(
                "SELECT i.record_id, m.data FROM plan_items i JOIN mirror m"
                " ON m.connection = i.connection AND m.module = i.module"
                " AND m.record_id = i.record_id"
                " WHERE i.plan_id = ? AND i.policy = ? ORDER BY i.record_id LIMIT ?",
                (plan_id, policy, limit),
            )
        ]

    # ------------------------------------------------------------------ snapshots

    _UNSNAPSHOTTED = (
        " FROM plan_items i JOIN mirror m ON m.connection = i.connection"
        " AND m.module = i.module AND m.record_id = i.record_id"
        " WHERE i.plan_id = ? AND i.policy = ? AND i.state = 'pending'"
        " AND i.snapshot_id IS NULL"
    )

    def iter_unsnapshotted_items(
        self, plan_id: str, policy: str
    ) -> Iterator[tuple[str, str, str, str]]:
        last = ""
        while True:  # keyset pages: memory is one page, and no read stays open across writes
            rows = self._db.execute(
                f"SELECT m.module, m.record_id, m.data, m.content_hash{self._UNSNAPSHOTTED}"
                " AND i.record_id > ? ORDER BY i.record_id LIMIT 2000",
                (plan_id, policy, last),
            ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][1]

    def record_items_snapshot(
        self, plan_id: str, policy: str, run_id: int, snapshot_id: str
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO snapshot_records (snapshot_id, connection, module, record_id, hash,"
                f" status) SELECT ?, m.connection, m.module, m.record_id, m.content_hash,"
                f" m.status{self._UNSNAPSHOTTED}",
                (snapshot_id, plan_id, policy),
            )
            count = max(cur.rowcount, 0)
            if not count:
                return 0
            db.execute(
                "INSERT INTO snapshots (id, created_at, kind, plan_id, run_id, records)"
                " VALUES (?, ?, 'pre-change', ?, ?, ?)",
                (snapshot_id, _now(), plan_id, run_id, count),
            )
            db.execute(
                "UPDATE plan_items SET snapshot_id = ? WHERE plan_id = ? AND policy = ?"
                " AND state = 'pending' AND snapshot_id IS NULL",
                (snapshot_id, plan_id, policy),
            )
        return count

    def note_snapshot_copies(
        self, snapshot_id: str, connection: str, rows: Sequence[tuple[str, str, str]]
    ) -> None:
        if not rows:
            return
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO snapshots (id, created_at, kind, records)"
                " VALUES (?, ?, 'whole', 0)",
                (snapshot_id, _now()),
            )
            db.executemany(
                "INSERT OR IGNORE INTO snapshot_records (snapshot_id, connection, module,"
                " record_id, hash, status) VALUES (?, ?, ?, ?, ?, '')",
                [(snapshot_id, connection, m, rid, digest) for m, rid, digest in rows],
            )

    def copy_location(self, digest: str) -> tuple[str, str, str, str] | None:
        row = self._db.execute(
            "SELECT r.snapshot_id, r.connection, r.module, r.record_id FROM snapshot_records r"
            " JOIN snapshots s ON s.id = r.snapshot_id WHERE r.hash = ?"
            " ORDER BY s.created_at DESC LIMIT 1",
            (digest,),
        ).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def snapshot_hash(
        self, snapshot_id: str, connection: str, module: str, record_id: str
    ) -> str | None:
        row = self._db.execute(
            "SELECT hash FROM snapshot_records WHERE snapshot_id = ? AND connection = ?"
            " AND module = ? AND record_id = ?",
            (snapshot_id, connection, module, record_id),
        ).fetchone()
        return row[0] if row else None

    def latest_copy_hash(self, connection: str, module: str, record_id: str) -> str | None:
        """The hash of the newest kept copy of a record (None: never copied)."""
        row = self._db.execute(
            "SELECT r.hash FROM snapshot_records r JOIN snapshots s ON s.id = r.snapshot_id"
            " WHERE r.connection = ? AND r.module = ? AND r.record_id = ?"
            " ORDER BY s.created_at DESC LIMIT 1",
            (connection, module, record_id),
        ).fetchone()
        return row[0] if row else None

    def snapshot_object(self, digest: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT data FROM snapshot_objects WHERE hash = ?", (digest,)
        ).fetchone()
        return json.loads(row[0]) if row else None
