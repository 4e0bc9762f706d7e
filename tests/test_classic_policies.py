"""The classic policies exactly as config.example.toml ships them, end to end against the
sandbox as `crmsync sandbox` starts it: pull -> plan -> approve -> apply -> restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.sandbox import SandboxCRM

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


@pytest.fixture
def example(tmp_path, monkeypatch):
    with SandboxCRM(records=500, seed=42) as crm:  # `crmsync sandbox` defaults
        crm.start()
        text = EXAMPLE.read_text().replace("http://127.0.0.1:8765/api/v1/", crm.api_url)
        config = tmp_path / "crmsync.toml"
        config.write_text(text)
        monkeypatch.setenv("CRMSYNC_SANDBOX_TOKEN", crm.token)
        yield crm, config


def cli_run(config: Path, *args: str):
    return CliRunner().invoke(cli, ["-c", str(config), *args])


def test_classic_policies_plan_approve_apply_and_restore(example):
    crm, config = example
    assert cli_run(config, "pull", "sandbox").exit_code == 0
    assert cli_run(config, "validate").exit_code == 0
    planned = cli_run(config, "plan", "--json", "--operator", "alice")
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    counts = {p["policy"]: p["records"] for p in plan["policies"]}
    assert set(counts) == {"stale-leads", "old-lost-deals", "duplicate-contacts"}
    assert all(counts.values()), counts

    # voiding duplicates needs a second operator
    assert cli_run(config, "apply", plan["id"]).exit_code == 3
    assert crm.stats()["writes"] == {}
    assert cli_run(config, "approve", plan["id"], "--operator", "bob").exit_code == 0
    applied = cli_run(config, "apply", plan["id"], "--json", "--operator", "bob")
    assert applied.exit_code == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert {p: s.get("done", 0) for p, s in result["policies"].items()} == counts
    writes = crm.stats()["writes"]
    assert len(writes) == sum(counts.values()) and set(writes.values()) == {1}
    statuses = {"Leads": "archived", "Deals": "archived", "Contacts": "voided"}
    for key in writes:
        module, record_id = key.split("/", 1)
        assert crm.record(module, record_id)["status"] == statuses[module]

    # undo the whole apply
    restored = cli_run(config, "restore", "--plan", plan["id"], "--yes", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert all(
        crm.record(*key.split("/", 1))["status"] == "active" for key in crm.stats()["writes"]
    )
    verified = cli_run(config, "audit", "verify", "--json")
    assert verified.exit_code == 0, verified.stdout
