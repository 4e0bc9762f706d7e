"""`crmsync plans show` tells a plan that is still to be applied ("would change", "needs
approval" while it does) from one that was applied in part or in full (what was done, per
policy, and who approved)."""

from __future__ import annotations

import json

import pytest

from crmsync.config import load_config
from crmsync.plans.apply import apply_plan
from crmsync.plugins import build_registry
from crmsync.store import open_store
from tests.lifecycle_support import POLICIES, TOKEN, make_plan, run, write_config


class Interrupted(Exception):
    """Stands for a crash after the first batch was written."""


@pytest.fixture
def cfg(tmp_path, lc_sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    return write_config(tmp_path, lc_sandbox.api_url, policies=POLICIES)


def show(cfg, plan_id: str) -> str:
    result = run(cfg, "plans", "show", plan_id)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_an_applied_plan_shows_what_was_done_and_who_approved_not_what_would_change(
    cfg, lc_sandbox
):
    plan = make_plan(cfg, "--policy", "void-junk-contacts")
    n = plan["policies"][0]["records"]
    fresh = show(cfg, plan["id"])
    assert "needs approval" in fresh and f"{n} records would change" in fresh

    assert run(cfg, "approve", plan["id"], "--operator", "bob").exit_code == 0
    approved = show(cfg, plan["id"])
    assert "needs approval" not in approved and "approved by bob" in approved
    assert "would change" in approved  # approved, not applied yet

    drifted = lc_sandbox.ids("Contacts")[0]  # changed in the CRM after the plan: skipped
    lc_sandbox.clock.advance(60)
    lc_sandbox.store.update("Contacts", int(drifted), {"city": "Ningbo"}, lc_sandbox.clock.iso())
    assert run(cfg, "apply", plan["id"], "--operator", "alice").exit_code == 3  # the drift
    shown = show(cfg, plan["id"])
    assert "would change" not in shown and "needs approval" not in shown
    assert "(applied)" in shown and "approved by bob" in shown
    assert f"done {n - 1}, drift 1" in shown
    data = json.loads(run(cfg, "plans", "show", plan["id"], "--json").stdout)
    (part,) = data["policies"]
    assert part["items"] == {"done": n - 1, "drift": 1} and part["needs_approval"] is False


def test_a_partly_applied_plan_shows_done_and_left_and_how_to_finish(cfg, lc_sandbox):
    plan = make_plan(cfg, "--policy", "stale-leads")  # needs no approval; batches of 7
    n = plan["policies"][0]["records"]
    assert n > 7
    registry = build_registry()
    config = load_config(cfg, registry)

    def crash(policy: str, size: int) -> None:
        raise Interrupted

    with open_store(config.store_path) as store, pytest.raises(Interrupted):
        apply_plan(config, registry, store, plan["id"], operator="alice", on_batch=crash)
    shown = show(cfg, plan["id"])
    assert "(partly applied)" in shown and "would change" not in shown
    assert f"done 7; {n - 7} not yet applied" in shown
    assert f"Finish with: crmsync apply {plan['id']}" in shown
