"""One Zoho connection's API access: the shared HttpClient, the API host, call counting,
API-credit watching and Zoho-specific error messages (scope mismatch, unknown module)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from crmsync.errors import AuthError, ConnectorError
from crmsync.http import HttpClient, error_code
from crmsync_connectors.zoho.auth import ZohoAuth
from crmsync_connectors.zoho.datacentres import for_environment
from crmsync_connectors.zoho.settings import ZohoSettings

log = logging.getLogger(__name__)

API_ROOT = "/crm/v8"
CREDITS_HEADER = "X-API-CREDITS-REMAINING"


class CreditsExhaustedError(ConnectorError):
    """The day's API credits are (nearly) used up: stop cleanly, resume tomorrow."""


def scope_for(method: str, path: str) -> str:
    """The OAuth scope a Zoho URL needs (Zoho's OAUTH_SCOPE_MISMATCH does not say which)."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if "bulk" in parts:
        return "ZohoCRM.bulk.read"
    if "settings" in parts:
        i = parts.index("settings")
        what = parts[i + 1] if len(parts) > i + 1 else "modules"
        return f"ZohoCRM.settings.{what}.READ"
    module = parts[2] if len(parts) > 2 else "ALL"
    op = {"GET": "READ", "PUT": "UPDATE", "POST": "UPDATE", "DELETE": "DELETE"}.get(method, "ALL")
    return f"ZohoCRM.modules.{module}.{op} (or ZohoCRM.modules.ALL)"


class ZohoApi:
    """Counts calls by kind (``record``, ``metadata``, ``deleted``, ``write``) and stops
    before the credits run out. ``credits_remaining`` is the last X-API-CREDITS-REMAINING seen
    (Zoho sends it once half of the day's credits are used)."""

    def __init__(
        self,
        name: str,
        settings: ZohoSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self.auth = ZohoAuth(
            name,
            settings.accounts_url,
            settings.client_id,
            settings.client_secret,
            settings.refresh_token,
            datacentre=settings.datacentre,
            clock=clock,
        )
        self.client = HttpClient(
            settings.api_domain or settings.default_api_domain,
            auth=self.auth,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            max_retry_wait=settings.max_retry_wait,
            backoff_base=settings.backoff_base,
            concurrency=settings.concurrency,
            sleep=sleep,
            clock=clock,
        )
        self.client.session.hooks["response"].append(self._watch)
        self.calls: dict[str, int] = {
            "record": 0,
            "metadata": 0,
            "deleted": 0,
            "write": 0,
            "count": 0,
            "bulk": 0,
        }
        self.credits_remaining: int | None = None
        self._lock = threading.Lock()

    # -- host

    def base(self) -> str:
        """The API host: the ``api_domain`` setting, else the token response's (moved to the
        configured environment), else the data centre's. Fetches a token first if needed."""
        if self.settings.api_domain:
            return self.settings.api_domain
        if self.auth.api_domain is None:
            self.auth.apply({}, {})  # a token response tells the org's API domain
        if self.auth.api_domain:
            return for_environment(self.auth.api_domain, self.settings.environment)
        return self.settings.default_api_domain

    # -- requests

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        module: str | None = None,
        page: int | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
        root: str = API_ROOT,
    ) -> tuple[requests.Response, int]:
        """Send one logical call (retries included); return the response and requests spent."""
        self._check_credits(module)
        context: dict[str, Any] = {"connection": self.name, "module": module, "page": page}
        try:
            url = self.base() + root + path
        except ConnectorError as err:  # the first token request (it tells the API host)
            raise err.located(connection=self.name, module=module, page=page) from None
        try:
            response = self.client.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                context=context,
                raise_for_status=raise_for_status,
            )
        finally:
            with self._lock:
                self.calls[kind] += context.get("calls", 0)
        return response, context.get("calls", 0)

    def _watch(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests response hook: credits header; a clear message for a missing scope."""
        value = response.headers.get(CREDITS_HEADER)
        if value is not None:
            try:
                remaining = int(value)
            except ValueError:
                remaining = None
            if remaining is not None:
                with self._lock:
                    self.credits_remaining = remaining
        if response.status_code == 401 and response.request is not None:
            try:
                code = error_code(response.json())
            except ValueError:
                code = None
            if code == "OAUTH_SCOPE_MISMATCH":
                method = response.request.method or "GET"
                path = urlsplit(response.request.url or "").path
                granted = (
                    f" (granted: {self.auth.scope_granted})" if self.auth.scope_granted else ""
                )
                raise AuthError(
                    f"Zoho refused {method} {path}: OAUTH_SCOPE_MISMATCH, the refresh token "
                    f"lacks the scope {scope_for(method, path)}{granted}. Create a grant code "
                    f"with that scope added and run `crmsync auth zoho {self.name}`",
                    status=401,
                )

    def _check_credits(self, module: str | None) -> None:
        floor = self.settings.min_credits_remaining
        remaining = self.credits_remaining
        if remaining is not None and remaining <= floor:
            raise CreditsExhaustedError(
                f"Zoho reports {remaining} API credits left today, at or under "
                f"min_credits_remaining ({floor}): stopping before they run out. What was "
                "committed is kept; run again when the credits refill (rolling 24 h)",
                connection=self.name,
                module=module,
            )

    def stats(self) -> dict[str, Any]:
        return {
            **{f"{k}_calls": v for k, v in self.calls.items()},
            "token_requests": self.auth.token_requests,
            "credits_remaining": self.credits_remaining,
        }

    def close(self) -> None:
        self.client.close()
