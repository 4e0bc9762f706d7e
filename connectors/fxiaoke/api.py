"""One Fxiaoke connection's API access: the corpAccessToken, the operator id, per-endpoint rate
limits, and answers that are errors although they arrive as HTTP 200.

Every Fxiaoke call is ``POST`` with a JSON body carrying ``corpAccessToken``, ``corpId`` and
``currentOpenUserId`` at the top level and the request under ``data``. Success is decided by
``errorCode == 0`` only (the docs warn that ``errorMessage`` may change; it is shown, never
branched on). Codes handled here:

* 20016 (token missing or expired): a new token, then the call once more; again -> AuthError.
* 30004 (per-second limit), 14001 (interface call limit), -1 (busy): back off and retry.
* 30002 (daily quota used up), 30003 (no OpenAPI quota bought): stop; retrying cannot help.
* 50009 (timeout): retried for reads; for writes the CRM may have acted, so it is reported.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.http import HttpClient, json_body
from crmsync.ratelimit import SlidingWindowLimiter
from crmsync_connectors.fxiaoke.settings import FxiaokeSettings, reveal

log = logging.getLogger(__name__)

TOKEN_PATH = "/cgi/corpAccessToken/get/V2"
USER_BY_MOBILE_PATH = "/cgi/user/getByMobile"

TOKEN_EXPIRED = 20016
RATE_LIMITED = frozenset({30004, 14001, -1})
QUOTA = {
    30002: "the day's OpenAPI quota is used up (it resets at 00:00 China time)",
    30003: "the enterprise has bought no OpenAPI quota",
}
TIMEOUT = 50009
#: Seconds before the stated expiry at which a token is renewed (clock skew, slow calls).
TOKEN_MARGIN = 300.0


class FxiaokeError(ConnectorError):
    """Fxiaoke answered a non-zero ``errorCode`` (the code is kept for per-record results)."""

    def __init__(self, message: str, *, code: int, server_message: str = "", **where: Any):
        self.code = code
        self.server_message = server_message
        super().__init__(message, **where)


class QuotaError(FxiaokeError):
    """30002/30003: no calls left; what was committed is kept, run again when quota refills."""


def error_text(body: Mapping[str, Any]) -> str:
    """``errorCode N: message (traceId T)`` for messages: the message is shown, never
    interpreted; the traceId is what Fxiaoke's support asks for."""
    message = body.get("errorMessage") or body.get("errorDescription") or ""
    trace = body.get("traceId")
    return (
        f"errorCode {body.get('errorCode')}"
        + (f": {str(message)[:200]}" if message else "")
        + (f" (traceId {str(trace)[:80]})" if trace else "")
    )


def _code(body: Mapping[str, Any]) -> int | None:
    value = body.get("errorCode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


class FxiaokeApi:
    """Sends calls; counts them by kind (``query``, ``write``, ``token``, ``user``)."""

    def __init__(
        self,
        name: str,
        settings: FxiaokeSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self.client = HttpClient(
            settings.base_url,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            max_retry_wait=settings.max_retry_wait,
            backoff_base=settings.backoff_base,
            concurrency=1,
            sleep=sleep,
            clock=clock,
        )
        # Fxiaoke limits each interface separately: a window per endpoint path, made on first use
        # (a sliding window suits a fixed- or sliding-window server: crmsync.ratelimit)
        self.limiter = SlidingWindowLimiter(
            default=(max(1, int(settings.rate_limit_calls)), settings.rate_limit_period),
            clock=clock,
            sleep=sleep,
        )
        self.calls: dict[str, int] = {"query": 0, "write": 0, "token": 0, "user": 0}
        self.backoffs = 0
        self._lock = threading.Lock()
        self._token: str | None = None
        self._corp_id: str | None = None
        self._expires_at = 0.0
        self._user_id = settings.current_open_user_id
        self.last_date: str | None = None  # the HTTP Date header of the last answer

    def __repr__(self) -> str:
        return f"FxiaokeApi({self.name!r}, {self.settings.base_url!r})"

    # ------------------------------------------------------------------ secrets

    def _secrets(self) -> list[str]:
        out = [self._token or ""]
        for ref in (self.settings.app_secret, self.settings.permanent_code):
            try:
                out.append(reveal(ref))
            except Exception:  # an unresolvable secret has nothing to scrub
                continue
        return [s for s in out if s]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    # ------------------------------------------------------------------ token

    def _where(self, module: str | None = None, page: int | None = None) -> dict[str, Any]:
        return {"connection": self.name, "module": module, "page": page}

    def token(self, *, force: bool = False) -> tuple[str, str]:
        """The cached (corpAccessToken, corpId); a new one when missing, near expiry or forced."""
        with self._lock:
            if not force and self._token and self._clock() < self._expires_at:
                return self._token, self._corp_id or ""
        body = {
            "appId": self.settings.app_id,
            "appSecret": reveal(self.settings.app_secret),
            "permanentCode": reveal(self.settings.permanent_code),
        }
        attempt = 0
        while True:
            answer = self._post("token", TOKEN_PATH, body, None, None, idempotent=True)
            code = _code(answer)
            if code not in RATE_LIMITED or attempt >= self.settings.max_retries:
                break
            attempt += 1  # the token interface has its own limit: wait, ask again
            self._sleep(self._backoff(attempt, limited=code != -1))
        if code in QUOTA:
            raise QuotaError(
                f"{TOKEN_PATH}: {QUOTA[code]} ({error_text(answer)})", code=code,
                connection=self.name,
            )  # fmt: skip
        if code in (*RATE_LIMITED, TIMEOUT, -2) or code is None:
            raise ConnectorError(
                self._scrub(f"{TOKEN_PATH} failed: {error_text(answer)}"), connection=self.name
            )
        if code != 0:
            raise AuthError(
                self._scrub(
                    f"Fxiaoke refused the app credentials (appId {self.settings.app_id}): "
                    f"{error_text(answer)}; check app_id, app_secret and permanent_code"
                ),
                connection=self.name,
            )
        token, corp, expires = (
            answer.get("corpAccessToken"),
            answer.get("corpId"),
            answer.get("expiresIn"),
        )
        if not isinstance(token, str) or not token or not isinstance(corp, str) or not corp:
            raise BadResponseError(
                f"{TOKEN_PATH} answered errorCode 0 without corpAccessToken/corpId",
                connection=self.name,
            )
        if isinstance(expires, bool) or not isinstance(expires, int | float) or expires < 0:
            raise BadResponseError(
                f"{TOKEN_PATH} answered an unusable expiresIn ({type(expires).__name__})",
                connection=self.name,
            )
        margin = min(TOKEN_MARGIN, float(expires) / 10)
        with self._lock:
            self._token, self._corp_id = token, corp
            self._expires_at = self._clock() + float(expires) - margin
        return token, corp

    def user_id(self) -> str:
        """``currentOpenUserId``: configured, or looked up once from ``admin_mobile``."""
        if self._user_id:
            return self._user_id
        token, corp = self.token()
        body = {"corpAccessToken": token, "corpId": corp, "mobile": self.settings.admin_mobile}
        answer = self._post("user", USER_BY_MOBILE_PATH, body, None, None, idempotent=True)
        code = _code(answer)
        if code == TOKEN_EXPIRED:
            token, corp = self.token(force=True)
            body.update(corpAccessToken=token, corpId=corp)
            answer = self._post("user", USER_BY_MOBILE_PATH, body, None, None, idempotent=True)
            code = _code(answer)
        employees = answer.get("empList")
        if code != 0 or not isinstance(employees, list) or not employees:
            why = error_text(answer) if code != 0 else "no employee has that number"
            raise ConnectorError(
                self._scrub(
                    f"cannot find the operator by admin_mobile ({why}); set "
                    "current_open_user_id (FSUID_...) instead"
                ),
                connection=self.name,
            )
        first = employees[0]
        openid = first.get("openUserId") if isinstance(first, dict) else None
        if not isinstance(openid, str) or not openid:
            raise BadResponseError(
                f"{USER_BY_MOBILE_PATH} answered an employee without openUserId",
                connection=self.name,
            )
        self._user_id = openid
        return openid

    # ------------------------------------------------------------------ calls

    def call(
        self,
        kind: str,
        path: str,
        data: Mapping[str, Any],
        *,
        module: str | None = None,
        page: int | None = None,
        idempotent: bool = False,
        top: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """One logical call: token added, rate limit kept, errorCode checked. Returns the
        answer and the requests it took (retries included). A non-zero errorCode that is not
        handled here raises :class:`FxiaokeError`."""
        before = self.calls[kind]
        refreshed = False
        attempt = 0
        while True:
            token, corp = self.token()
            body = {
                "corpAccessToken": token,
                "corpId": corp,
                "currentOpenUserId": self.user_id(),
                **(top or {}),
                "data": dict(data),
            }
            answer = self._post(kind, path, body, module, page, idempotent=idempotent)
            code = _code(answer)
            if code == 0:
                return answer, self.calls[kind] - before
            if code is None:
                raise BadResponseError(
                    f"{path} answered without a numeric errorCode (keys: "
                    f"{', '.join(sorted(answer)[:8]) or 'none'})",
                    **self._where(module, page),
                )
            if code == TOKEN_EXPIRED and not refreshed:
                log.info("%s: corpAccessToken expired (20016): getting a new one", self.name)
                self.token(force=True)
                refreshed = True
                continue
            if code == TOKEN_EXPIRED:
                raise AuthError(
                    f"{path}: the corpAccessToken was refused again right after renewing it "
                    f"({error_text(answer)})",
                    **self._where(module, page),
                )
            if code in QUOTA:
                raise QuotaError(
                    f"{path}: {QUOTA[code]} ({error_text(answer)}); what was committed is kept",
                    code=code,
                    **self._where(module, page),
                )
            retry = code in RATE_LIMITED or (code == TIMEOUT and idempotent)
            if retry and attempt < self.settings.max_retries:
                attempt += 1
                pause = self._backoff(attempt, limited=code in RATE_LIMITED and code != -1)
                log.warning(
                    "%s %s: errorCode %s; retry %d of %d in %.1f s",
                    self.name, path, code, attempt, self.settings.max_retries, pause,
                )  # fmt: skip
                with self._lock:
                    self.backoffs += 1
                self._sleep(pause)
                continue
            what = error_text(answer)
            if retry:
                what = f"{what} (still after {attempt} retries)"
            elif code == TIMEOUT:
                what += "; not sent again, as the CRM may have done it"
            raise FxiaokeError(
                self._scrub(f"{path}: {what}"),
                code=code,
                server_message=self._scrub(str(answer.get("errorMessage") or "")[:200]),
                **self._where(module, page),
            )

    def _backoff(self, attempt: int, *, limited: bool) -> float:
        """Exponential with jitter. Over a per-interface limit (30004, 14001) the window is
        ``rate_limit_period`` long, so the steps start at a quarter of it: another client of the
        same app may be using the interface, and three retries then span a whole window."""
        s = self.settings
        base = max(s.backoff_base, s.rate_limit_period / 4) if limited else s.backoff_base
        step = base * (2 ** (attempt - 1)) + random.uniform(0, s.backoff_base)
        cap = min(s.max_retry_wait, s.rate_limit_period) if limited else s.max_retry_wait
        return min(cap, step)

    def _post(
        self,
        kind: str,
        path: str,
        body: Mapping[str, Any],
        module: str | None,
        page: int | None,
        *,
        idempotent: bool,
    ) -> dict[str, Any]:
        self.limiter.wait(path)
        context: dict[str, Any] = self._where(module, page)
        try:
            # thirdTraceId: a fresh id per request, as the docs' request paths show (support
            # can find the call by it)
            response = self.client.request(
                "POST",
                path,
                params={"thirdTraceId": uuid.uuid4().hex},
                json=body,
                context=context,
                idempotent=idempotent,
            )
        except ConnectorError as err:
            err.detail = self._scrub(err.detail)
            err.args = (err._render(),)
            raise
        finally:
            with self._lock:
                self.calls[kind] += context.get("calls", 0)
        self.last_date = response.headers.get("Date")
        answer = json_body(response, context)
        if not isinstance(answer, dict):
            raise BadResponseError(
                f"{path} answered JSON {type(answer).__name__}, not an object",
                **self._where(module, page),
            )
        return answer

    def stats(self) -> dict[str, Any]:
        return {
            **{f"{k}_calls": v for k, v in self.calls.items()},
            "backoffs": self.backoffs,
            "rate_limit_wait_s": round(self.limiter.waited, 3),
        }

    def close(self) -> None:
        self.client.close()
