"""Storage backends: named immutable objects. The format never depends on where bytes live.

Object names are '/'-separated relative paths ("packs/ab/<sha256>", "snapshots/<sha256>").
A backend must make ``put`` atomic (a reader sees the whole object or none) and durable once it
returns. An S3-compatible backend maps names to keys; PUT is already atomic there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path


class ObjectNotFound(KeyError):
    """No object with that name."""


class Backend(ABC):
    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` atomically and durably (overwrites an existing object)."""

    @abstractmethod
    def get(self, name: str) -> bytes:
        """The object's bytes; raises :class:`ObjectNotFound`."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Names of complete objects starting with ``prefix`` (sorted)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the object; missing is not an error."""

    def size(self, name: str) -> int:
        """Stored bytes of an object (0 when absent)."""
        try:
            return len(self.get(name))
        except ObjectNotFound:
            return 0

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ObjectNotFound:
            return False
        return True

    def describe(self) -> str:
        return type(self).__name__


class LocalBackend(Backend):
    """A directory. put = write temp file, fsync, rename over the name, fsync the directory."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"bad object name {name!r}")
        return self.root.joinpath(*parts)

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(path.parent)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(name) from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return 0

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        names = []
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for f in files:
                if f.startswith("."):
                    continue  # temp files of an interrupted put are never objects
                name = f if rel == "." else f"{rel}/{f}"
                if name.startswith(prefix):
                    names.append(name)
        return iter(sorted(names))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
