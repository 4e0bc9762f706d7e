"""Entry point ``rest = "crmsync_connectors.rest.plugin"``: registers the REST connector."""

from __future__ import annotations

from collections.abc import Callable

from crmsync.hookspecs import Connector, hookimpl
from crmsync_connectors.rest.connector import RestConnector


@hookimpl
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    register(RestConnector())
