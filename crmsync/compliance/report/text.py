"""The compliance report as a few tables (rich on a terminal, tab-separated otherwise)."""

from __future__ import annotations

import click

from crmsync.compliance.report.document import utc
from crmsync.compliance.report.model import ComplianceReport, HoldRow
from crmsync.ui import print_table


def print_report(report: ComplianceReport) -> None:
    a = report.audit
    chain = (
        f"verified, {a.entries} entries, head {a.head_seq} {(a.head_hash or '')[:16]}"
        if a.ok
        else f"BROKEN: {a.problem}"
    )
    click.echo(f"crmsync compliance report, {utc(report.now)}")
    click.echo(f"period: {utc(report.since)} .. {utc(report.until)}")
    if report.connection:
        click.echo(f"connection: {report.connection}")
    click.echo(f"audit chain: {chain}")
    if report.findings:
        click.echo(f"\nfindings ({len(report.findings)}):")
        for f in report.findings:
            click.echo(f"  - {f.message}")
    else:
        click.echo("\nfindings: none")
    click.echo()
    print_table(
        f"active legal holds ({len(report.active_holds)})",
        ("id", "scope", "reason", "by", "since", "expires", "records now"),
        [(*_hold(h), _covered(h)) for h in report.active_holds],
    )
    if report.released_holds:
        print_table(
            f"holds released or expired in the period ({len(report.released_holds)})",
            ("id", "scope", "reason", "by", "since", "ended", "released by", "why"),
            [
                (*_hold(h)[:5], h.ended(), h.released_by, h.release_reason)
                for h in report.released_holds
            ],
        )
    print_table(
        f"retention (nearing: within {report.nearing_days} days)",
        ("module", "rule", "voided after", "archived max", "floor", "live", "voided",
         "purgeable now", "blocked", "to restrict", "archived past max", "nearing", "restricted"),
        [
            (f"{r.connection}/{r.module}", r.rule or "(none)", r.purge_voided_after,
             r.purge_archived_after, f"{r.keep_at_least} {r.keep_basis}" if r.keep_at_least
             else "", r.live, r.voided, r.purgeable, r.blocked, r.blocked_unrestricted,
             r.archived_past_maximum, r.nearing, r.restricted)
            for r in report.retention
        ],
    )  # fmt: skip
    groups = [(r, g) for r in report.retention for g in r.restricted_groups]
    if groups:
        print_table(
            "restricted records",
            ("module", "reason", "records", "since", "until"),
            [
                (f"{r.connection}/{r.module}", g.reason, g.records, (g.since or "")[:19],
                 g.until or "released")
                for r, g in groups
            ],
        )  # fmt: skip
    print_table(
        f"purges, erasures and restrictions in the period ({report.activity_plans} plan(s))",
        ("plan", "kind", "action", "module", "basis", "done", "failed", "skipped", "first",
         "last", "planned by", "approved by", "applied by"),
        [
            (a.plan_id, a.kind, a.action, f"{a.connection}/{a.module}", a.basis, a.done, a.failed,
             a.skipped, a.first[:19], a.last[:19], a.planned_by, ", ".join(a.approved_by),
             ", ".join(a.applied_by))
            for a in report.activity
        ],
    )  # fmt: skip
    if report.activity_plans > len({a.plan_id for a in report.activity}):
        click.echo(f"  ... {report.activity_plans} plans in all (--limit, --json)")
    if report.open_plans_total:
        print_table(
            f"purge and erasure plans not carried out ({report.open_plans_total})",
            ("plan", "kind", "status", "records", "by", "created", "expires", "approved by"),
            [
                (p.id, p.kind, "expired" if p.expired else p.status, p.records, p.created_by,
                 p.created_at, p.expires_at, ", ".join(p.approved_by))
                for p in report.open_plans
            ],
        )  # fmt: skip
        _more(report.open_plans_total, len(report.open_plans))
    if report.erased_total:
        print_table(
            f"erased records ({report.erased_total}; record_ref = sha256 of the id)",
            ("time", "plan", "module", "record_ref"),
            [
                (e.time[:19], e.plan_id, f"{e.connection}/{e.module}", e.record_ref)
                for e in report.erased_refs
            ],
        )
        _more(report.erased_total, len(report.erased_refs))
    s = report.snapshots
    if not s.available:
        click.echo(f"\nsnapshots: {s.problem}")
        return
    click.echo(
        f"\nsnapshots: {s.total} in {s.repository}; {s.overdue} older than policy, {s.held} held"
        f" (snapshots_max_age {s.max_age or 'unset'}; [snapshots.keep] "
        f"{', '.join(f'{k}={v}' for k, v in s.keep.items()) or 'unset'})"
    )
    if s.rows:
        print_table(
            None,
            ("id", "time", "connection", "modules", "scope", "state", "why"),
            [
                (x.id[:12], x.time[:19], x.connection, ",".join(x.modules), x.scope, x.state,
                 x.reason)
                for x in s.rows
            ],
        )  # fmt: skip
        _more(s.overdue + s.held, len(s.rows))


def _hold(h: HoldRow) -> tuple[object, ...]:
    return (h.id, h.scope, h.reason, h.created_by, h.created_at[:19], (h.expires_at or "")[:19])


def _covered(h: HoldRow) -> object:
    return ", ".join(x[:12] for x in h.snapshots) if h.records is None else h.records


def _more(total: int, shown: int) -> None:
    if total > shown:
        click.echo(f"  ... and {total - shown} more (--limit)")
