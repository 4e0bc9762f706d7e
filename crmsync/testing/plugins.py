"""Use a plugin that is not installed (no entry point yet) with the real CLI, in tests.

    from crmsync.testing.plugins import registered_plugins
    from crmsync_acme import plugin

    with registered_plugins(("acme", plugin)):
        CliRunner().invoke(cli, ["-c", str(config), "pull", "acme-test"])

Inside the block the process-wide plugin registry holds every installed plugin plus the given
ones (an installed copy of the same plugin, e.g. after ``pip install -e .``, is left out so
nothing is registered twice); on exit the previous registry is put back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crmsync import plugins


@contextmanager
def registered_plugins(*named: tuple[str, Any]) -> Iterator[plugins.PluginRegistry]:
    """Install a registry with the installed plugins plus ``named`` ((name, module) pairs)."""
    names = {name for name, _ in named}
    modules = {getattr(module, "__name__", None) for _, module in named}
    installed = plugins._entry_points

    def others() -> list[Any]:
        return [
            ep
            for ep in installed()
            if ep.name not in names and ep.value.split(":")[0] not in modules
        ]

    previous = plugins._registry
    plugins._entry_points = others  # type: ignore[assignment]
    try:
        registry = plugins.build_registry(extra_plugins=named)
    finally:
        plugins._entry_points = installed  # type: ignore[assignment]
    plugins._registry = registry
    try:
        yield registry
    finally:
        plugins._registry = previous
