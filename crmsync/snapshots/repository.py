"""The snapshot repository: packs of record versions, index objects, one manifest per snapshot.

Commit order makes a create all-or-nothing: packs, then the index naming them, then the
manifest (one atomic put, the commit point). An interrupted create leaves only unindexed packs
or an unreferenced index, which readers ignore and ``prune`` removes.
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

from crmsync.snapshots import format as fmt
from crmsync.snapshots.backend import Backend, ObjectNotFound
from crmsync.snapshots.cache import HashCache
from crmsync.snapshots.catalog import Catalog, PackEntry
from crmsync.snapshots.crypto import AesGcmCodec, ObjectCodec, PlainCodec, new_encryption, unlock
from crmsync.snapshots.errors import (
    RepositoryCorrupt,
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
)
from crmsync.snapshots.recordset import LOC_MASK, RecordSet, key_hashes
from crmsync.store.base import canonical_record

if TYPE_CHECKING:
    from crmsync.snapshots.check import VerifyReport
    from crmsync.snapshots.create import SnapshotWriter, TextLoader
    from crmsync.snapshots.diff import DiffEntry
    from crmsync.snapshots.prune import PruneReport


class RecordVersion(NamedTuple):
    """One record as a snapshot stores it: canonical JSON and its SHA-256 (the blob id).
    ``text`` may be None when ``create`` has a ``load_texts`` to fetch it if it is needed
    (an incremental snapshot needs the text of new and changed records only)."""

    module: str
    record_id: str
    text: str | None
    blob_id: str


class RecordChange(NamedTuple):
    """A record new, changed or gone (``deleted``) since a snapshot: what
    :meth:`Repository.create_from_changes` applies to that snapshot's records."""

    module: str
    record_id: str
    text: str | None
    blob_id: str
    deleted: bool = False


def record_version(module: str, record_id: str, data: dict[str, Any]) -> RecordVersion:
    text, digest = canonical_record(data)
    return RecordVersion(module, str(record_id), text, digest)


class SnapshotRecord(NamedTuple):
    module: str
    record_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    time: str
    connection: str
    modules: tuple[str, ...]
    tags: tuple[str, ...]
    parent: str | None
    operator: str
    reason: str
    records: int
    summary: dict[str, int] = field(default_factory=dict)
    scope: str = "all"  # "selection": some records only (a pre-change copy)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": self.time, "connection": self.connection,
            "modules": list(self.modules), "tags": list(self.tags), "parent": self.parent,
            "operator": self.operator, "reason": self.reason, "records": self.records,
            "summary": dict(self.summary), "scope": self.scope,
        }  # fmt: skip


@dataclass
class Manifest:
    header: dict[str, Any]
    packs: list[tuple[str, np.ndarray]]  # (logical pack id, bool bitmap over its ordinals)
    # Bits of erased versions (tombstoned ordinals), taken out of ``packs`` so that readers
    # never look for them: logical pack id -> bitmap. Empty unless records were erased.
    erased: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def erased_count(self) -> int:
        return sum(int(bits.sum()) for bits in self.erased.values())


class Repository:
    def __init__(
        self, backend: Backend, config: dict[str, Any], codec: ObjectCodec,
        cache_dir: Path | None = None, use_cache: bool = True,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.config = config
        self.codec = codec
        self.level = int(config.get("zstd_level", fmt.ZSTD_LEVEL))
        self.pack_target = int(config.get("pack_target", fmt.PACK_TARGET))
        self.cache = HashCache(cache_dir, str(config["id"]), enabled=use_cache)
        self._catalog: Catalog | None = None
        self._headers: dict[str, dict[str, Any]] = {}
        self._lines_cache: tuple[str, list[bytes]] | None = None
        self._sets: dict[str, RecordSet] = {}  # snapshot id -> its record set (with hashes)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        backend: Backend,
        *,
        passphrase: str | None = None,
        pack_target: int = fmt.PACK_TARGET,
        zstd_level: int = fmt.ZSTD_LEVEL,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        kdf_n: int = 2**15,
    ) -> Repository:
        if backend.exists(fmt.CONFIG_NAME):
            raise SnapshotError(f"{backend.describe()}: a snapshot repository already exists")
        config: dict[str, Any] = {
            "format": "crmsync-snapshots", "version": fmt.BASE_VERSION,
            "id": secrets.token_hex(16), "created": iso(None), "compression": "zstd",
            "zstd_level": zstd_level, "pack_target": pack_target,
        }  # fmt: skip
        codec: ObjectCodec = PlainCodec()
        if passphrase is not None:
            config["encryption"], codec = new_encryption(passphrase, n=kdf_n)
        repo = cls(backend, config, codec, cache_dir, use_cache)
        repo._put(fmt.CONFIG_NAME, orjson.dumps(config, option=orjson.OPT_INDENT_2) + b"\n")
        return repo

    @classmethod
    def open(
        cls,
        backend: Backend,
        *,
        passphrase: str | None = None,
        cache_dir: Path | None = None,
        use_cache: bool = True,
    ) -> Repository:
        where = backend.describe()
        try:
            raw = backend.get(fmt.CONFIG_NAME)
        except ObjectNotFound:
            raise SnapshotError(
                f"{where}: no snapshot repository here (no 'config'); create one first"
            ) from None
        try:
            config = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RepositoryCorrupt(f"{fmt.CONFIG_NAME}: not valid JSON", fmt.CONFIG_NAME) from None
        if not isinstance(config, dict) or config.get("format") != "crmsync-snapshots":
            raise RepositoryCorrupt("config: not a crmsync snapshot repository", fmt.CONFIG_NAME)
        fmt.check_version(config, fmt.CONFIG_NAME)
        if not isinstance(config.get("id"), str):
            raise RepositoryCorrupt("config: no repository id", fmt.CONFIG_NAME)
        codec: ObjectCodec = PlainCodec()
        if "encryption" in config:
            if passphrase is None:
                raise SnapshotError(
                    f"{where}: the snapshot repository is encrypted; give its passphrase"
                    ' ([snapshots] passphrase = "env:VAR" or "keyring:SERVICE/NAME")'
                )
            codec = unlock(config["encryption"], passphrase, where)
        return cls(backend, config, codec, cache_dir, use_cache)

    @property
    def encrypted(self) -> bool:
        return isinstance(self.codec, AesGcmCodec)

    # -- objects ---------------------------------------------------------------------------
    def _put(self, name: str, data: bytes) -> None:
        try:
            self.backend.put(name, data)
        except OSError as exc:
            why = "out of space" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise RepositoryWriteError(
                f"snapshot repository {self.backend.describe()}: writing {name} failed ({why});"
                " no snapshot was created and existing snapshots are unaffected"
            ) from exc

    def write_object(self, prefix: str, compressed: bytes, kind: str) -> tuple[str, int]:
        """Seal and store one object under the hash of its stored bytes: (id, bytes stored)."""
        stored = self.codec.seal(compressed, kind)
        object_id = fmt.sha256_hex(stored)
        name = fmt.pack_name(object_id) if prefix == fmt.PACKS else prefix + object_id
        self._put(name, stored)
        return object_id, len(stored)

    def read_object(self, name: str, kind: str) -> bytes:
        """The verified, decompressed payload of an object (ObjectNotFound if absent)."""
        data = self.backend.get(name)
        if fmt.sha256_hex(data) != name.rsplit("/", 1)[-1]:
            raise RepositoryCorrupt(f"{name}: content does not match its name (damaged)", name)
        return fmt.decompress_full(self.codec.open(data, kind, name), name)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.load(self.backend, self.read_object)
        return self._catalog

    def forget_catalog(self) -> None:
        """Drop cached state (after a failed create, or another process changed the index)."""
        self._catalog = None
        self._lines_cache = None

    def pack_lines(self, entry: PackEntry) -> list[bytes]:
        """The blobs of a stored pack, in line order (checked against the index)."""
        if self._lines_cache and self._lines_cache[0] == entry.stored:
            return self._lines_cache[1]
        name = fmt.pack_name(entry.stored)
        try:
            raw = self.read_object(name, fmt.KIND_PACK)
        except ObjectNotFound:
            raise RepositoryCorrupt(f"{name}: pack is missing", name) from None
        lines = raw.split(b"\n")
        if lines.pop() != b"" or len(lines) != len(entry.ordinals):
            raise RepositoryCorrupt(f"{name}: holds other blobs than its index lists", name)
        self._lines_cache = (entry.stored, lines)
        return lines

    def pack_hashes(self, entry: PackEntry) -> np.ndarray:
        """(n, 2) short blob ids of a stored pack's lines: from the cache, else the pack."""
        cached = self.cache.get(entry.stored, len(entry.ordinals))
        if cached is not None:
            return cached
        hashes = short_blob_ids(self.pack_lines(entry))
        self.cache.put(entry.stored, hashes)
        return hashes

    # -- creating -------------------------------------------------------------------------
    def create(
        self,
        records: Iterable[RecordVersion],
        *,
        connection: str,
        modules: Iterable[str],
        tags: Iterable[str] = (),
        parent: str | None = "latest",
        operator: str,
        reason: str,
        time: datetime | None = None,
        selection: bool = False,
        load_texts: TextLoader | None = None,
    ) -> SnapshotInfo:
        """Store one snapshot of ``records`` (each (module, record_id) once) and commit it.

        ``parent="latest"`` compares with the newest whole snapshot of the same connection and
        modules (none: everything is new). Records unchanged since the parent cost nothing but
        their bit in the manifest; changed and new ones are written to new packs.
        ``selection``: the records are a chosen few (apply's pre-change copy), not the whole
        modules: records of the parent that are not given are not "removed", and ``latest``
        never picks this snapshot as the parent of a whole one.
        """
        modules_t = tuple(sorted(set(modules)))
        parent_id = self._parent_for(parent, connection, modules_t)
        return self._create(
            lambda w: w.run(records), connection=connection, modules=modules_t, tags=tags,
            parent_id=parent_id, operator=operator, reason=reason, time=time,
            selection=selection, load_texts=load_texts,
        )  # fmt: skip

    def create_from_changes(
        self,
        changes: Iterable[RecordChange],
        *,
        connection: str,
        modules: Iterable[str],
        parent: str,
        tags: Iterable[str] = (),
        operator: str,
        reason: str,
        time: datetime | None = None,
        load_texts: TextLoader | None = None,
    ) -> SnapshotInfo:
        """A whole snapshot of the records of ``parent`` (a whole snapshot of the same modules)
        updated by ``changes``: every record new, changed or deleted since it, by module then
        record id, and perhaps some that did not change. The same snapshot as :meth:`create`
        given all records, reading only what changed. The caller vouches that the changes are
        complete (crmsync.snapshots.source.snapshot_mirror checks it against the store)."""
        modules_t = tuple(sorted(set(modules)))
        parent_id = self.resolve(parent)
        header = self.header(parent_id)
        if tuple(header["modules"]) != modules_t or header.get("scope", "all") != "all":
            raise SnapshotError(
                f"snapshot {parent_id} is not a whole snapshot of {', '.join(modules_t)}"
            )
        return self._create(
            lambda w: w.run_changes(changes), connection=connection, modules=modules_t,
            tags=tags, parent_id=parent_id, operator=operator, reason=reason, time=time,
            selection=False, load_texts=load_texts,
        )  # fmt: skip

    def index_names(self) -> list[str]:
        """The index objects now in the repository (a prune or erasure replaces them all)."""
        return sorted(self.backend.list(fmt.INDEX))

    def _create(
        self,
        feed: Callable[[SnapshotWriter], dict[str, Any]],
        *,
        connection: str,
        modules: tuple[str, ...],
        tags: Iterable[str],
        parent_id: str | None,
        operator: str,
        reason: str,
        time: datetime | None,
        selection: bool,
        load_texts: TextLoader | None,
    ) -> SnapshotInfo:
        from crmsync.snapshots.create import SnapshotWriter

        modules_t = modules
        writer = SnapshotWriter(self, modules_t, parent_id, load_texts)
        try:
            with self.locked(exclusive=False):
                header = feed(writer)
                header.update({
                    "format": "crmsync-snapshot", "version": fmt.BASE_VERSION,
                    "time": iso(time), "connection": connection, "modules": list(modules_t),
                    "tags": sorted(set(tags)), "parent": parent_id, "operator": operator,
                    "reason": reason, "scope": "selection" if selection else "all",
                })  # fmt: skip
                if selection:
                    header["summary"]["removed"] = 0
                snap_id, _ = self.write_object(
                    fmt.SNAPSHOTS, encode_manifest(header, writer.bitmaps()), fmt.KIND_SNAPSHOT
                )  # the commit point
        except BaseException:
            self.forget_catalog()  # it may list packs no committed index names
            raise
        self._headers[snap_id] = header
        self._remember_set(snap_id, writer.record_set())
        return info_of(snap_id, header)

    def latest(self, connection: str, modules: Iterable[str]) -> SnapshotInfo | None:
        """The newest whole snapshot of exactly these modules of the connection."""
        modules_t = tuple(sorted(set(modules)))
        same = [
            s for s in self.list()
            if s.connection == connection and s.modules == modules_t and s.scope == "all"
        ]  # fmt: skip
        return same[-1] if same else None

    def _parent_for(
        self, parent: str | None, connection: str, modules: tuple[str, ...]
    ) -> str | None:
        if parent is None:
            return None
        if parent == "latest":
            latest = self.latest(connection, modules)
            return latest.id if latest else None
        return self.resolve(parent)

    # -- reading --------------------------------------------------------------------------
    def list(self) -> list[SnapshotInfo]:
        """Every committed snapshot, oldest first (by time, then id)."""
        infos = [info_of(sid, self.header(sid)) for sid in self.snapshot_ids()]
        return sorted(infos, key=lambda s: (s.time, s.id))

    def show(self, snapshot_id: str) -> SnapshotInfo:
        sid = self.resolve(snapshot_id)
        return info_of(sid, self.header(sid))

    def snapshot_ids(self) -> list[str]:
        return [n[len(fmt.SNAPSHOTS) :] for n in self.backend.list(fmt.SNAPSHOTS)]

    def resolve(self, ref: str) -> str:
        """A full id from an id, a unique prefix (>= 4 characters) or ``latest``."""
        if ref == "latest":
            snaps = self.list()
            if not snaps:
                raise SnapshotNotFound("no snapshots in the repository")
            return snaps[-1].id
        ids = self.snapshot_ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if len(ref) >= 4 and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise SnapshotNotFound(f"snapshot {ref!r} is ambiguous ({len(matches)} match)")
        raise SnapshotNotFound(f"no snapshot {ref!r}")

    def manifest(self, sid: str) -> Manifest:
        name = fmt.SNAPSHOTS + sid
        try:
            raw = self.read_object(name, fmt.KIND_SNAPSHOT)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {sid}") from None
        manifest = decode_manifest(raw, name, self.catalog)
        self._headers[sid] = manifest.header
        return manifest

    def header(self, sid: str) -> dict[str, Any]:
        header = self._headers.get(sid)
        if header is None:
            name = fmt.SNAPSHOTS + sid
            try:
                raw = self.read_object(name, fmt.KIND_SNAPSHOT)
            except ObjectNotFound:
                raise SnapshotNotFound(f"no snapshot {sid}") from None
            header = decode_header(raw, name)
            self._headers[sid] = header
        return header

    def _remember_set(self, sid: str, rs: RecordSet) -> None:
        # The next create usually has this snapshot as its parent: keep its set in memory and
        # in the cache, so that create does not re-hash a million keys.
        self._sets = {sid: rs}
        self.cache.put_set(sid, rs)

    def record_set(self, sid: str, with_hashes: bool = False) -> RecordSet:
        """The snapshot's records as sorted arrays (key hash, location, short blob id)."""
        cached = self._sets.get(sid) or self.cache.get_set(sid)
        if cached is not None:
            return cached
        rs = self._build_set(sid, with_hashes)
        if with_hashes:
            self._remember_set(sid, rs)
        return rs

    def _build_set(self, sid: str, with_hashes: bool) -> RecordSet:

        manifest = self.manifest(sid)
        packs, khs, locs, shas = [], [], [], []
        for pack_id, bits in manifest.packs:
            entry = self.catalog.packs[pack_id]
            ordinals = np.nonzero(bits)[0]
            rows = np.searchsorted(entry.ordinals, ordinals)
            ids = entry.record_ids()
            khs.append(key_hashes([entry.module] * len(rows), [ids[r] for r in rows]))
            locs.append((len(packs) << 32) | ordinals.astype(np.uint64))
            if with_hashes:
                shas.append(self.pack_hashes(entry)[rows])
            packs.append(pack_id)
        empty = np.zeros((0, 2), "<u8")
        kh = np.concatenate(khs) if khs else empty
        loc = np.concatenate(locs).astype(np.uint64) if locs else np.zeros(0, np.uint64)
        sha = (np.concatenate(shas) if shas else empty) if with_hashes else None
        del khs, locs, shas  # the set sorts copies: keep peak memory at two copies, not three
        return RecordSet(packs, kh, loc, sha)

    def records(
        self,
        snapshot_id: str,
        module: str | None = None,
        record_ids: Iterable[str] | None = None,
    ) -> Iterator[SnapshotRecord]:
        """The records of a snapshot (optionally one module / some record ids), pack by pack:
        memory is one pack, not the snapshot."""
        manifest = self.manifest(self.resolve(snapshot_id))
        wanted = set(record_ids) if record_ids is not None else None
        for pack_id, bits in manifest.packs:
            entry = self.catalog.packs[pack_id]
            if module is not None and entry.module != module:
                continue
            rows = np.searchsorted(entry.ordinals, np.nonzero(bits)[0])
            ids = entry.record_ids()
            if wanted is not None:
                rows = [r for r in rows if ids[r] in wanted]
                if not rows:
                    continue
            lines = self.pack_lines(entry)
            for r in rows:
                yield SnapshotRecord(entry.module, ids[r], orjson.loads(lines[r]))

    def get(self, snapshot_id: str, module: str, record_id: str) -> dict[str, Any] | None:
        """One record as the snapshot kept it (None: not in the snapshot)."""
        for rec in self.records(snapshot_id, module, [record_id]):
            return rec.data
        return None

    def locate(self, pack_id: str, ordinals: Iterable[int]) -> list[tuple[str, str]]:
        """(module, record_id) of blobs by logical location."""
        entry = self.catalog.packs[pack_id]
        ids = entry.record_ids()
        rows = np.searchsorted(entry.ordinals, np.asarray(list(ordinals), dtype=np.uint32))
        return [(entry.module, ids[r]) for r in rows]

    def diff(self, a: str, b: str) -> Iterator[DiffEntry]:
        from crmsync.snapshots.diff import diff

        return diff(self, a, b)

    # -- maintenance ----------------------------------------------------------------------
    def verify(self, read_data: bool = False) -> VerifyReport:
        from crmsync.snapshots.check import verify

        return verify(self, read_data)

    def forget(self, snapshot_ids: list[str]) -> None:
        from crmsync.snapshots.prune import forget

        forget(self, snapshot_ids)

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        from crmsync.snapshots.prune import prune

        return prune(self, dry_run=dry_run)

    # -- locks ----------------------------------------------------------------------------
    def locked(self, exclusive: bool):
        from crmsync.snapshots.locks import RepositoryLock

        return RepositoryLock(self, exclusive)


# -- manifests ----------------------------------------------------------------------------
def encode_manifest(header: dict[str, Any], packs: list[tuple[str, np.ndarray]]) -> bytes:
    body = dict(header)
    body["packs"] = [[pack_id, fmt.encode_bitmap(bits)] for pack_id, bits in packs]
    return fmt.compress(orjson.dumps(body), fmt.META_LEVEL)


def decode_header(raw: bytes, name: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RepositoryCorrupt(f"{name}: not valid JSON", name) from None
    if not isinstance(obj, dict) or obj.get("format") != "crmsync-snapshot":
        raise RepositoryCorrupt(f"{name}: not a snapshot manifest", name)
    fmt.check_version(obj, name)
    missing = [k for k in ("time", "connection", "modules", "records", "packs") if k not in obj]
    if missing or not isinstance(obj["packs"], list):
        raise RepositoryCorrupt(f"{name}: manifest lacks {', '.join(missing) or 'packs'}", name)
    obj["pack_count"] = len(obj.pop("packs"))
    return obj


def decode_manifest(raw: bytes, name: str, catalog: Catalog) -> Manifest:
    header = decode_header(raw, name)
    packs = []
    erased: dict[str, np.ndarray] = {}
    for item in orjson.loads(raw)["packs"]:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            raise RepositoryCorrupt(f"{name}: a pack reference is not [id, bitmap]", name)
        entry = catalog.get(item[0], name)
        bits = fmt.decode_bitmap(item[1], entry.count, name)
        present = entry.present()
        if len(entry.erased):
            tombs = bits & entry.tombstoned()
            if tombs.any():
                erased[item[0]] = tombs
                bits = bits & ~tombs
        if bool(np.any(bits & ~present)):
            raise RepositoryCorrupt(
                f"{name}: references blobs of pack {item[0]} that were pruned", name
            )
        packs.append((item[0], bits))
    return Manifest(header, packs, erased)


def short_blob_ids(lines: list[bytes]) -> np.ndarray:
    """(n, 2) uint64: the first 128 bits of each line's SHA-256 (see create.short_ids)."""
    import hashlib

    raw = b"".join(hashlib.sha256(line).digest()[:16] for line in lines)
    return np.frombuffer(raw, dtype="<u8").reshape(len(lines), 2)


def info_of(sid: str, h: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        id=sid, time=h["time"], connection=h["connection"], modules=tuple(h["modules"]),
        tags=tuple(h.get("tags", ())), parent=h.get("parent"), operator=h.get("operator", ""),
        reason=h.get("reason", ""), records=int(h["records"]),
        summary=dict(h.get("summary", {})), scope=str(h.get("scope", "all")),
    )  # fmt: skip


def iso(t: datetime | None) -> str:
    t = t or datetime.now(UTC)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


__all__ = [
    "LOC_MASK", "Manifest", "RecordChange", "RecordVersion", "Repository", "SnapshotInfo",
    "record_version",
]  # fmt: skip
