"""The snapshot repository: packs of deduplicated record blobs, per-create indexes, manifests.

Commit order makes a create all-or-nothing: packs, then the index naming them, then the
manifest (one atomic put). Until the manifest exists nothing refers to the new packs; an
interrupted create leaves only unindexed packs or an unreferenced index, which readers ignore
and ``verify`` reports as leftovers (a later prune removes them).
"""

from __future__ import annotations

import errno
import io
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Literal

import orjson
import zstandard

from crmsync.snapshots import format as fmt
from crmsync.snapshots.backend import Backend, ObjectNotFound
from crmsync.snapshots.errors import (
    BlobNotFound,
    FormatVersionError,
    RepositoryCorrupt,
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
)
from crmsync.store.base import canonical_record

Key = tuple[str, str]  # (module, record_id)
RecordInput = tuple[str, str, str, dict[str, Any]]  # (connection, module, record_id, data)

# Full manifest rule (docs/snapshot-format.md "When a manifest is full"): a snapshot is stored
# full when it has no parent, when its parent is already FULL_EVERY - 1 deltas away from a
# full manifest, or when the deltas since the last full manifest, this one included, would
# hold more than FULL_FRACTION x (records) entries - resolving a snapshot then reads at most
# FULL_EVERY manifests and at most (1 + FULL_FRACTION) x a full manifest's entries. A full
# manifest costs ~35 bytes a record (hashes do not compress), so it is written rarely.
FULL_EVERY = 64
FULL_FRACTION = 0.5

# blob location packed into one int: pack number << 64 | offset << 32 | length
_MASK32 = (1 << 32) - 1


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
    kind: Literal["full", "delta"]
    depth: int
    summary: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": self.time, "connection": self.connection,
            "modules": list(self.modules), "tags": list(self.tags), "parent": self.parent,
            "operator": self.operator, "reason": self.reason, "records": self.records,
            "kind": self.kind, "depth": self.depth, "summary": dict(self.summary),
        }  # fmt: skip


@dataclass(frozen=True)
class DamagedRecord:
    snapshot: str
    module: str
    record_id: str
    blob_id: str
    problem: str  # "missing" (not in any index) or "damaged" (its pack/blob failed to read)


@dataclass
class VerifyReport:
    snapshots_checked: int = 0
    packs_checked: int = 0
    blobs_checked: int = 0
    read_data: bool = False
    damaged_indexes: dict[str, str] = field(default_factory=dict)  # name -> problem
    damaged_packs: dict[str, str] = field(default_factory=dict)  # pack id -> problem
    damaged_blobs: dict[str, str] = field(default_factory=dict)  # blob id -> pack id
    damaged_snapshots: dict[str, str] = field(default_factory=dict)  # snapshot id -> problem
    damaged_records: list[DamagedRecord] = field(default_factory=list)
    unreferenced_packs: list[str] = field(default_factory=list)  # leftovers, not errors

    @property
    def ok(self) -> bool:
        return not (
            self.damaged_indexes or self.damaged_packs or self.damaged_blobs
            or self.damaged_snapshots or self.damaged_records
        )  # fmt: skip

    def lines(self) -> list[str]:
        out = [
            f"checked {self.snapshots_checked} snapshots, {self.packs_checked} packs"
            + (f", {self.blobs_checked} blobs re-hashed" if self.read_data else "")
        ]
        out += [f"index {n}: {p}" for n, p in sorted(self.damaged_indexes.items())]
        out += [f"pack {n}: {p}" for n, p in sorted(self.damaged_packs.items())]
        out += [f"blob {b}: damaged (pack {p})" for b, p in sorted(self.damaged_blobs.items())]
        out += [f"snapshot {n}: {p}" for n, p in sorted(self.damaged_snapshots.items())]
        out += [
            f"snapshot {r.snapshot} record {r.module}/{r.record_id}: blob {r.blob_id} {r.problem}"
            for r in self.damaged_records
        ]
        if self.unreferenced_packs:
            out.append(
                f"{len(self.unreferenced_packs)} unindexed packs (left by an interrupted create;"
                " harmless)"
            )
        out.append("no errors" if self.ok else "repository is DAMAGED")
        return out


class _Index:
    """All blob locations: blob id (32 bytes) -> packed (pack no, offset, length)."""

    def __init__(self) -> None:
        self.packs: list[str] = []
        self.blobs: dict[bytes, int] = {}

    def add_pack(self, pack_id: str, entries: Iterable[tuple[bytes, int, int]]) -> None:
        no = len(self.packs)
        self.packs.append(pack_id)
        for blob, off, length in entries:
            self.blobs.setdefault(blob, (no << 64) | (off << 32) | length)

    def locate(self, blob: bytes) -> tuple[str, int, int] | None:
        loc = self.blobs.get(blob)
        if loc is None:
            return None
        return self.packs[loc >> 64], (loc >> 32) & _MASK32, loc & _MASK32


def _parse_index(backend: Backend, name: str) -> list[tuple[str, list[tuple[bytes, int, int]]]]:
    try:
        data = backend.get(name)
    except ObjectNotFound:
        raise RepositoryCorrupt(f"{name}: missing", name) from None
    if fmt.sha256_hex(data) != name.rsplit("/", 1)[-1]:
        raise RepositoryCorrupt(f"{name}: content does not match its name (damaged)", name)
    raw = fmt.decompress_full(data, name)
    try:
        obj = orjson.loads(raw)
        fmt.check_version(obj, name)
        return [
            (p["id"], [(bytes.fromhex(b), int(o), int(n)) for b, o, n in p["blobs"]])
            for p in obj["packs"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise RepositoryCorrupt(f"{name}: not a valid index", name) from None


class _PackWriter:
    """Buffers new blobs; each full buffer becomes one pack = one zstd frame of JSONL.

    A written pack goes straight into the live index (later records dedup against it) and its
    entry is streamed into this create's compressed index object, so memory holds one pack's
    entries, not the whole create's. If the create fails the repository drops its index and
    reloads it from the backend, where unindexed packs do not exist.
    """

    def __init__(self, repo: Repository, idx: _Index):
        self.repo = repo
        self.idx = idx
        self.buf = bytearray()
        self.entries: list[tuple[bytes, int, int]] = []
        self.pending: set[bytes] = set()  # blobs in the unwritten buffer
        self.packs = 0
        self.new_bytes = 0
        self._index_out = io.BytesIO()
        cctx = zstandard.ZstdCompressor(level=repo.level, write_checksum=True)
        self._index_zw = cctx.stream_writer(self._index_out, closefd=False)
        self._index_zw.write(b'{"version":%d,"packs":[' % fmt.FORMAT_VERSION)

    def has(self, blob: bytes) -> bool:
        return blob in self.pending or blob in self.idx.blobs

    def add(self, blob: bytes, raw: bytes) -> None:
        self.entries.append((blob, len(self.buf), len(raw)))
        self.buf += raw
        self.buf += b"\n"
        self.pending.add(blob)
        if len(self.buf) >= self.repo.pack_target:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        data = fmt.compress(bytes(self.buf), self.repo.level)
        pack_id = fmt.sha256_hex(data)
        self.repo._put(fmt.pack_name(pack_id), data)
        self.new_bytes += len(data)
        self.idx.add_pack(pack_id, self.entries)
        entry = {"id": pack_id, "blobs": [[b.hex(), o, n] for b, o, n in self.entries]}
        self._index_zw.write((b"," if self.packs else b"") + orjson.dumps(entry))
        self.packs += 1
        self.buf = bytearray()
        self.entries = []
        self.pending = set()

    def finish(self) -> bytes | None:
        """The compressed index object naming every pack written (None: no new packs)."""
        self.flush()
        self._index_zw.write(b"]}")
        self._index_zw.close()
        return self._index_out.getvalue() if self.packs else None


class Repository:
    def __init__(self, backend: Backend, config: dict[str, Any]):
        self.backend = backend
        self.config = config
        self.level = int(config.get("zstd_level", fmt.ZSTD_LEVEL))
        self.pack_target = int(config.get("pack_target", fmt.PACK_TARGET))
        self.full_every = int(config.get("full_every", FULL_EVERY))
        self.full_fraction = float(config.get("full_fraction", FULL_FRACTION))
        self._index: _Index | None = None
        self._headers: dict[str, dict[str, Any]] = {}
        self._pack_cache: tuple[str, bytes] | None = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        backend: Backend,
        *,
        full_every: int = FULL_EVERY,
        full_fraction: float = FULL_FRACTION,
        pack_target: int = fmt.PACK_TARGET,
        zstd_level: int = fmt.ZSTD_LEVEL,
    ) -> Repository:
        if backend.exists(fmt.CONFIG_NAME):
            raise SnapshotError(f"{backend.describe()}: a snapshot repository already exists")
        config = {
            "format": "crmsync-snapshots", "version": fmt.FORMAT_VERSION,
            "id": secrets.token_hex(16), "created": _now(), "compression": "zstd",
            "zstd_level": zstd_level, "pack_target": pack_target,
            "full_every": full_every, "full_fraction": full_fraction,
        }  # fmt: skip
        repo = cls(backend, config)
        repo._put(fmt.CONFIG_NAME, orjson.dumps(config, option=orjson.OPT_INDENT_2) + b"\n")
        return repo

    @classmethod
    def open(cls, backend: Backend) -> Repository:
        try:
            raw = backend.get(fmt.CONFIG_NAME)
        except ObjectNotFound:
            raise SnapshotError(
                f"{backend.describe()}: no snapshot repository here (no 'config'); init one first"
            ) from None
        try:
            config = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RepositoryCorrupt(f"{fmt.CONFIG_NAME}: not valid JSON", fmt.CONFIG_NAME) from None
        if not isinstance(config, dict) or config.get("format") != "crmsync-snapshots":
            raise RepositoryCorrupt("config: not a crmsync snapshot repository", fmt.CONFIG_NAME)
        fmt.check_version(config, fmt.CONFIG_NAME)
        return cls(backend, config)

    # -- index ----------------------------------------------------------------------------
    @property
    def index(self) -> _Index:
        if self._index is None:
            idx = _Index()
            for name in self.backend.list(fmt.INDEX):
                for pack_id, entries in _parse_index(self.backend, name):
                    idx.add_pack(pack_id, entries)
            self._index = idx
        return self._index

    def blob_count(self) -> int:
        return len(self.index.blobs)

    def pack_ids(self) -> list[str]:
        return list(self.index.packs)

    # -- writing --------------------------------------------------------------------------
    def _put(self, name: str, data: bytes) -> None:
        try:
            self.backend.put(name, data)
        except OSError as exc:
            why = "out of space" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise RepositoryWriteError(
                f"snapshot repository {self.backend.describe()}: writing {name} failed ({why});"
                " no snapshot was created and existing snapshots are unaffected"
            ) from exc

    def create(
        self,
        records: Iterable[RecordInput],
        *,
        connection: str,
        modules: Iterable[str],
        tags: Iterable[str] = (),
        parent: str | None = None,
        operator: str,
        reason: str,
        time: datetime | None = None,
    ) -> SnapshotInfo:
        """Store one snapshot of ``records`` (unique (module, record_id) each) and commit it.

        ``parent="latest"`` picks the newest snapshot of the same connection and modules (none
        -> a first, full snapshot). Unchanged records cost nothing; new record versions are
        written once, whichever snapshot or record they came from.
        """
        modules_t = tuple(sorted(set(modules)))
        parent_id = self._parent_for(parent, connection, modules_t)
        parent_map = self.materialise(parent_id) if parent_id else {}
        idx = self.index
        writer = _PackWriter(self, idx)
        try:
            return self._create(
                records, writer, connection=connection, modules_t=modules_t, tags=tags,
                parent_id=parent_id, parent_map=parent_map, operator=operator, reason=reason,
                time=time,
            )  # fmt: skip
        except BaseException:
            self._index = None  # it may name packs that no committed index names
            raise

    def _create(
        self,
        records: Iterable[RecordInput],
        writer: _PackWriter,
        *,
        connection: str,
        modules_t: tuple[str, ...],
        tags: Iterable[str],
        parent_id: str | None,
        parent_map: dict[Key, bytes],
        operator: str,
        reason: str,
        time: datetime | None,
    ) -> SnapshotInfo:
        parent_header = self._header(parent_id) if parent_id else {}
        parent_depth = int(parent_header.get("depth", 0))
        parent_chain = int(parent_header.get("chain_entries", 0))
        counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "new_blobs": 0}
        total = 0
        with tempfile.TemporaryFile() as full_f, tempfile.TemporaryFile() as delta_f:
            for conn, module, record_id, data in records:
                if conn != connection:
                    raise ValueError(
                        f"record {module}/{record_id} is from {conn!r}, not {connection!r}"
                    )
                if module not in modules_t:
                    raise ValueError(f"record {record_id}: module {module!r} not in {modules_t}")
                text, hexid = canonical_record(data)
                blob = bytes.fromhex(hexid)
                line = orjson.dumps(["s", module, str(record_id), hexid]) + b"\n"
                full_f.write(line)
                total += 1
                old = parent_map.pop((module, str(record_id)), None)
                if old == blob:
                    counts["unchanged"] += 1
                else:
                    counts["added" if old is None else "changed"] += 1
                    delta_f.write(line)
                if not writer.has(blob):
                    writer.add(blob, text.encode("utf-8"))
                    counts["new_blobs"] += 1
            for module, record_id in parent_map:
                delta_f.write(orjson.dumps(["r", module, record_id]) + b"\n")
                counts["removed"] += 1
            del parent_map
            index_data = writer.finish()
            if index_data is not None:  # the index naming the new packs, before the manifest
                self._put(fmt.INDEX + fmt.sha256_hex(index_data), index_data)
            delta_entries = counts["added"] + counts["changed"] + counts["removed"]
            chain_entries = parent_chain + delta_entries
            full = (
                parent_id is None
                or parent_depth + 1 >= self.full_every
                or chain_entries > self.full_fraction * max(total, 1)
            )
            header = {
                "format": "crmsync-snapshot", "version": fmt.FORMAT_VERSION,
                "kind": "full" if full else "delta", "depth": 0 if full else parent_depth + 1,
                "chain_entries": 0 if full else chain_entries,
                "time": _iso(time), "connection": connection, "modules": list(modules_t),
                "tags": sorted(set(tags)), "parent": parent_id, "operator": operator,
                "reason": reason, "records": total,
                "summary": {**counts, "new_bytes": writer.new_bytes},
            }  # fmt: skip
            body = full_f if full else delta_f
            data = _compress_manifest(header, body, self.level)
        snap_id = fmt.sha256_hex(data)
        self._put(fmt.SNAPSHOTS + snap_id, data)  # the commit point
        self._headers[snap_id] = header
        return _info(snap_id, header)

    def _parent_for(
        self, parent: str | None, connection: str, modules: tuple[str, ...]
    ) -> str | None:
        if parent is None:
            return None
        if parent == "latest":
            same = [s for s in self.list() if s.connection == connection and s.modules == modules]
            return same[-1].id if same else None
        return self._resolve(parent)

    # -- reading --------------------------------------------------------------------------
    def list(self) -> list[SnapshotInfo]:
        """Every committed snapshot, oldest first (by time, then id)."""
        infos = [_info(sid, self._header(sid)) for sid in self._snapshot_ids()]
        return sorted(infos, key=lambda s: (s.time, s.id))

    def show(self, snapshot_id: str) -> SnapshotInfo:
        sid = self._resolve(snapshot_id)
        return _info(sid, self._header(sid))

    def records(
        self, snapshot_id: str, module: str | None = None
    ) -> Iterator[tuple[str, str, str]]:
        """(module, record_id, blob_id hex) of every record in the snapshot."""
        sid = self._resolve(snapshot_id)
        if self._header(sid)["kind"] == "full":  # stream straight from the manifest
            for entry in self._entries(sid):
                if module is None or entry[1] == module:
                    yield entry[1], entry[2], entry[3]
            return
        for (mod, rid), blob in self.materialise(sid).items():
            if module is None or mod == module:
                yield mod, rid, blob.hex()

    def blob_of(self, snapshot_id: str, module: str, record_id: str) -> str | None:
        """The blob id of one record in a snapshot (None: not in it)."""
        for mod, rid, blob in self.records(snapshot_id, module):
            if mod == module and rid == record_id:
                return blob
        return None

    def read(self, blob_id: str) -> dict[str, Any]:
        """The record stored under ``blob_id``; its hash is checked on every read."""
        try:
            blob = bytes.fromhex(blob_id)
        except ValueError:
            raise BlobNotFound(f"blob {blob_id!r}: not a blob id") from None
        loc = self.index.locate(blob)
        if loc is None:
            raise BlobNotFound(f"blob {blob_id}: not in any index (missing from the repository)")
        pack_id, off, length = loc
        raw = self._pack(pack_id)[off : off + length]
        if fmt.sha256_hex(raw) != blob_id:
            raise RepositoryCorrupt(
                f"blob {blob_id} in pack {pack_id}: content does not match its id (damaged)",
                fmt.pack_name(pack_id),
            )
        return orjson.loads(raw)

    def materialise(self, snapshot_id: str) -> dict[Key, bytes]:
        """(module, record_id) -> 32-byte blob id for the whole snapshot, resolving deltas.

        Memory is this dict only (about 230 bytes per record with 19-character ids on CPython 3.11,
        i.e. ~230 MB for 1M records): manifests are streamed, record bodies are never loaded.
        """
        chain = []
        sid: str | None = snapshot_id
        while True:
            if sid is None:
                raise RepositoryCorrupt(f"snapshot {snapshot_id}: delta chain has no full base")
            header = self._header(sid)
            chain.append(sid)
            if header["kind"] == "full":
                break
            sid = header.get("parent")
            if sid is not None and not self.backend.exists(fmt.SNAPSHOTS + sid):
                raise RepositoryCorrupt(
                    f"snapshot {snapshot_id}: its chain needs snapshot {sid}, which is missing",
                    fmt.SNAPSHOTS + sid,
                )
        result: dict[Key, bytes] = {}
        for sid in reversed(chain):
            for entry in self._entries(sid):
                if entry[0] == "s":
                    result[(entry[1], entry[2])] = bytes.fromhex(entry[3])
                else:
                    result.pop((entry[1], entry[2]), None)
        return result

    # -- internals ------------------------------------------------------------------------
    def _snapshot_ids(self) -> list[str]:
        return [n[len(fmt.SNAPSHOTS) :] for n in self.backend.list(fmt.SNAPSHOTS)]

    def _resolve(self, ref: str) -> str:
        if ref == "latest":
            snaps = self.list()
            if not snaps:
                raise SnapshotNotFound("no snapshots in the repository")
            return snaps[-1].id
        ids = self._snapshot_ids()
        if ref in ids:
            return ref
        matches = [i for i in ids if len(ref) >= 4 and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise SnapshotNotFound(f"snapshot {ref!r} is ambiguous ({len(matches)} match)")
        raise SnapshotNotFound(f"no snapshot {ref!r}")

    def _manifest_bytes(self, sid: str) -> bytes:
        name = fmt.SNAPSHOTS + sid
        try:
            data = self.backend.get(name)
        except ObjectNotFound:
            raise SnapshotNotFound(f"no snapshot {sid}") from None
        if fmt.sha256_hex(data) != sid:
            raise RepositoryCorrupt(f"{name}: content does not match its name (damaged)", name)
        return data

    def _header(self, sid: str) -> dict[str, Any]:
        header = self._headers.get(sid)
        if header is None:
            name = fmt.SNAPSHOTS + sid
            lines = fmt.iter_frame_lines(self._manifest_bytes(sid), name)
            header = next(lines, None)
            lines.close()
            if not isinstance(header, dict):
                raise RepositoryCorrupt(f"{name}: no manifest header", name)
            fmt.check_version(header, name)
            if header.get("kind") not in ("full", "delta"):
                raise RepositoryCorrupt(f"{name}: unknown manifest kind", name)
            self._headers[sid] = header
        return header

    def _entries(self, sid: str) -> Iterator[list[Any]]:
        self._header(sid)
        lines = fmt.iter_frame_lines(self._manifest_bytes(sid), fmt.SNAPSHOTS + sid)
        next(lines)
        yield from lines

    def _pack(self, pack_id: str) -> bytes:
        if self._pack_cache and self._pack_cache[0] == pack_id:
            return self._pack_cache[1]
        name = fmt.pack_name(pack_id)
        try:
            data = self.backend.get(name)
        except ObjectNotFound:
            raise RepositoryCorrupt(f"{name}: pack is missing", name) from None
        if fmt.sha256_hex(data) != pack_id:
            raise RepositoryCorrupt(f"{name}: content does not match its name (damaged)", name)
        raw = fmt.decompress_full(data, name)
        self._pack_cache = (pack_id, raw)
        return raw

    # -- verify ---------------------------------------------------------------------------
    def verify(self, read_data: bool = False) -> VerifyReport:
        """Check every index and manifest (and with ``read_data`` every pack and blob).

        Never raises for damage: the report names damaged indexes, packs, blobs, snapshots and
        the records (snapshot, module, record id) whose stored version is lost.
        """
        rep = VerifyReport(read_data=read_data)
        idx = _Index()
        for name in self.backend.list(fmt.INDEX):
            try:
                for pack_id, entries in _parse_index(self.backend, name):
                    idx.add_pack(pack_id, entries)
            except SnapshotError as exc:
                rep.damaged_indexes[name] = str(exc)
        bad_packs: set[int] = set()
        present = set(self.backend.list(fmt.PACKS))
        for no, pack_id in enumerate(idx.packs):
            rep.packs_checked += 1
            name = fmt.pack_name(pack_id)
            if name not in present:
                rep.damaged_packs[pack_id] = "missing"
                bad_packs.add(no)
            elif read_data:
                try:
                    data = self.backend.get(name)
                    if fmt.sha256_hex(data) != pack_id:
                        rep.damaged_packs[pack_id] = "content does not match its name"
                    fmt.decompress_full(data, name)
                except SnapshotError as exc:
                    rep.damaged_packs[pack_id] = str(exc)
                    bad_packs.add(no)
        indexed = {fmt.pack_name(p) for p in idx.packs}
        rep.unreferenced_packs = sorted(n.rsplit("/", 1)[-1] for n in present - indexed)
        bad_blobs: set[bytes] = set()
        if read_data:
            by_pack: dict[int, list[tuple[bytes, int, int]]] = {}
            for blob, loc in idx.blobs.items():
                by_pack.setdefault(loc >> 64, []).append(
                    (blob, (loc >> 32) & _MASK32, loc & _MASK32)
                )
            for no, entries in by_pack.items():
                pack_id = idx.packs[no]
                raw = None
                if no not in bad_packs:
                    try:
                        raw = fmt.decompress_full(
                            self.backend.get(fmt.pack_name(pack_id)), fmt.pack_name(pack_id)
                        )
                    except (SnapshotError, ObjectNotFound):
                        raw = None
                for blob, off, length in entries:
                    rep.blobs_checked += 1
                    if raw is None or fmt.sha256_hex(raw[off : off + length]) != blob.hex():
                        bad_blobs.add(blob)
                        rep.damaged_blobs[blob.hex()] = pack_id
                if raw is not None and any(b in bad_blobs for b, _, _ in entries):
                    rep.damaged_packs.setdefault(pack_id, "blobs do not match their ids")
        else:
            bad_blobs = {b for b, loc in idx.blobs.items() if (loc >> 64) in bad_packs}
        for sid in self._snapshot_ids():
            rep.snapshots_checked += 1
            try:
                snapshot_map = self.materialise(sid)
            except SnapshotError as exc:
                rep.damaged_snapshots[sid] = str(exc)
                continue
            problems = 0
            for (module, rid), blob in snapshot_map.items():
                problem = None
                if blob not in idx.blobs:
                    problem = "missing"
                elif blob in bad_blobs:
                    problem = "damaged"
                if problem:
                    problems += 1
                    rep.damaged_records.append(DamagedRecord(sid, module, rid, blob.hex(), problem))
            if problems:
                rep.damaged_snapshots[sid] = f"{problems} records lost or damaged"
        return rep


def _compress_manifest(header: dict[str, Any], body: IO[bytes], level: int) -> bytes:
    out = io.BytesIO()
    body.seek(0)
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with cctx.stream_writer(out, closefd=False) as zw:
        zw.write(orjson.dumps(header) + b"\n")
        while chunk := body.read(1 << 20):
            zw.write(chunk)
    return out.getvalue()


def _info(sid: str, h: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        id=sid, time=h["time"], connection=h["connection"], modules=tuple(h["modules"]),
        tags=tuple(h.get("tags", ())), parent=h.get("parent"), operator=h.get("operator", ""),
        reason=h.get("reason", ""), records=int(h["records"]), kind=h["kind"],
        depth=int(h.get("depth", 0)), summary=dict(h.get("summary", {})),
    )  # fmt: skip


def _now() -> str:
    return _iso(None)


def _iso(t: datetime | None) -> str:
    t = t or datetime.now(UTC)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


__all__ = ["DamagedRecord", "FormatVersionError", "Repository", "SnapshotInfo", "VerifyReport"]
