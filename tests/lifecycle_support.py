"""Helpers for the lifecycle tests: a sandbox config with classic policies, CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from crmsync.cli import cli
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.connection import sandbox_connection_settings, to_toml

TOKEN = "lifecycle-secret-token-77"

POLICIES = [
    {
        "name": "stale-leads",
        "description": "Lost or junk leads untouched for a year",
        "connection": "sandbox",
        "module": "Leads",
        "action": "archive",
        "max_percent": 60,
        "filter": {
            "all": [
                {"field": "lead_status", "op": "in", "value": ["Lost", "Junk"]},
                {"older_than": "365d"},
            ]
        },
    },
    {
        "name": "void-junk-contacts",
        "connection": "sandbox",
        "module": "Contacts",
        "action": "void",
        "require_approval": True,
        "max_percent": 100,
        "filter": {"field": "email", "op": "contains", "value": "@"},
    },
]


def write_config(tmp_path: Path, api_url: str, policies=POLICIES, **plans) -> Path:
    settings = sandbox_connection_settings(api_url, "env:LC_TOKEN", concurrency=2)
    settings.update(max_retries=1, backoff_base=0, max_retry_wait=0)
    settings["operations"]["archive"]["batch_size"] = 7
    table = {
        "store": {"path": "mirror.db"},
        "connections": {"sandbox": {"connector": "rest", **settings}},
    }
    if plans:
        table["plans"] = plans
    text = to_toml(table) + "\n" + "\n".join(_policy_toml(p) for p in policies)
    path = tmp_path / "crmsync.toml"
    path.write_text(text)
    return path


def _policy_toml(policy: dict) -> str:
    lines = ["[[policies]]"]
    for key, value in policy.items():
        lines.append(
            f"{key} = {json.dumps(value)}"
            if not isinstance(value, dict | list)
            else f"{key} = {_inline(value)}"
        )
    return "\n".join(lines) + "\n"


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value)


def archived_ids(sandbox: SandboxCRM) -> set[str]:
    return {i for i in sandbox.ids("Leads") if sandbox.record("Leads", i)["status"] == "archived"}


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    assert TOKEN not in result.stdout + result.stderr
    return result


def make_plan(config: Path, *extra: str) -> dict:
    assert run(config, "pull").exit_code == 0
    result = run(config, "plan", "--json", "--operator", "alice", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)
