"""`crmsync serve` as a real process against the sandbox: SIGTERM mid-apply exits 0 after the
batch, SIGKILL mid-apply and a restart end in the CRM state of an uninterrupted run, with no
write lost and none repeated (the sandbox counts writes per record)."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crmsync.config import load_config
from crmsync.plugins import build_registry
from crmsync.sandbox import SandboxCRM
from crmsync.unattended.run import RunOptions, run_once
from tests.lifecycle_support import POLICIES, TOKEN, write_config

RECORDS, SEED = 1000, 11
MODULES = ("Leads", "Contacts", "Accounts", "Deals")
AUTO_ARCHIVE = {**POLICIES[0], "auto_apply": True}  # stale-leads: 46 of the 1000 records
LATENCY_MS = 120  # per API request: a few seconds of apply, so a signal lands mid-apply
DEADLINE = 60.0  # seconds for any one wait


def serve_config(tmp_path: Path, api_url: str) -> Path:
    path = write_config(tmp_path, api_url, policies=[AUTO_ARCHIVE])
    text = path.read_text().replace("batch_size = 7", "batch_size = 3")
    text += (
        '\n[serve]\nlisten = "127.0.0.1:0"\n\n[[serve.jobs]]\nname = "nightly"\n'
        'cron = "0 3 * * *"\ntimezone = "Asia/Shanghai"\n'
    )
    path.write_text(text)
    return path


@pytest.fixture
def crm(monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    with SandboxCRM(records=RECORDS, seed=SEED, token=TOKEN) as sandbox:
        sandbox.start()
        yield sandbox


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An identical sandbox after one uninterrupted run: every record, and the write counts."""
    with (
        pytest.MonkeyPatch.context() as mp,
        SandboxCRM(records=RECORDS, seed=SEED, token=TOKEN) as sandbox,
    ):
        mp.setenv("LC_TOKEN", TOKEN)
        sandbox.start()
        path = serve_config(tmp_path_factory.mktemp("reference"), sandbox.api_url)
        registry = build_registry()
        outcome = run_once(load_config(path, registry), registry, RunOptions())
        assert outcome.status == "ok" and outcome.counts["done"] > 20, outcome.as_dict()
        assert set(writes(sandbox).values()) == {1}
        return crm_state(sandbox), writes(sandbox)


def crm_state(sandbox: SandboxCRM) -> dict[str, dict]:
    return {m: {i: sandbox.record(m, i) for i in sandbox.ids(m)} for m in MODULES}


class Serve:
    """One `crmsync serve` process; its stderr goes to a log file."""

    def __init__(self, config: Path, *args: str):
        self.log_path = config.parent / f"serve-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmsync", "-c", str(config), "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=config.parent,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("serve listening on "):
            self.kill()
            pytest.fail(f"serve did not start: {line!r}\n{self.log()}")
        self.url = line.split()[-1]

    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def job(self) -> dict:
        return json.loads(self.get("/healthz")[1])["jobs"][0]

    def wait_for(self, what: str, check) -> None:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if check():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited {self.proc.returncode} waiting for {what}\n{self.log()}")
            time.sleep(0.01)
        self.kill()
        pytest.fail(f"timed out waiting for {what}\n{self.log()}")

    def signal(self, signum: int) -> int | None:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"serve ignored {signal.Signals(signum).name}\n{self.log()}")
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def writes(crm: SandboxCRM) -> dict[str, int]:
    return dict(crm.stats()["writes"])


def finish_and_compare(config: Path, crm: SandboxCRM, reference: tuple) -> Serve:
    """Start serve again with no faults: the unfinished job runs at start and completes."""
    crm.clear_faults()
    serve = Serve(config)
    serve.wait_for("the resumed job", lambda: serve.job()["last_status"] == "ok")
    assert "reason=" in serve.log() and "resume" in serve.log()
    records, expected_writes = reference
    assert crm_state(crm) == records  # the same CRM as after an uninterrupted run
    assert writes(crm) == expected_writes  # each record once: none lost, none repeated
    return serve


def test_sigterm_mid_apply_exits_0_after_the_batch_then_resumes(tmp_path, crm, reference):
    config = serve_config(tmp_path, crm.api_url)
    crm.set_faults(latency_ms=LATENCY_MS)
    serve = Serve(config, "--run-now")
    serve.wait_for("the first written batch", lambda: len(writes(crm)) > 0)
    assert serve.signal(signal.SIGTERM) == 0
    done = writes(crm)
    assert 0 < len(done) < 46 and max(done.values()) == 1  # stopped part-way
    assert "serve.stopping" in serve.log() and "serve.stop " in serve.log()
    state = json.loads((tmp_path / "mirror.serve.json").read_text())["jobs"]["nightly"]
    assert state["last_status"] == "interrupted"

    again = finish_and_compare(config, crm, reference)
    code, text = again.get("/metrics")
    assert code == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    runs = {s.labels["outcome"]: s.value for s in families["crmsync_job_runs"].samples}
    assert runs["ok"] == 1
    calls = {s.labels["connection"]: s.value for s in families["crmsync_api_calls"].samples}
    assert calls["sandbox"] > 0
    records = {
        (s.labels["module"], s.labels["status"]): s.value
        for s in families["crmsync_records"].samples
    }
    archived = [r for r in reference[0]["Leads"].values() if r["status"] == "archived"]
    assert records[("Leads", "archived")] == len(archived)
    assert again.signal(signal.SIGTERM) == 0


def test_sigkill_mid_apply_then_restart_loses_and_repeats_nothing(tmp_path, crm, reference):
    config = serve_config(tmp_path, crm.api_url)
    crm.set_faults(latency_ms=LATENCY_MS)
    serve = Serve(config, "--run-now")
    serve.wait_for("the first written batch", lambda: len(writes(crm)) > 0)
    serve.proc.send_signal(signal.SIGKILL)
    serve.proc.wait(DEADLINE)
    serve._log.close()
    time.sleep(LATENCY_MS / 1000 * 3)  # requests the dead process had in flight land
    assert 0 < len(writes(crm)) < 46
    again = finish_and_compare(config, crm, reference)
    assert again.signal(signal.SIGTERM) == 0
