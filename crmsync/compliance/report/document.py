"""The compliance report as one JSON document (``crmsync compliance report --json``). The
layout is documented in :mod:`crmsync.compliance.report`; keys are stable: new keys may be
added, none renamed or removed."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from crmsync.compliance.report.model import ComplianceReport, HoldRow

FORMAT = "crmsync-compliance-report/1"


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_document(report: ComplianceReport) -> dict[str, Any]:
    snaps = report.snapshots
    return {
        "format": FORMAT,
        "generated_at": utc(report.now),
        "period": {"since": utc(report.since), "until": utc(report.until)},
        "connection": report.connection,
        "limit": report.limit,
        "nearing_days": report.nearing_days,
        "audit_chain": asdict(report.audit),
        "holds": {
            "active": [_hold(h) for h in report.active_holds],
            "released": [_hold(h) for h in report.released_holds],
        },
        "retention": [
            {
                **{k: v for k, v in asdict(r).items() if k != "restricted_groups"},
                "restricted_reasons": [asdict(g) for g in r.restricted_groups],
            }
            for r in report.retention
        ],
        "activity": {
            "plans": report.activity_plans,
            "entries": [asdict(a) for a in report.activity],
            "erased": {
                "records": report.erased_total,
                "record_refs": [asdict(e) for e in report.erased_refs],
            },
        },
        "open_plans": {
            "total": report.open_plans_total,
            "plans": [asdict(p) for p in report.open_plans],
        },
        "snapshots": {
            "repository": snaps.repository,
            "available": snaps.available,
            "problem": snaps.problem,
            "max_age": snaps.max_age,
            "keep": dict(snaps.keep),
            "total": snaps.total,
            "overdue": snaps.overdue,
            "held": snaps.held,
            "listed": [{**asdict(s), "modules": list(s.modules)} for s in snaps.rows],
        },
        "findings": [asdict(f) for f in report.findings],
    }


def _hold(h: HoldRow) -> dict[str, Any]:
    return {**asdict(h), "snapshots": list(h.snapshots)}
