"""The Fxiaoke connector's settings: JSON Schema (draft 2020-12), documented keys, typed config.

The core validates a connection's table against :data:`SETTINGS_SCHEMA` (secret keys must be
``env:``/``keyring:`` references) before :func:`parse_settings` turns it into
:class:`FxiaokeSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crmsync.hookspecs import SecretRef, Setting

DEFAULT_BASE_URL = "https://open.fxiaoke.com"
MAX_LIMIT = 100  # search_query_info.limit cap of the query endpoints
MAX_OFFSET = 10_000  # offset cap; past it errorCode 10013, so paging continues by _id
MAX_BATCH = 100  # ids per recover / delete / custom batch invalid call (crmsync's choice)
# Assumption (reference [doc], unconfirmed live): 100 calls per 20 s per interface.
RATE_CALLS = 100
RATE_PERIOD = 20.0

_NONEMPTY = {"type": "string", "minLength": 1}
_SECRET = {"type": "string", "secret": True}
_API_NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]*$"}

OBJECT_ITEM = {
    "oneOf": [
        _API_NAME,
        {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": _API_NAME,
                "fields": {"type": "array", "items": _API_NAME, "minItems": 1, "uniqueItems": True},
            },
        },
    ]
}

ARCHIVE_SCHEMA = {
    "type": "object",
    "required": ["field", "value"],
    "additionalProperties": False,
    "properties": {
        "field": _API_NAME,
        "value": {"type": ["string", "boolean", "integer"]},
        "active_value": {"type": ["string", "boolean", "integer", "null"]},
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crmsync Fxiaoke (纷享销客) connector settings",
    "type": "object",
    "required": ["app_id", "app_secret", "permanent_code", "objects"],
    "additionalProperties": False,
    "anyOf": [{"required": ["current_open_user_id"]}, {"required": ["admin_mobile"]}],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://[^\\s/]+(:[0-9]+)?/?$"},
        "app_id": _NONEMPTY,
        "app_secret": _SECRET,
        "permanent_code": _SECRET,
        "current_open_user_id": {"type": "string", "pattern": "^FSUID_[A-Za-z0-9]+$"},
        "admin_mobile": {"type": "string", "pattern": "^\\+?[0-9]{6,20}$"},
        "objects": {"type": "array", "items": OBJECT_ITEM, "minItems": 1},
        "archive": ARCHIVE_SCHEMA,
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "rate_limit_calls": {"type": "integer", "minimum": 1},
        "rate_limit_period": {"type": "number", "exclusiveMinimum": 0},
        "trigger_workflow": {"type": "boolean"},
        "trigger_approval": {"type": "boolean"},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
        "max_retry_wait": {"type": "number", "minimum": 0},
        "backoff_base": {"type": "number", "minimum": 0},
    },
}

SETTINGS: list[Setting] = [
    Setting(
        "base_url",
        "OpenAPI host: https://open.fxiaoke.com, or your cloud's open-<domain>",
        default=DEFAULT_BASE_URL,
    ),
    Setting("app_id", "the app's appId (FSAID_...), from the Fxiaoke open platform", required=True),
    Setting("app_secret", "the app's appSecret reference", secret=True, required=True),
    Setting(
        "permanent_code",
        "the enterprise's permanentCode reference (issued when the app is authorised)",
        secret=True,
        required=True,
    ),
    Setting(
        "current_open_user_id",
        "the operator (FSUID_...) every call acts as: a CRM admin, whose rights decide what is "
        "visible; or give admin_mobile",
    ),
    Setting("admin_mobile", "mobile number of that admin, looked up once (/cgi/user/getByMobile)"),
    Setting(
        "objects",
        'objects to mirror: "AccountObj", "LeadsObj", custom "Visit__c", or {name = ..., '
        "fields = [...]} (a fieldProjection; default: every field)",
        "array",
        required=True,
    ),
    Setting(
        "archive",
        "archive as a field write (Fxiaoke has no native archive): {field = "
        '"crmsync_archived__c", value = "archived", active_value = ""}; without it, archive is '
        "not offered",
        "table",
    ),
    Setting("page_size", "records per query call (limit, max 100)", "integer", default=MAX_LIMIT),
    Setting(
        "rate_limit_calls", "calls allowed per endpoint per period", "integer", default=RATE_CALLS
    ),
    Setting(
        "rate_limit_period", "the rate limit's period in seconds", "number", default=RATE_PERIOD
    ),
    Setting(
        "trigger_workflow", "let field writes trigger workflows (triggerWorkFlow)", "boolean",
        default=False,
    ),
    Setting(
        "trigger_approval", "let field writes start approval flows (triggerApprovalFlow)",
        "boolean", default=False,
    ),
    Setting("timeout", "seconds to wait for each response", "number", default=30.0),
    Setting(
        "max_retries", "retries of rate-limit/busy/5xx answers per call", "integer", default=5
    ),
    Setting("max_retry_wait", "cap in seconds on one backoff", "number", default=60.0),
    Setting("backoff_base", "first backoff step in seconds (doubles per retry)", "number",
            default=1.0),
]  # fmt: skip


@dataclass(frozen=True)
class ObjectSettings:
    name: str
    fields: tuple[str, ...] | None = None  # None: every field

    @property
    def custom(self) -> bool:
        """Custom objects (apiName ending ``__c``) live under ``/cgi/crm/custom/v2/``."""
        return self.name.endswith("__c")


@dataclass(frozen=True)
class ArchiveSettings:
    field: str
    value: Any
    active_value: Any = None


@dataclass(frozen=True)
class FxiaokeSettings:
    app_id: str
    app_secret: SecretRef | str
    permanent_code: SecretRef | str
    objects: dict[str, ObjectSettings]
    base_url: str = DEFAULT_BASE_URL
    current_open_user_id: str | None = None
    admin_mobile: str | None = None
    archive: ArchiveSettings | None = None
    page_size: int = MAX_LIMIT
    rate_limit_calls: int = RATE_CALLS
    rate_limit_period: float = RATE_PERIOD
    trigger_workflow: bool = False
    trigger_approval: bool = False
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 60.0
    backoff_base: float = 1.0


def parse_settings(settings: Mapping[str, Any]) -> FxiaokeSettings:
    """Schema-valid settings -> :class:`FxiaokeSettings` (defaults filled in)."""
    objects: dict[str, ObjectSettings] = {}
    for item in settings["objects"]:
        if isinstance(item, str):
            objects[item] = ObjectSettings(item)
        else:
            objects[item["name"]] = ObjectSettings(item["name"], tuple(item["fields"]))
    archive = None
    if "archive" in settings:
        raw = settings["archive"]
        archive = ArchiveSettings(raw["field"], raw["value"], raw.get("active_value"))
    return FxiaokeSettings(
        app_id=settings["app_id"],
        app_secret=settings["app_secret"],
        permanent_code=settings["permanent_code"],
        objects=objects,
        base_url=str(settings.get("base_url", DEFAULT_BASE_URL)).rstrip("/"),
        current_open_user_id=settings.get("current_open_user_id"),
        admin_mobile=settings.get("admin_mobile"),
        archive=archive,
        page_size=int(settings.get("page_size", MAX_LIMIT)),
        rate_limit_calls=int(settings.get("rate_limit_calls", RATE_CALLS)),
        rate_limit_period=float(settings.get("rate_limit_period", RATE_PERIOD)),
        trigger_workflow=bool(settings.get("trigger_workflow", False)),
        trigger_approval=bool(settings.get("trigger_approval", False)),
        timeout=float(settings.get("timeout", 30.0)),
        max_retries=int(settings.get("max_retries", 5)),
        max_retry_wait=float(settings.get("max_retry_wait", 60.0)),
        backoff_base=float(settings.get("backoff_base", 1.0)),
    )


def reveal(value: SecretRef | str) -> str:
    return value.reveal() if isinstance(value, SecretRef) else str(value)
