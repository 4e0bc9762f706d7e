"""One DingTalk connection's API access: one app access token, two transports.

DingTalk has two APIs that differ in everything but the token:

* the v1.0 API (``api.dingtalk.com``): the token in the header ``x-acs-dingtalk-access-token``,
  errors as HTTP 4xx/5xx ``{"code", "message", "requestid"}``, QPS limits as HTTP 403
  ``Forbidden.AccessDenied.QpsLimitFor…``;
* the old API (``oapi.dingtalk.com``): the token as ``?access_token=``, every answer HTTP 200
  with ``errcode``/``errmsg`` (``errcode`` 0 is success), QPS limits as errcode 90018 / 90002 /
  90006.

One :class:`AppToken` (fetched from ``POST /v1.0/oauth2/accessToken``, cached for its
``expireIn`` of 7200 s and refreshed a minute early, on a token-invalid answer once) feeds two
:class:`~crmsync.http.HttpClient`\\ s through two small :class:`~crmsync.auth.Auth` adapters.
One token for both: DingTalk's own CRM walkthrough (客户管理 联系人数据操作流程) fetches the token
from the v1.0 endpoint only and passes it to the old API's ``access_token``. Assumption (not
probed live): that holds for every old CRM endpoint used here.

Which answers are throttling or a refused token, whatever their HTTP status, is said once, in
:meth:`DingTalkApi.classify` (``HttpClient(classify=...)``): a QPS answer is THROTTLED with a
``Retry-After`` of one second (DingTalk: "the QPS limit lasts one second; sleep one second and
go on"), so the shared client backs off with the session's injectable ``sleep``, counts the
retries and sends writes again too (a throttled request was not carried out); a token-invalid
answer is TOKEN_EXPIRED, so the client fetches a new token once and sends again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import orjson
import requests

from crmsync.auth import Auth
from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.hookspecs import SecretRef
from crmsync.http import THROTTLED, TOKEN_EXPIRED, HttpClient, json_body
from crmsync_connectors.dingtalk.settings import DingTalkSettings

TOKEN_PATH = "/v1.0/oauth2/accessToken"
TOKEN_HEADER = "x-acs-dingtalk-access-token"
DEFAULT_EXPIRES = 7200.0
REFRESH_MARGIN = 60.0
#: v1.0 API: the token is unknown or expired (HTTP 400, as probed against the live API).
NEW_TOKEN_INVALID = frozenset({"InvalidAuthentication"})
#: v1.0 API QPS answers (HTTP 403): per app and API, and global per API. ``request.too.frequent``
#: is the CRM query API's own HTTP 400.
NEW_QPS = frozenset(
    {
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "Forbidden.AccessDenied.QpsLimitForApi",
        "request.too.frequent",
        "system.busy",  # the contacts batch API's "请求过于频繁"
    }
)
#: Old API: errcode 88 is "鉴权异常" with the reason in sub_code (40014: 不合法的access_token,
#: probed). Assumption: 42001 (access_token expired, in DingTalk's global code table) comes
#: the same way or as the errcode itself.
OLD_TOKEN_INVALID = frozenset({"40014", "42001"})
#: Old API QPS errcodes -> seconds to wait: per app per API per second, global per API per
#: second, per app per API per minute (DingTalk's call-frequency page; the minute window's wait
#: is an assumption).
OLD_QPS = {90018: 1.0, 90002: 1.0, 90006: 60.0}
#: The monthly call quota (标准版 5000/month) and the CRM APIs' daily one: waiting a second
#: does not help.
QUOTA_CODES = frozenset({"Forbidden.AccessDenied.ApiCountLimitForOrg", "90020", "daily.call.limit"})


class ApiCodeError(ConnectorError):
    """DingTalk answered an error code (``code`` for the v1.0 API, ``errcode`` for the old)."""

    def __init__(self, message: str, *, code: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def _describe(value: SecretRef | str) -> str:
    return str(value) if isinstance(value, SecretRef) else "<literal>"


class AppToken:
    """The app access token of one connection, shared by both transports (thread-safe)."""

    def __init__(
        self,
        name: str,
        settings: DingTalkSettings,
        http: HttpClient,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.settings = settings
        self.http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.generation = 0  # bumped on every new token (a refusal names the one it saw)
        self.requests = 0
        self.revealed: set[str] = set()

    def current(self) -> tuple[str, int]:
        """(token, generation): the cached token, fetched first if missing or about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN:
                self._fetch_locked()
            assert self._token is not None
            return self._token, self.generation

    def refresh(self, stale: int | None = None) -> None:
        """A new token, unless one newer than generation ``stale`` was fetched meanwhile."""
        with self._lock:
            if stale is not None and stale != self.generation:
                return
            self._fetch_locked()

    def _fetch_locked(self) -> None:
        secret = self.settings.app_secret
        value = secret.reveal() if isinstance(secret, SecretRef) else secret
        self.revealed.add(value)
        self.requests += 1
        context = {"connection": self.name}
        response = self.http.request(
            "POST",
            self.settings.api_url + TOKEN_PATH,
            json={"appKey": self.settings.app_key, "appSecret": value},
            context=context,
            raise_for_status=False,
            idempotent=True,  # asking twice only issues (or renews) a token
        )
        body = json_body(response, context)
        token = body.get("accessToken") if isinstance(body, dict) else None
        if response.status_code >= 400 or not isinstance(token, str) or not token:
            code = body.get("code") if isinstance(body, dict) else None
            if response.status_code in (400, 401, 403):
                raise AuthError(
                    f"DingTalk refused the app credentials ({code or response.status_code}): "
                    f"check app_key ({self.settings.app_key}) and app_secret "
                    f"({_describe(secret)}), and that the app is an internal app of this org",
                    connection=self.name,
                    status=response.status_code,
                )
            raise BadResponseError(
                f"the token endpoint {TOKEN_PATH} answered HTTP {response.status_code} "
                "without an accessToken",
                connection=self.name,
            )
        self.revealed.add(token)
        try:
            expires = float(body.get("expireIn", DEFAULT_EXPIRES))
        except (TypeError, ValueError):
            expires = DEFAULT_EXPIRES
        self._token = token
        self._expires_at = self._clock() + expires
        self.generation += 1

    def secret_values(self) -> list[str]:
        return [v for v in self.revealed if len(v) >= 4]


class TokenAuth(Auth):
    """Puts the shared token where one host wants it: a header or the query string."""

    can_refresh = True

    def __init__(self, token: AppToken, where: str) -> None:
        super().__init__()
        self.token = token
        self.where = where

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> object:
        value, generation = self.token.current()
        if self.where == "header":
            headers[TOKEN_HEADER] = value
        else:
            params["access_token"] = value
        return generation

    def refresh(self, stale: object | None = None) -> None:
        self.token.refresh(stale if isinstance(stale, int) else None)

    def secret_values(self) -> list[str]:
        return self.token.secret_values()

    def __repr__(self) -> str:
        return f"TokenAuth({self.where}, app_key={self.token.settings.app_key!r})"


class DingTalkApi:
    """Both transports of one connection, with call counting by kind."""

    def __init__(
        self,
        name: str,
        settings: DingTalkSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings

        def client(base: str, auth: Auth | None) -> HttpClient:
            http = HttpClient(
                base,
                auth=auth,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
                max_retry_wait=settings.max_retry_wait,
                backoff_base=settings.backoff_base,
                concurrency=settings.concurrency,
                requests_per_second=settings.requests_per_second,
                sleep=sleep,
                clock=clock,
                classify=self.classify,
            )
            return http

        self.token_http = client(settings.api_url, None)
        self.token = AppToken(name, settings, self.token_http, clock)
        self.new = client(settings.api_url, TokenAuth(self.token, "header"))
        self.old = client(settings.oapi_url, TokenAuth(self.token, "query"))
        self.calls: dict[str, int] = {"read": 0, "meta": 0, "write": 0, "delete": 0}
        self.throttled = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ QPS

    def classify(self, response: requests.Response) -> str | None:
        """What a DingTalk answer means when its status does not say (HttpClient asks once per
        answer): THROTTLED (with the wait DingTalk documents as ``Retry-After``),
        TOKEN_EXPIRED, or None."""
        if len(response.content) >= 4096:
            return None  # a page of records; DingTalk's error answers are small
        body = _maybe_json(response.content)
        if not isinstance(body, dict):
            return None
        status = response.status_code
        code = body.get("code")
        errcode = body.get("errcode")
        wait: float | None = None
        if status in (400, 403) and code in NEW_QPS:
            wait = 1.0
        elif status == 200 and isinstance(errcode, int) and errcode in OLD_QPS:
            wait = OLD_QPS[errcode]
        elif body.get("punish") == "deny":
            wait = 60.0 * float(body.get("wait") or 5)  # the per-IP ban: five minutes
        if wait is not None:
            with self._lock:
                self.throttled += 1
            response.headers.setdefault("Retry-After", str(wait))
            return THROTTLED
        if status >= 400 and code in NEW_TOKEN_INVALID:
            return TOKEN_EXPIRED
        sub = str(body.get("sub_code") or "")
        if status == 200 and (
            str(errcode) in OLD_TOKEN_INVALID or (errcode == 88 and sub in OLD_TOKEN_INVALID)
        ):
            return TOKEN_EXPIRED
        if status == 403 and code in QUOTA_CODES:
            # HttpClient calls a 403 refused credentials; the monthly quota is not that, so the
            # answer goes on as a plain 4xx to call_new, which says what it is
            response.status_code = 400
        return None

    # ------------------------------------------------------------------ calls

    def _count(self, kind: str, context: Mapping[str, Any]) -> None:
        with self._lock:
            self.calls[kind] += int(context.get("calls", 0))

    def call_new(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        context: dict[str, Any],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        per_record: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        """One v1.0 API call: (HTTP status, JSON body). A 4xx is an :class:`ApiCodeError`
        unless ``per_record`` (then the caller reads it as one record's result)."""
        try:
            # a refused token is refreshed once inside request() (classify: TOKEN_EXPIRED)
            response = self.new.request(
                method,
                self.settings.api_url + path,
                params=params,
                json=json,
                context=context,
                raise_for_status=False,
                idempotent=idempotent,
            )
            body = json_body(response, context)
            if not isinstance(body, dict):
                raise BadResponseError(
                    f"{method} {path} answered {type(body).__name__}, not a JSON object"
                )
            code = str(body.get("code") or "")
            status = response.status_code
            if status >= 400 and (not per_record or code in QUOTA_CODES):
                message = str(body.get("message") or "")[:200]
                hint = ""
                if code == "daily.call.limit":
                    hint = "; the CRM API's daily call quota is used up: run again tomorrow"
                elif code in QUOTA_CODES:
                    hint = "; the org's monthly API quota is used up (标准版: 5000 calls/month)"
                raise ApiCodeError(
                    f"{method} {path} answered HTTP {status} {code or '(no code)'}: "
                    f"{message}{hint}",
                    code=code,
                    status=status,
                )
            return status, body
        except ConnectorError as err:
            raise err.located(
                connection=self.name, module=context.get("module"), page=context.get("page")
            ) from None
        finally:
            self._count(kind, context)

    def call_old(
        self,
        kind: str,
        path: str,
        body: Mapping[str, Any],
        *,
        context: dict[str, Any],
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """One old-API call (always POST with a JSON body): the answer when ``errcode`` is 0,
        else an :class:`ApiCodeError` with the errcode (HTTP 200 carries errors here)."""
        try:
            # a refused token is refreshed once inside request() (classify: TOKEN_EXPIRED)
            response = self.old.request(
                "POST",
                self.settings.oapi_url + path,
                json=dict(body),
                context=context,
                idempotent=idempotent,
            )
            answer = json_body(response, context)
            if not isinstance(answer, dict) or "errcode" not in answer:
                raise BadResponseError(
                    f"POST {path} answered HTTP {response.status_code} without an errcode"
                )
            errcode = answer.get("errcode")
            if errcode == 0:
                return answer
            sub = str(answer.get("sub_code") or "")
            message = str(answer.get("sub_msg") or answer.get("errmsg") or "")[:200]
            hint = ""
            if str(errcode) in QUOTA_CODES:
                hint = "; the org's monthly API quota is used up (标准版: 5000 calls/month)"
            elif errcode == 88:
                hint = "; DingTalk's auth check failed: is the app granted qyapi_crm_maindata_*?"
            raise ApiCodeError(
                f"POST {path} answered errcode {errcode}{f'/{sub}' if sub else ''}: "
                f"{message}{hint}",
                code=str(errcode),
            )
        except ConnectorError as err:
            raise err.located(
                connection=self.name, module=context.get("module"), page=context.get("page")
            ) from None
        finally:
            self._count(kind, context)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {f"{k}_calls": v for k, v in self.calls.items()}
            out["token_requests"] = self.token.requests
            out["throttled"] = self.throttled
            return out

    def close(self) -> None:
        for client in (self.token_http, self.new, self.old):
            client.close()


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except ValueError:
        return None
