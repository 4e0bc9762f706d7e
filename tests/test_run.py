"""`crmsync run` against the sandbox CRM: what it applies, what it leaves waiting, exit codes,
log lines, the run lock (a real second process; a dead one's lock), resume after an interrupted
apply (no record lost, none written twice), scheduled snapshots and retention, `crmsync runs`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from crmsync.config import load_config
from crmsync.plugins import build_registry
from crmsync.unattended.run import RunOptions, run_once
from crmsync.unattended.runlog import RunLog
from tests.lifecycle_support import POLICIES, TOKEN, run
from tests.run_support import AUTO_POLICIES, json_run, run_config
from tests.test_apply_resume import wait_until


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)


def lead_writes(sandbox) -> dict[str, int]:
    return {k: v for k, v in sandbox.stats()["writes"].items() if k.startswith("Leads/")}


def test_run_applies_auto_policies_and_leaves_approval_waiting(tmp_path, lc_sandbox, env):
    config = run_config(tmp_path, lc_sandbox.api_url)
    code, lines, stderr = json_run(config)
    assert code == 4, stderr  # a plan awaits approval: a person is needed
    final = lines[-1]
    assert final["step"] == "run" and final["status"] == "awaiting_approval"
    assert {line["run_id"] for line in lines} == {final["run_id"]}
    steps = {(line["step"], line["status"], line.get("policy")) for line in lines[:-1]}
    assert ("pull", "ok", None) in steps
    assert ("apply", "ok", "stale-leads") in steps
    assert ("plan", "awaiting_approval", "void-junk-contacts") in steps
    done = final["counts"]["done"]
    writes = lc_sandbox.stats()["writes"]
    assert done > 0 and len(writes) == done and set(writes.values()) == {1}
    assert all(k.startswith("Leads/") for k in writes)  # nothing voided without approval
    assert final["api_calls"] > 0 and final["seconds"] > 0
    [waiting] = final["awaiting_plans"]

    # the next run applies nothing twice and does not plan the waiting policy again
    code, lines, _ = json_run(config)
    assert code == 4 and lines[-1]["awaiting_plans"] == [waiting]
    reused = next(line for line in lines if line.get("policy") == "void-junk-contacts")
    assert reused["reused"] is True and reused["plan"] == waiting
    assert lc_sandbox.stats()["writes"] == writes

    # once approved, it no longer waits for approval (a person applies it)
    assert run(config, "approve", waiting, "--operator", "carol").exit_code == 0
    code, lines, _ = json_run(config)
    assert code == 0 and lines[-1]["status"] == "ok" and lines[-1]["awaiting_plans"] == []
    kept = next(line for line in lines if line.get("policy") == "void-junk-contacts")
    assert kept["plan"] == waiting and kept["status"] == "planned"

    history = json.loads(run(config, "runs", "--kind", "run", "--json").stdout)
    assert [r["status"] for r in history] == ["ok", "awaiting_approval", "awaiting_approval"]
    oldest = history[-1]
    assert oldest["summary"]["counts"]["done"] == done and oldest["api_calls"] > 0
    assert oldest["seconds"] is not None and oldest["records"] >= done
    table = run(config, "runs", "--kind", "run").stdout
    assert "awaiting_approval" in table and "apply" not in table


def test_text_summary_is_one_line_and_quiet_prints_nothing(tmp_path, lc_sandbox, env):
    manual = dict(POLICIES[0], name="manual-leads")  # no auto_apply: planned for review
    config = run_config(tmp_path, lc_sandbox.api_url, policies=[manual, AUTO_POLICIES[0]])
    result = run(config, "run")
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("crmsync run 1: ok in ") and "pulled 300 records" in line
    assert result.stderr == ""
    quiet = run(config, "run", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    plans = json.loads(run(config, "plans", "--json").stdout)
    manual_plans = [p for p in plans if p["policies"][0]["policy"] == "manual-leads"]
    assert [p["status"] for p in manual_plans] == ["planned"]  # for a person; made once


def test_guard_stops_an_auto_apply_with_exit_3(tmp_path, lc_sandbox, env):
    greedy = dict(
        AUTO_POLICIES[0], name="greedy", filter={"field": "@status", "op": "eq", "value": "active"}
    )
    greedy.pop("max_percent")
    config = run_config(tmp_path, lc_sandbox.api_url, policies=[greedy, AUTO_POLICIES[0]])
    code, lines, _ = json_run(config)
    assert code == 3
    final = lines[-1]
    assert final["status"] == "failed" and "blast radius exceeded" in final["errors"][0]
    guard = next(line for line in lines if line.get("policy") == "greedy")
    assert guard["status"] == "guard" and guard["level"] == "error"
    # the other policy still ran
    assert final["counts"]["done"] == len(lead_writes(lc_sandbox)) > 0


def test_usage_and_config_errors_exit_2_before_anything(tmp_path, lc_sandbox, env):
    config = run_config(tmp_path, lc_sandbox.api_url)
    result = run(config, "run", "--policy", "nope")
    assert result.exit_code == 2 and "unknown policy 'nope'" in result.stderr
    assert lc_sandbox.stats()["requests"] == 0
    bad = run_config(tmp_path, lc_sandbox.api_url, extra="[run]\nretention = true")
    result = run(bad, "run")
    assert result.exit_code == 2 and "run.retention" in result.stderr


HOLDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from crmsync.store import open_store
    from crmsync.unattended.lock import RunLock
    store_path = Path(sys.argv[1])
    lock = RunLock(store_path).acquire()
    with open_store(store_path) as store:
        run_id = store.start_run("run", None, None)
    lock.note(run_id=run_id)
    print(run_id, flush=True)
    sys.stdin.read()
    """
)


def hold_lock(store_path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.run_id = int(proc.stdout.readline())  # type: ignore[attr-defined]
    return proc


def test_a_second_run_is_locked_out_while_another_process_holds_the_lock(tmp_path, lc_sandbox, env):
    config = run_config(tmp_path, lc_sandbox.api_url)
    holder = hold_lock(tmp_path / "mirror.db")
    try:
        result = run(config, "run")
        assert result.exit_code == 75
        assert f"pid {holder.pid}" in result.stderr and "mirror.db.lock" in result.stderr
        assert "try again later" in result.stderr
        code, lines, _ = json_run(config)
        assert code == 75 and lines[-1]["status"] == "locked"
        assert lc_sandbox.stats()["requests"] == 0  # nothing was done
    finally:
        holder.communicate("")  # the holder exits cleanly and releases the lock
    result = run(config, "run", "--no-pull", "--log-format", "json")
    assert json.loads(result.stdout.splitlines()[-1])["status"] != "locked"
    statuses = [r["status"] for r in json.loads(run(config, "runs", "--json").stdout)]
    assert statuses.count("locked") == 2


def test_a_dead_process_lock_is_taken_over(tmp_path, lc_sandbox, env):
    config = run_config(tmp_path, lc_sandbox.api_url, policies=[AUTO_POLICIES[0]])
    holder = hold_lock(tmp_path / "mirror.db")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    code, lines, stderr = json_run(config)
    assert code == 0, stderr
    took = next(line for line in lines if line["step"] == "lock")
    assert took["status"] == "took_over" and f"pid {holder.pid}" in took["stale_holder"]
    history = {r["id"]: r for r in json.loads(run(config, "runs", "--json").stdout)}
    dead = history[holder.run_id]  # type: ignore[attr-defined]
    assert dead["status"] == "killed" and "died" in dead["error"]


class FailAfterFirstBatch(RunLog):
    """After the first batch is written, the CRM refuses write-back requests (503)."""

    def __init__(self, sandbox):
        self.sandbox, self.batches = sandbox, 0

    def batch(self, run_id: int, policy: str, records: int) -> None:
        self.batches += 1
        if self.batches == 1:
            fail = {"status": 503, "count": 1000, "path_prefix": "/api/v1/Leads/batch"}
            self.sandbox.set_faults(fail_next=[fail])


def test_an_apply_cut_short_by_the_crm_resumes_on_the_next_run(tmp_path, lc_sandbox, env):
    path = run_config(tmp_path, lc_sandbox.api_url, policies=[AUTO_POLICIES[0]])
    registry = build_registry()
    config = load_config(path, registry)
    first = run_once(config, registry, RunOptions(), log=FailAfterFirstBatch(lc_sandbox))
    assert first.status == "partial" and first.exit_code == 1
    assert "503" in first.errors[0] and first.errors_by_connection == {"sandbox": 1}
    assert len(lead_writes(lc_sandbox)) == 7  # one batch

    still_down = run_once(config, registry, RunOptions())  # the resume fails again
    assert still_down.status == "partial" and len(lead_writes(lc_sandbox)) == 7
    plan = next(s for s in still_down.steps if s["step"] == "plan")
    assert plan["status"] == "skipped"  # not planned twice while its apply is unfinished
    lc_sandbox.clear_faults()

    second = run_once(config, registry, RunOptions())
    assert second.status == "ok", second.errors
    resumed = next(s for s in second.steps if s["step"] == "resume")
    assert resumed["status"] == "ok" and resumed["counts"]["done"] > 0
    writes = lead_writes(lc_sandbox)
    total = first.counts["planned"]
    assert len(writes) == total and set(writes.values()) == {1}  # none lost, none twice
    assert second.counts["planned"] == 0  # planned again after the resume: nothing left


def test_stop_finishes_the_batch_and_the_next_run_resumes(tmp_path, lc_sandbox, env):
    path = run_config(tmp_path, lc_sandbox.api_url, policies=[AUTO_POLICIES[0]])
    registry = build_registry()
    config = load_config(path, registry)
    stop = threading.Event()

    class StopAfterBatch(RunLog):
        def batch(self, run_id: int, policy: str, records: int) -> None:
            stop.set()  # as SIGTERM does

    first = run_once(config, registry, RunOptions(), log=StopAfterBatch(), stop=stop)
    assert first.status == "interrupted" and first.exit_code == 75 and not first.errors
    assert len(lead_writes(lc_sandbox)) == 7
    second = run_once(config, registry, RunOptions())
    assert second.status == "ok" and [s["step"] for s in second.steps][:1] == ["resume"]
    writes = lead_writes(lc_sandbox)
    assert len(writes) == first.counts["planned"] and set(writes.values()) == {1}


def test_sigterm_stops_crmsync_run_after_a_checkpoint(tmp_path, lc_sandbox, env):
    config = run_config(tmp_path, lc_sandbox.api_url, policies=[AUTO_POLICIES[0]])
    assert run(config, "pull").exit_code == 0
    lc_sandbox.set_faults(latency_ms=100)  # each write-back batch takes a while
    command = ["-c", str(config), "run", "--no-pull", "--log-format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync", *command],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: len(lead_writes(lc_sandbox)) >= 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 75, err
    final = json.loads(out.splitlines()[-1])
    assert final["status"] == "interrupted"
    total = final["counts"]["planned"]
    assert 0 < len(lead_writes(lc_sandbox)) < total
    lc_sandbox.clear_faults()
    code, lines, _ = json_run(config)
    assert code == 0 and lines[-1]["status"] == "ok"
    writes = lead_writes(lc_sandbox)
    assert len(writes) == total and set(writes.values()) == {1}


def test_scheduled_snapshot_and_retention(tmp_path, lc_sandbox, env):
    extra = "[run]\nsnapshot = true\nretention = true\n\n[snapshots.keep]\nlast = 1\n"
    config = run_config(tmp_path, lc_sandbox.api_url, extra=extra, policies=[AUTO_POLICIES[0]])
    code, first, _ = json_run(config)
    assert code == 0
    [snap_a] = first[-1]["snapshot_ids"]
    code, second, _ = json_run(config)
    assert code == 0 and second[-1]["counts"]["forgotten"] == 1
    [snap_b] = second[-1]["snapshot_ids"]
    retention = next(line for line in second if line["step"] == "retention")
    assert retention["forgotten"] == [snap_a] and retention["prune"] is not None
    listed = json.loads(run(config, "snapshot", "list", "--json").stdout)
    whole = [s["id"] for s in listed if s["scope"] == "all"]
    assert whole == [snap_b] and "scheduled" in listed[-1]["tags"]
    assert any(s["scope"] == "selection" for s in listed)  # apply's pre-change copy is kept
    code, third, _ = json_run(config, "--no-snapshot")
    assert code == 0 and third[-1]["snapshot_ids"] == []
    assert not [line for line in third if line["step"] == "snapshot"]


def test_the_lock_excludes_threads_of_one_process_and_is_released(tmp_path):
    from crmsync.unattended.lock import RunLock, RunLocked

    store = tmp_path / "crmsync.db"
    with RunLock(store) as first:
        first.note(run_id=7)
        with pytest.raises(RunLocked) as locked:
            RunLock(store).acquire()
        assert locked.value.exit_code == 75
        assert f"pid {os.getpid()}" in str(locked.value) and "run 7" in str(locked.value)
    with RunLock(store) as again:  # released cleanly: nothing stale to take over
        assert again.stale is None
    assert (tmp_path / "crmsync.db.lock").read_text() == ""
