"""``crmsync run``: the command cron, systemd timers and Kubernetes CronJobs start."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

import click

from crmsync.unattended.run import DEFAULT_OPERATOR, RunOptions, run_once
from crmsync.unattended.runlog import JsonRunLog, TextRunLog


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and the first SIGINT set ``stop`` (the run ends at its next checkpoint); a
    second SIGINT interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command("run")
@click.option(
    "-p", "--policy", "policies", multiple=True, help="Only this policy (repeatable; default: all)."
)
@click.option("--pull/--no-pull", default=True, show_default=True, help="Pull first.")
@click.option(
    "--snapshot/--no-snapshot",
    default=None,
    help="Take a snapshot after applying (default: [run] snapshot in the config).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one summary line; json: one JSON object per step and a final one.",
)
@click.option("-q", "--quiet", is_flag=True, help="Text format: print nothing if all went well.")
@click.option(
    "--operator",
    default=DEFAULT_OPERATOR,
    show_default=True,
    help="Who the run's plans and audit entries name.",
)
def run_command(
    policies: Sequence[str],
    pull: bool,
    snapshot: bool | None,
    log_format: str,
    quiet: bool,
    operator: str,
) -> None:
    """Pull, plan, apply the auto_apply policies that need no approval, leave the others
    waiting (and notify), then snapshot and retention as configured. For schedulers: locked
    against overlap, resumable, quiet on success.

    Exit codes: 0 ok; 1 failed; 2 bad config; 3 a guard stopped an auto-apply; 4 plans await
    approval; 75 another run holds the lock, or the run was stopped (SIGTERM) — try later."""
    app = click.get_current_context().obj
    config = app.config  # a bad config exits 2 here, before anything is touched
    sink = JsonRunLog() if log_format == "json" else TextRunLog(quiet=quiet)
    options = RunOptions(policies=tuple(policies), pull=pull, snapshot=snapshot, operator=operator)
    stop = threading.Event()
    with stop_on_signals(stop):
        outcome = run_once(config, app.registry, options, log=sink, stop=stop)
    click.get_current_context().exit(outcome.exit_code)
