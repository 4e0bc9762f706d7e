"""Entry point ``zoho = "crmsync_connectors.zoho.plugin"``: the Zoho connector and the
``crmsync auth zoho CONNECTION`` command (a grant code exchanged for a stored refresh token)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from crmsync.errors import ConfigError
from crmsync.hookspecs import Connector, SecretRef, hookimpl
from crmsync_connectors.zoho.connector import ZohoConnector


@hookimpl
def crmsync_register_connectors(register: Callable[[Connector], None]) -> None:
    register(ZohoConnector())


@hookimpl
def crmsync_register_commands(cli: Any) -> None:
    group = cli.commands.get("auth")
    if group is None:

        @cli.group("auth")
        def auth_group() -> None:
            """Authorise crmsync with a CRM (stores the credentials it needs)."""

        group = auth_group
    if isinstance(group, click.Group) and "zoho" not in group.commands:
        group.add_command(auth_zoho)


@click.command("zoho")
@click.argument("connection")
@click.option("--code", help="Grant code from the Zoho API console (prompted if not given).")
@click.option("--redirect-uri", default=None, help="Only for server-based clients.")
def auth_zoho(connection: str, code: str | None, redirect_uri: str | None) -> None:
    """Exchange a Zoho self-client grant code for a refresh token and store it.

    In api-console.zoho.com (your data centre's), open the Self Client, Generate Code with the
    scopes ZohoCRM.modules.ALL,ZohoCRM.settings.modules.READ,ZohoCRM.settings.fields.READ and
    run this within the code's lifetime (3 minutes by default).
    """
    from crmsync import secrets
    from crmsync_connectors.zoho.auth import exchange_grant_code
    from crmsync_connectors.zoho.settings import parse_settings

    app = click.get_current_context().obj
    conn = app.config.connection(connection)
    if conn.connector != "zoho":
        raise ConfigError(
            f"connection {connection!r} uses connector {conn.connector!r}, not zoho",
            path=f"connections.{connection}.connector",
        )
    settings = parse_settings(conn.settings)
    ref = settings.refresh_token
    ref_text = ref.ref if isinstance(ref, SecretRef) else str(ref)
    secret = settings.client_secret
    client_secret = secret.reveal() if isinstance(secret, SecretRef) else secret
    if not code:
        code = click.prompt("Grant code", hide_input=True)
    body = exchange_grant_code(
        settings.accounts_url,
        settings.client_id,
        client_secret,
        code.strip(),
        redirect_uri=redirect_uri,
    )
    token = str(body["refresh_token"])
    scope = body.get("scope")
    keyring_ref = secrets.KEYRING_RE.match(ref_text)
    env_ref = secrets.ENV_RE.match(ref_text)
    if keyring_ref:
        stored = secrets.store_in_keyring(keyring_ref.group(1), keyring_ref.group(2), token)
        click.echo(f"stored the refresh token for {connection!r} in {stored}")
    elif env_ref:
        click.echo(
            f"connection {connection!r} reads the refresh token from {ref_text}; set it (and "
            "keep it out of shell history and the config file):"
        )
        click.echo(f"export {env_ref.group(1)}={token}")
    if scope:
        click.echo(f"scopes granted: {scope}")
    click.echo(f"next: crmsync check {connection}")
