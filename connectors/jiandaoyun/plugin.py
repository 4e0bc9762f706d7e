"""Entry point ``jiandaoyun = "crmsync_connectors.jiandaoyun.plugin"``: the Jiandaoyun connector."""

from __future__ import annotations

from collections.abc import Callable

from crmsync.hookspecs import Connector, hookimpl
from crmsync_connectors.jiandaoyun.connector import JiandaoyunConnector


@hookimpl
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    register(JiandaoyunConnector())
