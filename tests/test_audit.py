"""The audit log: sealing, the append-only store table, chain verification against each kind of
tampering, atomicity with mirror status changes, export round trips, and the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditQuery,
    current_operator,
    parse_time,
    record_ref,
    verify_store,
)
from crmsync.audit.export import read_export, write_export
from crmsync.audit.model import entry_hash
from crmsync.audit.verify import verify_chain
from crmsync.audit_cli import audit_group
from crmsync.cli import AppContext, CrmsyncGroup
from crmsync.errors import StoreError
from crmsync.hookspecs import PulledRecord
from crmsync.store import open_store
from crmsync.store.sqlite import SQLiteStore


def entry(i: int = 0, **over) -> AuditEntry:
    values = dict(
        action="archive",
        operator="alice",
        connection="sales",
        module="Leads",
        record_id=f"L{i}",
        before_status="active",
        after_status="archived",
        plan_id="p1",
        run_id=7,
        snapshot_id="snap-1",
        policy="stale-leads",
        detail={"batch": i // 10},
    )
    values.update(over)
    return AuditEntry(**values)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        yield s


def filled(store, n: int = 10) -> None:
    store.append_audit(entry(i) for i in range(1, n + 1))


def tamper(store_path: Path, *statements: str | tuple[str, tuple]) -> None:
    """What an attacker with the file does: open it directly, drop the guards, edit."""
    db = sqlite3.connect(store_path, isolation_level=None)
    try:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            sql, args = statement if isinstance(statement, tuple) else (statement, ())
            db.execute(sql, args)
    finally:
        db.close()


# ----------------------------------------------------------------------------- sealing


def test_entries_are_sealed_in_order_onto_the_head(store):
    first = store.append_audit([entry(1), entry(2)])
    second = store.append_audit([entry(3)])
    assert [r.seq for r in first + second] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS_HASH
    assert first[1].prev_hash == first[0].hash
    assert second[0].prev_hash == first[1].hash
    assert store.audit_head() == second[0]
    assert first[0].time.endswith("Z") and first[0].record_ref == record_ref("L1")


def test_hash_is_sha256_of_the_documented_canonical_json(store):
    (r,) = store.append_audit([entry(1, detail={"b": "张", "a": 1})])
    payload = {k: v for k, v in r.as_dict().items() if k not in ("record_id", "hash")}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert r.hash == hashlib.sha256(text.encode()).hexdigest()
    assert r.detail == '{"a":1,"b":"张"}'


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(),
    number=st.integers(min_value=-(2**70), max_value=2**70),
    detail=st.dictionaries(
        st.text(alphabet="xyz_0", max_size=5),
        st.one_of(st.text(), st.floats(allow_nan=False, allow_infinity=False), st.none()),
    ),
)
def test_fast_hash_matches_the_documented_reference(text, number, detail):
    entry_ = AuditEntry(action="update", operator=text or "x", policy=text, detail=detail)
    payload = {"seq": number, "operator": entry_.operator, "detail": entry_.detail_text}
    reference = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert entry_hash(payload) == hashlib.sha256(reference.encode()).hexdigest()


def test_event_entries_need_no_record():
    e = AuditEntry(action="plan.approve", operator="bob", plan_id="p1", connection="")
    assert e.connection is None and e.record_id is None
    assert AuditEntry(action="archive", operator="x", record_id=42).record_id == "42"


@pytest.mark.parametrize(
    "over, message",
    [
        ({"action": "Drop Table"}, "bad audit action"),
        ({"outcome": "maybe so"}, "bad audit outcome"),
        ({"operator": ""}, "operator"),
        ({"run_id": "7"}, "run_id"),
        ({"detail": {"token": "abc"}}, "secrets"),
        ({"detail": {"nested": [{"Authorization": "x"}]}}, "secrets"),
        ({"detail": {"when": datetime.now(UTC)}}, "plain JSON"),
        ({"detail": {"ratio": float("nan")}}, "plain JSON"),
        ({"detail": {"x": "y" * 5000}}, "larger than"),
    ],
)
def test_bad_entries_are_refused_before_any_write(over, message):
    with pytest.raises(ValueError, match=message):
        entry(1, **over)


def test_current_operator_prefers_the_override():
    assert current_operator("scheduler:cron") == "scheduler:cron"
    assert current_operator()


# ----------------------------------------------------------------------------- append-only


def test_triggers_refuse_update_and_delete(store):
    filled(store, 3)
    db = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit_log SET outcome = 'failed:x' WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit_log WHERE seq = 3")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # redaction + an edit
            db.execute("UPDATE audit_log SET record_id = NULL, policy = 'x' WHERE seq = 1")
    finally:
        db.close()
    assert verify_store(store).ok


def test_redaction_keeps_the_chain_and_the_entry_findable(store):
    filled(store, 3)
    store.append_audit([entry(2, action="restore")])
    assert store.redact_audit_record("L2") == 2
    assert store.redact_audit_record("L2") == 0
    found = store.find_audit(AuditQuery(record_id="L2"))
    assert [(r.seq, r.record_id) for r in found] == [(2, None), (4, None)]
    assert verify_store(store).ok


# ----------------------------------------------------------------------------- verify


def test_intact_chain_verifies_and_reports_its_head(store):
    assert verify_store(store).ok and verify_store(store).entries == 0
    filled(store, 25)
    result = verify_store(store, batch=7)  # several batches
    assert result.ok and result.entries == 25
    assert (result.head_seq, result.head_hash) == (25, store.audit_head().hash)


@pytest.mark.parametrize(
    "column, value",
    [
        ("outcome", "ok"),  # a failure made to look like a success
        ("after_status", "voided"),
        ("detail", '{"batch":9}'),
        ("prev_hash", "f" * 64),
        ("time", "2020-01-01T00:00:00.000000Z"),
    ],
)
def test_an_edited_entry_is_named(store, column, value):
    filled(store, 10)
    if column == "outcome":
        tamper(store.path, "UPDATE audit_log SET outcome = 'failed:500' WHERE seq = 4")
    else:
        tamper(store.path, (f"UPDATE audit_log SET {column} = ? WHERE seq = 4", (value,)))
    result = verify_store(store)
    assert not result.ok
    assert (result.problem.kind, result.problem.seq) == ("edited", 4)
    assert "entry 4 was edited" in result.problem.message
    assert result.head_seq == 3  # intact up to here


def test_an_edited_record_id_is_caught_although_it_is_outside_the_hash(store):
    filled(store, 5)
    tamper(store.path, "UPDATE audit_log SET record_id = 'L999' WHERE seq = 2")
    result = verify_store(store)
    assert (result.problem.kind, result.problem.seq) == ("edited", 2)


def test_a_deleted_middle_entry_is_named_as_a_gap(store):
    filled(store, 10)
    tamper(store.path, "DELETE FROM audit_log WHERE seq IN (5, 6)")
    result = verify_store(store)
    assert (result.problem.kind, result.problem.seq) == ("deleted", 5)
    assert "entries 5..6 are missing after seq 4" in result.problem.message


def test_deleted_first_entry_is_named(store):
    filled(store, 3)
    tamper(store.path, "DELETE FROM audit_log WHERE seq = 1")
    result = verify_store(store)
    assert (result.problem.kind, result.problem.seq) == ("deleted", 1)


def test_swapped_entries_are_reported_as_reordered(store):
    filled(store, 10)
    tamper(
        store.path,
        "UPDATE audit_log SET seq = -1 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = -1",
    )
    result = verify_store(store)
    assert (result.problem.kind, result.problem.seq) == ("reordered", 3)
    assert "is entry 6, moved" in result.problem.message


def test_a_rewritten_entry_with_a_recomputed_hash_breaks_the_next_link(store):
    filled(store, 6)
    forged = replace(store.find_audit(AuditQuery(limit=None))[2], outcome="failed:500")
    tamper(
        store.path,
        (
            "UPDATE audit_log SET outcome = ?, hash = ? WHERE seq = 3",
            (forged.outcome, forged.computed_hash()),
        ),
    )
    result = verify_store(store)
    assert (result.problem.kind, result.problem.seq) == ("broken_link", 4)
    assert "entry 3 was replaced" in result.problem.message


def test_truncated_tail_is_only_caught_with_an_expected_head(store):
    """A chain alone cannot tell a truncated log from a shorter one: the admin records the
    head hash elsewhere (verify prints it) and passes it back with --expect-head."""
    filled(store, 10)
    recorded = store.audit_head().hash
    store.append_audit([entry(11)])  # the log grows after the head was recorded: still fine
    assert verify_store(store, [recorded]).heads_found == ((recorded, 10),)
    tamper(store.path, "DELETE FROM audit_log WHERE seq >= 9")
    assert verify_store(store).ok  # undetectable without the anchor
    result = verify_store(store, [recorded.upper()])
    assert not result.ok and result.problem.kind == "head_missing"
    assert "removed from the tail" in result.problem.message


def test_a_fully_rewritten_chain_is_caught_by_the_expected_head(store, tmp_path):
    filled(store, 5)
    recorded = store.audit_head().hash
    # The attacker rebuilds the whole log with one entry changed and every hash recomputed.
    entries = store.find_audit(AuditQuery(limit=None))
    tamper(store.path, "DELETE FROM audit_log")
    with open_store(store.path) as other:
        other.append_audit([entry(1, outcome="failed:x")])
        other.append_audit(entry(int(r.record_id[1:])) for r in entries[1:])
    assert verify_store(store).ok
    assert verify_store(store, [recorded]).problem.kind == "head_missing"


# ----------------------------------------------------------------------------- transactions


def mirror_with(store, *ids: str) -> None:
    run = store.start_run("pull", "sales", "Leads")
    store.commit_page("sales", "Leads", run, [PulledRecord(i, {"id": i}) for i in ids])


def test_status_change_and_audit_entry_commit_together(store):
    mirror_with(store, "L1", "L2")
    with store.transaction() as tx:
        assert tx.set_status("sales", "Leads", "L1", "archived", expected="active")
        assert not tx.set_status("sales", "Leads", "L2", "archived", expected="voided")
        assert not tx.set_status("sales", "Leads", "nope", "archived")
        (sealed,) = tx.append_audit([entry(1)])
    assert store.get_record("sales", "Leads", "L1").status == "archived"
    assert store.get_record("sales", "Leads", "L2").status == "active"
    assert store.audit_head() == sealed


def test_an_exception_in_the_transaction_leaves_neither_change(store):
    mirror_with(store, "L1")
    filled(store, 2)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.set_status("sales", "Leads", "L1", "archived")
        tx.append_audit([entry(1)])
        raise RuntimeError("push failed")
    assert store.get_record("sales", "Leads", "L1").status == "active"
    assert store.audit_head().seq == 2
    assert verify_store(store).ok
    store.append_audit([entry(3)])  # the store is usable afterwards
    assert store.audit_head().seq == 3


def test_a_bad_entry_midway_rolls_back_the_whole_transaction(store):
    mirror_with(store, "L1")
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.set_status("sales", "Leads", "L1", "archived")
        tx.append_audit([entry(1), entry(2, action="BAD ACTION")])
    assert store.get_record("sales", "Leads", "L1").status == "active"
    assert store.audit_head() is None


def test_transactions_do_not_nest_and_handles_die_with_their_block(store):
    with store.transaction() as tx:
        with pytest.raises(StoreError, match="already open"), store.transaction():
            pass
        with pytest.raises(StoreError, match="already open"):
            store.append_audit([entry(1)])
    with pytest.raises(StoreError, match="already ended"):
        tx.append_audit([entry(1)])


def test_concurrent_writers_do_not_fork_the_chain(tmp_path):
    path = tmp_path / "s.db"
    open_store(path).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with SQLiteStore(path) as s:  # its own connection, as another process would have
                for i in range(40):
                    s.append_audit([entry(i, operator=name), entry(i, operator=name)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_store(path) as s:
        result = verify_store(s)
    assert result.ok and result.entries == 240


# ----------------------------------------------------------------------------- queries


def test_find_audit_filters(store):
    store.append_audit([entry(1), entry(2, policy="dupes", action="void", plan_id="p2")])
    store.append_audit([AuditEntry(action="plan.approve", operator="bob", plan_id="p2")])
    store.append_audit([entry(1, action="restore", outcome="failed:409", run_id=8)])

    def seqs(**kw) -> list[int]:
        return [r.seq for r in store.find_audit(AuditQuery(**kw))]

    assert seqs() == [1, 2, 3, 4]
    assert seqs(record_id="L1") == [1, 4]
    assert seqs(policy="dupes") == [2]
    assert seqs(plan_id="p2") == [2, 3]
    assert seqs(action="plan.approve") == [3]
    assert seqs(operator="bob") == [3]
    assert seqs(outcome="failed:409") == [4]
    assert seqs(run_id=8) == [4]
    assert seqs(connection="sales", module="Leads") == [1, 2, 4]
    assert seqs(limit=2) == [3, 4]  # the newest two, oldest first
    t3 = store.find_audit(AuditQuery(action="plan.approve"))[0].time
    assert seqs(since=t3) == [3, 4]
    assert seqs(until=t3) == [1, 2]


def test_parse_time_forms():
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_time("2025-03-01") == "2025-03-01T00:00:00.000000Z"
    assert parse_time("2025-03-01T08:00:00+08:00") == "2025-03-01T00:00:00.000000Z"
    assert parse_time("2025-03-01T08:00Z") == "2025-03-01T08:00:00.000000Z"
    assert parse_time("7d", now=now) == "2025-03-03T12:00:00.000000Z"
    assert parse_time("90m", now=now) == "2025-03-10T10:30:00.000000Z"
    with pytest.raises(ValueError, match="bad time"):
        parse_time("last tuesday")


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips_and_verifies(store, tmp_path, fmt):
    filled(store, 12)
    store.append_audit([AuditEntry(action="apply.finish", operator="cron", detail={"n": 12})])
    store.redact_audit_record("L3")
    path = tmp_path / f"audit.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as out:
        assert write_export(store.iter_audit(batch=5), out, fmt) == 13
    back = list(read_export(path))
    assert back == list(store.iter_audit())
    result = verify_chain(lambda: read_export(path), [store.audit_head().hash])
    assert result.ok and result.entries == 13


def test_edited_export_file_is_caught(store, tmp_path):
    filled(store, 5)
    path = tmp_path / "audit.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        write_export(store.iter_audit(), out, "csv")
    rows = list(csv.reader(path.open(encoding="utf-8")))
    rows[3][rows[0].index("after_status")] = "voided"  # data row 3 = seq 3
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows(rows)
    result = verify_chain(lambda: read_export(path))
    assert (result.problem.kind, result.problem.seq) == ("edited", 3)


def test_malformed_export_line_is_reported_with_its_line(store, tmp_path):
    filled(store, 3)
    path = tmp_path / "audit.jsonl"
    with path.open("w", encoding="utf-8") as out:
        write_export(store.iter_audit(), out, "jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:40]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = verify_chain(lambda: read_export(path))
    assert result.problem.kind == "malformed"
    assert "audit.jsonl line 2: not JSON" in result.problem.message


# ----------------------------------------------------------------------------- CLI


@click.group(cls=CrmsyncGroup)
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path))
@click.pass_context
def root(ctx: click.Context, config_path: Path) -> None:
    """Stands in for crmsync.cli.cli, which the lead attaches audit_group to."""
    ctx.obj = AppContext(config_path, False)


root.add_command(audit_group)


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "crmsync.toml"
    path.write_text('[store]\npath = "state.db"\n', encoding="utf-8")
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(root, ["-c", str(config), "audit", *args])


def cli_store(config: Path) -> SQLiteStore:
    return SQLiteStore(config.parent / "state.db")


def test_cli_verify_intact_then_broken(config):
    result = run(config, "verify")
    assert result.exit_code == 0 and "intact (empty)" in result.output
    with cli_store(config) as s:
        filled(s, 6)
        head = s.audit_head().hash
    result = run(config, "verify")
    assert result.exit_code == 0, result.output
    assert f"head: seq 6 {head}" in result.output
    assert run(config, "verify", "--expect-head", head).exit_code == 0
    tamper(config.parent / "state.db", "DELETE FROM audit_log WHERE seq = 6")
    result = run(config, "verify")
    assert result.exit_code == 0  # a truncated tail needs the recorded head ...
    result = run(config, "verify", "--expect-head", head)
    assert result.exit_code == 1  # ... which catches it
    assert "BROKEN (head_missing)" in result.stderr
    tamper(config.parent / "state.db", "UPDATE audit_log SET policy = 'x' WHERE seq = 2")
    result = run(config, "verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["problem"]["kind"] == "edited" and report["problem"]["seq"] == 2
    assert report["head_seq"] == 1


def test_cli_log_filters_and_formats(config):
    with cli_store(config) as s:
        filled(s, 3)
        s.append_audit([entry(9, policy="dupes", action="void", after_status="voided")])
    result = run(config, "log", "--policy", "dupes", "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert item["seq"] == 4 and item["detail"] == {"batch": 0} and item["record_id"] == "L9"
    result = run(config, "log", "--record", "L2")
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:4] == ["seq", "time", "operator", "action"]
    assert len(lines) == 2 and "sales/Leads:L2" in lines[1] and "active -> archived" in lines[1]
    assert len(run(config, "log", "-n", "2").stdout.splitlines()) == 3
    assert len(run(config, "log", "--since", "1d", "--limit", "0").stdout.splitlines()) == 5
    assert len(run(config, "log", "--until", "2000-01-01").stdout.splitlines()) == 1
    bad = run(config, "log", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "bad time" in bad.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_export_then_verify_the_file(config, tmp_path, fmt):
    with cli_store(config) as s:
        filled(s, 4)
    out = tmp_path / f"audit.{fmt}"
    result = run(config, "export", "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not out.with_name(out.name + ".partial").exists()
    result = run(config, "verify", "--file", str(out))
    assert result.exit_code == 0 and "intact, 4 entries" in result.output
    stdout_export = run(config, "export", "--format", fmt)
    assert stdout_export.stdout == out.read_text(encoding="utf-8")
    out.write_text(out.read_text(encoding="utf-8").replace("alice", "mallory", 1))
    result = run(config, "verify", "--file", str(out))
    assert result.exit_code == 1 and "entry 1 was edited" in result.stderr


def test_cli_verify_missing_file_is_bad_usage(config, tmp_path):
    assert run(config, "verify", "--file", str(tmp_path / "nope.jsonl")).exit_code == 2
