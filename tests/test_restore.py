"""crmsync restore: undo an apply, restore chosen records, put field values back (--data)."""

from __future__ import annotations

import json

import requests

from tests.lifecycle_support import TOKEN, archived_ids, make_plan, run


def apply(config, plan_id: str) -> dict:
    result = run(config, "apply", plan_id, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_restore_by_plan_undoes_a_whole_apply(lc_config, lc_sandbox):
    before = archived_ids(lc_sandbox)
    plan = make_plan(lc_config, "--policy", "stale-leads")
    apply(lc_config, plan["id"])
    changed = archived_ids(lc_sandbox) - before
    assert changed
    result = run(lc_config, "restore", "--plan", plan["id"], "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "applied"
    assert sum(s.get("done", 0) for s in summary["policies"].values()) == len(changed)
    assert archived_ids(lc_sandbox) == before
    # each changed record: one archive write, one restore write
    assert {lc_sandbox.write_count("Leads", i) for i in changed} == {2}
    log = json.loads(
        run(lc_config, "audit", "log", "--action", "restore", "--json", "-n", "0").stdout
    )
    assert sorted(e["record_id"] for e in log) == sorted(changed)


def test_restore_by_record_ids_shows_a_plan_first(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    apply(lc_config, plan["id"])
    target = plan["policies"][0]["samples"][0]["record_id"]
    shown = run(
        lc_config,
        "restore",
        "--record",
        target,
        "--connection",
        "sandbox",
        "--module",
        "Leads",
        "--json",
    )
    assert shown.exit_code == 0, shown.stderr
    restore_plan = json.loads(shown.stdout)
    assert restore_plan["policies"][0]["records"] == 1
    assert lc_sandbox.record("Leads", target)["status"] == "archived"  # nothing applied yet
    apply(lc_config, restore_plan["id"])
    assert lc_sandbox.record("Leads", target)["status"] == "active"


def test_restore_with_data_puts_field_values_back_from_the_kept_copy(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    target = plan["policies"][0]["samples"][0]["record_id"]
    original = lc_sandbox.record("Leads", target)
    apply(lc_config, plan["id"])
    # someone damages the archived record in the CRM
    requests.patch(
        f"{lc_sandbox.api_url}Leads/{target}",
        json={"company": "WRONG", "city": "?"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).raise_for_status()
    assert run(lc_config, "pull").exit_code == 0
    result = run(
        lc_config,
        "restore",
        "--record",
        target,
        "--connection",
        "sandbox",
        "--module",
        "Leads",
        "--data",
        "--yes",
    )
    assert result.exit_code == 0, result.stderr
    restored = lc_sandbox.record("Leads", target)
    assert restored["status"] == "active"
    assert (restored["company"], restored["city"]) == (original["company"], original["city"])


def test_restore_by_policy_and_time_range(lc_config, lc_sandbox):
    before = archived_ids(lc_sandbox)
    plan = make_plan(lc_config, "--policy", "stale-leads")
    apply(lc_config, plan["id"])
    nothing = run(
        lc_config, "restore", "--policy", "stale-leads", "--until", "2000-01-01", "--yes", "--json"
    )
    assert json.loads(nothing.stdout)["policies"] == {}
    result = run(lc_config, "restore", "--policy", "stale-leads", "--since", "1h", "--yes")
    assert result.exit_code == 0, result.stderr
    assert archived_ids(lc_sandbox) == before


def test_restore_needs_exactly_one_selector(lc_config):
    assert run(lc_config, "restore").exit_code == 2
    assert run(lc_config, "restore", "--plan", "x", "--policy", "y").exit_code == 2
    assert run(lc_config, "restore", "--record", "1").exit_code == 2
    unknown = run(lc_config, "restore", "--plan", "nope")
    assert unknown.exit_code == 2 and "no plan 'nope'" in unknown.stderr


def test_restore_by_run_undoes_that_apply_run(lc_config, lc_sandbox):
    before = archived_ids(lc_sandbox)
    plan = make_plan(lc_config, "--policy", "stale-leads")
    run_id = apply(lc_config, plan["id"])["run"]
    result = run(lc_config, "restore", "--run", str(run_id), "--yes")
    assert result.exit_code == 0, result.stderr
    assert archived_ids(lc_sandbox) == before


def test_apply_policy_yes_plans_and_applies_in_one_step(lc_config, lc_sandbox):
    assert run(lc_config, "pull").exit_code == 0
    assert run(lc_config, "apply", "--policy", "stale-leads").exit_code == 2  # needs --yes
    result = run(lc_config, "apply", "--policy", "stale-leads", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["policies"]["stale-leads"]["done"] > 0
    # approval still holds in the one-step form
    refused = run(lc_config, "apply", "--policy", "void-junk-contacts", "--yes")
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
