"""crmsync.http: retries, auth, error mapping and secret hygiene against real local servers."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from crmsync.errors import AuthError, BadResponseError, ConnectorError, UnreachableError
from crmsync.hookspecs import SecretRef
from crmsync.http import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HttpClient,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    json_body,
    parse_retry_after,
    redact_url,
)
from tests.http_fakes import FakeClock, FakeServer, FakeSleep, Reply, Request, closed_port_url

SECRET = "s3cr3t-VALUE-42"


def ref(value: str = SECRET, path: str = "auth.token") -> SecretRef:
    return SecretRef("env:CRM_SECRET", path, resolver=lambda r, p: value)


def client(server: FakeServer, **kw) -> tuple[HttpClient, FakeSleep]:
    sleep = FakeSleep()
    kw.setdefault("sleep", sleep)
    return HttpClient(server.url, **kw), sleep


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc)):
        for s in secrets or (SECRET,):
            assert s not in text
    # A requests exception (whose message carries the URL) must not ride along.
    assert exc.__cause__ is None
    assert exc.__suppress_context__ or exc.__context__ is None


# ---------------------------------------------------------------------------- auth types


def test_bearer_api_key_and_basic_auth_are_sent():
    with FakeServer(lambda r: Reply(body={"ok": True})) as srv:
        for auth in (
            BearerAuth(ref()),
            ApiKeyAuth("X-API-Key", ref()),
            ApiKeyAuth("api_key", ref(), location="query"),
            BasicAuth("admin", ref()),
        ):
            c, _ = client(srv, auth=auth)
            assert c.request("GET", "things", params={"a": "1"}).json() == {"ok": True}
            assert SECRET not in repr(auth) and "env:CRM_SECRET" in repr(auth)
            assert SECRET not in repr(c)
        bearer, header, query, basic = srv.requests
    assert bearer.headers["authorization"] == f"Bearer {SECRET}"
    assert header.headers["x-api-key"] == SECRET
    assert query.query == {"a": "1", "api_key": SECRET}
    assert "x-api-key" not in query.headers
    expected = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert basic.headers["authorization"] == f"Basic {expected}"


class TokenServer:
    """An API plus an OAuth token endpoint; issued tokens expire when the test says."""

    def __init__(self, refresh_token: str = "refresh-1") -> None:
        self.refresh_token = refresh_token
        self.issued = 0
        self.valid: set[str] = set()
        self.grants: list[dict[str, str]] = []

    def __call__(self, req: Request) -> Reply:
        if req.path == "/oauth/token":
            form = req.form()
            self.grants.append(form)
            if form.get("client_secret") != "client-secret":
                return Reply(401, {"error": "invalid_client"})
            if form["grant_type"] == "refresh_token" and form["refresh_token"] != (
                self.refresh_token
            ):
                return Reply(400, {"error": "invalid_grant"})
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid.add(token)
            return Reply(body={"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.valid:
            return Reply(401, {"error": {"code": "INVALID_TOKEN", "message": "expired"}})
        return Reply(body={"data": [], "token": token})


def oauth(kind: str, url: str, clock: FakeClock, refresh: str = "refresh-1"):
    secret = ref("client-secret", "auth.client_secret")
    if kind == "client_credentials":
        return OAuth2ClientCredentials(url + "oauth/token", "cid", secret, clock=clock)
    return OAuth2RefreshToken(
        url + "oauth/token", "cid", secret, ref(refresh, "auth.refresh_token"), clock=clock
    )


@pytest.mark.parametrize("kind", ["client_credentials", "refresh_token"])
def test_oauth2_token_is_cached_and_refreshed_before_expiry(kind):
    tokens = TokenServer()
    clock = FakeClock()
    with FakeServer(tokens) as srv:
        c, _ = client(srv, auth=oauth(kind, srv.url, clock))
        assert c.request("GET", "x").json()["token"] == "tok-1"
        assert c.request("GET", "x").json()["token"] == "tok-1"  # cached
        clock.now += 3600 - 30  # inside the refresh margin: refreshed before it expires
        assert c.request("GET", "x").json()["token"] == "tok-2"
    assert tokens.issued == 2
    assert tokens.grants[0]["grant_type"] == kind
    assert c.calls == 3  # token requests are not API calls


def test_401_refreshes_once_then_succeeds():
    tokens = TokenServer()
    with FakeServer(tokens) as srv:
        c, _ = client(srv, auth=oauth("refresh_token", srv.url, FakeClock()))
        c.request("GET", "x")
        tokens.valid.clear()  # the CRM revoked the token mid-run
        ctx: dict = {}
        assert c.request("GET", "x", context=ctx).json()["token"] == "tok-2"
    assert ctx["calls"] == 2 and tokens.issued == 2


def test_second_401_is_auth_error():
    with FakeServer(lambda r: Reply(401, {"error": {"code": "INVALID_TOKEN"}})) as srv:
        tokens = TokenServer()

        def handler(req: Request) -> Reply:
            return tokens(req) if req.path == "/oauth/token" else Reply(401, {"error": "nope"})

        srv.handler = handler
        c, _ = client(srv, auth=oauth("client_credentials", srv.url, FakeClock()))
        with pytest.raises(AuthError) as info:
            c.request("GET", "x", context={"connection": "crm", "module": "Leads"})
    assert tokens.issued == 2  # the initial token and exactly one refresh
    assert "401" in str(info.value) and "connection 'crm'" in str(info.value)
    assert_no_secret(info.value, "client-secret", "tok-1", "tok-2")


def test_revoked_refresh_token_tells_admin_to_reauthorise():
    with FakeServer(TokenServer(refresh_token="the-new-one")) as srv:
        c, _ = client(srv, auth=oauth("refresh_token", srv.url, FakeClock(), refresh=SECRET))
        with pytest.raises(AuthError) as info:
            c.request("GET", "x")
    msg = str(info.value)
    assert "invalid_grant" in msg and "Re-authorise" in msg and "env:CRM_SECRET" in msg
    assert_no_secret(info.value, SECRET, "client-secret")


def test_bad_client_credentials_say_so():
    with FakeServer(TokenServer()) as srv:
        bad = OAuth2ClientCredentials(srv.url + "oauth/token", "cid", ref())
        c, _ = client(srv, auth=bad)
        with pytest.raises(AuthError, match=r"invalid_client.*client_secret") as info:
            c.request("GET", "x")
    assert_no_secret(info.value)


def test_static_401_and_403_are_auth_errors_with_crm_code():
    replies = iter([Reply(401, {"error": {"code": "INVALID_TOKEN"}}), Reply(403, {"code": "NO"})])
    with FakeServer(lambda r: next(replies)) as srv:
        c, _ = client(srv, auth=BearerAuth(ref()))
        with pytest.raises(AuthError, match="INVALID_TOKEN") as first:
            c.request("GET", "x")
        with pytest.raises(AuthError, match=r"403.*NO") as second:
            c.request("GET", "x")
    assert c.calls == 2  # a static token is not refreshed
    assert_no_secret(first.value)
    assert_no_secret(second.value)


# ---------------------------------------------------------------------------- retries


def flaky(*replies: Reply):
    queue = list(replies)

    def handler(req: Request) -> Reply:
        return queue.pop(0) if queue else Reply(body={"ok": True})

    return handler


def test_503_twice_then_200_backs_off_without_sleeping():
    with FakeServer(flaky(Reply(503), Reply(503))) as srv:
        c, sleep = client(srv, backoff_base=0.5)
        ctx: dict = {}
        assert c.request("GET", "x", context=ctx).json() == {"ok": True}
    assert c.calls == 3 and ctx["calls"] == 3 and srv.count() == 3
    assert len(sleep.waits) == 2
    assert 0.5 <= sleep.waits[0] <= 1.0 and 1.0 <= sleep.waits[1] <= 1.5  # exponential + jitter


def test_retry_after_seconds_and_http_date_are_honoured_and_capped():
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with FakeServer(
        flaky(
            Reply(429, headers={"Retry-After": "7"}),
            Reply(503, headers={"Retry-After": date}),
            Reply(429, headers={"Retry-After": "3600"}),
        )
    ) as srv:
        c, sleep = client(srv, max_retry_wait=60)
        c.request("POST", "x", json={"a": 1})
    assert sleep.waits[0] == 7
    assert 25 <= sleep.waits[1] <= 30
    assert sleep.waits[2] == 60  # capped by max_retry_wait


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_exhausted_is_a_clear_error(status):
    with FakeServer(lambda r: Reply(status, {"error": {"code": "BUSY"}})) as srv:
        c, sleep = client(srv, max_retries=2)
        with pytest.raises(ConnectorError) as info:
            c.request("GET", "Leads", params={"token": SECRET}, context={"module": "Leads"})
    assert c.calls == 3 and len(sleep.waits) == 2
    msg = str(info.value)
    assert f"{status}" in msg and "after 3 attempts" in msg and "module 'Leads'" in msg
    assert info.value.status == status
    assert_no_secret(info.value)


def test_unreachable_host_names_host_not_query():
    url = closed_port_url()
    sleep = FakeSleep()
    c = HttpClient(url, auth=ApiKeyAuth("api_key", ref(), "query"), max_retries=1, sleep=sleep)
    with pytest.raises(UnreachableError) as info:
        c.request("GET", "Leads", params={"password": SECRET})
    msg = str(info.value)
    assert url.split("//")[1].rstrip("/") in msg and "connection refused" in msg
    assert "after 2 attempts" in msg and c.calls == 2
    assert_no_secret(info.value)
    assert "?" not in msg


def test_a_write_that_may_have_been_done_is_not_sent_again():
    """A POST/PATCH whose answer was lost (dropped connection, timeout, 500/502/504) may have
    been done by the CRM: retrying it would write twice, so the error goes up (apply checks
    the CRM before writing again). 429/503 and a connection never made are retried."""
    from crmsync.sandbox import SandboxCRM

    with SandboxCRM(module_sizes={"Leads": 5}, token=SECRET) as crm:
        lead = crm.ids("Leads")[0]
        body = {"records": [{"id": lead, "status": "archived"}]}
        c = HttpClient(crm.api_url, auth=BearerAuth(ref()), sleep=FakeSleep())
        crm.set_faults(fail_next=[{"drop": "after", "path_prefix": "/api/v1/Leads/batch"}])
        with pytest.raises(ConnectorError, match="not sent again") as info:
            c.request("POST", "Leads/batch", json=body)
        assert "connection closed without a response" in str(info.value)
        assert c.calls == 1 and crm.write_count("Leads", lead) == 1  # done once, not twice
        assert_no_secret(info.value)
        for status in (500, 502, 504):
            crm.set_faults(fail_next=[{"status": status}])
            with pytest.raises(ConnectorError, match=f"HTTP {status}; not sent again") as info:
                c.request("PATCH", f"Leads/{lead}", json={"status": "archived"})
            assert info.value.status == status
        assert c.calls == 4
        # the CRM said it did nothing (429, 503), or the request is idempotent: retried
        crm.set_faults(fail_next=[{"status": 429, "retry_after": 0}, {"status": 503}])
        assert c.request("POST", "Leads/batch", json=body).status_code == 200
        crm.set_faults(fail_next=[{"drop": "after"}, {"status": 502}])
        assert c.request("GET", f"Leads/{lead}").status_code == 200
        crm.set_faults(fail_next=[{"drop": "before"}])
        assert c.request("POST", "Leads/batch", json=body, idempotent=True).status_code == 200
        assert c.calls == 4 + 3 + 3 + 2 and crm.write_count("Leads", lead) == 3
    # no connection made: nothing was sent, so a write is retried
    c = HttpClient(closed_port_url(), max_retries=1, sleep=FakeSleep())
    with pytest.raises(UnreachableError, match="after 2 attempts"):
        c.request("POST", "Leads/batch", json=body)
    assert c.calls == 2


def test_other_4xx_is_connector_error_with_status_and_excerpt():
    with FakeServer(lambda r: Reply(400, {"error": {"code": "LIMIT_EXCEEDED"}})) as srv:
        c, _ = client(srv)
        with pytest.raises(ConnectorError, match="HTTP 400 LIMIT_EXCEEDED") as info:
            c.request("GET", "Leads")
        assert info.value.status == 400 and c.calls == 1
        response = c.request("GET", "Leads", raise_for_status=False)
        assert response.status_code == 400


def test_secret_echoed_by_crm_is_scrubbed():
    # A CRM that echoes the request back in its error must not leak the key into our message.
    def echo(req: Request) -> Reply:
        return Reply(400, f"bad request: key={req.query.get('api_key')}")

    with FakeServer(echo) as srv:
        c, _ = client(srv, auth=ApiKeyAuth("api_key", ref(), "query"))
        with pytest.raises(ConnectorError) as info:
            c.request("GET", "x")
    assert "key=***" in str(info.value)
    assert_no_secret(info.value)


def test_json_body_malformed():
    with FakeServer(lambda r: Reply(body='{"data": [1, 2')) as srv:
        c, _ = client(srv)
        response = c.request("GET", "x")
        with pytest.raises(BadResponseError, match="malformed JSON") as info:
            json_body(response, {"module": "Leads", "page": 3})
    assert "module 'Leads', page 3" in str(info.value)


# ---------------------------------------------------------------------------- limits


def test_concurrency_limit_is_enforced_and_used():
    with FakeServer(lambda r: Reply(body={}, delay=0.05)) as srv:
        c, _ = client(srv, concurrency=3)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: c.request("GET", f"x/{i}"), range(12)))
    assert srv.max_in_flight == 3
    assert c.calls == 12


def test_calls_counter_is_thread_safe():
    with FakeServer(lambda r: Reply(body={})) as srv:
        c, _ = client(srv, concurrency=4)
        threads = [
            threading.Thread(target=lambda: [c.request("GET", "x") for _ in range(10)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert c.calls == 40 == srv.count()


def test_rate_limiter_spaces_requests_with_injected_clock():
    with FakeServer(lambda r: Reply(body={})) as srv:
        clock = FakeClock()
        c, sleep = client(srv, requests_per_second=4, clock=clock)
        for _ in range(3):
            c.request("GET", "x")
    assert sleep.waits == [0.25, 0.5]  # the clock stood still: each start waits one more slot


# ---------------------------------------------------------------------------- helpers


def test_redact_url():
    url = "https://u:pw@crm.example.com/api?page=2&access_token=abc&api_key=k&Signature=s&q=x"
    red = redact_url(url)
    for secret in ("abc", "=k", "=s", ":pw"):
        assert secret not in red
    assert "page=2" in red and "q=x" in red and "crm.example.com/api" in red


def test_parse_retry_after():
    assert parse_retry_after("12") == 12
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past) == 0


def test_absolute_urls_and_base_join():
    c = HttpClient("http://h/api/v1")
    assert c.url("Leads") == "http://h/api/v1/Leads"
    assert c.url("/Leads") == "http://h/api/v1/Leads"
    assert c.url("https://other/x?y=1") == "https://other/x?y=1"
    c.close()


def test_proxy_environment_is_read_once_per_connection(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    client = HttpClient("https://crm.example.com/api/")
    assert client.session.proxies.get("https") == "http://proxy.internal:3128"
    assert client.session.trust_env is False  # not re-read (and no ~/.netrc) per request
    client.close()
