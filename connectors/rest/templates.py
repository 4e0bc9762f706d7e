"""A safe template renderer for operation paths and bodies.

A string that is exactly ``"{name}"`` becomes the raw value (so ``"{records}"`` becomes a list);
otherwise each ``{name}`` is replaced by ``str(value)``. Names are plain identifiers or
``field.X``; there is no attribute or index access (unlike ``str.format``), and any brace text
that is not a placeholder stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)?)\}")


class TemplateError(KeyError):
    """A placeholder has no value (e.g. ``{field.reason}`` for a change without a reason)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


Lookup = Callable[[str], Any]


def placeholders(template: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (key path, placeholder name) in a template value (strings, dicts, lists)."""
    if isinstance(template, str):
        for match in PLACEHOLDER.finditer(template):
            yield path, match.group(1)
    elif isinstance(template, Mapping):
        for key, value in template.items():
            yield from placeholders(value, f"{path}.{key}" if path else str(key))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from placeholders(value, f"{path}[{i}]")


def render(template: Any, lookup: Lookup, *, url: bool = False) -> Any:
    """Render ``template`` with ``lookup(name)`` (raising TemplateError when missing).

    ``url=True`` percent-encodes substituted values (for paths: an id cannot add a segment),
    except ``{path}``, the module's own list path, which may hold slashes.
    """
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole and not url:
            return lookup(whole.group(1))

        def substitute(match: re.Match[str]) -> str:
            value = lookup(match.group(1))
            if isinstance(value, list | tuple):
                text = ",".join(str(v) for v in value)  # e.g. ?ids=1,2,3
            else:
                text = "" if value is None else str(value)
            return quote(text, safe="") if url and match.group(1) != "path" else text

        return PLACEHOLDER.sub(substitute, template)
    if isinstance(template, Mapping):
        return {key: render(value, lookup, url=url) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, lookup, url=url) for value in template]
    return template


def lookup_from(values: Mapping[str, Any], fields: Mapping[str, Any] | None = None) -> Lookup:
    """A lookup over fixed ``values`` plus ``field.X`` from ``fields``."""

    def lookup(name: str) -> Any:
        if name.startswith("field."):
            key = name[len("field.") :]
            if fields is not None and key in fields:
                return fields[key]
            raise TemplateError(name)
        if name in values:
            return values[name]
        raise TemplateError(name)

    return lookup
