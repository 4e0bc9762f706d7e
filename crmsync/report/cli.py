"""``crmsync report``: parse, gather (:mod:`crmsync.report.gather`), render.

Like ``crmsync.audit_cli``, the command finds the config and store through the click context
object, so it never imports crmsync.cli. Exit codes: 0 done; 1 the page could not be written;
2 bad usage (unknown connection or module, bad --now, an --html path in a missing directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from crmsync.report.gather import ReportUsageError, build_report
from crmsync.report.model import STALE_FIELDS, ReportOptions
from crmsync.ui import print_json


def _now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)", param_hint="--now"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fields(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    if not fields:
        raise click.BadParameter("name at least one field", param_hint="--key-fields")
    return fields


@click.command("report")
@click.option("--connection", default=None, help="Only this connection.")
@click.option("-m", "--module", default=None, help="Only this module.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a self-contained HTML page with charts to this file.",
)
@click.option(
    "--category-field",
    "category_fields",
    multiple=True,
    help="Count records by this field (repeatable; arrays such as tags count per element)."
    " Default: the natural ones a module has (lead_status, stage, industry, type, source,"
    " title, tags).",
)
@click.option(
    "--key-fields",
    default=None,
    help="Comma-separated fields whose missing values are counted. Default: the usual key"
    " fields a module has (name, company, email, phone, ...).",
)
@click.option(
    "--stale-field",
    type=click.Choice(sorted(STALE_FIELDS)),
    default="modified",
    show_default=True,
    help="Which time the age buckets read.",
)
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Values shown per category and largest clusters per duplicate key.",
)
@click.option("--now", "now_text", default=None, help="Report as of this time (ISO 8601).")
def report_command(
    connection: str | None,
    module: str | None,
    as_json: bool,
    html_path: Path | None,
    category_fields: Sequence[str],
    key_fields: str | None,
    stale_field: str,
    top: int,
    now_text: str | None,
) -> None:
    """Data quality per connection and module: records by lifecycle status and category,
    duplicate clusters, stale records by age, missing key fields.

    Prints tables (or --json); --html writes one self-contained page with charts instead.
    Only the mirror is read: run `crmsync pull` first for current figures."""
    options = ReportOptions(
        connection=connection,
        module=module,
        category_fields=tuple(category_fields),
        key_fields=_fields(key_fields),
        stale_field=stale_field,
        top=top,
        now=_now(now_text),
    )
    if html_path is not None:
        from crmsync.report.html import check_writable

        problem = check_writable(html_path)
        if problem:
            raise ReportUsageError(f"cannot write the HTML report: {problem}")
    app: Any = click.get_current_context().obj
    if app is None or not hasattr(app, "store"):
        raise click.UsageError("crmsync report needs crmsync's CLI context (a config)")
    configured = tuple(app.config.connections)
    with app.store() as store:
        report = build_report(store, options, configured=configured)
    if as_json:
        from crmsync.report.document import as_document

        print_json(as_document(report))
    elif html_path is None:
        from crmsync.report.text import print_report

        print_report(report)
    if html_path is not None:
        from crmsync.report.html import render_html, write_atomic

        write_atomic(html_path, render_html(report))
        click.echo(f"wrote {html_path}", err=as_json)
