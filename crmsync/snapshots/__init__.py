"""Content-addressed, record-level deduplicated snapshots (format: docs/snapshot-format.md).

Library core only: :class:`Repository` over a :class:`Backend`. apply/CLI integration comes later.
"""

from crmsync.snapshots.backend import Backend, LocalBackend, ObjectNotFound
from crmsync.snapshots.errors import (
    BlobNotFound,
    FormatVersionError,
    RepositoryCorrupt,
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
)
from crmsync.snapshots.repository import Repository, SnapshotInfo, VerifyReport

__all__ = [
    "Backend",
    "BlobNotFound",
    "FormatVersionError",
    "LocalBackend",
    "ObjectNotFound",
    "Repository",
    "RepositoryCorrupt",
    "RepositoryWriteError",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotNotFound",
    "VerifyReport",
]
