"""crmsync purge and the purge path of apply, end to end through the CLI against the sandbox
CRM: retention decides, holds and statutory floors block (restrict), a verified snapshot comes
first, every refusal exits 3 with nothing deleted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.audit import AuditQuery, verify_store
from crmsync.compliance.purge import make_purge_plan
from crmsync.config import load_config
from crmsync.plans.apply import apply_plan
from crmsync.plugins import get_registry
from crmsync.snapshots.configured import open_configured
from crmsync.store import open_store
from tests.lifecycle_support import TOKEN, run, write_config

LOST = [  # the sandbox's (seed 11) active Leads with lead_status Lost: void-lost voids them
    "4150000000003", "4150000000007", "4150000000038", "4150000000079", "4150000000113",
    "4150000000114", "4150000000127", "4150000000154", "4150000000161", "4150000000204",
]  # fmt: skip
SEEDED_VOIDED = ["4150000000119", "4150000000199"]
HELD_ID, TAGGED_VIP, IN_AUSTIN = "4150000000003", "4150000000127", "4150000000114"

POLICIES = [
    {
        "name": "void-lost",
        "connection": "sandbox",
        "module": "Leads",
        "action": "void",
        "require_approval": False,
        "max_percent": 100,
        "filter": {"field": "lead_status", "op": "eq", "value": "Lost"},
    },
    {
        "name": "restore-voided",
        "connection": "sandbox",
        "module": "Leads",
        "action": "restore",
        "enabled": False,
        "max_percent": 100,
        "filter": {"field": "@status", "op": "eq", "value": "voided"},
    },
    {
        "name": "purge-voided-leads",
        "connection": "sandbox",
        "module": "Leads",
        "action": "purge",
        "enabled": False,
        "max_percent": 100,
        "filter": {"field": "@status", "op": "eq", "value": "voided"},
    },
]
RETENTION = """
[snapshots]
repository = "snaps"

[[retention.rules]]
connection = "sandbox"
module = "Leads"
purge_voided_after = "30d"
"""


def make_config(tmp_path, sandbox, monkeypatch, retention=RETENTION):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    path = write_config(tmp_path, sandbox.api_url, policies=POLICIES)
    path.write_text(path.read_text() + retention)
    return path


@pytest.fixture
def pg(tmp_path, lc_sandbox, monkeypatch):
    """Pulled, the Lost leads voided (now), then every voided record aged 31 days."""
    config = make_config(tmp_path, lc_sandbox, monkeypatch)
    assert run(config, "pull").exit_code == 0
    plan = json.loads(run(config, "plan", "--json", "--policy", "void-lost").stdout)
    assert run(config, "apply", plan["id"]).exit_code == 0
    age(config, days=31)
    return config


def age(config, days, ids=None):
    """The voided records were voided ``days`` ago (their retention clock)."""
    moment = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with open_store(config.parent / "mirror.db") as store:
        sql = "UPDATE mirror SET status_since = ? WHERE status = 'voided'"
        args = [moment]
        if ids is not None:
            sql += f" AND record_id IN ({', '.join('?' * len(ids))})"
            args += ids
        store._db.execute(sql, args)


def purge_json(config, *args):
    result = run(config, "purge", "--json", "--operator", "alice", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def items(data, action="purge"):
    return {
        i["record_id"]: i["why"] for p in data["parts"] for i in p["items"] if i["action"] == action
    }


def alive(sandbox, ids):
    return {i for i in ids if sandbox.record("Leads", i) is not None}


def test_dry_run_shows_each_record_and_why_and_stores_nothing(pg, lc_sandbox):
    age(pg, days=10, ids=["4150000000204"])  # voided 10 days ago: inside 30d
    data = purge_json(pg, "--dry-run")
    assert data["dry_run"] is True and data["plan"] is None
    found = items(data)
    assert set(found) == set(LOST + SEEDED_VOIDED) - {"4150000000204"}
    assert "retention 30d, past by 1 d" in found[HELD_ID]
    assert found[HELD_ID].startswith("voided since ")
    assert json.loads(run(pg, "plans", "--json").stdout)[0]["policies"][0]["policy"] == "void-lost"
    text = run(pg, "purge", "--dry-run").stdout
    assert "retention-purge:sandbox/Leads: 11 record(s)" in text
    assert f"  {HELD_ID}: voided since " in text
    assert "dry run: 11 record(s) would be purged; nothing was stored" in text
    assert alive(lc_sandbox, LOST) == set(LOST)


def test_purge_waits_for_a_second_person_then_deletes_after_a_verified_snapshot(pg, lc_sandbox):
    data = purge_json(pg)
    plan_id = data["plan"]
    purged = set(items(data))
    assert purged == set(LOST + SEEDED_VOIDED)
    refused = run(pg, "apply", plan_id, "--operator", "alice")
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert alive(lc_sandbox, purged) == purged  # nothing deleted
    assert run(pg, "approve", plan_id, "--operator", "carol").exit_code == 0
    applied = run(pg, "apply", plan_id, "--json", "--operator", "alice")
    assert applied.exit_code == 0, applied.stderr
    summary = json.loads(applied.stdout)
    assert summary["policies"]["retention-purge:sandbox/Leads"] == {"done": len(purged)}
    assert alive(lc_sandbox, purged) == set()
    (snapshot_id,) = summary["snapshots"]
    config = load_config(pg, get_registry())
    repo = open_configured(config.snapshots)
    kept = {r.record_id for r in repo.records(snapshot_id, "Leads")}
    assert kept == purged  # exactly those records
    with open_store(pg.parent / "mirror.db") as store:
        entries = store.find_audit(AuditQuery(action="purge", plan_id=plan_id))
        assert {e.record_id for e in entries} == purged
        assert {(e.outcome, e.after_status, e.snapshot_id) for e in entries} == {
            ("ok", "purged", snapshot_id)
        }
        assert json.loads(entries[0].detail)["basis"] == "PIPL-47-1-2"
        assert store.get_record("sandbox", "Leads", HELD_ID).status == "purged"
        assert verify_store(store).ok


def test_held_records_survive_every_purge_by_id_tag_filter_and_module(pg, lc_sandbox):
    assert run(pg, "hold", "add", "--record", f"sandbox:Leads:{HELD_ID}", "--reason", "case 17")
    assert run(pg, "hold", "add", "--tag", "vip", "--reason", "key accounts").exit_code == 0
    by_filter = run(
        pg,
        "hold", "add", "--connection", "sandbox", "--module", "Leads",
        "--filter", '{"field": "city", "op": "eq", "value": "Austin"}', "--reason", "audit",
    )  # fmt: skip
    assert by_filter.exit_code == 0, by_filter.stderr
    held = {HELD_ID, TAGGED_VIP, IN_AUSTIN}
    data = purge_json(pg)
    assert set(items(data)) == set(LOST + SEEDED_VOIDED) - held
    restricted = items(data, "restrict")
    assert set(restricted) == held and "legal hold" in restricted[HELD_ID]
    assert run(pg, "approve", data["plan"], "--operator", "carol").exit_code == 0
    assert run(pg, "apply", data["plan"]).exit_code == 0
    assert alive(lc_sandbox, LOST) == held
    with open_store(pg.parent / "mirror.db") as store:
        rows = store._db.execute(
            "SELECT record_id, restricted_reason FROM mirror WHERE restricted_at IS NOT NULL"
        ).fetchall()
        assert {r[0] for r in rows} == held
        assert all(r[1].startswith("GDPR-17-3-e: hold hold-") for r in rows)
        assert len(store.find_audit(AuditQuery(action="restrict"))) == 3
    # a hold on the whole module: the next purge restricts nothing new and purges nothing
    assert run(pg, "hold", "add", "--connection", "sandbox", "--module", "Leads", "--reason", "x")
    assert items(purge_json(pg, "--dry-run")) == {}
    # restricted records are out of every ordinary policy's reach
    restore = json.loads(run(pg, "plan", "--json", "--policy", "restore-voided").stdout)
    assert restore["policies"][0]["records"] == 0
    # once every hold is released, the next purge takes them
    for hold in json.loads(run(pg, "hold", "list", "--json").stdout):
        assert run(pg, "hold", "release", hold["id"], "--reason", "closed").exit_code == 0
    assert set(items(purge_json(pg, "--dry-run"))) == held


def test_naming_a_record_that_may_not_go_is_refused_with_exit_3_and_nothing_deleted(pg, lc_sandbox):
    assert run(pg, "hold", "add", "--record", f"sandbox:Leads:{HELD_ID}", "--reason", "case")
    age(pg, days=5, ids=["4150000000204"])
    active = next(i for i in lc_sandbox.ids("Leads") if i not in LOST + SEEDED_VOIDED)
    cases = {
        HELD_ID: "legal hold",
        active: "not voided (status",
        "4150000000204": "inside its retention period: voided since",
        "999": "not in the mirror",
    }
    for record_id, message in cases.items():
        result = run(pg, "purge", "--record", f"sandbox:Leads:{record_id}")
        assert result.exit_code == 3, (record_id, result.stderr)
        assert f"sandbox:Leads:{record_id}: {message}" in result.stderr
    # one bad record among good ones: all refused, no plan
    mixed = run(pg, "purge", "--record", "sandbox:Leads:4150000000007", "--record",
                f"sandbox:Leads:{HELD_ID}")  # fmt: skip
    assert mixed.exit_code == 3
    plans = json.loads(run(pg, "plans", "--json").stdout)
    assert [p["policies"][0]["policy"] for p in plans] == ["void-lost"]
    assert alive(lc_sandbox, [*LOST, active]) == {*LOST, active}
    # a record that qualifies is planned alone
    named = purge_json(pg, "--record", "sandbox:Leads:4150000000007")
    assert set(items(named)) == {"4150000000007"}


def test_a_hold_added_between_plan_and_apply_still_stops_the_purge(pg, lc_sandbox):
    data = purge_json(pg)
    assert HELD_ID in items(data)
    assert run(pg, "approve", data["plan"], "--operator", "carol").exit_code == 0
    assert run(pg, "hold", "add", "--record", f"sandbox:Leads:{HELD_ID}", "--reason", "late")
    applied = run(pg, "apply", data["plan"], "--json")
    assert applied.exit_code == 3 and "legal hold" in applied.stderr
    counts = json.loads(applied.stdout)["policies"]["retention-purge:sandbox/Leads"]
    assert counts == {"held": 1, "done": len(LOST + SEEDED_VOIDED) - 1}
    assert alive(lc_sandbox, LOST) == {HELD_ID}
    with open_store(pg.parent / "mirror.db") as store:
        outcomes = {
            (e.action, e.outcome)
            for e in store.find_audit(AuditQuery(record_id=HELD_ID, plan_id=data["plan"]))
        }
        assert outcomes == {("purge", "skipped:held"), ("restrict", "ok")}


def test_purge_refuses_without_a_snapshot_repository(tmp_path, lc_sandbox, monkeypatch):
    config = make_config(tmp_path, lc_sandbox, monkeypatch, RETENTION.split("\n", 3)[3])
    assert run(config, "pull").exit_code == 0
    age(config, days=31)
    assert items(purge_json(config, "--dry-run"))  # a dry run needs no copy
    refused = run(config, "purge")
    assert refused.exit_code == 3 and "[snapshots] repository" in refused.stderr
    assert alive(lc_sandbox, SEEDED_VOIDED) == set(SEEDED_VOIDED)


def test_a_snapshot_that_does_not_read_back_stops_the_purge_with_nothing_deleted(
    pg, lc_sandbox, monkeypatch
):
    from crmsync.snapshots.repository import Repository, SnapshotRecord

    data = purge_json(pg)
    assert run(pg, "approve", data["plan"], "--operator", "carol").exit_code == 0
    real = Repository.records

    def damaged(self, *args, **kwargs):
        for rec in real(self, *args, **kwargs):
            yield SnapshotRecord(rec.module, rec.record_id, {**rec.data, "email": "x"})

    monkeypatch.setattr(Repository, "records", damaged)
    applied = run(pg, "apply", data["plan"])
    assert applied.exit_code == 3 and "snapshot verification failed" in applied.stderr
    assert alive(lc_sandbox, LOST) == set(LOST)


def test_purge_policy_plans_only_what_retention_allows_and_needs_approval(pg, lc_sandbox):
    assert run(pg, "hold", "add", "--record", f"sandbox:Leads:{HELD_ID}", "--reason", "case")
    age(pg, days=3, ids=["4150000000204"])
    plan = json.loads(
        run(pg, "plan", "--json", "--policy", "purge-voided-leads", "--operator", "alice").stdout
    )
    (policy,) = plan["policies"]
    assert policy["action"] == "purge" and policy["requires_approval"] is True
    assert policy["records"] == len(LOST + SEEDED_VOIDED) - 2  # held; inside retention
    assert run(pg, "apply", plan["id"]).exit_code == 3
    assert run(pg, "approve", plan["id"], "--operator", "carol").exit_code == 0
    assert run(pg, "apply", plan["id"]).exit_code == 0
    assert alive(lc_sandbox, LOST) == {HELD_ID, "4150000000204"}
    with open_store(pg.parent / "mirror.db") as store:
        entries = store.find_audit(AuditQuery(action="purge", plan_id=plan["id"]))
        assert {json.loads(e.detail)["basis"] for e in entries} == {"PIPL-47-1-2"}
        assert all(e.snapshot_id for e in entries) and len(entries) == policy["records"]


def test_restricted_by_the_statutory_floor_then_purged_when_it_passes(
    tmp_path, lc_sandbox, monkeypatch
):
    floor = RETENTION + 'keep_at_least = "5y"\nkeep_basis = "HGB-257"\n'
    config_path = make_config(tmp_path, lc_sandbox, monkeypatch, floor)
    assert run(config_path, "pull").exit_code == 0
    config = load_config(config_path, get_registry())
    now = datetime.now(UTC) + timedelta(days=31)  # created 2023-2025: floors end 2028-2030
    with open_store(config.store_path) as store:
        first = make_purge_plan(config, store, operator="alice", now=now)
        assert first.counts["retention-purge:sandbox/Leads"] == 0
        restricting = first.entries_by_part["retention-restrict:sandbox/Leads"]
        assert {e.record_id for e in restricting} == set(SEEDED_VOIDED)
        assert "statutory minimum until 20" in restricting[0].why
        applied = apply_plan(config, get_registry(), store, first.plan.id, operator="bob", now=now)
        assert applied.counts == {"retention-restrict:sandbox/Leads": {"done": 2}}
        record = store._db.execute(
            "SELECT restricted_reason FROM mirror WHERE record_id = ?", (SEEDED_VOIDED[0],)
        ).fetchone()
        assert record[0].startswith("HGB-257: statutory until 20")
        (entry,) = store.find_audit(AuditQuery(action="restrict", record_id=SEEDED_VOIDED[0]))
        assert json.loads(entry.detail)["basis"] == "HGB-257"

        later = datetime(2031, 1, 1, tzinfo=UTC)
        second = make_purge_plan(config, store, operator="alice", now=later)
        assert second.counts["retention-purge:sandbox/Leads"] == 2
        store.approve_plan(second.plan.id, "carol", _approval(second.plan.id))
        apply_plan(config, get_registry(), store, second.plan.id, operator="bob", now=later)
        assert alive(lc_sandbox, SEEDED_VOIDED) == set()
        purged = store._db.execute(
            "SELECT status, restricted_at FROM mirror WHERE record_id = ?", (SEEDED_VOIDED[0],)
        ).fetchone()
        assert purged == ("purged", None)


def _approval(plan_id):
    from crmsync.audit.model import AuditEntry

    return AuditEntry("plan.approve", "carol", plan_id=plan_id)


def test_run_plans_a_purge_policy_and_waits_for_approval(tmp_path, lc_sandbox, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    purge_policy = {**POLICIES[2], "enabled": True}
    path = write_config(tmp_path, lc_sandbox.api_url, policies=[purge_policy])
    path.write_text(path.read_text() + RETENTION)
    assert run(path, "pull").exit_code == 0
    age(path, days=31)
    result = run(path, "run")
    assert result.exit_code == 4, result.stdout + result.stderr
    (plan,) = json.loads(run(path, "plans", "--json").stdout)
    assert plan["policies"][0]["records"] == len(SEEDED_VOIDED)
    assert alive(lc_sandbox, SEEDED_VOIDED) == set(SEEDED_VOIDED)


def test_an_interrupted_purge_finishes_when_applied_again_without_deleting_twice(
    pg, lc_sandbox, monkeypatch
):
    from crmsync.errors import ConnectorError
    from crmsync_connectors.rest.connector import RestSession

    data = purge_json(pg)
    assert run(pg, "approve", data["plan"], "--operator", "carol").exit_code == 0
    real = RestSession.delete

    def answer_lost(self, module, ids):
        real(self, module, ids)  # the CRM deletes them; the answer never arrives
        raise ConnectorError("connection reset", connection="sandbox", module=module)

    monkeypatch.setattr(RestSession, "delete", answer_lost)
    assert run(pg, "apply", data["plan"]).exit_code == 1
    remaining = alive(lc_sandbox, LOST + SEEDED_VOIDED)
    assert 0 < len(remaining) < len(LOST + SEEDED_VOIDED)  # the first batch went
    monkeypatch.setattr(RestSession, "delete", real)
    lc_sandbox.reset_stats()
    again = run(pg, "apply", data["plan"], "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "applied"
    assert alive(lc_sandbox, LOST + SEEDED_VOIDED) == set()
    written = lc_sandbox.stats()["writes"]  # only the rest, once each: nothing sent twice
    assert {key.split("/", 1)[1] for key in written} == remaining
    assert set(written.values()) == {1}
    with open_store(pg.parent / "mirror.db") as store:
        entries = store.find_audit(AuditQuery(action="purge", plan_id=data["plan"]))
        assert sorted(e.record_id for e in entries) == sorted(LOST + SEEDED_VOIDED)
        assert {e.outcome for e in entries} == {"ok"}
        assert store.get_record("sandbox", "Leads", LOST[0]).status == "purged"


def test_a_purge_beyond_the_rules_max_records_is_stopped(tmp_path, lc_sandbox, monkeypatch):
    config = make_config(tmp_path, lc_sandbox, monkeypatch, RETENTION + "max_records = 1\n")
    assert run(config, "pull").exit_code == 0
    age(config, days=31)
    stopped = run(config, "purge", "--operator", "alice", "--json")
    assert stopped.exit_code == 3 and "blast radius exceeded (2 records > max_records 1)" in (
        stopped.stderr
    )
    (plan,) = json.loads(run(config, "plans", "--json").stdout)
    assert run(config, "approve", plan["id"], "--operator", "carol").exit_code == 0
    assert run(config, "apply", plan["id"]).exit_code == 3
    assert alive(lc_sandbox, SEEDED_VOIDED) == set(SEEDED_VOIDED)
