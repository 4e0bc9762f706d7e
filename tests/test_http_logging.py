"""Secrets sent in a query string never reach a debug log (urllib3 logs request lines)."""

from __future__ import annotations

import logging

import pytest

from crmsync.http import ApiKeyAuth, HttpClient
from tests.http_fakes import FakeServer, FakeSleep, Reply, Request


def test_a_query_string_key_is_masked_in_urllib3s_debug_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeServer(lambda request: Reply(200, {"ok": True})) as server:
        auth = ApiKeyAuth("api_key", "query-secret-4242", location="query")
        client = HttpClient(server.url, auth=auth, sleep=FakeSleep())
        client.request("GET", "things", params={"page": 2})
        seen: list[Request] = server.requests
    assert seen[0].query == {"api_key": "query-secret-4242", "page": "2"}  # it was sent
    lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert any("/things?" in line for line in lines), lines  # urllib3 did log the request
    assert "query-secret-4242" not in caplog.text
    assert any("api_key=***" in line and "page=2" in line for line in lines)
