"""The Jiandaoyun connector's settings: JSON Schema (draft 2020-12), documented keys, typed config.

A connection lists its forms under ``modules``: a friendly module name -> the form's ``app_id``
and ``entry_id`` (Jiandaoyun addresses a form by the pair), optionally the fields to pull and
the status widget that carries archive / void / restore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crmsync.hookspecs import SecretRef, Setting

DEFAULT_BASE_URL = "https://api.jiandaoyun.com/api"
MAX_PAGE_SIZE = 100  # data/list ``limit`` is 1..100 (hc.jiandaoyun.com/open/14220)
MAX_BATCH = 100  # batch_update / batch_delete take at most 100 data_ids (open/14225, 14527)
STATUSES = ("active", "archived", "voided")
FIELD_KEYS = ("name", "label")

#: Documented requests per second of each v5 endpoint (open/14220-14527), and the global cap.
RATE_LIMITS: dict[str, float] = {
    "widget/list": 30,
    "data/list": 30,
    "data/get": 30,
    "data/update": 20,
    "data/batch_update": 10,
    "data/delete": 20,
    "data/batch_delete": 10,
    "global": 50,
}

_NONEMPTY = {"type": "string", "minLength": 1}
_OBJECT_ID = {"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"}

STATUS_SCHEMA = {
    "type": "object",
    "required": ["field", "values"],
    "additionalProperties": False,
    "properties": {
        "field": _NONEMPTY,
        "values": {
            "type": "object",
            "additionalProperties": False,
            "required": list(STATUSES),
            "properties": {s: _NONEMPTY for s in STATUSES},
        },
    },
}

MODULE_SCHEMA = {
    "type": "object",
    "required": ["app_id", "entry_id"],
    "additionalProperties": False,
    "properties": {
        "app_id": _OBJECT_ID,
        "entry_id": _OBJECT_ID,
        "fields": {"type": "array", "items": _NONEMPTY, "minItems": 1, "uniqueItems": True},
        "status": STATUS_SCHEMA,
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crmsync Jiandaoyun connector settings",
    "type": "object",
    "required": ["api_key", "modules"],
    "additionalProperties": False,
    "properties": {
        "api_key": {"type": "string", "secret": True},
        "base_url": {"type": "string", "pattern": "^https?://[^\\s]+$"},
        "modules": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
            "additionalProperties": MODULE_SCHEMA,
        },
        "field_keys": {"enum": list(FIELD_KEYS)},
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        "incremental_overlap": {"type": "number", "minimum": 0},
        "id_filter": {"type": "boolean"},
        "rate_limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"type": "number", "exclusiveMinimum": 0} for k in RATE_LIMITS},
        },
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
        "max_retry_wait": {"type": "number", "minimum": 0},
        "backoff_base": {"type": "number", "minimum": 0},
    },
}

SETTINGS: list[Setting] = [
    Setting(
        "api_key",
        "API key reference (开放平台 > 密钥管理 > 创建 API KEY), e.g. env:JDY_API_KEY",
        secret=True,
        required=True,
    ),
    Setting(
        "base_url", "API root (private deployments use their own host)", default=DEFAULT_BASE_URL
    ),
    Setting(
        "modules",
        "forms to mirror: NAME = {app_id, entry_id, fields?, status? = {field, values = "
        "{active, archived, voided}}}; field names may be widget names, aliases or labels",
        "table",
        required=True,
    ),
    Setting(
        "field_keys",
        "how the mirror keys a record's fields: name (the API's: alias, else _widget_ id) | "
        "label (the widget titles admins see)",
        default="name",
    ),
    Setting("page_size", "records per data/list call (limit, max 100)", "integer", default=100),
    Setting(
        "incremental_overlap",
        "seconds an incremental pull re-reads before the previous pull's start (clock skew)",
        "number",
        default=60.0,
    ),
    Setting(
        "id_filter",
        "data/list accepts an _id filter on this deployment (not documented): purges and write "
        "checks read 100 records in 1 call instead of 100 data/get calls",
        "boolean",
        default=False,
    ),
    Setting(
        "rate_limits",
        "requests per second by endpoint (" + ", ".join(RATE_LIMITS) + "); default: documented",
        "table",
    ),
    Setting("timeout", "seconds to wait for each response", "number", default=30.0),
    Setting("max_retries", "retries of rate limits (8303/429), 5xx, network errors", "integer", 5),
    Setting("max_retry_wait", "cap in seconds on one backoff", "number", default=60.0),
    Setting("backoff_base", "first backoff step in seconds (doubles per retry)", "number", 1.0),
]


@dataclass(frozen=True)
class StatusSettings:
    field: str  # widget name, alias or label (resolved against widget/list)
    values: Mapping[str, str]  # active / archived / voided -> option text


@dataclass(frozen=True)
class FormSettings:
    name: str  # the friendly module name
    app_id: str
    entry_id: str
    fields: tuple[str, ...] | None = None
    status: StatusSettings | None = None


@dataclass(frozen=True)
class JiandaoyunSettings:
    api_key: SecretRef | str
    modules: dict[str, FormSettings]
    base_url: str = DEFAULT_BASE_URL
    field_keys: str = "name"
    page_size: int = MAX_PAGE_SIZE
    incremental_overlap: float = 60.0
    id_filter: bool = False
    rate_limits: Mapping[str, float] = field(default_factory=lambda: dict(RATE_LIMITS))
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 60.0
    backoff_base: float = 1.0


def parse_settings(settings: Mapping[str, Any]) -> JiandaoyunSettings:
    """Schema-valid settings -> :class:`JiandaoyunSettings` (defaults filled in)."""
    modules: dict[str, FormSettings] = {}
    for name, raw in settings["modules"].items():
        status = None
        if "status" in raw:
            status = StatusSettings(raw["status"]["field"], dict(raw["status"]["values"]))
        fields = tuple(raw["fields"]) if raw.get("fields") else None
        modules[name] = FormSettings(name, raw["app_id"], raw["entry_id"], fields, status)
    return JiandaoyunSettings(
        api_key=settings["api_key"],
        modules=modules,
        base_url=str(settings.get("base_url", DEFAULT_BASE_URL)).rstrip("/"),
        field_keys=settings.get("field_keys", "name"),
        page_size=int(settings.get("page_size", MAX_PAGE_SIZE)),
        incremental_overlap=float(settings.get("incremental_overlap", 60.0)),
        id_filter=bool(settings.get("id_filter", False)),
        rate_limits={**RATE_LIMITS, **dict(settings.get("rate_limits") or {})},
        timeout=float(settings.get("timeout", 30.0)),
        max_retries=int(settings.get("max_retries", 5)),
        max_retry_wait=float(settings.get("max_retry_wait", 60.0)),
        backoff_base=float(settings.get("backoff_base", 1.0)),
    )
