"""``forget`` drops snapshots; ``prune`` drops the blobs no snapshot uses any more.

Prune keeps every pack's logical id and the ordinals of its surviving blobs, so manifests and
snapshot ids never change. Order, so that a prune stopped at any point loses nothing: write
rewritten packs, then one new index listing every pack, then delete the old index objects,
then the old pack files. Readers that meet two entries for one pack take the one whose file
exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from crmsync.snapshots import format as fmt
from crmsync.snapshots.catalog import IndexWriter, PackEntry

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

REPACK_BELOW = 0.5  # rewrite a pack when less than this share of its stored blobs is used


@dataclass
class PruneReport:
    dry_run: bool
    packs_deleted: int = 0
    packs_rewritten: int = 0
    blobs_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    leftovers_removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def lines(self) -> list[str]:
        verb = "would free" if self.dry_run else "freed"
        return [
            f"{self.packs_deleted} packs deleted, {self.packs_rewritten} rewritten,"
            f" {self.blobs_removed} unused record versions removed",
            f"{verb} {(self.bytes_before - self.bytes_after) / 1e6:.2f} MB"
            f" ({self.bytes_before / 1e6:.2f} MB of packs -> {self.bytes_after / 1e6:.2f} MB)",
        ]


def forget(repo: Repository, snapshot_ids: list[str]) -> None:
    """Delete snapshots (their manifests). Their data stays until ``prune``."""
    with repo.locked(exclusive=False):
        for sid in snapshot_ids:
            repo.backend.delete(fmt.SNAPSHOTS + repo.resolve(sid))


def prune(repo: Repository, *, dry_run: bool = False, repack_below: float = REPACK_BELOW
          ) -> PruneReport:  # fmt: skip
    rep = PruneReport(dry_run=dry_run)
    with repo.locked(exclusive=True):
        repo.forget_catalog()
        catalog = repo.catalog
        used = {pid: np.zeros(e.count, dtype=bool) for pid, e in catalog.packs.items()}
        for sid in repo.snapshot_ids():
            manifest = repo.manifest(sid)  # a damaged manifest stops prune
            for pack_id, bits in manifest.packs:
                used[pack_id] |= bits
            for pack_id, bits in manifest.erased.items():
                used[pack_id] |= bits  # a tombstone a manifest names keeps its entry
        sizes = {n.rsplit("/", 1)[-1]: repo.backend.size(n) for n in repo.backend.list(fmt.PACKS)}
        stored_names = {e.stored for e in catalog.packs.values()}
        rep.leftovers_removed = sorted(set(sizes) - stored_names)
        keep_entries: list[PackEntry] = []
        old_files: list[str] = list(rep.leftovers_removed)
        changed = False
        for entry in catalog.packs.values():
            size = sizes.get(entry.stored, 0)
            rep.bytes_before += size
            live_rows = used[entry.id][entry.ordinals]
            n_live = int(live_rows.sum())
            tombs = used[entry.id][entry.erased]
            if n_live == len(entry.ordinals) or (
                n_live and n_live >= repack_below * len(entry.ordinals)
            ):
                keep_entries.append(entry)
                rep.bytes_after += size
                continue
            changed = True
            rep.blobs_removed += len(entry.ordinals) - n_live
            old_files.append(entry.stored)
            if n_live == 0 and not tombs.any():
                rep.packs_deleted += 1
                continue
            rep.packs_rewritten += 1
            new_entry, new_size = _rewrite(repo, entry, live_rows, dry_run, tombs)
            keep_entries.append(new_entry)
            rep.bytes_after += new_size
        if dry_run or not (changed or rep.leftovers_removed):
            return rep
        old_indexes = list(repo.backend.list(fmt.INDEX))
        if changed:
            erased = any(len(e.erased) for e in keep_entries)
            writer = IndexWriter(fmt.ERASED_VERSION if erased else fmt.BASE_VERSION)
            writer.add(keep_entries)
            payload = writer.finish()
            new_index = None
            if payload is not None:
                new_index = fmt.INDEX + repo.write_object(fmt.INDEX, payload, fmt.KIND_INDEX)[0]
            for name in old_indexes:
                if name != new_index:  # identical content gets the identical name
                    repo.backend.delete(name)
        for stored in old_files:
            repo.backend.delete(fmt.pack_name(stored))
            repo.cache.drop(stored)
        repo.forget_catalog()
    return rep


def _rewrite(
    repo: Repository, entry: PackEntry, live_rows: np.ndarray, dry_run: bool,
    tombs: np.ndarray | None = None,
) -> tuple[PackEntry, int]:  # fmt: skip
    """The pack with only ``live_rows`` of its stored lines (possibly none: an empty pack
    keeps the entry of tombstones that manifests still name); ``tombs``: which of the entry's
    tombstones to keep (default all)."""
    lines = repo.pack_lines(entry)
    rows = np.nonzero(live_rows)[0]
    payload = fmt.compress(b"".join(lines[r] + b"\n" for r in rows), repo.level)
    ids = entry.record_ids()
    if dry_run:
        stored, size = entry.stored, len(payload)
    else:
        stored, size = repo.write_object(fmt.PACKS, payload, fmt.KIND_PACK)
        cached = repo.cache.get(entry.stored, len(entry.ordinals))
        if cached is not None:
            repo.cache.put(stored, cached[rows])
    keep = np.ones(len(entry.erased), dtype=bool) if tombs is None else tombs
    new = PackEntry(
        entry.id, stored, entry.module, entry.count, entry.ordinals[rows],
        "\n".join(ids[r] for r in rows), entry.index_name, entry.erased[keep],
        tuple(r for r, k in zip(entry.erased_refs, keep, strict=True) if k),
    )  # fmt: skip
    return new, size
