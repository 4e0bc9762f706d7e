"""Entry point ``fxiaoke = "crmsync_connectors.fxiaoke.plugin"``: the Fxiaoke connector."""

from __future__ import annotations

from collections.abc import Callable

from crmsync.hookspecs import Connector, hookimpl
from crmsync_connectors.fxiaoke.connector import FxiaokeConnector


@hookimpl
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    register(FxiaokeConnector())
