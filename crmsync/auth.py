"""Credentials for :class:`crmsync.http.HttpClient`: bearer, API key, basic and OAuth2.

An :class:`Auth` adds credentials to an outgoing request (``apply``) and, for OAuth2, can fetch
a new access token (``refresh``). Secrets arrive as :class:`~crmsync.hookspecs.SecretRef` and are
revealed only when a request is sent; reprs show the reference, never the value, and every value
revealed is reported by :meth:`Auth.secret_values` so the client can scrub it from messages.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import requests

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.hookspecs import SecretRef

__all__ = [
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "TokenTransport",
]

#: ``transport(method, url, form_data) -> response``: how OAuth2 reaches its token endpoint.
#: The HttpClient binds one that retries 429/5xx/network errors like every other call.
TokenTransport = Callable[[str, str, dict[str, str]], requests.Response]


def _reveal(value: SecretRef | str) -> str:
    return value.reveal() if isinstance(value, SecretRef) else value


def _describe(value: SecretRef | str) -> str:
    # A SecretRef prints as its reference (env:X); a literal must never be printed.
    return str(value) if isinstance(value, SecretRef) else "<literal>"


class Auth:
    """Base class: no credentials."""

    #: True when :meth:`refresh` can obtain new credentials (OAuth2); a 401 then retries once.
    can_refresh: bool = False

    def __init__(self) -> None:
        self._revealed: set[str] = set()

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        """Add credentials to a request; return an opaque token identity for :meth:`refresh`."""
        return None

    def refresh(self, stale: object | None = None) -> None:
        """Get new credentials. ``stale`` is what :meth:`apply` returned for the refused request:
        when another thread already replaced it, nothing is fetched again."""
        raise AuthError("these credentials cannot be refreshed")

    def bind(self, transport: TokenTransport) -> None:
        """Called by the HttpClient so token requests share its session and retry policy."""

    def secret_values(self) -> list[str]:
        """Every secret value revealed so far (to scrub from error messages)."""
        return [v for v in self._revealed if len(v) >= 4]

    def _secret(self, value: SecretRef | str) -> str:
        revealed = _reveal(value)
        self._revealed.add(revealed)
        return revealed

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BearerAuth(Auth):
    """``Authorization: Bearer <token>`` (``scheme`` changes the prefix, e.g. Zoho-oauthtoken)."""

    def __init__(self, token: SecretRef | str, *, scheme: str = "Bearer") -> None:
        super().__init__()
        self._token = token
        self.scheme = scheme

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        headers["Authorization"] = f"{self.scheme} {self._secret(self._token)}"
        return None

    def __repr__(self) -> str:
        return f"BearerAuth(token={_describe(self._token)})"


class ApiKeyAuth(Auth):
    """An API key in a header (``X-API-Key: <key>``) or a query parameter (``api_key=<key>``)."""

    def __init__(self, name: str, key: SecretRef | str, location: str = "header") -> None:
        super().__init__()
        if location not in ("header", "query"):
            raise ValueError("location must be 'header' or 'query'")
        self.name = name
        self._key = key
        self.location = location

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        target = headers if self.location == "header" else params
        target[self.name] = self._secret(self._key)
        return None

    def __repr__(self) -> str:
        key = _describe(self._key)
        return f"ApiKeyAuth(name={self.name!r}, key={key}, location={self.location!r})"


class BasicAuth(Auth):
    """HTTP basic auth."""

    def __init__(self, username: str, password: SecretRef | str) -> None:
        super().__init__()
        self.username = username
        self._password = password

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        raw = f"{self.username}:{self._secret(self._password)}".encode()
        encoded = base64.b64encode(raw).decode("ascii")
        self._revealed.add(encoded)
        headers["Authorization"] = f"Basic {encoded}"
        return None

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password={_describe(self._password)})"


class _OAuth2(Auth):
    """Shared OAuth2 token handling: cache with expiry, refresh early, refresh once on 401."""

    can_refresh = True
    grant_type = ""

    def __init__(
        self,
        token_url: str,
        client_id: SecretRef | str,
        client_secret: SecretRef | str,
        scope: str | None = None,
        *,
        scheme: str = "Bearer",
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
        default_expires_in: float = 3600.0,
    ) -> None:
        super().__init__()
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.scheme = scheme
        self._clock = clock
        self.refresh_margin = refresh_margin
        self.default_expires_in = default_expires_in
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._transport: TokenTransport | None = None
        self.token_requests = 0

    # -- plumbing

    def bind(self, transport: TokenTransport) -> None:
        self._transport = transport

    def _post(self, data: dict[str, str]) -> requests.Response:
        if self._transport is None:
            # Standalone use (no HttpClient): a throwaway client with the default retry policy.
            from crmsync.http import HttpClient

            self._transport = HttpClient(self.token_url, auth=None).token_transport
        return self._transport("POST", self.token_url, data)

    def _grant_data(self) -> dict[str, str]:
        raise NotImplementedError

    # -- Auth API

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        with self._lock:
            if (
                self._access_token is None
                or self._clock() >= self._expires_at - self.refresh_margin
            ):
                self._fetch_locked()
            token = self._access_token
        headers["Authorization"] = f"{self.scheme} {token}"
        return token

    def refresh(self, stale: object | None = None) -> None:
        with self._lock:
            if stale is not None and stale != self._access_token:
                return  # another thread refreshed already
            self._fetch_locked()

    def _fetch_locked(self) -> None:
        data = {"grant_type": self.grant_type, **self._grant_data()}
        data["client_id"] = self._secret(self._client_id)
        data["client_secret"] = self._secret(self._client_secret)
        if self.scope:
            data["scope"] = self.scope
        self.token_requests += 1
        response = self._post(data)
        body = self._json(response)
        if response.status_code >= 400 or "access_token" not in body:
            raise self._refused(response.status_code, body)
        token = str(body["access_token"])
        self._revealed.add(token)
        try:
            expires_in = float(body.get("expires_in", self.default_expires_in))
        except (TypeError, ValueError):
            expires_in = self.default_expires_in
        self._access_token = token
        self._expires_at = self._clock() + expires_in
        if body.get("refresh_token") and isinstance(self, OAuth2RefreshToken):
            # Some servers rotate refresh tokens; keep the new one for the rest of this run.
            self._refresh_token = str(body["refresh_token"])
            self._revealed.add(self._refresh_token)

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            if response.status_code >= 400:
                return {}
            raise BadResponseError(
                f"malformed JSON from the OAuth token endpoint {_host(self.token_url)} "
                f"(HTTP {response.status_code})"
            ) from None
        return body if isinstance(body, dict) else {}

    def _refused(self, status: int, body: dict[str, Any]) -> ConnectorError:
        error = body.get("error")
        if isinstance(error, dict):  # {"error": {"code": ...}} style
            error = error.get("code")
        code = str(error) if error else f"HTTP {status}"
        host = _host(self.token_url)
        if code == "invalid_grant":
            return AuthError(
                f"the OAuth token endpoint {host} refused the refresh token (invalid_grant): it "
                f"was revoked or has expired. Re-authorise crmsync with the CRM and store the new "
                f"refresh token in {self._grant_hint()}",
                status=status,
            )
        if code == "invalid_client":
            return AuthError(
                f"the OAuth token endpoint {host} refused the client (invalid_client): check "
                f"client_id ({_describe(self._client_id)}) and client_secret "
                f"({_describe(self._client_secret)})",
                status=status,
            )
        if status in (400, 401, 403):
            return AuthError(f"the OAuth token endpoint {host} refused: {code}", status=status)
        if status < 400:
            return BadResponseError(
                f"the OAuth token endpoint {host} answered without an access_token"
            )
        return ConnectorError(f"the OAuth token endpoint {host} answered {code}", status=status)

    def _grant_hint(self) -> str:
        return "the configured secret"


class OAuth2ClientCredentials(_OAuth2):
    """OAuth2 client-credentials grant (machine-to-machine)."""

    grant_type = "client_credentials"

    def _grant_data(self) -> dict[str, str]:
        return {}

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self.token_url!r}, "
            f"client_id={_describe(self._client_id)}, "
            f"client_secret={_describe(self._client_secret)})"
        )


class OAuth2RefreshToken(_OAuth2):
    """OAuth2 refresh-token grant (an admin authorised crmsync once; e.g. Zoho)."""

    grant_type = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: SecretRef | str,
        client_secret: SecretRef | str,
        refresh_token: SecretRef | str,
        scope: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(token_url, client_id, client_secret, scope, **kwargs)
        self._refresh_ref = refresh_token
        self._refresh_token: str | None = None

    def _grant_data(self) -> dict[str, str]:
        if self._refresh_token is None:
            self._refresh_token = self._secret(self._refresh_ref)
        return {"refresh_token": self._refresh_token}

    def _grant_hint(self) -> str:
        return _describe(self._refresh_ref)

    def __repr__(self) -> str:
        return (
            f"OAuth2RefreshToken(token_url={self.token_url!r}, "
            f"client_id={_describe(self._client_id)}, "
            f"client_secret={_describe(self._client_secret)}, "
            f"refresh_token={_describe(self._refresh_ref)})"
        )


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else url
