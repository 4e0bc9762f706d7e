"""Stores written by older crmsync versions open, migrate and keep their data; newer ones are
refused (tests/test_store.py covers that, for every version)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crmsync.audit import AuditEntry, verify_store
from crmsync.hookspecs import PulledRecord
from crmsync.store import open_store
from crmsync.store.migrations import MIGRATIONS, SCHEMA_VERSION


def make_store_at(path: Path, version: int) -> None:
    """A store as crmsync at schema ``version`` left it: that version's migrations only."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for script in MIGRATIONS[:version]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version = {version}")
    finally:
        db.close()


def test_version_1_store_migrates_keeping_its_data(tmp_path):
    path = tmp_path / "old.db"
    make_store_at(path, 1)
    db = sqlite3.connect(path, isolation_level=None)
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                "sales",
                "Leads",
                f"L{i}",
                "2024-01-01T00:00:00Z",
                "active",
                f'{{"id":"L{i}"}}',
                f"h{i}",
                "2024-01-01",
                "2024-01-01",
                1,
            )
            for i in range(5)
        ],
    )
    db.execute(
        "INSERT INTO runs (kind, connection, module, started_at, status)"
        " VALUES ('pull', 'sales', 'Leads', '2024-01-01', 'ok')"
    )
    db.execute(
        "INSERT INTO sync_cursors VALUES ('sales', 'Leads', 'cp-9', '2024-01-01', '2024-01-01')"
    )
    db.close()

    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.count("sales", "Leads") == 5
        assert store.get_record("sales", "Leads", "L3").data == {"id": "L3"}
        assert store.cursor("sales", "Leads").cursor == "cp-9"
        assert [r.kind for r in store.runs()] == ["pull"]
        # The new audit table works, with the old mirror, in one transaction.
        assert store.audit_head() is None
        with store.transaction() as tx:
            assert tx.set_status("sales", "Leads", "L3", "archived", expected="active")
            tx.append_audit(
                [
                    AuditEntry(
                        action="archive",
                        operator="alice",
                        connection="sales",
                        module="Leads",
                        record_id="L3",
                        before_status="active",
                        after_status="archived",
                    )
                ]
            )
        assert store.get_record("sales", "Leads", "L3").status == "archived"
        assert verify_store(store).entries == 1
        # Pulling still works on the migrated store.
        run = store.start_run("pull", "sales", "Leads")
        stats = store.commit_page("sales", "Leads", run, [PulledRecord("L9", {"id": "L9"})])
        assert stats.new == 1

    with open_store(path) as store:  # reopening does not migrate again
        assert store.schema_version() == SCHEMA_VERSION
        assert store.audit_head().seq == 1


def test_every_migration_applies_on_its_predecessor(tmp_path):
    for version in range(SCHEMA_VERSION):
        path = tmp_path / f"v{version}.db"
        make_store_at(path, version)
        with open_store(path) as store:
            assert store.schema_version() == SCHEMA_VERSION


def test_audit_triggers_exist_after_migration(tmp_path):
    path = tmp_path / "old.db"
    make_store_at(path, 1)
    open_store(path).close()
    db = sqlite3.connect(path)
    try:
        triggers = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    finally:
        db.close()
    assert {"audit_log_no_update", "audit_log_no_delete"} <= triggers


def test_a_failed_migration_leaves_the_old_version(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    make_store_at(path, 1)
    import crmsync.store.sqlite as sqlite_module

    broken = [*MIGRATIONS[:1], MIGRATIONS[1] + "\nTHIS IS NOT SQL;"]
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", broken)
    with pytest.raises(Exception, match="cannot open store"):
        open_store(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
    assert "audit_log" not in tables
