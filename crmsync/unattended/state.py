"""What ``crmsync serve`` remembers between starts: each job's last attempt and success.

One small JSON file beside the store (``crmsync.db`` -> ``crmsync.serve.json``), written
atomically (temp file, fsync, rename) before and after every job. A job whose last attempt
started and never finished (serve was killed, the machine lost power) or stopped part-way
(SIGTERM) is *unfinished*: serve runs it again at its next start, and the run resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

UNFINISHED_STATUSES = ("running", "interrupted")


@dataclass(frozen=True)
class JobState:
    last_started: str | None = None  # ISO-8601 UTC
    last_finished: str | None = None
    last_status: str | None = None  # running | ok | failed | partial | locked | ...
    last_success: str | None = None  # the last attempt whose status was "ok"
    last_duration: float | None = None  # seconds
    last_run_id: int | None = None
    last_error: str | None = None

    @property
    def unfinished(self) -> bool:
        return self.last_status in UNFINISHED_STATUSES

    @classmethod
    def from_dict(cls, data: Any) -> JobState:
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def state_path(store_path: Path) -> Path:
    return store_path.with_name(f"{store_path.stem}.serve.json")


class StateFile:
    """Job states by job name. An unreadable file is reported and treated as empty (it only
    decides catch-up runs; nothing is lost with it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem: str | None = None
        self._jobs: dict[str, JobState] = self._load()

    def get(self, job: str) -> JobState:
        return self._jobs.get(job, JobState())

    def all(self) -> dict[str, JobState]:
        return dict(self._jobs)

    def started(self, job: str, at: datetime) -> None:
        self._set(job, replace(self.get(job), last_started=_iso(at), last_status="running"))

    def finished(
        self,
        job: str,
        at: datetime,
        status: str,
        *,
        duration: float,
        run_id: int | None = None,
        error: str | None = None,
    ) -> JobState:
        state = replace(
            self.get(job),
            last_finished=_iso(at),
            last_status=status,
            last_duration=round(duration, 3),
            last_run_id=run_id,
            last_error=error,
        )
        if status == "ok":
            state = replace(state, last_success=_iso(at))
        self._set(job, state)
        return state

    def _set(self, job: str, state: JobState) -> None:
        self._jobs[job] = state
        self._save()

    def _load(self) -> dict[str, JobState]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): JobState.from_dict(v) for k, v in data.get("jobs", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            self.problem = f"ignoring unreadable serve state {self.path}: {exc}"
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"version": 1, "jobs": {k: asdict(v) for k, v in sorted(self._jobs.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
