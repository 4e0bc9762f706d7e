"""Client-side per-endpoint rate limits: at most ``calls`` request starts per endpoint in any
``period`` seconds.

Fxiaoke limits each interface separately (reference: 100 calls / 20 s; whether the server counts
in fixed or sliding windows is not documented). A plain token bucket (burst ``calls``, then
``calls/period`` a second) can put call 101 0.2 s after a burst of 100, which a sliding-window
server refuses; a log of the last ``calls`` start times per endpoint keeps *every* ``period``
window within the limit, so it satisfies either kind of server. Memory: ``calls`` floats per
endpoint. ``clock`` and ``sleep`` are injectable (tests advance a fake clock, never wait).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class EndpointLimiter:
    def __init__(
        self,
        calls: int,
        period: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.calls = max(1, int(calls))
        self.period = float(period)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._starts: dict[str, deque[float]] = {}
        self.waited = 0.0  # seconds spent waiting for a slot (stats)

    def wait(self, endpoint: str) -> float:
        """Block until a call to ``endpoint`` fits the limit; record its start. Returns the wait."""
        waited = 0.0
        while True:
            with self._lock:
                starts = self._starts.setdefault(endpoint, deque(maxlen=self.calls))
                now = self._clock()
                if len(starts) < self.calls or now - starts[0] >= self.period:
                    starts.append(now)
                    self.waited += waited
                    return waited
                pause = starts[0] + self.period - now
            self._sleep(pause)
            waited += pause
