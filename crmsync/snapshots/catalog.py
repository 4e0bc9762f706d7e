"""The pack catalog: every pack the index objects name, with the record ids of its blobs.

A pack keeps its *logical* id (the hash of the pack as first written) for life: manifests
refer to (logical pack id, ordinal). ``prune`` may rewrite a sparse pack; the rewritten file
gets a new *stored* id and the index entry lists the ordinals that survived, so no manifest
(and no snapshot id) ever changes.

Memory: per pack, the record ids as one newline-joined string and the surviving ordinals as a
numpy array (~15 bytes a blob), not Python objects per blob.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import zstandard

from crmsync.snapshots import format as fmt
from crmsync.snapshots.backend import Backend, ObjectNotFound
from crmsync.snapshots.errors import RepositoryCorrupt

# (object name, kind) -> its verified, decompressed payload
ReadObject = Callable[[str, str], bytes]


@dataclass
class PackEntry:
    id: str  # logical id: what manifests name
    stored: str  # id of the file holding it now (== id until prune rewrites it)
    module: str
    count: int  # blobs the pack was written with: the length of its manifest bitmaps
    ordinals: np.ndarray  # uint32, sorted: the ordinals still stored, in file line order
    ids_text: str  # record ids of the stored blobs, "\n"-joined, in file line order
    index_name: str
    # Erasure tombstones (format version 2): ordinals whose blob was erased on purpose, and the
    # record ref (sha256 of the record id, as the audit log's proof names it) of each. A
    # manifest bit on one of these is an erased version, not damage; readers skip it.
    erased: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint32))
    erased_refs: tuple[str, ...] = ()

    def record_ids(self) -> list[str]:
        return self.ids_text.split("\n") if self.ids_text else []

    def present(self) -> np.ndarray:
        """Bool array over the logical ordinals: which are still stored."""
        bits = np.zeros(self.count, dtype=bool)
        bits[self.ordinals] = True
        return bits

    def tombstoned(self) -> np.ndarray:
        """Bool array over the logical ordinals: which were erased."""
        bits = np.zeros(self.count, dtype=bool)
        bits[self.erased] = True
        return bits

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"id": self.id, "module": self.module, "count": self.count}
        if self.stored != self.id:
            entry["stored"] = self.stored
        if len(self.ordinals) != self.count:
            entry["ordinals"] = self.ordinals.tolist()
        if len(self.erased):
            entry["erased"] = [
                [int(k), r] for k, r in zip(self.erased, self.erased_refs, strict=True)
            ]
        entry["ids"] = self.record_ids()
        return entry


def parse_entry(raw: object, index_name: str) -> PackEntry:
    if not isinstance(raw, dict):
        raise RepositoryCorrupt(f"{index_name}: a pack entry is not an object", index_name)
    try:
        pack_id, module, count, ids = raw["id"], raw["module"], int(raw["count"]), raw["ids"]
        stored = raw.get("stored", pack_id)
        ordinals = np.asarray(raw.get("ordinals", range(count)), dtype=np.int64)
        ids_text = "\n".join(ids)  # TypeError unless every id is a string
        tombs = raw.get("erased", [])
        erased = np.asarray([int(k) for k, _ in tombs], dtype=np.int64)
        refs = tuple(str(r) for _, r in tombs)
    except (KeyError, TypeError, ValueError):
        raise RepositoryCorrupt(
            f"{index_name}: a pack entry lacks id/module/count/ids", index_name
        ) from None
    if not (
        isinstance(pack_id, str) and isinstance(stored, str) and isinstance(module, str)
        and isinstance(ids, list) and len(ids) == len(ordinals) and count >= len(ids)
        and (len(ordinals) == 0 or (ordinals.min() >= 0 and ordinals.max() < count))
        and bool(np.all(np.diff(ordinals) > 0))
        and (len(erased) == 0 or (erased.min() >= 0 and erased.max() < count))
        and bool(np.all(np.diff(erased) > 0))
        and not np.intersect1d(erased, ordinals).size
    ):  # fmt: skip
        raise RepositoryCorrupt(f"{index_name}: pack entry {pack_id!r} is inconsistent", index_name)
    return PackEntry(
        pack_id, stored, module, count, ordinals.astype(np.uint32), ids_text, index_name,
        erased.astype(np.uint32), refs,
    )  # fmt: skip


class Catalog:
    """Logical pack id -> PackEntry, from every index object (plus a create's pending packs)."""

    def __init__(self) -> None:
        self.packs: dict[str, PackEntry] = {}

    @classmethod
    def load(cls, backend: Backend, read_object: ReadObject, errors: dict[str, str] | None = None
             ) -> Catalog:  # fmt: skip
        """Read every index object. With ``errors`` a damaged index is recorded there (verify)
        instead of raised. Where two entries name one logical pack (a prune that stopped
        between writing the new index and deleting the old), the one whose file exists wins."""
        cat = cls()
        stored = {n.rsplit("/", 1)[-1] for n in backend.list(fmt.PACKS)}
        for name in backend.list(fmt.INDEX):
            try:
                entries = list(iter_index(read_object, name))
            except RepositoryCorrupt as exc:
                if errors is None:
                    raise
                errors[name] = str(exc)
                continue
            for entry in entries:
                old = cat.packs.get(entry.id)
                if old is None or (old.stored not in stored and entry.stored in stored):
                    cat.packs[entry.id] = entry
        return cat

    def add(self, entry: PackEntry) -> None:
        self.packs[entry.id] = entry

    def get(self, pack_id: str, where: str) -> PackEntry:
        entry = self.packs.get(pack_id)
        if entry is None:
            raise RepositoryCorrupt(f"{where}: names pack {pack_id}, which no index lists", where)
        return entry


def iter_index(read_object: ReadObject, name: str) -> Iterator[PackEntry]:
    """The entries of one index object, parsed one line (one pack) at a time: a million
    record ids parsed as one JSON document would take ~16x their size in Python objects."""
    try:
        raw = read_object(name, fmt.KIND_INDEX)
    except ObjectNotFound:
        raise RepositoryCorrupt(f"{name}: missing", name) from None
    lines = raw.split(b"\n")
    head, tail = lines[0], b"".join(lines[-2:]).strip()
    try:
        header = orjson.loads(head + b"]}")
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or tail != b"]}" or header.get("packs") != []:
        raise RepositoryCorrupt(f"{name}: not an index (one pack entry per line)", name)
    fmt.check_version(header, name)
    for number, line in enumerate(lines[1:-2], start=2):
        try:
            entry = orjson.loads(line.rstrip(b","))
        except orjson.JSONDecodeError:
            raise RepositoryCorrupt(f"{name}: line {number} is not a pack entry", name) from None
        yield parse_entry(entry, name)


class IndexWriter:
    """Streams pack entries into one compressed index payload (a create's or a prune's)."""

    def __init__(self, version: int = fmt.BASE_VERSION) -> None:
        self.count = 0
        self._out = io.BytesIO()
        cctx = zstandard.ZstdCompressor(level=fmt.META_LEVEL, write_checksum=True)
        self._zw = cctx.stream_writer(self._out, closefd=False)
        self._zw.write(b'{"version":%d,"packs":[' % version)

    def add(self, entries: Iterable[PackEntry]) -> None:
        for entry in entries:
            self._zw.write((b",\n" if self.count else b"\n") + orjson.dumps(entry.as_json()))
            self.count += 1

    def finish(self) -> bytes | None:
        """The compressed payload (None: no entries)."""
        self._zw.write(b"\n]}\n")
        self._zw.close()
        return self._out.getvalue() if self.count else None
