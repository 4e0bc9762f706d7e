"""The DingTalk connector's settings: JSON Schema, documented keys, typed config.

crmsync validates a connection's table against :data:`SETTINGS_SCHEMA` before any network call
(a missing ``status`` when lifecycle write-back is wanted is caught there, with its key path);
:func:`parse_settings` then checks what the schema cannot say (an option value for each wanted
action) and returns :class:`DingTalkSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import timedelta, timezone
from typing import Any

from crmsync.errors import ConfigError
from crmsync.hookspecs import SecretRef, Setting

#: Customers are read through the v1.0 API, contacts and follow records through the old API
#: (the v1.0 API has no query for them).
NEW_API_MODULES = ("crm_customer", "crm_customer_personal")
OLD_API_MODULES = ("crm_contact", "crm_follow_record")
MODULES = NEW_API_MODULES + OLD_API_MODULES
STATUSES = ("active", "archived", "voided")
LIFECYCLE = ("archive", "void", "restore")
WRITE_ACTIONS = (*LIFECYCLE, "purge", "update")
#: The value each lifecycle action writes into the status field.
TARGET = {"archive": "archived", "void": "voided", "restore": "active"}
NEW_PAGE_MAX = 100  # maxResults of GET /v1.0/crm/personalCustomers
OLD_PAGE_MAX = 200  # page_size of /topapi/crm/objectdata/*/query
WRITE_BATCH = 10  # relationList of PUT /v1.0/crm/relationDatas/batch ("最大值10")
DEFAULT_RPS = 20.0  # 标准版: 20 calls/s per app per API (DingTalk's call-frequency page)

_NONEMPTY = {"type": "string", "minLength": 1}
_FIELD_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
_URL = {"type": "string", "pattern": "^https?://[^\\s/]+(:[0-9]+)?/?$"}

# if/then/else rather than oneOf: an error then names the allowed modules or the unknown key
# instead of "not valid under any of the given schemas"
MODULE_ITEM = {
    "type": ["string", "object"],
    "if": {"type": "string"},
    "then": {"enum": list(MODULES)},
    "else": {
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"enum": list(MODULES)}, "status_field": _FIELD_ID},
    },
}

STATUS_SCHEMA = {
    "type": "object",
    "required": ["field", "values"],
    "additionalProperties": False,
    "properties": {
        "field": _FIELD_ID,
        "values": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {s: _NONEMPTY for s in STATUSES},
        },
    },
}

_WANTS_LIFECYCLE = {"contains": {"enum": list(LIFECYCLE)}}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crmsync DingTalk CRM connector settings",
    "type": "object",
    "required": ["app_key", "app_secret", "operator_user_id"],
    "additionalProperties": False,
    "properties": {
        "app_key": _NONEMPTY,
        "app_secret": {"type": "string", "secret": True},
        "operator_user_id": _NONEMPTY,
        "modules": {"type": "array", "items": MODULE_ITEM, "minItems": 1},
        "status": STATUS_SCHEMA,
        "write_actions": {
            "type": "array",
            "items": {"enum": list(WRITE_ACTIONS)},
            "uniqueItems": True,
        },
        "api_url": _URL,
        "oapi_url": _URL,
        "utc_offset": {"type": "string", "pattern": "^[+-](0[0-9]|1[0-4]):[0-5][0-9]$"},
        "page_size": {"type": "integer", "minimum": 1, "maximum": NEW_PAGE_MAX},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 20},
        "requests_per_second": {"type": "number", "exclusiveMinimum": 0},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
        "max_retry_wait": {"type": "number", "minimum": 0},
        "backoff_base": {"type": "number", "minimum": 0},
    },
    # Archive/void/restore write the admin's status field: without it they cannot work, so
    # the config is refused before any call (write_actions = ["purge"] or [] opts out).
    "allOf": [
        {"if": {"not": {"required": ["write_actions"]}}, "then": {"required": ["status"]}},
        {
            "if": {
                "required": ["write_actions"],
                "properties": {"write_actions": _WANTS_LIFECYCLE},
            },
            "then": {"required": ["status"]},
        },
    ],
}

SETTINGS: list[Setting] = [
    Setting("app_key", "the internal app's AppKey (开发者后台 > 应用 > 凭证与基础信息)",
            required=True),
    Setting("app_secret", "the app's AppSecret reference (env: or keyring:)", secret=True,
            required=True),
    Setting("operator_user_id", "userId of the admin DingTalk records as the operator of writes",
            required=True),
    Setting("modules", "objects to mirror: crm_customer | crm_customer_personal | crm_contact | "
            'crm_follow_record, or {name = "crm_contact", status_field = "DDSelectField-…"}',
            "array", default=["crm_customer"]),
    Setting("status", 'the custom 状态 select: {field = "DDSelectField-…", values = {active = '
            '"正常", archived = "已归档", voided = "作废"}}', "table"),
    Setting("write_actions", "what crmsync may write back: archive | void | restore | purge | "
            "update (archive/void/restore need status)", "array", default=list(WRITE_ACTIONS)),
    Setting("api_url", "the v1.0 API host", default="https://api.dingtalk.com"),
    Setting("oapi_url", "the old API host", default="https://oapi.dingtalk.com"),
    Setting("utc_offset", "UTC offset of DingTalk's gmtCreate/gmtModified times",
            default="+08:00"),
    Setting("page_size", "records per list call (max 100)", "integer", default=NEW_PAGE_MAX),
    Setting("concurrency", "API calls in flight at once", "integer", default=1),
    Setting("requests_per_second", "rate cap per connection (standard edition: 20/s per API)",
            "number", default=DEFAULT_RPS),
    Setting("timeout", "seconds to wait for each response", "number", default=30.0),
    Setting("max_retries", "retries of 429/5xx/QPS-limit/network errors per call", "integer",
            default=5),
    Setting("max_retry_wait", "cap in seconds on one backoff", "number", default=60.0),
    Setting("backoff_base", "first backoff step in seconds (doubles per retry)", "number",
            default=1.0),
]  # fmt: skip


@dataclass(frozen=True)
class StatusSettings:
    field: str
    values: Mapping[str, str]  # active|archived|voided -> option label
    module_fields: Mapping[str, str] = dc_field(default_factory=dict)  # per-module override

    def field_for(self, module: str) -> str:
        return self.module_fields.get(module, self.field)

    def status_of(self, label: Any) -> str:
        """The lifecycle status an option label means. Assumption: an empty 状态 or any option
        that is not the archived/voided one means the record is active."""
        for status in ("archived", "voided"):
            if label is not None and label == self.values.get(status):
                return status
        return "active"


@dataclass(frozen=True)
class DingTalkSettings:
    name: str
    app_key: str
    app_secret: SecretRef | str
    operator_user_id: str
    modules: tuple[str, ...] = ("crm_customer",)
    status: StatusSettings | None = None
    write_actions: tuple[str, ...] = WRITE_ACTIONS
    api_url: str = "https://api.dingtalk.com"
    oapi_url: str = "https://oapi.dingtalk.com"
    utc_offset: timezone = timezone(timedelta(hours=8))
    page_size: int = NEW_PAGE_MAX
    concurrency: int = 1
    requests_per_second: float = DEFAULT_RPS
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 60.0
    backoff_base: float = 1.0


def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_settings(settings: Mapping[str, Any], name: str = "dingtalk") -> DingTalkSettings:
    """Schema-valid settings -> :class:`DingTalkSettings`; :class:`ConfigError` (naming the key)
    for what the schema cannot check."""
    key = f"connections.{name}"
    modules: list[str] = []
    overrides: dict[str, str] = {}
    for item in settings.get("modules") or ["crm_customer"]:
        module = item if isinstance(item, str) else item["name"]
        if module in modules:
            raise ConfigError(f"module {module!r} is listed twice", path=f"{key}.modules")
        modules.append(module)
        if isinstance(item, Mapping) and item.get("status_field"):
            overrides[module] = str(item["status_field"])
    actions = tuple(settings.get("write_actions", WRITE_ACTIONS))
    status = None
    raw = settings.get("status")
    wanted = [a for a in LIFECYCLE if a in actions]
    if wanted and not raw:
        raise ConfigError(
            f"write_actions includes {', '.join(wanted)}, which write the custom status field: "
            "set [connections.NAME.status] (field = the 状态 select's id, values = its options "
            "for active, archived, voided), or leave those actions out of write_actions",
            path=f"{key}.status",
        )
    if raw:
        values = dict(raw.get("values") or {})
        for action in wanted:
            if not values.get(TARGET[action]):
                raise ConfigError(
                    f"write_actions includes {action!r}, so the status field needs the option "
                    f"that means {TARGET[action]}",
                    path=f"{key}.status.values.{TARGET[action]}",
                )
        status = StatusSettings(str(raw["field"]), values, overrides)
    return DingTalkSettings(
        name=name,
        app_key=str(settings["app_key"]),
        app_secret=settings["app_secret"],
        operator_user_id=str(settings["operator_user_id"]),
        modules=tuple(modules),
        status=status,
        write_actions=actions,
        api_url=str(settings.get("api_url", "https://api.dingtalk.com")).rstrip("/"),
        oapi_url=str(settings.get("oapi_url", "https://oapi.dingtalk.com")).rstrip("/"),
        utc_offset=_offset(str(settings.get("utc_offset", "+08:00"))),
        page_size=int(settings.get("page_size", NEW_PAGE_MAX)),
        concurrency=int(settings.get("concurrency", 1)),
        requests_per_second=float(settings.get("requests_per_second", DEFAULT_RPS)),
        timeout=float(settings.get("timeout", 30.0)),
        max_retries=int(settings.get("max_retries", 5)),
        max_retry_wait=float(settings.get("max_retry_wait", 60.0)),
        backoff_base=float(settings.get("backoff_base", 1.0)),
    )
