"""``crmsync erase --apply PLAN``: carry out an approved erasure plan, resumably.

Order (each step safe to repeat, so re-running an interrupted apply finishes the rest):

1. The plan must be of kind ``erasure``, unexpired, made under this config, and approved.
2. **Re-check blocks**: a record planned for erasure that a hold or statutory floor covers
   *now* is restricted instead (never erased); a planned restriction whose block has ended is
   skipped (a new request erases it).
3. **Restrict** the blocked records: voided in the CRM where the module can and the record is
   not voided yet, marked restricted in the mirror with the block's reason
   (:func:`crmsync.compliance.purge_apply.mark_restricted`), one ``restrict`` audit entry each.
4. **Delete in the CRM** (``ConnectorSession.delete``, the connector's batch size; the module
   must have a ``purge`` operation if the record is still there): items go pending -> sending
   (committed before the request) -> deleted. A record the CRM no longer has counts as
   deleted; an item found ``sending`` after a crash is sent again (deleting a deleted record is
   answered NOT_FOUND: nothing is deleted twice).
5. **Snapshots**: every stored version of the deleted records is erased from the repository
   (:mod:`crmsync.snapshots.erase`).
6. **Store**, one transaction with secure_delete on (:func:`erasure_store.erase_local`): mirror
   rows, search index entries, plan item details, legacy copies, earlier audit entries' record
   ids; in the same transaction one ``erase`` proof entry per record (record id redacted,
   record ref kept, legal basis, operator, time, versions and snapshots erased), and the
   items marked done. Then the search index is merged and the WAL truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync.audit.model import AuditEntry, outcome_code
from crmsync.compliance.blocks import Block, deletion_blocks
from crmsync.compliance.erasure import KIND
from crmsync.compliance.erasure_store import erase_local, scrub
from crmsync.compliance.purge_apply import block_detail, delete_with_retries, mark_restricted
from crmsync.config import Config
from crmsync.connections import open_session
from crmsync.hookspecs import ConnectorSession, RecordResult, StatusChange
from crmsync.plans.apply import PlanError, check_plan
from crmsync.plans.model import DONE, FAILED, PENDING, SENDING, PlanInfo, PlanItem, PlanPolicy
from crmsync.plugins import PluginRegistry
from crmsync.store import Store
from crmsync.store.base import StoreTransaction

DELETED = "deleted"  # item state: gone from the CRM, local copies not yet erased
RESTRICTED = "restricted"  # item state: an erase item a block stopped at apply time


@dataclass
class ErasureResult:
    plan_id: str
    run_id: int
    erased: int = 0
    restricted: int = 0
    failed: int = 0
    skipped: int = 0
    crm_deleted: int = 0
    snapshot_versions: int = 0
    snapshots_rewritten: int = 0
    local: dict[str, int] = field(default_factory=dict)
    wal_busy: bool = False  # another process's reader kept old pages in the WAL: run again
    status: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _gone(answer: RecordResult) -> bool:
    return answer.ok or "NOT_FOUND" in (answer.error or "").upper().replace(" ", "_")


class _Audit:
    def __init__(self, plan: PlanInfo, operator: str, run_id: int, basis: str):
        self.plan, self.operator, self.run_id, self.basis = plan, operator, run_id, basis

    def entry(
        self, item: PlanItem, action: str, after: str | None, outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:  # fmt: skip
        return AuditEntry(
            action=action, operator=self.operator, outcome=outcome,
            connection=item.connection, module=item.module, record_id=item.record_id,
            before_status=item.before_status, after_status=after, plan_id=self.plan.id,
            run_id=self.run_id, policy=item.policy, detail={"basis": self.basis, **(detail or {})},
        )  # fmt: skip


def apply_erasure(
    config: Config,
    registry: PluginRegistry,
    store: Store,
    plan_id: str,
    *,
    operator: str,
    now: datetime | None = None,
) -> ErasureResult:
    now = now or datetime.now(UTC)
    plan = store.get_plan(plan_id)
    if plan is not None and plan.kind != KIND:
        raise PlanError(
            f"plan {plan_id} is a {plan.kind} plan; apply it with `crmsync apply {plan_id}`",
            path="PLAN_ID",
        )
    plan = check_plan(plan, plan_id, config, now)
    basis = str(plan.policies[0].params.get("basis")) if plan.policies else ""
    run_id = store.start_run("erase", None, None)
    result = ErasureResult(plan_id, run_id)
    audit = _Audit(plan, operator, run_id, basis)
    store.set_plan_status(
        plan_id, "applying", AuditEntry("apply.start", operator, plan_id=plan_id, run_id=run_id)
    )
    try:
        for policy in plan.policies:
            if policy.action == "restrict":
                _restrict_part(config, registry, store, plan, policy, audit, result, now)
            else:
                _recheck_blocks(config, registry, store, plan, policy, audit, result, now)
                _delete_part(config, registry, store, plan, policy, audit, result)
        _erase_copies(config, store, plan, audit, result)
        if any(p.action == "erase" for p in plan.policies):
            # every time, also when re-run: a scrub an earlier run did not reach happens now
            result.wal_busy = bool(scrub(store)["busy"])
    except BaseException as exc:
        store.finish_run(run_id, "failed", result.as_dict(), str(exc)[:500])
        raise
    left = store.count_plan_items(plan_id, states=(PENDING, SENDING, DELETED))
    result.status = "applied" if left == 0 else "partial"
    store.set_plan_status(
        plan_id,
        result.status if left == 0 else "applying",
        AuditEntry(
            "apply.finish", operator, plan_id=plan_id, run_id=run_id,
            outcome="ok" if left == 0 and not result.failed else "failed:incomplete",
            detail={"erased": result.erased, "restricted": result.restricted,
                    "failed": result.failed},
        ),
    )  # fmt: skip
    store.finish_run(run_id, "ok", result.as_dict())
    return result


def _items(
    store: Store, plan: PlanInfo, policy: PlanPolicy, states: Sequence[str]
) -> list[PlanItem]:
    return list(store.iter_plan_items(plan.id, policy.policy, states=states))


def _session(config: Config, registry: PluginRegistry, connection: str) -> ConnectorSession:
    return open_session(config, registry, connection)


def _module_actions(session: ConnectorSession, module: str) -> tuple[str, ...] | None:
    """The module's write operations, or None when the CRM has no such module (any more)."""
    for info in session.list_modules():
        if info.name == module:
            return tuple(info.actions)
    return None


def _recheck_blocks(
    config: Config, registry: PluginRegistry, store: Store, plan: PlanInfo,
    policy: PlanPolicy, audit: _Audit, result: ErasureResult, now: datetime,
) -> None:  # fmt: skip
    """A hold or floor that appeared since the plan turns an erasure into a restriction."""
    items = _items(store, plan, policy, (PENDING, SENDING))
    if not items:
        return
    blocks = deletion_blocks(
        store, config, policy.connection, policy.module, [i.record_id for i in items], now
    )
    held = [i for i in items if i.record_id in blocks]
    if held:
        _restrict_items(config, registry, store, policy, held, blocks, audit, result, now,
                        final_state=RESTRICTED)  # fmt: skip


def _restrict_part(
    config: Config, registry: PluginRegistry, store: Store, plan: PlanInfo,
    policy: PlanPolicy, audit: _Audit, result: ErasureResult, now: datetime,
) -> None:  # fmt: skip
    items = _items(store, plan, policy, (PENDING, SENDING))
    if not items:
        return
    blocks = deletion_blocks(
        store, config, policy.connection, policy.module, [i.record_id for i in items], now
    )
    ended = [i for i in items if i.record_id not in blocks]
    with store.transaction() as tx:
        for item in ended:  # the block ended since the plan: a new request erases it
            tx.set_item_state(item, DONE, error="skipped:unblocked")
            tx.append_audit([audit.entry(item, "restrict", item.before_status,
                                         "skipped:unblocked")])  # fmt: skip
            result.skipped += 1
    blocked = [i for i in items if i.record_id in blocks]
    _restrict_items(config, registry, store, policy, blocked, blocks, audit, result, now,
                    final_state=DONE)  # fmt: skip


def _restrict_items(
    config: Config, registry: PluginRegistry, store: Store, policy: PlanPolicy,
    items: Sequence[PlanItem], blocks: dict[str, Block], audit: _Audit, result: ErasureResult,
    now: datetime, *, final_state: str,
) -> None:  # fmt: skip
    """Void in the CRM (where it is there, not voided yet, and the module can), mark restricted
    in the mirror, audit the reason."""
    to_void = [
        i for i in items
        if (rec := store.get_record(i.connection, i.module, i.record_id)) is not None
        and rec.status != "voided" and _in_crm(store, i)
    ]  # fmt: skip
    voided: dict[str, RecordResult] = {}
    can_void = True
    if to_void:
        session = _session(config, registry, policy.connection)
        try:
            can_void = "void" in (_module_actions(session, policy.module) or ())
            if can_void:
                size = session.limits().batch_size
                for start in range(0, len(to_void), size):
                    batch = to_void[start : start + size]
                    changes = [StatusChange(i.record_id, "void") for i in batch]
                    for answer in session.push(policy.module, changes):
                        voided[answer.record_id] = answer
        finally:
            session.close()
    with store.transaction() as tx:
        entries = []
        for item in items:
            block = blocks[item.record_id]
            answer = voided.get(item.record_id)
            detail: dict[str, Any] = {**block_detail(block), "reason": "erasure requested"}
            after = item.before_status
            if answer is not None and answer.ok:
                tx.set_status(item.connection, item.module, item.record_id, "voided")
                after = "voided"
            elif answer is not None:
                detail["void"] = f"failed:{outcome_code(answer.error)}"
            elif not can_void and item in to_void:
                detail["void"] = "unsupported"  # the module has no void operation
            mark_restricted(tx, item, block, now)
            tx.set_item_state(item, final_state)
            entries.append(audit.entry(item, "restrict", after, "ok", detail))
            result.restricted += 1
        tx.append_audit(entries)


def _in_crm(store: Store, item: PlanItem) -> bool:
    row = store.mirror_values(
        item.connection, item.module, [item.record_id], ["crm_deleted_at IS NULL"]
    ).get(item.record_id)
    return bool(row and row[0])


def _delete_part(
    config: Config, registry: PluginRegistry, store: Store, plan: PlanInfo,
    policy: PlanPolicy, audit: _Audit, result: ErasureResult,
) -> None:  # fmt: skip
    items = _items(store, plan, policy, (PENDING, SENDING))
    if not items:
        return
    session = _session(config, registry, policy.connection)
    try:
        actions = _module_actions(session, policy.module)
        if actions is None or "purge" not in actions:
            _without_purge(store, policy, items, actions, audit, result)
            return
        size = session.limits().batch_size
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            with store.transaction() as tx:
                for item in batch:
                    tx.set_item_state(item, SENDING)
            answers = delete_with_retries(session, policy.module, [i.record_id for i in batch])
            with store.transaction() as tx:
                for item in batch:
                    answer = answers.get(item.record_id) or RecordResult(
                        item.record_id, False, "NO_RESULT"
                    )
                    if _gone(answer):
                        tx.set_item_state(item, DELETED)
                        result.crm_deleted += int(answer.ok)
                    else:
                        code = outcome_code(answer.error)
                        tx.set_item_state(item, FAILED, error=code)
                        tx.append_audit([audit.entry(item, "erase", item.before_status,
                                                     f"failed:{code}")])  # fmt: skip
                        result.failed += 1
    finally:
        session.close()


def _without_purge(
    store: Store, policy: PlanPolicy, items: Sequence[PlanItem], actions: tuple[str, ...] | None,
    audit: _Audit, result: ErasureResult,
) -> None:  # fmt: skip
    """No way to delete in the CRM: records it still has fail (reported, nothing erased, so a
    pull does not bring back what was erased locally); records it no longer has go on."""
    with store.transaction() as tx:
        for item in items:
            if _in_crm(store, item):
                why = "no-module" if actions is None else "no-purge-operation"
                tx.set_item_state(item, FAILED, error=why)
                tx.append_audit([audit.entry(item, "erase", item.before_status,
                                             f"failed:{why}")])  # fmt: skip
                result.failed += 1
            else:
                tx.set_item_state(item, DELETED)


def _erase_copies(
    config: Config, store: Store, plan: PlanInfo, audit: _Audit, result: ErasureResult
) -> None:
    """Steps 5 and 6 for every item deleted in the CRM (module docstring)."""
    items = [
        item
        for policy in plan.policies
        if policy.action == "erase"
        for item in _items(store, plan, policy, (DELETED,))
    ]
    if not items:
        return
    refs = [(i.connection, i.module, i.record_id) for i in items]
    per_record: dict[tuple[str, str, str], int] = {}
    from crmsync.snapshots.configured import open_configured, repository_exists

    if repository_exists(config.snapshots):
        from crmsync.snapshots.erase import erase

        targets: dict[str, set[tuple[str, str]]] = {}
        for conn, module, rid in refs:
            targets.setdefault(conn, set()).add((module, rid))
        from crmsync.compliance.erasure import held_snapshot_ids

        held = held_snapshot_ids(store, datetime.now(UTC))
        report = erase(open_configured(config.snapshots), targets, held)
        per_record = report.per_record
        result.snapshot_versions += report.blobs_erased
        result.snapshots_rewritten += len(report.snapshots_affected)

    def proofs(tx: StoreTransaction) -> None:
        entries = []
        for item in items:
            planned = item.detail or {}
            entries.append(
                audit.entry(
                    item, "erase", "erased", "ok",
                    {"versions": max(int(planned.get("versions", 0)),
                                     per_record.get((item.connection, item.module,
                                                     item.record_id), 0)),
                     "snapshots": int(planned.get("snapshots", 0)),
                     "kept_by_snapshot_hold": int(planned.get("kept_by_snapshot_hold", 0)),
                     "found": list(planned.get("found", []))},
                )
            )  # fmt: skip
            tx.set_item_state(item, DONE)
        sealed = tx.append_audit(entries)
        for record in sealed:  # the proof keeps the ref, not the id
            tx.clear_audit_record_id(record.seq)
        result.erased += len(items)

    details = sorted({tuple(d) for p in plan.policies for d in p.params.get("plan_details", [])})
    result.local = erase_local(store, refs, plan.id, proofs, details)
