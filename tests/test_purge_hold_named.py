"""`crmsync purge --dry-run` names the legal hold(s) that restrict each record (id and reason),
in the terminal and in --json, for holds by record id, tag and filter, and a record under two."""

from __future__ import annotations

import json

import pytest

from tests.lifecycle_support import run
from tests.test_purge import HELD_ID, IN_AUSTIN, TAGGED_VIP, age, make_config


@pytest.fixture
def voided(tmp_path, lc_sandbox, monkeypatch):
    """Pulled, the Lost leads voided, aged past retention (as tests/test_purge.py's ``pg``)."""
    config = make_config(tmp_path, lc_sandbox, monkeypatch)
    assert run(config, "pull").exit_code == 0
    plan = json.loads(run(config, "plan", "--json", "--policy", "void-lost").stdout)
    assert run(config, "apply", plan["id"]).exit_code == 0
    age(config, days=31)
    return config


def hold(config, *args: str) -> None:
    result = run(config, "hold", "add", *args)
    assert result.exit_code == 0, result.stderr


def test_dry_run_names_each_restricted_records_holds(voided):
    hold(voided, "--record", f"sandbox:Leads:{HELD_ID}", "--record",
         f"sandbox:Leads:{IN_AUSTIN}", "--reason", "case 17")  # fmt: skip
    hold(voided, "--tag", "vip", "--reason", "key accounts")
    hold(voided, "--connection", "sandbox", "--module", "Leads", "--filter",
         '{"field": "city", "op": "eq", "value": "Austin"}', "--reason", "audit")  # fmt: skip
    ids = {h["reason"]: h["id"] for h in json.loads(run(voided, "hold", "list", "--json").stdout)}

    result = run(voided, "purge", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    why = {
        i["record_id"]: i["why"]
        for p in json.loads(result.stdout)["parts"]
        for i in p["items"]
        if i["action"] == "restrict"
    }
    assert set(why) == {HELD_ID, TAGGED_VIP, IN_AUSTIN}
    assert why[HELD_ID].endswith(f"under legal hold {ids['case 17']} ('case 17'): restrict")
    assert f"under legal hold {ids['key accounts']} ('key accounts')" in why[TAGGED_VIP]
    both = sorted([f"{ids['case 17']} ('case 17')", f"{ids['audit']} ('audit')"])
    assert why[IN_AUSTIN].endswith(f"under legal holds {', '.join(both)}: restrict")

    terminal = run(voided, "purge", "--dry-run").stdout
    assert f"  {HELD_ID}: {why[HELD_ID]}" in terminal
    assert f"  {IN_AUSTIN}: {why[IN_AUSTIN]}" in terminal
