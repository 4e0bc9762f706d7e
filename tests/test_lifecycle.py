"""plan -> approve -> apply, end to end through the CLI against the sandbox CRM."""

from __future__ import annotations

import json

import pytest

from tests.lifecycle_support import POLICIES, TOKEN, archived_ids, make_plan, run, write_config


def test_plan_shows_counts_percent_samples_guard_and_approval(lc_config):
    plan = make_plan(lc_config)
    stale, junk = plan["policies"]
    assert stale["action"] == "archive" and stale["records"] > 0
    assert stale["module_records"] == 120
    assert stale["percent"] == pytest.approx(100 * stale["records"] / 120, abs=0.01)
    assert stale["guard"] == "ok" and not stale["requires_approval"]
    assert 0 < len(stale["samples"]) <= 5
    assert set(stale["samples"][0]["fields"]) >= {"lead_status"}
    assert junk["requires_approval"] is True


def test_apply_archives_exactly_the_planned_records_once(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    planned = plan["policies"][0]["records"]
    before = archived_ids(lc_sandbox)
    result = run(lc_config, "apply", plan["id"], "--json", "--operator", "bob")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["policies"]["stale-leads"] == {"done": planned}
    assert summary["status"] == "applied"
    # write-back calls = ceil(M / batch size 7)
    assert summary["write_calls"] == -(-planned // 7)
    writes = lc_sandbox.stats()["writes"]
    assert len(writes) == planned and set(writes.values()) == {1}
    written = {key.split("/", 1)[1] for key in writes}
    assert archived_ids(lc_sandbox) - before == written
    # applying the same plan again changes nothing
    again = json.loads(run(lc_config, "apply", plan["id"], "--json").stdout)
    assert again["policies"] == {} and again["status"] == "applied"
    assert set(lc_sandbox.stats()["writes"].values()) == {1}
    # the audit log has one entry per record and verifies
    log = json.loads(
        run(lc_config, "audit", "log", "--policy", "stale-leads", "--json", "-n", "0").stdout
    )
    assert len([e for e in log if e["action"] == "archive"]) == planned
    assert run(lc_config, "audit", "verify").exit_code == 0


def test_policy_needing_approval_is_stopped_until_someone_else_approves(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "void-junk-contacts")
    refused = run(lc_config, "apply", plan["id"])
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert lc_sandbox.stats()["writes"] == {}
    self_approval = run(lc_config, "approve", plan["id"], "--operator", "alice")
    assert self_approval.exit_code == 3 and "cannot approve it too" in self_approval.stderr
    assert run(lc_config, "approve", plan["id"], "--operator", "carol").exit_code == 0
    applied = run(lc_config, "apply", plan["id"], "--json")
    assert applied.exit_code == 0, applied.stderr
    assert json.loads(applied.stdout)["policies"]["void-junk-contacts"]["done"] > 0


def test_blast_radius_guard_stops_the_plan_and_apply(tmp_path, lc_sandbox, monkeypatch):
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
    lc_config = write_config(tmp_path, lc_sandbox.api_url, policies=greedy)
    assert run(lc_config, "pull").exit_code == 0
    planned = run(lc_config, "plan", "--json")
    assert planned.exit_code == 3  # default guard: 5% / 500 records
    plan = json.loads(planned.stdout)
    assert plan["policies"][0]["guard"].startswith("exceeded")
    applied = run(lc_config, "apply", plan["id"])
    assert applied.exit_code == 3 and "blast radius" in applied.stderr
    assert lc_sandbox.stats()["writes"] == {}


def test_drifted_records_are_skipped_not_overwritten(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    planned = plan["policies"][0]["records"]
    sample = plan["policies"][0]["samples"][0]["record_id"]
    lc_sandbox.touch("Leads", ids=[sample])  # someone edits it in the CRM after the plan
    result = run(lc_config, "apply", plan["id"], "--json")
    assert result.exit_code == 3 and "changed in the CRM since the plan" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["policies"]["stale-leads"] == {"drift": 1, "done": planned - 1}
    assert lc_sandbox.write_count("Leads", sample) == 0
    assert lc_sandbox.record("Leads", sample)["status"] == "active"


def test_records_the_crm_rejects_are_reported_and_the_rest_applied(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    rejected = plan["policies"][0]["samples"][0]["record_id"]
    lc_sandbox.set_faults(fail_ids=[rejected])
    result = run(lc_config, "apply", plan["id"], "--json")
    assert result.exit_code == 1 and "refused 1 record" in result.stderr
    summary = json.loads(result.stdout)
    counts = summary["policies"]["stale-leads"]
    assert counts["failed"] == 1 and counts["done"] == plan["policies"][0]["records"] - 1
    assert summary["status"] == "applied"
    log = json.loads(run(lc_config, "audit", "log", "--record", rejected, "--json").stdout)
    assert log[-1]["outcome"] == "failed:WRITE_REJECTED"
    failed = run(lc_config, "audit", "log", "--plan", plan["id"], "--outcome", "failed", "--json")
    assert [e["record_id"] for e in json.loads(failed.stdout)] == [rejected]


def test_unknown_expired_and_changed_config_plans_are_refused(lc_config, lc_sandbox, tmp_path):
    assert run(lc_config, "apply", "no-such-plan").exit_code == 2
    plan = make_plan(lc_config, "--policy", "stale-leads")
    # the config changes after planning
    lc_config.write_text(
        lc_config.read_text()
        .replace('"max_percent": 60', '"max_percent": 61')
        .replace("max_percent = 60", "max_percent = 61")
    )
    changed = run(lc_config, "apply", plan["id"])
    assert changed.exit_code == 2 and "different config" in changed.stderr
    assert lc_sandbox.stats()["writes"] == {}


def test_expired_plan_is_refused(tmp_path, lc_sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    lc_config = write_config(tmp_path, lc_sandbox.api_url, ttl="0s")
    plan = make_plan(lc_config, "--policy", "stale-leads")
    result = run(lc_config, "apply", plan["id"])
    assert result.exit_code == 2 and "expired" in result.stderr


def test_plans_lists_what_was_planned(lc_config):
    plan = make_plan(lc_config)
    listed = json.loads(run(lc_config, "plans", "--json").stdout)
    assert listed[0]["id"] == plan["id"] and listed[0]["created_by"] == "alice"


FIELD_WRITES = [
    {
        "name": "mark-dormant",
        "connection": "sandbox",
        "module": "Leads",
        "action": {"type": "update", "fields": {"lead_status": "Dormant"}},
        "max_percent": 60,
        "filter": {"all": [{"field": "lead_status", "op": "eq", "value": "Lost"}]},
    },
    {
        "name": "tag-junk",
        "connection": "sandbox",
        "module": "Leads",
        "action": {"type": "tag", "tags": ["junk-review"]},
        "max_percent": 60,
        "filter": {"field": "lead_status", "op": "eq", "value": "Junk"},
    },
]


def test_update_and_tag_write_fields_and_leave_the_status(tmp_path, lc_sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    lc_config = write_config(tmp_path, lc_sandbox.api_url, policies=FIELD_WRITES)
    plan = make_plan(lc_config)
    counts = {p["policy"]: p["records"] for p in plan["policies"]}
    assert counts["mark-dormant"] > 0 and counts["tag-junk"] > 0
    result = run(lc_config, "apply", plan["id"], "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["policies"]["mark-dormant"] == {"done": counts["mark-dormant"]}
    assert summary["policies"]["tag-junk"] == {"done": counts["tag-junk"]}
    leads = [lc_sandbox.record("Leads", i) for i in lc_sandbox.ids("Leads")]
    assert sum(r["lead_status"] == "Dormant" for r in leads) >= counts["mark-dormant"]
    tagged = [r for r in leads if "junk-review" in (r.get("tags") or [])]
    assert len(tagged) == counts["tag-junk"]
    assert all(r["status"] in ("active", "archived", "voided") for r in tagged)
    # nothing left to do: a fresh plan finds no Lost leads to mark again
    assert run(lc_config, "pull").exit_code == 0
    again = json.loads(run(lc_config, "plan", "--json", "--policy", "mark-dormant").stdout)
    assert again["policies"][0]["records"] == 0
