"""Search records that exist only in snapshots (``crmsync search --include-snapshots``).

Snapshots are read record by record (the repository streams one pack at a time), matched in
Python with the index's semantics (crmsync.search.text.record_text, SearchQuery.matches) and
the filters' (crmsync.search.filters.accepts). A snapshot record whose exact version the mirror
holds is skipped: the mirror's search finds it. What is left are records gone from the mirror
and older versions of mirrored records; each version is reported once, from the newest snapshot
holding it. Memory: one pack, the rows found (at most ``limit``) and their keys.

Which snapshots: by default the newest whole snapshot of each (connection, modules) group —
what was in the CRM at the last backup; ``all_snapshots`` reads every snapshot, pre-change
copies included, newest first. A row's status is the record's status in the mirror when it is
still mirrored, else ``purged`` (gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmsync.search.filters import MODIFIED_KEYS, accepts, first_time
from crmsync.search.model import SearchRequest
from crmsync.search.text import record_text
from crmsync.store.base import Store, canonical_record

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository, SnapshotInfo, SnapshotRecord

BATCH = 500  # matched records looked up in the mirror at once


@dataclass(frozen=True)
class SnapshotHit:
    snapshot_id: str
    snapshot_time: str
    connection: str
    module: str
    record_id: str
    status: str
    modified_at: str | None
    data: dict[str, Any]


def chosen_snapshots(
    infos: Iterable[SnapshotInfo], connection: str | None, *, all_snapshots: bool
) -> list[SnapshotInfo]:
    """The snapshots to read, newest first."""
    infos = [s for s in infos if connection is None or s.connection == connection]
    if not all_snapshots:
        newest: dict[tuple[str, tuple[str, ...]], SnapshotInfo] = {}
        for info in infos:  # oldest first: the last one of a group wins
            if info.scope == "all":
                newest[(info.connection, tuple(sorted(info.modules)))] = info
        infos = list(newest.values())
    return sorted(infos, key=lambda s: (s.time, s.id), reverse=True)


def _records(repo: Repository, info: SnapshotInfo, modules: tuple[str, ...]) -> Iterator[Any]:
    if not modules:
        yield from repo.records(info.id)
        return
    for module in modules:
        if module in info.modules:
            yield from repo.records(info.id, module=module)


def snapshot_hits(
    repo: Repository,
    store: Store,
    request: SearchRequest,
    *,
    all_snapshots: bool = False,
) -> list[SnapshotHit]:
    """Up to ``request.limit`` matching snapshot-only record versions, newest snapshot first."""
    filters = request.filters
    query = request.query
    hits: list[SnapshotHit] = []
    seen: set[tuple[str, str, str, str]] = set()
    for info in chosen_snapshots(repo.list(), filters.connection, all_snapshots=all_snapshots):
        batch: list[SnapshotRecord] = []
        for rec in _records(repo, info, filters.modules):
            if query is not None and not query.matches(record_text(rec.data)):
                continue
            if not accepts(filters, rec.data):
                continue
            batch.append(rec)
            if len(batch) >= BATCH:
                _add_versions(store, info, batch, request, hits, seen)
                batch = []
                if len(hits) >= request.limit:
                    return hits
        _add_versions(store, info, batch, request, hits, seen)
        if len(hits) >= request.limit:
            return hits
    return hits


def _add_versions(
    store: Store,
    info: SnapshotInfo,
    batch: list[SnapshotRecord],
    request: SearchRequest,
    hits: list[SnapshotHit],
    seen: set[tuple[str, str, str, str]],
) -> None:
    """Add the records of ``batch`` (all matching) that the mirror does not hold as they are."""
    by_module: dict[str, list[SnapshotRecord]] = {}
    for rec in batch:
        by_module.setdefault(rec.module, []).append(rec)
    statuses = request.filters.statuses
    for module, records in by_module.items():
        states = store.record_states(info.connection, module, [r.record_id for r in records])
        for rec in records:
            digest = canonical_record(rec.data)[1]
            state = states.get(rec.record_id)
            if state is not None and state.content_hash == digest:
                continue  # the mirror holds this version: the mirror search reports it
            status = state.status if state is not None else "purged"
            if statuses and status not in statuses:
                continue
            key = (info.connection, module, rec.record_id, digest)
            if key in seen or len(hits) >= request.limit:
                continue
            seen.add(key)
            modified = first_time(rec.data, MODIFIED_KEYS)
            hits.append(
                SnapshotHit(
                    snapshot_id=info.id,
                    snapshot_time=info.time,
                    connection=info.connection,
                    module=module,
                    record_id=rec.record_id,
                    status=status,
                    modified_at=modified if isinstance(modified, str) else None,
                    data=rec.data,
                )
            )
