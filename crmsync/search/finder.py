"""Run a search: the mirror's index, then (when asked) the snapshots; one row per match."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.search.filters import CREATED_KEYS, first_time
from crmsync.search.model import SearchRequest
from crmsync.search.text import display_name, snippet
from crmsync.store.base import Store

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository


@dataclass(frozen=True)
class SearchRow:
    """One record found. ``source`` is ``mirror`` or ``snapshot <id>``; ``score`` is bm25
    (lower is better; None for snapshot rows and searches by filters only)."""

    source: str
    connection: str
    module: str
    record_id: str
    status: str
    name: str
    snippet: str
    modified_at: str | None
    created_at: str | None
    score: float | None
    data: dict[str, Any]
    snapshot_id: str | None = None
    snapshot_time: str | None = None
    deleted_in_crm_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "connection": self.connection, "module": self.module,
            "record_id": self.record_id, "status": self.status, "name": self.name,
            "snippet": self.snippet, "modified_at": self.modified_at,
            "created_at": self.created_at, "score": self.score,
            "snapshot_id": self.snapshot_id, "snapshot_time": self.snapshot_time,
            "deleted_in_crm_at": self.deleted_in_crm_at, "data": self.data,
        }  # fmt: skip


@dataclass
class SearchResult:
    rows: list[SearchRow] = field(default_factory=list)
    window_full: bool = False  # the mirror had more matches than the ranking window
    window: int = 0


def _created(data: dict[str, Any]) -> str | None:
    value = first_time(data, CREATED_KEYS)
    return value if isinstance(value, str) else None


def find(
    store: Store,
    request: SearchRequest,
    *,
    repository: Repository | None = None,
    all_snapshots: bool = False,
) -> SearchResult:
    """Up to ``request.limit`` mirror rows (best first) and, with a ``repository``, up to
    ``request.limit`` snapshot-only rows after them (newest snapshot first)."""
    literals = request.query.literals if request.query else ()
    matches = store.search_mirror(request)
    result = SearchResult(window_full=matches.window_full, window=request.window)
    for hit in matches.hits:
        result.rows.append(
            SearchRow(
                source="mirror",
                connection=hit.connection,
                module=hit.module,
                record_id=hit.record_id,
                status=hit.status,
                name=display_name(hit.data),
                snippet=snippet(hit.data, literals),
                modified_at=hit.modified_at,
                created_at=_created(hit.data),
                score=hit.score,
                data=hit.data,
                deleted_in_crm_at=hit.deleted_in_crm_at,
            )
        )
    if repository is not None:
        from crmsync.search.snapshot_scan import snapshot_hits

        for snap in snapshot_hits(repository, store, request, all_snapshots=all_snapshots):
            result.rows.append(
                SearchRow(
                    source=f"snapshot {snap.snapshot_id[:8]}",
                    connection=snap.connection,
                    module=snap.module,
                    record_id=snap.record_id,
                    status=snap.status,
                    name=display_name(snap.data),
                    snippet=snippet(snap.data, literals),
                    modified_at=snap.modified_at,
                    created_at=_created(snap.data),
                    score=None,
                    data=snap.data,
                    snapshot_id=snap.snapshot_id,
                    snapshot_time=snap.snapshot_time,
                )
            )
    return result
