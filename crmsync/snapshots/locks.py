"""Repository locks: creates share the repository, ``prune`` needs it alone.

A prune that ran during a create could delete a blob the create is about to reference, so
``locks/<random>`` objects say who works on the repository. A lock of a process on this host
that is no longer running, or any lock older than ``STALE_AFTER``, is stale and removed.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from crmsync.snapshots.backend import ObjectNotFound
from crmsync.snapshots.errors import RepositoryLocked

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

LOCKS = "locks/"
STALE_AFTER = timedelta(hours=6)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RepositoryLock:
    def __init__(self, repo: Repository, exclusive: bool):
        self.repo = repo
        self.exclusive = exclusive
        self.name = LOCKS + secrets.token_hex(16)

    def _others(self) -> list[dict[str, Any]]:
        backend, host, now = self.repo.backend, socket.gethostname(), datetime.now(UTC)
        live = []
        for name in backend.list(LOCKS):
            if name == self.name:
                continue
            try:
                lock = orjson.loads(backend.get(name))
                stamp = datetime.fromisoformat(lock["time"])
                stale = (lock["host"] == host and not _alive(int(lock["pid"]))) or (
                    now - stamp > STALE_AFTER
                )
            except ObjectNotFound:
                continue
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                stale = True  # unreadable: a lock write that never finished
            if stale:
                backend.delete(name)
            else:
                live.append(lock)
        return live

    def _conflict(self) -> dict[str, Any] | None:
        for lock in self._others():
            if self.exclusive or lock.get("exclusive"):
                return lock
        return None

    def __enter__(self) -> RepositoryLock:
        holder = self._conflict()
        if holder is None:
            lock = {
                "exclusive": self.exclusive, "host": socket.gethostname(), "pid": os.getpid(),
                "time": datetime.now(UTC).isoformat(),
            }  # fmt: skip
            self.repo._put(self.name, orjson.dumps(lock))
            holder = self._conflict()  # two processes may have checked at the same moment
            if holder is not None:
                self.repo.backend.delete(self.name)
        if holder is not None:
            what = "a prune" if holder.get("exclusive") else "a snapshot create"
            raise RepositoryLocked(
                f"snapshot repository {self.repo.backend.describe()} is in use by {what}"
                f" (process {holder.get('pid')} on {holder.get('host')}"
                f" since {holder.get('time')}); try again when it has finished"
            )
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.repo.backend.delete(self.name)
