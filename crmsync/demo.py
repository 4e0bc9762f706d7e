"""`crmsync demo`: the sandbox CRM, a fresh config and mirror, a full then an incremental pull.

It goes through the same path a user's config does (TOML → validation → connector plugin found
by entry point → store), so the demo working means the installation works.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from crmsync.config import load_config
from crmsync.connections import open_session
from crmsync.plugins import get_registry
from crmsync.pull import PullSummary, pull_connection
from crmsync.store import open_store
from crmsync.ui import PULL_HEADERS, RichPullProgress, print_json, print_table, pull_rows

TOKEN_ENV = "CRMSYNC_SANDBOX_TOKEN"


def demo_config_text(api_url: str) -> str:
    from crmsync.sandbox.connection import sandbox_connection_toml

    return (
        "# Written by `crmsync demo`: the bundled sandbox CRM, pulled through the REST connector.\n"
        '[store]\npath = "crmsync.db"\n\n' + sandbox_connection_toml(api_url, f"env:{TOKEN_ENV}")
    )


def run_demo(*, records: int, seed: int, keep: Path | None, as_json: bool) -> dict[str, Any]:
    from crmsync.sandbox import SandboxCRM

    with ExitStack() as stack:
        if keep is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crmsync-demo-")))
        else:
            workdir = keep
            workdir.mkdir(parents=True, exist_ok=True)
        say = (lambda *a, **k: None) if as_json else click.echo

        say(f"starting the sandbox CRM with {records} records (seed {seed})...")
        sandbox = SandboxCRM(records=records, seed=seed)
        sandbox.start()
        stack.callback(sandbox.close)
        os.environ[TOKEN_ENV] = sandbox.token
        say(f"sandbox listening on {sandbox.base_url}")

        config_path = workdir / "crmsync.toml"
        config_path.write_text(demo_config_text(sandbox.api_url), encoding="utf-8")
        registry = get_registry()
        config = load_config(config_path, registry)
        store = stack.enter_context(open_store(config.store_path))
        session = open_session(config, registry, "sandbox")
        stack.callback(session.close)

        def run_pull(title: str) -> PullSummary:
            with ExitStack() as inner:
                progress = None
                if not as_json and click.get_text_stream("stderr").isatty():
                    progress = inner.enter_context(RichPullProgress())
                summary = pull_connection(session, store, "sandbox", progress=progress)
            if not as_json:
                print_table(title, PULL_HEADERS, pull_rows(summary.modules))
            return summary

        first = run_pull("1. first pull: everything")
        touched = sandbox.touch("Leads", count=max(1, records // 100))
        gone = sandbox.ids("Contacts")[:2]
        sandbox.delete_records("Contacts", gone)
        say(f"\nmeanwhile in the CRM: {len(touched)} leads edited, {len(gone)} contacts deleted")
        second = run_pull("2. second pull: only what changed")

        samples = []
        for rec in store.iter_records("sandbox", "Leads", batch=50):
            d = rec.data
            samples.append(
                [
                    rec.record_id,
                    d.get("full_name"),
                    d.get("company"),
                    d.get("lead_status"),
                    rec.modified_at,
                ]
            )
            if len(samples) == 6:
                break
        result = {
            "workdir": str(workdir) if keep else None,
            "first_pull": first.as_dict(),
            "second_pull": second.as_dict(),
            "mirror": {m.module: m.live for m in store.module_counts("sandbox")},
        }
        if as_json:
            print_json(result)
            return result
        print_table(
            "a few leads from the local mirror",
            ("id", "name", "company", "status", "modified"),
            samples,
        )
        total_first = first.total("api_calls")
        total_second = second.total("api_calls")
        click.echo(
            f"\nfirst pull: {first.total('records')} records in {total_first} API calls; "
            f"second pull: {second.total('records')} records in {total_second} API calls."
        )
        if keep:
            click.echo(
                f"config and mirror kept in {workdir} (the sandbox has stopped); try\n"
                f"  crmsync -c {config_path} status"
            )
        click.echo("next: `crmsync init` writes a config of your own; `crmsync --help` lists all.")
        return result
