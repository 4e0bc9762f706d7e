"""The starter config `crmsync init` writes: a working sandbox connection plus examples."""

from __future__ import annotations

HEADER = """\
# crmsync configuration. Every key is documented in config.example.toml.
# Secrets never go in this file: write `env:VAR` or `keyring:SERVICE/NAME` instead.

[store]
# The local mirror, runs and cursors (SQLite). Relative paths are relative to this file.
path = "crmsync.db"

# A connection to the bundled sandbox CRM: start it with `crmsync sandbox`, then
#   export CRMSYNC_SANDBOX_TOKEN=sandbox-token
"""


def starter_config(api_url: str = "http://127.0.0.1:8765/api/v1/") -> str:
    from crmsync.sandbox.connection import sandbox_connection_toml

    return HEADER + sandbox_connection_toml(api_url, "env:CRMSYNC_SANDBOX_TOKEN")
