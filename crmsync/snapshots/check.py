"""``verify``: prove every snapshot readable, or name exactly what is damaged.

Structure: every index and manifest decrypts, decompresses, parses and hashes to its name;
every pack a manifest uses is listed and present. ``read_data``: every pack hashes to its name
and decompresses to exactly the blobs its index lists, and every blob is re-hashed (the local
blob-id cache is refreshed from what was read). Damage is reported down to the (snapshot,
module, record id) whose stored version is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from crmsync.snapshots import format as fmt
from crmsync.snapshots.catalog import Catalog
from crmsync.snapshots.errors import SnapshotError

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

MAX_LISTED_RECORDS = 1000  # per snapshot; the count is always exact


@dataclass(frozen=True)
class DamagedRecord:
    snapshot: str
    module: str
    record_id: str
    pack: str
    problem: str  # "missing" (its pack is gone) or "damaged" (its pack failed to read)


@dataclass
class VerifyReport:
    snapshots_checked: int = 0
    packs_checked: int = 0
    blobs_checked: int = 0
    read_data: bool = False
    damaged_indexes: dict[str, str] = field(default_factory=dict)  # name -> problem
    damaged_packs: dict[str, str] = field(default_factory=dict)  # logical pack id -> problem
    damaged_snapshots: dict[str, str] = field(default_factory=dict)  # snapshot id -> problem
    damaged_records: list[DamagedRecord] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)  # leftovers, not errors
    erased_versions: int = 0  # manifest bits on erasure tombstones: erased on purpose, not lost

    @property
    def ok(self) -> bool:
        return not (
            self.damaged_indexes or self.damaged_packs or self.damaged_snapshots
            or self.damaged_records
        )  # fmt: skip

    def lines(self) -> list[str]:
        out = [
            f"checked {self.snapshots_checked} snapshots, {self.packs_checked} packs"
            + (f", {self.blobs_checked} blobs re-hashed" if self.read_data else "")
        ]
        out += [f"index {n}: {p}" for n, p in sorted(self.damaged_indexes.items())]
        out += [f"pack {n}: {p}" for n, p in sorted(self.damaged_packs.items())]
        out += [f"snapshot {n}: {p}" for n, p in sorted(self.damaged_snapshots.items())]
        out += [
            f"snapshot {r.snapshot} record {r.module}/{r.record_id}: {r.problem} (pack {r.pack})"
            for r in self.damaged_records
        ]
        if self.unreferenced_packs:
            out.append(
                f"{len(self.unreferenced_packs)} pack files no index lists (left by an interrupted"
                " create; harmless, prune removes them)"
            )
        if self.erased_versions:
            out.append(
                f"{self.erased_versions} record versions were erased on request (tombstones;"
                " not damage)"
            )
        out.append("no errors" if self.ok else "repository is DAMAGED")
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok, "snapshots_checked": self.snapshots_checked,
            "packs_checked": self.packs_checked, "blobs_checked": self.blobs_checked,
            "read_data": self.read_data, "damaged_indexes": self.damaged_indexes,
            "damaged_packs": self.damaged_packs, "damaged_snapshots": self.damaged_snapshots,
            "damaged_records": [r.__dict__ for r in self.damaged_records],
            "unreferenced_packs": self.unreferenced_packs,
            "erased_versions": self.erased_versions,
        }  # fmt: skip


def verify(repo: Repository, read_data: bool = False) -> VerifyReport:
    """Never raises for damage: everything found goes into the report."""
    rep = VerifyReport(read_data=read_data)
    repo.forget_catalog()
    catalog = Catalog.load(repo.backend, repo.read_object, errors=rep.damaged_indexes)
    present = {n.rsplit("/", 1)[-1] for n in repo.backend.list(fmt.PACKS)}
    bad: dict[str, str] = {}  # logical pack id -> "missing" / "damaged"
    for entry in catalog.packs.values():
        rep.packs_checked += 1
        if entry.stored not in present:
            rep.damaged_packs[entry.id] = "missing"
            bad[entry.id] = "missing"
        elif read_data:
            try:
                lines = repo.pack_lines(entry)
            except SnapshotError as exc:
                rep.damaged_packs[entry.id] = str(exc)
                bad[entry.id] = "damaged"
                continue
            from crmsync.snapshots.repository import short_blob_ids

            repo.cache.put(entry.stored, short_blob_ids(lines))
            rep.blobs_checked += len(lines)
    rep.unreferenced_packs = sorted(present - {e.stored for e in catalog.packs.values()})
    repo._catalog = catalog
    for sid in repo.snapshot_ids():
        rep.snapshots_checked += 1
        try:
            manifest = repo.manifest(sid)
        except SnapshotError as exc:
            rep.damaged_snapshots[sid] = str(exc)
            continue
        rep.erased_versions += manifest.erased_count
        lost = 0
        for pack_id, bits in manifest.packs:
            problem = bad.get(pack_id)
            if problem is None:
                continue
            ordinals = np.nonzero(bits)[0]
            lost += len(ordinals)
            room = MAX_LISTED_RECORDS - sum(1 for r in rep.damaged_records if r.snapshot == sid)
            for module, rid in repo.locate(pack_id, ordinals[: max(room, 0)]):
                rep.damaged_records.append(DamagedRecord(sid, module, rid, pack_id, problem))
        if lost:
            rep.damaged_snapshots[sid] = f"{lost} records lost or damaged"
    repo.forget_catalog()
    return rep
