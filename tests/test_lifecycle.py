"""plan -> approve -> apply, end to end through the CLI against the sandbox CRM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmsync.cli import cli
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.connection import sandbox_connection_settings, to_toml

TOKEN = "lifecycle-secret-token-77"

POLICIES = [
    {
        "name": "stale-leads",
        "description": "Lost or junk leads untouched for a year",
        "connection": "sandbox",
        "module": "Leads",
        "action": "archive",
        "max_percent": 60,
        "filter": {
            "all": [
                {"field": "lead_status", "op": "in", "value": ["Lost", "Junk"]},
                {"older_than": "365d"},
            ]
        },
    },
    {
        "name": "void-junk-contacts",
        "connection": "sandbox",
        "module": "Contacts",
        "action": "void",
        "require_approval": True,
        "max_percent": 100,
        "filter": {"field": "email", "op": "contains", "value": "@"},
    },
]


@pytest.fixture
def sandbox():
    with SandboxCRM(records=300, seed=11, token=TOKEN) as crm:
        crm.start()
        yield crm


def write_config(tmp_path: Path, api_url: str, policies=POLICIES, **plans) -> Path:
    settings = sandbox_connection_settings(api_url, "env:LC_TOKEN", concurrency=2)
    settings.update(max_retries=1, backoff_base=0, max_retry_wait=0)
    settings["operations"]["archive"]["batch_size"] = 7
    table = {
        "store": {"path": "mirror.db"},
        "connections": {"sandbox": {"connector": "rest", **settings}},
    }
    if plans:
        table["plans"] = plans
    text = to_toml(table) + "\n" + "\n".join(_policy_toml(p) for p in policies)
    path = tmp_path / "crmsync.toml"
    path.write_text(text)
    return path


def _policy_toml(policy: dict) -> str:
    lines = ["[[policies]]"]
    for key, value in policy.items():
        lines.append(
            f"{key} = {json.dumps(value)}"
            if not isinstance(value, dict)
            else f"{key} = {_inline(value)}"
        )
    return "\n".join(lines) + "\n"


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture
def config(tmp_path, sandbox, monkeypatch) -> Path:
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    return write_config(tmp_path, sandbox.api_url)


def archived_ids(sandbox: SandboxCRM) -> set[str]:
    return {i for i in sandbox.ids("Leads") if sandbox.record("Leads", i)["status"] == "archived"}


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    assert TOKEN not in result.stdout + result.stderr
    return result


def make_plan(config: Path, *extra: str) -> dict:
    assert run(config, "pull").exit_code == 0
    result = run(config, "plan", "--json", "--operator", "alice", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_plan_shows_counts_percent_samples_guard_and_approval(config):
    plan = make_plan(config)
    stale, junk = plan["policies"]
    assert stale["action"] == "archive" and stale["records"] > 0
    assert stale["module_records"] == 120
    assert stale["percent"] == pytest.approx(100 * stale["records"] / 120, abs=0.01)
    assert stale["guard"] == "ok" and not stale["requires_approval"]
    assert 0 < len(stale["samples"]) <= 5
    assert set(stale["samples"][0]["fields"]) >= {"lead_status"}
    assert junk["requires_approval"] is True


def test_apply_archives_exactly_the_planned_records_once(config, sandbox):
    plan = make_plan(config, "--policy", "stale-leads")
    planned = plan["policies"][0]["records"]
    before = archived_ids(sandbox)
    result = run(config, "apply", plan["id"], "--json", "--operator", "bob")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["policies"]["stale-leads"] == {"done": planned}
    assert summary["status"] == "applied"
    # write-back calls = ceil(M / batch size 7)
    assert summary["write_calls"] == -(-planned // 7)
    writes = sandbox.stats()["writes"]
    assert len(writes) == planned and set(writes.values()) == {1}
    written = {key.split("/", 1)[1] for key in writes}
    assert archived_ids(sandbox) - before == written
    # applying the same plan again changes nothing
    again = json.loads(run(config, "apply", plan["id"], "--json").stdout)
    assert again["policies"] == {} and again["status"] == "applied"
    assert set(sandbox.stats()["writes"].values()) == {1}
    # the audit log has one entry per record and verifies
    log = json.loads(
        run(config, "audit", "log", "--policy", "stale-leads", "--json", "-n", "0").stdout
    )
    assert len([e for e in log if e["action"] == "archive"]) == planned
    assert run(config, "audit", "verify").exit_code == 0


def test_policy_needing_approval_is_stopped_until_someone_else_approves(config, sandbox):
    plan = make_plan(config, "--policy", "void-junk-contacts")
    refused = run(config, "apply", plan["id"])
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert sandbox.stats()["writes"] == {}
    self_approval = run(config, "approve", plan["id"], "--operator", "alice")
    assert self_approval.exit_code == 3 and "cannot approve it too" in self_approval.stderr
    assert run(config, "approve", plan["id"], "--operator", "carol").exit_code == 0
    applied = run(config, "apply", plan["id"], "--json")
    assert applied.exit_code == 0, applied.stderr
    assert json.loads(applied.stdout)["policies"]["void-junk-contacts"]["done"] > 0


def test_blast_radius_guard_stops_the_plan_and_apply(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    greedy = [
        dict(
            POLICIES[0],
            max_percent=None,
            max_records=None,
            name="greedy",
            filter={"field": "@status", "op": "eq", "value": "active"},
        )
    ]
    for p in greedy:
        p.pop("max_percent"), p.pop("max_records")
    config = write_config(tmp_path, sandbox.api_url, policies=greedy)
    assert run(config, "pull").exit_code == 0
    planned = run(config, "plan", "--json")
    assert planned.exit_code == 3  # default guard: 5% / 500 records
    plan = json.loads(planned.stdout)
    assert plan["policies"][0]["guard"].startswith("exceeded")
    applied = run(config, "apply", plan["id"])
    assert applied.exit_code == 3 and "blast radius" in applied.stderr
    assert sandbox.stats()["writes"] == {}


def test_drifted_records_are_skipped_not_overwritten(config, sandbox):
    plan = make_plan(config, "--policy", "stale-leads")
    planned = plan["policies"][0]["records"]
    sample = plan["policies"][0]["samples"][0]["record_id"]
    sandbox.touch("Leads", ids=[sample])  # someone edits it in the CRM after the plan
    summary = json.loads(run(config, "apply", plan["id"], "--json").stdout)
    assert summary["policies"]["stale-leads"] == {"drift": 1, "done": planned - 1}
    assert sandbox.write_count("Leads", sample) == 0
    assert sandbox.record("Leads", sample)["status"] == "active"


def test_records_the_crm_rejects_are_reported_and_the_rest_applied(config, sandbox):
    plan = make_plan(config, "--policy", "stale-leads")
    rejected = plan["policies"][0]["samples"][0]["record_id"]
    sandbox.set_faults(fail_ids=[rejected])
    summary = json.loads(run(config, "apply", plan["id"], "--json").stdout)
    counts = summary["policies"]["stale-leads"]
    assert counts["failed"] == 1 and counts["done"] == plan["policies"][0]["records"] - 1
    assert summary["status"] == "applied"
    log = json.loads(run(config, "audit", "log", "--record", rejected, "--json").stdout)
    assert log[-1]["outcome"] == "failed:WRITE_REJECTED"


def test_unknown_expired_and_changed_config_plans_are_refused(config, sandbox, tmp_path):
    assert run(config, "apply", "no-such-plan").exit_code == 2
    plan = make_plan(config, "--policy", "stale-leads")
    # the config changes after planning
    config.write_text(
        config.read_text()
        .replace('"max_percent": 60', '"max_percent": 61')
        .replace("max_percent = 60", "max_percent = 61")
    )
    changed = run(config, "apply", plan["id"])
    assert changed.exit_code == 2 and "different config" in changed.stderr
    assert sandbox.stats()["writes"] == {}


def test_expired_plan_is_refused(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    config = write_config(tmp_path, sandbox.api_url, ttl="0s")
    plan = make_plan(config, "--policy", "stale-leads")
    result = run(config, "apply", plan["id"])
    assert result.exit_code == 2 and "expired" in result.stderr


def test_plans_lists_what_was_planned(config):
    plan = make_plan(config)
    listed = json.loads(run(config, "plans", "--json").stdout)
    assert listed[0]["id"] == plan["id"] and listed[0]["created_by"] == "alice"


def _unused() -> None:  # keep os imported for subprocess tests below
    os.getpid()
