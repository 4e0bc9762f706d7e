"""`crmsync_plans_awaiting_approval` counts every plan that waits for a person, by plan kind:
policy plans, `crmsync purge` plans and erasure plans; a purge or erasure plan's maker cannot
approve it, so only someone else's approval takes it off the gauge."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from crmsync.unattended.metrics import Exposition, StoreFigures, _render_store, read_store
from tests.lifecycle_support import run
from tests.test_purge import LOST, SEEDED_VOIDED, age, make_config

ERASURE = '\n[erasure]\nmax_records = 5\ndefault_region = "CN"\n'


def awaiting(config) -> dict[str, float]:
    out = Exposition()
    _render_store(out, read_store(config.parent / "mirror.db"))
    return {
        s.labels["kind"]: s.value
        for fam in text_string_to_metric_families(out.text())
        for s in fam.samples
        if s.name == "crmsync_plans_awaiting_approval"
    }


def test_purge_and_erasure_plans_waiting_for_approval_are_counted_by_kind(
    tmp_path, lc_sandbox, monkeypatch
):
    config = make_config(tmp_path, lc_sandbox, monkeypatch)
    config.write_text(config.read_text() + ERASURE)
    assert run(config, "pull").exit_code == 0
    plan = json.loads(run(config, "plan", "--json", "--policy", "void-lost").stdout)
    assert run(config, "apply", plan["id"]).exit_code == 0  # void-lost needs no approval
    age(config, days=31)
    assert awaiting(config) == {"policy": 0, "purge": 0, "erasure": 0}

    purge = run(config, "purge", "--json", "--operator", "alice")
    assert purge.exit_code == 0, purge.stderr
    purge_id = json.loads(purge.stdout)["plan"]
    active = next(i for i in lc_sandbox.ids("Leads") if i not in LOST + SEEDED_VOIDED)
    erase = run(config, "erase", "--record", f"sandbox:Leads:{active}", "--basis",
                "GDPR-17-1-b", "--operator", "alice", "--json")  # fmt: skip
    assert erase.exit_code == 0, erase.stderr
    erase_id = json.loads(erase.stdout)["id"]
    assert awaiting(config) == {"policy": 0, "purge": 1, "erasure": 1}

    assert run(config, "approve", purge_id, "--operator", "alice").exit_code != 0  # the maker
    assert awaiting(config)["purge"] == 1
    assert run(config, "approve", purge_id, "--operator", "carol").exit_code == 0
    assert run(config, "approve", erase_id, "--operator", "bob").exit_code == 0
    assert awaiting(config) == {"policy": 0, "purge": 0, "erasure": 0}


def test_the_gauge_has_one_series_per_kind_and_keeps_unknown_kinds():
    out = Exposition()
    _render_store(out, StoreFigures(awaiting_approval={"policy": 2, "later-kind": 1}))
    (fam,) = [
        f
        for f in text_string_to_metric_families(out.text())
        if f.name == "crmsync_plans_awaiting_approval"
    ]
    assert {s.labels["kind"]: s.value for s in fam.samples} == {
        "policy": 2, "purge": 0, "erasure": 0, "later-kind": 1,
    }  # fmt: skip
