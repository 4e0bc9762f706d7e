"""The ``crmsync`` command line: parse, call the engine, render. Nothing else lives here."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from crmsync import __version__
from crmsync.config import CONFIG_ENV, Config, default_config_path, load_config
from crmsync.errors import EXIT_FAILURE, CrmsyncError
from crmsync.plugins import PluginRegistry, get_registry, warn_failures
from crmsync.store import Store, open_store
from crmsync.ui import PULL_HEADERS, RichPullProgress, print_json, print_table, pull_rows


class CrmsyncGroup(click.Group):
    """Turns crmsync errors into one clear line on stderr and the documented exit code.

    Commands in ``LAZY_COMMANDS`` are imported when used (or listed by --help): the snapshot
    commands pull in numpy and zstandard, which every other command would pay for at start."""

    LAZY_COMMANDS = {
        "compliance": ("crmsync.compliance.report.cli", "compliance_group"),
        "erase": ("crmsync.compliance.erase_cli", "erase_command"),
        "hold": ("crmsync.compliance.cli", "hold_group"),
        "new-connector": ("crmsync.scaffold.cli", "new_connector_command"),
        "purge": ("crmsync.compliance.cli", "purge_command"),
        "report": ("crmsync.report.cli", "report_command"),
        "run": ("crmsync.unattended.run_cli", "run_command"),
        "search": ("crmsync.search.cli", "search_command"),
        "serve": ("crmsync.unattended.serve_cli", "serve_command"),
        "snapshot": ("crmsync.snapshots.cli", "snapshot_group"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY_COMMANDS and cmd_name not in self.commands:
            module, attr = self.LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrmsyncError as exc:
            if ctx.meta.get("crmsync.debug"):
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


class AppContext:
    def __init__(self, config_path: Path | None, debug: bool):
        self.config_path = config_path
        self.debug = debug
        self._config: Config | None = None

    @property
    def registry(self) -> PluginRegistry:
        return get_registry()

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path or default_config_path(), self.registry)
        return self._config

    def store(self) -> Store:
        return open_store(self.config.store_path)


pass_app = click.make_pass_decorator(AppContext)


@click.group(cls=CrmsyncGroup)
@click.version_option(__version__, prog_name="crmsync")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar=CONFIG_ENV,
    help=f"Config file (default: ./crmsync.toml, or ${CONFIG_ENV}).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """crmsync keeps external CRMs tidy and safe: mirror, policies, snapshots."""
    ctx.meta["crmsync.debug"] = debug
    ctx.obj = AppContext(config_path, debug)


# --------------------------------------------------------------------------- plugins


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def connectors(app: AppContext, as_json: bool) -> None:
    """List installed connectors with their package and version."""
    reg = app.registry
    items = reg.connectors()
    if as_json:
        print_json([vars(c) for c in items])
    else:
        print_table(
            None,
            ("connector", "package", "version", "description"),
            [(c.name, c.package or c.plugin, c.version, c.description) for c in items],
        )
    warn_failures(reg)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plugins(app: AppContext, as_json: bool) -> None:
    """List every plugin, the hooks it implements, and any that failed or are blocked."""
    reg = app.registry
    if as_json:
        print_json([vars(p) for p in reg.plugins])
        return
    print_table(
        None,
        ("plugin", "package", "version", "status", "hooks"),
        [
            (
                p.name,
                p.package,
                p.version,
                p.status if not p.error else f"{p.status}: {p.error}",
                ", ".join(p.hooks),
            )
            for p in reg.plugins
        ],
    )


# --------------------------------------------------------------------------- config


@cli.command()
@click.option(
    "--path",
    "target",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write (default: the --config path or ./crmsync.toml).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@pass_app
def init(app: AppContext, target: Path | None, force: bool) -> None:
    """Write a starter config (a connection to `crmsync sandbox`, and commented examples)."""
    from crmsync.starter import starter_config

    target = target or app.config_path or default_config_path()
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it")
    target.write_text(starter_config(), encoding="utf-8")
    click.echo(f"wrote {target}")
    click.echo("next: run `crmsync sandbox` in another terminal, then:")
    click.echo("  export CRMSYNC_SANDBOX_TOKEN=sandbox-token")
    click.echo(f"  crmsync -c {target} check && crmsync -c {target} pull")


@cli.command()
@click.argument("connection", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def check(app: AppContext, connection: str | None, as_json: bool) -> None:
    """Validate the config, then test reachability and auth of each connection."""
    from crmsync.connections import open_session

    config = app.config  # validation errors exit 2 before any network call
    names = [connection] if connection else sorted(config.connections)
    for name in names:
        config.connection(name)
    results = []
    for name in names:
        try:
            with ExitStack() as stack:
                session = open_session(config, app.registry, name)
                stack.callback(session.close)
                results.append({"connection": name, "ok": True, "detail": session.check()})
        except CrmsyncError as exc:
            results.append({"connection": name, "ok": False, "detail": str(exc)})
    if as_json:
        print_json({"config": str(config.path), "connections": results})
    else:
        click.echo(f"config {config.path}: ok")
        for r in results:
            click.echo(f"{r['connection']}: {'ok' if r['ok'] else 'FAILED'} - {r['detail']}")
    if not all(r["ok"] for r in results):
        sys.exit(EXIT_FAILURE)


# --------------------------------------------------------------------------- pull


@cli.command()
@click.argument("connection", required=False)
@click.option("-m", "--module", "modules", multiple=True, help="Only this module (repeatable).")
@click.option("--full", is_flag=True, help="Pull everything, not just changes since last time.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@pass_app
def pull(
    app: AppContext, connection: str | None, modules: Sequence[str], full: bool, as_json: bool
) -> None:
    """Pull records into the local mirror (incremental from the stored cursor by default)."""
    from crmsync.connections import open_session
    from crmsync.pull import pull_connection

    config = app.config
    names = [connection] if connection else sorted(config.connections)
    if not names:
        raise click.UsageError("no connections configured")
    for name in names:
        config.connection(name)
    summaries = []
    with ExitStack() as stack:
        store = stack.enter_context(app.store())
        progress = None
        if sys.stderr.isatty() and not as_json:
            progress = stack.enter_context(RichPullProgress())
        for name in names:
            session = open_session(config, app.registry, name)
            try:
                summaries.append(
                    pull_connection(
                        session, store, name, modules=modules or None, full=full, progress=progress
                    )
                )
            finally:
                session.close()
    if as_json:
        print_json(
            [s.as_dict() for s in summaries] if len(summaries) > 1 else summaries[0].as_dict()
        )
    elif sys.stdout.isatty():
        for s in summaries:
            print_table(f"pulled {s.connection}", PULL_HEADERS, pull_rows(s.modules))
            if s.connector_stats:
                click.echo(", ".join(f"{k}: {v}" for k, v in s.connector_stats.items()))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show what the mirror holds: records per module, cursors, last full pull."""
    with app.store() as store:
        rows = []
        for mc in store.module_counts():
            cur = store.cursor(mc.connection, mc.module)
            rows.append(
                {
                    "connection": mc.connection,
                    "module": mc.module,
                    "records": mc.live,
                    "deleted_in_crm": mc.deleted_in_crm,
                    "cursor": cur.cursor if cur else None,
                    "last_full_pull_at": cur.last_full_pull_at if cur else None,
                }
            )
    if as_json:
        print_json(rows)
    else:
        print_table(
            None,
            ("connection", "module", "records", "deleted in CRM", "cursor", "last full pull"),
            [list(r.values()) for r in rows],
        )


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs.")
@click.option("--kind", help="Only runs of this kind (run, pull, apply...).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def runs(app: AppContext, limit: int, kind: str | None, as_json: bool) -> None:
    """List recent runs, newest first: outcome, records, duration, API calls."""
    from crmsync.unattended.history import RUNS_HEADERS, run_dict, run_row

    with app.store() as store:
        items = store.runs(limit=limit, kind=kind)
    if as_json:
        print_json([run_dict(r) for r in items])
        return
    print_table(None, RUNS_HEADERS, [run_row(r) for r in items])


# --------------------------------------------------------------------------- sandbox, demo


@cli.command()
@click.option("--records", default=2000, show_default=True, help="Sandbox size.")
@click.option("--seed", default=42, show_default=True, help="Sandbox data seed.")
@click.option(
    "--keep",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the demo's config and store in this directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def demo(records: int, seed: int, keep: Path | None, as_json: bool) -> None:
    """Start the bundled sandbox CRM, pull it into a fresh mirror, and show what happened."""
    from crmsync.demo import run_demo

    run_demo(records=records, seed=seed, keep=keep, as_json=as_json)


def _attach_subcommands(group: click.Group) -> None:
    from crmsync.audit_cli import audit_group
    from crmsync.plans.cli import (
        apply_command,
        approve_command,
        plan_command,
        plans_command,
        restore_command,
    )
    from crmsync.policy.cli import validate_command
    from crmsync.sandbox.cli import sandbox_command

    for command in (
        sandbox_command,
        validate_command,
        plan_command,
        approve_command,
        apply_command,
        plans_command,
        restore_command,
        audit_group,
    ):
        group.add_command(command)


def _attach_plugin_commands(group: click.Group) -> None:
    try:
        get_registry().pm.hook.crmsync_register_commands(cli=group)
    except Exception as exc:  # a plugin's command must not break the CLI
        click.echo(f"warning: a plugin failed to register commands: {exc!r}", err=True)


_attach_subcommands(cli)


def main(argv: Sequence[str] | None = None) -> None:
    _attach_plugin_commands(cli)
    cli.main(args=argv, prog_name="crmsync")
