"""``crmsync run``: one unattended pass — pull, plan, apply what may be applied alone, leave the
rest waiting for a person, snapshot, retention — under the store's run lock.

:func:`run_once` is the engine ``crmsync run`` and ``crmsync serve`` share. It never raises for
what goes wrong with a CRM, the store or a snapshot: every problem becomes an error in the
:class:`RunOutcome`, its status and exit code, one log record, and a notification. The steps
themselves are in :mod:`crmsync.unattended.steps`.

Statuses and exit codes (README, "Run it on a schedule"):

=================== ==== ==========================================================
status              exit meaning
=================== ==== ==========================================================
ok                  0    everything done
awaiting_approval   4    done what could be done alone; a plan waits for a person
failed              1    a step failed (2 if the config is at fault, 3 if a guard
                         stopped an auto-apply); the next run tries again
partial             1    as failed, and an auto-apply was left part-way: the next
                         run resumes it first
locked              75   another run holds the store's lock; nothing was done
interrupted         75   stopped on request (SIGTERM, ``stop``) after a checkpoint;
                         the next run resumes
=================== ==== ==========================================================

With several problems the code is the first of 2, 1, 3 that applies.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from crmsync.config import Config
from crmsync.errors import (
    EXIT_ATTENTION,
    EXIT_FAILURE,
    EXIT_GUARD,
    EXIT_OK,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    CrmsyncError,
)
from crmsync.plans.planner import select_policies
from crmsync.plugins import PluginRegistry
from crmsync.store import open_store
from crmsync.unattended.lock import RunLock, RunLocked
from crmsync.unattended.runlog import RunLog, utc_now

log = logging.getLogger(__name__)

RUN_KIND = "run"  # the kind of a run's row in the store's runs table
DEFAULT_OPERATOR = "crmsync-run"


@dataclass
class RunOptions:
    policies: tuple[str, ...] = ()  # () = every enabled policy
    pull: bool = True
    snapshot: bool | None = None  # None: as [run] snapshot in the config says
    operator: str = DEFAULT_OPERATOR  # who the plans, applies and audit entries name
    # beyond the contract, for jobs that do a part of a run (`crmsync serve` pull/snapshot/
    # retention jobs): False skips resume, plan and apply; None: as [run] retention says
    apply: bool = True
    retention: bool | None = None


@dataclass
class RunOutcome:
    run_id: int  # 0 when the store could not be opened
    status: str  # ok | failed | partial | locked | awaiting_approval | interrupted
    exit_code: int
    started: str  # ISO-8601 UTC
    finished: str
    counts: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)
    awaiting_plans: list[str] = field(default_factory=list)
    snapshot_ids: list[str] = field(default_factory=list)
    # beyond the contract: for `crmsync serve`'s metrics and `crmsync runs`
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    api_calls_by_connection: dict[str, int] = field(default_factory=dict)
    errors_by_connection: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "counts": dict(self.counts),
            "api_calls": self.api_calls,
            "api_calls_by_connection": dict(self.api_calls_by_connection),
            "errors_by_connection": dict(self.errors_by_connection),
            "errors": list(self.errors),
            "awaiting_plans": list(self.awaiting_plans),
            "snapshot_ids": list(self.snapshot_ids),
        }

    def summary_line(self) -> str:
        """One line for a human: what the run did and how it ended."""
        head = f"crmsync run {self.run_id}" if self.run_id else "crmsync run"
        word = {"failed": "FAILED", "partial": "PARTIAL"}.get(self.status, self.status)
        code = f" (exit {self.exit_code})" if self.exit_code else ""
        c = self.counts
        parts = []
        if "pulled" in c:
            parts.append(
                f"pulled {c['pulled']} records ({c.get('new', 0)} new, "
                f"{c.get('changed', 0)} changed, {c.get('deleted', 0)} deleted)"
            )
        if c.get("done") or c.get("failed"):
            refused = f" ({c['failed']} refused by the CRM)" if c.get("failed") else ""
            parts.append(f"applied {c.get('done', 0)} changes{refused}")
        if c.get("drift"):
            parts.append(f"{c['drift']} drifted, left for the next run")
        if self.awaiting_plans:
            n, ids = len(self.awaiting_plans), ", ".join(self.awaiting_plans)
            parts.append(f"{n} plan{'s' if n > 1 else ''} awaiting approval ({ids})")
        if self.snapshot_ids:
            parts.append(f"snapshot {', '.join(s[:8] for s in self.snapshot_ids)}")
        if c.get("forgotten"):
            parts.append(f"forgot {c['forgotten']} snapshots")
        if self.errors:
            parts.append(f"{len(self.errors)} error{'s' if len(self.errors) > 1 else ''}")
        if self.status == "interrupted":
            parts.append("the next run resumes")
        if self.status not in ("locked",):
            parts.append(f"{self.api_calls} API calls")
        body = "; ".join(parts)
        return f"{head}: {word}{code} in {self.seconds:.1f}s" + (f" - {body}" if body else "")


def run_once(
    config: Config,
    registry: PluginRegistry,
    options: RunOptions,
    *,
    log: RunLog | None = None,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """One unattended run. Raises only :class:`~crmsync.errors.ConfigError` for options the
    config cannot satisfy (an unknown ``--policy``), before anything is done; everything else
    is in the outcome. ``stop``: when set, the run finishes the batch it is writing (or the
    page it is pulling), checkpoints, and returns status ``interrupted``."""
    from crmsync.unattended.steps import RunSteps

    sink = log or RunLog()
    stop = stop or threading.Event()
    policies = select_policies(config, options.policies or None)
    started, clock = utc_now(), time.monotonic()
    lock = RunLock(config.store_path)
    try:
        lock.acquire()
    except RunLocked as exc:
        return _finish_locked(config, exc, started, clock, sink)
    try:
        try:
            store = open_store(config.store_path)
        except CrmsyncError as exc:
            outcome = RunOutcome(0, "failed", exc.exit_code, started, "", errors=[str(exc)])
            return _finish(outcome, clock, sink)
        with store:
            run_id = store.start_run(RUN_KIND, None, None)
            lock.note(run_id=run_id)
            steps = RunSteps(config, registry, store, options, policies, sink, stop, run_id)
            try:
                if lock.stale is not None:
                    steps.took_over(lock.stale)
                steps.execute()
            except BaseException:  # KeyboardInterrupt (a second Ctrl-C): stop at once
                store.finish_run(run_id, "interrupted", {"steps": steps.steps}, "interrupted")
                raise
            outcome = steps.outcome(started)
            outcome.seconds = time.monotonic() - clock
            outcome.finished = utc_now()
            try:
                steps.notify(outcome)
            except Exception as exc:  # notifying never fails a run
                log.error("could not notify about run %s: %r", run_id, exc)
            try:
                store.finish_run(
                    run_id,
                    outcome.status,
                    {**outcome.as_dict(), "steps": outcome.steps},
                    "; ".join(outcome.errors)[:2000] or None,
                )
            except Exception as exc:  # e.g. a full disk: the outcome is still the answer
                log.error("could not record the end of run %s: %r", run_id, exc)
    finally:
        lock.release()
    sink.finish(outcome)
    return outcome


def status_and_code(
    errors: list[tuple[int, str]], *, resumable: bool, awaiting: bool, interrupted: bool
) -> tuple[str, int]:
    """A run's status and exit code from its errors ((exit code, message) each)."""
    if interrupted:
        return "interrupted", EXIT_TEMPFAIL
    if errors:
        codes = {code for code, _ in errors}
        code = next((c for c in (EXIT_USAGE, EXIT_FAILURE, EXIT_GUARD) if c in codes), 1)
        return ("partial" if resumable else "failed"), code
    if awaiting:
        return "awaiting_approval", EXIT_ATTENTION
    return "ok", EXIT_OK


def _finish(outcome: RunOutcome, clock: float, sink: RunLog) -> RunOutcome:
    outcome.seconds = time.monotonic() - clock
    outcome.finished = outcome.finished or utc_now()
    sink.finish(outcome)
    return outcome


def _finish_locked(
    config: Config, exc: RunLocked, started: str, clock: float, sink: RunLog
) -> RunOutcome:
    """Another run holds the lock: note the attempt in the runs history, change nothing."""
    outcome = RunOutcome(0, "locked", exc.exit_code, started, "", errors=[str(exc)])
    try:
        with open_store(config.store_path) as store:
            outcome.run_id = store.start_run(RUN_KIND, None, None)
            store.finish_run(outcome.run_id, "locked", outcome.as_dict(), str(exc))
    except CrmsyncError as problem:  # the history is a courtesy; the outcome stands
        log.warning("could not record the locked run: %s", problem)
    return _finish(outcome, clock, sink)
