"""Zoho OAuth: the shared refresh-token client adapted to Zoho's accounts servers.

:class:`ZohoAuth` extends :class:`crmsync.auth.OAuth2RefreshToken` (``Zoho-oauthtoken`` scheme,
cached token refreshed 60 s before expiry and once on a 401) with what Zoho adds:

* the token response's ``api_domain`` is kept (:attr:`ZohoAuth.api_domain`);
* the older response form (``expires_in`` in ms plus ``expires_in_sec``) is read correctly;
* at most 10 token requests per refresh token per 10 minutes (Zoho's limit): the 11th fails
  clearly instead of being sent;
* ``invalid_code`` (revoked refresh token) says how to re-authorise; the accounts server's
  "Access Denied" throttle answer is reported as such; an unreachable accounts server names the
  host and the ``datacentre`` setting.

:func:`exchange_grant_code` turns a self-client grant code into a refresh token
(``crmsync auth zoho``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests

from crmsync.auth import OAuth2RefreshToken
from crmsync.errors import AuthError, ConnectorError, UnreachableError
from crmsync.hookspecs import SecretRef

TOKEN_PATH = "/oauth/v2/token"
#: Zoho: at most 10 access tokens per refresh token per 10 minutes.
TOKEN_LIMIT = 10
TOKEN_WINDOW = 600.0


def token_url(accounts_url: str) -> str:
    return accounts_url.rstrip("/") + TOKEN_PATH


def _expires_in(body: dict[str, Any]) -> float | None:
    """Seconds the token lives: ``expires_in_sec`` when present (old form, where
    ``expires_in`` is in milliseconds), else ``expires_in``."""
    for key in ("expires_in_sec", "expires_in"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value) / 1000.0 if key == "expires_in" and value > 86_400 else float(value)
    return None


def _token_error(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    return str(error) if isinstance(error, str) and error else None


class ZohoAuth(OAuth2RefreshToken):
    """Refresh-token OAuth for one Zoho connection (see the module docstring)."""

    def __init__(
        self,
        connection: str,
        accounts_url: str,
        client_id: SecretRef | str,
        client_secret: SecretRef | str,
        refresh_token: SecretRef | str,
        *,
        datacentre: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            token_url(accounts_url),
            client_id,
            client_secret,
            refresh_token,
            scheme="Zoho-oauthtoken",
            clock=clock,
        )
        self.connection = connection
        self.accounts_url = accounts_url
        self.datacentre = datacentre
        self.api_domain: str | None = None  # from the last token response
        self.scope_granted: str | None = None
        self._issued: deque[float] = deque()
        self._window_lock = threading.Lock()

    # -- hooks of the shared OAuth2 client

    def _fetch_locked(self) -> None:
        with self._window_lock:
            now = self._clock()
            while self._issued and now - self._issued[0] >= TOKEN_WINDOW:
                self._issued.popleft()
            if len(self._issued) >= TOKEN_LIMIT:
                wait = int(TOKEN_WINDOW - (now - self._issued[0])) + 1
                raise AuthError(
                    f"connection {self.connection!r}: Zoho allows {TOKEN_LIMIT} access tokens "
                    f"per refresh token per 10 minutes and crmsync has asked for "
                    f"{len(self._issued)} already; not asking again (try again in {wait} s). "
                    "Tokens being refused right after they are issued usually means another "
                    "client uses the same refresh token"
                )
            self._issued.append(now)
        try:
            super()._fetch_locked()
        except UnreachableError as err:
            where = f"datacentre {self.datacentre!r}" if self.datacentre else "accounts_url"
            err.detail = (
                f"{err.detail}: the Zoho accounts server is unreachable; check the connection's "
                f"{where} (or accounts_url) and the network"
            )
            err.args = (err._render(),)
            raise

    def _json(self, response: requests.Response) -> dict[str, Any]:
        body = super()._json(response)
        if "access_token" in body:
            expires = _expires_in(body)
            if expires is not None:
                body["expires_in"] = expires
            domain = body.get("api_domain")
            if isinstance(domain, str) and domain.startswith(("http://", "https://")):
                self.api_domain = domain.rstrip("/")
            if isinstance(body.get("scope"), str):
                self.scope_granted = body["scope"]
        return body

    def _refused(self, status: int, body: dict[str, Any]) -> ConnectorError:
        code = _token_error(body)
        host = self.accounts_url
        if code == "invalid_code":
            return AuthError(
                f"connection {self.connection!r}: the Zoho accounts server {host} refused the "
                f"refresh token ({_describe(self._refresh_ref)}): invalid_code, it was revoked or "
                f"belongs to another data centre or client. Re-authorise with "
                f"`crmsync auth zoho {self.connection}`",
                status=status,
            )
        if code == "invalid_client":
            return AuthError(
                f"connection {self.connection!r}: the Zoho accounts server {host} does not know "
                f"this client (invalid_client): check client_id and client_secret, and that the "
                f"self-client was created in this data centre",
                status=status,
            )
        if code and "access denied" in code.lower():
            return ConnectorError(
                f"connection {self.connection!r}: the Zoho accounts server {host} throttled token "
                f"requests (Access Denied: too many requests); wait a few minutes",
                status=status,
            )
        return super()._refused(status, body)


def _describe(value: SecretRef | str) -> str:
    return str(value) if isinstance(value, SecretRef) else "<literal>"


def exchange_grant_code(
    accounts_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    *,
    redirect_uri: str | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Exchange a self-client grant code (``authorization_code`` grant) for tokens.

    Returns the token response (it has ``refresh_token``); raises AuthError / UnreachableError
    with messages that never contain the code or a secret.
    """
    data = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
    }
    if redirect_uri:
        data["redirect_uri"] = redirect_uri
    url = token_url(accounts_url)
    try:
        response = requests.post(url, data=data, timeout=timeout)
    except requests.RequestException:
        raise UnreachableError(
            f"could not reach the Zoho accounts server {accounts_url}; check the connection's "
            "datacentre / accounts_url"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code >= 400 or "refresh_token" not in body:
        error = _token_error(body) or f"HTTP {response.status_code}"
        hint = (
            " (grant codes are single-use and expire after a few minutes: generate a new one)"
            if error == "invalid_code"
            else ""
        )
        raise AuthError(
            f"Zoho accounts server {accounts_url} refused the grant code: {error}{hint}"
        )
    return body
