"""The report as one JSON document (``crmsync report --json``); the layout is documented in
:mod:`crmsync.report` and its keys are stable: new keys may be added, none renamed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from crmsync.report.model import (
    AGE_BUCKETS,
    IN_USE_STATUSES,
    ModuleReport,
    Report,
    ValueCount,
)

FORMAT = "crmsync-report/1"


def as_document(report: Report) -> dict[str, Any]:
    connections = []
    for name in report.connections:
        modules = [m for m in report.modules if m.connection == name]
        connections.append({"connection": name, "modules": [_module(m) for m in modules]})
    return {
        "format": FORMAT,
        "generated_at": report.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stale_field": report.stale_field,
        "age_buckets": [{"label": b.label, "max_days": b.max_days} for b in AGE_BUCKETS],
        "in_use_statuses": list(IN_USE_STATUSES),
        "connections": connections,
        "totals": totals(report.modules),
    }


def totals(modules: Sequence[ModuleReport]) -> dict[str, Any]:
    status: dict[str, int] = {}
    for m in modules:
        for key, n in m.status.items():
            status[key] = status.get(key, 0) + n
    return {
        "modules": len(modules),
        "records": sum(m.records for m in modules),
        "status": status,
        "deleted_in_crm": sum(m.deleted_in_crm for m in modules),
        "in_use": sum(m.in_use for m in modules),
    }


def _counts(items: Sequence[ValueCount], name: str) -> list[dict[str, Any]]:
    return [{name: item.value, "records": item.records} for item in items]


def _module(m: ModuleReport) -> dict[str, Any]:
    return {
        "module": m.module,
        "records": m.records,
        "status": dict(m.status),
        "deleted_in_crm": m.deleted_in_crm,
        "in_use": m.in_use,
        "categories": [
            {
                "field": c.field,
                "values": _counts(c.values, "value"),
                "other": c.other,
                "none": c.none,
                "distinct": c.distinct,
            }
            for c in m.categories
        ],
        "duplicates": [
            {
                "key": d.key,
                "field": d.field,
                "mode": d.mode,
                "clusters": d.clusters,
                "records": d.records,
                "surplus": d.surplus,
                "largest": _counts(d.largest, "key"),
            }
            for d in m.duplicates
        ],
        "stale": {
            "field": m.stale.field,
            "buckets": _counts(m.stale.buckets, "label"),
            "unknown": m.stale.unknown,
        },
        "missing": [
            {"field": f.field, "records": f.records, "percent": f.percent} for f in m.missing
        ],
    }
