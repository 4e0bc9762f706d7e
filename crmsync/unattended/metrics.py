"""``/metrics`` of ``crmsync serve``, in the Prometheus text exposition format (0.0.4).

Written by hand (a few dozen lines) rather than with ``prometheus_client``: serve needs no
registry, no multiprocess mode and no push gateway, and the format is small and stable. The
tests parse the output with ``prometheus_client``'s own parser.

Counters (``*_total``) count since this serve process started, as Prometheus expects (it
handles the reset at a restart). Gauges read from the store are recomputed at most every
``store_ttl`` seconds, and after every job.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmsync import __version__
from crmsync.unattended.schedule import Job
from crmsync.unattended.scheduler import JobResult, Scheduler
from crmsync.unattended.state import JobState, parse_iso

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[tuple[str, str], ...]


@dataclass
class StoreFigures:
    """What the store says, read in one pass (a handful of grouped queries)."""

    ok: bool = True
    error: str | None = None
    records: dict[tuple[str, str, str], int] = field(default_factory=dict)  # conn, module, status
    deleted: dict[tuple[str, str], int] = field(default_factory=dict)  # conn, module
    # plan kind -> unexpired plans waiting for a person's approval
    awaiting_approval: dict[str, int] = field(default_factory=dict)


def read_store(store_path: Path, now: datetime | None = None) -> StoreFigures:
    """Figures from the store at ``store_path`` (an empty result if it does not exist yet:
    opening it would create it)."""
    if not store_path.exists():
        return StoreFigures()
    from crmsync.store import open_store

    figures = StoreFigures()
    try:
        with open_store(store_path) as store:
            for (c, m), counts in sorted(store.lifecycle_counts().items()):
                for status, n in counts.items():
                    if status == "deleted_in_crm":
                        figures.deleted[(c, m)] = n
                    elif n or status != "other":
                        figures.records[(c, m, status)] = n
            figures.awaiting_approval = awaiting_approval(store, now or datetime.now(UTC))
    except Exception as exc:  # a scrape must answer even if the store cannot be read
        return StoreFigures(ok=False, error=f"{type(exc).__name__}: {exc}")
    return figures


# Plan kinds that can wait for an approval, always exported (a 0 series, not an absent one, so
# an alert on it does not go quiet for lack of data). Restore plans never need an approval.
APPROVAL_KINDS = ("policy", "purge", "erasure")


def awaiting_approval(store: Any, now: datetime, limit: int = 500) -> dict[str, int]:
    """Unexpired plans, by kind, with a part that needs approval and has none that counts
    (:func:`~crmsync.plans.apply.unapproved`: a purge or erasure plan's maker does not count).
    A part over its blast radius is not waiting for a person: no approval lets it apply."""
    from crmsync.plans.apply import unapproved
    from crmsync.plans.model import PLANNED

    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = dict.fromkeys(APPROVAL_KINDS, 0)
    for plan in store.list_plans(limit=limit):
        if plan.status != PLANNED or plan.expires_at <= stamp:
            continue
        if any(not p.guard for p in unapproved(plan)):
            counts[plan.kind] = counts.get(plan.kind, 0) + 1
    return counts


class Metrics:
    """Counters fed by the scheduler (:meth:`record`), gauges read at scrape time."""

    def __init__(
        self,
        scheduler: Scheduler | None = None,
        store_path: Path | None = None,
        *,
        store_ttl: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.scheduler = scheduler
        self.store_path = store_path
        self.store_ttl = store_ttl
        self.wall = wall
        self.started = wall()
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], int] = defaultdict(int)  # (job, status)
        self._api_calls: dict[str, int] = defaultdict(int)  # connection
        self._api_errors: dict[str, int] = defaultdict(int)
        self._store: StoreFigures | None = None
        self._store_read_at = -math.inf
        for job in scheduler.jobs if scheduler else ():
            self._runs[(job.name, "ok")] += 0  # a zero series from the start
            self._runs[(job.name, "failed")] += 0

    def record(self, job: Job, result: JobResult, state: JobState | None = None) -> None:
        with self._lock:
            self._runs[(job.name, result.status)] += 1
            for conn, n in result.api_calls.items():
                self._api_calls[conn] += n
            for conn, n in result.api_errors.items():
                self._api_errors[conn] += n
            self._store_read_at = -math.inf  # re-read the store at the next scrape

    def store_figures(self) -> StoreFigures | None:
        if self.store_path is None:
            return None
        with self._lock:
            fresh = time.monotonic() - self._store_read_at < self.store_ttl
            if self._store is not None and fresh:
                return self._store
        figures = read_store(self.store_path)
        with self._lock:
            self._store, self._store_read_at = figures, time.monotonic()
        return figures

    def render(self) -> str:
        out = Exposition()
        out.add(
            "crmsync_build_info", "gauge", "crmsync version", [((("version", __version__),), 1)]
        )
        out.add(
            "crmsync_serve_start_time_seconds",
            "gauge",
            "When this crmsync serve process started (unix seconds)",
            [((), self.started)],
        )
        with self._lock:
            runs = dict(self._runs)
            calls, errors = dict(self._api_calls), dict(self._api_errors)
        out.add(
            "crmsync_job_runs_total",
            "counter",
            "Job runs by outcome (ok, failed, partial, locked, awaiting_approval, interrupted)",
            [((("job", j), ("outcome", s)), n) for (j, s), n in sorted(runs.items())],
        )
        out.add(
            "crmsync_api_calls_total",
            "counter",
            "CRM API requests sent by jobs (retries included), per connection",
            [((("connection", c),), n) for c, n in sorted(calls.items())],
        )
        out.add(
            "crmsync_api_errors_total",
            "counter",
            "Errors jobs reported, per connection",
            [((("connection", c),), n) for c, n in sorted(errors.items())],
        )
        if self.scheduler is not None:
            self._render_jobs(out, self.scheduler)
        figures = self.store_figures()
        if figures is not None:
            _render_store(out, figures)
        return out.text()

    def _render_jobs(self, out: Exposition, scheduler: Scheduler) -> None:
        status = {j["name"]: j for j in scheduler.status()["jobs"]}
        rows: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for job in scheduler.jobs:
            st, label = status[job.name], (("job", job.name),)
            rows["success"].append((label, _unix(st["last_success"])))
            rows["finished"].append((label, _unix(st["last_finished"])))
            rows["next"].append((label, _unix(st["next_run"])))
            rows["running"].append((label, 1 if st["running"] else 0))
            duration = scheduler.state.get(job.name).last_duration
            if duration is not None:
                rows["duration"].append((label, duration))
        out.add(
            "crmsync_job_last_success_timestamp_seconds",
            "gauge",
            "When each job last finished with outcome ok (unix seconds; 0: never)",
            rows["success"],
        )
        out.add(
            "crmsync_job_last_run_timestamp_seconds",
            "gauge",
            "When each job last finished, whatever its outcome (unix seconds; 0: never)",
            rows["finished"],
        )
        out.add(
            "crmsync_job_last_duration_seconds",
            "gauge",
            "Each job's last run time",
            rows["duration"],
        )
        out.add(
            "crmsync_job_next_run_timestamp_seconds",
            "gauge",
            "When each job is next due (unix seconds)",
            rows["next"],
        )
        out.add("crmsync_job_running", "gauge", "1 while the job runs", rows["running"])


def _render_store(out: Exposition, figures: StoreFigures) -> None:
    out.add(
        "crmsync_store_up",
        "gauge",
        "1 if the store could be read for this scrape",
        [((), figures.ok)],
    )
    if not figures.ok:
        return
    out.add(
        "crmsync_records",
        "gauge",
        "Mirrored records still in the CRM, by lifecycle status",
        [
            ((("connection", c), ("module", m), ("status", s)), n)
            for (c, m, s), n in sorted(figures.records.items())
        ],
    )
    out.add(
        "crmsync_records_deleted_in_crm",
        "gauge",
        "Mirrored records deleted (or purged) in the CRM",
        [((("connection", c), ("module", m)), n) for (c, m), n in sorted(figures.deleted.items())],
    )
    out.add(
        "crmsync_plans_awaiting_approval",
        "gauge",
        "Unexpired plans with a part that needs approval and has none, by plan kind",
        [
            ((("kind", kind),), n)
            for kind, n in {
                **dict.fromkeys(APPROVAL_KINDS, 0),
                **figures.awaiting_approval,
            }.items()
        ],
    )


def _unix(text: str | None) -> float:
    moment = parse_iso(text)
    return moment.timestamp() if moment else 0.0


class Exposition:
    """Builds the text format: ``# HELP``, ``# TYPE``, then one line per sample."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_value(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _labels(labels: Labels | Mapping[str, str]) -> str:
    items = labels.items() if isinstance(labels, Mapping) else labels
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in items) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
