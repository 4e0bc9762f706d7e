"""``crmsync runs``: the runs history, with outcome, counts, duration and API calls.

Every kind of run is listed (``pull``, ``apply``, ``run``...); a ``run`` row's summary is its
:class:`~crmsync.unattended.run.RunOutcome` (counts, API calls, errors, plans awaiting approval).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmsync.store.base import Run


def _seconds(run: Run) -> float | None:
    if not run.finished_at:
        return None
    try:
        start = datetime.fromisoformat(run.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(run.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((end - start).total_seconds(), 3)


def _records(run: Run) -> int | None:
    """The records a run touched: pulled (pull), changed (apply, run)."""
    summary = run.summary
    if isinstance(summary.get("records"), int):
        return summary["records"]
    counts = summary.get("counts")
    if isinstance(counts, dict):  # a run: pulled + applied
        return int(counts.get("pulled", 0)) + int(counts.get("done", 0))
    policies = summary.get("policies")
    if isinstance(policies, dict):  # an apply: done per policy
        return sum(int(s.get("done", 0)) for s in policies.values() if isinstance(s, dict))
    return None


def _api_calls(run: Run) -> int | None:
    for key in ("api_calls", "write_calls"):
        if isinstance(run.summary.get(key), int):
            return run.summary[key]
    return None


def run_dict(run: Run) -> dict[str, Any]:
    """The row as ``runs --json`` prints it: the stored fields, plus seconds, records and
    api_calls worked out from the summary (None where a kind of run has none)."""
    return {
        **vars(run),
        "seconds": _seconds(run),
        "records": _records(run),
        "api_calls": _api_calls(run),
    }


RUNS_HEADERS = ("id", "kind", "connection", "started", "seconds", "status", "records", "api calls")


def run_row(run: Run) -> tuple[Any, ...]:
    info = run_dict(run)
    where = "/".join(x for x in (run.connection, run.module) if x) or None
    error = (run.error or "")[:80] or None
    status = run.status if not error else f"{run.status}: {error}"
    return (
        run.id,
        run.kind,
        where,
        run.started_at,
        info["seconds"],
        status,
        info["records"],
        info["api_calls"],
    )
