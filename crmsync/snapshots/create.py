"""One snapshot create: join the incoming records with the parent, write what is new.

The parent is a :class:`RecordSet` (sorted arrays, ~40 bytes a record); incoming records are
taken in batches, so memory is the parent's arrays plus one pack per module, whatever the
number of records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from crmsync.snapshots import format as fmt
from crmsync.snapshots.catalog import IndexWriter, PackEntry
from crmsync.snapshots.recordset import LOC_MASK, RecordSet, key_hashes
from crmsync.snapshots.repository import RecordVersion

if TYPE_CHECKING:
    from crmsync.snapshots.repository import RecordChange, Repository

# (module, record ids) -> record id -> canonical JSON text, for records given without text
TextLoader = Callable[[str, list[str]], Mapping[str, str]]

BATCH = 4096


def short_ids(hashes: np.ndarray) -> np.ndarray:
    """The first 128 bits of (n, 32) blob ids as (n, 2) uint64: enough to tell two versions of
    one record apart (a changed record keeps the old prefix with probability 2^-128)."""
    return np.ascontiguousarray(hashes[:, :16]).view("<u8").reshape(-1, 2)


class _PackBuffer:
    def __init__(self, module: str):
        self.module = module
        self.lines: list[bytes] = []
        self.ids: list[str] = []
        self.hashes: list[bytes] = []
        self.keys: list[np.ndarray] = []  # key hash rows, for the new snapshot's record set
        self.size = 0


class SnapshotWriter:
    def __init__(
        self,
        repo: Repository,
        modules: tuple[str, ...],
        parent_id: str | None,
        load_texts: TextLoader | None = None,
    ):
        self.repo = repo
        self.load_texts = load_texts
        self.modules = modules
        self.parent = repo.record_set(parent_id, with_hashes=True) if parent_id else None
        n = len(self.parent) if self.parent else 0
        self.seen = np.zeros(n, dtype=bool)
        self.keep = np.zeros(n, dtype=bool)
        self.buffers: dict[str, _PackBuffer] = {}
        self.new_packs: list[PackEntry] = []
        self.index = IndexWriter()
        self.added_keys: list[np.ndarray] = []
        self.counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0}
        self.new_bytes = 0
        self.new_keys: list[np.ndarray] = []
        self.new_short: list[np.ndarray] = []
        self.hits = 0

    def run(self, records: Iterable[RecordVersion]) -> dict[str, Any]:
        it = iter(records)
        while batch := list(islice(it, BATCH)):
            self._batch(batch)
        self.counts["removed"] = int((~self.seen).sum())
        return self._finish()

    def run_changes(self, changes: Iterable[RecordChange]) -> dict[str, Any]:
        """The parent's records, updated by ``changes`` only: the records new, changed or gone
        since the parent (by module, then record id, as the whole stream would give them;
        rows given that did not change are harmless). The result is the snapshot ``run`` makes
        of the whole stream; the cost is that of the changes (plus the parent's bitmaps)."""
        if self.parent is None:
            raise ValueError("a snapshot of changes needs its parent")
        self.keep[:] = True
        it = iter(changes)
        while batch := list(islice(it, BATCH)):
            gone = [c for c in batch if c.deleted]
            if gone:
                keys = key_hashes([c.module for c in gone], [c.record_id for c in gone])
                rows = self.parent.find(keys)
                hit = rows[rows >= 0]
                if bool(self.seen[hit].any()):
                    raise ValueError("the same record was given twice to one snapshot")
                self.seen[hit] = True
                self.hits += len(hit)
                self.keep[hit] = False
                self.counts["removed"] += len(hit)
            live = [RecordVersion(*c[:4]) for c in batch if not c.deleted]
            if live:
                self._batch(live)
        # the records not given are the parent's, unchanged
        self.counts["unchanged"] = (
            len(self.parent) - self.counts["changed"] - self.counts["removed"]
        )
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        for buf in self.buffers.values():
            self._flush(buf)
        if self.hits != int(self.seen.sum()):
            raise ValueError("the same record was given twice to one snapshot")
        added = np.concatenate(self.added_keys) if self.added_keys else np.zeros((0, 2), "<u8")
        if len(added) > 1:
            added = added[np.lexsort((added[:, 1], added[:, 0]))]
            if bool(np.any(np.all(added[1:] == added[:-1], axis=1))):
                raise ValueError("the same record was given twice to one snapshot")
        payload = self.index.finish()
        if payload is not None:  # the index naming the new packs, before the manifest
            name = fmt.INDEX + self.repo.write_object(fmt.INDEX, payload, fmt.KIND_INDEX)[0]
            for entry in self.new_packs:
                entry.index_name = name
        total = self.counts["added"] + self.counts["changed"] + self.counts["unchanged"]
        summary = {**self.counts, "new_blobs": self.counts["added"] + self.counts["changed"]}
        return {"records": total, "summary": {**summary, "new_bytes": self.new_bytes}}

    def bitmaps(self) -> list[tuple[str, np.ndarray]]:
        out: list[tuple[str, np.ndarray]] = []
        if self.parent is not None:
            kept = np.sort(self.parent.loc[self.keep])  # sorted by pack number, then ordinal
            pack_nos = kept >> np.uint64(32)
            starts = np.searchsorted(
                pack_nos, np.arange(len(self.parent.packs) + 1, dtype=np.uint64)
            )
            for no, pack_id in enumerate(self.parent.packs):
                ordinals = (kept[starts[no] : starts[no + 1]] & np.uint64(LOC_MASK)).astype(
                    np.int64
                )
                if len(ordinals):
                    bits = np.zeros(self.repo.catalog.packs[pack_id].count, dtype=bool)
                    bits[ordinals] = True
                    out.append((pack_id, bits))
        out += [(e.id, np.ones(e.count, dtype=bool)) for e in self.new_packs]
        return out

    def record_set(self) -> RecordSet:
        """The new snapshot's records: the parent's kept rows plus the written ones. Call once,
        last: it releases the parent's arrays to keep peak memory at about two record sets."""
        packs = list(self.parent.packs) if self.parent else []
        kh, loc, sha = [], [], []
        if self.parent is not None:
            assert self.parent.sha is not None
            kh.append(self.parent.kh[self.keep])
            loc.append(self.parent.loc[self.keep])
            sha.append(self.parent.sha[self.keep])
            self.parent = None
        for entry, keys, short in zip(self.new_packs, self.new_keys, self.new_short, strict=True):
            kh.append(keys)
            first = np.uint64(len(packs)) << np.uint64(32)
            loc.append(first | np.arange(entry.count, dtype=np.uint64))
            sha.append(short)
            packs.append(entry.id)
        self.new_keys, self.new_short = [], []
        empty = np.zeros((0, 2), "<u8")
        return RecordSet(
            packs,
            np.concatenate(kh) if kh else empty,
            np.concatenate(loc).astype(np.uint64) if loc else np.zeros(0, np.uint64),
            np.concatenate(sha) if sha else empty,
        )

    def _batch(self, batch: list[RecordVersion]) -> None:
        modules, ids, _texts, blob_ids = zip(
            *batch, strict=False
        )  # rows of four, else unpacking fails
        for module in set(modules) - set(self.modules):
            raise ValueError(f"module {module!r} is not one of the snapshot's {self.modules}")
        try:
            joined = "\x01".join(ids)
        except TypeError:
            raise ValueError("record ids must be strings") from None
        if "\n" in joined or "\x00" in joined or "" in ids:
            bad = next(i for i in ids if not i or "\n" in i or "\x00" in i)
            raise ValueError(f"record id {bad!r}: must be a non-empty line of text")
        q = key_hashes(modules, ids)
        try:
            raw = bytes.fromhex("".join(blob_ids))
            if len(raw) != 32 * len(batch):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError("a record's blob_id is not a SHA-256 hex digest") from None
        short = short_ids(np.frombuffer(raw, np.uint8).reshape(len(batch), 32))
        write = np.ones(len(batch), dtype=bool)
        if self.parent is not None and len(self.parent):
            rows = self.parent.find(q)
            found = rows >= 0
            hit = rows[found]
            if bool(self.seen[hit].any()):
                raise ValueError("the same record was given twice to one snapshot")
            self.seen[hit] = True
            self.hits += len(hit)  # fewer seen than hits at the end: a duplicate in one batch
            assert self.parent.sha is not None
            same = np.all(self.parent.sha[hit] == short[found], axis=1)
            self.keep[hit[same]] = True
            self.keep[hit[~same]] = False  # run_changes starts from the parent's records
            self.counts["unchanged"] += int(same.sum())
            self.counts["changed"] += int((~same).sum())
            write[np.nonzero(found)[0][same]] = False
            added = ~found
        else:
            added = write
        self.counts["added"] += int(added.sum())
        self.added_keys.append(q[added])
        rows = np.nonzero(write)[0]
        lazy = [int(i) for i in rows if batch[int(i)].text is None]
        if lazy:
            batch = self._with_texts(batch, lazy)
        for i in rows:
            self._add(batch[int(i)], q[i])

    def _with_texts(self, batch: list[RecordVersion], rows: list[int]) -> list[RecordVersion]:
        """Fetch the text of new and changed records given without it (hash only)."""
        if self.load_texts is None:
            raise ValueError("records without text need a load_texts function")
        batch = list(batch)
        by_module: dict[str, list[int]] = {}
        for i in rows:
            by_module.setdefault(batch[i].module, []).append(i)
        for module, idx in by_module.items():
            texts = self.load_texts(module, [batch[i].record_id for i in idx])
            for i in idx:
                rec = batch[i]
                text = texts.get(rec.record_id)
                if text is None:
                    raise ValueError(
                        f"record {module}/{rec.record_id} disappeared while the snapshot was"
                        " taken; take it again"
                    )
                batch[i] = rec._replace(text=text)
        return batch

    def _add(self, rec: RecordVersion, key: np.ndarray) -> None:
        raw = rec.text.encode("utf-8")
        digest = hashlib.sha256(raw).digest()
        if digest.hex() != rec.blob_id:
            raise ValueError(
                f"record {rec.module}/{rec.record_id}: blob_id is not its SHA-256 (changed while"
                " the snapshot was taken? take it again)"
            )
        if b"\n" in raw:  # canonical JSON escapes newlines; a raw one would split the pack line
            raise ValueError(f"record {rec.module}/{rec.record_id}: text is not canonical JSON")
        buf = self.buffers.get(rec.module)
        if buf is None:
            buf = self.buffers[rec.module] = _PackBuffer(rec.module)
        buf.lines.append(raw)
        buf.ids.append(rec.record_id)
        buf.hashes.append(digest)
        buf.keys.append(key)
        buf.size += len(raw) + 1
        if buf.size >= self.repo.pack_target:
            self._flush(buf)

    def _flush(self, buf: _PackBuffer) -> None:
        if not buf.lines:
            return
        payload = fmt.compress(b"\n".join(buf.lines) + b"\n", self.repo.level)
        pack_id, size = self.repo.write_object(fmt.PACKS, payload, fmt.KIND_PACK)
        n = len(buf.lines)
        entry = PackEntry(
            pack_id, pack_id, buf.module, n, np.arange(n, dtype=np.uint32), "\n".join(buf.ids), ""
        )
        short = short_ids(np.frombuffer(b"".join(buf.hashes), np.uint8).reshape(n, 32))
        self.repo.cache.put(pack_id, short)
        self.repo.catalog.add(entry)
        self.index.add([entry])
        self.new_packs.append(entry)
        self.new_keys.append(np.asarray(buf.keys, dtype="<u8").reshape(n, 2))
        self.new_short.append(short)
        self.new_bytes += size
        buf.lines, buf.ids, buf.hashes, buf.keys, buf.size = [], [], [], [], 0
