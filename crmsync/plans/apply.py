"""``crmsync apply``: carry out a stored plan, safely and resumably.

Order of work for each (connection, module) of the plan:

1. **Refresh**: an incremental pull, so the mirror shows the CRM as it is now.
2. **Recover**: items left ``sending`` by an interrupted apply are checked against the CRM's
   status: already in the target status -> done (not written again); otherwise pending.
3. **Drift**: a pending record whose modified time (or content, for modules without one) moved
   since the plan is skipped and reported, never overwritten; one deleted in the CRM is ``gone``.
4. **Snapshot**: a copy of every record still to change is committed to the snapshot
   repository (``[snapshots]``) before the first write; the audit entries name it.
5. **Push** in the connector's batch size: the batch is marked ``sending`` (committed), pushed,
   then results, mirror statuses and audit entries commit in one transaction. Records the CRM
   reports as retryable are retried (bounded), then reported.

Purge and restrict parts (retention: ``crmsync purge``, ``action = "purge"``) take their own
path after step 1, :mod:`crmsync.compliance.purge_apply`: holds and retention checked again, the
snapshot verified by reading it back, then ``ConnectorSession.delete``.

Re-running an interrupted apply therefore finishes the rest and writes nothing twice (as long
as the connector reports CRM-side status: ``ModuleInfo.status_field``; without it, records in
flight at the moment of the crash are written again — at least once, never lost).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.audit.model import AuditEntry, outcome_code
from crmsync.compliance.purge import COMPLIANCE_ACTIONS
from crmsync.compliance.purge_apply import apply_part
from crmsync.config import Config
from crmsync.connections import open_session
from crmsync.errors import ConfigError, ConnectorError, GuardError
from crmsync.hookspecs import ConnectorSession, ModuleInfo, RecordResult, StatusChange
from crmsync.plans.model import (
    APPLIED,
    DONE,
    DRIFT,
    FAILED,
    GONE,
    PENDING,
    SENDING,
    TARGET_STATUS,
    PlanInfo,
    PlanItem,
    PlanPolicy,
)
from crmsync.plans.planner import config_hash, iso
from crmsync.plans.restore import restored_fields
from crmsync.plugins import PluginRegistry
from crmsync.policy import actions
from crmsync.pull import pull_module, select_modules
from crmsync.store import Store

if TYPE_CHECKING:
    from crmsync.snapshots.prechange import PreChangeSnapshots

RETRIES = 2  # extra attempts for records the CRM reports as retryable


class PlanError(ConfigError):
    """Unknown, expired or mismatched plan: bad input (exit 2)."""


@dataclass
class ApplyResult:
    plan_id: str
    run_id: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # policy -> state -> n
    api_calls: int = 0
    snapshot_ids: list[str] = field(default_factory=list)
    status: str = ""

    def add(self, policy: str, state: str, n: int = 1) -> None:
        bucket = self.counts.setdefault(policy, {})
        bucket[state] = bucket.get(state, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan_id,
            "run": self.run_id,
            "status": self.status,
            "policies": self.counts,
            "write_calls": self.api_calls,
            "snapshots": self.snapshot_ids,
        }


def four_eyes(plan: PlanInfo) -> bool:
    """Plans that delete for good (a purge, an erasure) are approved by someone other than their
    maker, whatever ``[plans] allow_self_approval`` says: that switch is for reversible changes."""
    return plan.kind in ("purge", "erasure") or any(p.action == "purge" for p in plan.policies)


def check_plan(plan: PlanInfo | None, plan_id: str, config: Config, now: datetime) -> PlanInfo:
    """Refuse what must not be applied: unknown/expired/other-config (2), guards/approval (3)."""
    if plan is None:
        raise PlanError(f"no plan {plan_id!r}; `crmsync plans` lists them", path="PLAN_ID")
    if plan.status not in (APPLIED, "applying") and iso(now) >= plan.expires_at:
        raise PlanError(
            f"plan {plan_id} expired at {plan.expires_at}; make a new one with `crmsync plan`",
            path="PLAN_ID",
        )
    if plan.config_hash != config_hash(config):
        raise PlanError(
            f"plan {plan_id} was made under a different config (connections or policies "
            "changed since); make a new plan",
            path="PLAN_ID",
        )
    for policy in plan.policies:
        if policy.guard:
            raise GuardError(
                f"policy {policy.policy!r}: blast radius exceeded ({policy.guard}); "
                "nothing was changed. Narrow the filter or raise max_records/max_percent."
            )
    missing = unapproved(plan)
    if missing:
        raise GuardError(
            f"policy {missing[0].policy!r} requires approval: "
            f"`crmsync approve {plan_id}` by someone other than {plan.created_by}"
        )
    return plan


def unapproved(plan: PlanInfo) -> list[PlanPolicy]:
    """The parts of ``plan`` that still need an approval before apply: they require one, have
    records, and nobody who counts has approved (for :func:`four_eyes` plans not the maker)."""
    approvers = {a for a, _ in plan.approvals}
    if four_eyes(plan):
        approvers.discard(plan.created_by)
    if approvers:
        return []
    return [p for p in plan.policies if p.require_approval and p.matched]


def apply_plan(
    config: Config,
    registry: PluginRegistry,
    store: Store,
    plan_id: str,
    *,
    operator: str,
    now: datetime | None = None,
    on_batch: Callable[[str, int], None] | None = None,
) -> ApplyResult:
    now = now or datetime.now(UTC)
    plan = check_plan(store.get_plan(plan_id), plan_id, config, now)
    if plan.kind == "erasure":  # its own path: crmsync.compliance.erasure_apply
        raise PlanError(
            f"plan {plan_id} is an erasure plan; apply it with `crmsync erase --apply {plan_id}`",
            path="PLAN_ID",
        )
    run_id = store.start_run("apply", None, None)
    result = ApplyResult(plan_id, run_id)
    from crmsync.snapshots.prechange import PreChangeSnapshots  # numpy: only when applying

    copies = PreChangeSnapshots(config.snapshots, store)
    store.set_plan_status(
        plan_id, "applying", AuditEntry("apply.start", operator, plan_id=plan_id, run_id=run_id)
    )
    by_module: dict[tuple[str, str], list[PlanPolicy]] = defaultdict(list)
    for policy in plan.policies:
        if policy.matched:
            by_module[(policy.connection, policy.module)].append(policy)
    try:
        for (connection, module), policies in by_module.items():
            session = open_session(config, registry, connection)
            try:
                _apply_module(
                    config,
                    session,
                    store,
                    copies,
                    plan,
                    connection,
                    module,
                    policies,
                    operator,
                    run_id,
                    result,
                    on_batch,
                    now,
                )
            finally:
                session.close()
    except BaseException as exc:
        store.finish_run(run_id, "failed", result.as_dict(), str(exc)[:500])
        raise
    remaining = store.count_plan_items(plan_id, states=(PENDING, SENDING))
    result.status = APPLIED if remaining == 0 else "partial"
    store.set_plan_status(
        plan_id,
        result.status if remaining == 0 else "applying",
        AuditEntry(
            "apply.finish",
            operator,
            plan_id=plan_id,
            run_id=run_id,
            outcome="ok" if remaining == 0 else "failed:incomplete",
            detail={"policies": result.counts},
        ),
    )
    store.finish_run(run_id, "ok", result.as_dict())
    return result


def _apply_module(
    config: Config,
    session: ConnectorSession,
    store: Store,
    copies: PreChangeSnapshots,
    plan: PlanInfo,
    connection: str,
    module: str,
    policies: Sequence[PlanPolicy],
    operator: str,
    run_id: int,
    result: ApplyResult,
    on_batch: Callable[[str, int], None] | None,
    now: datetime,
) -> None:
    info = select_modules(session, connection, [module])[0]
    # 1. refresh the mirror from the CRM (cheap: incremental)
    pull_module(session, store, connection, info)
    for policy in policies:
        if policy.action in COMPLIANCE_ACTIONS:  # purge / restrict: verified snapshot first
            apply_part(
                config, session, store, copies, plan, info, policy, operator, run_id, result,
                on_batch, now,
            )  # fmt: skip
            continue
        target = TARGET_STATUS.get(policy.action)  # None: a field write (tag, update)
        operation = connector_operation(policy)
        if operation not in info.actions:
            raise ConnectorError(
                f"policy {policy.policy!r}: the connector has no {operation!r} operation "
                "configured for this module",
                connection=connection,
                module=module,
            )
        audit = _Auditor(plan.id, policy, operator, run_id)
        # 2. recover records that were in flight when a previous apply stopped
        with store.transaction() as tx:
            for item in store.plan_items(plan.id, policy.policy, states=(SENDING,)):
                current = store.get_record(connection, module, item.record_id)
                confirmed = current is not None and _already_written(info, policy, current, item)
                tx.set_item_state(item, DONE if confirmed else PENDING)
                if confirmed:
                    after = target or item.before_status
                    tx.append_audit([audit.entry(item, after, "ok", recovered=True)])
                    result.add(policy.policy, DONE)
        # 3. drift and deletions: the store finds them in SQL, a bounded batch at a time
        last = ""
        while drifted := store.drifted_plan_items(plan.id, policy.policy, after=last):
            with store.transaction() as tx:
                for item, gone in drifted:
                    state, why = (GONE, "skipped:gone") if gone else (DRIFT, "skipped:drift")
                    tx.set_item_state(item, state, error=why)
                    tx.append_audit([audit.entry(item, item.before_status, why)])
                    result.add(policy.policy, state)
            last = drifted[-1][0].record_id
        # 4. snapshot what is about to change, before any write
        snapshot_id = copies.take(plan.id, policy.policy, connection, module, run_id, operator)
        if snapshot_id:
            result.snapshot_ids.append(snapshot_id)
            audit.snapshot_id = snapshot_id
        # 5. push in batches
        batch_size = session.limits().batch_size
        last = ""  # keyset: items are taken in record id order, each query starts past the last
        while True:
            batch = store.plan_items(
                plan.id, policy.policy, states=(PENDING,), limit=batch_size, after=last
            )
            if not batch:
                break
            last = batch[-1].record_id
            with store.transaction() as tx:
                for item in batch:
                    tx.set_item_state(item, SENDING)
            changes = [_change(store, copies, info, policy, item) for item in batch]
            results = _push_with_retries(session, module, changes, result)
            by_id = {r.record_id: r for r in results}
            with store.transaction() as tx:
                entries = []
                for item in batch:
                    outcome = by_id.get(item.record_id) or RecordResult(
                        item.record_id, False, "NO_RESULT"
                    )
                    if outcome.ok:
                        after = target or item.before_status
                        tx.set_status(
                            connection,
                            module,
                            item.record_id,
                            after,
                            modified_at=_normalised_time(outcome.modified_at),
                        )
                        tx.set_item_state(item, DONE)
                        entries.append(audit.entry(item, after, "ok"))
                        result.add(policy.policy, DONE)
                    else:
                        code = outcome_code(outcome.error)
                        tx.set_item_state(item, FAILED, error=code)
                        entries.append(audit.entry(item, item.before_status, f"failed:{code}"))
                        result.add(policy.policy, FAILED)
                tx.append_audit(entries)
            if on_batch:
                on_batch(policy.policy, len(batch))


def connector_operation(policy: PlanPolicy) -> str:
    """The connector operation that carries out a plan policy's action (classify: tag/update)."""
    action = actions.registry.get(policy.action)
    return action.operation(policy.params) if action is not None else policy.action


def _already_written(info: ModuleInfo, policy: PlanPolicy, current: Any, item: PlanItem) -> bool:
    """Does the CRM (as just pulled) already show this policy's change? Used for records that
    were in flight when an apply stopped, so they are not written twice."""
    target = TARGET_STATUS.get(policy.action)
    if target is not None:
        return info.status_field is not None and current.status == target
    if item.fields is not None:  # values computed per record (normalize, classify)
        return all(current.data.get(k) == v for k, v in item.fields.items())
    if policy.action == "update":
        if policy.params.get("restore_data"):
            return False  # a revert: written again if in doubt (the same values, harmless)
        fields = policy.params.get("fields") or {}
        return all(current.data.get(k) == v for k, v in fields.items())
    if policy.action == "tag":
        tags = current.data.get("tags")
        return isinstance(tags, list) and set(policy.params.get("tags") or ()) <= set(tags)
    return False


def _change(
    store: Store, copies: PreChangeSnapshots, info: ModuleInfo, policy: PlanPolicy, item: PlanItem
) -> StatusChange:
    if item.fields is not None:  # computed for this record at plan time
        return StatusChange(item.record_id, connector_operation(policy), dict(item.fields))
    fields = dict(policy.params.get("fields") or {})
    if policy.action == "tag":
        fields["tags"] = list(policy.params.get("tags") or ())
    data = None
    if policy.params.get("restore_data") and item.source_hash:
        copy = copies.copy(item.source_hash)
        current = store.get_record(item.connection, item.module, item.record_id)
        skip = [f for f in (info.id_field, info.modified_field, info.status_field) if f]
        fields.update(restored_fields(copy, dict(current.data) if current else {}, skip))
        data = copy
    return StatusChange(item.record_id, policy.action, fields, data)


def _push_with_retries(
    session: ConnectorSession,
    module: str,
    changes: Sequence[StatusChange],
    result: ApplyResult,
) -> list[RecordResult]:
    todo = list(changes)
    final: dict[str, RecordResult] = {}
    for attempt in range(RETRIES + 1):
        result.api_calls += 1
        answers = session.push(module, todo)
        retry = []
        for answer in answers:
            final[answer.record_id] = answer
            if not answer.ok and answer.retryable and attempt < RETRIES:
                retry.append(answer.record_id)
        todo = [c for c in todo if c.record_id in set(retry)]
        if not todo:
            break
    return list(final.values())


def _normalised_time(value: str | None) -> str | None:
    """A RecordResult's modified time in the mirror's form (ISO-8601 UTC ``Z``), or None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    form = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(form)


class _Auditor:
    def __init__(self, plan_id: str, policy: PlanPolicy, operator: str, run_id: int):
        self.plan_id, self.policy, self.operator, self.run_id = plan_id, policy, operator, run_id
        self.snapshot_id: str | None = None

    def entry(
        self, item: PlanItem, after: str, outcome: str, *, recovered: bool = False
    ) -> AuditEntry:
        return AuditEntry(
            action=self.policy.action,
            operator=self.operator,
            outcome=outcome,
            connection=item.connection,
            module=item.module,
            record_id=item.record_id,
            before_status=item.before_status,
            after_status=after,
            plan_id=self.plan_id,
            run_id=self.run_id,
            snapshot_id=item.snapshot_id or self.snapshot_id,
            policy=self.policy.policy,
            detail={
                **audit_detail(item),
                **({"recovered_after_interruption": True} if recovered else {}),
            },
        )


def audit_detail(item: PlanItem) -> dict[str, Any]:
    """What the audit log keeps of an item's plan detail: the survivor of a duplicate cluster
    (it names the cluster: every record voided for it has the same survivor) and the names of
    fields written. Never field values (the log keeps none: crmsync.audit.model) and no digest
    of a cluster's key either: the key is often an e-mail or phone, an unsalted digest of it can
    be reversed by guessing, and the append-only log could not drop it on erasure."""
    detail = item.detail or {}
    out: dict[str, Any] = {}
    if "survivor" in detail:
        out["survivor"] = detail["survivor"]
    if item.fields:
        out["fields"] = sorted(item.fields)
    return out
