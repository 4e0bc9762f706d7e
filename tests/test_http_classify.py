"""HttpClient(classify=...): rate limits and token expiry that CRMs signal with other statuses
(HTTP 403 with a QPS code, HTTP 200 with an error code) go through the client's one retry and
refresh policy."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests

from crmsync.auth import OAuth2ClientCredentials
from crmsync.errors import AuthError, ConnectorError
from crmsync.http import THROTTLED, TOKEN_EXPIRED, HttpClient
from tests.http_fakes import FakeServer, FakeSleep, Reply, Request


def classify(response: requests.Response) -> str | None:
    if len(response.content) > 4096:
        return None  # a page of records, not an error answer
    try:
        body = orjson.loads(response.content)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    if code == "QpsLimit":
        return THROTTLED
    if code == 40001:
        return TOKEN_EXPIRED
    return None


class Api:
    """Answers from a list, then {"code": 0}; a token endpoint issuing tok-1, tok-2..."""

    def __init__(self, answers: list[Reply]) -> None:
        self.answers = answers
        self.tokens = 0

    def __call__(self, request: Request) -> Reply:
        if request.path == "/token":
            self.tokens += 1
            return Reply(200, {"access_token": f"tok-{self.tokens}", "expires_in": 3600})
        return self.answers.pop(0) if self.answers else Reply(200, {"code": 0})


def _client(server: FakeServer, sleep: FakeSleep, **extra: Any) -> HttpClient:
    return HttpClient(
        server.url, classify=classify, sleep=sleep, max_retries=3, backoff_base=0, **extra
    )


def test_a_throttle_sent_as_403_is_retried_even_for_a_write() -> None:
    throttled = Reply(403, {"code": "QpsLimit"}, headers={"Retry-After": "2"})
    sleep = FakeSleep()
    with FakeServer(Api([throttled, throttled])) as server:
        response = _client(server, sleep).request("POST", "write", json={"id": 1})
    assert response.json() == {"code": 0}
    assert server.count("/write") == 3 and sleep.waits == [2.0, 2.0]


def test_a_throttle_that_never_ends_is_a_rate_limit_error_not_an_auth_error() -> None:
    throttled = Reply(403, {"code": "QpsLimit"})
    with FakeServer(Api([throttled] * 10)) as server, pytest.raises(ConnectorError) as err:
        _client(server, FakeSleep()).request("GET", "things")
    assert not isinstance(err.value, AuthError)
    assert "rate limited (HTTP 403)" in str(err.value) and "4 attempts" in str(err.value)


def test_token_expiry_inside_a_200_is_refreshed_once() -> None:
    expired = Reply(200, {"code": 40001, "message": "token expired"})
    with FakeServer(Api([expired])) as server:
        auth = OAuth2ClientCredentials(server.url + "token", "id", "secret-value")
        response = _client(server, FakeSleep(), auth=auth).request("GET", "things")
        assert response.json() == {"code": 0}
        assert server.handler.tokens == 2
        tokens = [r.headers.get("authorization") for r in server.requests if r.path == "/things"]
    assert tokens == ["Bearer tok-1", "Bearer tok-2"]


def test_token_expiry_after_the_refresh_is_an_auth_error() -> None:
    expired = Reply(200, {"code": 40001})
    with FakeServer(Api([expired, expired])) as server:
        auth = OAuth2ClientCredentials(server.url + "token", "id", "secret-value")
        with pytest.raises(AuthError, match=r"rejected the credentials.*after refreshing"):
            _client(server, FakeSleep(), auth=auth).request("GET", "things")


def test_without_classify_a_403_is_still_an_auth_error() -> None:
    with FakeServer(Api([Reply(403, {"code": "QpsLimit"})])) as server:
        client = HttpClient(server.url, sleep=FakeSleep())
        with pytest.raises(AuthError, match="denied access"):
            client.request("GET", "things")


def test_a_classify_answer_it_does_not_know_is_a_programming_error() -> None:
    with FakeServer(Api([])) as server:
        client = HttpClient(server.url, classify=lambda response: "busy", sleep=FakeSleep())
        with pytest.raises(ValueError, match="classify returned 'busy'"):
            client.request("GET", "things")
