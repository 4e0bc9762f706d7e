"""``crmsync sandbox``: run the sandbox CRM in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

import click

from crmsync.sandbox.server import SandboxCRM


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--records", default=500, show_default=True, help="Records over all modules.")
@click.option("--seed", default=42, show_default=True, help="Seed of the generated data.")
@click.option("--token", default="sandbox-token", show_default=True, help="Static API token.")
@click.option("--latency-ms", default=0.0, show_default=True, help="Latency per API request.")
@click.option("--error-rate", default=0.0, show_default=True, help="Share of requests that 503.")
@click.option(
    "--rate-limit-every", default=0, show_default=True, help="Answer every Nth request 429."
)
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
@click.option(
    "--print-config", is_flag=True, help="Also print the full [connections.sandbox] TOML table."
)
def sandbox_command(
    host: str,
    port: int,
    records: int,
    seed: int,
    token: str,
    latency_ms: float,
    error_rate: float,
    rate_limit_every: int,
    verbose: bool,
    print_config: bool,
) -> None:
    """Serve a seeded sandbox CRM over HTTP (for the demo, tests and benchmarks).

    The first line printed is ``sandbox listening on URL``, so a parent process can read it.
    """
    started = time.perf_counter()
    stop, serving = threading.Event(), threading.Event()
    # Installed before the data is generated (seconds for a large sandbox): a SIGTERM then
    # must stop it cleanly too. Under Docker as PID 1 an unhandled SIGTERM is ignored, and the
    # container would wait for SIGKILL.
    previous = _on_signals(stop, serving)
    crm: SandboxCRM | None = None
    try:
        crm = SandboxCRM(records=records, seed=seed, token=token, verbose=verbose)
        try:
            crm.set_faults(
                latency_ms=latency_ms, error_rate=error_rate, rate_limit_every=rate_limit_every
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        try:
            url = crm.start(host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
        click.echo(f"sandbox listening on {url}")
        click.echo(f"token: {token}   (Authorization: Bearer {token})")
        click.echo(
            f'toml: [connections.sandbox] connector = "rest"  base_url = "{crm.api_url}"  '
            'auth = { type = "bearer", token = "env:CRMSYNC_SANDBOX_TOKEN" }   '
            f"(export CRMSYNC_SANDBOX_TOKEN={token})"
        )
        if print_config:
            click.echo(_config_table(crm.api_url))
        sizes = ", ".join(f"{m} {n}" for m, n in crm.sizes.items())
        click.echo(f"{sizes}; ready in {time.perf_counter() - started:.1f}s; Ctrl-C to stop")
        sys.stdout.flush()
        serving.set()
        while not stop.wait(0.5):  # wake regularly: a signal must never be missed
            pass
    except _Stopped:
        pass  # a signal during start-up: stop as cleanly as after it
    finally:
        serving.set()  # from here a signal only asks to stop; closing must not be interrupted
        _restore_signals(previous)
        if crm is not None:
            crm.close()
    click.echo("sandbox stopped")


def _config_table(api_url: str) -> str:
    try:  # written by the REST connector's side; optional here
        from crmsync.sandbox.connection import sandbox_connection_toml
    except ImportError:
        return "(crmsync.sandbox.connection is not available: no full table)"
    return sandbox_connection_toml(api_url)


class _Stopped(Exception):
    """SIGTERM or Ctrl-C arrived before the sandbox was serving."""


def _on_signals(stop: threading.Event, serving: threading.Event) -> dict[int, object]:
    """Ctrl-C and SIGTERM stop the server cleanly (exit 0); only possible on the main thread.

    Before ``serving`` is set the handler raises :class:`_Stopped`, which abandons the data
    generation (its storage is freed by SandboxCRM on the way out) instead of finishing it.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if not serving.is_set():
            raise _Stopped

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
