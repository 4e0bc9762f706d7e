"""Purge plans: which records retention lets go, and the plan that deletes them.

For each module a ``[[retention.rules]]`` rule covers, one SQL query per part (the records stay
in SQLite; only what is shown crosses into Python):

- **purge**: voided for longer than ``purge_voided_after``, no active legal hold, statutory
  floor passed. A restricted record whose block has ended qualifies again.
- **restrict**: voided past retention but blocked (hold, floor) and not yet restricted: marked
  restricted in the mirror with the reason, audited (``restrict``); no CRM call.
- **void**: archived for longer than ``purge_archived_after`` (the purpose ended): voided through
  the ordinary apply path, which starts the ``purge_voided_after`` grace period.

Precedence (:mod:`crmsync.compliance.precedence`) is what these conditions encode: a hold or
floor turns a due purge into a restriction. Purge policies (``action = "purge"`` in
``[[policies]]``) get the same conditions ANDed to their filter (:func:`policy_item_query`), so
no plan can hold a record retention does not allow; the blocked records such a policy selects
are left out, and ``crmsync purge`` is what restricts them. Apply checks all of it again
(:mod:`crmsync.compliance.purge_apply`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync.audit.model import AuditEntry
from crmsync.compliance import holds
from crmsync.compliance.blocks import deletion_blocks
from crmsync.compliance.precedence import BASIS_HOLD, BASIS_MAXIMUM
from crmsync.compliance.retention import (
    RetentionConfig,
    RetentionRule,
    floor_clock_sql,
    retention_of,
    sql_time,
    status_clock_sql,
)
from crmsync.config import Config
from crmsync.errors import ConfigError, GuardError
from crmsync.plans.model import PLANNED, PlanInfo, PlanPolicy
from crmsync.plans.planner import config_hash, iso, new_plan_id
from crmsync.policy.model import Policy, parse_duration
from crmsync.policy.sql import compile_policy
from crmsync.store import ModuleCount, Store

PURGE, RESTRICT, VOID = "purge", "restrict", "void"
COMPLIANCE_ACTIONS = (PURGE, RESTRICT)  # carried out by crmsync.compliance.purge_apply
ITEM_COLUMNS = "connection, module, record_id, modified_at, content_hash, status"
SHOWN = 20  # records listed per part in the terminal (--json lists them all)


def part_name(action: str, connection: str, module: str) -> str:
    """The plan policy name of one part of a purge plan (retention has no policy name)."""
    return f"retention-{action}:{connection}/{module}"


def snapshot_repository_configured(config: Config) -> bool:
    """Purge needs a copy somewhere the admin chose: ``[snapshots] repository`` set."""
    return bool(config.raw.get("snapshots", {}).get("repository"))


def require_repository(config: Config) -> None:
    if not snapshot_repository_configured(config):
        raise GuardError(
            "purge deletes records for good and needs a verified snapshot first: set"
            " [snapshots] repository in the config (nothing was deleted)"
        )


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Conditions:
    """SQL over a mirror row of one module, for one retention rule at one moment."""

    due: tuple[str, list[Any]]  # voided past purge_voided_after
    blocked: tuple[str, list[Any]]  # held, or inside the statutory floor
    held: tuple[str, list[Any]]
    floor_until: str  # expression: the floor's end (ISO text), or NULL without a floor
    archived_due: tuple[str, list[Any]] | None  # archived past purge_archived_after


def conditions(
    rule: RetentionRule,
    active: Sequence[holds.Hold],
    connection: str,
    module: str,
    now: datetime,
) -> Conditions:
    clock = status_clock_sql()
    if rule.purge_voided_after is not None:
        due = (f"(status = 'voided' AND {clock} <= ?)", [sql_time(now - rule.purge_voided_after)])
    else:
        due = ("0", [])
    held = holds.held_sql(active, connection, module, now)
    if rule.keep_at_least is not None:
        floor = floor_clock_sql(rule.keep_from)
        days = rule.keep_at_least.total_seconds() / 86400
        until = f"strftime('%Y-%m-%dT%H:%M:%SZ', {floor}, '+{days!r} days')"
        inside: tuple[str, list[Any]] = (
            f"coalesce({floor} > ?, 1)",
            [sql_time(now - rule.keep_at_least)],
        )
    else:
        until, inside = "NULL", ("0", [])
    blocked = (f"({held[0]} OR {inside[0]})", [*held[1], *inside[1]])
    archived = None
    if rule.purge_archived_after is not None:
        archived = (
            f"(status = 'archived' AND {clock} <= ?)",
            [sql_time(now - rule.purge_archived_after)],
        )
    return Conditions(due, blocked, held, until, archived)


def _live(connection: str, module: str) -> tuple[str, list[Any]]:
    return "connection = ? AND module = ? AND crm_deleted_at IS NULL", [connection, module]


@dataclass(frozen=True)
class PartQuery:
    """One part of a purge plan over one module: the per-record detail (JSON) and the WHERE."""

    detail: str
    detail_params: list[Any]
    where: str
    where_params: list[Any]

    def select(self) -> tuple[str, list[Any]]:
        """ITEM_COLUMNS and the detail of every record, in record id order (plan items)."""
        return (
            f"SELECT {ITEM_COLUMNS}, {self.detail} FROM mirror WHERE {self.where}"
            " ORDER BY +record_id",
            [*self.detail_params, *self.where_params],
        )

    def first(self, limit: int) -> tuple[str, list[Any]]:
        """A few of them, in no particular order (no sort: for display)."""
        sql, params = self.select()
        return f"{sql.rsplit(' ORDER BY ', 1)[0]} LIMIT ?", [*params, limit]

    def count(self) -> tuple[str, list[Any]]:
        return f"SELECT count(*) FROM mirror WHERE {self.where}", list(self.where_params)

    def narrowed(self, where: str, params: Sequence[Any]) -> PartQuery:
        return PartQuery(
            self.detail,
            self.detail_params,
            f"{self.where} AND {where}",
            [*self.where_params, *params],
        )


def part_queries(
    rule: RetentionRule,
    active: Sequence[holds.Hold],
    connection: str,
    module: str,
    now: datetime,
    record_ids: Sequence[str] | None = None,
) -> dict[str, PartQuery]:
    """action -> the query of each part (module docstring); with ``record_ids``, only the
    purge part, over those records."""
    c = conditions(rule, active, connection, module, now)
    live, live_params = _live(connection, module)
    if record_ids is not None:
        live += f" AND record_id IN ({', '.join('?' * len(record_ids))})"
        live_params = [*live_params, *record_ids]
    since = f"strftime('%Y-%m-%dT%H:%M:%SZ', {status_clock_sql()})"
    out: dict[str, PartQuery] = {
        PURGE: PartQuery(
            f"json_object('since', {since}, 'after', ?, 'basis', ?)",
            [rule.text("purge_voided_after"), rule.purge_basis],
            f"{live} AND {c.due[0]} AND NOT {c.blocked[0]}",
            [*live_params, *c.due[1], *c.blocked[1]],
        )
    }
    if record_ids is not None:
        return out  # naming records purges exactly them (the rest was refused)
    # which holds: only for the held rows of this (usually small) part, so the purge part's
    # query and the count of either are as fast as without it
    by, by_params = holds.holding_sql(active, connection, module, now)
    out[RESTRICT] = PartQuery(
        f"json_object('since', {since}, 'after', ?, 'blocked',"
        f" CASE WHEN {c.held[0]} THEN 'hold' ELSE 'statutory' END, 'until', {c.floor_until},"
        f" 'holds', json(CASE WHEN {c.held[0]} THEN {by} ELSE '[]' END))",
        [rule.text("purge_voided_after"), *c.held[1], *c.held[1], *by_params],
        f"{live} AND restricted_at IS NULL AND {c.due[0]} AND {c.blocked[0]}",
        [*live_params, *c.due[1], *c.blocked[1]],
    )
    if c.archived_due is not None:
        out[VOID] = PartQuery(
            f"json_object('since', {since}, 'maximum', ?, 'basis', ?)",
            [rule.text("purge_archived_after"), BASIS_MAXIMUM],
            f"{live} AND {c.archived_due[0]}",
            [*live_params, *c.archived_due[1]],
        )
    return out


def policy_item_query(
    config: Config, store: Store, policy: Policy, now: datetime
) -> tuple[str, list[Any]]:
    """The plan items of a ``purge`` policy: its filter AND retention's purge conditions (the
    planner calls this instead of the generic query)."""
    check_rule_modules(retention_of(config), store.module_counts(policy.connection))
    rule = retention_of(config).rule_for(policy.connection, policy.module)
    if rule is None or rule.purge_voided_after is None:
        raise ConfigError(
            f"policy {policy.name!r} purges {policy.connection}/{policy.module}, but no"
            " [[retention.rules]] gives it purge_voided_after: purge only what retention allows",
            path=f"policies.{policy.name}.action",
        )
    active = holds.active_holds(store, now)
    where, params = compile_policy(policy, now)
    part = part_queries(rule, active, policy.connection, policy.module, now)[PURGE]
    return part.narrowed(where, params).select()


# --------------------------------------------------------------------------- explaining


@dataclass
class Refusal:
    ref: str
    reason: str


def check_named(
    config: Config, store: Store, refs: Sequence[tuple[str, str, str]], now: datetime
) -> list[Refusal]:
    """Why each explicitly named record may not be purged now (empty: all may)."""
    retention = retention_of(config)
    out: list[Refusal] = []
    by_module: dict[tuple[str, str], list[str]] = {}
    for c, m, rid in refs:
        by_module.setdefault((c, m), []).append(rid)
    since_sql = f"strftime('%Y-%m-%dT%H:%M:%SZ', {status_clock_sql()})"
    for (c, m), ids in by_module.items():
        rule = retention.rule_for(c, m)
        blocks = deletion_blocks(store, config, c, m, ids, now)
        for rid in ids:
            ref = f"{c}:{m}:{rid}"
            if rid in blocks:
                block = blocks[rid]
                until = f" until {block.until}" if block.until else ""
                out.append(Refusal(ref, f"{block.reason}{until}"))
                continue
            row = store.mirror_values(c, m, [rid], ["status", "crm_deleted_at", since_sql]).get(rid)
            if row is None:
                out.append(Refusal(ref, "not in the mirror (pull first, or check the id)"))
                continue
            status, deleted, since = row
            if deleted is not None or status == "purged":
                out.append(Refusal(ref, f"already deleted in the CRM ({deleted or status})"))
            elif status != "voided":
                out.append(Refusal(ref, f"not voided (status {status}); void it first"))
            elif rule is None or rule.purge_voided_after is None:
                out.append(
                    Refusal(ref, f"no retention rule gives {c}/{m} a purge_voided_after period")
                )
            else:
                ends = datetime.fromisoformat(since.replace("Z", "+00:00"))
                ends += rule.purge_voided_after
                if ends > now:
                    out.append(
                        Refusal(
                            ref,
                            f"inside its retention period: voided since {since}, retention"
                            f" {rule.text('purge_voided_after')}, purgeable from {iso(ends)}",
                        )
                    )
    return out


@dataclass
class Entry:
    """One record of a purge plan (or dry run), and why it qualifies."""

    action: str
    connection: str
    module: str
    record_id: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {
            "action": self.action,
            "connection": self.connection,
            "module": self.module,
            "record_id": self.record_id,
            "why": self.why,
        }


def why(
    action: str,
    detail: dict[str, Any],
    now: datetime,
    reasons: Mapping[str, str] | None = None,
) -> str:
    """A record's reason, from its plan detail: status since, period, how far past; for a
    held record which hold(s) (``reasons``: hold id -> its reason, to quote)."""
    since = detail.get("since") or ""
    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        start = None
    if action == VOID:
        text = f"archived since {since}, maximum {detail.get('maximum')}"
        return text + " (purpose ended): void, then purge after the grace period"
    text = f"voided since {since}, retention {detail.get('after')}"
    if action == RESTRICT:
        if detail.get("blocked") == "hold":
            named = sorted(str(h) for h in detail.get("holds") or ())
            if not named:  # a plan stored before the holds were named
                return text + ", but under legal hold: restrict"
            which = ", ".join(
                f"{h} ({reasons[h]!r})" if reasons and h in reasons else h for h in named
            )
            noun = "legal hold" if len(named) == 1 else "legal holds"
            return text + f", but under {noun} {which}: restrict"
        return text + f", but inside the statutory minimum until {detail.get('until')}: restrict"
    try:
        ends = start + parse_duration(str(detail.get("after"))) if start else None
    except ValueError:
        ends = None
    if ends is not None:
        return text + f", past by {(now - ends).days} d"
    return text


@dataclass
class PurgePlan:
    plan: PlanInfo | None  # None: a dry run
    entries_by_part: dict[str, list[Entry]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # part name -> records

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.id if self.plan else None,
            "dry_run": self.plan is None,
            "parts": [
                {
                    "part": name,
                    "records": self.counts.get(name, 0),
                    "items": [e.as_dict() for e in entries],
                }
                for name, entries in self.entries_by_part.items()
            ],
        }


def _targets(
    retention: RetentionConfig,
    mirrored: Sequence[ModuleCount],
    connection: str | None,
    module: str | None,
) -> list[tuple[str, str, RetentionRule]]:
    out = []
    for counted in mirrored:
        if connection is not None and counted.connection != connection:
            continue
        if module is not None and counted.module != module:
            continue
        rule = retention.rule_for(counted.connection, counted.module)
        if rule is not None:
            out.append((counted.connection, counted.module, rule))
    return out


def _mirrored(mirrored: Sequence[ModuleCount], connection: str | None, module: str) -> bool:
    return any(c.module == module and connection in (None, c.connection) for c in mirrored)


def check_rule_modules(retention: RetentionConfig, mirrored: Sequence[ModuleCount]) -> None:
    """A rule naming a module its connection's mirror does not hold is a typo (exit 2): left
    alone, the connection-wide rule would purge that module without the floor meant for it."""
    held: dict[str, list[str]] = {}
    for counted in mirrored:
        held.setdefault(counted.connection, []).append(counted.module)
    for i, rule in enumerate(retention.rules):
        modules = held.get(rule.connection)
        if rule.module is not None and modules and rule.module not in modules:
            raise ConfigError(
                f"the mirror of {rule.connection} holds no module {rule.module!r} (it holds"
                f" {', '.join(sorted(modules))}; names are case-sensitive)",
                path=f"retention.rules[{i}].module",
            )


def make_purge_plan(
    config: Config,
    store: Store,
    *,
    operator: str,
    connection: str | None = None,
    module: str | None = None,
    records: Sequence[tuple[str, str, str]] = (),
    dry_run: bool = False,
    now: datetime | None = None,
    shown: int | None = None,
) -> PurgePlan:
    """Plan (or, with ``dry_run``, only show) what retention lets go now. Named ``records``
    are purged exactly, or refused all together (GuardError, exit 3, nothing stored).
    ``shown``: keep at most this many entries per part in memory (None: all; the counts are
    always complete)."""
    now = now or datetime.now(UTC)
    retention = retention_of(config)
    mirrored = store.module_counts()
    check_rule_modules(retention, mirrored)
    if records:
        refused = check_named(config, store, records, now)
        if refused:
            lines = "; ".join(f"{r.ref}: {r.reason}" for r in refused)
            raise GuardError(f"refused to purge {len(refused)} record(s), nothing deleted: {lines}")
    if not dry_run:
        require_repository(config)
    active = holds.active_holds(store, now)
    queries: list[tuple[str, str, str, str, RetentionRule, PartQuery]] = []
    if records:
        by_module: dict[tuple[str, str], list[str]] = {}
        for c, m, rid in records:
            by_module.setdefault((c, m), []).append(rid)
        for (c, m), ids in by_module.items():
            rule = retention.rule_for(c, m)
            assert rule is not None  # check_named refused records without a rule
            part = part_queries(rule, active, c, m, now, ids)[PURGE]
            queries.append((part_name(PURGE, c, m), PURGE, c, m, rule, part))
    else:
        targets = _targets(retention, mirrored, connection, module)
        if not targets and module is not None and not _mirrored(mirrored, connection, module):
            raise ConfigError(
                f"the mirror holds no module {module!r}"
                + (f" of connection {connection!r}" if connection else "")
                + " (`crmsync status` lists the modules; names are case-sensitive)",
                path="--module",
            )
        if not targets:
            where = "/".join(x for x in (connection, module) if x) or "any mirrored module"
            raise ConfigError(
                f"no [[retention.rules]] covers {where}: nothing can be purged", path="retention"
            )
        for c, m, rule in targets:
            for action, part in part_queries(rule, active, c, m, now).items():
                queries.append((part_name(action, c, m), action, c, m, rule, part))
    result = PurgePlan(None)
    reasons = {h.id: h.reason for h in active}
    for name, action, _c, _m, _rule, part in queries:
        if shown is not None:  # a few, unsorted, and a count: no sort, no detail for the rest
            rows = store.query_mirror(*part.first(shown))
            result.counts[name] = store.query_mirror(*part.count())[0][0]
        else:
            rows = store.query_mirror(*part.select())
            result.counts[name] = len(rows)
        result.entries_by_part[name] = [
            Entry(action, row[0], row[1], row[2], why(action, json.loads(row[6]), now, reasons))
            for row in rows
        ]
    if dry_run:
        return result
    plan_id = new_plan_id(now)
    counts = store.create_plan(
        plan_id=plan_id,
        created_at=iso(now),
        created_by=operator,
        expires_at=iso(now + config.plan_ttl),
        config_hash=config_hash(config),
        queries=[(name, *part.select()) for name, *_, part in queries],
        kind="purge",
    )
    rows = []
    for name, action, c, m, rule, _part in queries:
        matched = counts[name]
        guard = None
        if action != RESTRICT and matched > rule.max_records:
            guard = f"{matched} records > max_records {rule.max_records}"
        rows.append(
            PlanPolicy(
                policy=name,
                connection=c,
                module=m,
                action=action,
                params={"basis": _basis(rule, action)},
                matched=matched,
                module_total=store.count(c, m),
                max_records=rule.max_records,
                max_percent=0.0,
                require_approval=rule.require_approval and action != RESTRICT,
                guard=guard,
            )
        )
    store.set_plan_policies(plan_id, rows)
    store.append_audit(
        [
            AuditEntry(
                "plan.create",
                operator,
                plan_id=plan_id,
                detail={"kind": "purge", "policies": {r.policy: r.matched for r in rows}},
            )
        ]
    )
    plan = store.get_plan(plan_id)
    assert plan is not None and plan.status == PLANNED
    result.plan = plan
    for row in rows:
        if row.guard:
            raise GuardError(
                f"{row.policy}: blast radius exceeded ({row.guard}); plan {plan_id} was stored"
                " but cannot be applied. Raise max_records in the retention rule or narrow"
                " --connection/--module."
            )
    return result


def _basis(rule: RetentionRule, action: str) -> str:
    if action == PURGE:
        return rule.purge_basis
    return BASIS_MAXIMUM if action == VOID else BASIS_HOLD
