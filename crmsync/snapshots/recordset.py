"""A snapshot's records as sorted numpy arrays: the join structure of create and diff.

Per record: a 128-bit hash of (module, record id), its location (pack number << 32 | ordinal)
and optionally its 32-byte blob id: ~56 bytes a record (56 MB at 1M records), where a Python
dict of the same took ~1.2 GB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

LOC_MASK = (1 << 32) - 1


_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93))
_MULTS = (np.uint64(0x87C37B91114253D5), np.uint64(0x4CF5AD432745937F))
_S33 = np.uint64(33)


def _fmix(h: np.ndarray) -> np.ndarray:
    h ^= h >> _S33
    h *= _FMIX1
    h ^= h >> _S33
    h *= _FMIX2
    h ^= h >> _S33
    return h


def _module_seeds(modules: Sequence[str]) -> np.ndarray:
    def seed(m: str) -> np.uint64:
        return np.uint64(
            int.from_bytes(hashlib.blake2b(m.encode(), digest_size=8).digest(), "little")
        )

    distinct = set(modules)
    if len(distinct) == 1:  # the usual batch: records stream module by module
        return np.full(len(modules), seed(next(iter(distinct))), dtype=np.uint64)
    names = np.array(modules, dtype=str)
    out = np.empty(len(modules), dtype=np.uint64)
    for m in distinct:
        out[names == m] = seed(m)
    return out


def key_hashes(modules: Sequence[str], ids: Sequence[str]) -> np.ndarray:
    """(n, 2) uint64: a 128-bit hash of (module, record_id) for each key.

    Two independent 64-bit multiply-xorshift lanes (murmur3's finaliser) over the record id's
    UTF-32 code units, 8 bytes at a time, seeded by the id's length and a hash of the module,
    vectorised: ~0.3 us a key where hashlib took ~1.7 us. Only accidental collisions matter
    (n^2 / 2^129), and a colliding pair is detected, not merged. This function is part of the
    local cache format (KEY_HASH_VERSION), not the repository's.
    """
    n = len(ids)
    if n == 0:
        return np.zeros((0, 2), "<u8")
    text = np.array(ids, dtype=str)
    width = max(text.dtype.itemsize // 4, 1)
    width += width % 2  # whole 8-byte words
    words = text.astype(f"<U{width}").view("<u8").reshape(n, width // 2)
    lens = np.char.str_len(text).astype(np.uint64)
    base = lens * _MULTS[0] ^ _module_seeds(modules)
    out = np.empty((n, 2), "<u8")
    with np.errstate(over="ignore"):
        for lane in (0, 1):
            h = _fmix(base ^ _SEEDS[lane])
            for j in range(words.shape[1]):
                # a key's hash must not depend on how wide its batch's longest key is
                active = lens > np.uint64(2 * j)
                h = np.where(active, _fmix((h ^ words[:, j]) * _MULTS[lane]), h)
            out[:, lane] = h
    return out


KEY_HASH_VERSION = 2


class RecordSet:
    """Records sorted by key hash; ``packs[loc >> 32]`` is the logical pack id of a record."""

    def __init__(
        self, packs: list[str], kh: np.ndarray, loc: np.ndarray, sha: np.ndarray | None,
        presorted: bool = False,
    ) -> None:  # fmt: skip
        self.packs = packs
        if presorted:
            self.kh, self.loc, self.sha = kh, loc, sha
        else:  # sorted one array at a time: peak is one extra copy of one array, not of all
            order = np.lexsort((kh[:, 1], kh[:, 0]))
            self.kh = kh[order]
            del kh
            self.loc = loc[order]
            del loc
            self.sha = sha[order] if sha is not None else None
        k = self.kh
        if len(k) > 1 and bool(np.any(np.all(k[1:] == k[:-1], axis=1))):
            raise ValueError("a snapshot holds the same record twice")

    def __len__(self) -> int:
        return len(self.loc)

    def find(self, q: np.ndarray) -> np.ndarray:
        """Row of each query key hash in this set, -1 where absent."""
        n = len(self.kh)
        if n == 0 or len(q) == 0:
            return np.full(len(q), -1, dtype=np.int64)
        first = self.kh[:, 0]
        order = np.argsort(q[:, 0])  # sorted needles walk the array in order: fewer cache misses
        pos = np.empty(len(q), dtype=np.int64)
        pos[order] = np.searchsorted(first, q[order, 0])
        clipped = np.minimum(pos, n - 1)
        hit = (pos < n) & (first[clipped] == q[:, 0])
        rows = np.where(hit & (self.kh[clipped, 1] == q[:, 1]), clipped, -1)
        # The first 64 bits collide with probability ~n^2/2^65: walk the run for those rows.
        for i in np.nonzero(hit & (rows < 0))[0]:
            j = int(pos[i])
            while j < n and first[j] == q[i, 0]:
                if self.kh[j, 1] == q[i, 1]:
                    rows[i] = j
                    break
                j += 1
        return rows
