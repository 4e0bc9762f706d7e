"""End to end through the CLI: a config with an Fxiaoke connection against the fake ->
crmsync check -> pull -> plan (a void policy needing approval) -> approve -> apply -> restore,
with the fake's state and its call counts asserted at each step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from crmsync.cli import cli
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke

CONFIG = """
[store]
path = "mirror.db"

[connections.fx]
connector = "fxiaoke"
base_url = "{url}"
app_id = "{app_id}"
app_secret = "env:FX_APP_SECRET"
permanent_code = "env:FX_PERMANENT_CODE"
current_open_user_id = "{user}"
objects = [{{ name = "AccountObj", fields = ["name", "industry", "account_level"] }}]
page_size = 40
max_retries = 1
backoff_base = 0

[[policies]]
name = "void-retail"
connection = "fx"
module = "AccountObj"
action = "void"
require_approval = true
max_percent = 100
filter = {{ field = "industry", op = "in", value = ["零售"] }}
"""


def test_pull_plan_approve_apply_restore(tmp_path: Path, monkeypatch: Any) -> None:
    with FakeFxiaoke(records={"AccountObj": 90}, seed=21) as fx:
        ids = fx.ids("AccountObj")
        fx.set_life_status("AccountObj", ids, "normal", stamp=False)
        retail = {i for i in ids if fx.record("AccountObj", i)["industry"] == "零售"}
        assert retail
        config = tmp_path / "crmsync.toml"
        config.write_text(CONFIG.format(url=fx.url, app_id=fx.app_id, user=fx.open_user_id))
        monkeypatch.setenv("FX_APP_SECRET", fx.app_secret)
        monkeypatch.setenv("FX_PERMANENT_CODE", fx.permanent_code)
        runner = CliRunner()

        def run(*args: str) -> Any:
            result = runner.invoke(cli, ["-c", str(config), *args])
            out = result.stdout + result.stderr
            assert fx.app_secret not in out and fx.permanent_code not in out
            return result

        checked = run("check", "fx")
        assert checked.exit_code == 0, checked.stdout + checked.stderr
        fx.reset_stats()
        pulled = run("pull", "fx")
        assert pulled.exit_code == 0, pulled.stdout + pulled.stderr
        assert fx.stats()["query_calls"] == math.ceil(90 / 40)  # ceil(N / page limit)
        assert fx.stats()["writes"] == {}

        planned = run("plan", "--json", "--operator", "alice")
        assert planned.exit_code == 0, planned.stdout + planned.stderr
        plan = json.loads(planned.stdout)
        assert plan["policies"][0]["records"] == len(retail)
        refused = run("apply", plan["id"], "--operator", "alice")
        assert refused.exit_code == 3 and "requires approval" in refused.stderr
        assert fx.stats()["writes"] == {}
        assert run("approve", plan["id"], "--operator", "carol").exit_code == 0

        fx.reset_stats()
        applied = run("apply", plan["id"], "--json", "--operator", "alice")
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        assert json.loads(applied.stdout)["policies"]["void-retail"] == {"done": len(retail)}
        assert {i for i in ids if fx.record("AccountObj", i)["life_status"] == "invalid"} == retail
        # preset-object invalid takes one id: one call per record, each record written once
        assert fx.stats()["by_path"]["/cgi/crm/v2/data/invalid"] == len(retail)
        assert set(fx.stats()["writes"].values()) == {1}

        fx.reset_stats()
        restored = run("restore", "--plan", plan["id"], "--yes", "--json")
        assert restored.exit_code == 0, restored.stdout + restored.stderr
        assert all(fx.record("AccountObj", i)["life_status"] == "normal" for i in retail)
        assert fx.stats()["by_path"]["/cgi/crm/v2/data/recover"] == math.ceil(len(retail) / 100)
        again = run("pull", "fx")
        assert again.exit_code == 0


def test_bad_settings_and_literal_secrets_are_refused_before_any_call(
    tmp_path: Path, monkeypatch: Any
) -> None:
    with FakeFxiaoke(records={"AccountObj": 5}) as fx:
        monkeypatch.setenv("FX_APP_SECRET", fx.app_secret)
        monkeypatch.setenv("FX_PERMANENT_CODE", fx.permanent_code)
        base = CONFIG.format(url=fx.url, app_id=fx.app_id, user=fx.open_user_id)
        config = tmp_path / "crmsync.toml"
        for bad, where in (
            (base.replace("page_size = 40", "page_size = 101"), "connections.fx.page_size"),
            (
                base.replace('"env:FX_APP_SECRET"', f'"{fx.app_secret}"'),
                "connections.fx.app_secret",
            ),
        ):
            config.write_text(bad)
            result = CliRunner().invoke(cli, ["-c", str(config), "check", "fx"])
            assert result.exit_code == 2 and where in result.stderr, result.stderr
            assert fx.app_secret not in result.stdout + result.stderr
        assert fx.stats()["requests"] == 0
