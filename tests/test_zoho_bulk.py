"""Bulk Read full pulls (connectors/zoho/bulk.py) against the fake Zoho server. No real sleeps:
the connector's sleep is injected (recorded, or advancing the fake clock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync_connectors.zoho.bulk import convert, estimate
from crmsync_connectors.zoho.connector import ZohoConnector
from crmsync_connectors.zoho.pull import iso_z, parse_zoho_time
from crmsync_connectors.zoho.settings import parse_settings
from tests.http_fakes import FakeSleep
from tests.test_zoho_contract import zoho_settings

fake = pytest.importorskip("crmsync_connectors.zoho.fake")
FakeZoho = fake.FakeZoho

BULK = {"bulk_read_threshold": 1000, "bulk_read_job_credits": 5}


@pytest.fixture
def zoho() -> Iterator[Any]:
    with FakeZoho(records={"Leads": 2500, "Contacts": 40}, seed=11, bulk_page_size=1000) as z:
        yield z


def _open(zoho: Any, sleep: Any = None, **extra: Any) -> Any:
    extra = {"modules": ["Leads", "Contacts"], **BULK, **extra}
    settings = zoho_settings(zoho, **extra)
    return ZohoConnector(sleep=sleep or FakeSleep()).open("zbulk", settings)


def _norm(value: Any) -> Any:
    """A REST or bulk value in the form both carry (see README "Bulk Read")."""
    if isinstance(value, dict):
        return value.get("id")
    if isinstance(value, list):
        return [v.get("name") if isinstance(v, dict) else v for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        try:
            return iso_z(parse_zoho_time(value))
        except ValueError:
            return value
    return value


def test_auto_picks_bulk_for_a_big_module_and_record_calls_for_a_small_one(
    zoho: Any, caplog: pytest.LogCaptureFixture
) -> None:
    session = _open(zoho)
    caplog.set_level("INFO", logger="crmsync_connectors.zoho")
    leads = [r for p in session.pull("Leads") for r in p.records]
    contacts = [r for p in session.pull("Contacts") for r in p.records]
    assert {r.id for r in leads} == set(zoho.ids("Leads"))
    assert {r.id for r in contacts} == set(zoho.ids("Contacts"))
    stats = session.stats()
    assert stats["pull_paths"] == {"Leads": "bulk", "Contacts": "records"}
    assert stats["bulk_jobs"] == 3  # 2,500 records, 1,000 a bulk page
    assert stats["count_calls"] == 2
    server = zoho.stats()
    # per job: create, a poll answering IN PROGRESS, one answering COMPLETED, the download
    assert server["bulk_calls"] == stats["bulk_calls"] == 3 * 4
    assert server["by_route"]["GET /crm/v8/{module}"] == 1  # Contacts only
    assert "zbulk/Leads: full pull via Bulk Read" in caplog.text
    assert "zbulk/Contacts: full pull via record calls" in caplog.text
    session.close()


def test_bulk_mirror_equals_the_record_call_mirror(zoho: Any) -> None:
    bulk = _open(zoho, bulk_read="always")
    rest = _open(zoho, bulk_read="never")
    bulk_pages = list(bulk.pull("Leads"))
    rest_pages = list(rest.pull("Leads"))
    by_bulk = {r.id: r for p in bulk_pages for r in p.records}
    by_rest = {r.id: r for p in rest_pages for r in p.records}
    assert by_bulk.keys() == by_rest.keys() and len(by_bulk) == 2500
    for rid, b in by_bulk.items():
        r = by_rest[rid]
        assert b.status == r.status
        assert parse_zoho_time(b.modified_at) == parse_zoho_time(r.modified_at)
        assert set(b.data) == set(r.data)
        for name in r.data:
            assert _norm(b.data[name]) == _norm(r.data[name]), (rid, name)
    # the same checkpoint: the newest Modified_Time (REST adds 1 s once the server is settled)
    cut_bulk = parse_zoho_time(bulk_pages[-1].checkpoint)
    cut_rest = parse_zoho_time(rest_pages[-1].checkpoint)
    assert 0 <= (cut_rest - cut_bulk).total_seconds() <= 1
    assert all(p.checkpoint is None for p in bulk_pages[:-1])
    assert [len(p.records) for p in bulk_pages] == [200] * 12 + [100]


def test_more_records_across_bulk_pages_uses_next_page_token(zoho: Any) -> None:
    session = _open(zoho, bulk_read="always")
    pages = list(session.pull("Leads"))
    jobs = zoho.bulk_jobs()
    assert [j["page"] for j in jobs] == [1, 2, 3]
    assert all(j["state"] == "COMPLETED" for j in jobs)
    ids = [r.id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == 2500
    assert sum(p.api_calls for p in pages) == session.stats()["bulk_calls"]


def test_incremental_after_bulk_uses_if_modified_since(zoho: Any) -> None:
    session = _open(zoho, bulk_read="always")
    checkpoint = list(session.pull("Leads"))[-1].checkpoint
    assert checkpoint
    zoho.advance(120)
    touched = zoho.touch("Leads", count=7)
    zoho.reset_stats()
    pages = list(session.pull("Leads", since=checkpoint))
    got = {r.id: r for p in pages for r in p.records}
    # If-Modified-Since is inclusive: records stamped exactly at the checkpoint come again
    again = {
        i for i, r in got.items() if parse_zoho_time(r.modified_at) == parse_zoho_time(checkpoint)
    }
    assert set(got) - again == set(touched)
    stats = zoho.stats()
    assert stats["bulk_calls"] == 0
    assert stats["by_route"]["GET /crm/v8/{module}"] == 2  # two field groups, one page
    assert session.stats()["bulk_jobs"] == 3


def test_failed_job_is_a_clear_error(zoho: Any) -> None:
    zoho.fail_bulk_jobs(1)
    session = _open(zoho, bulk_read="always")
    with pytest.raises(BadResponseError) as err:
        list(session.pull("Leads"))
    assert "'zbulk'" in str(err.value) and "'Leads'" in str(err.value)
    assert "FAILURE" in str(err.value)


def test_failure_on_a_later_job_keeps_only_complete_pages_without_a_checkpoint(
    zoho: Any,
) -> None:
    session = _open(zoho, bulk_read="always")
    pages = []
    with pytest.raises(BadResponseError):
        for page in session.pull("Leads"):
            pages.append(page)
            if len(pages) == 1:
                zoho.fail_bulk_jobs(1)  # job 2 fails
    assert pages and all(p.checkpoint is None for p in pages)
    assert all(len(p.records) == 200 for p in pages)


def test_download_throttling_waits_for_the_window_or_fails_clearly() -> None:
    with FakeZoho(
        records={"Leads": 2500}, seed=3, bulk_page_size=1000, bulk_downloads_per_minute=1
    ) as zoho:
        waits: list[float] = []

        def advancing(seconds: float) -> None:
            waits.append(seconds)
            zoho.advance(seconds)

        session = _open(zoho, sleep=advancing, bulk_read="always", modules=["Leads"])
        records = [r for p in session.pull("Leads") for r in p.records]
        assert len(records) == 2500
        assert zoho.stats()["by_status"].get("429", 0) >= 1

        stuck = _open(zoho, bulk_read="always", modules=["Leads"], max_retries=1)
        with pytest.raises(ConnectorError) as err:
            list(stuck.pull("Leads"))
        assert "10 Bulk Read downloads a minute" in str(err.value)
        assert "'zbulk'" in str(err.value)


def test_missing_bulk_scope_names_it(zoho: Any) -> None:
    token = zoho.add_refresh_token(["ZohoCRM.modules.ALL", "ZohoCRM.settings.ALL"])
    settings = zoho_settings(zoho, modules=["Leads"], bulk_read="always")
    settings["refresh_token"] = settings["refresh_token"].__class__(
        "env:ZOHO_REFRESH_TOKEN", "refresh_token", resolver=lambda r, p: token
    )
    session = ZohoConnector(sleep=FakeSleep()).open("zbulk", settings)
    with pytest.raises(AuthError) as err:
        list(session.pull("Leads"))
    assert "ZohoCRM.bulk.read" in str(err.value) and "OAUTH_SCOPE_MISMATCH" in str(err.value)


def test_malformed_zip_is_a_bad_response(zoho: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmsync_connectors.zoho.fake import bulk as fake_bulk

    monkeypatch.setattr(
        fake_bulk.BulkRequest,
        "download",
        lambda self, job: (200, fake_bulk.Raw(b"not a zip", "application/zip")),
    )
    session = _open(zoho, bulk_read="always")
    with pytest.raises(BadResponseError, match="not a zip"):
        list(session.pull("Leads"))


def test_csv_typing_and_cost_model() -> None:
    assert convert("", "integer") is None and convert("12", "integer") == 12
    assert convert("1.5", "currency") == 1.5 and convert("true", "boolean") is True
    assert convert("2024-01-01T10:00:00+05:30", "datetime") == "2024-01-01T04:30:00Z"
    assert convert("42", "ownerlookup") == {"id": "42"}
    assert convert("a,b", "multiselectpicklist") == ["a", "b"]
    assert convert("", "tag") == [] and convert("x", "tag") == [{"name": "x"}]
    settings = parse_settings(
        {"client_id": "c", "client_secret": "s", "refresh_token": "r", "modules": ["Leads"]}
    )
    # 100k records, 62 fields: 500 pages x 2 groups by record calls; one 53-credit job
    assert estimate(100_000, 2, settings) == (1000, 53)
    assert estimate(1_000_000, 1, settings) == (5000, 5 * 53)
