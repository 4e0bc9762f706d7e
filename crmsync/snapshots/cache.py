"""Local cache of blob ids (the first 128 bits of each blob's SHA-256), one file per stored
pack, and the record set of the newest snapshot created here.

The repository itself does not store a hash per blob: 32 random bytes a blob would cost more
than half the compressed data on a typical CRM (docs/snapshot-format.md, "Why no blob ids in
the repository"). Blob ids are recomputable from the packs, which are verified by their own
names, so this cache is only a speed-up: deleting it costs one re-read of the packs a create
compares against. Like restic's cache, it lives outside the repository.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np

from crmsync.snapshots.recordset import KEY_HASH_VERSION, RecordSet

HASH_BYTES = 16  # crmsync.snapshots.create.short_ids


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "crmsync" / "snapshots"


class HashCache:
    """``<root>/<repository id>/<stored pack id>``: short blob ids of the pack's lines."""

    def __init__(self, root: Path | None, repository_id: str, enabled: bool = True):
        self.dir = (root or default_cache_root()) / repository_id if enabled else None

    def get(self, stored_id: str, count: int) -> np.ndarray | None:
        """(count, 2) uint64 short blob ids, or None when absent or not the expected size."""
        if self.dir is None:
            return None
        try:
            raw = (self.dir / stored_id).read_bytes()
        except OSError:
            return None
        if len(raw) != count * HASH_BYTES:
            return None
        return np.frombuffer(raw, dtype="<u8").reshape(count, 2)

    def put(self, stored_id: str, hashes: np.ndarray) -> None:
        if self.dir is None:
            return
        # A cache that cannot be written is not an error: the next create recomputes.
        with contextlib.suppress(OSError):
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.dir / f".tmp-{secrets.token_hex(6)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(np.ascontiguousarray(hashes, dtype="<u8").tobytes())
            os.replace(tmp, self.dir / stored_id)

    def put_set(self, snapshot_id: str, rs: RecordSet) -> None:
        """Keep the record set of the newest snapshot created here (one file, replaced)."""
        if self.dir is None or rs.sha is None:
            return
        with contextlib.suppress(OSError):
            sets = self.dir / "sets"
            sets.mkdir(parents=True, exist_ok=True, mode=0o700)
            for old in sets.glob("*.npz"):
                old.unlink()
            tmp = sets / f".tmp-{secrets.token_hex(6)}.npz"
            np.savez(tmp, kh=rs.kh, loc=rs.loc, sha=rs.sha, packs=np.array(rs.packs, dtype="U64"))
            os.chmod(tmp, 0o600)
            os.replace(tmp, sets / f"{snapshot_id}-v{KEY_HASH_VERSION}.npz")

    def get_set(self, snapshot_id: str) -> RecordSet | None:
        if self.dir is None:
            return None
        try:
            with np.load(self.dir / "sets" / f"{snapshot_id}-v{KEY_HASH_VERSION}.npz") as z:
                kh, loc, sha, packs = z["kh"], z["loc"], z["sha"], [str(p) for p in z["packs"]]
        except (OSError, ValueError, KeyError):
            return None
        if not (len(kh) == len(loc) == len(sha) and kh.shape[1:] == sha.shape[1:] == (2,)):
            return None
        return RecordSet(packs, kh, loc, sha, presorted=True)

    def drop(self, stored_id: str) -> None:
        if self.dir is not None:
            with contextlib.suppress(OSError):
                (self.dir / stored_id).unlink()

    def drop_sets(self) -> None:
        """Forget the cached record sets (after an erasure: they locate erased versions)."""
        if self.dir is not None:
            for old in (self.dir / "sets").glob("*.npz"):
                with contextlib.suppress(OSError):
                    old.unlink()
