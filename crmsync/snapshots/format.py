"""Byte formats of packs, indexes and manifests (docs/snapshot-format.md is the spec).

Every object is one zstd frame (sealed with AES-256-GCM in an encrypted repository). Decompressed:

- pack: the blobs of one module (canonical record JSON, UTF-8), each followed by ``\\n``;
- index: JSON ``{"version": 1, "packs": [{"id", "module", "count", "ids", ...}]}`` (version 2
  when an entry lists erased ordinals: ``"erased": [[ordinal, record ref], ...]``);
- manifest: JSON: the snapshot's header plus ``"packs": [[pack id, base64 bitmap], ...]``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np
import zstandard

# The highest format version this crmsync reads. Version 2 adds erasure tombstones (index
# entries with "erased"): a repository is written as version 1 until the first erasure raises
# its config (and every index holding tombstones) to 2, so an older crmsync refuses it with an
# "upgrade" error instead of taking an erased record for a damaged one.
FORMAT_VERSION = 2
BASE_VERSION = 1  # what create writes: readable by every crmsync
ERASED_VERSION = 2  # config and index objects of a repository with erased records
CONFIG_NAME = "config"
PACKS = "packs/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
ZSTD_LEVEL = 3
PACK_TARGET = 4 * 1024 * 1024  # uncompressed bytes per pack
# Indexes and manifests are small next to the packs; a higher level costs little time there.
META_LEVEL = 9
KIND_PACK, KIND_INDEX, KIND_SNAPSHOT = "pack", "index", "snapshot"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_name(pack_id: str) -> str:
    return f"{PACKS}{pack_id[:2]}/{pack_id}"


def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    return zstandard.ZstdCompressor(
        level=level, write_content_size=True, write_checksum=True
    ).compress(data)


def encode_bitmap(bits: np.ndarray) -> str:
    """A bool array as base64 of its bits, least significant bit first in each byte."""
    return base64.b64encode(np.packbits(bits, bitorder="little").tobytes()).decode("ascii")


def decode_bitmap(text: str, count: int, name: str) -> np.ndarray:
    from crmsync.snapshots.errors import RepositoryCorrupt

    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise RepositoryCorrupt(f"{name}: a pack bitmap is not base64", name) from None
    if len(raw) != (count + 7) // 8:
        raise RepositoryCorrupt(f"{name}: a pack bitmap does not match the pack's size", name)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[count:].any():
        raise RepositoryCorrupt(f"{name}: a pack bitmap sets bits past the pack's end", name)
    return bits[:count].astype(bool)


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
