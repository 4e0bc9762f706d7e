"""Plugin loading: entry points of group ``crmsync.connectors``, blocking, failure isolation.

Built-in connectors are found through the same entry points as third-party ones; the core
imports no connector module by name. ``CRMSYNC_DISABLE_PLUGINS=a,b`` blocks named plugins
(entry-point names); ``CRMSYNC_LOAD_PLUGINS=a,b`` loads only those. A plugin that fails to import
is recorded with its error and skipped, so one broken package never breaks other commands.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from crmsync import hookspecs
from crmsync.errors import UnknownConnectorError
from crmsync.hookspecs import Connector

DISABLE_ENV = "CRMSYNC_DISABLE_PLUGINS"
LOAD_ENV = "CRMSYNC_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    package: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | blocked | failed
    error: str | None = None


@dataclass
class ConnectorInfo:
    name: str
    description: str
    plugin: str
    package: str | None
    version: str | None
    # The connector's documented settings (Connector.settings(), as dicts): what an admin may
    # write in a connection table; `crmsync connectors --json` shows them.
    settings: list[dict[str, Any]] = field(default_factory=list)


class PluginRegistry:
    """The plugin manager plus what it found: connectors and per-plugin status."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]):
        self.pm = pm
        self.plugins = plugins
        self._connectors: dict[str, tuple[Connector, str]] = {}
        self._collect_connectors()

    def _collect_connectors(self) -> None:
        for plugin_name, plugin in self.pm.list_name_plugin():
            impl = getattr(plugin, "crmsync_register_connectors", None)
            if impl is None or self.pm.is_blocked(plugin_name):
                continue

            def register(connector: Connector, _owner: str = plugin_name) -> None:
                self._connectors.setdefault(connector.name, (connector, _owner))

            try:
                impl(register=register)
            except Exception as exc:  # a broken plugin must not break the others
                self._mark_failed(plugin_name, f"crmsync_register_connectors raised: {exc!r}")

    def _mark_failed(self, name: str, error: str) -> None:
        for info in self.plugins:
            if info.name == name:
                info.status, info.error = "failed", error

    def connector(self, name: str, *, key_path: str | None = None) -> Connector:
        try:
            return self._connectors[name][0]
        except KeyError:
            known = ", ".join(sorted(self._connectors)) or "none installed"
            hint = ""
            failed = [p for p in self.plugins if p.name == name and p.status != "loaded"]
            if failed:
                hint = f" (plugin {name!r} is {failed[0].status}: {failed[0].error})"
            raise UnknownConnectorError(
                f"unknown connector {name!r}{hint}; installed connectors: {known}",
                path=key_path,
            ) from None

    def connectors(self) -> list[ConnectorInfo]:
        out = []
        for name, (connector, plugin_name) in sorted(self._connectors.items()):
            info = next((p for p in self.plugins if p.name == plugin_name), None)
            out.append(
                ConnectorInfo(
                    name=name,
                    description=getattr(connector, "description", ""),
                    plugin=plugin_name,
                    package=info.package if info else None,
                    version=info.version if info else None,
                    settings=_documented_settings(connector),
                )
            )
        return out

    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "failed"]


def _documented_settings(connector: Connector) -> list[dict[str, Any]]:
    try:
        return [asdict(setting) for setting in connector.settings()]
    except Exception:  # a plugin's bug in settings() must not break the listing
        return []


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)


def build_registry(extra_plugins: Iterable[tuple[str, Any]] = ()) -> PluginRegistry:
    """Load every plugin from entry points (plus ``extra_plugins``, e.g. in tests)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = _names_from_env(DISABLE_ENV) or set()
    only = _names_from_env(LOAD_ENV)
    infos: list[PluginInfo] = []

    for ep in sorted(_entry_points(), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            package=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
        )
        infos.append(info)
        if ep.name in blocked or (only is not None and ep.name not in only):
            info.status = "blocked"
            pm.set_blocked(ep.name)
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue  # same name twice (e.g. an editable and a regular install)
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:
            info.status = "failed"
            info.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            continue
        info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])

    for name, plugin in extra_plugins:
        pm.register(plugin, name=name)
        infos.append(
            PluginInfo(
                name=name,
                package=None,
                version=None,
                hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            )
        )
    return PluginRegistry(pm, infos)


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded once."""
    global _registry
    if _registry is None:
        _registry = build_registry()
    return _registry


def reset_registry() -> None:
    """Forget the loaded plugins (tests change the environment and reload)."""
    global _registry
    _registry = None


def warn_failures(registry: PluginRegistry, stream: Any = None) -> None:
    stream = stream or sys.stderr
    for info in registry.failures():
        print(f"warning: plugin {info.name!r} failed to load: {info.error}", file=stream)
