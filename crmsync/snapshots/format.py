"""Byte formats of packs, indexes and manifests (docs/snapshot-format.md is the spec).

Every object is one zstd frame. Decompressed:

- pack: blobs (canonical record JSON, UTF-8) each followed by one ``\\n`` - i.e. JSONL;
- index: one JSON object ``{"version": 1, "packs": [{"id", "blobs": [[id, offset, length]]}]}``;
- manifest: JSONL: a header object, then ``["s", module, record_id, blob_id]`` (set) and
  ``["r", module, record_id]`` (removed, delta manifests only) lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import zstandard

FORMAT_VERSION = 1
CONFIG_NAME = "config"
PACKS = "packs/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
ZSTD_LEVEL = 3
PACK_TARGET = 4 * 1024 * 1024  # uncompressed bytes per pack


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_name(pack_id: str) -> str:
    return f"{PACKS}{pack_id[:2]}/{pack_id}"


def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    return zstandard.ZstdCompressor(
        level=level, write_content_size=True, write_checksum=True
    ).compress(data)


def decompress_full(data: bytes, name: str) -> bytes:
    """Decompress one complete frame; a truncated frame is an error (decompressobj isn't)."""
    from crmsync.snapshots.errors import RepositoryCorrupt

    dobj = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise RepositoryCorrupt(f"{name}: corrupt zstd stream ({exc})", name) from None
    if not dobj.eof:
        raise RepositoryCorrupt(f"{name}: truncated (zstd frame ends early)", name)
    if dobj.unused_data:
        raise RepositoryCorrupt(f"{name}: trailing bytes after the zstd frame", name)
    return out


def check_version(obj: dict[str, Any], name: str) -> None:
    from crmsync.snapshots.errors import FormatVersionError, RepositoryCorrupt

    version = obj.get("version")
    if not isinstance(version, int):
        raise RepositoryCorrupt(f"{name}: no format version", name)
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{name}: written in snapshot format version {version}, this crmsync reads up to "
            f"version {FORMAT_VERSION}; upgrade crmsync to read it"
        )


def iter_frame_lines(data: bytes, name: str, chunk: int = 1 << 16) -> Iterator[Any]:
    """Parse the JSON lines of one zstd frame, decompressing ``chunk`` bytes at a time.

    Memory is bounded by a chunk plus one line, not by the decompressed size. A stream that is
    corrupt or ends before the frame does raises :class:`RepositoryCorrupt` naming ``name``.
    """
    from crmsync.snapshots.errors import RepositoryCorrupt

    dobj = zstandard.ZstdDecompressor().decompressobj()
    rest = b""
    lineno = 0
    for pos in range(0, max(len(data), 1), chunk):
        try:
            out = dobj.decompress(data[pos : pos + chunk])
        except zstandard.ZstdError as exc:
            raise RepositoryCorrupt(f"{name}: corrupt zstd stream ({exc})", name) from None
        lines = (rest + out).split(b"\n")
        rest = lines.pop()
        for line in lines:
            lineno += 1
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                raise RepositoryCorrupt(f"{name}: line {lineno} is not JSON", name) from None
    if not dobj.eof or rest:
        raise RepositoryCorrupt(f"{name}: truncated (zstd frame ends early)", name)
    if dobj.unused_data:
        raise RepositoryCorrupt(f"{name}: trailing bytes after the zstd frame", name)
