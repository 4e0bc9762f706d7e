"""Local state behind one interface (:class:`Store`); SQLite is the embedded default."""

from __future__ import annotations

from pathlib import Path

from crmsync.store.base import (
    CursorState,
    MirrorRecord,
    ModuleCount,
    PageStats,
    Run,
    Store,
    canonical_json,
    content_hash,
)

__all__ = [
    "CursorState",
    "MirrorRecord",
    "ModuleCount",
    "PageStats",
    "Run",
    "Store",
    "canonical_json",
    "content_hash",
    "open_store",
]


def open_store(path: Path | str) -> Store:
    """Open (creating and migrating if needed) the store at ``path``."""
    from crmsync.store.sqlite import SQLiteStore

    return SQLiteStore(path)
