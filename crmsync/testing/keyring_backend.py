"""An in-memory keyring backend, so tests never read or write a developer's real keyring.

Select it with ``PYTHON_KEYRING_BACKEND=crmsync.testing.keyring_backend.MemoryKeyring`` (also
works in subprocesses) or ``keyring.set_keyring(MemoryKeyring())``.
"""

from __future__ import annotations

from typing import ClassVar

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]
    # Shared by every instance in the process: keyring may construct the backend more than once.
    _secrets: ClassVar[dict[tuple[str, str], str]] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self._secrets[(service, username)]
        except KeyError:
            raise PasswordDeleteError(f"{service}/{username} not set") from None

    @classmethod
    def clear(cls) -> None:
        cls._secrets.clear()
