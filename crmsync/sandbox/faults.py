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
from dataclasses import dataclass, field, replace
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
    """``fail_next`` entry: answer the next ``count`` matching requests with ``status``, or
    ``drop`` them: ``"before"`` serving them (nothing done), ``"after"`` (done, unanswered)."""

    status: int = 0
    count: int = 1
    path_prefix: str = ""
    retry_after: float | None = None
    body: Any = None
    drop: str = ""


@dataclass(frozen=True)
class Injected:
    """What to do with a request: drop the connection (``drop``), answer this instead
    (``status``), or serve it and then drop the connection unanswered (``drop_after``: a write
    is done, but the client never hears so). ``expire_tokens``: first, every issued OAuth token
    expires. ``kinds``: the faults injected, for the stats."""

    drop: bool = False
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    drop_after: bool = False
    expire_tokens: bool = False
    kinds: tuple[str, ...] = ()


@dataclass
class _Config:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_every: int = 0
    rate_limit_burst: int = 1
    retry_after: float = 1
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    expire_tokens_every: int = 0
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
        self._requests = 0  # API requests seen since the last configure (the *_every keys)
        self._burst_left = 0  # requests still to get the current rate-limit burst's 429

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Replace the fault set with ``spec`` (keys as in API.md); ValueError if malformed."""
        cfg = _parse(spec)
        with self._lock:
            self._cfg = cfg
            self._rng = random.Random(f"crmsync-sandbox-faults/{self._seed}")
            self._requests = 0
            self._burst_left = 0

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
        """Called once per API request: the fault it gets, if any. First, every
        ``expire_tokens_every``-th request expires the issued OAuth tokens; then at most one
        of, in order: drop, fail_next, rate limit (a burst started by every
        ``rate_limit_every``-th request; a drop or fail_next inside a burst uses up its turn),
        random error, drop after serving."""
        with self._lock:
            cfg = self._cfg
            self._requests += 1
            if cfg.rate_limit_every and self._requests % cfg.rate_limit_every == 0:
                self._burst_left = cfg.rate_limit_burst
            limited = self._burst_left > 0
            if limited:
                self._burst_left -= 1
            expire = bool(cfg.expire_tokens_every) and (
                self._requests % cfg.expire_tokens_every == 0
            )
            fault = self._pick(cfg, path, limited)
        if not expire:
            return fault
        if fault is None:
            return Injected(expire_tokens=True, kinds=("token_expiry",))
        return replace(fault, expire_tokens=True, kinds=("token_expiry", *fault.kinds))

    def _pick(self, cfg: _Config, path: str, limited: bool) -> Injected | None:
        if cfg.drop_rate and self._rng.random() < cfg.drop_rate:
            return Injected(drop=True, kinds=("drop",))
        for spec in cfg.fail_next:
            if spec.count > 0 and path.startswith(spec.path_prefix):
                spec.count -= 1
                if spec.drop == "before":
                    return Injected(drop=True, kinds=("drop",))
                if spec.drop == "after":
                    return Injected(drop_after=True, kinds=("drop_after",))
                return _answer(spec.status, spec.retry_after, spec.body, "fail_next")
        if limited:
            return _answer(429, cfg.retry_after, None, "rate_limit")
        if cfg.error_rate and self._rng.random() < cfg.error_rate:
            return _answer(cfg.error_status, None, None, "error")
        if cfg.drop_after_rate and self._rng.random() < cfg.drop_after_rate:
            return Injected(drop_after=True, kinds=("drop_after",))
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


def _answer(status: int, retry_after: float | None, body: Any, kind: str) -> Injected:
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
    return Injected(status=status, headers=headers, body=data, kinds=(kind,))


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
        cfg.rate_limit_burst = int(_number(spec, "rate_limit_burst", 1, lo=1))
        cfg.retry_after = _number(spec, "retry_after", 1, lo=0)
        cfg.drop_rate = _number(spec, "drop_rate", 0.0, lo=0, hi=1)
        cfg.drop_after_rate = _number(spec, "drop_after_rate", 0.0, lo=0, hi=1)
        cfg.expire_tokens_every = int(_number(spec, "expire_tokens_every", 0, lo=0))
        cfg.malformed_next = int(_number(spec, "malformed_next", 0, lo=0))
        cfg.omit_id_next = int(_number(spec, "omit_id_next", 0, lo=0))
        cfg.fail_ids = {str(i) for i in spec.get("fail_ids") or ()}
        for item in spec.get("fail_next") or ():
            extra = set(item) - {"status", "count", "path_prefix", "retry_after", "body", "drop"}
            if extra:
                raise ValueError(f"unknown fail_next keys: {sorted(extra)}")
            drop = str(item.get("drop") or "")
            if drop not in ("", "before", "after"):
                raise ValueError("fail_next drop must be 'before' or 'after'")
            if not drop and "status" not in item:
                raise ValueError("a fail_next entry needs a status or a drop")
            cfg.fail_next.append(
                FailSpec(
                    status=0 if drop else int(item["status"]),
                    count=int(item.get("count", 1)),
                    path_prefix=str(item.get("path_prefix") or ""),
                    retry_after=item.get("retry_after"),
                    body=item.get("body"),
                    drop=drop,
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
