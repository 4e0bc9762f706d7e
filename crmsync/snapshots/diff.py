"""``diff A B``: which records were added, removed or changed between two snapshots, and for
one record which fields changed. Joins the two snapshots' sorted arrays; no record body is read
except for field-level changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crmsync.snapshots.recordset import LOC_MASK, RecordSet

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

MISSING = object()


@dataclass(frozen=True)
class DiffEntry:
    kind: Literal["added", "removed", "changed"]
    module: str
    record_id: str


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any  # MISSING when the field was absent
    after: Any


def _names(repo: Repository, rs: RecordSet, rows: np.ndarray) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    locs = rs.loc[rows]
    pack_nos = (locs >> np.uint64(32)).astype(np.int64)
    for no in np.unique(pack_nos):
        ordinals = (locs[pack_nos == no] & np.uint64(LOC_MASK)).astype(np.int64)
        out += repo.locate(rs.packs[int(no)], ordinals)
    return out


def diff(repo: Repository, a: str, b: str) -> Iterator[DiffEntry]:
    """Records of ``b`` compared with ``a``, sorted by (kind, module, record id)."""
    sa = repo.record_set(repo.resolve(a), with_hashes=True)
    sb = repo.record_set(repo.resolve(b), with_hashes=True)
    rows = sa.find(sb.kh)  # for each record of b, its row in a
    found = rows >= 0
    assert sa.sha is not None and sb.sha is not None
    changed = np.zeros(len(sb), dtype=bool)
    changed[found] = np.any(sa.sha[rows[found]] != sb.sha[found], axis=1)
    in_b = np.zeros(len(sa), dtype=bool)
    in_b[rows[found]] = True
    groups = (
        ("added", sb, np.nonzero(~found)[0]),
        ("changed", sb, np.nonzero(changed)[0]),
        ("removed", sa, np.nonzero(~in_b)[0]),
    )
    for kind, rs, sel in groups:
        for module, rid in sorted(_names(repo, rs, sel)):
            yield DiffEntry(kind, module, rid)  # type: ignore[arg-type]


def field_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """Top-level fields whose values differ (a nested value is compared as a whole)."""
    before, after = before or {}, after or {}
    return [
        FieldChange(k, before.get(k, MISSING), after.get(k, MISSING))
        for k in sorted(set(before) | set(after))
        if before.get(k, MISSING) != after.get(k, MISSING)
    ]
