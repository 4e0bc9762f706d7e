"""Kill a real `crmsync apply` process mid-run, run it again: it finishes the rest and writes
no record twice (the sandbox counts writes per record)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.sandbox import SandboxCRM
from tests.lifecycle_support import TOKEN, archived_ids, write_config


def wait_until(condition, timeout: float = 30.0) -> None:
    """Poll for an event (not for time to pass); fail if it never comes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


@pytest.mark.parametrize("kill_after_writes", [1, 25, 60])
def test_killed_apply_resumes_without_writing_any_record_twice(
    tmp_path, monkeypatch, kill_after_writes
):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    with SandboxCRM(records=1500, seed=11, token=TOKEN) as sandbox:
        sandbox.start()
        config = write_config(tmp_path, sandbox.api_url)
        runner = CliRunner()
        assert runner.invoke(cli, ["-c", str(config), "pull"]).exit_code == 0
        planned = runner.invoke(
            cli, ["-c", str(config), "plan", "--policy", "stale-leads", "--json"]
        )
        plan = json.loads(planned.stdout)
        total = plan["policies"][0]["records"]
        assert total > kill_after_writes + 7
        before = archived_ids(sandbox)
        sandbox.set_faults(latency_ms=40)  # each batch request takes a while

        proc = subprocess.Popen(
            [sys.executable, "-m", "crmsync", "-c", str(config), "apply", plan["id"]],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until(lambda: len(sandbox.stats()["writes"]) >= kill_after_writes)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # requests the dead process left in flight finish on the server first
        wait_until(lambda: sandbox.stats()["in_flight"] == 0)
        partial = len(sandbox.stats()["writes"])
        assert partial < total, "the apply finished before it was killed"

        sandbox.clear_faults()
        resumed = runner.invoke(cli, ["-c", str(config), "apply", plan["id"], "--json"])
        assert resumed.exit_code == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert summary["status"] == "applied"

        writes = sandbox.stats()["writes"]
        assert len(writes) == total
        assert set(writes.values()) == {1}, "a record was written twice"
        assert archived_ids(sandbox) - before == {k.split("/", 1)[1] for k in writes}
        # every record has exactly one successful audit entry, and the chain is intact
        log = runner.invoke(
            cli, ["-c", str(config), "audit", "log", "--plan", plan["id"], "--json", "-n", "0"]
        )
        done = [e for e in json.loads(log.stdout) if e["action"] == "archive"]
        assert sorted(e["record_id"] for e in done if e["outcome"] == "ok") == sorted(
            k.split("/", 1)[1] for k in writes
        )
        assert runner.invoke(cli, ["-c", str(config), "audit", "verify"]).exit_code == 0
        # at most the one batch in flight at the kill is confirmed from the CRM, not re-sent
        recovered = [e for e in done if e["detail"].get("recovered_after_interruption")]
        assert len(recovered) <= 7
