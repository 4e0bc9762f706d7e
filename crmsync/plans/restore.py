"""``crmsync restore``: undo archive/void, as a plan that goes through the same apply path
(snapshot first, drift check, batches, audit, resumable).

Which records: given ids (``--record``), everything a plan or an apply run changed
(``--plan``, ``--run``), or what a policy changed in a time range (``--policy`` with
``--since``/``--until``); runs and policies are looked up in the audit log.
With ``--data`` the records' field values are also put back from the local copy taken before
they were changed: only fields that differ from the record as the CRM has it now are sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crmsync.audit.model import AuditEntry, AuditQuery
from crmsync.config import Config
from crmsync.connections import open_session
from crmsync.errors import ConfigError
from crmsync.plans.model import DONE, PlanInfo, PlanItem, PlanPolicy
from crmsync.plans.planner import config_hash, iso, new_plan_id
from crmsync.plugins import PluginRegistry
from crmsync.pull import pull_module, select_modules
from crmsync.store import Store

RESTORABLE = ("archived", "voided")
CHANGING_ACTIONS = ("archive", "void")


@dataclass(frozen=True)
class Selection:
    """Records to restore: (connection, module) -> {record_id: hash of the copy to restore}."""

    records: dict[tuple[str, str], dict[str, str | None]]


def select_by_ids(
    store: Store, connection: str, module: str, record_ids: Sequence[str]
) -> Selection:
    chosen: dict[str, str | None] = {}
    for rid in record_ids:
        record = store.get_record(connection, module, rid)
        if record is None:
            raise ConfigError(
                f"record {rid!r} is not in the mirror of {connection}/{module}", path="--record"
            )
        chosen[rid] = store.latest_copy_hash(connection, module, rid)
    return Selection({(connection, module): chosen})


def select_by_plan(store: Store, plan_id: str) -> Selection:
    plan = store.get_plan(plan_id)
    if plan is None:
        raise ConfigError(f"no plan {plan_id!r}", path="--plan")
    records: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    for policy in plan.policies:
        if policy.action not in CHANGING_ACTIONS:
            continue
        for item in store.iter_plan_items(plan_id, policy.policy, states=(DONE,)):
            copy = None
            if item.snapshot_id:
                copy = store.snapshot_hash(
                    item.snapshot_id, item.connection, item.module, item.record_id
                )
            records[(item.connection, item.module)][item.record_id] = copy
    return Selection(dict(records))


def select_from_audit(
    store: Store,
    *,
    policy: str | None = None,
    run_id: int | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Selection:
    """What a policy (in a time range) or an apply run archived or voided, from the audit log."""
    records: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    for action in CHANGING_ACTIONS:
        query = AuditQuery(
            policy=policy,
            run_id=run_id,
            action=action,
            outcome="ok",
            since=since,
            until=until,
            limit=None,
        )
        for entry in store.find_audit(query):
            if entry.connection and entry.module and entry.record_id:
                copy = None
                if entry.snapshot_id:
                    copy = store.snapshot_hash(
                        entry.snapshot_id, entry.connection, entry.module, entry.record_id
                    )
                records[(entry.connection, entry.module)][entry.record_id] = copy
    return Selection(dict(records))


def refresh(config: Config, registry: PluginRegistry, store: Store, selection: Selection) -> None:
    """Pull the selected modules first: the records were changed by crmsync itself, and a
    connector that does not report the new modified time would otherwise make that change
    look like someone else's edit (drift) when the restore is applied."""
    for connection, module in sorted(selection.records):
        session = open_session(config, registry, connection)
        try:
            info = select_modules(session, connection, [module])[0]
            pull_module(session, store, connection, info)
        finally:
            session.close()


def make_restore_plan(
    config: Config,
    store: Store,
    selection: Selection,
    *,
    operator: str,
    with_data: bool,
    now: datetime | None = None,
) -> PlanInfo:
    """A plan of kind ``restore``: one part per (connection, module), records that are
    archived or voided in the mirror now. The admin chose them one by one (or by plan), so
    the blast-radius guard is the selection itself."""
    now = now or datetime.now(UTC)
    plan_id = new_plan_id(now)
    store.create_plan(
        plan_id=plan_id,
        created_at=iso(now),
        created_by=operator,
        expires_at=iso(now + config.plan_ttl),
        config_hash=config_hash(config),
        queries=[],
        kind="restore",
    )
    parts = []
    for (connection, module), chosen in sorted(selection.records.items()):
        config.connection(connection)
        name = f"restore:{connection}/{module}"
        items = []
        for rid, copy in sorted(chosen.items()):
            record = store.get_record(connection, module, rid)
            if record is None or record.status not in RESTORABLE:
                continue
            items.append(
                PlanItem(
                    plan_id=plan_id,
                    policy=name,
                    connection=connection,
                    module=module,
                    record_id=rid,
                    planned_modified_at=record.modified_at,
                    planned_hash=record.content_hash,
                    before_status=record.status,
                    source_hash=copy if with_data else None,
                )
            )
        added = store.add_plan_items(plan_id, name, items)
        total = store.count(connection, module)
        params: dict[str, Any] = {"restore_data": with_data}
        parts.append(
            PlanPolicy(
                policy=name,
                connection=connection,
                module=module,
                action="restore",
                params=params,
                matched=added,
                module_total=total,
                max_records=max(added, 1),
                max_percent=100.0,
                require_approval=False,
            )
        )
    store.set_plan_policies(plan_id, parts)
    store.append_audit(
        [
            AuditEntry(
                "plan.create",
                operator,
                plan_id=plan_id,
                detail={"kind": "restore", "with_data": with_data},
            )
        ]
    )
    plan = store.get_plan(plan_id)
    assert plan is not None
    return plan


def restored_fields(
    copy: dict[str, Any] | None, current: dict[str, Any], skip: Sequence[str]
) -> dict[str, Any]:
    """The fields to send so the CRM record matches its copy again (changed ones only)."""
    if not copy:
        return {}
    return {
        key: value for key, value in copy.items() if key not in skip and current.get(key) != value
    }
