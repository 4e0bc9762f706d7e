"""The CLI as admins and schedulers use it, against the real sandbox over HTTP.

Each kind of bad input gets one clear message naming connection, module and page where it
applies, a non-zero exit, and leaves the mirror as it was.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crmsync.cli import cli
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.connection import sandbox_connection_settings, to_toml

TOKEN = "cli-test-secret-token-9f8e7d"


@pytest.fixture
def sandbox():
    with SandboxCRM(records=300, seed=5, token=TOKEN) as crm:
        crm.start()
        yield crm


def write_config(path: Path, api_url: str, **overrides: Any) -> Path:
    settings = sandbox_connection_settings(api_url, "env:CLI_TEST_TOKEN", concurrency=2)
    # Retries without waiting: tests never sleep.
    settings.update(max_retries=2, backoff_base=0, max_retry_wait=0)
    settings.update(overrides)
    text = to_toml(
        {
            "store": {"path": "mirror.db"},
            "connections": {"sandbox": {"connector": "rest", **settings}},
        }
    )
    path.write_text(text)
    return path


@pytest.fixture
def config(tmp_path, sandbox, monkeypatch) -> Path:
    monkeypatch.setenv("CLI_TEST_TOKEN", TOKEN)
    return write_config(tmp_path / "crmsync.toml", sandbox.api_url)


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert TOKEN not in result.stdout and TOKEN not in result.stderr, "secret leaked"
    return result


def mirror_state(config: Path) -> tuple[int, list[tuple]]:
    db = sqlite3.connect(config.parent / "mirror.db")
    count = db.execute("SELECT count(*) FROM mirror").fetchone()[0]
    cursors = db.execute("SELECT module, cursor FROM sync_cursors ORDER BY module").fetchall()
    db.close()
    return count, cursors


# ------------------------------------------------------------------------ the happy path


def test_pull_json_summarises_records_pages_calls_and_seconds(config):
    result = run("-c", str(config), "pull", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["connection"] == "sandbox"
    assert summary["records"] == 300
    assert summary["api_calls"] == summary["pages"] == 4  # one page per module at 300 records
    assert summary["connector"] == {"api_calls": 4}  # the connector's own counters
    assert summary["seconds"] >= 0
    assert {m["module"] for m in summary["modules"]} == {"Leads", "Contacts", "Accounts", "Deals"}


def test_second_pull_is_incremental_and_cheap(config, sandbox):
    assert run("-c", str(config), "pull").exit_code == 0
    sandbox.touch("Leads", count=3)
    summary = json.loads(run("-c", str(config), "pull", "--module", "Leads", "--json").stdout)
    leads = summary["modules"][0]
    assert leads["mode"] == "incremental"
    assert leads["changed"] == 3
    assert leads["api_calls"] <= 2  # ceil(3/200) list call + the deleted-records call


def test_pull_is_silent_on_success_when_not_a_terminal(config):
    result = run("-c", str(config), "pull")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_status_and_runs_report_the_mirror(config):
    run("-c", str(config), "pull")
    status = json.loads(run("-c", str(config), "status", "--json").stdout)
    assert {r["module"]: r["records"] for r in status}["Leads"] == 120
    runs = json.loads(run("-c", str(config), "runs", "--json").stdout)
    assert len(runs) == 4 and all(r["status"] == "ok" for r in runs)


def test_check_reports_each_connection_ok(config):
    result = run("-c", str(config), "check")
    assert result.exit_code == 0, result.stderr
    assert "sandbox: ok" in result.stdout


def test_init_writes_a_config_that_validates(tmp_path, sandbox, monkeypatch):
    target = tmp_path / "new.toml"
    assert run("init", "--path", str(target)).exit_code == 0
    assert run("init", "--path", str(target)).exit_code == 2  # will not overwrite
    text = target.read_text().replace("http://127.0.0.1:8765/api/v1/", sandbox.api_url)
    target.write_text(text)
    monkeypatch.setenv("CRMSYNC_SANDBOX_TOKEN", TOKEN)
    result = run("-c", str(target), "check", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["connections"][0]["ok"] is True


def test_config_path_from_environment(config, monkeypatch):
    monkeypatch.setenv("CRMSYNC_CONFIG", str(config))
    assert run("pull").exit_code == 0


def test_demo_runs_end_to_end(tmp_path):
    result = run("demo", "--records", "300", "--json", "--keep", str(tmp_path / "d"))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["first_pull"]["records"] == 300
    assert out["second_pull"]["modules"][0]["changed"] == 3  # 1% of 300 leads... at least 1
    assert (tmp_path / "d" / "crmsync.toml").exists()


# ------------------------------------------------------------------------ bad input


def test_malformed_config_exits_2_naming_the_key(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("CLI_TEST_TOKEN", TOKEN)
    cfg = write_config(tmp_path / "c.toml", sandbox.api_url, paginator={"type": "pages"})
    result = run("-c", str(cfg), "pull")
    assert result.exit_code == 2
    assert "connections.sandbox.paginator.type: expected one of" in result.stderr
    assert sandbox.stats()["requests"] == 0  # refused before any network call


def test_unknown_connector_exits_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[connections.crm]\nconnector = "salesforce"\n')
    result = run("-c", str(cfg), "pull")
    assert result.exit_code == 2
    assert "connections.crm.connector: unknown connector 'salesforce'" in result.stderr
    assert "rest" in result.stderr


def test_missing_secret_exits_2_naming_the_variable(config, monkeypatch, sandbox):
    monkeypatch.delenv("CLI_TEST_TOKEN")
    result = run("-c", str(config), "pull")
    assert result.exit_code == 2
    assert "connections.sandbox.auth.token" in result.stderr
    assert "CLI_TEST_TOKEN" in result.stderr
    assert sandbox.stats()["requests"] == 0


def test_unreachable_host_fails_cleanly_and_keeps_the_mirror(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CLI_TEST_TOKEN", TOKEN)
    cfg = write_config(tmp_path / "c.toml", f"http://127.0.0.1:{port}/api/v1/")
    result = run("-c", str(cfg), "pull", "--module", "Leads")
    assert result.exit_code == 1
    assert "connection 'sandbox', module 'Leads', page 1" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert mirror_state(cfg) == (0, [])


def test_wrong_token_is_an_auth_error_without_the_token(config, monkeypatch):
    monkeypatch.setenv("CLI_TEST_TOKEN", "not-the-token-abc")
    result = run("-c", str(config), "pull")
    assert result.exit_code == 1
    assert "connection 'sandbox', module" in result.stderr
    assert "INVALID_TOKEN" in result.stderr or "credentials" in result.stderr
    assert "not-the-token-abc" not in result.stderr


def test_check_reports_a_failing_connection_and_exits_1(config, monkeypatch):
    monkeypatch.setenv("CLI_TEST_TOKEN", "not-the-token-abc")
    result = run("-c", str(config), "check")
    assert result.exit_code == 1
    assert "sandbox: FAILED" in result.stdout
    assert "not-the-token-abc" not in result.stdout


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"malformed_next": 1}, "malformed JSON"),
        ({"omit_id_next": 1}, "no id field"),
        ({"error_rate": 1.0}, "503"),
    ],
    ids=["malformed-json", "record-without-id", "5xx-after-retries"],
)
def test_bad_page_fails_naming_module_and_page_and_keeps_last_good_state(
    config, sandbox, fault, expected
):
    assert run("-c", str(config), "pull").exit_code == 0
    before = mirror_state(config)
    sandbox.touch("Leads", count=5)
    sandbox.set_faults(**fault)
    result = run("-c", str(config), "pull", "--module", "Leads")
    sandbox.clear_faults()
    assert result.exit_code == 1
    assert "connection 'sandbox', module 'Leads', page 1" in result.stderr
    assert expected in result.stderr
    assert mirror_state(config) == before
    runs = json.loads(run("-c", str(config), "runs", "--json", "-n", "1").stdout)
    assert runs[0]["status"] == "failed" and expected in runs[0]["error"]
    # and the next run picks up the changes it missed
    summary = json.loads(run("-c", str(config), "pull", "--module", "Leads", "--json").stdout)
    assert summary["modules"][0]["changed"] == 5


def test_unknown_module_is_a_usage_error(config):
    result = run("-c", str(config), "pull", "--module", "Tickets")
    assert result.exit_code == 2
    assert "unknown module 'Tickets'" in result.stderr


def test_missing_config_file_suggests_init(tmp_path):
    result = run("-c", str(tmp_path / "none.toml"), "pull")
    assert result.exit_code == 2
    assert "crmsync init" in result.stderr
