"""The sandbox clock: virtual time that only moves when a test says so.

Writes stamp ``modified_at`` with it and OAuth tokens expire by it, so tests exercise expiry and
incremental pulls by calling :meth:`SandboxClock.advance` instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from crmsync.sandbox.data import DEFAULT_CLOCK_START


class SandboxClock:
    """A thread-safe clock that starts at ``start`` (default 2026-01-01T00:00:00Z)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or DEFAULT_CLOCK_START
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.start = start.astimezone(UTC)
        self._now = self.start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def timestamp(self) -> float:
        """Now, in seconds since the epoch."""
        return self.now().timestamp()

    def iso(self) -> str:
        """Now as ``2026-01-01T00:00:00Z`` (whole seconds, the format records use)."""
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def advance(self, seconds: float) -> datetime:
        """Move time forward by ``seconds`` (>= 0) and return the new now."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now
