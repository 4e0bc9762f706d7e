"""Validated settings (already schema-checked by the core) → typed per-module configuration.

Resolution order for a module, like dlt's endpoint > resource_defaults > client: a key in
``[modules.X]`` beats ``[module_defaults]`` beats the built-in default; ``paginator``,
``incremental`` and ``deleted`` tables in a module replace the connection's whole table;
``operations`` merge per action.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crmsync.errors import ConfigError
from crmsync.hookspecs import ACTIONS, SecretRef
from crmsync.http import (
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from crmsync_connectors.rest.templates import placeholders

DEFAULT_PAGE_SIZE = 100
DEFAULT_BATCH_SIZE = 100
DEFAULT_SUCCESS_STATUS = (200, 201, 202, 204)
_COMMON = {"module", "action", "path"}


@dataclass(frozen=True)
class IncrementalConfig:
    param: str
    format: str = "iso8601"
    sort_param: str | None = None
    sort_value: str | None = None
    lookback_seconds: float = 0.0


@dataclass(frozen=True)
class DeletedConfig:
    path: str
    param: str = "since"
    format: str = "iso8601"
    records_path: str = "data"
    id_field: str = "id"
    paginator: Mapping[str, Any] = field(default_factory=lambda: {"type": "page_number"})


@dataclass(frozen=True)
class OperationConfig:
    action: str
    path: str
    method: str = "POST"
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    item: Mapping[str, Any] | None = None
    include_fields: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    batched: bool = False  # True: one request per batch ({records}/{ids}); else one per record
    result_path: str | None = None
    result_id_field: str = "id"
    success_field: str | None = None
    success_value: Any = True
    error_field: str = "error"
    result_modified_path: str | None = None
    success_status: tuple[int, ...] = DEFAULT_SUCCESS_STATUS


@dataclass(frozen=True)
class ModuleConfig:
    name: str
    path: str
    records_path: str = "data"
    id_field: str = "id"
    modified_field: str | None = None
    modified_format: str = "iso8601"
    page_size: int = DEFAULT_PAGE_SIZE
    params: Mapping[str, Any] = field(default_factory=dict)
    paginator: Mapping[str, Any] = field(default_factory=lambda: {"type": "page_number"})
    incremental: IncrementalConfig | None = None
    deleted: DeletedConfig | None = None
    operations: Mapping[str, OperationConfig] = field(default_factory=dict)
    status_field: str | None = None
    # CRM value -> lifecycle status, keyed by the value's JSON text (so true != "true").
    status_by_value: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestSettings:
    base_url: str
    modules: Mapping[str, ModuleConfig]
    auth: Mapping[str, Any]
    timeout: float = 30.0
    concurrency: int = 1
    max_retries: int = 5
    max_retry_wait: float = 60.0
    backoff_base: float = 0.5
    requests_per_second: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def page_size(self) -> int:
        return min((m.page_size for m in self.modules.values()), default=DEFAULT_PAGE_SIZE)

    @property
    def batch_size(self) -> int:
        sizes = [
            op.batch_size
            for m in self.modules.values()
            for op in m.operations.values()
            if op.batched
        ]
        return min(sizes, default=DEFAULT_BATCH_SIZE)


def parse_settings(name: str, settings: Mapping[str, Any]) -> RestSettings:
    """Build :class:`RestSettings`; raise ConfigError naming the key for what the schema can't
    express (template placeholders, operation shapes)."""
    prefix = f"connections.{name}"
    defaults = dict(settings.get("module_defaults") or {})
    base_ops = settings.get("operations") or {}
    modules: dict[str, ModuleConfig] = {}
    for module_name, raw in (settings.get("modules") or {}).items():
        raw = raw or {}
        merged = {**defaults, **{k: v for k, v in raw.items() if k in _DEFAULT_KEYS}}
        where = f"{prefix}.modules.{module_name}"
        ops_raw = {**base_ops, **(raw.get("operations") or {})}
        if "actions" in raw:
            ops_raw = {a: op for a, op in ops_raw.items() if a in raw["actions"]}
            missing = [a for a in raw["actions"] if a not in ops_raw]
            if missing:
                raise ConfigError(
                    f"action {missing[0]!r} is listed but no operations.{missing[0]} is configured",
                    path=f"{where}.actions",
                )
        operations = {}
        for action in ACTIONS:
            if action in ops_raw:
                op_where = (
                    f"{where}.operations.{action}"
                    if action in (raw.get("operations") or {})
                    else f"{prefix}.operations.{action}"
                )
                operations[action] = _operation(action, ops_raw[action], op_where)
        incremental = raw.get("incremental", settings.get("incremental"))
        deleted = raw.get("deleted", settings.get("deleted"))
        modules[module_name] = ModuleConfig(
            name=module_name,
            path=raw.get("path", module_name),
            records_path=merged.get("records_path", "data"),
            id_field=merged.get("id_field", "id"),
            modified_field=merged.get("modified_field") or None,
            modified_format=merged.get("modified_format", "iso8601"),
            page_size=merged.get("page_size", DEFAULT_PAGE_SIZE),
            params=dict(merged.get("params") or {}),
            paginator=dict(
                raw.get("paginator", settings.get("paginator", {"type": "page_number"}))
            ),
            incremental=IncrementalConfig(**incremental) if incremental else None,
            deleted=_deleted(deleted, where) if deleted else None,
            operations=operations,
            status_field=merged.get("status_field") or None,
            status_by_value=_status_by_value(merged.get("status_values") or {}),
        )
    return RestSettings(
        base_url=settings["base_url"],
        modules=modules,
        auth=dict(settings.get("auth") or {"type": "none"}),
        timeout=float(settings.get("timeout", 30.0)),
        concurrency=int(settings.get("concurrency", 1)),
        max_retries=int(settings.get("max_retries", 5)),
        max_retry_wait=float(settings.get("max_retry_wait", 60.0)),
        backoff_base=float(settings.get("backoff_base", 0.5)),
        requests_per_second=settings.get("requests_per_second"),
        headers=dict(settings.get("headers") or {}),
    )


_DEFAULT_KEYS = ("records_path", "id_field", "modified_field", "modified_format", "page_size")
_DEFAULT_KEYS += ("params", "status_field", "status_values")


def _status_by_value(values: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for status, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            out[json.dumps(one)] = status
    return out


def _deleted(raw: Mapping[str, Any], where: str) -> DeletedConfig:
    for key_path, placeholder in placeholders(raw["path"], "path"):
        if placeholder not in _COMMON - {"action"}:
            raise ConfigError(
                f"unknown placeholder {{{placeholder}}} (allowed: {{module}}, {{path}})",
                path=f"{where}.deleted.{key_path}",
            )
    return DeletedConfig(**raw)


def _operation(action: str, raw: Mapping[str, Any], where: str) -> OperationConfig:
    path, params, body = raw["path"], raw.get("params") or {}, raw.get("body")
    outer = [*placeholders(path, "path"), *placeholders(params, "params")]
    outer += placeholders(body, "body")
    batched = any(name in ("records", "ids") for _, name in outer)
    item = raw.get("item")
    if batched:
        outer_allowed = _COMMON | {"records", "ids"}
        uses_records = any(name == "records" for _, name in outer)
        if item is not None and not uses_records:
            raise ConfigError(
                "item is only used when the body contains {records}", path=f"{where}.item"
            )
        if uses_records and item is None:
            item = {"id": "{id}"}
    else:
        outer_allowed = _COMMON | {"id"}
        if item is not None:
            raise ConfigError(
                "item needs a batch body containing {records}; a per-record operation puts "
                "the record's values in body",
                path=f"{where}.item",
            )
    for key_path, name in outer:
        if name not in outer_allowed and not (not batched and name.startswith("field.")):
            raise ConfigError(
                _unknown(name, outer_allowed, not batched), path=f"{where}.{key_path}"
            )
    for key_path, name in placeholders(item or {}, "item"):
        allowed = _COMMON | {"id"}
        if name not in allowed and not name.startswith("field."):
            raise ConfigError(_unknown(name, allowed, True), path=f"{where}.{key_path}")
    status = raw.get("success_status")
    return OperationConfig(
        action=action,
        path=path,
        method=raw.get("method", "POST"),
        params=dict(params),
        body=body,
        item=item,
        include_fields=bool(raw.get("include_fields", False)),
        batch_size=int(raw.get("batch_size", DEFAULT_BATCH_SIZE)) if batched else 1,
        batched=batched,
        result_path=raw.get("result_path"),
        result_id_field=raw.get("result_id_field", "id"),
        success_field=raw.get("success_field"),
        success_value=raw.get("success_value", True),
        error_field=raw.get("error_field", "error"),
        result_modified_path=raw.get("result_modified_path"),
        success_status=tuple(status) if status else DEFAULT_SUCCESS_STATUS,
    )


def _unknown(name: str, allowed: set[str], fields: bool) -> str:
    names = sorted(f"{{{a}}}" for a in allowed) + (["{field.NAME}"] if fields else [])
    return f"unknown placeholder {{{name}}} here (allowed: {', '.join(names)})"


def build_auth(
    name: str, auth: Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic
) -> Auth | None:
    """The HTTP auth object for the ``[auth]`` table; secret keys must be SecretRefs."""
    kind = auth.get("type", "none")

    def secret(key: str) -> SecretRef:
        value = auth[key]
        if not isinstance(value, SecretRef):
            # The core hands secrets over as references; a bare string here is a core bug or a
            # direct caller: refuse rather than risk treating a literal secret as normal text.
            raise ConfigError(
                "must be a secret reference (env:VAR or keyring:SERVICE/NAME)",
                path=f"connections.{name}.auth.{key}",
            )
        return value

    scheme = auth.get("scheme", "Bearer")
    if kind == "none":
        return None
    if kind == "bearer":
        return BearerAuth(secret("token"), scheme=scheme)
    if kind == "api_key":
        return ApiKeyAuth(auth["name"], secret("key"), auth.get("location", "header"))
    if kind == "basic":
        return BasicAuth(auth["username"], secret("password"))
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(
            auth["token_url"],
            auth["client_id"],
            secret("client_secret"),
            auth.get("scope"),
            scheme=scheme,
            clock=clock,
        )
    if kind == "oauth2_refresh_token":
        return OAuth2RefreshToken(
            auth["token_url"],
            auth["client_id"],
            secret("client_secret"),
            secret("refresh_token"),
            auth.get("scope"),
            scheme=scheme,
            clock=clock,
        )
    raise ConfigError(f"unknown auth type {kind!r}", path=f"connections.{name}.auth.type")
