"""Where an unattended run reports: a step at a time, then its outcome.

:class:`RunLog` writes nothing (``crmsync serve`` subclasses it); :class:`TextRunLog` prints one
summary line (``crmsync run``); :class:`JsonRunLog` writes one JSON object per line, one per step
and a final one (``crmsync run --log-format json``, for log shippers). Records carry run ids,
steps, statuses, counts, durations and API calls, and error messages, which never hold a secret
(crmsync's errors are written not to).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from crmsync.unattended.run import RunOutcome


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class RunLog:
    """Hears a run's steps; the base class ignores them."""

    def step(self, run_id: int, record: dict[str, Any]) -> None:
        """After each step: ``record`` has ``step``, ``status``, ``seconds`` and what the step
        did (``connection``, ``policy``, ``plan``, ``counts``, ``api_calls``, ``error``...)."""

    def batch(self, run_id: int, policy: str, records: int) -> None:
        """After each committed write-back batch of an apply."""

    def finish(self, outcome: RunOutcome) -> None:
        """Once, at the end (also when the run was locked out or stopped)."""


class JsonRunLog(RunLog):
    """One JSON object per line: ``{"ts", "level", "run_id", "step", "status", ...}``; the last
    line has ``"step": "run"`` and the outcome."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def _write(self, record: dict[str, Any]) -> None:
        self.stream.write(orjson.dumps(record, default=str).decode() + "\n")
        self.stream.flush()

    def step(self, run_id: int, record: dict[str, Any]) -> None:
        level = "error" if record.get("error") else "info"
        self._write({"ts": utc_now(), "level": level, "run_id": run_id, **record})

    def finish(self, outcome: RunOutcome) -> None:
        level = "info" if outcome.status in ("ok", "awaiting_approval") else "error"
        if outcome.status in ("locked", "interrupted"):
            level = "warning"
        self._write(
            {
                "ts": utc_now(),
                "level": level,
                "run_id": outcome.run_id,
                "step": "run",
                **outcome.as_dict(),
                "summary": outcome.summary_line(),
            }
        )


class TextRunLog(RunLog):
    """One summary line on ``out`` (none for a good run when ``quiet``); each error on ``err``."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, quiet: bool = False
    ):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet

    def finish(self, outcome: RunOutcome) -> None:
        good = outcome.status in ("ok", "awaiting_approval")
        if not (self.quiet and outcome.status == "ok"):
            print(outcome.summary_line(), file=self.out if good else self.err, flush=True)
        for error in outcome.errors:
            print(f"error: {error}", file=self.err, flush=True)
