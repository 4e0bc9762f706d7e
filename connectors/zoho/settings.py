"""The Zoho connector's settings: JSON Schema (draft 2020-12), documented keys, typed config.

The core validates a connection's table against :data:`SETTINGS_SCHEMA` (secret keys must be
``env:``/``keyring:`` references) before :func:`parse_settings` turns it into
:class:`ZohoSettings`. README.md in this directory documents every key with an example.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from crmsync.hookspecs import SecretRef, Setting
from crmsync_connectors.zoho import datacentres

#: Concurrent API calls Zoho allows per app per org, by edition.
EDITION_CONCURRENCY: dict[str, int] = {
    "free": 5,
    "standard": 10,
    "professional": 15,
    "enterprise": 20,
    "ultimate": 25,
}
TRIGGERS = ("workflow", "approval", "blueprint", "pathfinder", "orchestration")
STATUSES = ("active", "archived", "voided")
MAX_PAGE_SIZE = 200  # per_page cap of GET /crm/v8/{module}
MAX_BATCH = 100  # records per PUT / ids per DELETE
MAX_FIELDS_PER_CALL = 50  # fields parameter cap
BULK_MODES = ("auto", "always", "never")
BULK_PAGE = 200_000  # records per Bulk Read result page
#: ASSUMED credits one Bulk Read job costs (not in our Zoho reference; see README "Bulk Read").
BULK_JOB_CREDITS = 50

_NONEMPTY = {"type": "string", "minLength": 1}
_SECRET = {"type": "string", "secret": True}
_URL = {"type": "string", "pattern": "^https?://[^\\s/]+(:[0-9]+)?/?$"}
_API_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_$]+$"}

MODULE_ITEM = {
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

STATUS_SCHEMA = {
    "type": "object",
    "required": ["mode"],
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": ["field", "tags"]},
        "field": _API_NAME,
        "values": {
            "type": "object",
            "additionalProperties": False,
            "properties": {s: _NONEMPTY for s in STATUSES},
            "required": ["archived", "voided"],
        },
        "tags": {
            "type": "object",
            "additionalProperties": False,
            "properties": {s: _NONEMPTY for s in ("archived", "voided")},
            "required": ["archived", "voided"],
        },
    },
    "allOf": [
        {
            "if": {"properties": {"mode": {"const": "field"}}},
            "then": {"required": ["field", "values"], "not": {"required": ["tags"]}},
        },
        {
            "if": {"properties": {"mode": {"const": "tags"}}},
            "then": {"required": ["tags"], "not": {"anyOf": [{"required": ["field"]}]}},
        },
    ],
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "crmsync Zoho CRM connector settings",
    "type": "object",
    "required": ["client_id", "client_secret", "refresh_token", "modules"],
    "additionalProperties": False,
    "properties": {
        "datacentre": {"enum": list(datacentres.DATACENTRES)},
        "environment": {"enum": list(datacentres.ENVIRONMENTS)},
        "accounts_url": _URL,
        "api_domain": _URL,
        "client_id": _NONEMPTY,
        "client_secret": _SECRET,
        "refresh_token": _SECRET,
        "modules": {"type": "array", "items": MODULE_ITEM, "minItems": 1},
        "status": STATUS_SCHEMA,
        "trigger": {"type": "array", "items": {"enum": list(TRIGGERS)}, "uniqueItems": True},
        "delete_workflows": {"type": "boolean"},
        "edition": {"enum": list(EDITION_CONCURRENCY)},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 25},
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        "min_credits_remaining": {"type": "integer", "minimum": 0},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 20},
        "max_retry_wait": {"type": "number", "minimum": 0},
        "backoff_base": {"type": "number", "minimum": 0},
        "bulk_read": {"enum": list(BULK_MODES)},
        "bulk_read_threshold": {"type": "integer", "minimum": 0},
        "bulk_read_job_credits": {"type": "integer", "minimum": 0},
        "bulk_read_poll_interval": {"type": "number", "minimum": 0},
        "bulk_read_max_wait": {"type": "number", "minimum": 0},
    },
}

SETTINGS: list[Setting] = [
    Setting(
        "datacentre",
        "Zoho data centre of the org: " + " | ".join(datacentres.DATACENTRES),
        default="com",
    ),
    Setting("environment", "production | sandbox | developer", default="production"),
    Setting("accounts_url", "override the OAuth accounts server (else from datacentre)"),
    Setting(
        "api_domain",
        "override the API host (else the token response's api_domain, else from datacentre)",
    ),
    Setting("client_id", "the self-client's Client ID (api-console.zoho.com)", required=True),
    Setting(
        "client_secret", "the self-client's Client Secret reference", secret=True, required=True
    ),
    Setting(
        "refresh_token",
        "refresh token reference; `crmsync auth zoho CONNECTION` stores it",
        secret=True,
        required=True,
    ),
    Setting(
        "modules",
        'modules to mirror: "Leads" or {name = "Leads", fields = [...]} (default: every field)',
        "array",
        required=True,
    ),
    Setting(
        "status",
        'lifecycle status write-back: {mode = "field", field = "Record_Status", values = '
        '{active, archived, voided}} or {mode = "tags", tags = {archived, voided}}',
        "table",
    ),
    Setting(
        "trigger", "automation PUT runs: workflow | approval | blueprint ...", "array", default=[]
    ),
    Setting(
        "delete_workflows", "run workflow rules on purge (wf_trigger)", "boolean", default=False
    ),
    Setting("edition", " | ".join(EDITION_CONCURRENCY) + " (sets concurrency)", default="standard"),
    Setting("concurrency", "API calls in flight at once (default by edition)", "integer"),
    Setting("page_size", "records per list call (per_page, max 200)", "integer", default=200),
    Setting(
        "min_credits_remaining",
        "stop cleanly when X-API-CREDITS-REMAINING falls to this",
        "integer",
        default=1000,
    ),
    Setting("timeout", "seconds to wait for each response", "number", default=30.0),
    Setting("max_retries", "retries of 429/5xx/network errors per call", "integer", default=5),
    Setting("max_retry_wait", "cap in seconds on one backoff", "number", default=60.0),
    Setting(
        "backoff_base", "first backoff step in seconds (doubles per retry)", "number", default=1.0
    ),
    Setting(
        "bulk_read",
        "first (full) pulls through the Bulk Read API: auto (when it costs fewer credits) | "
        "always | never",
        default="auto",
    ),
    Setting(
        "bulk_read_threshold",
        "auto: consider Bulk Read only for modules with at least this many records",
        "integer",
        default=10_000,
    ),
    Setting(
        "bulk_read_job_credits",
        "assumed API credits of one Bulk Read job (cost model of bulk_read = auto)",
        "integer",
        default=BULK_JOB_CREDITS,
    ),
    Setting(
        "bulk_read_poll_interval",
        "first wait in seconds between job status polls (doubles, capped at 60)",
        "number",
        default=5.0,
    ),
    Setting(
        "bulk_read_max_wait",
        "give up on a Bulk Read job after this many seconds",
        "number",
        default=3600.0,
    ),
]


@dataclass(frozen=True)
class ModuleSettings:
    name: str
    fields: tuple[str, ...] | None = None  # None: every field from the fields metadata API


@dataclass(frozen=True)
class StatusSettings:
    mode: str  # field | tags
    field: str | None = None
    values: Mapping[str, str] = dc_field(default_factory=dict)  # status -> picklist value
    tags: Mapping[str, str] = dc_field(default_factory=dict)  # archived/voided -> tag name


@dataclass(frozen=True)
class ZohoSettings:
    client_id: str
    client_secret: SecretRef | str
    refresh_token: SecretRef | str
    modules: dict[str, ModuleSettings]
    datacentre: str = "com"
    environment: str = "production"
    accounts_url: str = ""
    api_domain: str | None = None  # explicit override only
    status: StatusSettings | None = None
    trigger: tuple[str, ...] = ()
    delete_workflows: bool = False
    edition: str = "standard"
    concurrency: int = 10
    page_size: int = MAX_PAGE_SIZE
    min_credits_remaining: int = 1000
    timeout: float = 30.0
    max_retries: int = 5
    max_retry_wait: float = 60.0
    backoff_base: float = 1.0
    bulk_read: str = "auto"
    bulk_read_threshold: int = 10_000
    bulk_read_job_credits: int = BULK_JOB_CREDITS
    bulk_read_poll_interval: float = 5.0
    bulk_read_max_wait: float = 3600.0

    @property
    def default_api_domain(self) -> str:
        return datacentres.api_domain(self.datacentre, self.environment)


def parse_settings(settings: Mapping[str, Any]) -> ZohoSettings:
    """Schema-valid settings -> :class:`ZohoSettings` (defaults filled in)."""
    modules: dict[str, ModuleSettings] = {}
    for item in settings["modules"]:
        if isinstance(item, str):
            modules[item] = ModuleSettings(item)
        else:
            fields = tuple(item["fields"]) if item.get("fields") else None
            modules[item["name"]] = ModuleSettings(item["name"], fields)
    status = None
    if "status" in settings:
        raw = settings["status"]
        status = StatusSettings(
            mode=raw["mode"],
            field=raw.get("field"),
            values=dict(raw.get("values", {})),
            tags=dict(raw.get("tags", {})),
        )
    datacentre = settings.get("datacentre", "com")
    edition = settings.get("edition", "standard")
    accounts = settings.get("accounts_url") or datacentres.accounts_url(datacentre)
    api = settings.get("api_domain")
    return ZohoSettings(
        client_id=settings["client_id"],
        client_secret=settings["client_secret"],
        refresh_token=settings["refresh_token"],
        modules=modules,
        datacentre=datacentre,
        environment=settings.get("environment", "production"),
        accounts_url=accounts.rstrip("/"),
        api_domain=api.rstrip("/") if api else None,
        status=status,
        trigger=tuple(settings.get("trigger", ())),
        delete_workflows=bool(settings.get("delete_workflows", False)),
        edition=edition,
        concurrency=int(settings.get("concurrency") or EDITION_CONCURRENCY[edition]),
        page_size=int(settings.get("page_size", MAX_PAGE_SIZE)),
        min_credits_remaining=int(settings.get("min_credits_remaining", 1000)),
        timeout=float(settings.get("timeout", 30.0)),
        max_retries=int(settings.get("max_retries", 5)),
        max_retry_wait=float(settings.get("max_retry_wait", 60.0)),
        backoff_base=float(settings.get("backoff_base", 1.0)),
        bulk_read=settings.get("bulk_read", "auto"),
        bulk_read_threshold=int(settings.get("bulk_read_threshold", 10_000)),
        bulk_read_job_credits=int(settings.get("bulk_read_job_credits", BULK_JOB_CREDITS)),
        bulk_read_poll_interval=float(settings.get("bulk_read_poll_interval", 5.0)),
        bulk_read_max_wait=float(settings.get("bulk_read_max_wait", 3600.0)),
    )
