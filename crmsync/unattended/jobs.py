"""What each kind of serve job does. Every kind is a ``run_once`` with some steps left out, so
each takes the store's run lock (a ``crmsync run`` from cron cannot overlap it), is recorded in
``crmsync runs``, resumes interrupted work, stops at a checkpoint, and notifies alike.

========== ============================================================================
kind       steps
========== ============================================================================
run        resume, pull, plan, apply the auto_apply policies (``policies``: only those),
           then snapshot and retention as ``[run]`` says — exactly ``crmsync run``
pull       pull every connection (incremental)
snapshot   pull, then a snapshot of each connection's mirror
retention  forget snapshots by ``[snapshots.keep]``, then prune
========== ============================================================================

Jobs act as operator ``crmsync-run``, like ``crmsync run``: a plan one of them left half
applied is finished by whichever runs next.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from crmsync.unattended.runlog import RunLog
from crmsync.unattended.schedule import Job
from crmsync.unattended.scheduler import EventLog, JobResult, RunJob

if TYPE_CHECKING:
    from crmsync.config import Config
    from crmsync.plugins import PluginRegistry
    from crmsync.unattended.run import RunOptions


def run_options(job: Job) -> RunOptions:
    """The ``RunOptions`` a job of each kind runs with."""
    from crmsync.unattended.run import RunOptions

    if job.kind == "run":
        return RunOptions(policies=tuple(job.policies))
    steps = {
        "pull": {"pull": True, "snapshot": False, "retention": False},
        "snapshot": {"pull": True, "snapshot": True, "retention": False},
        "retention": {"pull": False, "snapshot": False, "retention": True},
    }
    return RunOptions(apply=False, **steps[job.kind])


class ServeRunLog(RunLog):
    """A run's steps as serve log events (``run.step``), tagged with the job."""

    def __init__(self, job: Job, log: EventLog) -> None:
        self.job, self.log = job, log

    def step(self, run_id: int, record: dict[str, Any]) -> None:
        self.log("run.step", job=self.job.name, run_id=run_id, **record)


def job_runner(config: Config, registry: PluginRegistry, log: EventLog | None = None) -> RunJob:
    """The scheduler's ``run_job`` for the real thing."""
    from crmsync.unattended.run import run_once

    def run_job(job: Job, stop: threading.Event) -> JobResult:
        sink = ServeRunLog(job, log) if log else None
        return from_outcome(run_once(config, registry, run_options(job), log=sink, stop=stop))

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
