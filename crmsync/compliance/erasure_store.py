"""An erasure's questions to the store, in the erasure's terms: which rows hold the person's
keys (:class:`MirrorHit`), which legacy copies and plan details quote them, and removing every
local trace. The store does the work (:mod:`crmsync.store.sqlite_erasure` says how the SQLite
store finds candidates and what it deletes, under ``secure_delete``); here the
:class:`~crmsync.compliance.erasure_match.Matcher` decides what really matches.

The search index is no pre-filter here: it leaves owner fields and date-like values out
(crmsync.search.text) and does not fold full-width forms, so it cannot prove that a record
does *not* hold an address; the scan costs ~6 s per million records (benches/erase.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from crmsync.compliance.erasure_match import Matcher, RecordRef
from crmsync.store import Store
from crmsync.store.base import StoreTransaction


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
    for rec in store.mirror_candidates(matcher.candidate, connections):
        fields = matcher.fields(rec.data)
        if fields:
            yield MirrorHit(rec.connection, rec.module, rec.record_id, rec.status,
                            rec.crm_deleted_at is None, rec.modified_at, rec.content_hash,
                            tuple(fields))  # fmt: skip


def mirror_rows(store: Store, refs: Iterable[RecordRef]) -> dict[RecordRef, MirrorHit]:
    """The mirror rows of records named by id (absent ones are left out)."""
    out: dict[RecordRef, MirrorHit] = {}
    for conn, module, rid in refs:
        found = store.mirror_values(
            conn, module, [rid], ["status", "crm_deleted_at IS NULL", "modified_at", "content_hash"]
        )
        if rid in found:
            row = found[rid]
            out[(conn, module, rid)] = MirrorHit(conn, module, rid, row[0], bool(row[1]),
                                                 row[2], row[3], ())  # fmt: skip
    return out


def find_legacy(store: Store, matcher: Matcher, connections: Sequence[str]) -> set[RecordRef]:
    """Records of which a legacy copy (``snapshot_objects``) holds one of the person's keys."""
    if not matcher.searches_content or not connections:
        return set()
    return {
        (conn, module, rid)
        for conn, module, rid, data in store.legacy_candidates(matcher.candidate, connections)
        if matcher.fields(data)
    }


def find_plan_details(
    store: Store, matcher: Matcher, skip: set[RecordRef]
) -> list[tuple[str, str, str]]:
    """(plan id, part, record id) of plan items of *other* records whose detail quotes one of
    the person's keys (a duplicate cluster's key, a value computed from theirs)."""
    if not matcher.searches_content:
        return []
    out = []
    for plan_id, policy, conn, module, rid, detail in store.plan_detail_candidates(
        matcher.candidate
    ):
        if (conn, module, rid) not in skip and _quotes(matcher, detail):
            out.append((plan_id, policy, rid))
    return out


def _quotes(matcher: Matcher, detail: Any) -> bool:
    return bool(matcher.fields({"detail": detail}))


def legacy_copies(store: Store, refs: Sequence[RecordRef]) -> dict[RecordRef, int]:
    """Legacy copies (``snapshot_objects``) kept of each record."""
    out: dict[RecordRef, int] = {}
    for conn, module, rid in refs:
        n = store.legacy_copy_count(conn, module, rid)
        if n:
            out[(conn, module, rid)] = n
    return out


def erase_local(
    store: Store,
    refs: Sequence[RecordRef],
    keep_plan: str,
    finish: Callable[[StoreTransaction], None] | None = None,
    details: Sequence[Sequence[str]] = (),
) -> dict[str, int]:
    """Remove every local trace of ``refs`` (:meth:`Store.erase_records`), the details of the
    erasure plan ``keep_plan`` excepted (they hold no values); ``finish(tx)`` runs inside the
    same transaction (the proof entries). Returns rows removed per kind. Safe to run again."""
    return store.erase_records(refs, keep_plan, details, finish)


def scrub(store: Store) -> dict[str, int]:
    """Rewrite what may still hold deleted bytes (:meth:`Store.scrub`). Returns the WAL
    checkpoint's (busy, log, checkpointed): busy = 1 means a reader in another process kept
    the WAL from being emptied."""
    return store.scrub()
