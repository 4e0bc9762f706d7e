"""The sandbox CRM, tested through real HTTP (see crmsync/sandbox/API.md)."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.data import RecordGenerator, split_sizes

TOKEN = "sandbox-token"


@pytest.fixture(scope="module")
def crm() -> Iterator[SandboxCRM]:
    """A read-mostly sandbox shared by the module (tests that write use ``fresh``)."""
    with SandboxCRM(records=300, seed=42) as sandbox:
        yield sandbox


@pytest.fixture
def fresh() -> Iterator[SandboxCRM]:
    with SandboxCRM(module_sizes={"Leads": 60, "Contacts": 20, "Accounts": 10}) as sandbox:
        yield sandbox


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        yield session


@pytest.fixture(autouse=True)
def _no_faults(crm: SandboxCRM) -> Iterator[None]:
    yield
    crm.clear_faults()


def error_code(response: requests.Response) -> str:
    return response.json()["error"]["code"]


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "how",
    ["bearer", "x-api-key", "query", "basic"],
)
def test_every_auth_mode_is_accepted(crm: SandboxCRM, how: str) -> None:
    headers, params = {}, {}
    if how == "bearer":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif how == "x-api-key":
        headers["X-API-Key"] = TOKEN
    elif how == "query":
        params["api_key"] = TOKEN
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    r = requests.get(crm.api_url + "Leads", headers=headers, params=params)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": "Basic !!"}],
)
def test_bad_credentials_get_401_with_error_body(crm: SandboxCRM, headers: dict) -> None:
    r = requests.get(crm.api_url + "Leads", headers=headers)
    assert r.status_code == 401
    assert error_code(r) == "INVALID_TOKEN"
    assert "wrong" not in r.text  # the credential is never echoed


def test_oauth_tokens_are_issued_and_expire_by_the_sandbox_clock(fresh: SandboxCRM) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    r = requests.post(fresh.base_url + "/oauth/token", data=form)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 200
    fresh.advance(3599)
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 200
    fresh.advance(1)
    r = requests.get(fresh.api_url + "modules", headers=auth)
    assert r.status_code == 401 and error_code(r) == "INVALID_TOKEN"

    refresh = {**form, "grant_type": "refresh_token", "refresh_token": "sandbox-refresh"}
    r = requests.post(fresh.base_url + "/oauth/token", data=refresh)
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 200


def test_oauth_rejects_bad_client_and_bad_refresh_token(fresh: SandboxCRM) -> None:
    url = fresh.base_url + "/oauth/token"
    bad = {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    r = requests.post(url, data=bad)
    assert (r.status_code, r.json()) == (401, {"error": "invalid_client"})
    client = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    r = requests.post(url, data={**client, "grant_type": "refresh_token", "refresh_token": "no"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid_grant"})
    fresh.expire_tokens(refresh=True)  # a revoked refresh token
    ok = {**client, "grant_type": "refresh_token", "refresh_token": "sandbox-refresh"}
    assert requests.post(url, data=ok).status_code == 400
    fresh.restore_tokens()
    assert requests.post(url, data=ok).status_code == 200


def test_expire_tokens_and_restore(fresh: SandboxCRM, http: requests.Session) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    issued = requests.post(fresh.base_url + "/oauth/token", data=form).json()["access_token"]
    fresh.expire_tokens()
    r = requests.get(fresh.api_url + "Leads", headers={"Authorization": f"Bearer {issued}"})
    assert r.status_code == 401
    assert http.get(fresh.api_url + "Leads").status_code == 200  # the static token still works
    r = requests.post(fresh.base_url + "/_sandbox/tokens/expire", json={"static": True})
    assert r.status_code == 200
    assert http.get(fresh.api_url + "Leads").status_code == 401
    requests.post(fresh.base_url + "/_sandbox/tokens/restore")
    assert http.get(fresh.api_url + "Leads").status_code == 200


# --------------------------------------------------------------------------- pagination


def walk(http: requests.Session, url: str, style: str, size: int, **params: str) -> list[dict]:
    """Every record of a listing, following ``style``; checks the pages are sane."""
    records: list[dict] = []
    if style == "page":
        page = 1
        while True:
            body = http.get(url, params={**params, "page": page, "per_page": size}).json()
            records += body["data"]
            assert body["meta"]["page"] == page and len(body["data"]) <= size
            if body["links"]["next"] is None:
                break
            page += 1
    elif style == "offset":
        offset = 0
        while True:
            body = http.get(url, params={**params, "offset": offset, "limit": size}).json()
            records += body["data"]
            if body["links"]["next"] is None:
                break
            offset += size
    elif style == "cursor":
        query: dict = {**params, "limit": size}  # no cursor on the first request
        while True:
            body = http.get(url, params=query).json()
            records += body["data"]
            assert ("cursor" in query) == (body["meta"]["page"] is None)
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                break
            query = {"cursor": cursor, "limit": size}
    elif style == "links.next":
        next_url: str | None = url
        query = {**params, "per_page": size}
        while next_url:
            body = http.get(next_url, params=query).json()
            records += body["data"]
            next_url, query = body["links"]["next"], {}
    elif style == "link-header":
        next_url = url
        query = {**params, "per_page": size}
        while next_url:
            r = http.get(next_url, params=query)
            records += r.json()["data"]
            next_url, query = r.links.get("next", {}).get("url"), {}
            assert (next_url is None) == ("Link" not in r.headers)
    else:
        raise AssertionError(style)
    return records


STYLES = ["page", "offset", "cursor", "links.next", "link-header"]


@pytest.fixture(scope="module")
def paged() -> Iterator[SandboxCRM]:
    """Leads: 100 records (a multiple of the page size 20), Contacts: 103 (not)."""
    with SandboxCRM(module_sizes={"Leads": 100, "Contacts": 103}) as sandbox:
        yield sandbox


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("module", ["Leads", "Contacts"])
def test_every_pagination_style_returns_every_record_once(
    paged: SandboxCRM, http: requests.Session, style: str, module: str
) -> None:
    records = walk(http, paged.api_url + module, style, 20)
    ids = [r["id"] for r in records]
    assert ids == paged.ids(module)  # each once, in id order, nothing missing


@pytest.mark.parametrize("style", STYLES)
def test_sort_by_modified_at_pages_in_order_through_ties(
    fresh: SandboxCRM, http: requests.Session, style: str
) -> None:
    fresh.advance(60)
    tied = fresh.touch("Leads", count=25)  # 25 records share one modified_at
    records = walk(http, fresh.api_url + "Leads", style, 7, sort="modified_at")
    keys = [(r["modified_at"], int(r["id"])) for r in records]
    assert keys == sorted(keys)
    assert len({k[1] for k in keys}) == len(keys) == fresh.count("Leads")
    assert [r["id"] for r in records[-25:]] == tied


def test_modified_since_is_inclusive_and_total_counts_matches(
    crm: SandboxCRM, http: requests.Session
) -> None:
    everything = walk(http, crm.api_url + "Leads", "cursor", 500)
    pivot = sorted(r["modified_at"] for r in everything)[len(everything) // 2]
    expected = sorted(int(r["id"]) for r in everything if r["modified_at"] >= pivot)
    for style in ("page", "cursor"):
        got = walk(http, crm.api_url + "Leads", style, 13, modified_since=pivot)
        assert sorted(int(r["id"]) for r in got) == expected
    body = http.get(crm.api_url + "Leads", params={"modified_since": pivot}).json()
    assert body["meta"]["total"] == len(expected)
    # an offset in another zone is the same instant
    local = datetime.fromisoformat(pivot.replace("Z", "+00:00")).astimezone().isoformat()
    body = http.get(crm.api_url + "Leads", params={"modified_since": local}).json()
    assert body["meta"]["total"] == len(expected)


def test_past_the_end_and_bad_parameters(crm: SandboxCRM, http: requests.Session) -> None:
    body = http.get(crm.api_url + "Leads", params={"page": 999, "per_page": 100}).json()
    assert body["data"] == [] and body["links"]["next"] is None
    for params, code in [
        ({"per_page": 1001}, "LIMIT_EXCEEDED"),
        ({"limit": 5000}, "LIMIT_EXCEEDED"),
        ({"per_page": 0}, "INVALID_PARAMETER"),
        ({"page": "x"}, "INVALID_PARAMETER"),
        ({"sort": "name"}, "INVALID_PARAMETER"),
        ({"modified_since": "yesterday"}, "INVALID_PARAMETER"),
        ({"cursor": "garbage"}, "INVALID_CURSOR"),
    ]:
        r = http.get(crm.api_url + "Leads", params=params)
        assert (r.status_code, error_code(r)) == (400, code), params
    assert len(http.get(crm.api_url + "Leads", params={"per_page": 1000}).json()["data"]) == 120
    assert http.get(crm.api_url + "Nope").status_code == 404


def test_links_never_carry_the_api_key(crm: SandboxCRM) -> None:
    r = requests.get(crm.api_url + "Leads", params={"api_key": TOKEN, "per_page": 10})
    assert TOKEN not in r.json()["links"]["next"] and TOKEN not in r.headers["Link"]


def test_single_record_and_modules(crm: SandboxCRM, http: requests.Session) -> None:
    rid = crm.ids("Deals")[3]
    assert http.get(crm.api_url + f"Deals/{rid}").json()["data"] == crm.record("Deals", rid)
    r = http.get(crm.api_url + "Deals/123")
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    modules = http.get(crm.api_url + "modules").json()["modules"]
    assert [m["name"] for m in modules] == ["Leads", "Contacts", "Accounts", "Deals"]
    leads = modules[0]
    assert leads["modified_field"] == "modified_at" and leads["id_field"] == "id"
    assert {"name": "lead_status", "type": "string"} in leads["fields"]


# --------------------------------------------------------------------------- writing


def test_batch_write_reports_per_record_and_counts_writes(
    fresh: SandboxCRM, http: requests.Session
) -> None:
    a, b, c, d = fresh.ids("Leads")[:4]
    fresh.set_faults(fail_ids=[d])
    fresh.advance(3600)
    now = fresh.now()
    records = [
        {"id": a, "status": "archived"},
        {"id": b, "status": "voided", "void_reason": "duplicate"},
        {"id": c, "status": "deleted"},
        {"id": d, "status": "archived"},
        {"id": "999", "status": "archived"},
        {"status": "archived"},
    ]
    r = http.post(fresh.api_url + "Leads/batch", json={"records": records})
    assert r.status_code == 200
    assert r.json()["results"] == [
        {"id": a, "ok": True, "modified_at": now},
        {"id": b, "ok": True, "modified_at": now},
        {"id": c, "ok": False, "error": "INVALID_STATUS"},
        {"id": d, "ok": False, "error": "WRITE_REJECTED"},
        {"id": "999", "ok": False, "error": "NOT_FOUND"},
        {"id": None, "ok": False, "error": "INVALID_RECORD"},
    ]
    assert fresh.record("Leads", a)["status"] == "archived"
    assert fresh.record("Leads", b)["void_reason"] == "duplicate"
    assert fresh.record("Leads", b)["modified_at"] == now
    assert [fresh.write_count("Leads", i) for i in (a, b, c, d)] == [1, 1, 0, 0]
    stats = fresh.stats()
    assert stats["writes"] == {f"Leads/{a}": 1, f"Leads/{b}": 1}
    assert stats["max_batch"] == 6


def test_batch_limit(fresh: SandboxCRM, http: requests.Session) -> None:
    records = [{"id": i, "status": "archived"} for i in fresh.ids("Leads")[:60]] * 2
    r = http.post(fresh.api_url + "Leads/batch", json={"records": records[:101]})
    assert (r.status_code, error_code(r)) == (400, "LIMIT_EXCEEDED")
    assert fresh.stats()["max_batch"] == 101 and fresh.stats()["writes"] == {}
    r = http.post(fresh.api_url + "Leads/batch-delete", json={"ids": ["1"] * 101})
    assert (r.status_code, error_code(r)) == (400, "LIMIT_EXCEEDED")
    r = http.post(fresh.api_url + "Leads/batch", data="{not json")
    assert (r.status_code, error_code(r)) == (400, "INVALID_JSON")


def test_patch_one_record(fresh: SandboxCRM, http: requests.Session) -> None:
    rid = fresh.ids("Contacts")[0]
    r = http.patch(fresh.api_url + f"Contacts/{rid}", json={"status": "archived", "note": "x"})
    assert r.status_code == 200
    assert r.json()["data"]["status"] == "archived" and r.json()["data"]["note"] == "x"
    r = http.patch(fresh.api_url + f"Contacts/{rid}", json={"status": "gone"})
    assert (r.status_code, error_code(r)) == (400, "INVALID_STATUS")
    r = http.patch(fresh.api_url + "Contacts/42", json={"status": "active"})
    assert (r.status_code, error_code(r)) == (404, "NOT_FOUND")
    fresh.set_faults(fail_ids=[rid])
    r = http.patch(fresh.api_url + f"Contacts/{rid}", json={"status": "active"})
    assert (r.status_code, error_code(r)) == (422, "WRITE_REJECTED")
    assert fresh.write_count("Contacts", rid) == 1


def test_delete_and_deleted_listing(fresh: SandboxCRM, http: requests.Session) -> None:
    ids = fresh.ids("Leads")
    fresh.advance(10)
    assert http.delete(fresh.api_url + f"Leads/{ids[0]}").status_code == 204
    assert http.get(fresh.api_url + f"Leads/{ids[0]}").status_code == 404
    assert http.delete(fresh.api_url + f"Leads/{ids[0]}").status_code == 404
    fresh.advance(10)
    r = http.post(fresh.api_url + "Leads/batch-delete", json={"ids": [ids[1], ids[2], "77"]})
    assert r.json()["results"] == [
        {"id": ids[1], "ok": True},
        {"id": ids[2], "ok": True},
        {"id": "77", "ok": False, "error": "NOT_FOUND"},
    ]
    assert fresh.delete_records("Leads", [ids[3], "5"]) == [ids[3]]  # server-side, not counted
    assert fresh.count("Leads") == 56
    listed = walk(http, fresh.api_url + "Leads", "page", 25)
    assert len(listed) == 56 and ids[0] not in {r["id"] for r in listed}
    body = http.get(fresh.api_url + "Leads/deleted", params={"per_page": 2}).json()
    assert body["meta"]["total"] == 4 and body["links"]["next"]
    deleted = walk(http, fresh.api_url + "Leads/deleted", "page", 3)
    assert [d["id"] for d in deleted] == ids[:4]
    assert deleted[0] == {"id": ids[0], "deleted_at": "2026-01-01T00:00:10Z"}
    since = walk(http, fresh.api_url + "Leads/deleted", "page", 3, since="2026-01-01T00:00:20Z")
    assert [d["id"] for d in since] == ids[1:4]
    assert [fresh.write_count("Leads", i) for i in ids[:4]] == [1, 1, 1, 0]


def test_touch_makes_records_show_in_an_incremental_pull(
    fresh: SandboxCRM, http: requests.Session
) -> None:
    fresh.advance(86400)
    now = fresh.now()
    touched = fresh.touch("Leads", count=5)
    r = requests.post(
        fresh.base_url + "/_sandbox/touch", json={"module": "Leads", "ids": [touched[0], "1"]}
    )
    assert r.json() == {"ids": [touched[0]]}
    got = walk(http, fresh.api_url + "Leads", "cursor", 2, modified_since=now)
    assert sorted(r["id"] for r in got) == touched
    assert all(r["modified_at"] == now for r in got)
    assert fresh.stats()["writes"] == {}  # touch is a CRM user's edit, not a client write


# --------------------------------------------------------------------------- faults


def test_latency_is_per_request_and_does_not_serialise(
    crm: SandboxCRM, http: requests.Session
) -> None:
    crm.reset_stats()
    crm.set_faults(latency_ms=150)

    def one(_: int) -> int:
        with requests.Session() as s:
            return s.get(crm.api_url + "Leads", headers={"X-API-Key": TOKEN}).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(4))) == [200] * 4
    elapsed = time.perf_counter() - started
    assert 0.15 <= elapsed < 0.45  # four in parallel, not 0.6 s in a row
    assert crm.stats()["max_in_flight"] == 4


def test_error_rate_and_status(crm: SandboxCRM, http: requests.Session) -> None:
    crm.set_faults(error_rate=1)
    r = http.get(crm.api_url + "Leads")
    assert (r.status_code, error_code(r)) == (503, "SERVICE_UNAVAILABLE")
    crm.set_faults(error_rate=1, error_status=500)
    assert http.get(crm.api_url + "Leads").status_code == 500
    assert requests.get(crm.base_url + "/_sandbox/stats").status_code == 200  # control: exempt


def test_random_faults_are_deterministic(crm: SandboxCRM, http: requests.Session) -> None:
    def run() -> list[int]:
        crm.set_faults(error_rate=0.5)
        return [http.get(crm.api_url + "modules").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert set(first) == {200, 503}


def test_rate_limit_every_nth_request(crm: SandboxCRM, http: requests.Session) -> None:
    crm.set_faults(rate_limit_every=3, retry_after=7)
    codes = [http.get(crm.api_url + "modules") for _ in range(6)]
    assert [r.status_code for r in codes] == [200, 200, 429, 200, 200, 429]
    assert codes[2].headers["Retry-After"] == "7"
    assert error_code(codes[2]) == "RATE_LIMITED"


def test_dropped_connections(crm: SandboxCRM, http: requests.Session) -> None:
    crm.set_faults(drop_rate=1)
    with pytest.raises(requests.ConnectionError):
        http.get(crm.api_url + "Leads")
    crm.clear_faults()
    assert http.get(crm.api_url + "Leads").status_code == 200  # the pool recovers


def test_drop_after_serving_applies_the_write_but_never_answers(
    fresh: SandboxCRM, http: requests.Session
) -> None:
    lead, other = fresh.ids("Leads")[:2]
    batch = fresh.api_url + "Leads/batch"
    fresh.set_faults(
        fail_next=[
            {"drop": "after", "path_prefix": "/api/v1/Leads/batch"},
            {"drop": "before", "path_prefix": "/api/v1/Leads/batch"},
        ]
    )
    with pytest.raises(requests.ConnectionError):
        http.post(batch, json={"records": [{"id": lead, "status": "archived"}]})
    assert fresh.record("Leads", lead)["status"] == "archived"  # done, though unanswered
    with pytest.raises(requests.ConnectionError):
        http.post(batch, json={"records": [{"id": other, "status": "archived"}]})
    assert fresh.record("Leads", other)["status"] == "active"  # dropped before: not done
    assert (fresh.write_count("Leads", lead), fresh.write_count("Leads", other)) == (1, 0)
    stats = fresh.stats()
    assert stats["faults"] == {"drop_after": 1, "drop": 1}
    assert stats["by_status"] == {"dropped_after": 1, "dropped": 1}

    fresh.set_faults(drop_after_rate=1)
    with pytest.raises(requests.ConnectionError):
        http.get(fresh.api_url + "modules")
    fresh.set_faults(drop_after_rate=0.5)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(http.get(fresh.api_url + "modules").status_code)
        except requests.ConnectionError:
            outcomes.append(0)
    assert set(outcomes) == {0, 200}
    fresh.clear_faults()
    assert http.get(fresh.api_url + "modules").status_code == 200  # the pool recovers
    with pytest.raises(ValueError):
        fresh.set_faults(fail_next=[{"drop": "during"}])
    with pytest.raises(ValueError):
        fresh.set_faults(fail_next=[{"count": 2}])  # neither a status nor a drop


def test_rate_limit_bursts(crm: SandboxCRM, http: requests.Session) -> None:
    crm.reset_stats()
    crm.set_faults(rate_limit_every=4, rate_limit_burst=2, retry_after=0.01)
    codes = [http.get(crm.api_url + "modules") for _ in range(9)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429, 429, 200, 200, 429, 429]
    assert codes[3].headers["Retry-After"] == "0.01"  # tests keep the waits tiny
    assert crm.stats()["faults"]["rate_limit"] == 4
    with pytest.raises(ValueError):
        crm.set_faults(rate_limit_every=4, rate_limit_burst=0)


def test_tokens_expire_every_nth_request(fresh: SandboxCRM) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    fresh.set_faults(expire_tokens_every=3)
    token = requests.post(fresh.base_url + "/oauth/token", data=form).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 200
    r = requests.get(fresh.api_url + "modules", headers=auth)  # the 3rd: expires, then served
    assert r.status_code == 401 and "token expired" in r.json()["error"]["message"]
    token = requests.post(fresh.base_url + "/oauth/token", data=form).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 200
    static = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(fresh.api_url + "modules", headers=static).status_code == 200  # 6th
    assert requests.get(fresh.api_url + "modules", headers=auth).status_code == 401
    assert fresh.stats()["faults"] == {"token_expiry": 2}


def test_fail_next_by_path_prefix(crm: SandboxCRM, http: requests.Session) -> None:
    crm.set_faults(
        fail_next=[
            {"status": 502, "count": 2, "path_prefix": "/api/v1/Deals"},
            {"status": 429, "count": 1, "retry_after": 0, "path_prefix": "/api/v1/Accounts"},
            {"status": 500, "count": 1, "path_prefix": "/api/v1/Contacts", "body": "<html>"},
        ]
    )
    assert http.get(crm.api_url + "Leads").status_code == 200
    assert http.get(crm.api_url + "Deals").status_code == 502
    assert http.get(crm.api_url + "Deals").status_code == 502
    assert http.get(crm.api_url + "Deals").status_code == 200
    r = http.get(crm.api_url + "Accounts")
    assert r.status_code == 429 and r.headers["Retry-After"] == "0"
    r = http.get(crm.api_url + "Contacts")
    assert (r.status_code, r.text) == (500, "<html>")
    assert http.get(crm.api_url + "Contacts").status_code == 200


def test_malformed_and_omit_id(crm: SandboxCRM, http: requests.Session) -> None:
    crm.set_faults(malformed_next=1)
    r = http.get(crm.api_url + "Leads")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert http.get(crm.api_url + "Leads").json()["data"]
    crm.set_faults(omit_id_next=1)
    data = http.get(crm.api_url + "Leads", params={"per_page": 10}).json()["data"]
    assert sum("id" not in r for r in data) == 1
    data = http.get(crm.api_url + "Leads", params={"per_page": 10}).json()["data"]
    assert all("id" in r for r in data)


def test_faults_over_http_and_validation(crm: SandboxCRM, http: requests.Session) -> None:
    r = requests.post(crm.base_url + "/_sandbox/faults", json={"error_rate": 1})
    assert r.json()["faults"]["error_rate"] == 1
    assert http.get(crm.api_url + "Leads").status_code == 503
    requests.post(crm.base_url + "/_sandbox/faults", json={})
    assert http.get(crm.api_url + "Leads").status_code == 200
    r = requests.post(crm.base_url + "/_sandbox/faults", json={"eror_rate": 1})
    assert r.status_code == 400
    with pytest.raises(ValueError):
        crm.set_faults(error_rate=2)
    r = requests.post(crm.base_url + "/_sandbox/clock", json={"advance_seconds": 0})
    assert r.json() == {"now": crm.now()}


# --------------------------------------------------------------------------- stats, lifecycle


def test_stats_by_route(fresh: SandboxCRM, http: requests.Session) -> None:
    rid = fresh.ids("Leads")[0]
    http.get(fresh.api_url + "Leads")
    http.get(fresh.api_url + f"Leads/{rid}")
    http.get(fresh.api_url + "Contacts")
    http.patch(fresh.api_url + f"Leads/{rid}", json={"status": "archived"})
    stats = requests.get(fresh.base_url + "/_sandbox/stats").json()
    assert stats["requests"] == 4
    assert stats["by_route"] == {
        "GET /api/v1/{module}": 2,
        "GET /api/v1/{module}/{id}": 1,
        "PATCH /api/v1/{module}/{id}": 1,
    }
    assert stats["records_served"] == 60 + 20 and stats["now"] == "2026-01-01T00:00:00Z"
    requests.post(fresh.base_url + "/_sandbox/stats/reset")
    assert fresh.stats()["requests"] == 0 and fresh.stats()["writes"] == {}


def test_stop_frees_the_port_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    crm = SandboxCRM(records=50)
    url = crm.start()
    port = int(url.rsplit(":", 1)[1])
    idle = requests.Session()  # an idle keep-alive connection must not keep a thread alive
    assert idle.get(url + "/api/v1/modules", headers={"X-API-Key": TOKEN}).ok
    started = time.perf_counter()
    crm.close()
    assert time.perf_counter() - started < 2
    idle.close()
    assert set(threading.enumerate()) <= before
    with socket.socket() as s:
        # free again: nothing listens (closed connections may linger in TIME_WAIT, which
        # SO_REUSEADDR allows, as the sandbox's own server sets it)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


# --------------------------------------------------------------------------- data


def test_same_seed_same_data_other_seed_other_data() -> None:
    with SandboxCRM(records=200, seed=7) as a, SandboxCRM(records=200, seed=7) as b:
        assert a.ids("Leads") == b.ids("Leads")
        assert [a.record("Leads", i) for i in a.ids("Leads")] == [
            b.record("Leads", i) for i in b.ids("Leads")
        ]
        with SandboxCRM(records=200, seed=8) as c:
            assert [a.record("Leads", i) for i in a.ids("Leads")[:10]] != [
                c.record("Leads", i) for i in c.ids("Leads")[:10]
            ]


def test_data_is_realistic(crm: SandboxCRM) -> None:
    leads = [crm.record("Leads", i) for i in crm.ids("Leads")]
    assert crm.count("Leads") == 120 and crm.count("Accounts") == 30
    cjk = re.compile(r"[\u4e00-\u9fff]")
    assert sum(bool(cjk.search(r["full_name"])) for r in leads) > 30
    assert sum(r["full_name"].isascii() for r in leads) > 20
    assert any(r["phone"].startswith("+86 1") for r in leads)
    assert any(r["phone"].startswith("+1 (") for r in leads)
    assert any(re.fullmatch(r"0\d{2,3}-\d{7,8}", r["phone"]) for r in leads)
    start = "2026-01-01T00:00:00Z"
    three_years_before = "2023-01-01T00:00:00Z"
    for r in leads:
        assert three_years_before <= r["created_at"] <= r["modified_at"] < start
        assert r["status"] in ("active", "archived", "voided")
        assert "@" in r["email"]
    statuses = {r["lead_status"] for r in leads}
    assert {"New", "Contacted", "Qualified"} <= statuses
    accounts = set(crm.ids("Accounts"))
    contacts = [crm.record("Contacts", i) for i in crm.ids("Contacts")]
    assert all(c["account_id"] in accounts for c in contacts)
    assert all(crm.record("Deals", i)["account_id"] in accounts for i in crm.ids("Deals"))


def test_near_duplicates_resemble_their_originals(crm: SandboxCRM) -> None:
    pairs = {m: crm.duplicates(m) for m in ("Leads", "Contacts", "Accounts")}
    total = sum(len(p) for p in pairs.values())
    assert 4 <= total <= 30  # ~5% of 240

    def norm(value: str) -> str:
        return re.sub(r"\W", "", str(value)).lower()[-10:]

    for module, dups in pairs.items():
        for dup_id, original_id in dups.items():
            dup, original = crm.record(module, dup_id), crm.record(module, original_id)
            assert int(original_id) < int(dup_id)
            same = [k for k in ("full_name", "name", "phone", "email") if k in dup]
            assert any(norm(dup[k]) == norm(original[k]) for k in same)
            assert dup != original


def test_generator_streams_and_splits_sizes() -> None:
    assert split_sizes(1001) == {"Leads": 401, "Contacts": 300, "Accounts": 100, "Deals": 200}
    stream = iter(RecordGenerator(1, split_sizes(1_000_000)))
    first = next(stream)  # lazy: nothing else was generated
    assert first.module == "Accounts" and first.data["id"].isdigit()
    with pytest.raises(ValueError):
        RecordGenerator(1, {"Tickets": 5})


def test_clock_start_moves_the_data() -> None:
    start = datetime(2020, 6, 1, tzinfo=UTC)
    with SandboxCRM(records=40, clock_start=start) as sandbox:
        assert sandbox.now() == "2020-06-01T00:00:00Z"
        leads = [sandbox.record("Leads", i) for i in sandbox.ids("Leads")]
        assert max(r["modified_at"] for r in leads) < "2020-06-01"
        assert min(r["created_at"] for r in leads) >= "2017-06-01"


# --------------------------------------------------------------------------- command


def test_python_m_sandbox_prints_its_url_first_and_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync.sandbox", "--port", "0", "--records", "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        r = requests.get(match.group(1) + "/api/v1/Leads", headers={"X-API-Key": TOKEN})
        assert r.json()["meta"]["total"] == 20
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_records_are_served_as_stored_json(crm: SandboxCRM, http: requests.Session) -> None:
    raw = http.get(crm.api_url + "Leads", params={"per_page": 3}).content.decode()
    assert "\\u" not in raw  # UTF-8, not escaped: what real Chinese CRMs send
    first = json.loads(raw)["data"][0]
    assert list(first)[:3] == ["id", "created_at", "modified_at"]
