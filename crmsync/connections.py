"""Open connector sessions for configured connections (the only place the core does this)."""

from __future__ import annotations

from crmsync.config import Config
from crmsync.hookspecs import ConnectorSession
from crmsync.plugins import PluginRegistry


def open_session(config: Config, registry: PluginRegistry, name: str) -> ConnectorSession:
    conn = config.connection(name)
    connector = registry.connector(conn.connector, key_path=f"connections.{name}.connector")
    return connector.open(name, conn.settings)
