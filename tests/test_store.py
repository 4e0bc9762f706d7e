from __future__ import annotations

import sqlite3
import stat

import pytest

from crmsync.errors import StoreError
from crmsync.hookspecs import PulledRecord
from crmsync.store import open_store
from crmsync.store.migrations import SCHEMA_VERSION


def rec(rid: str, modified: str = "2025-01-01T00:00:00Z", **data) -> PulledRecord:
    return PulledRecord(rid, {"id": rid, **data}, modified)


def test_new_store_files_are_private_to_the_owner(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [rec("1")])
        for path in tmp_path.iterdir():  # the db and its WAL/SHM companions
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_existing_world_readable_store_is_tightened(tmp_path):
    path = tmp_path / "s.db"
    open_store(path).close()
    path.chmod(0o644)
    open_store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_uses_wal_and_records_schema_version(tmp_path):
    open_store(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_store_from_newer_crmsync_is_refused(tmp_path):
    open_store(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this crmsync"):
        open_store(tmp_path / "s.db")


def test_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    (tmp_path / "s.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(tmp_path / "s.db")


def test_commit_page_counts_new_changed_unchanged(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        r1 = store.start_run("pull", "c", "m")
        assert store.commit_page("c", "m", r1, [rec("1", a=1), rec("2", a=2)]).new == 2
        r2 = store.start_run("pull", "c", "m")
        stats = store.commit_page("c", "m", r2, [rec("1", a=1), rec("2", a=3), rec("3")])
        assert (stats.new, stats.changed, stats.unchanged) == (1, 1, 1)
        assert store.get_record("c", "m", "2").data == {"id": "2", "a": 3}


def test_content_hash_ignores_key_order(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [PulledRecord("1", {"a": 1, "b": "张伟"})])
        stats = store.commit_page("c", "m", run, [PulledRecord("1", {"b": "张伟", "a": 1})])
        assert stats.unchanged == 1
        assert store.get_record("c", "m", "1").data == {"a": 1, "b": "张伟"}


def test_checkpoint_commits_with_its_page(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [rec("1")], checkpoint="cp-1")
        assert store.cursor("c", "m").cursor == "cp-1"
        store.commit_page("c", "m", run, [rec("2")])  # no checkpoint: cursor unchanged
        assert store.cursor("c", "m").cursor == "cp-1"


def test_failed_page_commit_leaves_neither_records_nor_cursor(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [rec("1")], checkpoint="cp-1")
        bad = PulledRecord("2", {"x": object()})  # not JSON-serialisable
        with pytest.raises(TypeError):
            store.commit_page("c", "m", run, [rec("3"), bad], checkpoint="cp-2")
        assert store.count("c", "m") == 1
        assert store.cursor("c", "m").cursor == "cp-1"


def test_full_pull_marks_records_it_did_not_see_as_deleted_in_crm(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        r1 = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", r1, [rec("1"), rec("2"), rec("3")])
        store.finish_pull("c", "m", r1, full=True, checkpoint="a")
        r2 = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", r2, [rec("1"), rec("3")])
        assert store.finish_pull("c", "m", r2, full=True, checkpoint="b") == 1
        assert store.count("c", "m") == 2
        assert store.count("c", "m", include_deleted=True) == 3
        ghost = store.get_record("c", "m", "2")
        assert ghost.crm_deleted_at is not None and ghost.data["id"] == "2"  # copy kept
        assert store.cursor("c", "m").last_full_pull_at is not None


def test_incremental_finish_marks_nothing(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        r1 = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", r1, [rec("1"), rec("2")])
        r2 = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", r2, [rec("1", a=1)])
        assert store.finish_pull("c", "m", r2, full=False, checkpoint="x") == 0
        assert store.count("c", "m") == 2


def test_deleted_ids_mark_records_and_reappearing_record_is_live_again(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [rec("1"), rec("2")])
        assert store.commit_page("c", "m", run, [], deleted_ids=["2", "404"]).deleted == 1
        assert store.count("c", "m") == 1
        store.commit_page("c", "m", run, [rec("2")])  # restored in the CRM
        assert store.get_record("c", "m", "2").crm_deleted_at is None


def test_iter_records_streams_in_batches_over_all_records(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "c", "m")
        store.commit_page("c", "m", run, [rec(f"{i:04d}") for i in range(1234)])
        ids = [r.record_id for r in store.iter_records("c", "m", batch=100)]
        assert ids == sorted(f"{i:04d}" for i in range(1234))


def test_runs_are_recorded_newest_first(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        a = store.start_run("pull", "c", "m")
        store.finish_run(a, "ok", {"records": 3})
        b = store.start_run("pull", "c", "n")
        store.finish_run(b, "failed", {}, "boom")
        runs = store.runs()
        assert [r.id for r in runs] == [b, a]
        assert runs[0].error == "boom" and runs[1].summary == {"records": 3}
        assert runs[1].finished_at is not None


def test_connections_and_modules_are_kept_apart(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", None, None)
        store.commit_page("a", "m", run, [rec("1")])
        store.commit_page("b", "m", run, [rec("1"), rec("2")])
        counts = {(m.connection, m.module): m.live for m in store.module_counts()}
        assert counts == {("a", "m"): 1, ("b", "m"): 2}
