"""``crmsync validate``: check the config's policies, structure then meaning, with no network.

Loading the config checks structure and meaning that needs no data (ops, value types, regexes,
connections). Then, for every (connection, module) a policy names and the mirror holds records
of, the policy's fields are checked against the fields seen in the mirror. The mirror is opened
read-only; a missing store is not created.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import click

from crmsync.errors import EXIT_USAGE, ConfigError
from crmsync.policy.validate import Problem, check_policies, mirror_fields


def known_fields_from_store(
    store_path: Path, pairs: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], set[str]], str | None]:
    """Fields per (connection, module) from the mirror at ``store_path``, and a note when the
    mirror could not be read. Modules without records are left out (their fields unknown)."""
    if not store_path.exists():
        return {}, f"no store at {store_path}; fields not checked"
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
        try:
            found = {}
            for pair in sorted(pairs):
                fields = mirror_fields(conn, *pair)
                if fields is not None:
                    found[pair] = fields
            return found, None
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return {}, f"cannot read the mirror ({exc}); fields not checked"


@click.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def validate_command(ctx: click.Context, as_json: bool) -> None:
    """Check the config and its policies (structure, then meaning against the mirror)."""
    app = ctx.obj
    try:
        config = app.config
    except ConfigError as exc:
        _report(as_json, [_problem(exc)], [], [], None)
        ctx.exit(EXIT_USAGE)
        return

    pairs = {(p.connection, p.module) for p in config.policies}
    known, note = known_fields_from_store(config.store_path, pairs)
    _, problems = check_policies(
        config.raw.get("policies", []), connections=set(config.connections), known_fields=known
    )
    checked = sorted(f"{c}/{m}" for c, m in known)
    unchecked = sorted(f"{c}/{m}" for c, m in pairs - set(known))
    _report(as_json, problems, [p.name for p in config.policies], checked, note, unchecked)
    if problems:
        ctx.exit(EXIT_USAGE)


def _problem(exc: ConfigError) -> Problem:
    text = str(exc)
    prefix = (f"{exc.source}: " if exc.source else "") + (f"{exc.path}: " if exc.path else "")
    return Problem(exc.path or "config", text.removeprefix(prefix))


def _report(
    as_json: bool,
    problems: list[Problem],
    names: list[str],
    checked: list[str],
    note: str | None,
    unchecked: list[str] | None = None,
) -> None:
    unchecked = unchecked or []
    if as_json:
        out: dict[str, Any] = {
            "ok": not problems,
            "policies": names,
            "errors": [{"path": p.path, "message": p.message} for p in problems],
            "fields_checked": checked,
            "fields_unchecked": unchecked,
        }
        if note:
            out["note"] = note
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        return
    click.echo(f"ok: {len(names)} polic{'y' if len(names) == 1 else 'ies'} valid")
    if checked:
        click.echo(f"fields checked against the mirror for: {', '.join(checked)}")
    if unchecked:
        click.echo(f"fields not checked (no records mirrored): {', '.join(unchecked)}")
    if note:
        click.echo(f"note: {note}")
