"""``crmsync search``: parse, find (crmsync.search.finder), render.

Like ``crmsync.audit_cli``, the command finds the config and store through the click context
object, so it never imports crmsync.cli. Exit codes: 0 done (also when nothing matched); 2 bad
usage (a query that cannot be read, a bad --field or time, an unknown connection or module,
no snapshot repository for --include-snapshots).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from typing import Any

import click

from crmsync.errors import EXIT_USAGE, CrmsyncError
from crmsync.search.filters import parse_field, time_bound
from crmsync.search.finder import SearchResult, SearchRow, find
from crmsync.search.model import STATUSES, TIME_FIELDS, SearchFilters, SearchRequest
from crmsync.search.query import parse_query
from crmsync.store.base import Store
from crmsync.ui import print_json, print_table

CSV_COLUMNS = (
    "source", "connection", "module", "record_id", "status", "name", "snippet", "modified_at",
    "created_at", "score", "snapshot_id",
)  # fmt: skip


class SearchUsageError(CrmsyncError):
    """The search names something that does not exist (exit 2)."""

    exit_code = EXIT_USAGE


def _app() -> Any:
    app = click.get_current_context().obj
    if app is None or not hasattr(app, "store"):
        raise click.UsageError("crmsync search needs crmsync's CLI context (a config)")
    return app


def _fields(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_field(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--field") from None


def _time(value: str | None, option: str, *, end: bool) -> str | None:
    if value is None:
        return None
    try:
        return time_bound(value, end=end)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _check_names(store: Store, filters: SearchFilters, configured: Sequence[str]) -> None:
    """After an empty result: say so if --connection or --module names nothing we know."""
    counts = store.module_counts(filters.connection)
    if filters.connection is not None and filters.connection not in configured and not counts:
        mirrored = {c.connection for c in store.module_counts()}
        known = ", ".join(sorted({*configured, *mirrored})) or "none"
        raise SearchUsageError(f"no connection named {filters.connection!r} (known: {known})")
    mirrored_modules = {c.module for c in counts}
    unknown = [m for m in filters.modules if m not in mirrored_modules]
    if unknown and counts:
        known = ", ".join(sorted(mirrored_modules))
        raise SearchUsageError(f"no module {unknown[0]!r} in the mirror (mirrored: {known})")


def _open_repository(app: Any) -> Any:
    from crmsync.snapshots.configured import open_configured
    from crmsync.snapshots.errors import SnapshotError

    try:
        return open_configured(app.config.snapshots)
    except SnapshotError as exc:
        exc.exit_code = EXIT_USAGE  # no repository yet, or no passphrase for an encrypted one
        raise


def _table(rows: Sequence[SearchRow], *, snapshots: bool) -> None:
    many = len({r.connection for r in rows}) > 1
    headers = [
        *(["source"] if snapshots else []),
        *(["connection"] if many else []),
        "module", "record", "status", "name", "modified", "match",
    ]  # fmt: skip
    body = []
    for r in rows:
        when = (r.modified_at or "")[:19].replace("T", " ")
        body.append(
            [
                *([r.source] if snapshots else []),
                *([r.connection] if many else []),
                *(r.module, r.record_id, r.status, r.name, when, r.snippet),
            ]
        )
    print_table(None, headers, body)


def _csv(rows: Sequence[SearchRow]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = row.as_dict()
        writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])


def _render(result: SearchResult, *, as_json: bool, as_csv: bool, snapshots: bool) -> None:
    if as_json:
        print_json([row.as_dict() for row in result.rows])
    elif as_csv:
        _csv(result.rows)
    elif result.rows:
        _table(result.rows, snapshots=snapshots)
    else:
        click.echo("no records match", err=True)
    if result.window_full:
        click.echo(
            f"note: more than {result.window} mirrored records match; they were ranked among"
            f" the {result.window} most recently added. Add words or filters to narrow it.",
            err=True,
        )


@click.command("search")
@click.argument("query", required=False, default="")
@click.option("--connection", default=None, help="Only this connection.")
@click.option("-m", "--module", "modules", multiple=True, help="Only this module (repeatable).")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([*STATUSES, "any"]),
    help="Only records in this lifecycle status (repeatable; default any). purged: no longer"
    " in the CRM (purged, or deleted there); the mirror keeps its last copy.",
)
@click.option("--tag", "tags", multiple=True, help="Only records tagged so (repeatable: all).")
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only records whose top-level field KEY equals VALUE (repeatable: all).",
)
@click.option("--since", default=None, help="From this time: 2025-01-31, an ISO time, or 30d.")
@click.option("--until", default=None, help="Before this time (a date includes that day).")
@click.option(
    "--time-field",
    type=click.Choice(TIME_FIELDS),
    default="modified",
    show_default=True,
    help="The time --since/--until compare.",
)
@click.option(
    "-n", "--limit", type=click.IntRange(1, 10000), default=20, show_default=True,
    help="At most this many rows (and as many more from snapshots).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON array, records' data included.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option(
    "--include-snapshots",
    is_flag=True,
    help="Also search records that exist only in snapshots (deleted, or older versions):"
    " the newest whole snapshot of each connection.",
)
@click.option(
    "--all-snapshots", is_flag=True, help="Like --include-snapshots, reading every snapshot."
)
def search_command(
    query: str,
    connection: str | None,
    modules: Sequence[str],
    statuses: Sequence[str],
    tags: Sequence[str],
    fields: Sequence[str],
    since: str | None,
    until: str | None,
    time_field: str,
    limit: int,
    as_json: bool,
    as_csv: bool,
    include_snapshots: bool,
    all_snapshots: bool,
) -> None:
    """Search the mirror (and snapshots) by keywords and filters, best matches first.

    QUERY: words must all occur (any order, any case, also inside longer words: 金桥 finds
    南京金桥管理咨询有限公司); "quoted phrases" occur as written; OR between two terms takes
    either; -word or NOT word excludes. Without QUERY, the filters alone select records,
    most recently modified first.
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv exclude each other")
    request = SearchRequest(
        query=parse_query(query),
        filters=SearchFilters(
            connection=connection,
            modules=tuple(modules),
            statuses=() if "any" in statuses else tuple(dict.fromkeys(statuses)),
            tags=tuple(tags),
            fields=_fields(fields),
            since=_time(since, "--since", end=False),
            until=_time(until, "--until", end=True),
            time_field=time_field,
        ),
        limit=limit,
    )
    app = _app()
    snapshots = include_snapshots or all_snapshots
    repository = _open_repository(app) if snapshots else None
    with app.store() as store:
        pending = store.pending_search_index()
        if pending >= 10000:  # the first search after an upgrade (or a large raw write)
            click.echo(f"indexing {pending:,} records for search (once)...", err=True)
        result = find(store, request, repository=repository, all_snapshots=all_snapshots)
        if not result.rows and (connection is not None or modules):
            _check_names(store, request.filters, sorted(app.config.connections))
    _render(result, as_json=as_json, as_csv=as_csv, snapshots=snapshots)
