"""The repository the config names (``[snapshots]``), for the CLI and for apply."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmsync.snapshots import crypto
from crmsync.snapshots import format as fmt
from crmsync.snapshots.backend import LocalBackend
from crmsync.snapshots.errors import SnapshotError
from crmsync.snapshots.repository import Repository

if TYPE_CHECKING:
    from crmsync.config import SnapshotsConfig


class NoRepository(SnapshotError):
    """No repository at the configured place (and not asked to create one)."""


def repository_exists(settings: SnapshotsConfig) -> bool:
    return LocalBackend(settings.repository).exists(fmt.CONFIG_NAME)


def init_configured(settings: SnapshotsConfig) -> Repository:
    return Repository.init(
        LocalBackend(settings.repository),
        passphrase=settings.passphrase.reveal() if settings.passphrase else None,
        cache_dir=settings.cache_dir,
        kdf_n=crypto.DEFAULT_N,  # read at call time (tests lower it)
    )


def open_configured(settings: SnapshotsConfig, *, create: bool = False) -> Repository:
    """The configured repository; with ``create``, initialised on first use."""
    if not repository_exists(settings):
        if create:
            return init_configured(settings)
        raise NoRepository(
            f"no snapshot repository at {settings.repository}; create one with "
            "`crmsync snapshot init` (or `crmsync snapshot create`)"
        )
    return Repository.open(
        LocalBackend(settings.repository),
        passphrase=settings.passphrase.reveal() if settings.passphrase else None,
        cache_dir=settings.cache_dir,
    )
