"""The ``[retention]`` config table: how long records and snapshots are kept.

::

    [retention]
    snapshots_max_age = "400d"      # snapshot forget also drops snapshots older than this
                                    # (on top of [snapshots.keep]; never a held snapshot)

    [[retention.rules]]
    connection = "sales"            # required
    module = "Leads"                # optional: absent = every module of the connection
    purge_voided_after = "180d"     # a voided record may be purged this long after it was voided
    purge_archived_after = "3y"     # maximum: an archived record's purpose has ended this long
                                    # after it was archived: it is voided (then purged after
                                    # purge_voided_after), or restricted while blocked
    keep_at_least = "10y"           # statutory floor: never deleted before this age ...
    keep_from = "created"           # ... counted from: created (the CRM's created time, else
                                    # first seen), modified (the CRM's modified time) or status
                                    # (since the current status)
    keep_basis = "HGB-257"          # legal-basis code of the floor (required with keep_at_least)
    purge_basis = "PIPL-47-1-2"     # legal-basis code audited with each purge (the default)
    require_approval = true         # purge plans need a second person's approval (default)
    max_records = 500               # blast radius: a purge plan of more records stops (exit 3)

The most specific rule wins: one naming the module over the connection-wide one. A module no
rule covers is never purged by retention. Durations as in policies: 30d, 26w, 3y (y = 365 d).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator

from crmsync.errors import ConfigError
from crmsync.policy.model import DEFAULT_MAX_RECORDS, DURATION_PATTERN, parse_duration
from crmsync.schema_text import describe

KEEP_FROM = ("created", "modified", "status")
DEFAULT_PURGE_BASIS = "PIPL-47-1-2"  # PIPL Art.47(1)(2): the retention period has expired
_BASIS = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"}
_DURATION = {"type": "string", "pattern": DURATION_PATTERN}

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["connection"],
    "properties": {
        "connection": {"type": "string", "minLength": 1},
        "module": {"type": "string", "minLength": 1},
        "purge_voided_after": _DURATION,
        "purge_archived_after": _DURATION,
        "keep_at_least": _DURATION,
        "keep_from": {"enum": list(KEEP_FROM)},
        "keep_basis": _BASIS,
        "purge_basis": _BASIS,
        "require_approval": {"type": "boolean"},
        "max_records": {"type": "integer", "minimum": 1},
    },
}
RETENTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "snapshots_max_age": _DURATION,
        "rules": {"type": "array", "items": RULE_SCHEMA},
    },
}

# The CRM's created time: the first of these keys a record has (sandbox, Zoho, Jiandaoyun,
# Fxiaoke, Salesforce-style, DingTalk), read by SQLite's datetime(); else the mirror's
# first_seen_at (later than the real creation, so a floor never ends early).
CREATED_KEYS = ("created_at", "Created_Time", "createTime", "create_time", "CreatedDate")


@dataclass(frozen=True)
class RetentionRule:
    connection: str
    module: str | None
    purge_voided_after: timedelta | None = None
    purge_archived_after: timedelta | None = None
    keep_at_least: timedelta | None = None
    keep_from: str = "created"
    keep_basis: str | None = None
    purge_basis: str = DEFAULT_PURGE_BASIS
    require_approval: bool = True
    max_records: int = DEFAULT_MAX_RECORDS  # blast radius of one purge plan, per module
    raw: Mapping[str, Any] | None = None  # as written (durations as text, for display)

    def text(self, key: str) -> str:
        return str((self.raw or {}).get(key, ""))

    def floor_cutoff(self, now: datetime) -> datetime | None:
        """Records whose floor clock is at or before this moment are past the floor."""
        return None if self.keep_at_least is None else now - self.keep_at_least


@dataclass(frozen=True)
class RetentionConfig:
    rules: tuple[RetentionRule, ...] = ()
    snapshots_max_age: timedelta | None = None
    snapshots_max_age_text: str | None = None

    def rule_for(self, connection: str, module: str) -> RetentionRule | None:
        """The most specific rule for a module: its own, else its connection's, else None."""
        wide = None
        for rule in self.rules:
            if rule.connection != connection:
                continue
            if rule.module == module:
                return rule
            if rule.module is None and wide is None:
                wide = rule
        return wide


def check_retention(
    table: Any, connections: Sequence[str] | None = None, source: str | None = None
) -> RetentionConfig:
    """The validated ``[retention]`` table, or ConfigError (exit 2) naming the key path."""
    errors = sorted(
        Draft202012Validator(RETENTION_SCHEMA).iter_errors(table),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        path, message = describe(errors[0], "retention")
        if errors[0].validator == "pattern" and errors[0].validator_value == DURATION_PATTERN:
            got = errors[0].instance
            message = f"expected a duration such as '180d' (units s, m, h, d, w, y), got {got!r}"
        elif errors[0].validator == "pattern" and errors[0].validator_value == _BASIS["pattern"]:
            got = errors[0].instance
            message = (
                f"{got!r} is not a legal-basis code: letters, digits and - _ . only, no spaces"
                " (e.g. 'HGB-257', 'PIPL-47-1-2')"
            )
        raise ConfigError(message, path=path, source=source)
    rules = []
    seen: dict[tuple[str, str | None], int] = {}
    for i, raw in enumerate(table.get("rules", [])):
        path = f"retention.rules[{i}]"
        key = (raw["connection"], raw.get("module"))
        if key in seen:
            where = raw.get("module") or "every module"
            raise ConfigError(
                f"a second rule for {raw['connection']}/{where} (rules[{seen[key]}] is the"
                " first); one rule per connection/module",
                path=path,
                source=source,
            )
        seen[key] = i
        if connections is not None and raw["connection"] not in connections:
            known = ", ".join(sorted(connections)) or "none configured"
            raise ConfigError(
                f"no connection named {raw['connection']!r} (configured: {known})",
                path=f"{path}.connection",
                source=source,
            )
        if "keep_at_least" in raw and "keep_basis" not in raw:
            raise ConfigError(
                "a statutory floor needs its legal basis: add keep_basis (e.g. 'HGB-257')",
                path=f"{path}.keep_basis",
                source=source,
            )
        if not any(k in raw for k in ("purge_voided_after", "purge_archived_after")):
            raise ConfigError(
                "the rule says nothing: set purge_voided_after and/or purge_archived_after",
                path=path,
                source=source,
            )

        def duration(name: str, raw: Mapping[str, Any] = raw) -> timedelta | None:
            return parse_duration(raw[name]) if name in raw else None

        rules.append(
            RetentionRule(
                connection=raw["connection"],
                module=raw.get("module"),
                purge_voided_after=duration("purge_voided_after"),
                purge_archived_after=duration("purge_archived_after"),
                keep_at_least=duration("keep_at_least"),
                keep_from=raw.get("keep_from", "created"),
                keep_basis=raw.get("keep_basis"),
                purge_basis=raw.get("purge_basis", DEFAULT_PURGE_BASIS),
                require_approval=raw.get("require_approval", True),
                max_records=raw.get("max_records", DEFAULT_MAX_RECORDS),
                raw=dict(raw),
            )
        )
    max_age = table.get("snapshots_max_age")
    return RetentionConfig(
        rules=tuple(rules),
        snapshots_max_age=parse_duration(max_age) if max_age else None,
        snapshots_max_age_text=max_age,
    )


def check_purge_policies(
    policies: Sequence[Any], retention: RetentionConfig, source: str | None = None
) -> None:
    """A purge policy purges only what retention allows: its module needs a rule with
    ``purge_voided_after`` (ConfigError naming the policy otherwise)."""
    for policy in policies:
        if policy.action.type != "purge":
            continue
        rule = retention.rule_for(policy.connection, policy.module)
        if rule is None or rule.purge_voided_after is None:
            raise ConfigError(
                f"purges {policy.connection}/{policy.module}, but no [[retention.rules]] gives"
                " it purge_voided_after: purge only what retention allows",
                path=f"policies.{policy.name}.action",
                source=source,
            )


def retention_of(config: Any) -> RetentionConfig:
    """The ``[retention]`` table of a loaded :class:`~crmsync.config.Config`."""
    return check_retention(config.raw.get("retention", {}), list(config.connections))


# --------------------------------------------------------------------------- SQL clocks


def sql_time(moment: datetime) -> str:
    """A moment as SQLite's datetime() writes it (what the clock expressions compare to)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def status_clock_sql(alias: str = "") -> str:
    """Since when the record has its status, as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    a = f"{alias}." if alias else ""
    return f"datetime(coalesce({a}status_since, {a}first_seen_at))"


def floor_clock_sql(keep_from: str, alias: str = "") -> str:
    """The start of a statutory floor's clock, as ``YYYY-MM-DD HH:MM:SS`` UTC. A value SQLite
    cannot read as a time falls back to the next one (created: first seen)."""
    a = f"{alias}." if alias else ""
    if keep_from == "status":
        return status_clock_sql(alias)
    if keep_from == "modified":
        return f"coalesce(datetime({a}modified_at), datetime({a}updated_at))"
    created = ", ".join(f"datetime(json_extract({a}data, '$.\"{k}\"'))" for k in CREATED_KEYS)
    return f"coalesce({created}, datetime({a}first_seen_at))"
