"""Authentication of the sandbox CRM: the static token and OAuth2 tokens that expire by the
sandbox clock (see API.md, "Auth")."""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Mapping

from crmsync.sandbox.clock import SandboxClock


class SandboxAuth:
    """Checks API credentials and issues OAuth2 tokens. Thread-safe."""

    def __init__(
        self,
        clock: SandboxClock,
        token: str = "sandbox-token",
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        refresh_token: str = "sandbox-refresh",
        token_ttl: int = 3600,
    ) -> None:
        self.clock = clock
        self.token = token
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        self._issued: dict[str, float] = {}  # access token -> expiry (clock timestamp)
        self._static_valid = True
        self._refresh_valid = True

    # ----------------------------------------------------------------------- checking

    def check(self, headers: Mapping[str, str], query: Mapping[str, list[str]]) -> str | None:
        """None if the request is authenticated, else why not (for the 401 message; it never
        repeats the credential)."""
        token = _credential(headers, query)
        if token is None:
            return "missing credentials: send Authorization: Bearer, X-API-Key or api_key"
        with self._lock:
            if token == self.token:
                return None if self._static_valid else "token expired"
            expiry = self._issued.get(token)
        if expiry is None:
            return "invalid token"
        if self.clock.timestamp() >= expiry:
            return "token expired"
        return None

    # ----------------------------------------------------------------------- OAuth

    def issue(
        self, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, object]]:
        """Handle ``POST /oauth/token``: (status, JSON body). Client credentials come in the
        form or as HTTP Basic (both are allowed by RFC 6749)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic(headers.get("Authorization", ""))
        if basic and client_id is None:
            client_id, client_secret = basic
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            with self._lock:
                valid = self._refresh_valid
            if not valid or form.get("refresh_token") != self.refresh_token:
                return 400, {"error": "invalid_grant"}
        elif grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        access = "sbx-" + secrets.token_hex(16)
        with self._lock:
            self._issued[access] = self.clock.timestamp() + self.token_ttl
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": self.token_ttl}

    def expire(self, static: bool = False, refresh: bool = False) -> None:
        """Every issued token expires now; optionally also the static token and the refresh
        token (until :meth:`restore`)."""
        now = self.clock.timestamp()
        with self._lock:
            for token in self._issued:
                self._issued[token] = now
            if static:
                self._static_valid = False
            if refresh:
                self._refresh_valid = False

    def restore(self) -> None:
        """Make the static and refresh tokens valid again (issued tokens stay expired)."""
        with self._lock:
            self._static_valid = True
            self._refresh_valid = True


def _credential(headers: Mapping[str, str], query: Mapping[str, list[str]]) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic":
        pair = _basic(auth)
        return pair[1] if pair else None
    key = headers.get("X-API-Key")
    if key:
        return key
    values = query.get("api_key")
    return values[0] if values else None


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
