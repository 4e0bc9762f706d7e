"""Erasure in the snapshot repository: make every stored version of some records unreadable.

A data-subject erasure (``crmsync erase``) must reach the backups too. Every pack holding a
version of an erased record is rewritten without those lines, the way ``prune`` rewrites a
sparse pack (same logical id, new stored name), and the index entry lists the erased ordinals
as *tombstones* (``"erased": [[ordinal, record ref], ...]``, the ref being the sha256 of the
record id the audit log's proof names). Manifests are never touched, so snapshot ids do not
change; a manifest bit on a tombstone is an erased version, which readers skip and ``verify``
counts apart from damage. The old pack files, the old index objects and every pack file no
index lists are deleted, and the local blob-id cache forgets them.

Why rewriting and not crypto-shredding (a key per record, destroyed on erasure): packs
compress a module's records together as one stream (docs/snapshot-format.md), and a key per
record would mean a frame per record, ~5.6x the size; it would also leave unencrypted
repositories without a way to erase. Rewriting costs one pack read and write per affected
pack, and erasures are rare.

Format: the first erasure raises the repository's ``config`` version to 2 (before any other
write), and index objects holding tombstones are version 2, so an older crmsync refuses the
repository with an "upgrade" error instead of reporting erased versions as damaged.

Order, so that an erasure stopped at any point can be finished by running it again: config,
rewritten packs, one new index listing every pack, deletion of the old indexes, then of every
pack file the new index does not name. Until the end a reader may still find the old pack (two
entries for one logical pack: whichever's file exists); running again converges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import orjson

from crmsync.audit.model import record_ref
from crmsync.snapshots import format as fmt
from crmsync.snapshots.catalog import IndexWriter, PackEntry

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Manifest, Repository

# connection -> {(module, record id)}: the records to erase, per connection
Targets = Mapping[str, set[tuple[str, str]]]
RecordKey = tuple[str, str, str]  # (connection, module, record id)


@dataclass
class Versions:
    """Where a record's versions sit in the repository: stored blobs and snapshots using them."""

    blobs: int = 0
    snapshots: set[str] = field(default_factory=set)
    kept: int = 0  # blobs a kept (legally held) snapshot uses: not erased


@dataclass
class EraseReport:
    blobs_erased: int = 0
    blobs_kept: int = 0  # used by a kept (held) snapshot: left in place
    packs_rewritten: int = 0
    packs_deleted: int = 0  # old pack files and leftovers removed
    snapshots_affected: set[str] = field(default_factory=set)
    per_record: dict[RecordKey, int] = field(default_factory=dict)  # versions erased

    def as_dict(self) -> dict[str, object]:
        return {
            "blobs_erased": self.blobs_erased,
            "blobs_kept": self.blobs_kept,
            "packs_rewritten": self.packs_rewritten,
            "packs_deleted": self.packs_deleted,
            "snapshots_affected": len(self.snapshots_affected),
        }


def manifests(repo: Repository) -> list[tuple[str, str, Manifest]]:
    """(snapshot id, connection, manifest) of every snapshot (bitmaps: ~1 bit a record)."""
    out = []
    for sid in repo.snapshot_ids():
        manifest = repo.manifest(sid)
        out.append((sid, str(manifest.header.get("connection", "")), manifest))
    return out


def pack_owners(snaps: list[tuple[str, str, Manifest]]) -> dict[str, set[str]]:
    """Logical pack id -> the connections whose snapshots use it."""
    owners: dict[str, set[str]] = {}
    for _sid, connection, manifest in snaps:
        for pack_id, _bits in manifest.packs:
            owners.setdefault(pack_id, set()).add(connection)
        for pack_id in manifest.erased:
            owners.setdefault(pack_id, set()).add(connection)
    return owners


def _connections(owners: dict[str, set[str]], pack_id: str, known: Iterable[str]) -> set[str]:
    # A pack no snapshot uses (left by an interrupted create) belongs to nobody: treat it as
    # every connection's, so that erasure reaches it too.
    return owners.get(pack_id) or set(known)


def scan(
    repo: Repository, matches: Callable[[bytes], bool], connections: Iterable[str]
) -> Iterator[RecordKey]:
    """Every (connection, module, record id) with a stored version for which ``matches(blob
    bytes)`` holds. Memory: one pack at a time."""
    repo.forget_catalog()
    owners = pack_owners(manifests(repo))
    known = list(connections)
    for entry in list(repo.catalog.packs.values()):
        if not len(entry.ordinals):
            continue
        ids = entry.record_ids()
        hits = {ids[row] for row, line in enumerate(repo.pack_lines(entry)) if matches(line)}
        for connection in sorted(_connections(owners, entry.id, known)):
            for rid in sorted(hits):
                yield (connection, entry.module, rid)


def versions(
    repo: Repository, targets: Targets, keep: Iterable[str] = ()
) -> dict[RecordKey, Versions]:
    """Stored versions and snapshots of each target record (read from the index and the
    manifests; no pack is read); ``kept``: how many of them a snapshot in ``keep`` uses."""
    repo.forget_catalog()
    snaps = manifests(repo)
    owners = pack_owners(snaps)
    kept = _kept_bits(snaps, keep)
    out: dict[RecordKey, Versions] = {}
    rows_of: dict[str, list[tuple[int, RecordKey]]] = {}  # pack -> (ordinal, record)
    for entry in repo.catalog.packs.values():
        wanted = _wanted(targets, _connections(owners, entry.id, targets))
        for row, rid in enumerate(entry.record_ids()):
            for connection in wanted.get((entry.module, rid), ()):
                key = (connection, entry.module, rid)
                found = out.setdefault(key, Versions())
                found.blobs += 1
                ordinal = int(entry.ordinals[row])
                found.kept += int(entry.id in kept and bool(kept[entry.id][ordinal]))
                rows_of.setdefault(entry.id, []).append((ordinal, key))
    for sid, connection, manifest in snaps:
        for pack_id, bits in manifest.packs:
            for ordinal, key in rows_of.get(pack_id, ()):
                if key[0] == connection and bits[ordinal]:
                    out[key].snapshots.add(sid)
    return out


def _kept_bits(
    snaps: list[tuple[str, str, Manifest]], keep: Iterable[str]
) -> dict[str, np.ndarray]:
    """Logical pack id -> the bits that snapshots in ``keep`` (ids or unique prefixes, as a
    legal hold names them) use: versions a hold keeps, which erasure must leave."""
    prefixes = tuple(k for k in keep if k)
    out: dict[str, np.ndarray] = {}
    for sid, _connection, manifest in snaps:
        if prefixes and sid.startswith(prefixes):
            for pack_id, bits in manifest.packs:
                out[pack_id] = out[pack_id] | bits if pack_id in out else bits.copy()
    return out


def _wanted(targets: Targets, connections: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    wanted: dict[tuple[str, str], list[str]] = {}
    for connection in connections:
        for key in targets.get(connection, ()):
            wanted.setdefault(key, []).append(connection)
    return wanted


def erase(repo: Repository, targets: Targets, keep: Iterable[str] = ()) -> EraseReport:
    """Remove every stored version of the target records (see the module docstring), except
    versions that a snapshot in ``keep`` uses (a legal hold on snapshots ranks above an
    erasure request)."""
    rep = EraseReport()
    keep = list(keep)
    with repo.locked(exclusive=True):
        repo.forget_catalog()
        snaps = manifests(repo)
        owners = pack_owners(snaps)
        kept = _kept_bits(snaps, keep)
        catalog = repo.catalog
        rewritten: list[tuple[PackEntry, PackEntry, np.ndarray]] = []  # (old, new, dropped)
        for entry in catalog.packs.values():
            wanted = _wanted(targets, _connections(owners, entry.id, targets))
            if not wanted:
                continue
            ids = entry.record_ids()
            drop = np.array([(entry.module, rid) in wanted for rid in ids], dtype=bool)
            if entry.id in kept:
                held = kept[entry.id][entry.ordinals] & drop
                rep.blobs_kept += int(held.sum())
                drop &= ~held
            if not drop.any():
                continue
            new = _without(repo, entry, drop)
            rewritten.append((entry, new, drop))
            for rid in (ids[r] for r in np.nonzero(drop)[0]):
                for connection in wanted[(entry.module, rid)]:
                    key = (connection, entry.module, rid)
                    rep.per_record[key] = rep.per_record.get(key, 0) + 1
            rep.blobs_erased += int(drop.sum())
            rep.packs_rewritten += 1
        for entry, new, drop in rewritten:
            catalog.packs[entry.id] = new
            gone = entry.ordinals[drop]
            for sid, _connection, manifest in snaps:
                if any(pid == entry.id and bits[gone].any() for pid, bits in manifest.packs):
                    rep.snapshots_affected.add(sid)
        stored = {e.stored for e in catalog.packs.values()}
        files = [n for n in repo.backend.list(fmt.PACKS) if n.rsplit("/", 1)[-1] not in stored]
        indexes = list(repo.backend.list(fmt.INDEX))
        if not rewritten and not files and len(indexes) <= 1:
            return rep  # nothing stored of these records, nothing left over: done
        has_tombs = any(len(e.erased) for e in catalog.packs.values())
        if has_tombs:
            _raise_version(repo)
        writer = IndexWriter(fmt.ERASED_VERSION if has_tombs else fmt.BASE_VERSION)
        writer.add(catalog.packs.values())
        payload = writer.finish()
        new_index = None
        if payload is not None:
            new_index = fmt.INDEX + repo.write_object(fmt.INDEX, payload, fmt.KIND_INDEX)[0]
        for name in indexes:
            if name != new_index:
                repo.backend.delete(name)
        for name in files:
            repo.backend.delete(name)
            repo.cache.drop(name.rsplit("/", 1)[-1])
            rep.packs_deleted += 1
        repo.cache.drop_sets()
        repo._sets = {}
        repo.forget_catalog()
    return rep


def _without(repo: Repository, entry: PackEntry, drop: np.ndarray) -> PackEntry:
    """Write the pack without the lines ``drop`` marks; its entry with them as tombstones."""
    lines = repo.pack_lines(entry)
    keep = np.nonzero(~drop)[0]
    payload = fmt.compress(b"".join(lines[r] + b"\n" for r in keep), repo.level)
    stored, _size = repo.write_object(fmt.PACKS, payload, fmt.KIND_PACK)
    cached = repo.cache.get(entry.stored, len(entry.ordinals))
    if cached is not None:
        repo.cache.put(stored, cached[keep])
    ids = entry.record_ids()
    tombs = dict(zip(entry.erased.tolist(), entry.erased_refs, strict=True))
    for r in np.nonzero(drop)[0]:
        tombs[int(entry.ordinals[r])] = record_ref(ids[r])
    order = sorted(tombs)
    return PackEntry(
        entry.id, stored, entry.module, entry.count, entry.ordinals[keep],
        "\n".join(ids[r] for r in keep), entry.index_name,
        np.asarray(order, dtype=np.uint32), tuple(tombs[k] for k in order),
    )  # fmt: skip


def _raise_version(repo: Repository) -> None:
    """Mark the repository as holding tombstones (format version 2) before writing them."""
    if int(repo.config.get("version", fmt.BASE_VERSION)) >= fmt.ERASED_VERSION:
        return
    config = dict(repo.config)
    config["version"] = fmt.ERASED_VERSION
    repo._put(fmt.CONFIG_NAME, orjson.dumps(config, option=orjson.OPT_INDENT_2) + b"\n")
    repo.config = config
