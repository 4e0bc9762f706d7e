"""Errors users see. Each carries the exit code the CLI returns (DESIGN.md: 1, 2, 3; `crmsync
run` adds 4 and 75)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_GUARD = 3
# crmsync run (crmsync.unattended): a person is needed (plans await approval), and "not done,
# nothing wrong, try again later" (another run holds the lock, or the run was stopped).
EXIT_ATTENTION = 4
EXIT_TEMPFAIL = 75  # sysexits.h EX_TEMPFAIL


class CrmsyncError(Exception):
    """Base class: a message meant for the user, and an exit code."""

    exit_code = EXIT_FAILURE


class ConfigError(CrmsyncError):
    """The config is wrong. ``path`` is the key path, e.g. ``connections.sales.paginator.type``."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, path: str | None = None, source: str | None = None):
        self.path = path
        self.source = source
        where = f"{path}: " if path else ""
        origin = f"{source}: " if source else ""
        super().__init__(f"{origin}{where}{message}")


class SecretError(ConfigError):
    """A secret reference cannot be resolved (missing env var, no keyring entry/backend)."""


class UnknownConnectorError(ConfigError):
    pass


class ConnectorError(CrmsyncError):
    """A connector failed talking to its CRM. Names the connection, module and page."""

    def __init__(
        self,
        message: str,
        *,
        connection: str | None = None,
        module: str | None = None,
        page: int | None = None,
        status: int | None = None,
    ):
        self.connection = connection
        self.module = module
        self.page = page
        self.status = status
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.connection:
            parts.append(f"connection {self.connection!r}")
        if self.module:
            parts.append(f"module {self.module!r}")
        if self.page is not None:
            parts.append(f"page {self.page}")
        where = ", ".join(parts)
        return f"{where}: {self.detail}" if where else self.detail

    def located(
        self, *, connection: str | None = None, module: str | None = None, page: int | None = None
    ) -> ConnectorError:
        """Fill in where the error happened, keeping what the connector already said."""
        self.connection = self.connection or connection
        self.module = self.module or module
        self.page = self.page if self.page is not None else page
        self.args = (self._render(),)
        return self


class AuthError(ConnectorError):
    """401/403 or a refused token: the credentials are wrong, expired or revoked."""


class UnreachableError(ConnectorError):
    """DNS, refused connection, timeout: the CRM could not be reached."""


class BadResponseError(ConnectorError):
    """The CRM answered something we cannot use: malformed JSON, a missing field..."""


class GuardError(CrmsyncError):
    """A safety guard stopped the run (blast radius, drift, missing approval)."""

    exit_code = EXIT_GUARD


class StoreError(CrmsyncError):
    """The local store cannot be opened or is from a newer crmsync."""
