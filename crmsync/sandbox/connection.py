"""The ``[connections.sandbox]`` table that points the REST connector at the sandbox CRM.

:func:`sandbox_connection_settings` returns the settings *without* the ``connector`` key, i.e.
exactly what the core hands to ``RestConnector().open()`` after validation (secret values are
still reference strings here; the core turns them into SecretRefs).
:func:`sandbox_connection_toml` renders the full table, ``connector = "rest"`` included, as
TOML text (no TOML writer is installed, so a tiny renderer for this nested-dict shape is below).
"""

from __future__ import annotations

import json
import re
from typing import Any

MODULES = ("Leads", "Contacts", "Accounts", "Deals")

_PAGINATORS: dict[str, dict[str, Any]] = {
    "page_number": {
        "type": "page_number",
        "page_param": "page",
        "size_param": "per_page",
        "base_page": 1,
        "total_path": "meta.total",
    },
    "offset": {
        "type": "offset",
        "offset_param": "offset",
        "limit_param": "limit",
        "total_path": "meta.total",
    },
    "cursor": {
        "type": "cursor",
        "cursor_param": "cursor",
        "cursor_path": "meta.next_cursor",
        "size_param": "limit",
    },
    "next_url": {"type": "next_url", "next_url_path": "links.next", "size_param": "per_page"},
    "link_header": {"type": "link_header", "rel": "next", "size_param": "per_page"},
}

_RESULTS = {
    "result_path": "results",
    "result_id_field": "id",
    "success_field": "ok",
    "success_value": True,
    "error_field": "error",
    "result_modified_path": "modified_at",
}


def _status_op(status: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "{module}/batch",
        "batch_size": 100,
        "body": {"records": "{records}"},
        "item": {"id": "{id}", "status": status},
        "include_fields": True,
        **_RESULTS,
    }


def sandbox_connection_settings(
    api_url: str,
    token_ref: str = "env:CRMSYNC_SANDBOX_TOKEN",
    *,
    concurrency: int = 4,
    page_size: int = 200,
    paginator: str = "page_number",
) -> dict[str, Any]:
    """REST connector settings for the sandbox API at ``api_url`` (its ``/api/v1/`` root).

    ``paginator`` is one of page_number | offset | cursor | next_url | link_header (the sandbox
    serves them all). No ``connector`` key: the result validates against the REST schema as is.
    """
    if paginator not in _PAGINATORS:
        raise ValueError(f"paginator must be one of {', '.join(_PAGINATORS)}")
    return {
        "base_url": api_url if api_url.endswith("/") else api_url + "/",
        "timeout": 30,
        "concurrency": concurrency,
        "max_retries": 5,
        "max_retry_wait": 60,
        "auth": {"type": "bearer", "token": token_ref},
        "paginator": dict(_PAGINATORS[paginator]),
        "incremental": {
            "param": "modified_since",
            "format": "iso8601",
            "sort_param": "sort",
            "sort_value": "modified_at",
        },
        "deleted": {
            "path": "{module}/deleted",
            "param": "since",
            "records_path": "data",
            "paginator": dict(_PAGINATORS["page_number"]),
        },
        "module_defaults": {
            "records_path": "data",
            "id_field": "id",
            "modified_field": "modified_at",
            "modified_format": "iso8601",
            "page_size": page_size,
            "status_field": "status",
            "status_values": {"active": "active", "archived": "archived", "voided": "voided"},
        },
        "modules": {name: {"path": name} for name in MODULES},
        "operations": {
            "archive": _status_op("archived"),
            "void": _status_op("voided"),
            "restore": _status_op("active"),
            # field writes: the sandbox stores extra fields of a batch item as given
            "tag": {**_status_op("active"), "item": {"id": "{id}", "tags": "{field.tags}"}},
            "update": {**_status_op("active"), "item": {"id": "{id}"}},
            "purge": {
                "method": "POST",
                "path": "{module}/batch-delete",
                "batch_size": 100,
                "body": {"ids": "{ids}"},
                **_RESULTS,
            },
        },
    }


def sandbox_connection_toml(
    api_url: str,
    token_ref: str = "env:CRMSYNC_SANDBOX_TOKEN",
    *,
    name: str = "sandbox",
    concurrency: int = 4,
    page_size: int = 200,
    paginator: str = "page_number",
) -> str:
    """The ``[connections.<name>]`` table (with ``connector = "rest"``) as TOML text."""
    settings = sandbox_connection_settings(
        api_url, token_ref, concurrency=concurrency, page_size=page_size, paginator=paginator
    )
    return to_toml({"connections": {name: {"connector": "rest", **settings}}})


# --------------------------------------------------------------------------- a tiny TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """Scalars first, then one ``[a.b]`` section per sub-table (recursively).

    Sub-tables whose values are all scalars/lists and that sit inside an operation (``body``,
    ``item``, ``params``) are written inline, which reads like the documented examples.
    """
    lines: list[str] = []
    sections: list[tuple[str, dict[str, Any]]] = []
    for key, value in table.items():
        if isinstance(value, dict) and not (prefix and key in ("body", "item", "params")):
            sections.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = ""
    if prefix and (lines or not sections):
        out += "[" + ".".join(_key(p) for p in prefix) + "]\n"
    if lines:
        out += "\n".join(lines) + "\n"
    for key, sub in sections:
        text = to_toml(sub, (*prefix, key))
        out += ("\n" if out else "") + text
    return out
