"""Load and validate ``crmsync.toml`` before anything touches the network.

Validation is JSON Schema: the core's own schema for the file's shape, then each connection's
settings against its connector's ``settings_schema()``. Every error names its key path
(``connections.sales.paginator.type``) and what was expected; the CLI exits 2 on any of them.
Values whose schema says ``"secret": true`` must be references and reach connectors as
:class:`~crmsync.hookspecs.SecretRef`.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, ValidationError, validators

from crmsync import secrets
from crmsync.errors import ConfigError
from crmsync.hookspecs import SecretRef
from crmsync.plugins import PluginRegistry
from crmsync.policy.model import Policy, parse_duration
from crmsync.policy.validate import parse_policies
from crmsync.schema_text import describe, key_path

if TYPE_CHECKING:
    from crmsync.unattended.schedule import ServeConfig

CONFIG_ENV = "CRMSYNC_CONFIG"
DEFAULT_CONFIG = "crmsync.toml"
DEFAULT_STORE = "crmsync.db"

NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_-]*$"

CORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "store": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "backend": {"enum": ["sqlite"]},
                "path": {"type": "string", "minLength": 1},
            },
        },
        "connections": {
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {
                "type": "object",
                "required": ["connector"],
                "properties": {"connector": {"type": "string", "minLength": 1}},
            },
        },
        # Each policy's own keys are checked by crmsync.policy.validate, whose schema is built
        # from the filter/action registries and whose errors name the policy.
        "policies": {"type": "array", "items": {"type": "object"}},
        "plans": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # how long a plan may wait before apply refuses it
                "ttl": {"type": "string", "pattern": r"^[0-9]+\s*[smhdwy]$"},
                # may the operator who made a plan approve it too?
                "allow_self_approval": {"type": "boolean"},
            },
        },
        "snapshots": {"type": "object"},  # its keys: SNAPSHOTS_SCHEMA (a secret among them)
        "serve": {"type": "object"},  # its keys: crmsync.unattended.schedule.SERVE_SCHEMA
        "run": {"type": "object"},  # its keys: RUN_SCHEMA (crmsync run)
        "notify": {"type": "object"},  # its keys: NOTIFY_SCHEMA (secrets among them)
        "retention": {"type": "object"},  # its keys: crmsync.compliance.retention
        "erasure": {"type": "object"},  # its keys: crmsync.compliance.erasure_config
    },
}


def _secret_keyword(validator: Any, secret: bool, instance: Any, schema: Mapping) -> Iterator:
    if secret and validator.is_type(instance, "string"):
        problem = secrets.reference_error(instance)
        if problem:
            yield ValidationError(problem)


SettingsValidator = validators.extend(Draft202012Validator, {"secret": _secret_keyword})


@dataclass
class ConnectionConfig:
    name: str
    connector: str
    settings: dict[str, Any]  # validated; secret values replaced by SecretRef


@dataclass
class Config:
    path: Path | None
    store_path: Path
    connections: dict[str, ConnectionConfig] = field(default_factory=dict)
    policies: list[Policy] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    plan_ttl: timedelta = timedelta(hours=24)
    allow_self_approval: bool = False
    serve: ServeConfig | None = None  # [serve]: crmsync serve's jobs and endpoint

    @cached_property
    def snapshots(self) -> SnapshotsConfig:
        """The ``[snapshots]`` table (validated by :func:`parse_config`), paths resolved."""
        return snapshots_config(self.raw.get("snapshots", {}), self.path, self.store_path)

    @cached_property
    def run(self) -> RunConfig:
        """The ``[run]`` table: what `crmsync run` does after pull, plan and apply."""
        return run_config(self.raw.get("run", {}))

    @cached_property
    def notify(self) -> NotifyConfig:
        """The ``[notify]`` table: whom unattended runs tell (webhooks; plugins' own tables)."""
        return notify_config(self.raw.get("notify", {}))

    def connection(self, name: str) -> ConnectionConfig:
        try:
            return self.connections[name]
        except KeyError:
            known = ", ".join(sorted(self.connections)) or "none configured"
            raise ConfigError(
                f"no connection named {name!r} (configured: {known})", path="connections"
            ) from None


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))


def load_config(path: Path | str, registry: PluginRegistry) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found; create one with `crmsync init` "
            f"or pass --config / set {CONFIG_ENV}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse_config(text, registry, path=path)


def parse_config(text: str, registry: PluginRegistry, path: Path | None = None) -> Config:
    source = str(path) if path else None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None

    _raise_first(Draft202012Validator(CORE_SCHEMA), raw, "", source)
    check_snapshots(raw.get("snapshots", {}), source)
    check_run_and_notify(raw, source)

    base = path.parent if path else Path.cwd()
    store_path = Path(raw.get("store", {}).get("path", DEFAULT_STORE)).expanduser()
    if not store_path.is_absolute():
        store_path = base / store_path

    plans = raw.get("plans", {})
    config = Config(
        path=path,
        store_path=store_path,
        raw=raw,
        plan_ttl=parse_duration(plans.get("ttl", "24h")),
        allow_self_approval=plans.get("allow_self_approval", False),
    )
    for name, table in raw.get("connections", {}).items():
        key = f"connections.{name}"
        connector = registry.connector(table["connector"], key_path=f"{key}.connector")
        settings = {k: v for k, v in table.items() if k != "connector"}
        schema = connector.settings_schema()
        _raise_first(SettingsValidator(schema), settings, key, source, schema=schema)
        config.connections[name] = ConnectionConfig(
            name=name,
            connector=table["connector"],
            settings=_with_secret_refs(schema, settings, key),
        )
    # Paths name the policy: policies.stale-leads.filter.all[0].op (policies[2] if unnamed).
    config.policies = parse_policies(
        raw.get("policies", []), connections=set(config.connections), source=source
    )
    if "retention" in raw or any(p.action.type == "purge" for p in config.policies):
        from crmsync.compliance.retention import check_purge_policies, check_retention

        retention = check_retention(raw.get("retention", {}), list(config.connections), source)
        check_purge_policies(config.policies, retention, source)
    if "erasure" in raw:
        from crmsync.compliance.erasure_config import check_erasure

        check_erasure(raw["erasure"], source)
    if "serve" in raw:  # cron and time zones are checked here, so every command exits 2
        from crmsync.unattended.schedule import parse_serve, policy_auto_apply

        policies = policy_auto_apply(config.policies)
        config.serve = parse_serve(raw["serve"], policies=policies, source=source)
    return config


# --------------------------------------------------------------------------- [snapshots]

_KEEP_COUNT = {"type": "integer", "minimum": -1}  # -1: every bucket
_WITHIN = re.compile(r"(?:[0-9]+[ymdh])+")
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
SNAPSHOTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "repository": {"type": "string", "minLength": 1},
        "passphrase": {"type": "string", "secret": True},
        "cache_dir": {"type": "string", "minLength": 1},
        # what `crmsync snapshot forget` keeps when no --keep-* option is given
        "keep": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **{rule: _KEEP_COUNT for rule in KEEP_RULES},
                "within": {"type": "string"},  # 1y2m3d4h: checked by check_snapshots
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


@dataclass(frozen=True)
class SnapshotsConfig:
    repository: Path  # default: snapshots/ beside the store file
    passphrase: SecretRef | None  # None: an unencrypted repository
    cache_dir: Path | None  # None: the user's cache directory
    keep: dict[str, Any]  # KeepPolicy keyword arguments ({} when [snapshots.keep] is absent)


def check_snapshots(table: Any, source: str | None) -> None:
    _raise_first(SettingsValidator(SNAPSHOTS_SCHEMA), table, "snapshots", source)
    within = table.get("keep", {}).get("within")
    units = re.findall("[ymdh]", within or "")
    if within is not None and not (_WITHIN.fullmatch(within) and len(set(units)) == len(units)):
        raise ConfigError(
            f"expected a duration like 1y2m3d4h (units y, m, d, h, each at most once);"
            f" got {within!r}",
            path="snapshots.keep.within",
            source=source,
        )


def snapshots_config(
    table: Mapping[str, Any], path: Path | None, store_path: Path
) -> SnapshotsConfig:
    base = path.parent if path else Path.cwd()

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    repository = table.get("repository")
    passphrase = table.get("passphrase")
    return SnapshotsConfig(
        repository=resolve(repository) if repository else store_path.parent / "snapshots",
        passphrase=secrets.make_ref(passphrase, "snapshots.passphrase") if passphrase else None,
        cache_dir=resolve(table["cache_dir"]) if table.get("cache_dir") else None,
        keep=dict(table.get("keep", {})),
    )


# --------------------------------------------------------------------------- [run], [notify]
# `crmsync run` and the notifications of unattended runs (crmsync.unattended; `crmsync serve`'s
# own [serve] table is elsewhere).

NOTIFY_EVENTS = ("failure", "awaiting_approval", "recovery")
WEBHOOK_TEMPLATES = ("dingtalk", "slack", "generic")
RUN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "snapshot": {"type": "boolean"},  # a whole-mirror snapshot after the apply step
        "retention": {"type": "boolean"},  # then forget by [snapshots.keep], and prune
    },
}
NOTIFY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "webhooks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "url": {"type": "string", "secret": True},  # webhook URLs carry tokens
                    "template": {"enum": list(WEBHOOK_TEMPLATES)},
                    "secret": {"type": "string", "secret": True},  # DingTalk signing secret
                    "on": {
                        "type": "array",
                        "items": {"enum": list(NOTIFY_EVENTS)},
                        "uniqueItems": True,
                    },
                    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
                    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                },
            },
        },
    },
    # [notify.NAME]: the settings of a notifier plugin, which it validates itself
    "additionalProperties": {"type": "object"},
}


@dataclass(frozen=True)
class RunConfig:
    snapshot: bool = False
    retention: bool = False


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: SecretRef
    template: str = "generic"
    secret: SecretRef | None = None
    on: tuple[str, ...] = NOTIFY_EVENTS
    timeout: float = 10.0
    retries: int = 3


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[WebhookConfig, ...] = ()
    tables: dict[str, Any] = field(default_factory=dict)  # [notify.NAME] for plugins


def check_run_and_notify(raw: Mapping[str, Any], source: str | None) -> None:
    _raise_first(SettingsValidator(RUN_SCHEMA), raw.get("run", {}), "run", source)
    _raise_first(SettingsValidator(NOTIFY_SCHEMA), raw.get("notify", {}), "notify", source)
    if raw.get("run", {}).get("retention") and not raw.get("snapshots", {}).get("keep"):
        raise ConfigError(
            "retention needs a keep policy: set [snapshots.keep] (e.g. daily = 7)",
            path="run.retention",
            source=source,
        )


def run_config(table: Mapping[str, Any]) -> RunConfig:
    return RunConfig(
        snapshot=bool(table.get("snapshot", False)), retention=bool(table.get("retention", False))
    )


def notify_config(table: Mapping[str, Any]) -> NotifyConfig:
    hooks = []
    for i, item in enumerate(table.get("webhooks", [])):
        key = f"notify.webhooks[{i}]"
        template = item.get("template", "generic")
        hooks.append(
            WebhookConfig(
                name=item.get("name") or f"{template} webhook #{i + 1}",
                url=secrets.make_ref(item["url"], f"{key}.url"),
                template=template,
                secret=secrets.make_ref(item["secret"], f"{key}.secret")
                if item.get("secret")
                else None,
                on=tuple(item.get("on", NOTIFY_EVENTS)),
                timeout=float(item.get("timeout", 10.0)),
                retries=int(item.get("retries", 3)),
            )
        )
    tables = {k: v for k, v in table.items() if k != "webhooks"}
    return NotifyConfig(webhooks=tuple(hooks), tables=tables)


# --------------------------------------------------------------------------- error text


def _describe(error: ValidationError, prefix: str) -> tuple[str, str]:
    """(key path, message) for one schema error; never echoes a secret-valued instance."""
    if error.validator == "pattern" and error.validator_value == NAME_PATTERN:
        return key_path(prefix, error.absolute_path), (
            f"name {error.instance!r} must start with a letter and use only letters, digits,"
            " - and _"
        )
    return describe(error, prefix)


def _raise_first(
    validator: Any, instance: Any, prefix: str, source: str | None, schema: Any = None
) -> None:
    errors = sorted(
        validator.iter_errors(instance),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if not errors:
        return
    described = [_describe(e, prefix) for e in errors]
    path, message = described[0]
    if len(described) > 1:
        more = "; ".join(f"{p}: {m}" for p, m in described[1:4])
        message = f"{message} (also: {more})"
    raise ConfigError(message, path=path or None, source=source)


# --------------------------------------------------------------------------- secrets


def _resolve_ref(root: Mapping, schema: Mapping) -> Mapping:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve_ref(root, node)
    return schema


def _secret_paths(root: Mapping, schema: Any, instance: Any, path: tuple) -> Iterator[tuple]:
    if not isinstance(schema, Mapping):
        return
    schema = _resolve_ref(root, schema)
    if schema.get("secret") and isinstance(instance, str):
        yield path
    if isinstance(instance, Mapping):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in instance.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            yield from _secret_paths(root, sub, value, (*path, key))
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(instance):
            yield from _secret_paths(root, schema["items"], item, (*path, i))
    for sub in schema.get("allOf", []):
        yield from _secret_paths(root, sub, instance, path)
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            if SettingsValidator(sub).is_valid(instance):
                yield from _secret_paths(root, sub, instance, path)
    if "if" in schema:
        branch = "then" if SettingsValidator(schema["if"]).is_valid(instance) else "else"
        yield from _secret_paths(root, schema.get(branch), instance, path)


def _with_secret_refs(schema: Mapping, settings: dict, prefix: str) -> dict:
    out = copy.deepcopy(settings)
    for path in set(_secret_paths(schema, schema, settings, ())):
        node = out
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = secrets.make_ref(node[path[-1]], key_path(prefix, path))
    return out
