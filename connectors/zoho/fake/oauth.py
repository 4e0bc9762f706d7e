"""The fake Zoho accounts server's OAuth state: clients, grant codes, refresh and access tokens,
scopes, and the documented token limits (on the fake clock).

- ``grant_type=authorization_code``: single-use grant codes (3 minutes) -> a new refresh token
  (with the code's scopes) plus an access token.
- ``grant_type=refresh_token``: -> an access token (``expires_in`` 3600 s by default).
- At most 10 access tokens per refresh token per 10 minutes; past that the token endpoint
  answers ``{"error":"Access Denied","error_description":"You have made too many requests
  continuously. Please try again after some time."}`` (HTTP 400 by default, as the singer tap
  sees it; ``throttle_status=200`` for what Kaizen #43 describes).
- At most 15 active access tokens per refresh token: the 16th invalidates the oldest.
- A bad client gives ``{"error":"invalid_client"}``, a bad/revoked refresh token or a bad, used
  or expired grant code ``{"error":"invalid_code"}`` (both HTTP 200, as Zoho answers).
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SCOPES = ("ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL", "ZohoCRM.bulk.read")
TOKENS_PER_WINDOW = 10
TOKEN_WINDOW_SECONDS = 600
MAX_ACTIVE_ACCESS_TOKENS = 15
GRANT_CODE_TTL = 180
THROTTLED = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. "
    "Please try again after some time.",
}


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):
        scopes = scopes.replace(" ", ",").split(",")
    return tuple(s.strip() for s in scopes if s and s.strip())


def scope_covers(scopes: Iterable[str], needed: Iterable[str]) -> bool:
    """True if any granted scope equals (case-insensitively) any of ``needed``."""
    granted = {s.lower() for s in scopes}
    return any(n.lower() in granted for n in needed)


@dataclass
class RefreshToken:
    token: str
    scopes: tuple[str, ...]
    revoked: bool = False
    issued: deque[float] = field(default_factory=deque)  # access-token issue times (window)
    active: deque[str] = field(default_factory=deque)  # live access tokens, oldest first
    total_issued: int = 0
    throttled: int = 0


@dataclass
class AccessToken:
    token: str
    refresh: RefreshToken
    expires: float


class OAuth:
    """Thread-safe token state. ``now`` is the fake clock (epoch seconds)."""

    def __init__(
        self,
        now: Callable[[], float],
        client_id: str,
        client_secret: str,
        refresh_token: str,
        scopes: Iterable[str],
        token_ttl: int = 3600,
        throttle_status: int = 400,
        seed: int = 42,
    ) -> None:
        self._now = now
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.throttle_status = throttle_status
        self._seed = seed
        self._lock = threading.Lock()
        self._serial = 0
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, tuple[tuple[str, ...], float]] = {}
        self.add_refresh_token(refresh_token, scopes)

    def _unique(self, prefix: str) -> str:
        self._serial += 1
        digest = hashlib.sha256(f"{self._seed}/{prefix}/{self._serial}".encode()).hexdigest()
        return f"1000.{digest[:32]}.{digest[32:64]}"

    # ----------------------------------------------------------------------- control

    def add_refresh_token(self, token: str | None, scopes: Iterable[str]) -> str:
        with self._lock:
            token = token or self._unique("refresh")
            self.refresh_tokens[token] = RefreshToken(token, parse_scopes(scopes))
            return token

    def grant_code(self, scopes: Iterable[str], ttl: float = GRANT_CODE_TTL) -> str:
        with self._lock:
            code = self._unique("code")
            self.codes[code] = (parse_scopes(scopes), self._now() + ttl)
            return code

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token (and its access tokens) or one access token."""
        with self._lock:
            rt = self.refresh_tokens.get(token)
            if rt is not None:
                rt.revoked = True
                for access in rt.active:
                    self.access_tokens.pop(access, None)
                rt.active.clear()
                return True
            return self.access_tokens.pop(token, None) is not None

    def expire_all(self) -> None:
        with self._lock:
            self.access_tokens.clear()
            for rt in self.refresh_tokens.values():
                rt.active.clear()

    def mint(self, refresh_token: str | None = None) -> str:
        """An access token issued without HTTP (not counted against the 10-per-10-min limit)."""
        with self._lock:
            rt = self.refresh_tokens[refresh_token or next(iter(self.refresh_tokens))]
            return self._issue(rt, count=False)

    # ----------------------------------------------------------------------- HTTP

    def token_endpoint(self, params: Mapping[str, str], api_domain: str) -> tuple[int, Any]:
        """``POST /oauth/v2/token`` -> (HTTP status, JSON answer)."""
        grant = params.get("grant_type", "")
        with self._lock:
            if grant not in ("refresh_token", "authorization_code"):
                return 200, {"error": "unsupported_grant_type"}
            if (
                params.get("client_id") != self.client_id
                or params.get("client_secret") != self.client_secret
            ):
                return 200, {"error": "invalid_client"}
            if grant == "authorization_code":
                entry = self.codes.pop(params.get("code", ""), None)
                if entry is None or entry[1] < self._now():
                    return 200, {"error": "invalid_code"}
                token = self._unique("refresh")
                rt = self.refresh_tokens[token] = RefreshToken(token, entry[0])
                access = self._issue(rt)
                return 200, {
                    **self._answer(access, rt, api_domain),
                    "refresh_token": token,
                }
            rt = self.refresh_tokens.get(params.get("refresh_token", ""))
            if rt is None or rt.revoked:
                return 200, {"error": "invalid_code"}
            now = self._now()
            while rt.issued and rt.issued[0] <= now - TOKEN_WINDOW_SECONDS:
                rt.issued.popleft()
            if len(rt.issued) >= TOKENS_PER_WINDOW:
                rt.throttled += 1
                return self.throttle_status, dict(THROTTLED)
            access = self._issue(rt)
            return 200, self._answer(access, rt, api_domain)

    def _answer(self, access: str, rt: RefreshToken, api_domain: str) -> dict[str, Any]:
        return {
            "access_token": access,
            "scope": " ".join(rt.scopes),
            "api_domain": api_domain,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
        }

    def _issue(self, rt: RefreshToken, count: bool = True) -> str:
        now = self._now()
        token = self._unique("access")
        if count:
            rt.issued.append(now)
            rt.total_issued += 1
        rt.active.append(token)
        self.access_tokens[token] = AccessToken(token, rt, now + self.token_ttl)
        while len(rt.active) > MAX_ACTIVE_ACCESS_TOKENS:
            self.access_tokens.pop(rt.active.popleft(), None)
        return token

    def check(self, token: str) -> tuple[str, tuple[str, ...]] | None:
        """A live access token's (refresh token, scopes), or None if unknown or expired."""
        with self._lock:
            access = self.access_tokens.get(token)
            if access is None or access.expires <= self._now() or access.refresh.revoked:
                return None
            return access.refresh.token, access.refresh.scopes

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "tokens_issued": sum(rt.total_issued for rt in self.refresh_tokens.values()),
                "tokens_issued_by_refresh_token": {
                    t: rt.total_issued for t, rt in self.refresh_tokens.items()
                },
                "token_requests_throttled": sum(
                    rt.throttled for rt in self.refresh_tokens.values()
                ),
            }
