"""``crmsync audit {log,verify,export}``: read, check and export the audit log.

The group finds the store through the click context object (crmsync.cli's ``AppContext``,
anything with a ``store()`` method), so this module never imports crmsync.cli and the CLI can
attach the group without an import cycle.

Exit codes: 0 intact / done; 1 the chain is broken (the first broken entry is printed);
2 bad usage (bad time, unreadable file).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from crmsync.audit.export import FORMATS, read_export, write_export
from crmsync.audit.model import AuditQuery, AuditRecord, parse_time
from crmsync.audit.verify import VerifyResult, verify_chain, verify_store
from crmsync.errors import EXIT_FAILURE
from crmsync.store.base import Store
from crmsync.ui import print_json, print_table


@contextmanager
def _store() -> Iterator[Store]:
    app: Any = click.get_current_context().obj
    if app is None or not hasattr(app, "store"):
        raise click.UsageError("the audit commands need crmsync's CLI context (a config)")
    store = app.store()
    try:
        yield store
    finally:
        store.close()


def _time(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: every archive/void/restore/purge and plan event."""


LOG_HEADERS = (
    "seq",
    "time",
    "operator",
    "action",
    "record",
    "status",
    "policy",
    "plan",
    "outcome",
)


def _log_row(r: AuditRecord) -> list[Any]:
    where = "/".join(p for p in (r.connection, r.module) if p)
    record = r.record_id if r.record_id is not None else (r.record_ref and "(redacted)")
    status = f"{r.before_status or ''} -> {r.after_status or ''}"
    return [
        r.seq,
        r.time[:19].replace("T", " "),
        r.operator,
        r.action,
        f"{where}:{record}" if record else where,
        status if (r.before_status or r.after_status) else "",
        r.policy,
        r.plan_id,
        r.outcome,
    ]


@audit_group.command("log")
@click.option("--record", "record_id", help="Entries about this CRM record id.")
@click.option("--connection", help="Only this connection.")
@click.option("--module", help="Only this module.")
@click.option("--policy", help="Only entries of this policy.")
@click.option("--plan", "plan_id", help="Only entries of this plan id.")
@click.option("--run", "run_id", type=int, help="Only entries of this run id.")
@click.option("--action", help="Only this action (archive, void, plan.approve ...).")
@click.option("--operator", help="Only entries by this operator.")
@click.option("--outcome", help="Only this outcome (ok, failed:409, skipped:drift ...).")
@click.option("--since", help="From this time: 2025-01-31, 2025-01-31T08:00Z, or an age: 7d.")
@click.option("--until", help="Before this time (same forms as --since).")
@click.option(
    "-n", "--limit", default=50, show_default=True, help="Show the newest N entries (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def log_command(
    record_id: str | None,
    connection: str | None,
    module: str | None,
    policy: str | None,
    plan_id: str | None,
    run_id: int | None,
    action: str | None,
    operator: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show audit entries, oldest first (the newest N of those matching)."""
    if limit < 0:
        raise click.BadParameter("must be 0 or more", param_hint="--limit")
    query = AuditQuery(
        record_id=record_id,
        connection=connection,
        module=module,
        policy=policy,
        plan_id=plan_id,
        run_id=run_id,
        action=action,
        operator=operator,
        outcome=outcome,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
        limit=limit or None,
    )
    with _store() as store:
        entries = store.find_audit(query)
    if as_json:
        print_json([{**e.as_dict(), "detail": e.detail_obj()} for e in entries])
    else:
        print_table(None, LOG_HEADERS, [_log_row(e) for e in entries])


@audit_group.command("verify")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify an export (JSONL or CSV) instead of the store.",
)
@click.option(
    "--expect-head",
    "expect_heads",
    multiple=True,
    metavar="HASH",
    help="A head hash recorded earlier (printed by this command): it must still be in the "
    "chain. Detects a truncated tail or a rewritten chain. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(file: Path | None, expect_heads: Sequence[str], as_json: bool) -> None:
    """Check the hash chain; exit 1 naming the first edited, deleted or moved entry."""
    if file is not None:
        try:
            result = verify_chain(lambda: read_export(file), expect_heads)
        except (OSError, UnicodeDecodeError) as exc:
            raise click.UsageError(f"cannot read {file}: {exc}") from None
    else:
        with _store() as store:
            result = verify_store(store, expect_heads)
    _report(result, as_json)
    if not result.ok:
        sys.exit(EXIT_FAILURE)


def _report(result: VerifyResult, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
        return
    if result.ok:
        if result.entries == 0:
            click.echo("audit log: intact (empty)")
        else:
            click.echo(f"audit log: intact, {result.entries} entries")
            click.echo(f"head: seq {result.head_seq} {result.head_hash}")
        for digest, seq in result.heads_found:
            click.echo(f"expected head {digest[:16]}... found at seq {seq}")
        return
    problem = result.problem
    assert problem is not None
    click.echo(f"audit log: BROKEN ({problem.kind}): {problem.message}", err=True)
    if result.head_seq is not None:
        click.echo(f"intact up to seq {result.head_seq} {result.head_hash}", err=True)


@audit_group.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (default: stdout).",
)
def export_command(fmt: str, output: Path | None) -> None:
    """Export every entry with its hashes, streaming; verify it later with --file."""
    with _store() as store:
        if output is None:
            write_export(store.iter_audit(), sys.stdout, fmt)
            return
        # Write beside the target and rename, so a failed export never leaves half a file
        # that looks like a truncated log.
        partial = output.with_name(output.name + ".partial")
        try:
            # Owner-only, like the store: an export holds record ids.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                count = write_export(store.iter_audit(), out, fmt)
            partial.replace(output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    click.echo(f"exported {count} entries to {output}", err=True)
