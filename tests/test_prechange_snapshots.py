"""apply takes its pre-change copy in the snapshot repository; restore --data reads it back."""

from __future__ import annotations

import json
import sqlite3

import requests

from crmsync.config import load_config
from crmsync.plugins import build_registry
from crmsync.snapshots.configured import open_configured
from crmsync.snapshots.prechange import PreChangeSnapshots
from crmsync.store import open_store
from crmsync.store.base import canonical_record
from tests.lifecycle_support import TOKEN, archived_ids, make_plan, run


def settings(config_path):
    return load_config(config_path, build_registry()).snapshots


def apply(config, plan_id: str) -> dict:
    result = run(config, "apply", plan_id, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_apply_snapshots_exactly_the_records_it_changes_before_writing(lc_config, lc_sandbox):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    matched = plan["policies"][0]["records"]
    before = {i: lc_sandbox.record("Leads", i) for i in lc_sandbox.ids("Leads")}
    result = apply(lc_config, plan["id"])
    (snapshot_id,) = result["snapshots"]

    repo = open_configured(settings(lc_config))
    info = repo.show(snapshot_id)
    assert info.scope == "selection" and info.tags == ("pre-change",)
    assert info.connection == "sandbox" and info.modules == ("Leads",)
    assert info.records == matched and plan["id"] in info.reason
    kept = {r.record_id: r.data for r in repo.records(snapshot_id)}
    assert len(kept) == matched
    for rid, data in kept.items():  # the copy is the record as it was before the archive
        assert data["status"] == before[rid]["status"] != "archived"
    log = json.loads(
        run(lc_config, "audit", "log", "--action", "archive", "--json", "-n", "0").stdout
    )
    assert {e["snapshot_id"] for e in log} == {snapshot_id}
    assert repo.verify(read_data=True).ok
    store_path = load_config(lc_config, build_registry()).store_path
    db = sqlite3.connect(store_path)
    assert db.execute("SELECT count(*) FROM snapshot_objects").fetchone() == (0,)  # no copies
    assert db.execute("SELECT count(*) FROM snapshot_records WHERE snapshot_id = ?",
                      (snapshot_id,)).fetchone() == (matched,)  # fmt: skip


def test_pre_change_copy_costs_no_data_after_a_whole_snapshot(lc_config, lc_sandbox):
    assert run(lc_config, "pull").exit_code == 0
    whole = run(lc_config, "snapshot", "create", "--json")
    assert whole.exit_code == 0, whole.stderr
    plan = make_plan(lc_config, "--policy", "stale-leads")
    (snapshot_id,) = apply(lc_config, plan["id"])["snapshots"]
    repo = open_configured(settings(lc_config))
    info = repo.show(snapshot_id)
    assert info.summary["new_blobs"] == 0 and info.summary["unchanged"] == info.records > 0
    # and the next whole snapshot still compares with the whole one, not the selection
    again = run(lc_config, "snapshot", "create", "--json")
    assert again.exit_code == 0, again.stderr
    newest = repo.list()[-1]
    assert newest.scope == "all" and newest.parent != snapshot_id


def test_copies_taken_before_store_version_5_are_still_restored(lc_config, tmp_path):
    data = {"id": "L1", "company": "老公司", "status": "active"}
    text, digest = canonical_record(data)
    with open_store(load_config(lc_config, build_registry()).store_path) as store:
        db = store._db  # what crmsync before store version 5 wrote
        db.execute("INSERT INTO snapshot_objects (hash, data) VALUES (?, ?)", (digest, text))
        db.execute(
            "INSERT INTO snapshots (id, created_at, kind, records) VALUES"
            " ('snap-0123456789abcdef', '2026-01-01T00:00:00Z', 'pre-change', 1)"
        )
        db.execute("INSERT INTO snapshot_records VALUES ('snap-0123456789abcdef', 'sandbox',"
                   " 'Leads', 'L1', ?, 'active')", (digest,))  # fmt: skip
        copies = PreChangeSnapshots(settings(lc_config), store)
        assert store.latest_copy_hash("sandbox", "Leads", "L1") == digest
        assert copies.copy(digest) == data
        assert copies.copy("0" * 64) is None


def test_snapshot_restore_to_crm_puts_status_and_fields_back(lc_config, lc_sandbox):
    assert run(lc_config, "pull").exit_code == 0
    whole = json.loads(run(lc_config, "snapshot", "create", "--json").stdout)
    whole_id = whole[0]["id"] if isinstance(whole, list) else whole["id"]
    already = archived_ids(lc_sandbox)  # archived in the snapshot too: nothing to restore
    plan = make_plan(lc_config, "--policy", "stale-leads")
    apply(lc_config, plan["id"])
    archived = archived_ids(lc_sandbox) - already
    edited = next(i for i in lc_sandbox.ids("Leads") if i not in archived)
    original = lc_sandbox.record("Leads", edited)
    requests.patch(
        f"{lc_sandbox.api_url}Leads/{edited}",
        json={"company": "WRONG"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).raise_for_status()
    gone = next(iter(archived))
    lc_sandbox.delete_records("Leads", [gone])

    shown = run(lc_config, "snapshot", "restore", whole_id[:12], "--module", "Leads", "--to-crm")
    assert shown.exit_code == 0, shown.stderr
    assert lc_sandbox.record("Leads", edited)["company"] == "WRONG"  # only a plan so far
    assert "deleted in the CRM since" in shown.stdout and gone in shown.stdout

    result = run(lc_config, "snapshot", "restore", whole_id, "--module", "Leads", "--to-crm",
                 "--yes", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "applied" and summary["gone"] == [f"Leads/{gone}"]
    counts = summary["policies"]
    assert counts["restore:sandbox/Leads"]["done"] == len(archived) - 1
    assert counts["revert:sandbox/Leads"]["done"] == 1
    assert lc_sandbox.record("Leads", edited)["company"] == original["company"]
    assert all(lc_sandbox.record("Leads", i)["status"] == "active" for i in archived - {gone})
    # the revert itself was snapshotted first, and nothing is left to do afterwards
    again = run(lc_config, "snapshot", "restore", whole_id, "--to-crm", "--yes", "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["policies"] == {}


def test_snapshot_restore_needs_one_target_and_known_records(lc_config, lc_sandbox):
    assert run(lc_config, "pull").exit_code == 0
    assert run(lc_config, "snapshot", "create").exit_code == 0
    both = run(lc_config, "snapshot", "restore", "latest", "--to", "x.jsonl", "--to-crm")
    assert both.exit_code == 2 and "either --to" in both.stderr
    unknown = run(lc_config, "snapshot", "restore", "latest", "--record", "Leads/nope", "--to-crm")
    assert unknown.exit_code == 2 and "does not hold Leads/nope" in unknown.stderr
