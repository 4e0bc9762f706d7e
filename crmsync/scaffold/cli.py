"""``crmsync new-connector NAME``: thin over :mod:`crmsync.scaffold`."""

from __future__ import annotations

from pathlib import Path

import click

from crmsync.plugins import get_registry
from crmsync.scaffold import check_free, generate, names_for


@click.command("new-connector")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to create the project in (as crmsync-NAME/).",
)
@click.option("--package-name", default=None, help="Import package name (default: crmsync_NAME).")
def new_connector_command(name: str, directory: Path, package_name: str | None) -> None:
    """Create a connector package for a new CRM: plugin, settings, fake server, tests.

    The package passes crmsync's connector contract suite as generated; change it into your
    CRM's connector step by step with docs/writing-a-connector.md.
    """
    names = names_for(name, package_name)
    installed = {c.name for c in get_registry().connectors()}
    target = check_free(names, directory, installed)
    generate(names, target)
    click.echo(f"created {target}/ (connector {names.name!r}, package {names.package})")
    click.echo("next:")
    click.echo(f"  cd {target}")
    click.echo("  python -m pytest            # the contract suite against the fake server")
    click.echo("  pip install -e .            # then: crmsync connectors")
