"""Entry point ``dingtalk = "crmsync_connectors.dingtalk.plugin"``: the DingTalk CRM connector."""

from __future__ import annotations

from collections.abc import Callable

from crmsync.hookspecs import Connector, hookimpl
from crmsync_connectors.dingtalk.connector import DingTalkConnector


@hookimpl
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    register(DingTalkConnector())
