"""The generic REST connector against a purpose-built fake CRM on 127.0.0.1 (and the sandbox).

The fake speaks the sandbox's API shape (API.md) with knobs for the failure each test needs,
so these tests do not depend on the sandbox; the sandbox section at the end runs when it exists.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from crmsync.errors import (
    AuthError,
    BadResponseError,
    ConfigError,
    ConnectorError,
    UnreachableError,
)
from crmsync.hookspecs import Connector, ConnectorSession, SecretRef, StatusChange
from crmsync.sandbox.connection import sandbox_connection_settings, sandbox_connection_toml
from crmsync_connectors.rest import RestConnector
from crmsync_connectors.rest.templates import TemplateError, render
from tests.http_fakes import FakeServer, FakeSleep, Reply, Request, closed_port_url

TOKEN = "fake-crm-token-XYZ"
PAGINATORS = ["page_number", "offset", "cursor", "next_url", "link_header"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCRM:
    """Sandbox-shaped API: /api/v1/{module} listing in every paging style, batch writes."""

    def __init__(self, records: int = 250, *, total: bool = True, delay: float = 0.0) -> None:
        # Modified times: two records per second so sorted order has ties to get right.
        self.records = {
            "Leads": [
                {
                    "id": str(1000 + n),
                    "modified_at": iso(START + timedelta(seconds=n // 2)),
                    "status": "active",
                    "name": f"lead {n}",
                }
                for n in range(records)
            ]
        }
        self.total = total
        self.delay = delay
        self.fail_ids: set[str] = set()
        self.omit_results: set[str] = set()
        self.next_replies: list[Reply] = []
        self.deleted: list[dict[str, str]] = []
        self.writes: dict[str, int] = {}
        self.batches: list[int] = []
        self._lock = threading.Lock()

    # -- helpers for tests
    def ids(self, module: str = "Leads") -> set[str]:
        return {r["id"] for r in self.records[module]}

    def touch(self, ids: list[str], when: datetime) -> None:
        for r in self.records["Leads"]:
            if r["id"] in ids:
                r["modified_at"] = iso(when)

    # -- the API
    def __call__(self, req: Request) -> Reply:
        with self._lock:
            if self.next_replies:
                return self.next_replies.pop(0)
        if req.headers.get("authorization") != f"Bearer {TOKEN}" and (
            req.query.get("api_key") != TOKEN
        ):
            return Reply(401, {"error": {"code": "INVALID_TOKEN", "message": "bad token"}})
        parts = req.path.removeprefix("/api/v1/").split("/")
        module = parts[0]
        if module not in self.records:
            return Reply(404, {"error": {"code": "NOT_FOUND"}})
        rest = parts[1:]
        if req.method == "GET" and not rest:
            return self._list(req, module)
        if req.method == "GET" and rest == ["deleted"]:
            since = req.query.get("since", "")
            return Reply(body={"data": [d for d in self.deleted if d["deleted_at"] >= since]})
        if req.method == "POST" and rest == ["batch"]:
            return self._batch(module, req.json()["records"])
        if req.method == "POST" and rest == ["batch-delete"]:
            return self._batch(module, [{"id": i, "delete": True} for i in req.json()["ids"]])
        if req.method in ("PATCH", "DELETE") and len(rest) == 1:
            item = {"id": rest[0], **(req.json() or {})}
            if req.method == "DELETE":
                item["delete"] = True
            result = self._write(module, item)
            if result["ok"]:
                return Reply(204) if req.method == "DELETE" else Reply(body={"data": result})
            code = result["error"]
            return Reply(404 if code == "NOT_FOUND" else 400, {"error": {"code": code}})
        return Reply(405, {"error": {"code": "METHOD"}})

    def _list(self, req: Request, module: str) -> Reply:
        q = req.query
        rows = self.records[module]
        if "modified_since" in q:
            since = q["modified_since"]
            if since.isdigit():  # epoch millis
                since = iso(datetime.fromtimestamp(int(since) / 1000, UTC))
            rows = [r for r in rows if r["modified_at"] >= since]
        if q.get("sort") == "modified_at":
            rows = sorted(rows, key=lambda r: (r["modified_at"], int(r["id"])))
        size = int(q.get("per_page") or q.get("limit") or 100)
        if "page" in q:
            start = (int(q["page"]) - 1) * size
        elif "offset" in q:
            start = int(q["offset"])
        else:
            start = int(q.get("cursor") or 0)
        chunk = rows[start : start + size]
        more = start + size < len(rows)
        nxt = dict(q)
        nxt.pop("page", None)
        nxt.pop("offset", None)
        nxt["cursor"] = str(start + size)
        host = req.headers["host"]
        next_url = (
            f"http://{host}{req.path}?" + "&".join(f"{k}={v}" for k, v in nxt.items())
            if more
            else None
        )
        meta: dict[str, Any] = {"next_cursor": str(start + size) if more else None}
        if self.total:
            meta["total"] = len(rows)
        headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
        return Reply(
            body={"data": copy.deepcopy(chunk), "meta": meta, "links": {"next": next_url}},
            headers=headers,
            delay=self.delay,
        )

    def _write(self, module: str, item: dict[str, Any]) -> dict[str, Any]:
        rid = str(item["id"])
        with self._lock:
            if rid in self.fail_ids:
                return {"id": rid, "ok": False, "error": "WRITE_REJECTED"}
            for r in self.records[module]:
                if r["id"] == rid:
                    self.writes[rid] = self.writes.get(rid, 0) + 1
                    if item.get("delete"):
                        self.records[module].remove(r)
                        return {"id": rid, "ok": True}
                    r.update({k: v for k, v in item.items() if k != "id"})
                    r["modified_at"] = "2030-01-01T00:00:00Z"
                    return {"id": rid, "ok": True, "modified_at": r["modified_at"]}
            return {"id": rid, "ok": False, "error": "NOT_FOUND"}

    def _batch(self, module: str, items: list[dict[str, Any]]) -> Reply:
        if len(items) > 100:
            return Reply(400, {"error": {"code": "LIMIT_EXCEEDED", "message": "max 100"}})
        self.batches.append(len(items))
        results = [self._write(module, item) for item in items]
        return Reply(body={"results": [r for r in results if r["id"] not in self.omit_results]})


def token_ref(value: str = TOKEN, path: str = "auth.token") -> SecretRef:
    return SecretRef("env:CRM_TOKEN", path, resolver=lambda r, p: value)


def settings_for(url: str, paginator: str = "page_number", **overrides: Any) -> dict[str, Any]:
    """The sandbox settings pointed at a fake, with secrets as SecretRefs (as the core does)."""
    settings = sandbox_connection_settings(url + "api/v1/", paginator=paginator, page_size=50)
    settings["auth"]["token"] = token_ref()
    settings["modules"] = {"Leads": {"path": "Leads"}}
    settings.update(overrides)
    return settings


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def connector(sleep: FakeSleep) -> RestConnector:
    return RestConnector(sleep=sleep)


def serve(crm: FakeCRM) -> FakeServer:
    return FakeServer(crm)


def drain(session: ConnectorSession, module: str = "Leads", since: str | None = None) -> list:
    return list(session.pull(module, since=since))


def ids_of(pages: list) -> list[str]:
    return [r.id for p in pages for r in p.records]


def list_calls(server: FakeServer) -> int:
    return server.count("/api/v1/Leads", "GET")


# ---------------------------------------------------------------------------- the plugin


def test_plugin_registers_a_connector_satisfying_the_contract():
    from crmsync_connectors.rest import plugin

    got: list[Any] = []
    plugin.crmsync_register_connectors(register=got.append)
    (connector,) = got
    assert isinstance(connector, Connector) and connector.name == "rest"
    schema = connector.settings_schema()
    Draft202012Validator.check_schema(schema)
    documented = {s.name for s in connector.settings()}
    assert set(schema["properties"]) <= documented
    assert {s.name for s in connector.settings() if s.secret} >= {"auth.token", "auth.password"}


# ---------------------------------------------------------------------------- schema


def errors(settings: dict[str, Any]) -> list[tuple[str, str]]:
    validator = Draft202012Validator(RestConnector().settings_schema())
    return [
        (".".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(settings)
    ]


@pytest.mark.parametrize("paginator", PAGINATORS)
def test_schema_accepts_the_sandbox_settings(paginator):
    assert (
        errors(sandbox_connection_settings("http://127.0.0.1:1/api/v1/", paginator=paginator)) == []
    )


def _bad(mutate) -> list[tuple[str, str]]:
    settings = sandbox_connection_settings("http://127.0.0.1:1/api/v1/")
    mutate(settings)
    return errors(settings)


@pytest.mark.parametrize(
    ("mutate", "where", "what"),
    [
        (lambda s: s.update(base_ulr="x"), "", "'base_ulr' was unexpected"),
        (lambda s: s.pop("modules"), "", "'modules' is a required property"),
        (lambda s: s.update(base_url="ftp://x"), "base_url", "does not match"),
        (lambda s: s["auth"].update(type="magic"), "auth.type", "is not one of"),
        (lambda s: s["auth"].pop("token"), "auth", "'token' is a required property"),
        (lambda s: s["auth"].update(key="env:K"), "auth", "'key' was unexpected"),
        (lambda s: s.update(auth={"type": "api_key", "key": "env:K"}), "auth", "'name' is a"),
        (lambda s: s["paginator"].update(type="cursor"), "paginator", "'total_path' were unexp"),
        (lambda s: s["paginator"].update(page_parm="p"), "paginator", "'page_parm' was unexp"),
        (lambda s: s.update(concurrency=0), "concurrency", "less than the minimum"),
        (lambda s: s["incremental"].pop("sort_value"), "incremental", "'sort_value' is a dep"),
        (lambda s: s["module_defaults"].update(modified_format="rfc"), "module_defaults", ""),
        (lambda s: s["operations"].update(teleport={"path": "x"}), "operations", "'teleport'"),
        (lambda s: s["operations"]["archive"].update(methd="PUT"), "operations.archive", "'methd'"),
        (lambda s: s["modules"]["Leads"].update(pth="x"), "modules.Leads", "'pth' was unexpected"),
        (lambda s: s["modules"]["Leads"].update(actions=["fly"]), "modules.Leads.actions.0", ""),
        (lambda s: s.update(modules={}), "modules", "should be non-empty"),
    ],
)
def test_schema_rejects_bad_configs_naming_the_key(mutate, where, what):
    found = _bad(mutate)
    assert found, "expected a validation error"
    assert any(path.startswith(where) and what in message for path, message in found), found


def test_schema_marks_secrets():
    auth = RestConnector().settings_schema()["properties"]["auth"]["properties"]
    secret = {k for k, v in auth.items() if v.get("secret")}
    assert secret == {"token", "key", "password", "client_secret", "refresh_token"}


@pytest.mark.parametrize(
    ("op", "where", "what"),
    [
        (
            {"path": "{module}/batch", "body": {"records": "{records}", "x": "{nope}"}},
            "body.x",
            "nope",
        ),
        ({"path": "{module}/{id}", "item": {"id": "{id}"}}, "item", "batch body"),
        (
            {"path": "{module}/batch", "body": {"ids": "{ids}"}, "item": {"a": 1}},
            "item",
            "{records}",
        ),
        (
            {"path": "{module}/batch", "body": {"r": "{records}"}, "item": {"x": "{ids}"}},
            "item.x",
            "",
        ),
        ({"path": "{module}/batch/{id}", "body": {"ids": "{ids}"}}, "path", "{id}"),
    ],
)
def test_open_rejects_bad_templates_naming_the_key(connector, op, where, what):
    settings = settings_for("http://127.0.0.1:1/")
    settings["operations"] = {"archive": op}
    with pytest.raises(ConfigError) as info:
        connector.open("crm", settings)
    assert info.value.path == f"connections.crm.operations.archive.{where}"
    assert what in str(info.value)


def test_open_refuses_a_literal_secret(connector):
    settings = settings_for("http://127.0.0.1:1/")
    settings["auth"]["token"] = "literal-token"
    with pytest.raises(ConfigError, match="secret reference") as info:
        connector.open("crm", settings)
    assert "literal-token" not in str(info.value)


def test_templates_keep_types_and_refuse_attribute_access():
    look = {"records": [{"id": 1}], "id": "a/b", "module": "Leads"}.__getitem__

    def lookup(name: str) -> Any:
        try:
            return look(name)
        except KeyError:
            raise TemplateError(name) from None

    assert render({"records": "{records}"}, lookup) == {"records": [{"id": 1}]}
    assert render("{module}/{id}", lookup, url=True) == "Leads/a%2Fb"
    assert render("{0} {x[1]} {a b}", lookup) == "{0} {x[1]} {a b}"  # not placeholders
    with pytest.raises(TemplateError):  # looked up by its literal name: no attribute access
        render("{module.__class__}", lookup)
    with pytest.raises(TemplateError):
        render("{nope}", lookup)


# ---------------------------------------------------------------------------- pull


@pytest.mark.parametrize("records", [250, 251, 0])
@pytest.mark.parametrize("paginator", PAGINATORS)
def test_every_paginator_returns_every_record_once_with_exact_calls(connector, paginator, records):
    crm = FakeCRM(records)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url, paginator))
        pages = drain(session)
        session.close()
    got = ids_of(pages)
    assert len(got) == len(set(got)) and set(got) == crm.ids()
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert all(len(p.records) <= 50 for p in pages)
    expected = max(1, math.ceil(records / 50))
    assert list_calls(srv) == expected  # total known / next link absent on the last page
    assert sum(p.api_calls for p in pages) == expected


@pytest.mark.parametrize("records", [250, 251])
@pytest.mark.parametrize("paginator", ["page_number", "offset"])
def test_without_a_total_pages_stop_on_a_short_page(connector, paginator, records):
    crm = FakeCRM(records, total=False)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url, paginator))
        got = ids_of(drain(session))
    assert sorted(got) == sorted(crm.ids())
    # N a multiple of the page size costs one extra (empty) request, never more
    assert list_calls(srv) == records // 50 + 1


def test_single_page(connector):
    crm = FakeCRM(30)
    with serve(crm) as srv:
        s = settings_for(srv.url, paginator="page_number")
        s["paginator"] = {"type": "single_page"}
        pages = drain(connector.open("crm", s))
    assert len(pages) == 1 and len(pages[0].records) == 30 and list_calls(srv) == 1


def test_records_are_normalised(connector):
    crm = FakeCRM(3)
    crm.records["Leads"][0]["modified_at"] = "2024-05-01T14:00:00+02:00"
    crm.records["Leads"][1]["id"] = 77  # numeric ids become strings
    with serve(crm) as srv:
        (page,) = drain(connector.open("crm", settings_for(srv.url)))
    first = next(r for r in page.records if r.data["name"] == "lead 0")
    assert first.modified_at == "2024-05-01T12:00:00Z"
    assert "77" in {r.id for r in page.records}
    assert page.total == 3


def test_pages_are_fetched_concurrently_and_yielded_in_order(connector):
    crm = FakeCRM(400, delay=0.05)
    with serve(crm) as srv:
        s = settings_for(srv.url, concurrency=4)
        s["incremental"] = {"param": "modified_since"}  # unsorted: id order
        pages = drain(connector.open("crm", s))
    assert 1 < srv.max_in_flight <= 4  # overlapped, never above the limit
    assert [p.number for p in pages] == list(range(1, 9))
    assert [int(i) for i in ids_of(pages)] == list(range(1000, 1400))  # strictly in order
    assert list_calls(srv) == 8


def test_parallel_pull_buffers_a_bounded_number_of_pages(connector):
    crm = FakeCRM(1000, delay=0.01)
    with serve(crm) as srv:
        pull = connector.open("crm", settings_for(srv.url, concurrency=3)).pull("Leads")
        next(pull)
        next(pull)
        pull.close()  # the consumer stops: queued pages are cancelled
        fetched = list_calls(srv)
    # two pages consumed, at most 2 x concurrency requested ahead, one more being replaced
    assert fetched <= 2 + 2 * 3 + 1


def test_api_that_caps_page_size_loses_nothing(connector):
    crm = FakeCRM(120)
    original = crm._list

    def capped(req: Request, module: str) -> Reply:
        req.query["per_page"] = str(min(int(req.query.get("per_page", 100)), 20))
        return original(req, module)

    crm._list = capped  # type: ignore[method-assign]
    with serve(crm) as srv:
        s = settings_for(srv.url, concurrency=2)
        got = ids_of(drain(connector.open("crm", s)))
    assert sorted(got) == sorted(crm.ids()) and len(got) == 120


def test_sorted_pull_checkpoints_every_page_and_resumes_without_loss(connector):
    crm = FakeCRM(250)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url, concurrency=2))
        pages = drain(session)
        checkpoints = [p.checkpoint for p in pages]
        assert all(checkpoints) and checkpoints == sorted(checkpoints)
        assert checkpoints[-1] == max(r["modified_at"] for r in crm.records["Leads"])
        assert srv.requests[0].query["sort"] == "modified_at"
        # crash after page 2, resume from its checkpoint: nothing is skipped
        seen = set(ids_of(pages[:2]))
        rest = set(ids_of(drain(session, since=pages[1].checkpoint)))
        assert seen | rest == crm.ids()
        assert len(rest) <= 250 - 100 + 2  # only the boundary second is re-read


def test_unsorted_pull_checkpoints_only_the_final_page(connector):
    crm = FakeCRM(120)
    with serve(crm) as srv:
        s = settings_for(srv.url)
        s["incremental"] = {"param": "modified_since"}
        session = connector.open("crm", s)
        pages = drain(session)
        assert [p.checkpoint for p in pages[:-1]] == [None, None]
        assert pages[-1].checkpoint == "2024-01-01T00:00:59Z"
        # nothing new: the cursor stays put, one cheap call
        before = list_calls(srv)
        again = drain(session, since="2030-01-01T00:00:00Z")
        assert ids_of(again) == [] and again[-1].checkpoint == "2030-01-01T00:00:00Z"
        assert list_calls(srv) - before == 1


def test_incremental_pull_gets_what_changed_and_deletions(connector):
    crm = FakeCRM(250)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url))
        checkpoint = drain(session)[-1].checkpoint
        crm.touch(["1003", "1100"], START + timedelta(days=1))
        crm.deleted.append({"id": "1200", "deleted_at": iso(START + timedelta(days=1))})
        pages = drain(session, since=checkpoint)
    got = set(ids_of(pages))
    assert {"1003", "1100"} <= got and len(got) <= 4
    assert list(pages[-1].deleted_ids) == ["1200"]
    assert pages[-1].checkpoint == iso(START + timedelta(days=1))
    assert srv.requests[-2].query["modified_since"] == checkpoint


def test_incremental_cursor_formats(connector):
    crm = FakeCRM(10)
    with serve(crm) as srv:
        s = settings_for(srv.url)
        s["incremental"] = {"param": "modified_since", "format": "epoch_millis"}
        s.pop("deleted")
        drain(connector.open("crm", s), since="2024-01-01T00:00:03Z")
    assert srv.requests[-1].query["modified_since"] == str(int(START.timestamp() + 3) * 1000)


def test_module_without_modified_field_is_always_full(connector):
    crm = FakeCRM(60)
    with serve(crm) as srv:
        s = settings_for(srv.url)
        s["modules"]["Leads"]["modified_field"] = ""
        session = connector.open("crm", s)
        pages = drain(session, since="2030-01-01T00:00:00Z")
        (info,) = session.list_modules()
    assert len(ids_of(pages)) == 60 and all(p.checkpoint is None for p in pages)
    assert "modified_since" not in srv.requests[0].query and info.modified_field is None


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(body='{"data": [{"id": '), "malformed JSON"),
        (Reply(body={"items": []}), "no record list at records_path 'data'"),
        (Reply(body={"data": {"id": 1}}), "'data' is a dict, not a list"),
        (Reply(body={"data": [{"id": "1"}, {"name": "no id"}]}), "record #2 has no id field 'id'"),
        (Reply(body={"data": [{"id": "1", "modified_at": "yesterday"}]}), "cannot read"),
    ],
)
def test_bad_pages_name_connection_module_and_page(connector, reply, message):
    crm = FakeCRM(120, total=False)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url))
        pull = session.pull("Leads")
        next(pull)
        next(pull)
        crm.next_replies.append(reply)
        with pytest.raises(BadResponseError) as info:
            next(pull)
    text = str(info.value)
    assert "connection 'crm', module 'Leads', page 3" in text and message in text


def test_retries_are_invisible_but_counted(connector, sleep):
    crm = FakeCRM(60)
    crm.next_replies += [Reply(503), Reply(429, headers={"Retry-After": "2"})]
    with serve(crm) as srv:
        pages = drain(connector.open("crm", settings_for(srv.url)))
    assert len(ids_of(pages)) == 60
    assert pages[0].api_calls == 3 and sleep.waits[1] == 2


def test_retries_exhausted_is_a_clear_error(connector, sleep):
    crm = FakeCRM(60)
    crm.next_replies += [Reply(503)] * 3
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url, max_retries=2))
        with pytest.raises(ConnectorError, match="HTTP 503 after 3 attempts") as info:
            drain(session)
    assert "module 'Leads', page 1" in str(info.value) and len(sleep.waits) == 2


# ---------------------------------------------------------------------------- auth / check


def test_check_and_auth_errors(connector):
    crm = FakeCRM(42)
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url))
        assert session.check() == f"reached {srv.url}api/v1/, auth ok (Leads: 42 records)"
        assert srv.requests[-1].query["per_page"] == "1"
        bad = settings_for(srv.url)
        bad["auth"] = {
            "type": "api_key",
            "name": "api_key",
            "location": "query",
            "key": token_ref("wrong-secret-value", "auth.key"),
        }
        with pytest.raises(AuthError) as info:
            connector.open("crm", bad).check()
    assert "INVALID_TOKEN" in str(info.value)
    for text in (str(info.value), repr(info.value)):
        assert "wrong-secret-value" not in text


def test_unreachable_crm(connector):
    session = connector.open("crm", settings_for(closed_port_url(), max_retries=1))
    with pytest.raises(UnreachableError, match="connection refused") as info:
        session.check()
    assert TOKEN not in str(info.value)


def test_oauth2_refresh_token_through_config(connector):
    crm = FakeCRM(10)
    issued: list[str] = []

    def handler(req: Request) -> Reply:
        if req.path == "/oauth/token":
            form = req.form()
            if form.get("refresh_token") != "the-refresh-token":
                return Reply(400, {"error": "invalid_grant"})
            issued.append(form["grant_type"])
            return Reply(body={"access_token": TOKEN, "expires_in": 3600})
        return crm(req)

    with FakeServer(handler) as srv:
        s = settings_for(srv.url)
        s["auth"] = {
            "type": "oauth2_refresh_token",
            "token_url": srv.url + "oauth/token",
            "client_id": "cid",
            "client_secret": token_ref("client-secret", "auth.client_secret"),
            "refresh_token": token_ref("the-refresh-token", "auth.refresh_token"),
        }
        assert len(ids_of(drain(connector.open("crm", s)))) == 10
        s["auth"]["refresh_token"] = token_ref("revoked-value", "auth.refresh_token")
        with pytest.raises(AuthError, match="Re-authorise") as info:
            drain(connector.open("crm", s))
    assert issued == ["refresh_token"]
    assert "revoked-value" not in str(info.value) and "client-secret" not in str(info.value)


def test_limits_and_modules(connector):
    s = settings_for("http://127.0.0.1:1/", concurrency=3, requests_per_second=5)
    s["operations"]["void"]["batch_size"] = 40
    s["modules"]["Deals"] = {"page_size": 20, "actions": ["archive", "restore"]}
    session = connector.open("crm", s)
    limits = session.limits()
    assert (limits.page_size, limits.batch_size, limits.concurrency) == (20, 40, 3)
    assert limits.requests_per_second == 5
    modules = {m.name: m for m in session.list_modules()}
    assert modules["Leads"].actions == ("archive", "void", "restore", "purge", "tag", "update")
    assert modules["Deals"].actions == ("archive", "restore")
    assert modules["Leads"].id_field == "id" and modules["Leads"].modified_field == "modified_at"
    session.close()


# ---------------------------------------------------------------------------- push / delete


def test_batch_push_with_partial_failures(connector):
    crm = FakeCRM(20)
    crm.fail_ids = {"1001"}
    crm.omit_results = {"1002"}
    with serve(crm) as srv:
        session = connector.open("crm", settings_for(srv.url))
        changes = [StatusChange(str(1000 + n), "archive", {"reason": "old"}) for n in range(5)]
        changes.append(StatusChange("999", "archive"))
        results = session.push("Leads", changes)
    assert [r.record_id for r in results] == [c.record_id for c in changes]
    by_id = {r.record_id: r for r in results}
    assert by_id["1000"].ok and by_id["1000"].modified_at == "2030-01-01T00:00:00Z"
    assert (by_id["1001"].ok, by_id["1001"].error) == (False, "WRITE_REJECTED")
    assert (by_id["1002"].ok, by_id["1002"].error) == (False, "NO_RESULT")
    assert (by_id["999"].ok, by_id["999"].error) == (False, "NOT_FOUND")
    body = srv.requests[-1].json()
    assert body["records"][0] == {"id": "1000", "status": "archived", "reason": "old"}
    assert crm.records["Leads"][0]["status"] == "archived"
    assert crm.batches == [6]


def test_push_groups_actions_and_respects_batch_size(connector):
    crm = FakeCRM(20)
    with serve(crm) as srv:
        s = settings_for(srv.url)
        s["operations"]["archive"]["batch_size"] = 3
        session = connector.open("crm", s)
        changes = [StatusChange(str(1000 + n), "archive") for n in range(7)]
        changes += [StatusChange("1010", "void"), StatusChange("1011", "restore")]
        results = session.push("Leads", changes)
    assert all(r.ok for r in results) and len(results) == 9
    assert crm.batches == [3, 3, 1, 1, 1]
    assert {r["id"]: r["status"] for r in crm.records["Leads"]}["1010"] == "voided"
    assert session.limits().batch_size == 3


def test_whole_batch_refused_fails_each_record(connector):
    crm = FakeCRM(5)
    with serve(crm) as srv:
        s = settings_for(srv.url)
        s["operations"]["archive"]["batch_size"] = 500  # the CRM allows 100
        ids = [str(1000 + n % 5) for n in range(101)]
        results = connector.open("crm", s).push("Leads", [StatusChange(i, "archive") for i in ids])
    assert len(results) == 101 and {(r.ok, r.error) for r in results} == {(False, "LIMIT_EXCEEDED")}


def test_per_record_operations_and_missing_values(connector):
    crm = FakeCRM(5)
    with serve(crm) as srv:
        s = settings_for(srv.url, concurrency=2)
        s["operations"] = {
            "void": {
                "method": "PATCH",
                "path": "{module}/{id}",
                "body": {"status": "voided", "reason": "{field.reason}"},
                "result_modified_path": "data.modified_at",
            },
            "purge": {"method": "DELETE", "path": "{module}/{id}", "success_status": [204]},
        }
        session = connector.open("crm", s)
        assert session.limits().batch_size == 100  # per-record operations take any batch
        results = session.push(
            "Leads",
            [
                StatusChange("1000", "void", {"reason": "dup"}),
                StatusChange("1001", "void"),  # no reason: its template cannot be rendered
                StatusChange("424242", "void", {"reason": "dup"}),
            ],
        )
        deleted = session.delete("Leads", ["1002", "31337"])
        with pytest.raises(ConnectorError, match="'archive' is not configured"):
            session.push("Leads", [StatusChange("1003", "archive")])
    ok, missing, absent = results
    assert ok.ok and ok.modified_at == "2030-01-01T00:00:00Z"
    assert (missing.ok, missing.error) == (False, "MISSING_VALUE field.reason")
    assert (absent.ok, absent.error) == (False, "NOT_FOUND")
    assert [(r.record_id, r.ok, r.error) for r in deleted] == [
        ("1002", True, None),
        ("31337", False, "NOT_FOUND"),
    ]
    assert "1002" not in crm.ids()
    # per-record requests run concurrently: find the one for record 1000 by its path
    patch = next(r for r in srv.requests if r.method == "PATCH" and r.path.endswith("/1000"))
    assert patch.json() == {
        "status": "voided",
        "reason": "dup",
    }


def test_batch_purge(connector):
    crm = FakeCRM(5)
    with serve(crm) as srv:
        results = connector.open("crm", settings_for(srv.url)).delete("Leads", ["1000", "9"])
    assert [(r.ok, r.error) for r in results] == [(True, None), (False, "NOT_FOUND")]
    assert srv.requests[-1].json() == {"ids": ["1000", "9"]}
    assert srv.requests[-1].path == "/api/v1/Leads/batch-delete"


# ---------------------------------------------------------------------------- sandbox settings


@pytest.mark.parametrize("paginator", ["page_number", "cursor"])
def test_sandbox_toml_round_trips(paginator):
    text = sandbox_connection_toml("http://127.0.0.1:9/api/v1", paginator=paginator)
    parsed = tomllib.loads(text)
    expected = sandbox_connection_settings("http://127.0.0.1:9/api/v1", paginator=paginator)
    assert parsed == {"connections": {"sandbox": {"connector": "rest", **expected}}}
    assert '[connections.sandbox.auth]\ntype = "bearer"' in text
    assert 'item = { id = "{id}", status = "archived" }' in text
    json.dumps(parsed)  # plain data


# ---------------------------------------------------------------------------- the sandbox


def _sandbox() -> Any:
    try:
        from crmsync.sandbox import SandboxCRM
    except ImportError:
        pytest.skip("the sandbox CRM is not available yet")
    return SandboxCRM


@pytest.fixture
def sandbox() -> Iterator[Any]:
    crm = _sandbox()(records=300, seed=1)
    crm.start()
    try:
        yield crm
    finally:
        crm.stop()


def sandbox_settings(sandbox: Any, **kw: Any) -> dict[str, Any]:
    settings = sandbox_connection_settings(sandbox.api_url, **kw)
    settings["auth"]["token"] = token_ref(sandbox.token)
    return settings


@pytest.mark.parametrize("paginator", PAGINATORS)
def test_sandbox_full_pull_every_paginator(connector, sandbox, paginator):
    session = connector.open(
        "sandbox", sandbox_settings(sandbox, paginator=paginator, page_size=70)
    )
    assert "auth ok" in session.check()
    for module in ("Leads", "Deals"):
        pages = drain(session, module)
        got = ids_of(pages)
        assert len(got) == len(set(got)) == len(sandbox.ids(module))
        assert pages[-1].checkpoint
    session.close()


def test_sandbox_write_back(connector, sandbox):
    session = connector.open("sandbox", sandbox_settings(sandbox))
    ids = sandbox.ids("Leads")[:5]
    results = session.push("Leads", [StatusChange(i, "archive") for i in ids])
    assert all(r.ok and r.modified_at for r in results)
    assert all(r.ok for r in session.push("Leads", [StatusChange(i, "restore") for i in ids]))
    deleted = session.delete("Leads", [ids[0], "999999999"])
    assert [r.ok for r in deleted] == [True, False]
    session.close()
