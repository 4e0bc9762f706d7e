"""The HTTP client every connector uses: pooled, retried, rate-limited, secret-safe.

One :class:`HttpClient` per connection owns one pooled ``requests.Session``. Each call:

* waits for the rate limiter and a concurrency slot (per client);
* retries 429, 500/502/503/504 and connection errors/timeouts with exponential backoff and
  jitter (tenacity), honouring ``Retry-After`` capped by ``max_retry_wait``; a request that is
  not idempotent (POST, PATCH: a write) is retried only when the CRM certainly did not act on
  it (429, 503, no connection made): after a dropped connection, a timeout or a 500/502/504 it
  may have been done, so it is not sent again blindly — the error goes up, and apply checks
  the CRM before writing the record again;
* on 401 refreshes OAuth2 credentials once and retries; a second 401 is an AuthError;
* lets the connector say what an answer means when its status does not (``classify``): many
  CRMs signal "rate limited" or "token expired" as HTTP 200/400/403 with a code in the body.
  :data:`THROTTLED` answers are retried like a 429 (for any method: the CRM did not act on
  them), :data:`TOKEN_EXPIRED` ones like a 401;
* maps failures to :mod:`crmsync.errors` with messages that name the host and path but never a
  query string, header or secret value; urllib3's own DEBUG line for each request (it quotes the
  query string) is masked like :func:`redact_url` masks a URL.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests
import tenacity
import urllib3
from requests.adapters import HTTPAdapter

from crmsync import __version__
from crmsync.auth import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from crmsync.errors import (
    AuthError,
    BadResponseError,
    ConnectorError,
    UnreachableError,
)
from crmsync.ratelimit import SlidingWindowLimiter

__all__ = [
    "RETRY_STATUSES",
    "THROTTLED",
    "TOKEN_EXPIRED",
    "ApiKeyAuth",
    "Auth",
    "BasicAuth",
    "BearerAuth",
    "HttpClient",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "error_code",
    "json_body",
    "parse_retry_after",
    "redact_url",
]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Of those, the answers that say the request was not acted on: retried for any method.
NOT_DONE_STATUSES = frozenset({429, 503})
#: Methods whose repetition has the effect of one request (RFC 9110, 9.2.2): always retried.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: What a connector's ``classify(response)`` may answer (None: the status says it all).
#: THROTTLED: rate limited, not acted on: wait (Retry-After or backoff) and send again.
THROTTLED = "throttled"
#: TOKEN_EXPIRED: the credentials were refused: refresh once and send again, as on a 401.
TOKEN_EXPIRED = "token_expired"

# Query parameter names whose values are redacted wherever a URL is shown.
_SECRET_PARAM = re.compile(
    r"token|key|secret|passw|pwd|signature|^sig$|auth|credential|session|^code$", re.I
)
_EXCERPT = 200


def redact_url(url: str) -> str:
    """``url`` with secret-looking query values and any userinfo password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (k, "***" if _SECRET_PARAM.search(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_QUERY_VALUE = re.compile(r"([?&])([^=&\s\"']+)=([^&\s\"']*)")


def _mask_query(text: str) -> str:
    """``text`` with the values of secret-looking query parameters replaced by ``***``."""
    return _QUERY_VALUE.sub(
        lambda m: f"{m[1]}{m[2]}=***" if _SECRET_PARAM.search(m[2]) else m[0], text
    )


class _MaskedRequestLines(logging.Filter):
    """urllib3 logs every request line with its query string at DEBUG (``"GET
    /path?access_token=... HTTP/1.1" 200``): a key or token sent in the query would reach a
    debug log. Installed once on urllib3's logger when this module is imported."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "=" in a for a in record.args
        ):
            record.args = tuple(_mask_query(a) if isinstance(a, str) else a for a in record.args)
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _MaskedRequestLines) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_MaskedRequestLines())


def _where(url: str) -> str:
    """Host and path, no query string: what error messages show."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path}"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")


def error_code(body: Any) -> str | None:
    """The CRM's error code from a JSON error body, in the shapes CRMs commonly use."""
    if not isinstance(body, dict):
        return None
    for key in ("error", "code", "error_code", "errorCode", "status"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("code") or value.get("error")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def json_body(response: requests.Response, context: Mapping[str, Any] | None = None) -> Any:
    """The decoded JSON body; :class:`BadResponseError` ("malformed JSON ...") otherwise."""
    try:
        # orjson: the mirror's hot path parses every page; it is several times faster than json.
        return orjson.loads(response.content)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError, with .pos
        reason = f"{type(exc).__name__} at char {getattr(exc, 'pos', '?')}"
    err = BadResponseError(
        f"malformed JSON from {_where(response.url or '')} (HTTP {response.status_code}, "
        f"{len(response.content)} bytes): {reason}",
        status=response.status_code,
    )
    if context:
        _locate(err, context)
    raise err


def _locate(err: ConnectorError, context: Mapping[str, Any]) -> ConnectorError:
    return err.located(
        connection=context.get("connection"), module=context.get("module"), page=context.get("page")
    )


class _RetryableError(Exception):
    """Raised inside one attempt to make tenacity try again."""

    retry = True

    def __init__(self, why: str, *, response: requests.Response | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.response = response
        self.retry_after: float | None = None


class _Throttled(_RetryableError):
    """A THROTTLED answer (connector's classify): not done, retried for any method."""


class _InDoubt(_RetryableError):
    """A failure after which a non-idempotent request may have been done: not retried."""

    retry = False


def _never_sent(exc: requests.RequestException) -> bool:
    """True if the request certainly never reached the server (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    # NewConnectionError (refused, DNS) is a ConnectTimeoutError in urllib3 2
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


def _network_reason(exc: requests.RequestException) -> str:
    # Describe the failure from its type and a few known phrases: str(exc) carries the URL.
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "DNS lookup failed"
    if "refused" in text.lower():
        return "connection refused"
    if "RemoteDisconnected" in text or "closed connection" in text.lower():
        return "connection closed without a response"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "response cut off"
    return type(exc).__name__


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _even_spacing(
    rate: float, clock: Callable[[], float], sleep: Callable[[float], None]
) -> SlidingWindowLimiter:
    """``requests_per_second``: a sliding window of one start per ``1/rate`` seconds, i.e. even
    spacing, for every rate: 0.5 is one call every 2 s, 2.5 one every 0.4 s, and any ``T``
    seconds hold at most ``ceil(rate * T)`` starts. A window of ``ceil(rate)`` calls a second
    would allow 1/s at 0.5/s and 3/s at 2.5/s, and bursts a server counting in shorter windows
    refuses. Connectors that know the vendor's windows name them in a
    :class:`~crmsync.ratelimit.SlidingWindowLimiter` of their own (time between calls is then
    not lost)."""
    if not 0 < rate < math.inf:
        raise ValueError(f"requests_per_second must be a positive number, got {rate!r}")
    return SlidingWindowLimiter({"requests_per_second": (1, 1.0 / rate)}, clock=clock, sleep=sleep)


class HttpClient:
    """A pooled, retrying HTTP client for one CRM connection.

    ``calls`` counts every request sent (retries included). ``sleep`` and ``clock`` are
    injectable so tests never wait. ``classify(response)`` may return :data:`THROTTLED` or
    :data:`TOKEN_EXPIRED` for answers whose status does not say so (module docstring); it sees
    every API answer, so keep it cheap (look at the status and size before parsing a body).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        max_retry_wait: float = 60.0,
        backoff_base: float = 0.5,
        concurrency: int = 1,
        requests_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = f"crmsync/{__version__}",
        headers: Mapping[str, str] | None = None,
        classify: Callable[[requests.Response], str | None] | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.auth = auth
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.max_retry_wait = max_retry_wait
        self.backoff_base = backoff_base
        self.concurrency = max(1, int(concurrency))
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._limiter = (
            _even_spacing(requests_per_second, clock, sleep) if requests_per_second else None
        )
        self._lock = threading.Lock()
        self.calls = 0
        self.classify = classify
        self.session = requests.Session()
        # Pool sized to the concurrency so parallel page fetches reuse connections.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # With trust_env, requests re-reads proxy and CA-bundle variables and stats ~/.netrc on
        # every request (about 1 ms each here). Read the environment once per connection instead;
        # credentials come from the config's [auth], never from .netrc.
        env = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.trust_env = False
        self.session.proxies.update(env["proxies"])
        self.session.verify = env["verify"]
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        if headers:
            self.session.headers.update(headers)
        if auth is not None:
            auth.bind(self.token_transport)

    def __repr__(self) -> str:
        return f"HttpClient({redact_url(self.base_url)!r}, auth={self.auth!r})"

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def url(self, path_or_url: str) -> str:
        """Absolute URL: absolute ones are kept (next links), others are joined to base_url."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url.lstrip("/")

    # ------------------------------------------------------------------ public

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        context: dict[str, Any] | None = None,
        raise_for_status: bool = True,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send one logical request (with retries and one auth refresh).

        ``context`` may carry ``connection``/``module``/``page`` (named in errors); the client
        adds the requests it spent to ``context["calls"]``. With ``raise_for_status=False`` a
        4xx other than 401/403 is returned instead of raised (per-record write results).
        ``idempotent`` (default: by the method) says whether sending the request twice does no
        harm; when it does, failures that leave in doubt whether the CRM acted on it are raised
        at once, not retried (module docstring). An answer the client's ``classify`` calls
        TOKEN_EXPIRED is, after the one refresh, an AuthError like a 401.
        """
        url = self.url(path_or_url)
        context = context if context is not None else {}
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        try:
            response = self._authenticated(
                method, url, params, json, data, headers, context, idempotent
            )
            if response.status_code in (401, 403) or self._kind(response) == TOKEN_EXPIRED:
                raise self._auth_error(response)
            if response.status_code >= 400 and raise_for_status:
                raise self._status_error(method, url, response)
            return response
        except ConnectorError as err:
            raise self._scrubbed(_locate(err, context)) from None

    def token_transport(self, method: str, url: str, data: dict[str, str]) -> requests.Response:
        """Send a token request: retried like any call (asking twice only issues another token),
        but unauthenticated and uncounted."""
        return self._send(method, url, {}, None, data, None, {}, True, count=False)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if self._limiter:
            self._limiter.wait("requests_per_second")
        with self._slots:
            yield

    # ------------------------------------------------------------------ internals

    def _authenticated(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        context: dict[str, Any],
        idempotent: bool,
    ) -> requests.Response:
        refreshed = False
        while True:
            send_headers: dict[str, str] = dict(headers or {})
            send_params: dict[str, Any] = dict(params or {})
            identity = self.auth.apply(send_headers, send_params) if self.auth is not None else None
            response = self._send(
                method, url, send_params, json, data, send_headers, context, idempotent
            )
            refused = response.status_code == 401 or self._kind(response) == TOKEN_EXPIRED
            if refused and not refreshed and self.auth is not None and self.auth.can_refresh:
                log.info("%s refused the token: refreshing credentials once", _where(url))
                self.auth.refresh(identity)
                refreshed = True
                continue
            return response

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any],
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        context: dict[str, Any],
        idempotent: bool,
        *,
        count: bool = True,
    ) -> requests.Response:
        attempts = self.max_retries + 1

        def attempt() -> requests.Response:
            if count:
                with self._lock:
                    self.calls += 1
                context["calls"] = context.get("calls", 0) + 1
            failure: requests.RequestException | None = None
            with self._slot():
                try:
                    response = self.session.request(
                        method,
                        url,
                        params=params or None,
                        json=json,
                        data=data,
                        headers=headers,
                        timeout=self.timeout,
                    )
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                ) as exc:
                    failure = exc
            if failure is not None:
                # Raised outside the except block so the URL-bearing cause is not chained.
                kind = _RetryableError if idempotent or _never_sent(failure) else _InDoubt
                raise kind(_network_reason(failure))
            status = response.status_code
            if count and self._kind(response) == THROTTLED:
                err = _Throttled(f"rate limited (HTTP {status})", response=response)
                err.retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise err
            if status in RETRY_STATUSES:
                kind = _RetryableError if idempotent or status in NOT_DONE_STATUSES else _InDoubt
                err = kind(f"HTTP {status}", response=response)
                err.retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise err
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda e: getattr(e, "retry", False)),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "%s %s: %s; retry %d of %d",
                method,
                _where(url),
                state.outcome.exception() if state.outcome else "?",
                state.attempt_number,
                attempts - 1,
            ),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _InDoubt as exc:
            doubt = exc
        except _RetryableError as exc:
            return self._exhausted(method, url, exc, attempts)
        raise ConnectorError(
            f"{method} {_where(url)}: {doubt.why}; not sent again, as the CRM may have done it "
            "(an apply checks the CRM before writing those records again)",
            status=doubt.response.status_code if doubt.response is not None else None,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.max_retry_wait)
        # Exponential backoff with full jitter on top of the base step.
        step = self.backoff_base * (2 ** (state.attempt_number - 1))
        return min(self.max_retry_wait, step + random.uniform(0, self.backoff_base))

    def _exhausted(
        self, method: str, url: str, exc: _RetryableError, attempts: int
    ) -> requests.Response:
        tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
        if exc.response is None:
            raise UnreachableError(f"could not reach {_host(url)}: {exc.why} (after {tries})")
        status = exc.response.status_code
        throttled = status == 429 or isinstance(exc, _Throttled)
        what = f"rate limited (HTTP {status})" if throttled else f"HTTP {status}"
        code = error_code(self._maybe_json(exc.response))
        detail = f" {code}" if code and code != str(status) else ""
        raise ConnectorError(
            f"{method} {_where(url)} failed: {what}{detail} after {tries}", status=status
        )

    @staticmethod
    def _maybe_json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _kind(self, response: requests.Response) -> str | None:
        """``classify(response)``, asked once per answer."""
        if self.classify is None:
            return None
        try:
            return response.crmsync_kind  # type: ignore[attr-defined,no-any-return]
        except AttributeError:
            kind = self.classify(response)
            if kind not in (None, THROTTLED, TOKEN_EXPIRED):
                raise ValueError(
                    f"classify returned {kind!r}; expected THROTTLED, TOKEN_EXPIRED or None"
                ) from None
            response.crmsync_kind = kind  # type: ignore[attr-defined]
            return kind

    def _auth_error(self, response: requests.Response) -> AuthError:
        code = error_code(self._maybe_json(response))
        refused = response.status_code == 401 or self._kind(response) == TOKEN_EXPIRED
        verb = "rejected the credentials" if refused else "denied access"
        detail = f" ({code})" if code else ""
        hint = (
            " after refreshing the token"
            if refused and self.auth is not None and self.auth.can_refresh
            else ""
        )
        return AuthError(
            f"{_host(response.url or self.base_url)} {verb}: HTTP {response.status_code}"
            f"{detail}{hint}; {_where(response.url or '')}",
            status=response.status_code,
        )

    def _status_error(self, method: str, url: str, response: requests.Response) -> ConnectorError:
        status = response.status_code
        code = error_code(self._maybe_json(response))
        excerpt = (response.text or "")[:_EXCERPT].replace("\n", " ")
        detail = f" {code}" if code else ""
        return ConnectorError(
            f"{method} {_where(url)} answered HTTP {status}{detail}: {excerpt}", status=status
        )

    def _scrubbed(self, err: ConnectorError) -> ConnectorError:
        """Remove any secret value the CRM may have echoed back into an error message."""
        secrets = self.auth.secret_values() if self.auth is not None else []
        detail = err.detail
        for secret in secrets:
            detail = detail.replace(secret, "***")
        if detail != err.detail:
            err.detail = detail
            err.args = (err._render(),)
        return err
