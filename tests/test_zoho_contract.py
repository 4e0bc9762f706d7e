"""The connector contract suite, run against the Zoho connector and the fake Zoho server,
plus end-to-end checks of what only the fake shows (field groups, 2,000-record boundary,
token limits, write-back outcomes, call counts)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crmsync.errors import AuthError
from crmsync.hookspecs import SecretRef, StatusChange
from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.zoho.connector import ZohoConnector
from tests.http_fakes import FakeSleep

fake = pytest.importorskip("crmsync_connectors.zoho.fake")
FakeZoho = fake.FakeZoho

STATUS_VALUES = {"active": "Active", "archived": "Archived", "voided": "Void"}
STATUS = {v: k for k, v in STATUS_VALUES.items()}
CLI_FIELDS = ["Last_Name", "First_Name", "Email", "Company", "Lead_Status"]


def _ref(value: str, path: str) -> SecretRef:
    return SecretRef(f"env:ZOHO_{path.upper()}", path, resolver=lambda r, p: value)


def zoho_settings(zoho: Any, *, modules: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "accounts_url": zoho.accounts_url,
        "client_id": zoho.client_id,
        "client_secret": _ref(zoho.client_secret, "client_secret"),
        "refresh_token": _ref(zoho.refresh_token, "refresh_token"),
        "modules": modules or [{"name": "Leads", "fields": CLI_FIELDS}],
        "status": {"mode": "field", "field": "Record_Status", "values": STATUS_VALUES},
        "edition": "free",
        **extra,
    }


class ZohoHarness:
    """Leads with every field (62: two field groups), as an admin would configure it."""

    module = "Leads"

    def __init__(self, zoho: Any) -> None:
        self.zoho = zoho
        self.connector = ZohoConnector(sleep=FakeSleep())
        self.secret_values = [zoho.client_secret, zoho.refresh_token, "1000.revoked-refresh"]

    def settings(self) -> Mapping[str, Any]:
        return zoho_settings(self.zoho, modules=["Leads"])

    def bad_auth_settings(self) -> Mapping[str, Any]:
        settings = zoho_settings(self.zoho, modules=["Leads"])
        settings["refresh_token"] = _ref("1000.revoked-refresh", "refresh_token")
        return settings

    def ids(self) -> set[str]:
        return set(self.zoho.ids(self.module))

    def touch(self, count: int) -> list[str]:
        self.zoho.advance(60)
        return self.zoho.touch(self.module, count=count)

    def status(self, record_id: str) -> str | None:
        record = self.zoho.record(self.module, record_id)
        return None if record is None else STATUS.get(record.get("Record_Status"), "active")

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        self.zoho.set_faults(fail_next=[{"status": status, "count": count}])

    def reject_writes(self, ids: list[str]) -> None:
        self.zoho.set_faults(reject_ids=ids)

    def write_counts(self) -> dict[str, int]:
        return {i: self.zoho.write_count(self.module, i) for i in self.ids()}

    def max_in_flight(self) -> int:
        return self.zoho.stats()["max_in_flight"]

    def max_batch(self) -> int:
        return self.zoho.stats()["max_batch"]

    def requests(self) -> int:
        return self.zoho.stats()["requests"]


class TestZohoContract(ConnectorContract):
    @pytest.fixture
    def harness(self) -> Iterator[ZohoHarness]:
        with FakeZoho(records={"Leads": 450}, seed=5) as zoho:
            yield ZohoHarness(zoho)


# ---------------------------------------------------------------------- beyond the contract


@pytest.fixture
def zoho() -> Iterator[Any]:
    with FakeZoho(records={"Leads": 2450, "Site_Visits": 30}, seed=7) as server:
        yield server


def _open(zoho: Any, **extra: Any) -> Any:
    return ZohoConnector(sleep=FakeSleep()).open("zfake", zoho_settings(zoho, **extra))


def test_full_pull_of_a_wide_module_costs_pages_times_field_groups(zoho: Any) -> None:
    session = _open(zoho, modules=["Leads"])
    zoho.reset_stats()
    pages = list(session.pull("Leads"))
    records = [r for p in pages for r in p.records]
    assert len(records) == 2450 and {r.id for r in records} == set(zoho.ids("Leads"))
    fields = len(zoho.field_names("Leads"))
    expected = math.ceil(2450 / 200) * math.ceil(fields / 50)
    assert sum(p.api_calls for p in pages) == expected == session.stats()["record_calls"]
    assert zoho.stats()["record_calls"] == expected
    assert session.stats()["metadata_calls"] == 2
    # every field of every record arrived, merged from both groups
    sample = records[2300]
    full = zoho.record("Leads", sample.id)
    assert {k: v for k, v in full.items() if k in sample.data} == dict(sample.data)
    assert set(full) - set(sample.data) <= {"id"} | {k for k in full if k.startswith("$")}
    assert all(r.modified_at and r.modified_at.endswith("Z") for r in records)
    session.close()


def test_module_without_modified_time_is_pulled_in_full(zoho: Any) -> None:
    session = _open(zoho, modules=["Site_Visits"])
    (info,) = session.list_modules()
    assert info.modified_field is None
    pages = list(session.pull("Site_Visits", since="2025-01-01T00:00:00Z"))
    assert sum(len(p.records) for p in pages) == 30
    assert pages[-1].checkpoint


def test_incremental_pull_reports_deletions(zoho: Any) -> None:
    session = _open(zoho)
    checkpoint = list(session.pull("Leads"))[-1].checkpoint
    zoho.advance(60)
    gone = zoho.delete("Leads", sorted(zoho.ids("Leads"))[:4])
    changed = zoho.touch("Leads", count=3)
    pages = list(session.pull("Leads", since=checkpoint))
    assert set(changed) <= {r.id for p in pages for r in p.records}
    assert set(gone) == {i for p in pages for i in p.deleted_ids}


def test_write_back_outcomes_with_picklist_rejection(zoho: Any) -> None:
    session = _open(zoho)
    ids = sorted(zoho.ids("Leads"))[:4]
    bad = {**zoho_settings(zoho)["status"], "values": {**STATUS_VALUES, "archived": "Nope"}}
    rejecting = _open(zoho, status=bad)
    results = rejecting.push("Leads", [StatusChange(i, "archive") for i in ids[:2]])
    assert all(not r.ok and r.error.startswith("INVALID_DATA (Record_Status)") for r in results)
    results = session.push(
        "Leads", [StatusChange(i, "void") for i in ids[2:]] + [StatusChange("1", "void")]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert all(r.modified_at and r.modified_at.endswith("Z") for r in results[:2])
    assert zoho.record("Leads", ids[2])["Record_Status"] == "Void"
    assert zoho.stats()["triggers"].get("[]", 0) >= 1


def test_tags_mode_archives_and_restores(zoho: Any) -> None:
    status = {"mode": "tags", "tags": {"archived": "crmsync-archived", "voided": "crmsync-void"}}
    session = _open(zoho, status=status)
    ids = sorted(zoho.ids("Leads"))[:3]
    assert all(r.ok for r in session.push("Leads", [StatusChange(i, "archive") for i in ids]))
    tags = {t["name"] for t in zoho.record("Leads", ids[0]).get("Tag") or []}
    assert "crmsync-archived" in tags
    pulled = {r.id: r for p in session.pull("Leads") for r in p.records}
    assert pulled[ids[0]].status == "archived"
    assert all(r.ok for r in session.push("Leads", [StatusChange(i, "restore") for i in ids]))
    tags = {t["name"] for t in zoho.record("Leads", ids[0]).get("Tag") or []}
    assert "crmsync-archived" not in tags


def test_revoked_refresh_token_and_scope_mismatch(zoho: Any) -> None:
    zoho.revoke_refresh_token()
    with pytest.raises(AuthError, match="crmsync auth zoho zfake") as err:
        _open(zoho).check()
    assert zoho.refresh_token not in str(err.value)
    narrow = zoho.add_refresh_token(scopes=("ZohoCRM.modules.ALL",))
    settings = zoho_settings(zoho)
    settings["refresh_token"] = _ref(narrow, "refresh_token")
    session = ZohoConnector(sleep=FakeSleep()).open("zfake", settings)
    with pytest.raises(AuthError, match=r"ZohoCRM\.settings\.modules\.READ"):
        session.check()


def test_expired_token_is_refreshed_once(zoho: Any) -> None:
    session = _open(zoho)
    session.check()
    zoho.expire_tokens()
    session.metadata._modules = None
    session.check()
    assert session.stats()["token_requests"] == 2


def test_429_bursts_and_5xx_end_with_the_same_records(zoho: Any) -> None:
    zoho.set_faults(error_rate=0.05, burst_every=7, burst_length=2)
    sleep = FakeSleep()
    session = ZohoConnector(sleep=sleep).open("zfake", zoho_settings(zoho, max_retries=8))
    ids = {r.id for p in session.pull("Leads") for r in p.records}
    assert ids == set(zoho.ids("Leads"))
    assert sleep.waits and all(w < 60 for w in sleep.waits)


# ---------------------------------------------------------------------- CLI end to end

CLI_CONFIG = """
[store]
path = "mirror.db"

[connections.zfake]
connector = "zoho"
accounts_url = "{accounts}"
client_id = "{client_id}"
client_secret = "env:ZFAKE_CLIENT_SECRET"
refresh_token = "keyring:crmsync/zfake"
edition = "free"
max_retries = 1
backoff_base = 0
modules = [{{ name = "Leads", fields = ["Last_Name", "Company", "Lead_Status", "Email"] }}]
trigger = []

[connections.zfake.status]
mode = "field"
field = "Record_Status"
values = {{ active = "Active", archived = "Archived", voided = "Void" }}

[[policies]]
name = "junk-leads"
connection = "zfake"
module = "Leads"
action = "archive"
max_percent = 100
filter = {{ field = "Lead_Status", op = "in", value = ["Junk Lead"] }}
"""


def test_cli_auth_pull_plan_apply_restore(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    import json

    from click.testing import CliRunner

    from crmsync.cli import _attach_plugin_commands, cli

    with FakeZoho(records={"Leads": 120}, seed=9) as zoho:
        config = tmp_path / "crmsync.toml"
        config.write_text(CLI_CONFIG.format(accounts=zoho.accounts_url, client_id=zoho.client_id))
        monkeypatch.setenv("ZFAKE_CLIENT_SECRET", zoho.client_secret)
        _attach_plugin_commands(cli)
        runner = CliRunner()

        def run(*args: str) -> Any:
            result = runner.invoke(cli, ["-c", str(config), *args])
            out = result.stdout + result.stderr
            assert zoho.client_secret not in out and zoho.refresh_token not in out
            return result

        authed = run("auth", "zoho", "zfake", "--code", zoho.grant_code())
        assert authed.exit_code == 0, authed.stdout + authed.stderr
        assert "keyring:crmsync/zfake" in authed.stdout
        checked = run("check", "zfake")
        assert checked.exit_code == 0, checked.stdout + checked.stderr
        assert run("pull", "zfake").exit_code == 0
        planned = run("plan", "--json", "--operator", "alice")
        assert planned.exit_code == 0, planned.stdout + planned.stderr
        plan = json.loads(planned.stdout)
        junk = {
            i for i in zoho.ids("Leads") if zoho.record("Leads", i)["Lead_Status"] == "Junk Lead"
        }
        assert plan["policies"][0]["records"] == len(junk) > 0
        applied = run("apply", plan["id"], "--json", "--operator", "alice")
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        assert all(zoho.record("Leads", i)["Record_Status"] == "Archived" for i in junk)
        restored = run("restore", "--plan", plan["id"], "--yes", "--json")
        assert restored.exit_code == 0, restored.stdout + restored.stderr
        assert all(zoho.record("Leads", i)["Record_Status"] == "Active" for i in junk)
        used = run("auth", "zoho", "zfake", "--code", "1000.used-or-wrong-code")
        assert used.exit_code != 0 and "invalid_code" in used.stdout + used.stderr


def test_credits_floor_stops_cleanly_and_the_pull_resumes() -> None:
    from crmsync_connectors.zoho.api import CreditsExhaustedError

    with FakeZoho(
        records={"Leads": 2000}, seed=3, daily_credits=20, credits_header="always"
    ) as zoho:
        session = _open(zoho, min_credits_remaining=12)
        seen: set[str] = set()
        checkpoint = None
        with pytest.raises(CreditsExhaustedError, match="credits") as err:
            for page in session.pull("Leads"):
                seen.update(r.id for r in page.records)
                checkpoint = page.checkpoint
        assert "zfake" in str(err.value) and "Leads" in str(err.value)
        assert zoho.stats()["credits_remaining"] >= 10  # stopped before the budget ran out
        assert checkpoint is not None and 0 < len(seen) < 2000
        zoho.advance(86_400)  # the rolling 24 h window refills
        resumed = _open(zoho, min_credits_remaining=0)
        rest = {r.id for p in resumed.pull("Leads", since=checkpoint) for r in p.records}
        assert seen | rest == set(zoho.ids("Leads"))


def test_throttled_token_endpoint_is_reported_not_hammered() -> None:
    import requests

    with FakeZoho(records={"Leads": 5}, seed=3) as zoho:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": zoho.refresh_token,
            "client_id": zoho.client_id,
            "client_secret": zoho.client_secret,
        }
        for _ in range(10):  # another client using the same refresh token
            requests.post(zoho.accounts_url + "/oauth/v2/token", data=form, timeout=5)
        session = _open(zoho, max_retries=0)
        with pytest.raises(Exception, match="throttled token requests") as err:
            session.check()
        assert zoho.refresh_token not in str(err.value)
        assert zoho.client_secret not in str(err.value)
