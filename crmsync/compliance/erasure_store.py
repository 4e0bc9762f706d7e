"""The SQLite store's part of an erasure: find the person's rows, and remove every local trace.

Finding: one pass over the mirror with :meth:`Matcher.candidate` registered as an SQL function
over each row's stored JSON bytes (no row is parsed unless it may match), the same over the
legacy copies (``snapshot_objects``, store versions < 5). The search index is no pre-filter
here: it leaves owner fields and date-like values out (crmsync.search.text) and does not fold
full-width forms, so it cannot prove that a record does *not* hold an address; the scan
costs ~6 s per million records (benches/erase.py).

Removing, in one write transaction with ``PRAGMA secure_delete`` on (SQLite overwrites deleted
content with zeros instead of leaving it in free pages): the mirror rows (not marked: deleted;
the search index's delete trigger queues their text, and the queue is indexed in the same
transaction, so the contentless FTS index drops them), the details of every plan item that
named the person (duplicate cluster keys, computed field values), the legacy copies, and the
earlier audit entries' record ids (the one update the audit log permits). Afterwards (:func:`scrub`)
the search index is merged ('optimize': deleted tokens are gone from its segments, not only
marked), the file is rebuilt (``VACUUM``: older versions written over without secure_delete)
and the WAL is checkpointed and truncated, so no old page version survives in it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from crmsync.audit.model import record_ref
from crmsync.compliance.erasure_match import Matcher, RecordRef
from crmsync.errors import ConfigError
from crmsync.store import Store

FUNCTION = "crmsync_erase_candidate"
BATCH = 500  # ids per IN (...) (SQLite's parameter limit)


def db_of(store: Store) -> sqlite3.Connection:
    db = getattr(store, "_db", None)
    if not isinstance(db, sqlite3.Connection):
        raise ConfigError("erasure needs the SQLite store")
    return db


@dataclass(frozen=True)
class MirrorHit:
    connection: str
    module: str
    record_id: str
    status: str
    in_crm: bool  # not deleted in the CRM as of the last pull
    modified_at: str | None
    content_hash: str
    fields: tuple[str, ...]  # the fields that hold the person's keys (names only)


def find_in_mirror(
    store: Store, matcher: Matcher, connections: Sequence[str]
) -> Iterator[MirrorHit]:
    """Mirror rows of ``connections`` holding one of the person's keys."""
    if not matcher.searches_content or not connections:
        return
    db = db_of(store)
    db.create_function(FUNCTION, 1, matcher.candidate, deterministic=True)
    marks = ", ".join("?" * len(connections))
    rows = db.execute(
        "SELECT connection, module, record_id, status, crm_deleted_at IS NULL, modified_at,"
        f" content_hash, data FROM mirror WHERE connection IN ({marks})"
        f" AND {FUNCTION}(CAST(data AS BLOB))",
        list(connections),
    ).fetchall()  # candidates only: a handful
    for conn, module, rid, status, live, modified, digest, data in rows:
        fields = matcher.fields(orjson.loads(data))
        if fields:
            yield MirrorHit(conn, module, rid, status, bool(live), modified, digest, tuple(fields))


def mirror_rows(store: Store, refs: Iterable[RecordRef]) -> dict[RecordRef, MirrorHit]:
    """The mirror rows of records named by id (absent ones are left out)."""
    db = db_of(store)
    out: dict[RecordRef, MirrorHit] = {}
    for conn, module, rid in refs:
        row = db.execute(
            "SELECT status, crm_deleted_at IS NULL, modified_at, content_hash FROM mirror"
            " WHERE connection = ? AND module = ? AND record_id = ?",
            (conn, module, rid),
        ).fetchone()
        if row is not None:
            out[(conn, module, rid)] = MirrorHit(conn, module, rid, row[0], bool(row[1]),
                                                 row[2], row[3], ())  # fmt: skip
    return out


def find_legacy(store: Store, matcher: Matcher, connections: Sequence[str]) -> set[RecordRef]:
    """Records of which a legacy copy (``snapshot_objects``) holds one of the person's keys."""
    if not matcher.searches_content or not connections:
        return set()
    db = db_of(store)
    db.create_function(FUNCTION, 1, matcher.candidate, deterministic=True)
    marks = ", ".join("?" * len(connections))
    found = set()
    for conn, module, rid, data in db.execute(
        "SELECT r.connection, r.module, r.record_id, o.data FROM snapshot_objects o"
        " JOIN snapshot_records r ON r.hash = o.hash"
        f" WHERE r.connection IN ({marks}) AND {FUNCTION}(CAST(o.data AS BLOB))",
        list(connections),
    ).fetchall():
        if matcher.fields(json.loads(data)):
            found.add((conn, module, rid))
    return found


def find_plan_details(
    store: Store, matcher: Matcher, skip: set[RecordRef]
) -> list[tuple[str, str, str]]:
    """(plan id, part, record id) of plan items of *other* records whose detail quotes one of
    the person's keys (a duplicate cluster's key, a value computed from theirs)."""
    if not matcher.searches_content:
        return []
    db = db_of(store)
    db.create_function(FUNCTION, 1, matcher.candidate, deterministic=True)
    out = []
    for plan_id, policy, conn, module, rid, detail in db.execute(
        "SELECT plan_id, policy, connection, module, record_id, detail FROM plan_items"
        f" WHERE detail IS NOT NULL AND {FUNCTION}(CAST(detail AS BLOB))"
    ).fetchall():
        if (conn, module, rid) not in skip and _quotes(matcher, json.loads(detail)):
            out.append((plan_id, policy, rid))
    return out


def _quotes(matcher: Matcher, detail: Any) -> bool:
    return bool(matcher.fields({"detail": detail}))


def legacy_copies(store: Store, refs: Sequence[RecordRef]) -> dict[RecordRef, int]:
    """Legacy copies (``snapshot_objects``) kept of each record."""
    db = db_of(store)
    out: dict[RecordRef, int] = {}
    for conn, module, rid in refs:
        (n,) = db.execute(
            "SELECT count(DISTINCT o.hash) FROM snapshot_records r JOIN snapshot_objects o"
            " ON o.hash = r.hash WHERE r.connection = ? AND r.module = ? AND r.record_id = ?",
            (conn, module, rid),
        ).fetchone()
        if n:
            out[(conn, module, rid)] = int(n)
    return out


def _chunks(refs: Sequence[RecordRef]) -> Iterator[Sequence[RecordRef]]:
    for start in range(0, len(refs), BATCH):
        yield refs[start : start + BATCH]


def erase_local(
    store: Store,
    refs: Sequence[RecordRef],
    keep_plan: str,
    finish: Callable[[Any], None] | None = None,
    details: Sequence[Sequence[str]] = (),
) -> dict[str, int]:
    """Remove every local trace of ``refs`` (module docstring), the details of the erasure
    plan ``keep_plan`` excepted (they hold no values); ``finish(tx)`` runs inside the same
    transaction (the proof entries). Returns rows removed per kind. Safe to run again."""
    from crmsync.store.sqlite import SQLiteTransaction
    from crmsync.store.sqlite_search import SearchStoreMixin

    db = db_of(store)
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
            for plan_id, policy, rid in details:  # other records' details quoting the person
                counts["plan_details"] += db.execute(
                    "UPDATE plan_items SET detail = NULL WHERE plan_id = ? AND policy = ?"
                    " AND record_id = ?",
                    (plan_id, policy, rid),
                ).rowcount
            SearchStoreMixin.index_pending(db)  # the deleted rows leave the search index
            if finish is not None:
                finish(SQLiteTransaction(db))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    return counts


def scrub(store: Store) -> dict[str, int]:
    """Rewrite what may still hold deleted bytes: merge the search index's segments
    ('optimize': erased tokens leave the index instead of being masked), ``VACUUM`` (earlier
    versions of a record, written over by pulls without secure_delete, may sit in free pages
    and freeblocks anywhere in the file; a rebuild is the only way to be sure), then
    checkpoint and truncate the WAL. Returns the WAL checkpoint's (busy, log, checkpointed):
    busy = 1 means a reader in another process kept the WAL from being emptied."""
    db = db_of(store)
    db.execute("PRAGMA secure_delete = ON")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO mirror_fts (mirror_fts) VALUES ('optimize')")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        db.execute("VACUUM")
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    busy, log, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return {"busy": int(busy), "log": int(log), "checkpointed": int(done)}
