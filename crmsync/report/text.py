"""The report as a few compact tables (rich on a terminal, tab-separated otherwise): one row per
module (or per module and field), whatever the number of records."""

from __future__ import annotations

from typing import Any

import click

from crmsync.report.model import AGE_BUCKETS, LIFECYCLE_STATUSES, ModuleReport, Report
from crmsync.ui import print_table

SHOWN_VALUES = 5  # category values per row; the JSON and HTML reports show --top


def print_report(report: Report) -> None:
    if not report.modules:
        where = ", ".join(report.connections) or "the mirror"
        click.echo(f"nothing mirrored yet for {where}; run `crmsync pull` first")
        return
    modules = report.modules
    extra = sorted({s for m in modules for s in m.status} - set(LIFECYCLE_STATUSES))
    print_table(
        "records by lifecycle status",
        ("module", "records", *LIFECYCLE_STATUSES, *extra, "deleted in CRM", "in use"),
        [
            (_where(m), m.records, *(m.status.get(s, 0) for s in (*LIFECYCLE_STATUSES, *extra)),
             m.deleted_in_crm, m.in_use)
            for m in modules
        ],
    )  # fmt: skip
    print_table(
        f"records in use by age of their {report.stale_field} time",
        ("module", *(b.label for b in AGE_BUCKETS), "no time"),
        [(_where(m), *(b.records for b in m.stale.buckets), m.stale.unknown) for m in modules],
    )
    print_table(
        "categories (records in use; tags counted per tag)",
        ("module", "field", "top values", "none", "distinct"),
        [
            (_where(m), c.field, _values(c.values, c.other), c.none, c.distinct)
            for m in modules
            for c in m.categories
        ],
    )
    print_table(
        "duplicate clusters (records in use sharing a normalised key)",
        ("module", "key", "normalised as", "clusters", "records", "surplus", "largest"),
        [
            (_where(m), d.key if d.field == d.key else f"{d.key}: {d.field}", d.mode, d.clusters,
             d.records, d.surplus, _values(d.largest[:3], 0))
            for m in modules
            for d in m.duplicates
        ],
    )  # fmt: skip
    print_table(
        "missing key fields (records in use with no value)",
        ("module", "field", "missing", "%"),
        [(_where(m), f.field, f.records, f"{f.percent:.1f}") for m in modules for f in m.missing],
    )


def _where(m: ModuleReport) -> str:
    return f"{m.connection}/{m.module}"


def _values(items: Any, other: int) -> str:
    shown = [f"{_one_line(v.value)} {v.records}" for v in items[:SHOWN_VALUES]]
    rest = sum(v.records for v in items[SHOWN_VALUES:]) + other
    if rest:
        shown.append(f"other {rest}")
    return ", ".join(shown)


def _one_line(value: Any) -> str:
    text = str(value)
    return " ".join(text.split()) if text.strip() else repr(text)
