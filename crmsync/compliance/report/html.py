"""The compliance report as one self-contained HTML page (``--html FILE``), for an auditor or
DPO: the styles, escaping and atomic write of :mod:`crmsync.report.html`, bars from
:mod:`crmsync.report.svg`. Every value (hold reasons, operators, module names) is escaped;
the page holds no record field values, only counts and record_ref digests."""

from __future__ import annotations

from collections.abc import Sequence

from crmsync import __version__
from crmsync.compliance.report.document import utc
from crmsync.compliance.report.model import ComplianceReport, HoldRow
from crmsync.report.html import CSS
from crmsync.report.svg import esc, hbars

EXTRA_CSS = """
section.part { background: #fff; border: 1px solid #e4e7eb; border-radius: 10px;
  margin: 20px 0; padding: 8px 20px 20px; overflow-x: auto; }
section.part h2 { font-size: 19px; margin: 12px 0 4px; }
.bad { color: #b91c1c; font-weight: 600; }
.good { color: #047857; font-weight: 600; }
ul.findings li { margin: 4px 0; }
"""


def render_html(report: ComplianceReport) -> str:
    generated = utc(report.now)
    a = report.audit
    chain = (
        f'<span class="good">verified</span> · {a.entries} entries · head {a.head_seq}'
        f" <code>{esc(a.head_hash or '')}</code>"
        if a.ok
        else f'<span class="bad">BROKEN</span>: {esc(a.problem)}'
    )
    body = [
        "<header>",
        '<h1>crmsync compliance report<span class="zh" lang="zh-CN">合规报告</span></h1>',
        f'<div class="muted">{esc(generated)} · period {esc(utc(report.since))} ..'
        f" {esc(utc(report.until))} · connection: {esc(report.connection or 'all')}"
        f" · crmsync {esc(__version__)}</div>",
        f"<p>Audit chain: {chain}</p>",
        '<div class="cards">',
        _card("findings", "待处理", len(report.findings)),
        _card("active holds", "有效保全", len(report.active_holds)),
        _card("purgeable now", "可清除", sum(r.purgeable for r in report.retention)),
        _card("restricted", "限制处理", sum(r.restricted for r in report.retention)),
        _card("erased in period", "已删除", report.erased_total),
        _card("snapshots overdue", "快照超期", report.snapshots.overdue),
        "</div></header><main>",
        _findings(report),
        _holds(report),
        _retention(report),
        _activity(report),
        _snapshots(report),
        '</main><footer class="muted">Counts only: no record field values, e-mails or phones.'
        " Erased records appear as record_ref = sha256 of the CRM id, as the audit log keeps"
        " them.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>crmsync compliance report {esc(generated)}</title>\n"
        f"<style>{CSS}{EXTRA_CSS}</style>\n</head>\n<body>\n{''.join(body)}\n</body>\n</html>\n"
    )


def _card(en: str, zh: str, value: object) -> str:
    return (
        f'<div class="card"><b>{esc(value)}</b>{esc(en)}'
        f'<span class="zh" lang="zh-CN">{esc(zh)}</span></div>'
    )


def _section(en: str, zh: str, inner: str) -> str:
    return (
        f'<section class="part"><h2>{esc(en)}<span class="zh" lang="zh-CN">{esc(zh)}</span>'
        f"</h2>{inner}</section>"
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: object) -> str:
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{esc('' if value is None else value)}</td>"


def _more(total: int, shown: int) -> str:
    if total <= shown:
        return ""
    return f'<p class="muted">… and {total - shown} more (raise --limit)</p>'


def _findings(report: ComplianceReport) -> str:
    if not report.findings:
        return _section("Findings", "待处理事项", '<p class="good">Nothing needs action.</p>')
    items = "".join(
        f"<li><code>{esc(f.code)}</code> {esc(f.message)}</li>" for f in report.findings
    )
    return _section("Findings", "待处理事项", f'<ul class="findings">{items}</ul>')


def _hold(h: HoldRow) -> list[object]:
    return [h.id, h.scope, h.reason, h.created_by, h.created_at[:19]]


def _holds(report: ComplianceReport) -> str:
    active = _table(
        ("id", "scope", "reason", "by", "since", "expires", "records now"),
        [
            [*_hold(h), (h.expires_at or "")[:19],
             ", ".join(h.snapshots) if h.records is None else h.records]
            for h in report.active_holds
        ],
        "no active legal holds",
    )  # fmt: skip
    released = _table(
        ("id", "scope", "reason", "by", "since", "ended", "released by", "why"),
        [[*_hold(h), h.ended(), h.released_by, h.release_reason] for h in report.released_holds],
        "none released or expired in the period",
    )
    ended = f"<h3>Released or expired in the period</h3>{released}"
    return _section("Legal holds", "法律保全", f"{active}{ended}")


def _retention(report: ComplianceReport) -> str:
    rows = [
        [f"{r.connection}/{r.module}", r.rule or "(none)", r.purge_voided_after,
         r.purge_archived_after, f"{r.keep_at_least} {r.keep_basis}" if r.keep_at_least else "",
         r.live, r.voided, r.purgeable, r.blocked, r.blocked_unrestricted,
         r.archived_past_maximum, r.nearing, r.restricted]
        for r in report.retention
    ]  # fmt: skip
    table = _table(
        ("module", "rule", "voided after", "archived max", "statutory floor", "live", "voided",
         "purgeable now", "blocked", "to restrict", "archived past max",
         f"nearing ({report.nearing_days} d)", "restricted"),
        rows,
        "nothing mirrored",
    )  # fmt: skip
    chart = hbars(
        [(f"{r.connection}/{r.module}", r.purgeable) for r in report.retention if r.purgeable],
        label="voided records past retention, purgeable now, per module",
        colour="#ef4444",
    )
    groups = _table(
        ("module", "reason", "records", "since", "until"),
        [
            [f"{r.connection}/{r.module}", g.reason, g.records, (g.since or "")[:19],
             g.until or "until released"]
            for r in report.retention
            for g in r.restricted_groups
        ],
        "no restricted records",
    )  # fmt: skip
    return _section("Retention", "保存期限", f"{table}{chart}<h3>Restricted records</h3>{groups}")


def _activity(report: ComplianceReport) -> str:
    table = _table(
        ("plan", "kind", "action", "module", "legal basis", "done", "failed", "skipped",
         "first", "last", "planned by", "approved by", "applied by"),
        [
            [a.plan_id, a.kind, a.action, f"{a.connection}/{a.module}", a.basis, a.done,
             a.failed, a.skipped, a.first[:19], a.last[:19], a.planned_by,
             ", ".join(a.approved_by), ", ".join(a.applied_by)]
            for a in report.activity
        ],
        "no purge, erasure or restriction in the period",
    )  # fmt: skip
    shown = len({a.plan_id for a in report.activity})
    refs = _table(
        ("time", "plan", "module", "record_ref (sha256 of the id)"),
        [
            [e.time[:19], e.plan_id, f"{e.connection}/{e.module}", e.record_ref]
            for e in report.erased_refs
        ],
        "no record erased in the period",
    )
    waiting = _table(
        ("plan", "kind", "status", "records", "by", "created", "expires", "approved by"),
        [
            [p.id, p.kind, "expired" if p.expired else p.status, p.records, p.created_by,
             p.created_at, p.expires_at, ", ".join(p.approved_by)]
            for p in report.open_plans
        ],
        "none",
    )  # fmt: skip
    return _section(
        "Purges and erasures", "清除与删除",
        f"{table}{_more(report.activity_plans, shown)}"
        f"<h3>Plans not carried out ({report.open_plans_total})</h3>{waiting}"
        f"{_more(report.open_plans_total, len(report.open_plans))}"
        f"<h3>Erased records ({report.erased_total})</h3>{refs}"
        f"{_more(report.erased_total, len(report.erased_refs))}",
    )  # fmt: skip


def _snapshots(report: ComplianceReport) -> str:
    s = report.snapshots
    if not s.available:
        return _section("Snapshots", "快照", f'<p class="muted">{esc(s.problem)}</p>')
    keep = ", ".join(f"{k}={v}" for k, v in s.keep.items()) or "unset"
    head = (
        f'<p class="muted">{s.total} snapshot(s) in {esc(s.repository)} · snapshots_max_age'
        f" {esc(s.max_age or 'unset')} · [snapshots.keep] {esc(keep)} · {s.overdue} older"
        f" than policy · {s.held} held</p>"
    )
    table = _table(
        ("id", "time", "connection", "modules", "scope", "state", "why"),
        [
            [x.id, x.time[:19], x.connection, ", ".join(x.modules), x.scope, x.state, x.reason]
            for x in s.rows
        ],
        "none older than policy, none held",
    )
    return _section("Snapshots", "快照", f"{head}{table}{_more(s.overdue + s.held, len(s.rows))}")
