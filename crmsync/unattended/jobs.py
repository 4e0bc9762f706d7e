"""What each kind of serve job does: a ``crmsync run`` pass (``run_once``), or a part of one.

Every kind goes through ``run_once`` so that each takes the store's run lock (a ``crmsync run``
from cron cannot overlap it), records a run, resumes interrupted work and notifies alike.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from crmsync.unattended.schedule import Job
from crmsync.unattended.scheduler import EventLog, JobResult, RunJob

if TYPE_CHECKING:
    from crmsync.config import Config
    from crmsync.plugins import PluginRegistry

OPERATOR = "crmsync-serve"


def run_options(job: Job) -> Any:
    """The ``RunOptions`` a job of each kind runs with."""
    from crmsync.unattended.run import RunOptions

    operator = f"{OPERATOR}:{job.name}"
    if job.kind == "run":
        return RunOptions(policies=tuple(job.policies), operator=operator)
    raise ValueError(f"unknown job kind {job.kind!r}")


def job_runner(config: Config, registry: PluginRegistry, log: EventLog | None = None) -> RunJob:
    def run_job(job: Job, stop: threading.Event) -> JobResult:
        from crmsync.unattended.run import run_once

        outcome = run_once(config, registry, run_options(job), stop=stop)
        return from_outcome(outcome)

    return run_job


def from_outcome(outcome: Any) -> JobResult:
    """A ``RunOutcome`` as the scheduler's :class:`JobResult`."""
    return JobResult(
        status=outcome.status,
        exit_code=outcome.exit_code,
        run_id=outcome.run_id or None,
        api_calls=dict(getattr(outcome, "api_calls_by_connection", {}) or {}),
        api_errors=dict(getattr(outcome, "errors_by_connection", {}) or {}),
        errors=list(outcome.errors),
        awaiting_plans=list(outcome.awaiting_plans),
        counts=dict(outcome.counts),
    )
