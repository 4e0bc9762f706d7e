"""``crmsync plan``: evaluate policies over the mirror (one SQL query each) and store the result.

The selected record ids are copied into the plan inside the store (``INSERT ... SELECT``), so a
plan over a million records never passes through Python one record at a time. Policies that
compute values per record (``update`` with ``normalize``, ``classify``) do it in the same query,
through their SQL functions, and keep only the records that would change; a duplicates policy's
items get their cluster's key and survivor from the same window query that selects them (one more
window query when the ``duplicate_of`` condition sits under ``any``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.audit.model import AuditEntry
from crmsync.config import Config
from crmsync.errors import ConfigError
from crmsync.plans.model import PLANNED, PlanInfo, PlanPolicy
from crmsync.policy import actions
from crmsync.policy.duplicates import OP as DUPLICATE_OP
from crmsync.policy.duplicates import cluster_sql, select_with_clusters, top_level_condition
from crmsync.policy.filters import Scope
from crmsync.policy.model import (
    DEFAULT_MAX_PERCENT,
    DEFAULT_MAX_RECORDS,
    All,
    AnyOf,
    Condition,
    Filter,
    Policy,
)
from crmsync.policy.sql import select_sql
from crmsync.store import Store

DEFAULT_TTL = timedelta(hours=24)
ITEM_COLUMNS = "connection, module, record_id, modified_at, content_hash, status"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_operator(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def config_hash(config: Config) -> str:
    """What a plan was made under: the connections and policies as written (secret values are
    references, so no secret enters the hash)."""
    relevant = {k: config.raw.get(k) for k in ("connections", "policies")}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def new_plan_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def guard_verdict(policy: Policy, matched: int, total: int) -> tuple[int, float, str | None]:
    """(max_records, max_percent, None or why the blast radius is exceeded)."""
    max_records = policy.max_records if policy.max_records is not None else DEFAULT_MAX_RECORDS
    max_percent = policy.max_percent if policy.max_percent is not None else DEFAULT_MAX_PERCENT
    if policy.max_records is None and policy.max_percent is not None:
        max_records = 0  # the policy chose a percent guard only
    if policy.max_percent is None and policy.max_records is not None:
        max_percent = 0.0
    reasons = []
    if max_records and matched > max_records:
        reasons.append(f"{matched} records > max_records {max_records}")
    percent = 100.0 * matched / total if total else 0.0
    if max_percent and percent > max_percent:
        reasons.append(f"{percent:.1f}% of {total} > max_percent {max_percent:g}%")
    return max_records, max_percent, "; ".join(reasons) or None


NAME_FIELDS = (
    "full_name",
    "name",
    "Full_Name",
    "Last_Name",
    "Account_Name",
    "Deal_Name",
    "company",
    "email",
    "title",
    "subject",
)


def filter_fields(node: Any) -> list[str]:
    """Data fields a filter reads, in order of appearance (for plan samples)."""
    from crmsync.policy.model import Not

    if isinstance(node, Condition) and node.op == DUPLICATE_OP:
        return [f for f in node.value[DUPLICATE_OP] if not f.startswith("@")]
    if isinstance(node, Condition):
        return [] if node.field.column else [node.field.label]
    if isinstance(node, All | AnyOf):
        return [f for child in node.items for f in filter_fields(child)]
    if isinstance(node, Not):
        return filter_fields(node.item)
    return []


def sample_view(policy: Policy, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """A sample record as a plan shows it: a name-like field and the fields the filter reads."""
    names = [f for f in NAME_FIELDS if f in data][:1]
    keys = list(dict.fromkeys(names + filter_fields(policy.filter)))[:5]
    return {"record_id": record_id, "fields": {k: data.get(k) for k in keys}}


def item_query(policy: Policy, now: datetime) -> tuple[str, list[Any]]:
    """The SELECT of a policy's plan items: ITEM_COLUMNS and the per-record detail (JSON text,
    NULL when the action changes every record alike)."""
    detail = actions.registry[policy.action.type].detail_sql(policy, now)
    if detail is None:
        clustered = clusters_in_items(policy, now)
        if clustered is not None:
            return clustered
        return select_sql(policy, now, columns=f"{ITEM_COLUMNS}, NULL")
    expr, params = detail
    sql, all_params = select_sql(
        policy, now, columns=f"{ITEM_COLUMNS}, {expr} AS detail", column_params=params
    )
    # MATERIALIZED: the detail is computed once per record, not again for the WHERE.
    return (
        f"WITH planned AS MATERIALIZED ({sql}) SELECT * FROM planned WHERE detail IS NOT NULL",
        all_params,
    )


def clusters_in_items(policy: Policy, now: datetime) -> tuple[str, list[Any]] | None:
    """The item query of a duplicates policy whose ``duplicate_of`` condition must hold (not
    under ``any`` or ``not``): the records with their cluster and survivor as the detail, the
    duplicate query computed once (:func:`annotate_clusters` would compute it again)."""
    condition = duplicate_condition(policy.filter)
    if condition is None or condition is not top_level_condition(policy):
        return None
    if actions.registry[policy.action.type].computes_values(policy.action.params):
        return None
    found = select_with_clusters(policy, now, ITEM_COLUMNS)
    assert found is not None
    sql, params = found
    # One field: the key as text; several: a JSON array of their keys.
    cluster = "json(cluster)" if len(condition.value[DUPLICATE_OP]) > 1 else "cluster"
    detail = f"json_object('cluster', {cluster}, 'survivor', survivor)"
    return f"SELECT {ITEM_COLUMNS}, {detail} FROM ({sql})", params


def duplicate_condition(node: Filter) -> Condition | None:
    """The first ``duplicate_of`` condition that selects records (not under ``not``)."""
    if isinstance(node, Condition):
        return node if node.op == DUPLICATE_OP else None
    if isinstance(node, All | AnyOf):
        for item in node.items:
            found = duplicate_condition(item)
            if found is not None:
                return found
    return None


def annotate_clusters(store: Store, plan_id: str, policy: Policy) -> int:
    """Note on each planned record of a duplicates policy its cluster's key and survivor."""
    condition = duplicate_condition(policy.filter)
    action = actions.registry[policy.action.type]
    if condition is None or action.computes_values(policy.action.params):
        return 0
    if condition is top_level_condition(policy):
        return 0  # the item query gave each record its cluster (clusters_in_items)
    sql, params = cluster_sql(condition.value, Scope(policy.connection, policy.module))
    multi = len(condition.value[DUPLICATE_OP]) > 1
    # One field: the key as text; several: a JSON array of their keys.
    cluster = "json(cluster)" if multi else "cluster"
    detail = f"SELECT record_id, json_object('cluster', {cluster}, 'survivor', survivor) AS detail"
    return store.annotate_plan_items(plan_id, policy.name, f"{detail} FROM ({sql})", params)


def select_policies(config: Config, names: Sequence[str] | None) -> list[Policy]:
    by_name = {p.name: p for p in config.policies}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)) or "none configured"
            raise ConfigError(f"unknown policy {unknown[0]!r} (policies: {known})", path="--policy")
        return [by_name[n] for n in names]
    return [p for p in config.policies if p.enabled]


def make_plan(
    config: Config,
    store: Store,
    policies: Sequence[Policy],
    *,
    operator: str,
    now: datetime | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> PlanInfo:
    """Evaluate ``policies`` over the mirror and store the plan; returns it."""
    now = now or datetime.now(UTC)
    plan_id = new_plan_id(now)
    # once per filter shape; then each query uses one. Indexes no configured policy needs go.
    store.ensure_policy_indexes(policies, keep=[p for p in config.policies if p.enabled])
    queries: list[tuple[Policy, str, list[Any]]] = []
    for policy in policies:
        if policy.action.type == "purge":  # retention, holds and floors ANDed in
            from crmsync.compliance.purge import policy_item_query

            sql, params = policy_item_query(config, store, policy, now)
        else:
            sql, params = item_query(policy, now)
        queries.append((policy, sql, params))
    counts = store.create_plan(
        plan_id=plan_id,
        created_at=iso(now),
        created_by=operator,
        expires_at=iso(now + ttl),
        config_hash=config_hash(config),
        queries=[(p.name, sql, params) for p, sql, params in queries],
    )
    for policy in policies:
        if counts[policy.name]:
            annotate_clusters(store, plan_id, policy)
    rows = []
    totals: dict[tuple[str, str], int] = {}  # policies often share a module: count it once
    for policy, _sql, _params in queries:
        matched = counts[policy.name]
        key = (policy.connection, policy.module)
        if key not in totals:
            totals[key] = store.count(*key)
        total = totals[key]
        max_records, max_percent, guard = guard_verdict(policy, matched, total)
        rows.append(
            PlanPolicy(
                policy=policy.name,
                connection=policy.connection,
                module=policy.module,
                action=policy.action.type,
                params=dict(policy.action.params),
                matched=matched,
                module_total=total,
                max_records=max_records,
                max_percent=max_percent,
                require_approval=policy.require_approval,
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
                detail={"policies": {r.policy: r.matched for r in rows}},
            )
        ]
    )
    plan = store.get_plan(plan_id)
    assert plan is not None and plan.status == PLANNED
    return plan
