"""The scheduler loop of ``crmsync serve``: one job at a time, on cron times, stoppable.

Decisions (docs/deployment.md explains them to admins):

* **Never overlapping.** Jobs run one at a time, in the serve process's main thread. A job due
  while another runs starts when that one ends (once, however many of its times passed). A
  ``crmsync run`` started by cron meanwhile is kept out by the store's run lock.
* **Missed runs are coalesced.** At start, a job with ``catch_up`` (the default) whose latest
  scheduled time passed after its last attempt began (serve was down) runs once at once; a job
  never run before waits for its first scheduled time. ``--run-now`` runs every job at start.
* **Unfinished work resumes.** A job whose last attempt never finished (serve was killed) or
  was interrupted (SIGTERM) runs at start, whatever its schedule: the run resumes its plans.
* **Stopping.** :meth:`Scheduler.stop` sets the stop event: the running job finishes its batch,
  checkpoints and returns; no other job starts; :meth:`run_forever` returns.

Time comes from an injected :class:`~crmsync.unattended.schedule.Clock`; the loop waits on an
Event with a timeout (at most ``max_wait`` seconds, so a wall-clock jump is noticed), which
:meth:`Scheduler.stop` and :meth:`Scheduler.wake` end early.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmsync.errors import CrmsyncError
from crmsync.unattended.schedule import Clock, Job, SystemClock
from crmsync.unattended.state import JobState, StateFile, parse_iso

# Outcomes that make /readyz answer 503 until the job's next good run.
UNHEALTHY_STATUSES = ("failed", "partial")


@dataclass
class JobResult:
    """What one job run came to (a :class:`RunOutcome`, or the like for other job kinds)."""

    status: str  # ok | failed | partial | locked | awaiting_approval | interrupted
    exit_code: int = 0
    run_id: int | None = None
    api_calls: dict[str, int] = field(default_factory=dict)  # per connection
    api_errors: dict[str, int] = field(default_factory=dict)  # per connection
    errors: list[str] = field(default_factory=list)
    awaiting_plans: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


RunJob = Callable[[Job, threading.Event], JobResult]
EventLog = Callable[..., None]  # log(event, **fields)


def _quiet(event: str, **fields: Any) -> None:
    pass


def _describe(exc: Exception) -> str:
    """crmsync's own errors are written for users and hold no secret; anything else is a bug,
    named by its type only (its text might quote a secret)."""
    if isinstance(exc, CrmsyncError):
        return str(exc)
    return f"unexpected {type(exc).__name__} (`crmsync --debug serve` prints its traceback)"


class Scheduler:
    def __init__(
        self,
        jobs: Sequence[Job],
        run_job: RunJob,
        *,
        clock: Clock | None = None,
        state: StateFile | None = None,
        on_finish: Callable[[Job, JobResult, JobState], None] | None = None,
        log: EventLog | None = None,
        max_wait: float = 60.0,
        debug: bool = False,
    ) -> None:
        self.jobs = tuple(jobs)
        self.run_job = run_job
        self.clock = clock or SystemClock()
        self.state = state or StateFile(None)
        self.on_finish = on_finish
        self.log = log or _quiet
        self.max_wait = max_wait
        self.debug = debug
        self.stop_event = threading.Event()
        self._wake = threading.Event()
        self.next_due: dict[str, datetime] = {}
        self.running: str | None = None
        self.results: dict[str, JobResult] = {}
        self.loop_alive = False

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Finish the current job's batch, start nothing more, leave :meth:`run_forever`."""
        self.stop_event.set()
        self._wake.set()

    def wake(self) -> None:
        """End the current wait early (the loop re-reads the clock)."""
        self._wake.set()

    # ------------------------------------------------------------------ scheduling

    def plan_start(self, *, run_now: bool = False) -> dict[str, str]:
        """Set each job's first due time; returns the jobs due at once, with the reason."""
        now = self.clock.now()
        due_now: dict[str, str] = {}
        for job in self.jobs:
            reason = (
                "--run-now" if run_now else self._start_reason(job, self.state.get(job.name), now)
            )
            if reason:
                due_now[job.name] = reason
            self.next_due[job.name] = now if reason else job.next_after(now)
            self.log(
                "job.scheduled",
                job=job.name,
                next=self.next_due[job.name].isoformat(),
                **({"reason": reason} if reason else {}),
            )
        return due_now

    @staticmethod
    def _start_reason(job: Job, state: JobState, now: datetime) -> str | None:
        if state.unfinished:
            return f"resume: last attempt {state.last_status} (started {state.last_started})"
        started = parse_iso(state.last_started)
        if job.catch_up and started is not None:
            missed = job.last_at_or_before(now)
            if missed > started:
                return f"catch-up: missed {missed.isoformat()}"
        return None

    def due(self) -> list[Job]:
        now = self.clock.now()
        order = {job.name: i for i, job in enumerate(self.jobs)}
        ready = [j for j in self.jobs if j.name in self.next_due and self.next_due[j.name] <= now]
        return sorted(ready, key=lambda j: (self.next_due[j.name], order[j.name]))

    def tick(self) -> list[str]:
        """Run every job that is due now, one at a time; returns their names."""
        if not self.next_due:
            self.plan_start()
        ran = []
        for job in self.due():
            if self.stop_event.is_set():
                break
            self.run(job)
            ran.append(job.name)
        return ran

    def run_forever(self) -> None:
        """Tick and wait until :meth:`stop`."""
        if not self.next_due:
            self.plan_start()
        self.loop_alive = True
        try:
            while not self.stop_event.is_set():
                self._wake.clear()
                self.tick()
                if self.stop_event.is_set():
                    break
                self.clock.wait(self._wake, self.seconds_to_next())
        finally:
            self.loop_alive = False

    def seconds_to_next(self) -> float:
        if not self.next_due:
            return self.max_wait
        delta = (min(self.next_due.values()) - self.clock.now()).total_seconds()
        return max(0.0, min(self.max_wait, delta))

    # ------------------------------------------------------------------ one job

    def run(self, job: Job) -> JobResult:
        started = self.clock.now()
        t0 = time.monotonic()
        self.running = job.name
        self.state.started(job.name, started)
        self.log("job.start", job=job.name, kind=job.kind, policies=list(job.policies))
        try:
            result = self.run_job(job, self.stop_event)
        except Exception as exc:  # a job's failure is reported; serve keeps going
            if self.debug:
                traceback.print_exc()
            result = JobResult(status="failed", exit_code=1, errors=[_describe(exc)])
        finally:
            self.running = None
        finished = self.clock.now()
        duration = time.monotonic() - t0
        state = self.state.finished(
            job.name,
            finished,
            result.status,
            duration=duration,
            run_id=result.run_id,
            error="; ".join(result.errors)[:500] or None,
        )
        self.results[job.name] = result
        self.next_due[job.name] = job.next_after(finished)
        self.log(
            "job.finish",
            job=job.name,
            status=result.status,
            exit_code=result.exit_code,
            run_id=result.run_id,
            seconds=round(duration, 3),
            errors=result.errors[:5],
            awaiting_plans=result.awaiting_plans,
            next=self.next_due[job.name].isoformat(),
        )
        if self.on_finish:
            self.on_finish(job, result, state)
        return result

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """Per-job state for /healthz and /readyz."""
        jobs = []
        for job in self.jobs:
            st = self.state.get(job.name)
            due = self.next_due.get(job.name)
            jobs.append(
                {
                    "name": job.name,
                    "kind": job.kind,
                    "cron": job.cron,
                    "timezone": job.timezone,
                    "running": self.running == job.name,
                    "next_run": due.isoformat() if due else None,
                    "last_status": st.last_status,
                    "last_started": st.last_started,
                    "last_finished": st.last_finished,
                    "last_success": st.last_success,
                    "last_error": st.last_error,
                }
            )
        return {"running": self.running, "stopping": self.stop_event.is_set(), "jobs": jobs}

    def unhealthy_jobs(self) -> list[str]:
        return [
            j.name for j in self.jobs if self.state.get(j.name).last_status in UNHEALTHY_STATUSES
        ]
