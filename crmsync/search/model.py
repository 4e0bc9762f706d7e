"""What a search asks of the store, and what it finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmsync.search.query import SearchQuery

STATUSES = ("active", "archived", "voided", "purged")
"""Lifecycle statuses a search can filter on. ``purged``: no longer in the CRM — purged by
crmsync, or deleted there (the mirror keeps its last copy, marked deleted in the CRM)."""

TIME_FIELDS = ("modified", "created")

RANK_WINDOW = 2000
"""A query matching more records than this is ranked among the most recently added this many
(bm25 reads every match it ranks: over 1M records a common word would take seconds); the
result says so, and adding words or filters narrows it."""


@dataclass(frozen=True)
class SearchFilters:
    """Conditions besides the text. Empty tuples and None mean "any". ``since``/``until`` are
    time keys ('YYYY-MM-DDTHH:MM:SS.ffffff', UTC, as crmsync.policy.filters.time_key_sql
    gives); ``until`` is exclusive. ``fields``: (top-level key, value as text) pairs."""

    connection: str | None = None
    modules: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    since: str | None = None
    until: str | None = None
    time_field: str = "modified"


@dataclass(frozen=True)
class SearchRequest:
    query: SearchQuery | None
    filters: SearchFilters = field(default_factory=SearchFilters)
    limit: int = 20
    window: int = RANK_WINDOW


@dataclass(frozen=True)
class MirrorHit:
    """A mirrored record that matched. ``status`` is the lifecycle status a search filters on
    (``purged`` once the record is gone from the CRM); ``score`` is bm25 (lower is better),
    None for a search by filters only."""

    connection: str
    module: str
    record_id: str
    status: str
    modified_at: str | None
    deleted_in_crm_at: str | None
    data: dict[str, Any]
    score: float | None = None


@dataclass(frozen=True)
class MirrorMatches:
    hits: list[MirrorHit]
    window_full: bool = False  # more matches than request.window: ranked among the newest


@dataclass(frozen=True)
class RecordState:
    """What the mirror holds of a record (to tell a snapshot's copy from the mirror's)."""

    content_hash: str
    status: str  # as MirrorHit.status
