"""apply takes its pre-change copy in the snapshot repository; restore --data reads it back."""

from __future__ import annotations

import json
import sqlite3

from crmsync.config import load_config
from crmsync.plugins import build_registry
from crmsync.snapshots.configured import open_configured
from crmsync.snapshots.prechange import PreChangeSnapshots
from crmsync.store import open_store
from crmsync.store.base import canonical_record
from tests.lifecycle_support import make_plan, run


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
