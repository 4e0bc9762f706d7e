"""[retention] config (errors name the key), the retention clock (store schema 8: status_since,
migrated from schema 7), archived records past their maximum, and what retention and holds add
to snapshot forget."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.audit import AuditEntry
from crmsync.compliance import holds
from crmsync.compliance.purge import make_purge_plan
from crmsync.compliance.retention import check_retention
from crmsync.compliance.snapshot_rules import overrides
from crmsync.config import parse_config
from crmsync.errors import ConfigError
from crmsync.hookspecs import PulledRecord
from crmsync.snapshots import crypto
from crmsync.store import open_store
from crmsync.store.migrations import SCHEMA_VERSION
from tests.lifecycle_support import run
from tests.test_store_migrations import make_store_at

BASE = """
[store]
path = "s.db"

[connections.sales]
connector = "memory"
url = "http://example.invalid"
"""


def config_with(registry, tmp_path, retention: str):
    path = tmp_path / "crmsync.toml"
    path.write_text(BASE + retention)
    return parse_config(path.read_text(), registry, path=path)


@pytest.mark.parametrize(
    ("table", "path", "phrase"),
    [
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "6 months"\n',
         "retention.rules[0].purge_voided_after", "expected a duration such as '180d'"),
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "1d"\nkeep = 1\n',
         "retention.rules[0].keep", "unknown key"),
        ('[[retention.rules]]\nconnection = "crm"\npurge_voided_after = "1d"\n',
         "retention.rules[0].connection", "no connection named 'crm'"),
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "1d"\n'
         'keep_at_least = "10y"\n', "retention.rules[0].keep_basis", "legal basis"),
        ('[[retention.rules]]\nconnection = "sales"\n', "retention.rules[0]", "says nothing"),
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "1d"\n'
         '[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "2d"\n',
         "retention.rules[1]", "a second rule for sales/every module"),
        ('[retention]\nsnapshots_max_age = 30\n', "retention.snapshots_max_age", "string"),
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "1d"\n'
         'keep_from = "birth"\n', "retention.rules[0].keep_from", "created"),
        ('[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "1d"\n'
         'purge_basis = "GDPR 17"\n', "retention.rules[0].purge_basis",
         "'GDPR 17' is not a legal-basis code"),
    ],
)  # fmt: skip
def test_bad_retention_config_names_the_key(registry, tmp_path, table, path, phrase):
    with pytest.raises(ConfigError) as err:
        config_with(registry, tmp_path, table)
    assert err.value.path == path and phrase in str(err.value)


def test_the_module_rule_wins_over_the_connection_wide_one():
    retention = check_retention(
        {
            "rules": [
                {"connection": "sales", "purge_voided_after": "30d"},
                {"connection": "sales", "module": "Leads", "purge_voided_after": "180d"},
            ]
        }
    )
    assert retention.rule_for("sales", "Leads").purge_voided_after == timedelta(days=180)
    assert retention.rule_for("sales", "Deals").purge_voided_after == timedelta(days=30)
    assert retention.rule_for("other", "Leads") is None


def test_schema_7_store_migrates_with_the_clock_from_the_audit_log(tmp_path):
    path = tmp_path / "old.db"
    make_store_at(path, 7)
    db = sqlite3.connect(path, isolation_level=None)
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at)"
        " VALUES ('sales', 'Leads', ?, NULL, 'voided', '{}', 'h', '2024-01-01T00:00:00Z', ?)",
        [("L1", "2025-06-01T00:00:00Z"), ("L2", "2025-07-01T00:00:00Z")],
    )
    db.close()
    with open_store(path) as store:  # audit entries as schema 7 wrote them, then re-open
        store._db.execute("PRAGMA user_version = 7")
        store.append_audit(
            [
                AuditEntry("void", "bob", connection="sales", module="Leads", record_id="L1",
                           before_status="active", after_status="voided"),
            ]
        )  # fmt: skip
        voided_at = store.audit_head().time
        # schema 9's objects, then schema 8's
        for statement in ("DROP TRIGGER mirror_change_gen", "DROP TRIGGER mirror_delete_unmarks",
                          "DROP INDEX mirror_changed", "DROP TABLE snapshot_marks",
                          "DROP TABLE mirror_generation",
                          "ALTER TABLE mirror DROP COLUMN change_gen",
                          "DROP TRIGGER mirror_status_since", "DROP INDEX mirror_restricted",
                          "DROP TRIGGER mirror_restriction_lifted",
                          "DROP TABLE legal_holds", "DROP TABLE legal_hold_records",
                          "ALTER TABLE mirror DROP COLUMN status_since",
                          "ALTER TABLE mirror DROP COLUMN restricted_at",
                          "ALTER TABLE mirror DROP COLUMN restricted_reason"):  # fmt: skip
            store._db.execute(statement)
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        since = dict(store._db.execute("SELECT record_id, status_since FROM mirror").fetchall())
        assert since == {"L1": voided_at, "L2": "2025-07-01T00:00:00Z"}
        assert holds.list_holds(store) == []


def test_the_clock_restarts_when_the_status_changes_and_only_then(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run_id = store.start_run("pull", "sales", "Leads")
        store.commit_page("sales", "Leads", run_id, [PulledRecord("L1", {"a": 1}, status="active")])
        clock = "SELECT status_since FROM mirror WHERE record_id = 'L1'"
        assert store._db.execute(clock).fetchone() == (None,)  # NULL: since first seen
        store._db.execute("UPDATE mirror SET status_since = '2020-01-01T00:00:00Z'")
        store.commit_page("sales", "Leads", run_id, [PulledRecord("L1", {"a": 2}, status="active")])
        assert store._db.execute(clock).fetchone() == ("2020-01-01T00:00:00Z",)
        with store.transaction() as tx:
            tx.set_status("sales", "Leads", "L1", "voided")
        assert store._db.execute(clock).fetchone()[0] > "2026"


def test_restoring_a_restricted_record_lifts_the_restriction(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run_id = store.start_run("pull", "sales", "Leads")
        records = [PulledRecord(i, {}, status="voided") for i in ("L1", "L2")]
        store.commit_page("sales", "Leads", run_id, records)
        store._db.execute("UPDATE mirror SET restricted_at = 'x', restricted_reason = 'PIPL-47-2'")
        with store.transaction() as tx:
            tx.set_status("sales", "Leads", "L1", "active")
            tx.set_status("sales", "Leads", "L2", "voided")  # unchanged: still restricted
        rows = store._db.execute("SELECT record_id, restricted_at FROM mirror ORDER BY 1")
        assert rows.fetchall() == [("L1", None), ("L2", "x")]


def test_archived_past_their_maximum_are_voided_with_the_reason(registry, tmp_path):
    config = config_with(
        registry,
        tmp_path,
        '[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "30d"\n'
        'purge_archived_after = "3y"\n',
    )
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with open_store(config.store_path) as store:
        run_id = store.start_run("pull", "sales", "Leads")
        store.commit_page(
            "sales",
            "Leads",
            run_id,
            [
                PulledRecord("A1", {}, status="archived"),
                PulledRecord("A2", {}, status="archived"),
                PulledRecord("V1", {}, status="voided"),
            ],
        )
        store._db.execute("UPDATE mirror SET status_since = '2023-01-01T00:00:00Z'")
        store._db.execute(
            "UPDATE mirror SET status_since = '2025-01-01T00:00:00Z' WHERE record_id = 'A2'"
        )
        result = make_purge_plan(config, store, operator="alice", dry_run=True, now=now)
        parts = result.entries_by_part
        assert [e.record_id for e in parts["retention-void:sales/Leads"]] == ["A1"]
        assert "archived since 2023-01-01T00:00:00Z, maximum 3y (purpose ended)" in (
            parts["retention-void:sales/Leads"][0].why
        )
        assert [e.record_id for e in parts["retention-purge:sales/Leads"]] == ["V1"]
        assert store.list_plans() == []  # a dry run stores nothing


def test_held_snapshots_are_kept_and_old_ones_age_out(registry, tmp_path):
    config = config_with(registry, tmp_path, '[retention]\nsnapshots_max_age = "400d"\n')
    now = datetime(2026, 11, 25, tzinfo=UTC)
    with open_store(config.store_path) as store:
        holds.add_hold(store, kind="snapshots", spec={"snapshots": ["aaaa"]}, reason="audit",
                       operator="legal")  # fmt: skip
    snaps = [
        ("aaaa1111", "2020-01-01T00:00:00+00:00"),  # old, but held (by prefix)
        ("bbbb2222", "2025-01-01T00:00:00+00:00"),  # older than 400 days
        ("cccc3333", "2026-11-01T00:00:00+00:00"),  # young
    ]
    decided = overrides(snaps, config, now)
    assert decided["aaaa1111"].keep and "legal hold hold-" in decided["aaaa1111"].reason
    assert not decided["bbbb2222"].keep and "snapshots_max_age 400d" in decided["bbbb2222"].reason
    assert "cccc3333" not in decided
    assert "bbbb2222" not in overrides(snaps, config, now, max_age=False)


def test_snapshot_forget_never_removes_a_held_snapshot(lc_config, monkeypatch):
    monkeypatch.setattr(crypto, "DEFAULT_N", crypto.MIN_N)
    lc_config.write_text(lc_config.read_text() + '\n[snapshots]\ncache_dir = "cache"\n')
    assert run(lc_config, "pull").exit_code == 0
    created = json.loads(run(lc_config, "snapshot", "create", "--json").stdout)[0]["id"]
    held = run(lc_config, "hold", "add", "--snapshot", created[:8], "--reason", "tax audit")
    assert held.exit_code == 0, held.stderr
    out = json.loads(run(lc_config, "snapshot", "forget", created[:8], "--json").stdout)
    assert out["removed"] == []
    assert "legal hold" in out["snapshots"][0]["reasons"][-1]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--reason", "x"], "say what to hold"),
        (["--tag", "a", "--record", "sandbox:Leads:1", "--reason", "x"], "one of"),
        (["--record", "Leads:1", "--reason", "x"], "CONNECTION:MODULE:ID"),
        (["--connection", "nope", "--reason", "x"], "no connection named 'nope'"),
        (["--connection", "sandbox", "--module", "Leads", "--filter", "{", "--reason", "x"],
         "not JSON or TOML"),
        (["--connection", "sandbox", "--module", "Leads", "--filter",
          '{"field": "city", "op": "is", "value": 1}', "--reason", "x"], "--filter"),
        (["--tag", "a", "--reason", "x", "--expires", "soon"], "expected a duration"),
    ],
)  # fmt: skip
def test_bad_hold_arguments_exit_2_and_add_nothing(lc_config, args, phrase):
    result = run(lc_config, "hold", "add", *args)
    assert result.exit_code == 2, result.stderr
    assert phrase in result.stderr
    assert json.loads(run(lc_config, "hold", "list", "--json").stdout) == []


def test_hold_list_and_release_from_the_cli(lc_config):
    added = run(lc_config, "hold", "add", "--tag", "VIP", "--reason", "case 9", "--json")
    hold = json.loads(added.stdout)
    listed = run(lc_config, "hold", "list")
    assert hold["id"] in listed.stdout and "tag 'VIP'" in listed.stdout
    assert run(lc_config, "hold", "release", "hold-nope", "--reason", "x").exit_code == 2
    assert run(lc_config, "hold", "release", hold["id"]).exit_code == 2  # --reason required
    assert run(lc_config, "hold", "release", hold["id"], "--reason", "closed").exit_code == 0
    assert run(lc_config, "hold", "release", hold["id"], "--reason", "again").exit_code == 3
    assert json.loads(run(lc_config, "hold", "list", "--json").stdout) == []
    (released,) = json.loads(run(lc_config, "hold", "list", "--all", "--json").stdout)
    assert released["release_reason"] == "closed"


def test_a_purge_policy_without_a_retention_rule_is_a_config_error(registry, tmp_path):
    policy = (
        '[[policies]]\nname = "purge-old"\nconnection = "sales"\nmodule = "Leads"\n'
        'action = "purge"\nfilter = { field = "@status", op = "eq", value = "voided" }\n'
    )
    with pytest.raises(ConfigError) as err:
        config_with(registry, tmp_path, policy)
    assert err.value.path == "policies.purge-old.action"
    assert "no [[retention.rules]]" in str(err.value)
    rule = '[[retention.rules]]\nconnection = "sales"\npurge_voided_after = "90d"\n'
    config = config_with(registry, tmp_path, policy + rule)
    assert config.policies[0].require_approval is True
