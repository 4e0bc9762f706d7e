"""crmsync pull -> plan (void, needs approval) -> approve -> apply -> restore through the CLI,
against the fake DingTalk server, with the fake's state and call counts checked at each step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crmsync.cli import cli
from crmsync_connectors.dingtalk.fake import STATUS_FIELDS, FakeDingTalk

CONFIG = """
[store]
path = "mirror.db"

[connections.dt]
connector = "dingtalk"
app_key = "{app_key}"
app_secret = "env:DT_APP_SECRET"
operator_user_id = "manager4711"
api_url = "{api}"
oapi_url = "{oapi}"
modules = ["crm_customer", {{ name = "crm_contact", status_field = "{contact_status}" }}]
requests_per_second = 1000
max_retries = 1
backoff_base = 0

[connections.dt.status]
field = "{status}"
values = {{ active = "正常", archived = "已归档", voided = "作废" }}

[[policies]]
name = "void-hangzhou"
connection = "dt"
module = "crm_customer"
action = "void"
require_approval = true
max_percent = 100
filter = {{ field = "customer_address", op = "contains", value = "杭州" }}
"""


def test_pull_plan_approve_apply_restore_against_the_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeDingTalk(records={"crm_customer": 120, "crm_contact": 30}, seed=3) as dt:
        config = tmp_path / "crmsync.toml"
        config.write_text(
            CONFIG.format(
                app_key=dt.app_key,
                api=dt.api_url,
                oapi=dt.oapi_url,
                status=STATUS_FIELDS["crm_customer"],
                contact_status=STATUS_FIELDS["crm_contact"],
            )
        )
        monkeypatch.setenv("DT_APP_SECRET", dt.app_secret)

        def run(*args: str) -> Result:
            result = CliRunner().invoke(cli, ["-c", str(config), *args])
            assert dt.app_secret not in result.stdout + result.stderr
            return result

        def ok(*args: str) -> Any:
            result = run(*args)
            assert result.exit_code == 0, result.stdout + result.stderr
            return json.loads(result.stdout) if "--json" in args else result

        ok("check", "dt")
        dt.reset_stats()
        ok("pull", "dt")
        # full pull: ceil(N / 100) list calls per object, one token
        assert dt.stats()["read_calls"] == math.ceil(120 / 100) + math.ceil(30 / 100)
        hangzhou = {
            i
            for i in dt.ids("crm_customer")
            if "杭州" in dt.record("crm_customer", i).data["customer_address"]
        }
        assert hangzhou

        plan = ok("plan", "--json", "--operator", "alice")
        (policy,) = plan["policies"]
        assert policy["records"] == len(hangzhou) and policy["requires_approval"]
        refused = run("apply", plan["id"], "--operator", "alice")
        assert refused.exit_code == 3 and not dt.stats()["write_calls"]
        ok("approve", plan["id"], "--operator", "carol")

        dt.reset_stats()
        ok("apply", plan["id"], "--json", "--operator", "alice")
        assert {dt.status_label("crm_customer", i) for i in hangzhou} == {"作废"}
        others = dt.ids("crm_customer") - hangzhou
        assert "作废" not in {dt.status_label("crm_customer", i) for i in others}
        # write-back: ceil(M / 10) batch updates, each record written once
        assert dt.stats()["write_calls"] == math.ceil(len(hangzhou) / 10)
        assert all(dt.write_count(i) == 1 for i in hangzhou)

        ok("pull", "dt")
        ok("restore", "--plan", plan["id"], "--yes", "--json", "--operator", "carol")
        assert {dt.status_label("crm_customer", i) for i in hangzhou} == {"正常"}
        assert all(dt.write_count(i) == 2 for i in hangzhou)


def test_a_config_wanting_void_without_a_status_field_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "crmsync.toml"
    config.write_text(
        '[connections.dt]\nconnector = "dingtalk"\napp_key = "k"\n'
        'app_secret = "env:DT_APP_SECRET"\noperator_user_id = "u"\n'
    )
    monkeypatch.setenv("DT_APP_SECRET", "s3cret-value")
    result = CliRunner().invoke(cli, ["-c", str(config), "check", "dt"])
    assert result.exit_code == 2
    assert "connections.dt.status" in result.stdout + result.stderr
