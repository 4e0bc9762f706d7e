"""Apply's path for the purge and restrict parts of a plan (``crmsync.plans.apply`` hands them
here after its refresh pull).

Purge, per module, in this order; any failure before step 5 leaves the CRM untouched:

1. Refuse without ``[snapshots] repository`` (nothing irreversible without a copy) or when the
   connector has no ``purge`` operation for the module.
2. Items left ``sending`` by an interrupted apply go back to pending: deleting them again is
   harmless (a record the CRM no longer has counts as purged).
3. Drift (changed or deleted in the CRM since the plan) is skipped and audited, as in apply.
4. **Re-check** every pending record now: a hold added since the plan, or a statutory floor,
   skips it as ``held`` and restricts it (audited); one no longer voided past its retention
   period is skipped as ``retained``.
5. Snapshot exactly the remaining records (the pre-change snapshot), then **verify** it: read
   each record back from the repository and compare its hash with the one noted; a missing or
   different record stops the apply (GuardError, exit 3) with nothing deleted.
6. ``ConnectorSession.delete`` in the connector's batch size; each record deleted is marked
   ``purged`` in the mirror (``crm_deleted_at`` set) with one audit entry naming the snapshot
   and the legal-basis code.

Restrict marks records restricted in the mirror (no CRM call: they are voided already) with
the block's reason, one ``restrict`` audit entry each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.audit.model import AuditEntry, outcome_code
from crmsync.compliance.blocks import Block, deletion_blocks
from crmsync.compliance.precedence import BASIS_HOLD, BASIS_RETENTION, BASIS_STATUTORY
from crmsync.compliance.purge import PURGE, RESTRICT, part_queries, require_repository
from crmsync.compliance.retention import retention_of
from crmsync.config import Config
from crmsync.errors import ConnectorError, GuardError
from crmsync.hookspecs import ConnectorSession, ModuleInfo, RecordResult
from crmsync.plans.model import (
    DONE,
    DRIFT,
    FAILED,
    GONE,
    PENDING,
    SENDING,
    PlanInfo,
    PlanItem,
    PlanPolicy,
)
from crmsync.store import Store
from crmsync.store.base import StoreTransaction, canonical_record

if TYPE_CHECKING:
    from crmsync.plans.apply import ApplyResult
    from crmsync.snapshots.prechange import PreChangeSnapshots

HELD = "held"  # item state: a hold or statutory floor blocked it at apply time
RETAINED = "retained"  # item state: no longer past its retention period
BATCH = 500
RETRIES = 2


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Audit:
    def __init__(self, plan: PlanInfo, policy: PlanPolicy, operator: str, run_id: int):
        self.plan, self.policy, self.operator, self.run_id = plan, policy, operator, run_id
        self.snapshot_id: str | None = None

    def entry(
        self,
        item: PlanItem,
        action: str,
        after: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
        snapshot_id: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            action=action,
            operator=self.operator,
            outcome=outcome,
            connection=item.connection,
            module=item.module,
            record_id=item.record_id,
            before_status=item.before_status,
            after_status=after,
            plan_id=self.plan.id,
            run_id=self.run_id,
            snapshot_id=snapshot_id or item.snapshot_id or self.snapshot_id,
            policy=self.policy.policy,
            detail=detail or {},
        )


def block_detail(block: Block) -> dict[str, Any]:
    """What the audit log keeps of a block: its kind, code (hold id or legal basis), end."""
    basis = BASIS_HOLD if block.kind == "hold" else (block.code or BASIS_STATUTORY)
    return {"block": block.kind, "basis": basis, "ref": block.code, "until": block.until}


def _restrict_sql(block: Block) -> tuple[str, str]:
    basis = BASIS_HOLD if block.kind == "hold" else (block.code or BASIS_STATUTORY)
    ref = f" {block.code}" if block.kind == "hold" and block.code else ""
    until = f" until {block.until}" if block.until else ""
    return basis, f"{basis}: {block.kind}{ref}{until}"


def mark_restricted(tx: StoreTransaction, item: PlanItem, block: Block, now: datetime) -> None:
    """Mark the record restricted (kept, not processed) by ``block``, in ``tx``."""
    _basis, reason = _restrict_sql(block)
    tx.mark_restricted(item.connection, item.module, item.record_id, reason, _stamp(now))


def apply_part(
    config: Config,
    session: ConnectorSession,
    store: Store,
    copies: PreChangeSnapshots,
    plan: PlanInfo,
    info: ModuleInfo,
    policy: PlanPolicy,
    operator: str,
    run_id: int,
    result: ApplyResult,
    on_batch: Callable[[str, int], None] | None = None,
    now: datetime | None = None,
) -> None:
    """Carry out one purge or restrict part of a plan (module docstring)."""
    now = now or datetime.now(UTC)
    audit = _Audit(plan, policy, operator, run_id)
    if policy.action == RESTRICT:
        _restrict(config, store, plan, policy, audit, result, now)
        return
    assert policy.action == PURGE
    require_repository(config)
    if "purge" not in info.actions:
        raise ConnectorError(
            f"{policy.policy}: the connector has no 'purge' operation configured for this module",
            connection=policy.connection,
            module=policy.module,
        )
    with store.transaction() as tx:  # 2. deleting again is harmless
        for item in store.plan_items(plan.id, policy.policy, states=(SENDING,)):
            tx.set_item_state(item, PENDING)
    basis = policy.params.get("basis") or _rule_basis(config, policy)
    _drift(store, plan, policy, audit, result, basis, now)  # 3
    _recheck(config, store, plan, policy, audit, result, now)  # 4
    snapshot_id = copies.take(  # 5
        plan.id, policy.policy, policy.connection, policy.module, run_id, operator
    )
    if snapshot_id:
        result.snapshot_ids.append(snapshot_id)
        audit.snapshot_id = snapshot_id
    verify_copies(store, copies, plan, policy)
    _delete(config, session, store, plan, policy, audit, result, on_batch, now)  # 6


def _drift(
    store: Store,
    plan: PlanInfo,
    policy: PlanPolicy,
    audit: _Audit,
    result: ApplyResult,
    basis: str,
    now: datetime,
) -> None:
    """Step 3. A record gone from the CRM that already has its snapshot copy was being
    deleted when an apply stopped: it counts as purged; otherwise drift skips as in apply."""
    last = ""
    while drifted := store.drifted_plan_items(plan.id, policy.policy, after=last):
        with store.transaction() as tx:
            for item, gone in drifted:
                if gone and item.snapshot_id:  # in flight when an apply stopped: it is done
                    _mark_purged(tx, item, now)
                    tx.set_item_state(item, DONE)
                    detail = {"basis": basis, "already_gone": True, "recovered": True}
                    tx.append_audit([audit.entry(item, PURGE, "purged", "ok", detail)])
                    result.add(policy.policy, DONE)
                    continue
                state, why = (GONE, "skipped:gone") if gone else (DRIFT, "skipped:drift")
                tx.set_item_state(item, state, error=why)
                tx.append_audit([audit.entry(item, PURGE, item.before_status, why)])
                result.add(policy.policy, state)
        last = drifted[-1][0].record_id


def _pending(store: Store, plan: PlanInfo, policy: PlanPolicy) -> Any:
    last = ""
    while batch := store.plan_items(
        plan.id, policy.policy, states=(PENDING,), limit=BATCH, after=last
    ):
        yield batch
        last = batch[-1].record_id


def _recheck(
    config: Config,
    store: Store,
    plan: PlanInfo,
    policy: PlanPolicy,
    audit: _Audit,
    result: ApplyResult,
    now: datetime,
) -> None:
    """Step 4: holds, floors and retention as they are now, not as they were at plan time."""
    rule = retention_of(config).rule_for(policy.connection, policy.module)
    for batch in _pending(store, plan, policy):
        ids = [item.record_id for item in batch]
        blocks = deletion_blocks(store, config, policy.connection, policy.module, ids, now)
        eligible: set[str] = set()
        if rule is not None:
            part = part_queries(rule, [], policy.connection, policy.module, now, ids)[PURGE]
            eligible = {row[2] for row in store.query_mirror(*part.select())}
        with store.transaction() as tx:
            for item in batch:
                block = blocks.get(item.record_id)
                if block is not None:
                    mark_restricted(tx, item, block, now)
                    tx.set_item_state(item, HELD, error=f"skipped:{block.kind}")
                    tx.append_audit(
                        [
                            audit.entry(item, PURGE, item.before_status, "skipped:held",
                                        block_detail(block)),
                            audit.entry(item, RESTRICT, item.before_status, "ok",
                                        block_detail(block)),
                        ]
                    )  # fmt: skip
                    result.add(policy.policy, HELD)
                elif item.record_id not in eligible:
                    tx.set_item_state(item, RETAINED, error="skipped:retention")
                    tx.append_audit(
                        [audit.entry(item, PURGE, item.before_status, "skipped:retention")]
                    )
                    result.add(policy.policy, RETAINED)


def verify_copies(
    store: Store, copies: PreChangeSnapshots, plan: PlanInfo, policy: PlanPolicy
) -> int:
    """Step 5: every pending record is in its snapshot, read back with the hash the store
    noted. Returns how many were verified; GuardError (nothing deleted) otherwise."""
    verified = 0
    for batch in _pending(store, plan, policy):
        by_snapshot: dict[str | None, list[PlanItem]] = {}
        for item in batch:
            by_snapshot.setdefault(item.snapshot_id, []).append(item)
        for snapshot_id, items in by_snapshot.items():
            if snapshot_id is None:
                raise GuardError(
                    f"{policy.policy}: {items[0].record_id} has no snapshot copy; nothing was"
                    " deleted"
                )
            ids = [i.record_id for i in items]
            noted = store.snapshot_hashes(snapshot_id, policy.connection, policy.module, ids)
            read = {
                rec.record_id: canonical_record(rec.data)[1]
                for rec in copies.repo.records(snapshot_id, policy.module, ids)
            }
            for rid in ids:
                if rid not in noted or read.get(rid) != noted[rid]:
                    what = "missing from" if rid not in read else "differs in"
                    raise GuardError(
                        f"snapshot verification failed: {policy.module}/{rid} {what} snapshot"
                        f" {snapshot_id}; nothing was deleted (run `crmsync snapshot verify`)"
                    )
                verified += 1
    return verified


def _delete(
    config: Config,
    session: ConnectorSession,
    store: Store,
    plan: PlanInfo,
    policy: PlanPolicy,
    audit: _Audit,
    result: ApplyResult,
    on_batch: Callable[[str, int], None] | None,
    now: datetime,
) -> None:
    batch_size = session.limits().batch_size
    basis = policy.params.get("basis") or _rule_basis(config, policy)
    last = ""
    while batch := store.plan_items(
        plan.id, policy.policy, states=(PENDING,), limit=batch_size, after=last
    ):
        last = batch[-1].record_id
        with store.transaction() as tx:
            for item in batch:
                tx.set_item_state(item, SENDING)
        answers = delete_with_retries(
            session, policy.module, [i.record_id for i in batch], lambda: _count_call(result)
        )
        with store.transaction() as tx:
            entries = []
            for item in batch:
                answer = answers.get(item.record_id) or RecordResult(
                    item.record_id, False, "NO_RESULT"
                )
                code = outcome_code(answer.error) if not answer.ok else None
                if answer.ok or code == "NOT_FOUND":  # gone either way
                    _mark_purged(tx, item, now)
                    tx.set_item_state(item, DONE)
                    detail = {"basis": basis, **({"already_gone": True} if code else {})}
                    entries.append(audit.entry(item, PURGE, "purged", "ok", detail))
                    result.add(policy.policy, DONE)
                else:
                    tx.set_item_state(item, FAILED, error=code)
                    entries.append(audit.entry(item, PURGE, item.before_status, f"failed:{code}"))
                    result.add(policy.policy, FAILED)
            tx.append_audit(entries)
        if on_batch:
            on_batch(policy.policy, len(batch))


def _mark_purged(tx: StoreTransaction, item: PlanItem, now: datetime) -> None:
    tx.mark_purged(item.connection, item.module, item.record_id, _stamp(now))


def _rule_basis(config: Config, policy: PlanPolicy) -> str:
    """A purge policy's legal basis: its retention rule's ``purge_basis``."""
    rule = retention_of(config).rule_for(policy.connection, policy.module)
    return rule.purge_basis if rule is not None else BASIS_RETENTION


def delete_with_retries(
    session: ConnectorSession,
    module: str,
    ids: Sequence[str],
    on_call: Callable[[], None] | None = None,
) -> dict[str, RecordResult]:
    """``session.delete`` of ``ids`` (at most a batch), asking again (at most ``RETRIES`` times)
    for the records the CRM answered retryable; the last answer per record. ``on_call`` is
    told of each request (apply counts write calls). Purge and erasure both delete this way."""
    todo = list(ids)
    final: dict[str, RecordResult] = {}
    for attempt in range(RETRIES + 1):
        if on_call is not None:
            on_call()
        retry = []
        for answer in session.delete(module, todo):
            final[answer.record_id] = answer
            if not answer.ok and answer.retryable and attempt < RETRIES:
                retry.append(answer.record_id)
        todo = retry
        if not todo:
            break
    return final


def _count_call(result: ApplyResult) -> None:
    result.api_calls += 1


def _restrict(
    config: Config,
    store: Store,
    plan: PlanInfo,
    policy: PlanPolicy,
    audit: _Audit,
    result: ApplyResult,
    now: datetime,
) -> None:
    for batch in _pending(store, plan, policy):
        ids = [item.record_id for item in batch]
        blocks = deletion_blocks(store, config, policy.connection, policy.module, ids, now)
        with store.transaction() as tx:
            for item in batch:
                block = blocks.get(item.record_id)
                if block is None:  # the block ended since the plan: the next purge takes it
                    tx.set_item_state(item, DONE, error="skipped:unblocked")
                    tx.append_audit(
                        [audit.entry(item, RESTRICT, item.before_status, "skipped:unblocked")]
                    )
                    result.add(policy.policy, "unblocked")
                    continue
                mark_restricted(tx, item, block, now)
                tx.set_item_state(item, DONE)
                tx.append_audit(
                    [audit.entry(item, RESTRICT, item.before_status, "ok", block_detail(block))]
                )
                result.add(policy.policy, DONE)
