"""Jiandaoyun end to end through the CLI: a config with a connection to the fake, then
pull -> plan -> approve -> apply -> restore, checking the fake's records and call counts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.store import open_store
from crmsync_connectors.jiandaoyun.fake import FakeJiandaoyun

LEVEL = "_widget_1600000000003"
EMAIL = "_widget_1600000000004"

CONFIG = """
[store]
path = "mirror.db"

[connections.jdy]
connector = "jiandaoyun"
api_key = "env:JDY_TEST_API_KEY"
base_url = "{url}"
field_keys = "label"
max_retries = 2
backoff_base = 0
rate_limits = {{ "data/list" = 1000, "data/batch_update" = 1000, global = 1000 }}

[connections.jdy.modules.customers]
app_id = "{app_id}"
entry_id = "{entry_id}"
status.field = "状态"
status.values = {{ active = "正常", archived = "已归档", voided = "已作废" }}

[[policies]]
name = "lost-customers"
connection = "jdy"
module = "customers"
action = "archive"
max_percent = 100
filter = {{ field = "客户等级", op = "in", value = ["流失"] }}

[[policies]]
name = "no-email"
connection = "jdy"
module = "customers"
action = "void"
require_approval = true
max_percent = 100
filter = {{ field = "邮箱", op = "empty" }}
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeJiandaoyun(records=230, seed_value=3) as jdy:
        config = tmp_path / "crmsync.toml"
        config.write_text(CONFIG.format(url=jdy.url, app_id=jdy.app_id, entry_id=jdy.entry_id))
        monkeypatch.setenv("JDY_TEST_API_KEY", jdy.api_key)
        yield jdy, config


def run(jdy: FakeJiandaoyun, config: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["-c", str(config), *args])
    assert jdy.api_key not in result.stdout + result.stderr
    return result


def test_pull_plan_approve_apply_restore(setup: Any) -> None:
    jdy, config = setup
    lost = {i for i in jdy.ids() if jdy.record(i)[LEVEL] == "流失"}
    blank = {i for i in jdy.ids() if jdy.record(i)[EMAIL] == ""}
    assert lost and blank

    checked = run(jdy, config, "check", "jdy")
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    jdy.reset_stats()
    pulled = run(jdy, config, "pull", "jdy")
    assert pulled.exit_code == 0, pulled.stdout + pulled.stderr
    assert jdy.stats()["by_endpoint"] == {"widget/list": 1, "data/list": math.ceil(230 / 100)}

    planned = run(jdy, config, "plan", "--json", "--operator", "alice")
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    counts = {p["policy"]: p["records"] for p in plan["policies"]}
    assert counts["lost-customers"] == len(lost)
    refused = run(jdy, config, "apply", plan["id"])
    assert refused.exit_code == 3 and "requires approval" in refused.stderr
    assert run(jdy, config, "approve", plan["id"], "--operator", "carol").exit_code == 0

    jdy.reset_stats()
    applied = run(jdy, config, "apply", plan["id"], "--json", "--operator", "alice")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    # a lost customer without an e-mail is archived, then voided by the second policy
    assert all(jdy.status_text(i) == "已归档" for i in lost - blank)
    assert {i for i in jdy.ids() if jdy.status_text(i) == "已作废"} == blank
    writes = jdy.stats()["by_endpoint"]["data/batch_update"]
    assert counts["no-email"] == len(blank)
    assert writes == math.ceil(len(lost) / 100) + math.ceil(len(blank) / 100)
    assert json.loads(applied.stdout)["write_calls"] == writes
    assert jdy.stats()["writes"] == {i: 1 + (i in lost and i in blank) for i in lost | blank}

    restored = run(jdy, config, "restore", "--plan", plan["id"], "--yes", "--json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert all(jdy.status_text(i) == "正常" for i in lost | blank)

    # deletions made in Jiandaoyun reach the mirror with a full pull (no deleted-records API)
    gone = jdy.ids()[:2]
    jdy.delete_records(gone)
    assert run(jdy, config, "pull", "jdy", "--full").exit_code == 0
    with open_store(config.parent / "mirror.db") as store:
        mirrored = {r.record_id for r in store.iter_records("jdy", "customers")}
    assert mirrored == set(jdy.ids()) and not set(gone) & mirrored


def test_a_wrong_api_key_fails_the_pull_naming_the_connection(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jdy, config = setup
    monkeypatch.setenv("JDY_TEST_API_KEY", "jdy-wrong-key-1234")
    result = run(jdy, config, "pull", "jdy")
    assert result.exit_code == 1
    assert "'jdy'" in result.stderr and "8301" in result.stderr
    assert "jdy-wrong-key-1234" not in result.stdout + result.stderr


def test_connectors_lists_jiandaoyun() -> None:
    result = CliRunner().invoke(cli, ["connectors"])
    assert result.exit_code == 0 and "jiandaoyun" in result.stdout
