"""Fault injection for the sandbox CRM: what a flaky, rate-limited, buggy CRM does.

The fault set is replaced as a whole by :meth:`Faults.configure` (``{}`` clears it). Random
faults draw from a generator seeded with the sandbox seed and reset on every configure, so a
sequential client sees the same faults on the same requests in every run.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Default error bodies by status, shaped like every other sandbox error.
_CODES = {
    400: "BAD_REQUEST",
    401: "INVALID_TOKEN",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def error_body(status: int, message: str = "injected fault") -> bytes:
    code = _CODES.get(status, f"HTTP_{status}")
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@dataclass
class FailSpec:
    """``fail_next`` entry: answer the next ``count`` matching requests with ``status``."""

    status: int
    count: int = 1
    path_prefix: str = ""
    retry_after: float | None = None
    body: Any = None


@dataclass(frozen=True)
class Injected:
    """What to do instead of serving a request: drop the connection, or answer this."""

    drop: bool = False
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class _Config:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_every: int = 0
    retry_after: float = 1
    drop_rate: float = 0.0
    fail_next: list[FailSpec] = field(default_factory=list)
    fail_ids: set[str] = field(default_factory=set)
    malformed_next: int = 0
    omit_id_next: int = 0


FAULT_KEYS = frozenset(_Config.__dataclass_fields__)


class Faults:
    """The current fault set; every method is thread-safe."""

    def __init__(self, seed: int = 42) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._cfg = _Config()
        self._rng = random.Random(f"crmsync-sandbox-faults/{seed}")
        self._requests = 0  # API requests seen since the last configure (rate_limit_every)

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Replace the fault set with ``spec`` (keys as in API.md); ValueError if malformed."""
        cfg = _parse(spec)
        with self._lock:
            self._cfg = cfg
            self._rng = random.Random(f"crmsync-sandbox-faults/{self._seed}")
            self._requests = 0

    def clear(self) -> None:
        self.configure({})

    def describe(self) -> dict[str, Any]:
        """The current fault set, as JSON-able data (what ``GET /_sandbox/faults`` shows)."""
        with self._lock:
            cfg = self._cfg
            out = {k: getattr(cfg, k) for k in sorted(FAULT_KEYS)}
            out["fail_next"] = [vars(f).copy() for f in cfg.fail_next if f.count > 0]
            out["fail_ids"] = sorted(cfg.fail_ids)
            return out

    def latency(self) -> float:
        """Seconds to wait before answering (the caller sleeps: other requests go on)."""
        with self._lock:
            return self._cfg.latency_ms / 1000.0

    def decide(self, path: str) -> Injected | None:
        """Called once per API request: the fault it gets, if any. Order: drop, fail_next,
        rate limit, random error (one fault per request; a 429 is never also dropped)."""
        with self._lock:
            cfg = self._cfg
            self._requests += 1
            if cfg.drop_rate and self._rng.random() < cfg.drop_rate:
                return Injected(drop=True)
            for spec in cfg.fail_next:
                if spec.count > 0 and path.startswith(spec.path_prefix):
                    spec.count -= 1
                    return _answer(spec.status, spec.retry_after, spec.body)
            if cfg.rate_limit_every and self._requests % cfg.rate_limit_every == 0:
                return _answer(429, cfg.retry_after, None)
            if cfg.error_rate and self._rng.random() < cfg.error_rate:
                return _answer(cfg.error_status, None, None)
            return None

    def take_malformed(self) -> bool:
        """True if this response must be sent truncated (consumes one ``malformed_next``)."""
        with self._lock:
            if self._cfg.malformed_next > 0:
                self._cfg.malformed_next -= 1
                return True
            return False

    def take_omit_id(self) -> bool:
        """True if this list page must lose one record's id (consumes one ``omit_id_next``)."""
        with self._lock:
            if self._cfg.omit_id_next > 0:
                self._cfg.omit_id_next -= 1
                return True
            return False

    def rejects(self, record_id: str) -> bool:
        """True if writes to ``record_id`` must fail with WRITE_REJECTED."""
        with self._lock:
            return record_id in self._cfg.fail_ids


def _answer(status: int, retry_after: float | None, body: Any) -> Injected:
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        value = int(retry_after) if float(retry_after).is_integer() else retry_after
        headers = (("Retry-After", str(value)),)
    if body is None:
        data = error_body(status, "rate limit exceeded" if status == 429 else "injected fault")
    elif isinstance(body, str):
        data = body.encode()  # verbatim: lets a test send a broken or HTML error page
    else:
        data = json.dumps(body).encode()
    return Injected(status=status, headers=headers, body=data)


def _parse(spec: Mapping[str, Any]) -> _Config:
    if not isinstance(spec, Mapping):
        raise ValueError("faults must be a JSON object")
    unknown = set(spec) - FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown fault keys: {sorted(unknown)}")
    cfg = _Config()
    try:
        cfg.latency_ms = _number(spec, "latency_ms", 0.0, lo=0)
        cfg.error_rate = _number(spec, "error_rate", 0.0, lo=0, hi=1)
        cfg.error_status = int(_number(spec, "error_status", 503, lo=100, hi=599))
        cfg.rate_limit_every = int(_number(spec, "rate_limit_every", 0, lo=0))
        cfg.retry_after = _number(spec, "retry_after", 1, lo=0)
        cfg.drop_rate = _number(spec, "drop_rate", 0.0, lo=0, hi=1)
        cfg.malformed_next = int(_number(spec, "malformed_next", 0, lo=0))
        cfg.omit_id_next = int(_number(spec, "omit_id_next", 0, lo=0))
        cfg.fail_ids = {str(i) for i in spec.get("fail_ids") or ()}
        for item in spec.get("fail_next") or ():
            extra = set(item) - {"status", "count", "path_prefix", "retry_after", "body"}
            if extra:
                raise ValueError(f"unknown fail_next keys: {sorted(extra)}")
            cfg.fail_next.append(
                FailSpec(
                    status=int(item["status"]),
                    count=int(item.get("count", 1)),
                    path_prefix=str(item.get("path_prefix") or ""),
                    retry_after=item.get("retry_after"),
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
