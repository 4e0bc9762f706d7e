"""Content-addressed, record-level deduplicated snapshots (format: docs/snapshot-format.md).

:class:`Repository` over a :class:`Backend` (a local directory by default); the CLI is
``crmsync snapshot``.
"""

from crmsync.snapshots.backend import Backend, LocalBackend, ObjectNotFound
from crmsync.snapshots.check import DamagedRecord, VerifyReport
from crmsync.snapshots.crypto import WrongPassphrase
from crmsync.snapshots.errors import (
    FormatVersionError,
    RepositoryCorrupt,
    RepositoryLocked,
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
)
from crmsync.snapshots.prune import PruneReport
from crmsync.snapshots.repository import (
    RecordVersion,
    Repository,
    SnapshotInfo,
    SnapshotRecord,
    record_version,
)

__all__ = [
    "Backend",
    "DamagedRecord",
    "FormatVersionError",
    "LocalBackend",
    "ObjectNotFound",
    "PruneReport",
    "RecordVersion",
    "Repository",
    "RepositoryCorrupt",
    "RepositoryLocked",
    "RepositoryWriteError",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotNotFound",
    "SnapshotRecord",
    "VerifyReport",
    "WrongPassphrase",
    "record_version",
]
