"""The run lock: one unattended run per store at a time, across processes and threads.

The lock is ``flock(LOCK_EX)`` on a file beside the store (``crmsync.db`` -> ``crmsync.db.lock``),
holding who has it (pid, host, since when, run id) as JSON for the message a second run prints.

Why ``flock``: the kernel releases it when the holder dies, however it dies (SIGKILL, OOM, power
loss on a local disk), so a stale lock cannot block anyone; a lock file whose text is still
there when the lock is free was left by a holder that died, and is taken over (and reported).
``flock`` locks belong to an open file, not to a process, so two threads of one process (``crmsync
serve``) exclude each other too; the descriptor is close-on-exec, so children never hold it.

NFS: Linux maps ``flock`` on NFS to NFS byte-range locks, which hold across hosts (NFSv4, or v3
with lockd); if the holder's host dies, the server frees the lock when its lease ends (about 90
s on NFSv4). SQLite itself is not safe on NFS, so keep the store on a local disk where you can.
The lock file is never deleted: deleting a locked file lets two processes lock two files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from crmsync.errors import EXIT_TEMPFAIL, CrmsyncError


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".lock")


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a run lock, as its lock file says."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None  # ISO-8601 UTC
    command: str | None = None
    run_id: int | None = None

    def describe(self) -> str:
        if self.pid is None:
            return "a process that is just starting"
        parts = [f"pid {self.pid}"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.command:
            parts.insert(0, self.command)
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        if self.since:
            parts.append(f"since {self.since}")
        return " ".join(parts)

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder a lock file names; None for an empty file (released cleanly)."""
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return cls(command="unreadable lock file")
        if not isinstance(data, dict):
            return cls(command="unreadable lock file")
        known = {k: data.get(k) for k in ("pid", "host", "since", "command", "run_id")}
        return cls(**known)


class RunLocked(CrmsyncError):
    """Another run holds the store's run lock. Exit 75 (EX_TEMPFAIL): try again later."""

    exit_code = EXIT_TEMPFAIL

    def __init__(self, path: Path, holder: LockHolder | None):
        self.path = path
        self.holder = holder or LockHolder()
        super().__init__(
            f"another run holds the lock {path}: {self.holder.describe()}; "
            "nothing was done, try again later"
        )


class RunLock:
    """``with RunLock(store_path):`` — exclusive, non-blocking: raises :class:`RunLocked` at
    once if held. After entering, ``stale`` is the holder whose dead lock was taken over."""

    def __init__(self, store_path: Path, *, command: str = "crmsync run"):
        self.path = lock_path(Path(store_path))
        self.command = command
        self.stale: LockHolder | None = None
        self.holder: LockHolder | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError("this RunLock is already held")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held; others (ENOLCK on NFS without lockd): refuse
            holder = LockHolder.parse(_read(fd))
            os.close(fd)
            raise RunLocked(self.path, holder) from None
        try:
            self.stale = LockHolder.parse(_read(fd))
            self.holder = LockHolder(
                pid=os.getpid(),
                host=socket.gethostname(),
                since=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                command=self.command,
            )
            _write(fd, self.holder)
        except BaseException:
            os.close(fd)  # closing the last descriptor releases the lock
            raise
        self._fd = fd
        return self

    def note(self, **info: Any) -> None:
        """Add to what the lock file says about the holder (e.g. ``run_id``)."""
        if self._fd is None or self.holder is None:
            return
        self.holder = LockHolder(**{**asdict(self.holder), **info})
        _write(self._fd, self.holder)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # an empty file: released cleanly, nothing stale
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _write(fd: int, holder: LockHolder) -> None:
    data = json.dumps({k: v for k, v in asdict(holder).items() if v is not None}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data + b"\n", 0)
