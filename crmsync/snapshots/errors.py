"""Snapshot repository errors: each names the object (and snapshot/record) it is about."""

from __future__ import annotations

from crmsync.errors import CrmsyncError


class SnapshotError(CrmsyncError):
    """Base class for snapshot repository errors."""


class SnapshotNotFound(SnapshotError):
    pass


class RepositoryCorrupt(SnapshotError):
    """An object is unreadable, truncated or does not hash to its name."""

    def __init__(self, message: str, name: str | None = None):
        self.name = name
        super().__init__(message)


class FormatVersionError(SnapshotError):
    """An object was written by a newer crmsync than this one."""


class RepositoryWriteError(SnapshotError):
    """A write failed (e.g. disk full); nothing became visible, existing snapshots are intact."""


class RepositoryLocked(SnapshotError):
    """Another process holds a lock that conflicts with this operation."""
