"""Fault injection and API limits for the fake Zoho server (deterministic).

Faults (``FakeZoho.set_faults(**keys)`` or ``POST /_fake/faults``; the set is replaced whole):

- ``latency_ms``: delay every ``/crm/`` request (lets concurrency build up).
- ``error_rate`` (0..1) + ``error_status`` (default 500): seeded random 5xx on ``/crm/``
  requests, body ``{"code":"INTERNAL_ERROR",...}``.
- ``burst_every`` N + ``burst_length`` K (default 1): of every N ``/crm/`` requests the last K
  are answered 429 ``TOO_MANY_REQUESTS`` (no Retry-After header).
- ``drop_rate`` (0..1) / ``drop_next`` (count): close the connection without an answer.
- ``fail_next``: ``[{"status": 429, "count": 1, "path_prefix": "/crm/", "code": ..., "body":
  ...}]``: answer the next matching requests with that status (``path_prefix`` may be
  ``/oauth/`` to fail token calls).
- ``reject_ids``: ``{"<id>": "RECORD_LOCKED", ...}`` or a list of ids: writes (update, tags,
  delete) to those records fail per record with that code (default ``RECORD_LOCKED``).

The random draws use a generator seeded by the fake's seed and reset by every configure, so a
sequential client sees the same faults on the same requests in every run.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_CODES = {
    400: "INVALID_REQUEST",
    401: "INVALID_TOKEN",
    403: "NO_PERMISSION",
    404: "INVALID_URL_PATTERN",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "INTERNAL_ERROR",
    503: "INTERNAL_ERROR",
    504: "INTERNAL_ERROR",
}
MESSAGES = {
    429: "The number of requests exceeds the limit.",
    500: "Internal Server Error",
}


def error(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Zoho's error envelope."""
    return {"code": code, "details": dict(details or {}), "message": message, "status": "error"}


@dataclass(frozen=True)
class Injected:
    drop: bool = False
    status: int = 0
    body: Any = None


@dataclass
class _FailSpec:
    status: int
    count: int = 1
    path_prefix: str = "/crm/"
    code: str | None = None
    body: Any = None


@dataclass
class _Config:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    burst_every: int = 0
    burst_length: int = 1
    drop_rate: float = 0.0
    drop_next: int = 0
    fail_next: list[_FailSpec] = field(default_factory=list)
    reject_ids: dict[str, str] = field(default_factory=dict)


FAULT_KEYS = frozenset(_Config.__dataclass_fields__)


class Faults:
    def __init__(self, seed: int = 42) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._cfg = _Config()
        self._rng = random.Random(f"crmsync-fake-zoho-faults/{seed}")
        self._api_requests = 0

    def configure(self, spec: Mapping[str, Any]) -> None:
        cfg = _parse(spec)
        with self._lock:
            self._cfg = cfg
            self._rng = random.Random(f"crmsync-fake-zoho-faults/{self._seed}")
            self._api_requests = 0

    def describe(self) -> dict[str, Any]:
        with self._lock:
            cfg = self._cfg
            out: dict[str, Any] = {k: getattr(cfg, k) for k in sorted(FAULT_KEYS)}
            out["fail_next"] = [vars(f).copy() for f in cfg.fail_next if f.count > 0]
            out["reject_ids"] = dict(cfg.reject_ids)
            return out

    def latency(self, path: str) -> float:
        with self._lock:
            return self._cfg.latency_ms / 1000.0 if path.startswith("/crm/") else 0.0

    def decide(self, path: str) -> Injected | None:
        """Once per request (API and token endpoint): the fault it gets, if any.
        Order: fail_next, drop, burst 429, random error."""
        with self._lock:
            cfg = self._cfg
            for spec in cfg.fail_next:
                if spec.count > 0 and path.startswith(spec.path_prefix):
                    spec.count -= 1
                    return _answer(spec.status, spec.code, spec.body)
            if not path.startswith("/crm/"):
                return None
            self._api_requests += 1
            if cfg.drop_next > 0:
                cfg.drop_next -= 1
                return Injected(drop=True)
            if cfg.drop_rate and self._rng.random() < cfg.drop_rate:
                return Injected(drop=True)
            if cfg.burst_every:
                phase = (self._api_requests - 1) % cfg.burst_every
                if phase >= cfg.burst_every - cfg.burst_length:
                    return _answer(429, None, None)
            if cfg.error_rate and self._rng.random() < cfg.error_rate:
                return _answer(cfg.error_status, None, None)
            return None

    def rejection(self, record_id: str) -> str | None:
        with self._lock:
            return self._cfg.reject_ids.get(record_id)


def _answer(status: int, code: str | None, body: Any) -> Injected:
    if body is None:
        body = error(
            code or ERROR_CODES.get(status, "INTERNAL_ERROR"),
            MESSAGES.get(status, "injected fault"),
        )
    return Injected(status=status, body=body)


def _parse(spec: Mapping[str, Any]) -> _Config:
    if not isinstance(spec, Mapping):
        raise ValueError("faults must be a mapping")
    unknown = set(spec) - FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}; known: {sorted(FAULT_KEYS)}")
    cfg = _Config()
    try:
        cfg.latency_ms = _number(spec, "latency_ms", 0.0, 0)
        cfg.error_rate = _number(spec, "error_rate", 0.0, 0, 1)
        cfg.error_status = int(_number(spec, "error_status", 500, 100, 599))
        cfg.burst_every = int(_number(spec, "burst_every", 0, 0))
        cfg.burst_length = int(_number(spec, "burst_length", 1, 0))
        if cfg.burst_every and cfg.burst_length >= cfg.burst_every:
            raise ValueError("burst_length must be < burst_every")
        cfg.drop_rate = _number(spec, "drop_rate", 0.0, 0, 1)
        cfg.drop_next = int(_number(spec, "drop_next", 0, 0))
        rejects = spec.get("reject_ids") or {}
        if isinstance(rejects, Mapping):
            cfg.reject_ids = {str(k): str(v) for k, v in rejects.items()}
        else:
            cfg.reject_ids = {str(i): "RECORD_LOCKED" for i in rejects}
        for item in spec.get("fail_next") or ():
            extra = set(item) - {"status", "count", "path_prefix", "code", "body"}
            if extra:
                raise ValueError(f"unknown fail_next keys: {sorted(extra)}")
            cfg.fail_next.append(
                _FailSpec(
                    status=int(item["status"]),
                    count=int(item.get("count", 1)),
                    path_prefix=str(item.get("path_prefix") or "/crm/"),
                    code=item.get("code"),
                    body=item.get("body"),
                )
            )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"malformed faults: {exc!r}") from None
    return cfg


def _number(
    spec: Mapping[str, Any], key: str, default: float, lo: float, hi: float | None = None
) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{key} must be in [{lo}, {hi if hi is not None else 'inf'}]")
    return value


# --------------------------------------------------------------------------- limits

# Concurrent API calls per app per org, by edition (Zoho's api-limits page).
CONCURRENCY = {"free": 5, "standard": 10, "professional": 15, "enterprise": 20, "ultimate": 25}
CREDITS_WINDOW = 86400


class Credits:
    """API credits over a rolling 24 h of fake time. ``budget`` None = unlimited."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int]] = deque()
        self._used = 0
        self.total = 0

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - CREDITS_WINDOW:
            self._used -= self._spent.popleft()[1]

    def take(self, now: float, cost: int = 1) -> bool:
        """Spend ``cost`` credits; False (nothing spent) if the budget does not allow it."""
        with self._lock:
            self._expire(now)
            if self.budget is not None and self._used + cost > self.budget:
                return False
            self._spent.append((now, cost))
            self._used += cost
            self.total += cost
            return True

    def remaining(self, now: float) -> int | None:
        with self._lock:
            self._expire(now)
            return None if self.budget is None else max(0, self.budget - self._used)

    def used(self, now: float) -> int:
        with self._lock:
            self._expire(now)
            return self._used
