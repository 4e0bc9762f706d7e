"""What a snapshot of a connection holds: the mirror's records that are still in the CRM.

A mirror row already is a snapshot blob: ``data`` is canonical JSON and ``content_hash`` its
SHA-256, so records stream from the store into :meth:`Repository.create` without being parsed
or re-serialised. Records deleted in the CRM (``crm_deleted_at`` set) are left out: they are
gone from the CRM, and the older snapshots that hold them keep them. Archived and voided
records are included, as the mirror holds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from crmsync.snapshots.create import TextLoader
from crmsync.snapshots.repository import RecordVersion
from crmsync.store.base import Store


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
