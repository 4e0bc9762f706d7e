"""Notifications of `crmsync run`: the crmsync_notify hook and the built-in webhook notifier
(DingTalk robot with signing, Slack, generic JSON), against a real local HTTP server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

import pytest

from crmsync.config import load_config
from crmsync.hookspecs import Notification, hookimpl
from crmsync.plugins import build_registry
from crmsync.unattended import webhook
from crmsync.unattended.run import RunOptions, run_once
from tests.lifecycle_support import TOKEN
from tests.run_support import AUTO_POLICIES, Hooks, json_run, run_config

HOOK_TOKEN = "robot-token-5f1e"  # in the webhook URLs: must never be printed
DT_SECRET = "SEC0123456789abcdef"


@pytest.fixture
def hooks(monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    monkeypatch.setattr(webhook, "RETRY_WAIT", 0)
    with Hooks() as server:
        monkeypatch.setenv("HOOK_DT", server.url(f"/robot/send?access_token={HOOK_TOKEN}"))
        monkeypatch.setenv("HOOK_SLACK", server.url(f"/services/T0/B0/{HOOK_TOKEN}"))
        monkeypatch.setenv("HOOK_ALL", server.url(f"/all/{HOOK_TOKEN}"))
        monkeypatch.setenv("DT_SECRET", DT_SECRET)
        yield server


WEBHOOKS = """
[[notify.webhooks]]
name = "ops-dingtalk"
url = "env:HOOK_DT"
template = "dingtalk"
secret = "env:DT_SECRET"

[[notify.webhooks]]
url = "env:HOOK_SLACK"
template = "slack"
on = ["awaiting_approval"]

[[notify.webhooks]]
url = "env:HOOK_ALL"
on = ["failure", "recovery"]
retries = 2
"""


def notify_steps(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["step"] == "notify"]


def test_a_plan_awaiting_approval_is_announced_once(tmp_path, lc_sandbox, hooks):
    config = run_config(tmp_path, lc_sandbox.api_url, extra=WEBHOOKS)
    code, lines, stderr = json_run(config)
    assert code == 4
    [plan_id] = lines[-1]["awaiting_plans"]
    [ding] = [p for p in hooks.posts if p["path"] == "/robot/send"]
    assert ding["body"]["msgtype"] == "text"
    content = ding["body"]["text"]["content"]
    assert content.startswith("crmsync: 1 plan awaiting approval") and plan_id in content
    assert "void-junk-contacts would void" in content
    # signed as DingTalk documents: HMAC-SHA256(secret, timestamp + "\n" + secret), base64
    query = ding["query"]
    assert query["access_token"] == HOOK_TOKEN
    assert abs(int(query["timestamp"]) - time.time() * 1000) < 3_600_000
    mac = hmac.new(DT_SECRET.encode(), f"{query['timestamp']}\n{DT_SECRET}".encode(), "sha256")
    assert query["sign"] == base64.b64encode(mac.digest()).decode()
    assert hooks.bodies(f"/services/T0/B0/{HOOK_TOKEN}") == [{"text": content}]
    assert hooks.bodies(f"/all/{HOOK_TOKEN}") == []  # subscribed to failure and recovery only
    steps = notify_steps(lines)
    assert [s["status"] for s in steps] == ["sent"]
    assert steps[0]["detail"] == "sent to ops-dingtalk, slack webhook #2"
    assert HOOK_TOKEN not in "".join(map(str, lines)) + stderr

    code, lines, _ = json_run(config)  # still waiting: not announced again
    assert code == 4 and len(hooks.posts) == 2 and notify_steps(lines) == []


def test_failure_then_recovery(tmp_path, lc_sandbox, hooks):
    config = run_config(tmp_path, lc_sandbox.api_url, extra=WEBHOOKS, policies=[AUTO_POLICIES[0]])
    lc_sandbox.set_faults(error_rate=1.0)  # the CRM answers 503 to everything
    code, lines, _ = json_run(config)
    assert code == 1 and lines[-1]["status"] == "failed"
    skipped = next(line for line in lines if line["step"] == "plan")
    assert skipped["status"] == "skipped" and skipped["reason"] == "its pull failed"
    [failure] = hooks.bodies(f"/all/{HOOK_TOKEN}")
    assert failure["kind"] == "failure" and failure["run_id"] == lines[-1]["run_id"]
    assert failure["status"] == "failed" and failure["exit_code"] == 1
    assert "503" in failure["errors"][0] and "503" in failure["text"]
    [ding] = hooks.bodies("/robot/send")
    assert ding["text"]["content"].startswith("crmsync: run 1 FAILED")

    lc_sandbox.clear_faults()
    code, lines, _ = json_run(config)
    assert code == 0
    recovery = hooks.bodies(f"/all/{HOOK_TOKEN}")[-1]
    assert recovery["kind"] == "recovery" and recovery["status"] == "ok"
    assert "recovered" in recovery["title"]
    code, lines, _ = json_run(config)  # ok after ok: nothing to say
    assert code == 0 and len(hooks.bodies(f"/all/{HOOK_TOKEN}")) == 2


def test_a_failing_webhook_never_fails_the_run(tmp_path, lc_sandbox, hooks, monkeypatch):
    monkeypatch.setenv("HOOK_SLACK", "http://127.0.0.1:9/" + HOOK_TOKEN)  # nothing listens
    hooks.statuses = [500] * 20
    extra = WEBHOOKS.replace('on = ["failure", "recovery"]', 'on = ["awaiting_approval"]')
    config = run_config(tmp_path, lc_sandbox.api_url, extra=extra)
    code, lines, stderr = json_run(config)
    assert code == 4 and lines[-1]["status"] == "awaiting_approval"  # as if all were sent
    [step] = notify_steps(lines)
    assert step["status"] == "failed" and step["level"] == "error"
    error = step["error"]
    assert "webhook 'ops-dingtalk': HTTP 500 (after 4 attempts)" in error
    assert "webhook 'slack webhook #2': ConnectionError (after 4 attempts)" in error
    assert "webhook 'generic webhook #3': HTTP 500 (after 3 attempts)" in error
    assert len(hooks.posts) == 4 + 3  # retried, then given up
    assert HOOK_TOKEN not in "".join(map(str, lines)) + stderr


def test_dingtalk_refusal_is_a_failure(tmp_path, lc_sandbox, hooks):
    hooks.answer = {"errcode": 310000, "errmsg": "sign not match"}
    config = run_config(tmp_path, lc_sandbox.api_url, extra=WEBHOOKS)
    code, lines, _ = json_run(config)
    assert code == 4
    [step] = notify_steps(lines)
    assert "DingTalk errcode 310000 sign not match" in step["error"]


class Collector:
    def __init__(self) -> None:
        self.seen: list[Notification] = []

    @hookimpl
    def crmsync_notify(self, notification: Notification) -> str:
        self.seen.append(notification)
        return "noted"


class Broken:
    @hookimpl
    def crmsync_notify(self, notification, config):
        raise RuntimeError(f"cannot reach {HOOK_TOKEN}")


def test_plugins_notify_through_the_hook(tmp_path, lc_sandbox, hooks):
    path = run_config(tmp_path, lc_sandbox.api_url)
    collector = Collector()
    registry = build_registry(extra_plugins=[("collector", collector), ("broken", Broken())])
    config = load_config(path, registry)
    outcome = run_once(config, registry, RunOptions())
    assert outcome.status == "awaiting_approval"
    [note] = collector.seen
    assert note.kind == "awaiting_approval" and note.run_id == outcome.run_id
    assert note.plans[0]["id"] == outcome.awaiting_plans[0] and note.plans[0]["records"] > 0
    results = {s["notifier"]: s for s in outcome.steps if s["step"] == "notify"}
    assert results["collector"]["status"] == "sent" and results["collector"]["detail"] == "noted"
    assert results["broken"] == {**results["broken"], "status": "failed", "error": "RuntimeError"}
    assert "crmsync-webhook" not in results  # no webhook configured: nothing to say


def test_signed_url_keeps_the_query():
    url = webhook.signed_url("https://oapi.dingtalk.com/robot/send?access_token=x", "s", 1000)
    base, query = url.split("?")
    assert base == "https://oapi.dingtalk.com/robot/send"
    params = dict(urllib.parse.parse_qsl(query))
    digest = hmac.new(b"s", b"1000\ns", hashlib.sha256).digest()
    assert params == {
        "access_token": "x",
        "timestamp": "1000",
        "sign": base64.b64encode(digest).decode(),
    }
    assert "+" not in query.split("sign=")[1]  # URL-encoded, as DingTalk expects
