"""What a snapshot of a connection holds: the mirror's records that are still in the CRM.

A mirror row already is a snapshot blob: ``data`` is canonical JSON and ``content_hash`` its
SHA-256, so records stream from the store into :meth:`Repository.create` without being parsed
or re-serialised. Records deleted in the CRM (``crm_deleted_at`` set) are left out: they are
gone from the CRM, and the older snapshots that hold them keep them. Archived and voided
records are included, as the mirror holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from crmsync.snapshots.create import TextLoader
from crmsync.snapshots.repository import RecordChange, RecordVersion, Repository, SnapshotInfo
from crmsync.store.base import ChangePoint, SnapshotMark, Store


def mirror_versions(
    store: Store, connection: str, modules: Iterable[str], *, with_text: bool = True
) -> Iterator[RecordVersion]:
    """The live records of ``modules`` of ``connection``, by module then record id, read in
    keyset pages (memory: one page). Without ``with_text`` only ids and hashes are read; pass
    :func:`mirror_texts` as ``load_texts`` so create fetches the few texts it needs."""
    for module in sorted(set(modules)):
        for record_id, text, digest in store.iter_record_texts(
            connection, module, with_text=with_text
        ):
            yield RecordVersion(module, record_id, text, digest)


def mirror_texts(store: Store, connection: str) -> TextLoader:
    def load(module: str, record_ids: list[str]) -> dict[str, str]:
        return {
            rid: text
            for rid, (text, _) in store.record_texts(connection, module, record_ids).items()
        }

    return load


def mirror_modules(store: Store, connection: str) -> list[str]:
    """The modules the mirror holds for ``connection`` (records still in the CRM or not)."""
    return sorted({c.module for c in store.module_counts(connection)})


def snapshot_mirror(
    repo: Repository,
    store: Store,
    connection: str,
    modules: Sequence[str],
    *,
    operator: str,
    reason: str,
    tags: Iterable[str] = (),
    time: datetime | None = None,
) -> SnapshotInfo:
    """A whole snapshot of the mirror's ``modules`` of ``connection``, parent: the newest whole
    snapshot of them. When the store's mark says the mirror was last taken into that very
    snapshot, of this repository, and no prune or erasure has rewritten the repository since,
    only the rows changed since are read (:meth:`Repository.create_from_changes`); otherwise
    every record, as :meth:`Repository.create` always did. Both give the same snapshot."""
    modules_t = tuple(sorted(set(modules)))
    repo_id = str(repo.config["id"])
    start = store.begin_snapshot_changes()  # before the first read: later writes are "changed"
    parent = repo.latest(connection, modules_t)
    since = _usable_mark(repo, store, connection, modules_t, parent.id) if parent else None
    if parent is not None and since is not None:
        changes = (
            RecordChange(module, c.record_id, c.text, c.content_hash, c.deleted)
            for module in modules_t
            for c in store.iter_changed_record_texts(connection, module, since)
        )
        info = repo.create_from_changes(
            changes, connection=connection, modules=modules_t, parent=parent.id, tags=tags,
            operator=operator, reason=reason, time=time,
        )  # fmt: skip
    else:  # after a first snapshot most records are unchanged: read hashes, fetch the rest
        info = repo.create(
            mirror_versions(store, connection, modules_t, with_text=parent is None),
            load_texts=mirror_texts(store, connection), connection=connection,
            modules=modules_t, tags=tags, parent=parent.id if parent else None,
            operator=operator, reason=reason, time=time,
        )  # fmt: skip
    if start is not None:
        store.put_snapshot_mark(
            SnapshotMark(connection, modules_t, repo_id, info.id, tuple(repo.index_names()), start)
        )
    return info


def _usable_mark(
    repo: Repository, store: Store, connection: str, modules: tuple[str, ...], parent_id: str
) -> ChangePoint | None:
    """Where to read changes from, if the mark describes ``parent_id`` as it is now."""
    mark = store.snapshot_mark(connection, modules, str(repo.config["id"]))
    if mark is None or mark.snapshot_id != parent_id:
        return None  # never marked, or another snapshot was taken since without the store
    if not set(mark.indexes) <= set(repo.index_names()):
        return None  # a prune or an erasure replaced the index objects: read everything
    return mark.since
