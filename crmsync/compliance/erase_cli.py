"""``crmsync erase``: a data-subject erasure request, planned, approved, applied.

Thin over :mod:`crmsync.compliance.erasure` (find, plan) and
:mod:`crmsync.compliance.erasure_apply`. The e-mail and phone given are used to search and are
never written anywhere: not to the plan, the audit log, the run summary or the output.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from crmsync.errors import EXIT_FAILURE
from crmsync.plans.planner import current_operator
from crmsync.ui import print_json


def _app() -> object:
    return click.get_current_context().obj


@click.command("erase")
@click.option("--email", "emails", multiple=True, help="The person's e-mail (repeatable).")
@click.option("--phone", "phones", multiple=True, help="The person's phone (repeatable).")
@click.option(
    "--record", "records", multiple=True, help="CONNECTION:MODULE:ID of a record (repeatable)."
)
@click.option("--basis", help="Legal-basis code of the request, e.g. GDPR-17-1-b, PIPL-47-1-3.")
@click.option("--reason", help="A note kept with the plan (no personal data).")
@click.option("--connection", help="Only this connection (default: every configured one).")
@click.option("--max", "max_records", type=int, help="Refuse above N records (<= [erasure]).")
@click.option("--region", help="Region of numbers written without +CC (default [erasure]).")
@click.option("--no-pull", is_flag=True, help="Search the mirror as it is (no refresh first).")
@click.option("--apply", "apply_id", metavar="PLAN_ID", help="Apply an approved erasure plan.")
@click.option("--operator", help="Who is acting (default: the OS user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def erase_command(
    emails: Sequence[str],
    phones: Sequence[str],
    records: Sequence[str],
    basis: str | None,
    reason: str | None,
    connection: str | None,
    max_records: int | None,
    region: str | None,
    no_pull: bool,
    apply_id: str | None,
    operator: str | None,
    as_json: bool,
) -> None:
    """Erase a person's records everywhere: CRM, mirror, search index, snapshots.

    `crmsync erase --email E --phone P --basis GDPR-17-1-b` finds every record of the person
    and stores an erasure plan (exit 3 when nothing matches or more than the limit do);
    another operator approves it (`crmsync approve PLAN_ID`); `crmsync erase --apply PLAN_ID`
    carries it out. Records under legal hold or a statutory minimum are restricted instead."""
    app = _app()
    who = current_operator(operator)
    if apply_id:
        if emails or phones or records or basis:
            raise click.UsageError("--apply takes a plan id only (the plan says what to erase)")
        _apply(app, apply_id, who, as_json)
        return
    if not basis:
        raise click.UsageError("--basis is required: the legal ground, e.g. GDPR-17-1-b")
    _plan(app, emails, phones, records, basis, reason, connection, max_records, region,
          no_pull, who, as_json)  # fmt: skip


def _plan(
    app: object, emails: Sequence[str], phones: Sequence[str], records: Sequence[str],
    basis: str, reason: str | None, connection: str | None, max_records: int | None,
    region: str | None, no_pull: bool, who: str, as_json: bool,
) -> None:  # fmt: skip
    from crmsync.compliance.erasure import (
        check_basis,
        check_found,
        find,
        limit_for,
        make_erasure_plan,
        plan_view,
        quoted_details,
    )
    from crmsync.compliance.erasure_config import erasure_of
    from crmsync.compliance.erasure_match import parse_subject
    from crmsync.connections import open_session
    from crmsync.pull import pull_connection
    from crmsync.snapshots.configured import open_configured, repository_exists

    config = app.config  # type: ignore[attr-defined]
    if connection is not None:
        config.connection(connection)  # unknown: exit 2, naming the configured ones
    chosen = [connection] if connection else sorted(config.connections)
    subject = parse_subject(
        emails, phones, records, region=region or erasure_of(config).default_region,
        connections=config.connections,
    )  # fmt: skip
    check_basis(basis)
    limit = limit_for(config, max_records)
    with app.store() as store:  # type: ignore[attr-defined]
        if not no_pull:
            for name in chosen:
                session = open_session(config, app.registry, name)  # type: ignore[attr-defined]
                try:
                    pull_connection(session, store, name)
                finally:
                    session.close()
        repo = open_configured(config.snapshots) if repository_exists(config.snapshots) else None
        found = find(config, store, subject, chosen, repo, limit=limit)
        check_found(found, limit)
        plan = make_erasure_plan(
            config, store, found, subject=subject, basis=basis, reason=reason, operator=who,
            limit=limit, details=quoted_details(store, subject, found),
        )  # fmt: skip
        view = plan_view(store, plan)
    if as_json:
        print_json(view)
    else:
        render(view)


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def render(view: dict) -> None:
    request = view.get("request") or {}
    nouns = {"emails": "e-mail", "phones": "phone", "records": "record"}
    asked = ", ".join(_n(n, nouns.get(k, k)) for k, n in request.items() if n)
    click.echo(
        f"erasure plan {view['id']} by {view['created_by']} (basis {view['basis']}; request:"
        f" {asked}; expires {view['expires_at']})"
    )
    for part in view["parts"]:
        verb = "erase" if part["action"] == "erase" else "restrict (blocked, not erased)"
        where = f"{part['connection']}/{part['module']}"
        click.echo(f"\n  {verb}: {where}, {_n(len(part['records']), 'record')}")
        for r in part["records"]:
            found = ", ".join(r.get("found", []))
            # a named id crmsync has never seen is most often a typo: say so, not "found in"
            where = f"found in {found}" if found else "not in the mirror or any snapshot"
            extra = []
            if r.get("versions"):
                extra.append(f"{_n(r['versions'], 'version')} in {_n(r['snapshots'], 'snapshot')}")
            if r.get("matched_fields"):
                extra.append("fields " + ", ".join(r["matched_fields"]))
            if r.get("kept_by_snapshot_hold"):
                extra.append(f"{r['kept_by_snapshot_hold']} kept: a held snapshot uses them")
            if r.get("named"):
                extra.append("named by --record" + ("" if found else "; check the id"))
            if r.get("current_matches") is False:
                extra.append("only older versions hold the keys: check it is theirs")
            click.echo(
                f"    {r['record_id']}  {r['status']}  {where}"
                + (f" ({'; '.join(extra)})" if extra else "")
            )
            block = r.get("block")
            if block:
                click.echo(f"      blocked: {block['reason']} [{block['basis']}]")
    click.echo(
        f"\nNeeds approval by another operator: crmsync approve {view['id']}\n"
        f"then: crmsync erase --apply {view['id']}"
    )


def _apply(app: object, plan_id: str, who: str, as_json: bool) -> None:
    from crmsync.compliance.erasure_apply import apply_erasure

    with app.store() as store:  # type: ignore[attr-defined]
        config, registry = app.config, app.registry  # type: ignore[attr-defined]
        result = apply_erasure(config, registry, store, plan_id, operator=who)
    if as_json:
        print_json(result.as_dict())
    else:
        click.echo(
            f"erasure plan {plan_id}: {_n(result.erased, 'record')} erased,"
            f" {result.restricted} restricted, {result.failed} failed ({result.status});"
            f" {_n(result.snapshot_versions, 'snapshot version')} erased from"
            f" {_n(result.snapshots_rewritten, 'snapshot')}"
        )
    if result.wal_busy:
        click.echo(
            "warning: another process was reading the store, so its write-ahead log still"
            f" holds erased pages; run `crmsync erase --apply {plan_id}` again when it is idle",
            err=True,
        )
    if result.failed:
        click.echo(
            f"error: {result.failed} record(s) could not be deleted in the CRM; see"
            f" `crmsync audit log --plan {plan_id} --outcome failed`",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
