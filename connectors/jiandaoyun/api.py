"""One Jiandaoyun connection's API access: the shared HttpClient (bearer API key), client-side
per-endpoint rate limits, the 8303 rate-limit answer backed off and retried, call counting,
and Jiandaoyun's error codes turned into messages that name the connection and module.

Every v5 call is ``POST /v5/app/entry/<endpoint>`` with a JSON body. Errors come back as HTTP
400 with ``{"code": int, "msg": str}`` (hc.jiandaoyun.com/open/11261); 429 means too many
concurrent requests and is retried by the HttpClient (honouring Retry-After).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.http import BearerAuth, HttpClient, json_body
from crmsync.ratelimit import SlidingWindowLimiter, Window
from crmsync_connectors.jiandaoyun.settings import JiandaoyunSettings

log = logging.getLogger(__name__)

API_ROOT = "/v5/app/entry/"

# Error codes. Documented (open/11261): 1 invalid request, 8303 rate limit exceeded.
# Assumption: the codes below for a refused key, an unknown app/form/widget/record are not in
# the public table we could read; they are what our fake answers. The connector also treats any
# HTTP 401/403 as an auth failure, and names any other code with Jiandaoyun's own ``msg``.
INVALID_REQUEST = 1
APP_NOT_FOUND = 3000  # Assumption
FORM_NOT_FOUND = 3001  # Assumption
DATA_NOT_FOUND = 4000  # Assumption
WIDGET_NOT_FOUND = 4001  # Assumption
BAD_API_KEY = 8301  # Assumption
NO_PERMISSION = 8302  # Assumption
RATE_LIMITED = 8303

AUTH_CODES = frozenset({BAD_API_KEY, NO_PERMISSION})


class JiandaoyunError(ConnectorError):
    """An error answer of the Jiandaoyun API; ``code`` is its numeric code (None: no code)."""

    def __init__(self, message: str, *, code: int | None = None, **where: Any) -> None:
        self.code = code
        super().__init__(message, **where)


#: Share of a documented rate the limiter uses: arrivals bunch up after network jitter, and
#: the server counts them per window.
HEADROOM = 0.9


def rate_windows(limits: Mapping[str, float]) -> dict[str, Window]:
    """The limiter's windows for documented rates ``{endpoint or "global": calls per second}``:
    a sliding one-second window of ``limit * HEADROOM`` calls each (a rate under 1/s: one call
    per ``1/(rate * HEADROOM)`` seconds). A call counts in its endpoint's window and the global
    one; unlike even spacing, time spent between calls (the mirror committing a batch of pages)
    is not lost: the next calls go at once while the window has room."""
    windows: dict[str, Window] = {}
    for key, rate in limits.items():
        usable = rate * HEADROOM
        if usable >= 1:
            windows[key] = (int(usable), 1.0)
        elif usable > 0:
            windows[key] = (1, 1.0 / usable)
    return windows


class JiandaoyunApi:
    """Sends v5 calls; counts them by kind (``record``, ``metadata``, ``write``, ``verify``)
    and keeps the last ``Date`` the server sent (the pull's checkpoints are server time)."""

    def __init__(
        self,
        name: str,
        settings: JiandaoyunSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self._sleep = sleep
        self.limiter = SlidingWindowLimiter(
            rate_windows(settings.rate_limits), clock=clock, sleep=sleep
        )
        self.client = HttpClient(
            settings.base_url,
            auth=BearerAuth(settings.api_key),
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            max_retry_wait=settings.max_retry_wait,
            backoff_base=settings.backoff_base,
            concurrency=1,
            sleep=sleep,
            clock=clock,
            headers={"Content-Type": "application/json;charset=utf-8"},
        )
        self.calls: dict[str, int] = {"record": 0, "metadata": 0, "write": 0, "verify": 0}
        self.rate_limited = 0  # 8303 answers backed off
        self._lock = threading.Lock()

    def call(
        self,
        kind: str,
        endpoint: str,
        body: Mapping[str, Any],
        *,
        module: str | None = None,
        page: int | None = None,
    ) -> tuple[dict[str, Any], requests.Response, int]:
        """One logical call (8303 back-offs and HttpClient retries included): the decoded
        success body, the response, and the requests it took."""
        context: dict[str, Any] = {"connection": self.name, "module": module, "page": page}
        spent = 0
        attempt = 0
        try:
            while True:
                self.limiter.wait(endpoint, "global")  # an unlimited key is skipped
                context["calls"] = 0
                response = self.client.request(
                    "POST",
                    API_ROOT + endpoint,
                    json=dict(body),
                    context=context,
                    raise_for_status=False,
                    # Reads repeat harmlessly; so do our writes: batch_update sets the same
                    # values again and batch_delete of a deleted record is checked, not trusted.
                    idempotent=True,
                )
                spent += context.get("calls", 0)
                decoded = json_body(response, context)
                code, message = _error_of(response, decoded)
                if code == RATE_LIMITED and attempt < self.settings.max_retries:
                    # Documented answer to too many requests per second: HTTP 400 code 8303.
                    # The request was refused, not done, so sending it again is safe.
                    wait = min(
                        self.settings.max_retry_wait, self.settings.backoff_base * 2**attempt
                    )
                    with self._lock:
                        self.rate_limited += 1
                    log.warning(
                        "%s: Jiandaoyun %s rate limited (8303); retry %d in %.1f s",
                        self.name, endpoint, attempt + 1, wait,
                    )  # fmt: skip
                    self._sleep(wait)
                    attempt += 1
                    continue
                if code is not None or response.status_code >= 400:
                    raise self._error(endpoint, response.status_code, code, message, attempt)
                if not isinstance(decoded, dict):
                    raise BadResponseError(
                        f"{endpoint} answered {type(decoded).__name__}, not a JSON object"
                    )
                return decoded, response, spent
        except ConnectorError as err:
            located = err.located(connection=self.name, module=module, page=page)
            raise self._scrubbed(located) from None
        finally:
            with self._lock:
                self.calls[kind] = self.calls.get(kind, 0) + spent

    def _error(
        self, endpoint: str, status: int, code: int | None, message: str, retries: int
    ) -> ConnectorError:
        said = f"code {code}: {message}" if code is not None else f"HTTP {status}: {message}"
        if code == RATE_LIMITED:
            return JiandaoyunError(
                f"{endpoint}: still rate limited ({said}) after {retries} back-offs; lower "
                "rate_limits or run again later (what was committed is kept)",
                code=code,
            )
        if code in AUTH_CODES or status in (401, 403):
            return AuthError(
                f"Jiandaoyun refused the API key ({said}); check that the key exists, is "
                "enabled (开放平台 > 密钥管理) and may use this app",
                status=status,
            )
        hints = {
            APP_NOT_FOUND: "check the module's app_id",
            FORM_NOT_FOUND: "check the module's entry_id (and that it belongs to app_id)",
            WIDGET_NOT_FOUND: "a configured field is not on the form (widget/list names them)",
            DATA_NOT_FOUND: "the record is not in the form",
            INVALID_REQUEST: "the request was refused as invalid",
        }
        hint = f"; {hints[code]}" if code in hints else ""
        return JiandaoyunError(f"{endpoint} failed ({said}){hint}", code=code, status=status)

    def _scrubbed(self, err: ConnectorError) -> ConnectorError:
        """The key out of a message Jiandaoyun may have echoed (``msg`` is quoted in errors)."""
        detail = err.detail
        for value in self.client.auth.secret_values() if self.client.auth else ():
            detail = detail.replace(value, "***")
        if detail != err.detail:
            err.detail = detail
            err.args = (err._render(),)
        return err

    def stats(self) -> dict[str, Any]:
        return {
            **{f"{k}_calls": v for k, v in self.calls.items()},
            "rate_limited": self.rate_limited,
            "limiter_wait_seconds": round(self.limiter.waited, 3),
        }

    def close(self) -> None:
        self.client.close()


def _error_of(response: requests.Response, body: Any) -> tuple[int | None, str]:
    """``(code, msg)`` of an error answer: HTTP 400 with ``{"code","msg"}`` as documented, or
    any answer whose body is only that pair (some gateways send errors with HTTP 200)."""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None, ""
    is_error = response.status_code >= 400 or set(body) <= {"code", "msg", "message"}
    if not is_error:
        return None, ""
    try:
        number = int(code)
    except ValueError:
        number = None
    if number == 0 and response.status_code < 400:
        return None, ""
    message = body.get("msg") or body.get("message") or ""
    return number, str(message)[:200]
