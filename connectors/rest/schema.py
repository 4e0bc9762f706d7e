"""The REST connector's settings: JSON Schema (draft 2020-12) and the documented key list.

Discriminated tables (``auth``, ``paginator``) list every key of every type under
``properties`` (so the core finds ``"secret": true`` keys and describes them), then an
``if type == X`` / ``then`` per type restricts the keys to that type's and names the required
ones, so an error says exactly which key is wrong. ``additionalProperties: false`` everywhere
catches typos. README.md in this directory documents every key with an example.
"""

from __future__ import annotations

from typing import Any

from crmsync.hookspecs import ACTIONS, Setting

AUTH_TYPES = (
    "none",
    "bearer",
    "api_key",
    "basic",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
)
PAGINATOR_TYPES = ("page_number", "offset", "cursor", "next_url", "link_header", "single_page")
TIME_FORMATS = ("iso8601", "epoch_seconds", "epoch_millis")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_STR = {"type": "string"}
_NONEMPTY = {"type": "string", "minLength": 1}
_PATH = {"type": "string", "description": "dotted path into the JSON body, e.g. meta.total"}
_BOOL = {"type": "boolean"}
_POS_INT = {"type": "integer", "minimum": 1}
_SECRET = {"type": "string", "secret": True}
_SCALAR = {"type": ["string", "integer", "number", "boolean"]}


def _discriminated(
    types: tuple[str, ...], keys: dict[str, dict[str, Any]], variants: dict[str, tuple]
) -> dict[str, Any]:
    """An object whose ``type`` picks which of ``keys`` are allowed (and which required)."""
    branches = []
    for name in types:
        allowed, required = variants.get(name, ((), ()))
        branches.append(
            {
                "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                "then": {
                    "properties": {key: True for key in ("type", *allowed)},
                    "required": list(required),
                    "additionalProperties": False,
                },
            }
        )
    return {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": list(types)}, **keys},
        "additionalProperties": False,
        "allOf": branches,
    }


AUTH_SCHEMA = _discriminated(
    AUTH_TYPES,
    {
        "token": _SECRET,
        "scheme": _NONEMPTY,
        "name": _NONEMPTY,
        "key": _SECRET,
        "location": {"enum": ["header", "query"]},
        "username": _STR,
        "password": _SECRET,
        "token_url": {"type": "string", "pattern": "^https?://"},
        "client_id": _NONEMPTY,
        "client_secret": _SECRET,
        "refresh_token": _SECRET,
        "scope": _STR,
    },
    {
        "bearer": (("token", "scheme"), ("token",)),
        "api_key": (("name", "key", "location"), ("name", "key")),
        "basic": (("username", "password"), ("username", "password")),
        "oauth2_client_credentials": (
            ("token_url", "client_id", "client_secret", "scope", "scheme"),
            ("token_url", "client_id", "client_secret"),
        ),
        "oauth2_refresh_token": (
            ("token_url", "client_id", "client_secret", "refresh_token", "scope", "scheme"),
            ("token_url", "client_id", "client_secret", "refresh_token"),
        ),
    },
)

PAGINATOR_SCHEMA = _discriminated(
    PAGINATOR_TYPES,
    {
        "page_param": _NONEMPTY,
        "size_param": _NONEMPTY,
        "base_page": {"type": "integer", "minimum": 0},
        "offset_param": _NONEMPTY,
        "limit_param": _NONEMPTY,
        "total_path": _PATH,
        "has_more_path": _PATH,
        "stop_on_short_page": _BOOL,
        "cursor_param": _NONEMPTY,
        "cursor_path": _PATH,
        "next_url_path": _PATH,
        "rel": _NONEMPTY,
    },
    {
        "page_number": (
            (
                "page_param",
                "size_param",
                "base_page",
                "total_path",
                "has_more_path",
                "stop_on_short_page",
            ),
            (),
        ),
        "offset": (
            (
                "offset_param",
                "limit_param",
                "total_path",
                "has_more_path",
                "stop_on_short_page",
            ),
            (),
        ),
        "cursor": (("cursor_param", "cursor_path", "size_param"), ()),
        "next_url": (("next_url_path", "size_param"), ()),
        "link_header": (("rel", "size_param"), ()),
    },
)

INCREMENTAL_SCHEMA = {
    "type": "object",
    "required": ["param"],
    "additionalProperties": False,
    "properties": {
        "param": _NONEMPTY,
        "format": {"enum": list(TIME_FORMATS)},
        "sort_param": _NONEMPTY,
        "sort_value": _NONEMPTY,
        "lookback_seconds": {"type": "number", "minimum": 0},
    },
    "dependentRequired": {"sort_param": ["sort_value"], "sort_value": ["sort_param"]},
}

DELETED_SCHEMA = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "path": _NONEMPTY,
        "param": _NONEMPTY,
        "format": {"enum": list(TIME_FORMATS)},
        "records_path": _STR,
        "id_field": _NONEMPTY,
        "paginator": PAGINATOR_SCHEMA,
    },
}

OPERATION_SCHEMA = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "method": {"enum": list(METHODS)},
        "path": _NONEMPTY,
        "params": {"type": "object", "additionalProperties": _SCALAR},
        "body": {"type": ["object", "array"]},
        "item": {"type": "object"},
        "include_fields": _BOOL,
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000},
        "result_path": _STR,
        "result_id_field": _NONEMPTY,
        "success_field": _NONEMPTY,
        "success_value": {},
        "error_field": _NONEMPTY,
        "result_modified_path": _NONEMPTY,
        "success_status": {
            "type": "array",
            "items": {"type": "integer", "minimum": 100, "maximum": 599},
            "minItems": 1,
        },
    },
}

OPERATIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {action: OPERATION_SCHEMA for action in ACTIONS},
}

# Keys a module inherits from [module_defaults] (and may override).
MODULE_DEFAULT_KEYS: dict[str, Any] = {
    "records_path": _STR,
    "id_field": _NONEMPTY,
    "modified_field": _STR,
    "modified_format": {"enum": list(TIME_FORMATS)},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 10000},
    "params": {"type": "object", "additionalProperties": _SCALAR},
    "status_field": _STR,
    "status_values": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            status: {"oneOf": [_SCALAR, {"type": "array", "items": _SCALAR, "minItems": 1}]}
            for status in ("active", "archived", "voided")
        },
    },
}

MODULE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **MODULE_DEFAULT_KEYS,
        "path": _NONEMPTY,
        "paginator": PAGINATOR_SCHEMA,
        "incremental": INCREMENTAL_SCHEMA,
        "deleted": DELETED_SCHEMA,
        "operations": OPERATIONS_SCHEMA,
        "actions": {
            "type": "array",
            "items": {"enum": list(ACTIONS)},
            "uniqueItems": True,
        },
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crmsync REST connector settings",
    "type": "object",
    "required": ["base_url", "modules"],
    "additionalProperties": False,
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://[^\\s]+$"},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
        "max_retry_wait": {"type": "number", "minimum": 0},
        "backoff_base": {"type": "number", "minimum": 0},
        "requests_per_second": {"type": "number", "exclusiveMinimum": 0},
        "headers": {"type": "object", "additionalProperties": _STR},
        "auth": AUTH_SCHEMA,
        "paginator": PAGINATOR_SCHEMA,
        "incremental": INCREMENTAL_SCHEMA,
        "deleted": DELETED_SCHEMA,
        "module_defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": MODULE_DEFAULT_KEYS,
        },
        "modules": {"type": "object", "minProperties": 1, "additionalProperties": MODULE_SCHEMA},
        "operations": OPERATIONS_SCHEMA,
    },
}


SETTINGS: list[Setting] = [
    Setting("base_url", "API root; module and operation paths are relative to it", required=True),
    Setting("timeout", "seconds to wait for each response", "number", default=30.0),
    Setting("concurrency", "most requests in flight to this CRM at once", "integer", default=1),
    Setting("max_retries", "retries of 429/5xx/network errors per request", "integer", default=5),
    Setting("max_retry_wait", "cap in seconds on one backoff / Retry-After", "number", default=60),
    Setting(
        "backoff_base", "first backoff step in seconds (doubles per retry)", "number", default=0.5
    ),
    Setting("requests_per_second", "optional client-side rate limit", "number"),
    Setting("headers", "extra static request headers (never secrets: use [auth])", "table"),
    Setting("auth", "how requests authenticate (table; see auth.*)", "table"),
    Setting("paginator", "how list requests page (table; see paginator.*)", "table"),
    Setting("incremental", "how to ask for records modified since a cursor", "table"),
    Setting("deleted", "optional endpoint listing deleted records (incremental pulls)", "table"),
    Setting("module_defaults", "defaults for every [modules.NAME] table", "table"),
    Setting("modules", "one table per module to mirror", "table", required=True),
    Setting("operations", "write-back per action (archive, void, restore, purge)", "table"),
    Setting("auth.type", "none | " + " | ".join(AUTH_TYPES[1:]), default="none"),
    Setting("auth.token", "bearer token reference (env:/keyring:)", secret=True),
    Setting("auth.scheme", "Authorization scheme word for bearer/OAuth2", default="Bearer"),
    Setting("auth.name", "api_key: header or query parameter name"),
    Setting("auth.key", "api_key: the key reference", secret=True),
    Setting("auth.location", "api_key: header | query", default="header"),
    Setting("auth.username", "basic: user name"),
    Setting("auth.password", "basic: password reference", secret=True),
    Setting("auth.token_url", "OAuth2 token endpoint URL"),
    Setting("auth.client_id", "OAuth2 client id"),
    Setting("auth.client_secret", "OAuth2 client secret reference", secret=True),
    Setting("auth.refresh_token", "oauth2_refresh_token: refresh token reference", secret=True),
    Setting("auth.scope", "OAuth2 scope (optional)"),
    Setting("paginator.type", " | ".join(PAGINATOR_TYPES), default="page_number"),
    Setting("paginator.page_param", "page_number: page parameter", default="page"),
    Setting("paginator.size_param", "page-size parameter", default="per_page"),
    Setting("paginator.base_page", "page_number: number of the first page", "integer", default=1),
    Setting("paginator.offset_param", "offset: offset parameter", default="offset"),
    Setting("paginator.limit_param", "offset: page-size parameter", default="limit"),
    Setting("paginator.total_path", "path to the total record count (enables parallel pages)"),
    Setting("paginator.has_more_path", "path to a 'more pages' boolean"),
    Setting("paginator.stop_on_short_page", "a short page ends the pull", "boolean", default=True),
    Setting("paginator.cursor_param", "cursor: cursor parameter", default="cursor"),
    Setting("paginator.cursor_path", "cursor: path to the next cursor", default="next_cursor"),
    Setting("paginator.next_url_path", "next_url: path to the next page URL", default="next"),
    Setting("paginator.rel", "link_header: Link relation to follow", default="next"),
    Setting("incremental.param", "query parameter receiving the cursor (modified since)"),
    Setting("incremental.format", " | ".join(TIME_FORMATS), default="iso8601"),
    Setting("incremental.sort_param", "parameter asking for ascending modified order"),
    Setting("incremental.sort_value", "value of sort_param that sorts by modified ascending"),
    Setting(
        "incremental.lookback_seconds", "re-read this many seconds before the cursor", "number"
    ),
    Setting("deleted.path", "endpoint listing deleted records ({module} allowed)"),
    Setting("deleted.param", "parameter receiving the cursor", default="since"),
    Setting("deleted.format", " | ".join(TIME_FORMATS), default="iso8601"),
    Setting("deleted.records_path", "path to the deleted-record list", default="data"),
    Setting("deleted.id_field", "id field of a deleted-record entry", default="id"),
    Setting("deleted.paginator", "paginator table for the deleted listing", default="page_number"),
    Setting("module_defaults.records_path", "path to the record list ('' = body)", default="data"),
    Setting("module_defaults.id_field", "record id field", default="id"),
    Setting("module_defaults.modified_field", "modified-time field ('' = none: full pulls)"),
    Setting("module_defaults.modified_format", " | ".join(TIME_FORMATS), default="iso8601"),
    Setting("module_defaults.page_size", "records per list request", "integer", default=100),
    Setting("module_defaults.params", "extra static query parameters for list requests", "table"),
    Setting(
        "module_defaults.status_field",
        "path to the field showing the record's lifecycle status in the CRM",
    ),
    Setting(
        "module_defaults.status_values",
        "CRM value(s) of that field per lifecycle status: active, archived, voided",
        "table",
    ),
    Setting(
        "modules.NAME",
        "one table per module; overrides module_defaults and may set path, "
        "paginator, incremental, deleted, operations, actions",
        "table",
        required=True,
    ),
    Setting(
        "operations.ACTION",
        "write-back for archive | void | restore | purge: method, path, "
        "params, body, item, include_fields, batch_size, result_path, result_id_field, "
        "success_field, success_value, error_field, result_modified_path, success_status",
        "table",
    ),
]
