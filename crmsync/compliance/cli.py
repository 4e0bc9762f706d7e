"""``crmsync purge`` and ``crmsync hold add|list|release`` (thin: parse, call, render)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from crmsync.compliance import holds
from crmsync.compliance.purge import SHOWN, make_purge_plan
from crmsync.errors import ConfigError
from crmsync.plans.planner import current_operator
from crmsync.policy.model import parse_duration
from crmsync.ui import print_json, print_table


def _app() -> Any:
    return click.get_current_context().obj


def _parse_now(text: str | None) -> datetime | None:
    """``--now`` (hidden; tests and what-if runs): an ISO-8601 time, UTC when no offset."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"expected an ISO-8601 time, got {text!r}", path="--now") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- purge


@click.command("purge")
@click.option("--connection", help="Only this connection.")
@click.option("--module", help="Only this module.")
@click.option(
    "--record",
    "records",
    multiple=True,
    metavar="CONN:MODULE:ID",
    help="Purge exactly these records (each must qualify, or nothing is planned).",
)
@click.option("--dry-run", is_flag=True, help="Show what would go and why; store nothing.")
@click.option("--operator", help="Who is planning (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--now", "now_text", hidden=True, help="Evaluate retention at this time.")
def purge_command(
    connection: str | None,
    module: str | None,
    records: Sequence[str],
    dry_run: bool,
    operator: str | None,
    as_json: bool,
    now_text: str | None,
) -> None:
    """Plan the purge of voided records past their retention period ([[retention.rules]]).

    Held records and records inside a statutory minimum are restricted instead (voided,
    excluded from processing, audited). Approve the plan (4-eyes), then `crmsync apply` it:
    apply checks again, snapshots and verifies the records, then deletes them in the CRM."""
    app = _app()
    config = app.config
    refs = [holds.parse_record_ref(r) for r in records]
    if refs and (connection or module):
        raise click.UsageError("give --record or --connection/--module, not both")
    if connection:
        config.connection(connection)
    for c, _m, _r in refs:
        config.connection(c)  # exit 2 on an unknown connection, as `hold add --record`
    with app.store() as store:
        result = make_purge_plan(
            config,
            store,
            operator=current_operator(operator),
            connection=connection,
            module=module,
            records=refs,
            dry_run=dry_run,
            now=_parse_now(now_text),
            shown=None if as_json else SHOWN,
        )
    if as_json:
        print_json(result.as_dict())
        return
    total = 0
    for name, entries in result.entries_by_part.items():
        count = result.counts.get(name, 0)
        total += count if name.startswith("retention-purge") else 0
        if not count:
            continue
        click.echo(f"\n{name}: {count} record(s)")
        for entry in entries[:SHOWN]:
            click.echo(f"  {entry.record_id}: {entry.why}")
        if count > SHOWN:
            click.echo(f"  ... and {count - SHOWN} more (--json lists them all)")
    if result.plan is None:
        click.echo(f"\ndry run: {total} record(s) would be purged; nothing was stored")
    else:
        plan = result.plan
        click.echo(
            f"\nplan {plan.id}: {total} record(s) to purge."
            f" Approve (someone other than {plan.created_by}): crmsync approve {plan.id};"
            f" then: crmsync apply {plan.id}"
        )


# --------------------------------------------------------------------------- hold


@click.group("hold")
def hold_group() -> None:
    """Legal holds: records kept no matter what (never purged or erased) until released."""


@hold_group.command("add")
@click.option("--record", "records", multiple=True, metavar="CONN:MODULE:ID", help="Hold a record.")
@click.option("--tag", help="Hold records with this tag (tags / Tag lists, any case).")
@click.option("--filter", "filter_text", help="Hold what this filter selects (TOML or JSON).")
@click.option("--connection", help="Hold a whole connection (or, with --module, one module).")
@click.option("--module", help="With --connection: hold one module (or narrow --tag/--filter).")
@click.option("--snapshot", "snapshots", multiple=True, help="Keep this snapshot from forget.")
@click.option("--reason", required=True, help="Why (case number, audit...); required.")
@click.option("--expires", help="End the hold by itself after this long (e.g. 365d).")
@click.option("--operator", help="Who holds (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def hold_add_command(
    records: Sequence[str],
    tag: str | None,
    filter_text: str | None,
    connection: str | None,
    module: str | None,
    snapshots: Sequence[str],
    reason: str,
    expires: str | None,
    operator: str | None,
    as_json: bool,
) -> None:
    """Add a legal hold: --record ..., --tag, --filter, --connection [--module] or --snapshot."""
    app = _app()
    config = app.config
    scopes = [bool(records), bool(tag), bool(filter_text), bool(snapshots)]
    if sum(scopes) > 1:
        raise click.UsageError("give one of --record, --tag, --filter, --snapshot")
    if module and not connection:
        raise click.UsageError("--module needs --connection")
    if connection:
        config.connection(connection)  # exit 2 on an unknown connection
    spec: dict[str, Any] = {}
    refs: list[tuple[str, str, str]] = []
    if records:
        kind = "records"
        refs = [holds.parse_record_ref(r) for r in records]
        for c, _m, _r in refs:
            config.connection(c)
    elif tag:
        kind, spec = "tag", {"tag": tag}
    elif filter_text:
        if not (connection and module):
            raise click.UsageError("--filter needs --connection and --module")
        kind = "filter"
        node = _filter_value(filter_text)
        holds.parse_filter(node, connection, module)  # exit 2, naming the key
        spec = {"filter": node}
    elif snapshots:
        kind, spec = "snapshots", {"snapshots": _snapshot_ids(config, snapshots)}
    elif connection:
        kind = "connection"
    else:
        raise click.UsageError(
            "say what to hold: --record, --tag, --filter, --connection [--module] or --snapshot"
        )
    now = datetime.now(UTC)
    until = now + _duration(expires) if expires else None
    with app.store() as store:
        hold = holds.add_hold(
            store,
            kind=kind,
            reason=reason,
            operator=current_operator(operator),
            connection=connection,
            module=module,
            spec=spec,
            records=refs,
            expires_at=until,
            now=now,
        )
        covered = None if kind == "snapshots" else holds.covered_now(store, hold, now)
    if as_json:
        print_json(hold.as_dict())
    else:
        click.echo(f"hold {hold.id}: {hold.scope_text()} ({hold.reason})")
    if covered:
        click.echo(f"it covers {covered} record(s) in the mirror now", err=as_json)
    elif covered is not None:
        # A typo in a tag, filter field, module or id holds nothing: say so at once.
        click.echo(
            "warning: it covers no record in the mirror now; check the tag, filter field,"
            " module or ids (records pulled later are held all the same)",
            err=True,
        )


def _snapshot_ids(config: Any, refs: Sequence[str]) -> list[str]:
    """Full ids of the named snapshots: a hold on a mistyped id would keep nothing, and a short
    prefix would keep every snapshot it happens to start (exit 2 naming the id)."""
    from crmsync.snapshots.configured import open_configured
    from crmsync.snapshots.errors import SnapshotError

    try:
        repo = open_configured(config.snapshots)
        return [repo.resolve(ref) for ref in refs]
    except SnapshotError as exc:
        raise ConfigError(f"{exc}; `crmsync snapshot list` shows them", path="--snapshot") from None


def _duration(text: str) -> timedelta:
    try:
        length = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(str(exc), path="--expires") from None
    if length <= timedelta(0):
        raise ConfigError(
            f"{text!r} would end the hold at once; give a length such as 365d", path="--expires"
        )
    return length


def _filter_value(text: str) -> Any:
    import tomllib

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f'not JSON or TOML ({exc}); e.g. \'{{"field": "country", "op": "eq", "value": "DE"}}\'',
            path="--filter",
        ) from None


@hold_group.command("list")
@click.option("--all", "include_released", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def hold_list_command(include_released: bool, as_json: bool) -> None:
    """List legal holds (active ones; --all: released ones too)."""
    with _app().store() as store:
        found = holds.list_holds(store, include_released=include_released)
    if as_json:
        print_json([h.as_dict() for h in found])
        return
    rows = [
        [
            h.id,
            h.scope_text(),
            h.reason,
            h.created_by,
            h.created_at[:19],
            h.expires_at[:19] if h.expires_at else "",
            f"{h.released_at[:19]} by {h.released_by}" if h.released_at else "",
        ]
        for h in found
    ]
    print_table(
        "legal holds", ("id", "scope", "reason", "by", "since", "expires", "released"), rows
    )


@hold_group.command("release")
@click.argument("hold_id")
@click.option("--reason", required=True, help="Why the hold ends; required (audited).")
@click.option("--operator", help="Who releases (default: the OS user).")
def hold_release_command(hold_id: str, reason: str, operator: str | None) -> None:
    """Release a legal hold (kept in the list with who, when and why; audited)."""
    with _app().store() as store:
        hold = holds.release_hold(
            store, hold_id, reason=reason, operator=current_operator(operator)
        )
    click.echo(f"released {hold.id} ({hold.scope_text()})")
