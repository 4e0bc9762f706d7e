"""Notifications of unattended runs: which events a run raises, and sending them to every
notifier (the ``crmsync_notify`` hook: the built-in webhook notifier and any plugin's).

Events: ``failure`` after each failed (or partial) run; ``awaiting_approval`` once per plan a
run leaves waiting for approval (a plan still waiting from an earlier run is not announced
again); ``recovery`` after the first good run (ok or awaiting approval) that follows a failed
one (runs that were locked out, interrupted or killed do not count either way).

A notifier that fails is logged and skipped: it never fails the run or stops another notifier.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crmsync.config import Config
from crmsync.errors import CrmsyncError
from crmsync.hookspecs import Notification
from crmsync.plans.model import PlanInfo
from crmsync.plugins import PluginRegistry
from crmsync.store import Store
from crmsync.unattended.run import RunOutcome

log = logging.getLogger(__name__)

BUILTIN_NOTIFIER = "crmsync-webhook"
BAD = ("failed", "partial")
GOOD = ("ok", "awaiting_approval")
MAX_LINES = 10


def previous_status(store: Store, run_id: int, kind: str) -> str | None:
    """How the last run before ``run_id`` that did its work ended (good or bad), if any."""
    for row in store.runs(limit=100, kind=kind):
        if row.id < run_id and row.status in BAD + GOOD:
            return row.status
    return None


def events_for(
    outcome: RunOutcome, previous: str | None, new_waiting: Sequence[PlanInfo], host: str
) -> list[Notification]:
    common: dict[str, Any] = {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "started": outcome.started,
        "finished": outcome.finished,
        "host": host,
        "counts": dict(outcome.counts),
    }
    events = []
    if outcome.status in BAD:
        title = (
            f"crmsync: run {outcome.run_id} {outcome.status.upper()} on {host} "
            f"(exit {outcome.exit_code})"
        )
        lines = [f"- {e}" for e in outcome.errors[:MAX_LINES]]
        if len(outcome.errors) > MAX_LINES:
            lines.append(f"- ... and {len(outcome.errors) - MAX_LINES} more")
        if outcome.status == "partial":
            lines.append("An apply was left part-way; the next run resumes it.")
        lines.append(f"Details: crmsync runs --kind run; {outcome.summary_line()}")
        events.append(
            Notification(
                kind="failure",
                title=title,
                text="\n".join([title, *lines]),
                errors=tuple(outcome.errors),
                **common,
            )
        )
    if new_waiting:
        plans = tuple(_plan_view(p) for p in new_waiting)
        n = len(plans)
        title = f"crmsync: {n} plan{'s' if n > 1 else ''} awaiting approval on {host}"
        lines = [
            f"- plan {p['id']}: {p['policy']} would {p['action']} {p['records']} records of "
            f"{p['connection']}/{p['module']} (expires {p['expires_at']})"
            for p in plans[:MAX_LINES]
        ]
        lines.append("Review: crmsync plans; approve: crmsync approve PLAN_ID")
        events.append(
            Notification(
                kind="awaiting_approval",
                title=title,
                text="\n".join([title, *lines]),
                plans=plans,
                **common,
            )
        )
    if outcome.status in GOOD and previous in BAD:
        title = f"crmsync: run {outcome.run_id} on {host} is {outcome.status} again (recovered)"
        text = f"{title}\nThe run before it {previous}. {outcome.summary_line()}"
        events.append(Notification(kind="recovery", title=title, text=text, **common))
    return events


def _plan_view(plan: PlanInfo) -> dict[str, Any]:
    pp = plan.policies[0]
    return {
        "id": plan.id,
        "policy": pp.policy,
        "action": pp.action,
        "connection": pp.connection,
        "module": pp.module,
        "records": pp.matched,
        "expires_at": plan.expires_at,
    }


def send(registry: PluginRegistry, config: Config, event: Notification) -> list[dict[str, Any]]:
    """Call every notifier with ``event``; one result per notifier that sent or failed."""
    pm = registry.pm
    if pm.get_plugin(BUILTIN_NOTIFIER) is None and not pm.is_blocked(BUILTIN_NOTIFIER):
        from crmsync.unattended import webhook

        pm.register(webhook, name=BUILTIN_NOTIFIER)
    args = {"notification": event, "config": config}
    results = []
    for impl in pm.hook.crmsync_notify.get_hookimpls():
        entry: dict[str, Any] = {"kind": event.kind, "notifier": impl.plugin_name}
        try:
            said = impl.function(**{k: args[k] for k in impl.argnames})
        except Exception as exc:
            # crmsync's errors are written to hold no secret; others are named by type only
            why = str(exc) if isinstance(exc, CrmsyncError) else type(exc).__name__
            log.warning("notifier %s failed (%s): %s", impl.plugin_name, event.kind, why)
            results.append({"status": "failed", **entry, "error": why})
        else:
            if said is not None:
                results.append({"status": "sent", **entry, "detail": str(said)[:300]})
    return results
