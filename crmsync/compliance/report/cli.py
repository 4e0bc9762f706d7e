"""``crmsync compliance report`` (thin: parse, gather, render).

Exit codes: 0 the report was made (findings or not: it is a report); 4 with
``--fail-on-findings`` when there is at least one finding (for schedulers); 2 bad usage (a bad
--since/--until, an unknown connection, an --html path that cannot be written); 1 the page
could not be written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from crmsync.compliance.report.model import ReportOptions
from crmsync.ui import print_json

EXIT_FINDINGS = 4


def parse_moment(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (UTC midnight; for ``--until`` the end of that day) or an ISO 8601
    time (UTC when it has no offset)."""
    if value is None:
        return None
    text = value.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
        if day is not None:
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date (2026-01-31) or an ISO 8601 time (2026-01-31T12:00:00Z)",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.group("compliance")
def compliance_group() -> None:
    """Compliance: what retention, legal holds, purges and erasures have done and must do."""


@compliance_group.command("report")
@click.option("--connection", default=None, help="Only this connection.")
@click.option(
    "--since", "since_text",
    help="Period start: a date or ISO time (default: 90 days before --until).",
)  # fmt: skip
@click.option(
    "--until", "until_text", help="Period end: a date (inclusive) or ISO time (default: now)."
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print one JSON document (format crmsync-compliance-report/1).",
)  # fmt: skip
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), default=None,
    help="Write a self-contained HTML page to this file (for an auditor or DPO).",
)  # fmt: skip
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
    help="Rows listed per list (plans, erased refs, restricted reasons, snapshots); counts"
    " stay complete.",
)  # fmt: skip
@click.option(
    "--nearing", "nearing_days", type=click.IntRange(0, 36_500), default=30, show_default=True,
    help="Days ahead: records reaching their retention and holds expiring within them.",
)  # fmt: skip
@click.option(
    "--fail-on-findings", is_flag=True,
    help=f"Exit {EXIT_FINDINGS} when there is a finding (for schedulers); the report is"
    " still printed.",
)  # fmt: skip
@click.option("--now", "now_text", hidden=True, help="Report as of this time (tests, what-if).")
def report_command(
    connection: str | None,
    since_text: str | None,
    until_text: str | None,
    as_json: bool,
    html_path: Path | None,
    limit: int,
    nearing_days: int,
    fail_on_findings: bool,
    now_text: str | None,
) -> None:
    """What is held, what is past retention, what was purged or erased (when, by whom, on
    which legal basis), which snapshots are older than policy, and what needs action.

    Counts and digests only: no record field values, e-mails or phones. Exit 0 even with
    findings (it is a report); --fail-on-findings exits 4 when there is one."""
    if as_json and html_path is not None:
        raise click.UsageError("give --json or --html, not both")
    now = parse_moment(now_text, "--now")
    since = parse_moment(since_text, "--since")
    until = parse_moment(until_text, "--until", end=True)
    if since is not None and until is not None and since >= until:
        raise click.BadParameter(
            f"{since_text!r} is not before --until {until_text!r}", param_hint="--since"
        )
    if since is not None and until is None and since >= (now or datetime.now(UTC)):
        raise click.BadParameter(f"{since_text!r} is in the future", param_hint="--since")
    if html_path is not None:
        from crmsync.report.gather import ReportUsageError
        from crmsync.report.html import check_writable

        problem = check_writable(html_path)
        if problem:
            raise ReportUsageError(f"cannot write the HTML report: {problem}")
    app: Any = click.get_current_context().obj
    config = app.config
    if connection is not None:
        config.connection(connection)  # exit 2 naming it
    from crmsync.compliance.report.gather import build_compliance_report

    options = ReportOptions(connection, since, until, limit, nearing_days, now)
    with app.store() as store:
        report = build_compliance_report(config, store, options)
    if as_json:
        from crmsync.compliance.report.document import as_document

        print_json(as_document(report))
    elif html_path is not None:
        from crmsync.compliance.report.html import render_html
        from crmsync.report.html import write_atomic

        write_atomic(html_path, render_html(report))
        click.echo(f"wrote {html_path} ({len(report.findings)} finding(s))")
    else:
        from crmsync.compliance.report.text import print_report

        print_report(report)
    if fail_on_findings and report.findings:
        click.get_current_context().exit(EXIT_FINDINGS)
