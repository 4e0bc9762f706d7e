"""Zoho connector unit tests against a small purpose-built Zoho double (tests/http_fakes.py).

The full fake Zoho server (connectors/zoho/fake) runs the contract suite in
tests/test_zoho_contract.py; these tests pin single behaviours with exact request checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.errors import AuthError, ConnectorError, UnreachableError
from crmsync.hookspecs import SecretRef, StatusChange
from crmsync_connectors.zoho.connector import ZohoConnector, ZohoSession
from crmsync_connectors.zoho.datacentres import accounts_url, api_domain, for_environment
from crmsync_connectors.zoho.pull import field_groups, if_modified_since
from crmsync_connectors.zoho.settings import SETTINGS_SCHEMA, parse_settings
from tests.http_fakes import FakeClock, FakeServer, FakeSleep, Reply, Request, closed_port_url

SECRET = "client-secret-value-123"
REFRESH = "1000.refresh-token-value-456"
ACCESS = "1000.access-token-value-789"


def ref(value: str, path: str) -> SecretRef:
    return SecretRef(f"env:{path.upper()}", path, resolver=lambda r, p: value)


class MiniZoho:
    """Leads with ``n`` records and ``f`` text fields; page/page_token, 304, deleted, writes."""

    def __init__(self, n: int = 450, f: int = 60) -> None:
        self.fields = ["Modified_Time", "Record_Status"] + [f"F{i}" for i in range(f)]
        self.records = [
            {
                "id": str(4150868000000000000 + i),
                "Modified_Time": f"2024-05-01T{10 + i // 3600:02d}:{i // 60 % 60:02d}:"
                f"{i % 60:02d}+05:30",
                "Record_Status": "Active",
                **{name: f"{name}-{i}" for name in self.fields[2:]},
            }
            for i in range(n)
        ]
        self.token_status = 200
        self.token_body: dict[str, Any] = {
            "access_token": ACCESS,
            "api_domain": "",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        self.api_401: str | None = None  # code to answer every API call with
        self.deleted: list[str] = []
        self.reject: dict[str, str] = {}  # id -> code

    def __call__(self, req: Request) -> Reply:
        if req.path == "/oauth/v2/token":
            return Reply(self.token_status, self.token_body)
        if req.headers.get("authorization") != f"Zoho-oauthtoken {ACCESS}":
            return Reply(401, {"code": "INVALID_TOKEN", "details": {}, "status": "error"})
        if self.api_401:
            return Reply(401, {"code": self.api_401, "details": {}, "status": "error"})
        path = req.path.removeprefix("/crm/v8")
        if path == "/settings/modules":
            return Reply(200, {"modules": [{"api_name": "Leads", "api_supported": True}]})
        if path == "/settings/fields":
            return Reply(
                200, {"fields": [{"api_name": n, "data_type": "text"} for n in self.fields]}
            )
        if path == "/Leads/deleted":
            if not self.deleted:
                return Reply(204)
            data = [{"id": i, "type": "recycle"} for i in self.deleted]
            return Reply(200, {"data": data, "info": {"more_records": False}})
        if path == "/Leads" and req.method == "GET":
            return self._list(req)
        if path == "/Leads" and req.method == "PUT":
            return self._write([row["id"] for row in req.json()["data"]], "record updated")
        if path == "/Leads" and req.method == "DELETE":
            return self._write(req.query["ids"].split(","), "record deleted")
        return Reply(404, {"code": "INVALID_URL_PATTERN", "status": "error"})

    def _list(self, req: Request) -> Reply:
        fields = req.query["fields"].split(",")
        if len(fields) > 50:
            return Reply(400, {"code": "LIMIT_EXCEEDED", "details": {"limit": 50}})
        per_page = int(req.query["per_page"])
        rows = self.records
        since = req.headers.get("if-modified-since")
        if since:
            from crmsync_connectors.zoho.pull import parse_zoho_time

            cut = parse_zoho_time(since)
            rows = [r for r in rows if parse_zoho_time(r["Modified_Time"]) >= cut]
            if not rows:
                return Reply(304)
        if "page_token" in req.query:
            start = int(req.query["page_token"].removeprefix("tok"))
        else:
            page = int(req.query["page"])
            if page * per_page > 2000:
                return Reply(400, {"code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED"})
            start = (page - 1) * per_page
        chunk = rows[start : start + per_page]
        more = start + per_page < len(rows)
        data = [{"id": r["id"], **{k: r[k] for k in fields}} for r in chunk]
        info = {"more_records": more, "next_page_token": f"tok{start + per_page}" if more else None}
        return Reply(200, {"data": data, "info": info})

    def _write(self, ids: list[str], message: str) -> Reply:
        known = {r["id"] for r in self.records}
        items = []
        for rid in ids:
            if rid in self.reject or rid not in known:
                code = self.reject.get(rid, "INVALID_DATA")
                details = {"api_name": "Record_Status"} if rid in self.reject else {"id": rid}
                items.append(
                    {"code": code, "details": details, "message": "bad", "status": "error"}
                )
            else:
                details = {"id": rid, "Modified_Time": "2024-06-01T12:00:00+05:30"}
                items.append(
                    {"code": "SUCCESS", "details": details, "message": message, "status": "success"}
                )
        status = 200 if all(i["status"] == "success" for i in items) else 207
        return Reply(status, {"data": items})


@pytest.fixture
def zoho() -> Iterator[tuple[MiniZoho, FakeServer]]:
    mini = MiniZoho()
    with FakeServer(mini) as server:
        mini.token_body["api_domain"] = server.url.rstrip("/")
        yield mini, server


def settings(server_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "accounts_url": server_url.rstrip("/"),
        "client_id": "1000.CLIENTID",
        "client_secret": ref(SECRET, "client_secret"),
        "refresh_token": ref(REFRESH, "refresh_token"),
        "modules": ["Leads"],
        "status": {
            "mode": "field",
            "field": "Record_Status",
            "values": {"active": "Active", "archived": "Archived", "voided": "Void"},
        },
        **extra,
    }


def open_session(server_url: str, **extra: Any) -> ZohoSession:
    return ZohoConnector(sleep=FakeSleep(), clock=FakeClock()).open(
        "z", settings(server_url, **extra)
    )


# ---------------------------------------------------------------------- settings, datacentres


def test_schema_marks_secrets_and_rejects_unknown_keys() -> None:
    from jsonschema import Draft202012Validator

    props = SETTINGS_SCHEMA["properties"]
    assert props["client_secret"]["secret"] and props["refresh_token"]["secret"]
    validator = Draft202012Validator(SETTINGS_SCHEMA)
    base = {"client_id": "x", "client_secret": "env:A", "refresh_token": "env:B", "modules": ["L"]}
    assert not list(validator.iter_errors(base))
    assert list(validator.iter_errors({**base, "typo": 1}))
    assert list(validator.iter_errors({**base, "status": {"mode": "field"}}))
    assert list(validator.iter_errors({**base, "datacentre": "us"}))


def test_defaults_follow_the_edition() -> None:
    base = {"client_id": "x", "client_secret": "s", "refresh_token": "r", "modules": ["Leads"]}
    assert parse_settings(base).concurrency == 10
    assert parse_settings({**base, "edition": "free"}).concurrency == 5
    assert parse_settings({**base, "edition": "ultimate"}).concurrency == 25
    assert parse_settings({**base, "edition": "free", "concurrency": 2}).concurrency == 2
    parsed = parse_settings({**base, "datacentre": "ca"})
    assert parsed.accounts_url == "https://accounts.zohocloud.ca"
    assert parsed.page_size == 200


def test_datacentres_and_environments() -> None:
    assert accounts_url("eu") == "https://accounts.zoho.eu"
    assert api_domain("com.au", "sandbox") == "https://sandbox.zohoapis.com.au"
    assert (
        for_environment("https://www.zohoapis.in", "developer") == "https://developer.zohoapis.in"
    )
    assert for_environment("http://127.0.0.1:9", "sandbox") == "http://127.0.0.1:9"


def test_field_groups_and_header_time() -> None:
    groups = field_groups(["id", "A", *[f"F{i}" for i in range(120)], "A"])
    assert [len(g) for g in groups] == [50, 50, 21] and groups[0][0] == "A"
    assert if_modified_since("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00+00:00"


# ---------------------------------------------------------------------- pull


def test_full_pull_merges_field_groups_and_counts_calls(zoho) -> None:
    _mini, server = zoho
    session = open_session(server.url)
    pages = list(session.pull("Leads"))
    records = [r for p in pages for r in p.records]
    assert len(records) == 450 and len({r.id for r in records}) == 450
    # 62 fields -> 2 groups; 450 records -> 3 pages: 6 record calls
    assert sum(p.api_calls for p in pages) == 6 == session.stats()["record_calls"]
    assert session.stats()["metadata_calls"] == 2
    first = records[0]
    assert first.data["F59"] == "F59-0" and first.data["F0"] == "F0-0"
    assert first.modified_at == "2024-05-01T04:30:00Z" and first.status == "active"
    assert all(p.checkpoint for p in pages)
    # the server's clock is long past the newest record: the final cursor moves 1 s on
    assert pages[-2].checkpoint == records[399].modified_at == "2024-05-01T04:36:39Z"
    assert records[-1].modified_at == "2024-05-01T04:37:29Z"
    assert pages[-1].checkpoint == "2024-05-01T04:37:30Z"  # newest + 1 s
    assert all(
        len(r.query["fields"].split(",")) <= 50 for r in server.requests if "fields" in r.query
    )
    session.close()


def test_pull_crosses_the_2000_boundary_with_page_tokens(zoho) -> None:
    mini, server = zoho
    mini.__init__(n=2450, f=3)  # type: ignore[misc]
    mini.token_body["api_domain"] = server.url.rstrip("/")
    session = open_session(server.url)
    ids = [r.id for p in session.pull("Leads") for r in p.records]
    assert len(ids) == 2450 == len(set(ids))
    lists = [r for r in server.requests if r.path == "/crm/v8/Leads"]
    assert [r.query.get("page") for r in lists[:10]] == [str(i) for i in range(1, 11)]
    assert all("page_token" in r.query and "page" not in r.query for r in lists[10:])


def test_incremental_pull_304_and_deletions(zoho) -> None:
    mini, server = zoho
    session = open_session(server.url)
    checkpoint = list(session.pull("Leads"))[-1].checkpoint
    mini.deleted = ["4150868000000000007"]
    before = len(server.requests)
    pages = list(session.pull("Leads", since=checkpoint))
    assert len(server.requests) - before == 2  # one 304 (not one per field group) + deleted
    assert [i for p in pages for i in p.deleted_ids] == ["4150868000000000007"]
    assert pages[-1].checkpoint == checkpoint
    sent = [r for r in server.requests[before:] if r.path == "/crm/v8/Leads"]
    assert sent[0].headers["if-modified-since"].endswith("+00:00")
    assert sent[0].query["sort_by"] == "Modified_Time" and sent[0].query["sort_order"] == "asc"


def test_field_groups_that_disagree_fail_clearly(zoho) -> None:
    mini, server = zoho
    original = mini._list

    def skewed(req: Request) -> Reply:
        reply = original(req)
        if "F59" in req.query["fields"] and reply.body:
            reply.body["data"] = reply.body["data"][1:]
        return reply

    mini._list = skewed  # type: ignore[method-assign]
    session = open_session(server.url)
    with pytest.raises(ConnectorError, match="field group 2 returned different records"):
        list(session.pull("Leads"))


def test_field_groups_that_disagree_once_are_asked_again(zoho) -> None:
    mini, server = zoho
    original = mini._list
    skews = {"left": 1}

    def skewed(req: Request) -> Reply:
        reply = original(req)
        if "F59" in req.query["fields"] and reply.body and skews["left"]:
            skews["left"] -= 1
            reply.body["data"] = reply.body["data"][1:]
        return reply

    mini._list = skewed  # type: ignore[method-assign]
    session = open_session(server.url)
    ids = [r.id for p in session.pull("Leads") for r in p.records]
    assert len(ids) == len(set(ids)) == 450


def test_unknown_module_and_field_are_named(zoho) -> None:
    _mini, server = zoho
    session = open_session(server.url, modules=["Leads", "Leeds"])
    with pytest.raises(ConnectorError, match="no module 'Leeds'"):
        session.list_modules()
    session = open_session(server.url, modules=[{"name": "Leads", "fields": ["Nope"]}])
    with pytest.raises(ConnectorError, match=r"unknown field.*Nope"):
        list(session.pull("Leads"))


# ---------------------------------------------------------------------- auth


def test_token_api_domain_is_used_and_token_cached(zoho) -> None:
    _mini, server = zoho
    session = ZohoConnector(sleep=FakeSleep(), clock=FakeClock()).open(
        "z", {**settings(server.url)}
    )
    assert "auth ok" in session.check()
    list(session.pull("Leads"))
    assert server.count("/oauth/v2/token") == 1
    token_req = next(r for r in server.requests if r.path == "/oauth/v2/token")
    assert token_req.form()["grant_type"] == "refresh_token"


def test_old_expires_in_milliseconds_form_is_read(zoho) -> None:
    mini, server = zoho
    mini.token_body.update({"expires_in": 3600000, "expires_in_sec": 3600})
    clock = FakeClock()
    session = ZohoConnector(sleep=FakeSleep(), clock=clock).open("z", settings(server.url))
    session.check()
    clock.now += 3000  # well inside an hour: no new token
    session.list_modules()
    assert server.count("/oauth/v2/token") == 1
    clock.now += 600  # past the refresh margin
    session.metadata._fields.clear()
    session.list_modules()
    assert server.count("/oauth/v2/token") == 2


def test_revoked_refresh_token_says_how_to_reauthorise(zoho) -> None:
    mini, server = zoho
    mini.token_body = {"error": "invalid_code"}
    session = open_session(server.url)
    with pytest.raises(AuthError) as err:
        session.check()
    assert "crmsync auth zoho z" in str(err.value)
    assert REFRESH not in str(err.value) and SECRET not in str(err.value)


def test_scope_mismatch_names_the_scope_without_refreshing(zoho) -> None:
    mini, server = zoho
    mini.api_401 = "OAUTH_SCOPE_MISMATCH"
    session = open_session(server.url)
    with pytest.raises(AuthError, match=r"ZohoCRM\.settings\.modules\.READ"):
        session.check()
    assert server.count("/oauth/v2/token") == 1


def test_token_requests_stay_under_zohos_limit(zoho) -> None:
    mini, server = zoho
    mini.api_401 = "INVALID_TOKEN"  # every token is refused: refresh, retry, give up
    session = open_session(server.url)
    for _ in range(9):  # 2 token requests on the first call, then 1 per call
        with pytest.raises(AuthError):
            session.metadata._modules = None
            session.check()
    with pytest.raises(AuthError, match="10 access tokens per refresh token per 10 minutes"):
        session.check()
    assert server.count("/oauth/v2/token") == 10


def test_unreachable_accounts_server_is_named() -> None:
    url = closed_port_url()
    session = open_session(url, max_retries=1)
    with pytest.raises(UnreachableError) as err:
        session.check()
    assert "127.0.0.1" in str(err.value) and "accounts server" in str(err.value)
    assert "connection 'z'" in str(err.value)
    assert SECRET not in str(err.value) and REFRESH not in repr(err.value)


# ---------------------------------------------------------------------- write-back


def test_push_maps_per_record_codes_and_picklist_rejection(zoho) -> None:
    mini, server = zoho
    ids = [r["id"] for r in mini.records[:5]]
    mini.reject = {ids[0]: "INVALID_DATA", ids[1]: "TOO_MANY_REQUESTS"}
    session = open_session(server.url, trigger=["workflow"])
    results = session.push("Leads", [StatusChange(i, "archive") for i in ids])
    by_id = {r.record_id: r for r in results}
    assert len(results) == 5
    assert by_id[ids[0]].error.startswith("INVALID_DATA (Record_Status)")
    assert not by_id[ids[0]].retryable and by_id[ids[1]].retryable
    assert by_id[ids[2]].ok and by_id[ids[2]].modified_at == "2024-06-01T06:30:00Z"
    put = next(r for r in server.requests if r.method == "PUT")
    assert put.json()["trigger"] == ["workflow"]
    assert put.json()["data"][2] == {"id": ids[2], "Record_Status": "Archived"}


def test_push_batches_of_100_and_update_and_restore(zoho) -> None:
    mini, server = zoho
    ids = [r["id"] for r in mini.records[:250]]
    session = open_session(server.url)
    results = session.push("Leads", [StatusChange(i, "restore") for i in ids])
    assert all(r.ok for r in results) and len(results) == 250
    puts = [r.json()["data"] for r in server.requests if r.method == "PUT"]
    assert [len(p) for p in puts] == [100, 100, 50]
    assert puts[0][0]["Record_Status"] == "Active"
    session.push("Leads", [StatusChange(ids[0], "update", fields={"F1": "x"})])
    last = [r for r in server.requests if r.method == "PUT"][-1].json()
    assert last["data"] == [{"id": ids[0], "F1": "x"}] and last["trigger"] == []


def test_unsupported_action_and_no_status_config(zoho) -> None:
    _mini, server = zoho
    session = ZohoConnector(sleep=FakeSleep()).open(
        "z", {k: v for k, v in settings(server.url).items() if k != "status"}
    )
    with pytest.raises(ConnectorError, match="status"):
        session.push("Leads", [StatusChange("1", "archive")])


def test_delete_reports_each_record(zoho) -> None:
    mini, server = zoho
    ids = [r["id"] for r in mini.records[:3]]
    session = open_session(server.url)
    results = session.delete("Leads", [*ids, "999"])
    assert [r.ok for r in results] == [True, True, True, False]
    sent = next(r for r in server.requests if r.method == "DELETE")
    assert sent.query["wf_trigger"] == "false"


def test_credits_floor_stops_cleanly(zoho) -> None:
    _mini, server = zoho
    session = open_session(server.url, min_credits_remaining=500)
    session.api.credits_remaining = 400
    with pytest.raises(ConnectorError, match="credits"):
        list(session.pull("Leads"))


def test_access_denied_with_http_200_is_a_throttle_message(zoho) -> None:
    mini, server = zoho
    mini.token_body = {"error": "Access Denied", "error_description": "too many requests"}
    session = open_session(server.url)
    with pytest.raises(ConnectorError, match="throttled token requests"):
        session.check()
    assert server.count("/oauth/v2/token") == 1


def test_429_backs_off_exponentially_with_jitter_without_retry_after(zoho) -> None:
    mini, server = zoho
    original = mini.__call__
    left = {"n": 3}

    def handler(req: Request) -> Reply:
        if req.path.startswith("/crm/") and left["n"]:
            left["n"] -= 1
            return Reply(429, {"code": "TOO_MANY_REQUESTS", "status": "error"})
        return original(req)

    server.handler = handler
    sleep = FakeSleep()
    session = ZohoConnector(sleep=sleep, clock=FakeClock()).open(
        "z", settings(server.url, backoff_base=1.0)
    )
    session.check()
    assert len(sleep.waits) == 3
    assert [int(w) for w in sleep.waits] == [1, 2, 4]  # base * 2^n + jitter in [0, base)
