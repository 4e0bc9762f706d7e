"""Gather the compliance report: holds, retention, purges and erasures, snapshots, findings.

Everything is counted by the store (:mod:`crmsync.store.sqlite_compliance`): one pass over
each mirrored module for all of its retention and hold figures, GROUP BYs over the audit log
for the period; lists are cut at ``limit`` while their counts stay complete. The retention
conditions are the purge planner's (:func:`crmsync.compliance.purge.conditions`), so the
report says exactly what ``crmsync purge`` would do now.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.audit.verify import verify_store
from crmsync.compliance import holds
from crmsync.compliance.purge import conditions
from crmsync.compliance.report.document import utc as utc_text
from crmsync.compliance.report.model import (
    AuditStatus,
    ComplianceReport,
    Finding,
    HoldRow,
    OpenPlan,
    PlanActivity,
    ReportOptions,
    RetentionRow,
    SnapshotRow,
    SnapshotSection,
)
from crmsync.compliance.retention import (
    RetentionConfig,
    RetentionRule,
    retention_of,
    sql_time,
    status_clock_sql,
)
from crmsync.errors import CrmsyncError
from crmsync.store import Store

DEFAULT_PERIOD = timedelta(days=90)
ACTIONS = ("purge", "erase", "restrict")
OPEN_KINDS = ("purge", "erasure")


def build_compliance_report(config: Any, store: Store, options: ReportOptions) -> ComplianceReport:
    """The report as of ``options.now`` (default: the clock). ``config``: the loaded
    :class:`~crmsync.config.Config` (its connections, ``[retention]`` and ``[snapshots]``)."""
    now = options.now or datetime.now(UTC)
    until = options.until or now
    since = options.since or until - DEFAULT_PERIOD
    retention = retention_of(config)
    with store.bulk_reads():
        return _build(config, store, options, now, since, until, retention)


def _build(
    config: Any,
    store: Store,
    options: ReportOptions,
    now: datetime,
    since: datetime,
    until: datetime,
    retention: RetentionConfig,
) -> ComplianceReport:
    result = verify_store(store)
    report = ComplianceReport(
        now=now,
        since=since,
        until=until,
        connection=options.connection,
        limit=options.limit,
        nearing_days=options.nearing_days,
        audit=AuditStatus(
            result.ok,
            result.entries,
            result.head_seq,
            result.head_hash,
            result.problem.message if result.problem else None,
        ),
    )
    every = holds.list_holds(store, include_released=True)
    active = [h for h in every if h.active(now) and _in_scope(h, options.connection)]
    covered = _modules(report, store, retention, active, now)
    report.active_holds = [_hold_row(h, covered.get(h.id)) for h in active]
    report.released_holds = [
        _hold_row(h, None) for h in every if _ended(h, since, until, options.connection)
    ]
    _activity(report, store)
    report.snapshots = _snapshots(config, store, retention, options.connection, now, options.limit)
    report.findings = findings(report)
    return report


def _ended(hold: holds.Hold, since: datetime, until: datetime, connection: str | None) -> bool:
    """Released in [since, until), or expired then without being released."""
    end = min((t for t in (hold.released_at, hold.expires_at) if t), default=None)
    return (
        end is not None
        and holds.stamp(since) <= end < holds.stamp(until)
        and _in_scope(hold, connection)
    )


def _in_scope(hold: holds.Hold, connection: str | None) -> bool:
    return connection is None or hold.connection in (None, connection)


def _hold_row(hold: holds.Hold, records: int | None) -> HoldRow:
    return HoldRow(
        id=hold.id,
        kind=hold.kind,
        scope=scope_text(hold),
        reason=hold.reason,
        created_by=hold.created_by,
        created_at=hold.created_at,
        expires_at=hold.expires_at,
        records=None if hold.kind == "snapshots" else (records or 0),
        snapshots=tuple(hold.spec.get("snapshots", ())),
        released_at=hold.released_at,
        released_by=hold.released_by,
        release_reason=hold.release_reason,
    )


def scope_text(hold: holds.Hold) -> str:
    """The hold's scope as :meth:`~crmsync.compliance.holds.Hold.scope_text` says it, except
    a filter's values (an e-mail, a name) stay out: the fields it reads are named instead."""
    if hold.kind != "filter":
        return hold.scope_text()
    fields = sorted(set(_filter_fields(hold.spec.get("filter"))))
    where = "/".join(p for p in (hold.connection, hold.module) if p)
    return f"filter on {', '.join(fields) or 'the record'} in {where}"


def _filter_fields(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["field"])] if isinstance(node.get("field"), str) else []
        return own + [f for value in node.values() for f in _filter_fields(value)]
    if isinstance(node, list):
        return [f for value in node for f in _filter_fields(value)]
    return []


# --------------------------------------------------------------------------- retention


def _rule_name(rule: RetentionRule) -> str:
    return f"{rule.connection}/{rule.module or '*'}"


def _modules(
    report: ComplianceReport,
    store: Store,
    retention: RetentionConfig,
    active: Sequence[holds.Hold],
    now: datetime,
) -> dict[str, int]:
    """Fill ``report.retention`` (one row per mirrored module); return the live records each
    active hold covers now."""
    covered: dict[str, int] = {}
    for counted in store.module_counts(report.connection):
        c, m = counted.connection, counted.module
        rule = retention.rule_for(c, m)
        row = RetentionRow(
            c, m, _rule_name(rule) if rule else None,
            rule.text("purge_voided_after") or None if rule else None,
            rule.text("purge_archived_after") or None if rule else None,
            rule.text("keep_at_least") or None if rule else None,
            rule.keep_basis if rule else None,
            rule.purge_basis if rule else None,
            live=counted.live,
        )  # fmt: skip
        named: list[tuple[str, tuple[str, list[Any]]]] = [
            ("voided", ("status = 'voided'", [])),
            ("restricted", ("restricted_at IS NOT NULL", [])),
        ]
        if rule is not None:
            cond = conditions(rule, active, c, m, now)
            due, blocked = cond.due, cond.blocked
            named += [
                ("purgeable", (f"{due[0]} AND NOT {blocked[0]}", [*due[1], *blocked[1]])),
                ("blocked", (f"{due[0]} AND {blocked[0]}", [*due[1], *blocked[1]])),
                (
                    "blocked_unrestricted",
                    (
                        f"restricted_at IS NULL AND {due[0]} AND {blocked[0]}",
                        [*due[1], *blocked[1]],
                    ),
                ),
            ]
            if cond.archived_due is not None:
                named.append(("archived_past_maximum", cond.archived_due))
            if rule.purge_voided_after is not None:
                cutoff = now - rule.purge_voided_after
                soon = cutoff + timedelta(days=report.nearing_days)
                clock = status_clock_sql()
                named.append(
                    (
                        "nearing",
                        (
                            f"status = 'voided' AND {clock} > ? AND {clock} <= ?",
                            [sql_time(cutoff), sql_time(soon)],
                        ),
                    )
                )
        hold_ids = []
        for hold in active:
            if hold.kind == "snapshots":
                continue
            sql, params = holds.held_sql([hold], c, m, now)
            if sql != "0":
                named.append((f"hold:{hold.id}", (sql, params)))
                hold_ids.append(hold.id)
        counts = store.mirror_condition_counts(c, m, [q for _, q in named])
        for (name, _), n in zip(named, counts, strict=True):
            if name.startswith("hold:"):
                covered[name[5:]] = covered.get(name[5:], 0) + n
            else:
                setattr(row, name, n)
        if row.restricted:
            row.restricted_groups = store.restricted_groups(c, m, report.limit)
        report.retention.append(row)
    return covered


# --------------------------------------------------------------------------- audit activity


def _activity(report: ComplianceReport, store: Store) -> None:
    since, until = holds.stamp(report.since), holds.stamp(report.until)
    by_key: dict[tuple[Any, ...], PlanActivity] = {}
    for g in store.audit_groups(ACTIONS, since, until, report.connection):
        key = (g.plan_id, g.action, g.connection, g.module, g.basis)
        act = by_key.get(key)
        if act is None:
            act = by_key[key] = PlanActivity(
                g.plan_id, "other", g.action, g.connection, g.module, g.basis, first=g.first
            )
        if g.outcome == "ok":
            act.done += g.entries
        elif g.outcome.startswith("failed"):
            act.failed += g.entries
        else:
            act.skipped += g.entries
        act.first, act.last = min(act.first, g.first), max(act.last, g.last)
        if g.operator not in act.applied_by:
            act.applied_by.append(g.operator)
    plans = list(dict.fromkeys(a.plan_id for a in by_key.values()))
    report.activity_plans = len(plans)
    shown = set(plans[: report.limit])
    infos = {pid: store.get_plan(pid) for pid in shown if pid}
    for act in by_key.values():
        if act.plan_id not in shown:
            continue
        info = infos.get(act.plan_id) if act.plan_id else None
        if info is not None:
            act.kind = info.kind
            act.planned_by = info.created_by
            act.approved_by = [who for who, _ in info.approvals]
        report.activity.append(act)
    report.erased_refs, report.erased_total = store.erased_refs(
        since, until, report.limit, report.connection
    )
    ids, report.open_plans_total = store.open_plan_ids(OPEN_KINDS, report.limit)
    for pid in ids:
        plan = store.get_plan(pid)
        if plan is None or (
            report.connection is not None
            and all(p.connection != report.connection for p in plan.policies)
        ):
            continue
        report.open_plans.append(
            OpenPlan(
                plan.id, plan.kind, plan.status, plan.created_by, plan.created_at,
                plan.expires_at, [who for who, _ in plan.approvals],
                sum(p.matched for p in plan.policies),
                plan.expires_at <= utc_text(report.now),
            )
        )  # fmt: skip


# --------------------------------------------------------------------------- snapshots


def _snapshots(
    config: Any,
    store: Store,
    retention: RetentionConfig,
    connection: str | None,
    now: datetime,
    limit: int,
) -> SnapshotSection:
    """Snapshots ``snapshot forget`` would drop now ([snapshots.keep], then [retention]
    snapshots_max_age, as :mod:`crmsync.unattended.maintenance` applies them), and those a
    legal hold keeps (listed as held, never as overdue)."""
    from crmsync.snapshots.configured import open_configured, repository_exists

    settings = config.snapshots
    section = SnapshotSection(
        str(settings.repository), False, max_age=retention.snapshots_max_age_text,
        keep=dict(settings.keep),
    )  # fmt: skip
    try:
        if not repository_exists(settings):
            section.problem = f"no snapshot repository at {settings.repository}"
            return section
        snaps = [s for s in open_configured(settings).list() if connection in (None, s.connection)]
    except (CrmsyncError, OSError, ValueError) as exc:
        section.problem = f"the snapshot repository could not be read: {exc}"
        return section
    try:
        verdicts = _keep_verdicts(settings.keep, snaps)
    except (TypeError, ValueError) as exc:
        section.problem = f"[snapshots.keep] cannot be applied: {exc}"
        return section
    section.available, section.total = True, len(snaps)
    held = holds.held_snapshots(store, now)
    rows = []
    for s in sorted(snaps, key=lambda s: s.time):
        hold = next((h for prefix, h in held.items() if s.id.startswith(prefix)), None)
        taken = datetime.fromisoformat(s.time.replace("Z", "+00:00"))
        taken = taken if taken.tzinfo else taken.replace(tzinfo=UTC)
        why = []
        if not verdicts.get(s.id, True):
            why.append("not kept by [snapshots.keep]")
        if retention.snapshots_max_age is not None and taken < now - retention.snapshots_max_age:
            why.append(f"older than snapshots_max_age {retention.snapshots_max_age_text}")
        if hold is not None:
            section.held += 1
            reason = f"legal hold {hold.id}" + (f" (otherwise: {'; '.join(why)})" if why else "")
            rows.append(SnapshotRow(s.id, s.time, s.connection, s.modules, s.scope, "held", reason))
        elif why:
            section.overdue += 1
            rows.append(
                SnapshotRow(
                    s.id, s.time, s.connection, s.modules, s.scope, "overdue", "; ".join(why)
                )
            )
    section.rows = rows[:limit]
    return section


def _keep_verdicts(keep: dict[str, Any], snaps: Sequence[Any]) -> dict[str, bool]:
    """``[snapshots.keep]``'s verdict on each whole snapshot (pre-change copies are not its
    business), grouped by (connection, modules) as ``crmsync run``'s retention groups them."""
    from crmsync.snapshots.retention import KeepPolicy, SnapshotRef, apply_policy

    settings = dict(keep)
    if "tags" in settings:
        settings["tags"] = tuple(settings["tags"])
    policy = KeepPolicy(**settings)
    if policy.empty():
        return {}
    refs = [
        SnapshotRef(s.id, datetime.fromisoformat(s.time), s.tags, (s.connection, s.modules))
        for s in snaps
        if s.scope != "selection"
    ]
    return {d.snapshot.id: d.keep for d in apply_policy(refs, policy)} if refs else {}


# --------------------------------------------------------------------------- findings


def findings(report: ComplianceReport) -> list[Finding]:
    """What needs action, most serious first. A report with none is clean."""
    out: list[Finding] = []
    if not report.audit.ok:
        out.append(Finding("audit-chain-broken", f"audit chain broken: {report.audit.problem}"))
    for r in report.retention:
        where = f"{r.connection}/{r.module}"
        if r.purgeable:
            out.append(Finding(
                "purge-due",
                f"{r.purgeable} voided {where} record(s) past retention"
                f" ({r.purge_voided_after}) not purged: crmsync purge --connection"
                f" {r.connection} --module {r.module}",
                r.purgeable, r.connection, r.module,
            ))  # fmt: skip
        if r.blocked_unrestricted:
            out.append(Finding(
                "restrict-due",
                f"{r.blocked_unrestricted} voided {where} record(s) past retention but held or"
                " inside the statutory minimum, not yet restricted: crmsync purge restricts them",
                r.blocked_unrestricted, r.connection, r.module,
            ))  # fmt: skip
        if r.archived_past_maximum:
            out.append(Finding(
                "maximum-exceeded",
                f"{r.archived_past_maximum} archived {where} record(s) past their maximum"
                f" ({r.purge_archived_after}): to be voided, then purged",
                r.archived_past_maximum, r.connection, r.module,
            ))  # fmt: skip
    horizon = report.now + timedelta(days=report.nearing_days)
    for h in report.active_holds:
        if h.expires_at and h.expires_at <= holds.stamp(horizon):
            ends = datetime.fromisoformat(h.expires_at.replace("Z", "+00:00"))
            days = max(0, math.ceil((ends - report.now).total_seconds() / 86400))
            out.append(Finding(
                "hold-expiring",
                f"hold {h.id} expires in {days} day(s) ({h.expires_at[:10]}): extend it with a"
                " new hold or let it end", ref=h.id,
            ))  # fmt: skip
    for a in report.activity:
        if a.failed:
            out.append(Finding(
                f"{a.action}-failed",
                f"{a.failed} {a.action} of plan {a.plan_id} ({a.connection}/{a.module}) failed:"
                f" crmsync plans show {a.plan_id}",
                a.failed, a.connection, a.module, a.plan_id,
            ))  # fmt: skip
    for p in report.open_plans:
        apply = f"crmsync erase --apply {p.id}" if p.kind == "erasure" else f"crmsync apply {p.id}"
        what = f"{p.kind} plan {p.id} ({p.records} record(s), by {p.created_by}"
        what += f" {p.created_at[:10]})"
        if p.expired and p.kind == "erasure":
            text = f"{what} expired {p.expires_at[:10]} unapplied: the request is not carried"
            text += " out; plan it again"
        elif p.expired:
            continue  # the next purge plans again
        elif p.status == "applying":
            text = f"{what} was left part-way: {apply} finishes it"
        elif p.approved_by:
            text = f"{what} approved by {', '.join(p.approved_by)}, not applied: {apply}"
        else:
            text = f"{what} waits for a second person's approval: crmsync approve {p.id}"
        out.append(Finding(f"{p.kind}-open", text, p.records, ref=p.id))
    snaps = report.snapshots
    if snaps.overdue:
        out.append(Finding(
            "snapshots-overdue",
            f"{snaps.overdue} snapshot(s) older than policy still in the repository:"
            " crmsync snapshot forget --prune",
            snaps.overdue,
        ))  # fmt: skip
    if snaps.problem and not snaps.problem.startswith("no snapshot repository"):
        out.append(Finding("snapshots-unreadable", snaps.problem))
    return out
