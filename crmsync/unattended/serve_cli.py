"""``crmsync serve``: the command line (thin: parse, call :func:`serve`)."""

from __future__ import annotations

import sys

import click

from crmsync.unattended.serve import json_log, serve, text_log


@click.command("serve")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address of /healthz, /readyz and /metrics ([serve] listen, else 127.0.0.1:9464);"
    " 'off' for none; port 0 picks a free one.",
)
@click.option(
    "--run-now", is_flag=True, help="Run every job once at start, then follow the schedules."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr: human text, or one JSON object per line.",
)
def serve_command(listen: str | None, run_now: bool, log_format: str) -> None:
    """Run the [[serve.jobs]] on their cron schedules until SIGTERM (then exit 0).

    Jobs run one at a time; SIGTERM or Ctrl-C lets the running job finish its batch and
    checkpoint. A job that was interrupted, or whose scheduled time passed while serve was
    down, runs at start. See docs/deployment.md."""
    app = click.get_current_context().obj
    config = app.config  # a bad cron expression or time zone exits 2 here
    log = json_log(sys.stderr) if log_format == "json" else text_log(sys.stderr)
    code = serve(config, app.registry, listen=listen, run_now=run_now, log=log, debug=app.debug)
    sys.exit(code)
