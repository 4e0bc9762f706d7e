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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.audit.model import AuditEntry, AuditQuery
from crmsync.config import Config
from crmsync.connections import open_session
from crmsync.errors import ConfigError
from crmsync.hookspecs import ModuleInfo
from crmsync.plans.model import DONE, PlanInfo, PlanItem, PlanPolicy
from crmsync.plans.planner import config_hash, iso, new_plan_id
from crmsync.plugins import PluginRegistry
from crmsync.pull import pull_module, select_modules
from crmsync.store import Store
from crmsync.store.base import canonical_record

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

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


@dataclass
class SnapshotSelection:
    """What ``snapshot restore --to-crm`` found: the records to put back, and the rest."""

    selection: Selection
    snapshot_id: str
    unchanged: int = 0  # the CRM (as mirrored) already holds the snapshot's version
    gone: list[tuple[str, str]] = field(default_factory=list)  # deleted in the CRM since


def select_from_snapshot(
    store: Store,
    repo: Repository,
    snapshot_ref: str,
    *,
    module: str | None = None,
    record_ids: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> SnapshotSelection:
    """Records of a snapshot whose mirrored version differs now (edited, archived, voided),
    comparing every field but ``ignore`` (the id and modified-time fields: a restored record
    gets a new modified time, and is still restored).

    The store notes which version of each the snapshot holds, so apply's ``restore --data``
    path finds the copy by hash exactly as it finds a pre-change copy."""
    info = repo.show(snapshot_ref)
    connection = info.connection
    records: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    found = SnapshotSelection(Selection({}), info.id)
    noted: list[tuple[str, str, str]] = []
    for rec in repo.records(info.id, module, record_ids):
        digest = canonical_record(rec.data)[1]
        current = store.get_record(connection, rec.module, rec.record_id)
        if current is None or current.crm_deleted_at:
            found.gone.append((rec.module, rec.record_id))
        elif current.content_hash == digest or not _differs(rec.data, current.data, ignore):
            found.unchanged += 1
        else:
            records[(connection, rec.module)][rec.record_id] = digest
            noted.append((rec.module, rec.record_id, digest))
    store.note_snapshot_copies(info.id, connection, noted)
    found.selection = Selection(dict(records))
    return found


def _differs(copy: dict[str, Any], current: Any, ignore: Sequence[str]) -> bool:
    # the copy's fields only: a restore writes those back, it cannot unset newer fields
    return any(current.get(k) != v for k, v in copy.items() if k not in ignore)


def refresh(
    config: Config, registry: PluginRegistry, store: Store, selection: Selection
) -> dict[tuple[str, str], ModuleInfo]:
    """Pull the selected modules first: the records were changed by crmsync itself, and a
    connector that does not report the new modified time would otherwise make that change
    look like someone else's edit (drift) when the restore is applied. Returns each module's
    connector metadata."""
    infos = {}
    for connection, module in sorted(selection.records):
        session = open_session(config, registry, connection)
        try:
            info = select_modules(session, connection, [module])[0]
            pull_module(session, store, connection, info)
            infos[(connection, module)] = info
        finally:
            session.close()
    return infos


def make_restore_plan(
    config: Config,
    store: Store,
    selection: Selection,
    *,
    operator: str,
    with_data: bool,
    revert_active: bool = False,
    now: datetime | None = None,
) -> PlanInfo:
    """A plan of kind ``restore``: one part per (connection, module), records that are
    archived or voided in the mirror now. The admin chose them one by one (or by plan), so
    the blast-radius guard is the selection itself. With ``revert_active`` (and data), active
    records are put back too: a second part per module writes their fields (action update)."""
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
        restore_items, revert_items = [], []
        for rid, copy in sorted(chosen.items()):
            record = store.get_record(connection, module, rid)
            if record is None:
                continue
            if record.status in RESTORABLE:
                bucket = restore_items
            elif revert_active and with_data and copy:
                bucket = revert_items
            else:
                continue
            bucket.append((rid, record, copy))
        for name, action, chosen_items in (
            (f"restore:{connection}/{module}", "restore", restore_items),
            (f"revert:{connection}/{module}", "update", revert_items),
        ):
            if action == "update" and not chosen_items:
                continue  # a restore part is always shown, even empty (as before)
            items = [
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
                for rid, record, copy in chosen_items
            ]
            added = store.add_plan_items(plan_id, name, items)
            parts.append(
                PlanPolicy(
                    policy=name,
                    connection=connection,
                    module=module,
                    action=action,
                    params={"restore_data": with_data},
                    matched=added,
                    module_total=store.count(connection, module),
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
