"""The audit entry format: what callers write, what the store keeps, and how it is hashed.

An entry is sealed (given ``seq``, ``time``, ``prev_hash`` and ``hash``) by the store, inside
the write transaction that also holds the state change it describes, so the chain head read
and the insert cannot interleave with another writer.

Hash (format version 1)::

    hash = sha256_hex(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode("utf-8"))

where ``payload`` holds every column of :data:`HASHED_FIELDS` (``detail`` as its stored
canonical text, ``record_ref`` in place of ``record_id``). The genesis entry (seq 1) has
``prev_hash`` = 64 zeros. Values are only strings, integers and nulls, so any JSON library
with sorted keys reproduces the bytes: an auditor can verify an export without crmsync.

Personal data: the log keeps no record field values. ``record_id`` is kept as the CRM gave it,
because restore and ``audit log --record`` need it, but the hash covers ``record_ref`` =
sha256(record_id) instead, so an erasure request can redact the id (set it to null) without
breaking the chain; the entry stays findable by the id's digest.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64

# Record transitions (plugins may add actions, so only the shape is enforced) and
# non-record events, which are dotted: plan.create, plan.approve, apply.start, config.change.
RECORD_ACTIONS = ("archive", "void", "restore", "purge", "restrict", "tag", "update")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# ok | failed:<code> | skipped:drift | ... : a word, optionally a colon and a short code.
_OUTCOME = re.compile(r"^[a-z]+(:[A-Za-z0-9_.\-]{1,64})?$")
MAX_DETAIL_BYTES = 4096
# A cheap tripwire, not a guarantee: the caller must keep secrets and field values out.
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api_?key|cookie", re.I)

# Columns in export order. Every one but record_id (and hash itself) is covered by the hash.
FIELDS = (
    "seq",
    "v",
    "time",
    "operator",
    "action",
    "connection",
    "module",
    "record_id",
    "record_ref",
    "before_status",
    "after_status",
    "plan_id",
    "run_id",
    "snapshot_id",
    "policy",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
)
HASHED_FIELDS = tuple(f for f in FIELDS if f not in ("record_id", "hash"))
INT_FIELDS = frozenset({"seq", "v", "run_id"})
_OPTIONAL_TEXT = (
    "connection",
    "module",
    "record_id",
    "before_status",
    "after_status",
    "plan_id",
    "snapshot_id",
    "policy",
)


def current_operator(override: str | None = None) -> str:
    """Who is acting: ``--operator`` if given, else the OS user (schedulers pass e.g.
    ``scheduler:cron``)."""
    if override:
        return override
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def record_ref(record_id: str) -> str:
    """The digest the hash covers in place of the record id (see the module docstring)."""
    return hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def outcome_code(error: str | None) -> str:
    """A connector's per-record error as an audit outcome code (``failed:<code>``): its first
    word, only the characters the outcome grammar allows, at most 40 of them."""
    text = (error or "ERROR").strip().split()[0]
    return "".join(ch for ch in text if ch.isalnum() or ch in "_-.")[:40] or "ERROR"


def canonical_detail(detail: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(
            dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit detail must be plain JSON: {exc}") from None
    if len(text.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise ValueError(f"audit detail is larger than {MAX_DETAIL_BYTES} bytes")
    _reject_secret_keys(detail)
    return text


def _reject_secret_keys(value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if _SECRET_KEYS.search(str(key)):
                raise ValueError(f"audit detail must not carry secrets (key {key!r})")
            _reject_secret_keys(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            _reject_secret_keys(inner)


@dataclass(frozen=True)
class AuditEntry:
    """One event to record, as the caller describes it. The store seals it."""

    action: str
    operator: str
    outcome: str = "ok"
    connection: str | None = None
    module: str | None = None
    record_id: str | None = None
    before_status: str | None = None
    after_status: str | None = None
    plan_id: str | None = None
    run_id: int | None = None
    snapshot_id: str | None = None
    policy: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    # The canonical text of ``detail``, computed once at validation and reused when sealing.
    detail_text: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        # Validate at construction so a bad entry fails before any transaction opens.
        if not _ACTION.match(self.action):
            raise ValueError(f"bad audit action {self.action!r}")
        if not _OUTCOME.match(self.outcome):
            raise ValueError(f"bad audit outcome {self.outcome!r} (e.g. ok, failed:429)")
        if not self.operator:
            raise ValueError("audit operator must not be empty")
        if self.run_id is not None and (
            isinstance(self.run_id, bool) or not isinstance(self.run_id, int)
        ):
            raise ValueError(f"audit run_id must be an integer, not {self.run_id!r}")
        if isinstance(self.record_id, int) and not isinstance(self.record_id, bool):
            object.__setattr__(self, "record_id", str(self.record_id))
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value == "":  # one spelling of "none", so CSV round-trips exactly
                object.__setattr__(self, name, None)
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"audit {name} must be a string, not {value!r}")
        object.__setattr__(self, "detail_text", canonical_detail(self.detail))


@dataclass(frozen=True)
class AuditRecord:
    """A sealed entry as stored and exported. ``detail`` is the canonical JSON text."""

    seq: int
    v: int
    time: str
    operator: str
    action: str
    connection: str | None
    module: str | None
    record_id: str | None
    record_ref: str | None
    before_status: str | None
    after_status: str | None
    plan_id: str | None
    run_id: int | None
    snapshot_id: str | None
    policy: str | None
    outcome: str
    detail: str
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def detail_obj(self) -> Any:
        return json.loads(self.detail)

    def computed_hash(self, seq: int | None = None) -> str:
        """The hash these contents should carry (at ``seq``, to test a moved entry)."""
        payload = {name: getattr(self, name) for name in HASHED_FIELDS}
        if seq is not None:
            payload["seq"] = seq
        return entry_hash(payload)


def entry_hash(payload: Mapping[str, Any]) -> str:
    # orjson gives byte-for-byte the documented json.dumps form for these values (strings,
    # 64-bit integers, nulls; tests/test_audit.py checks it) at a fraction of the cost.
    try:
        raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: the reference form
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        raw = text.encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def seal(entry: AuditEntry, *, seq: int, time: str, prev_hash: str) -> AuditRecord:
    """Give ``entry`` its place in the chain. Only the store calls this, under its write lock."""
    values: dict[str, Any] = {
        "seq": seq,
        "v": FORMAT_VERSION,
        "time": time,
        "operator": entry.operator,
        "action": entry.action,
        "connection": entry.connection,
        "module": entry.module,
        "record_ref": record_ref(entry.record_id) if entry.record_id is not None else None,
        "before_status": entry.before_status,
        "after_status": entry.after_status,
        "plan_id": entry.plan_id,
        "run_id": entry.run_id,
        "snapshot_id": entry.snapshot_id,
        "policy": entry.policy,
        "outcome": entry.outcome,
        "detail": entry.detail_text,
        "prev_hash": prev_hash,
    }
    return AuditRecord(record_id=entry.record_id, hash=entry_hash(values), **values)


@dataclass(frozen=True)
class AuditQuery:
    """Filters for ``Store.find_audit``; times are UTC in the store's format (see
    :func:`crmsync.audit.parse_time`). ``limit`` keeps the newest N (None: all)."""

    record_id: str | None = None
    connection: str | None = None
    module: str | None = None
    policy: str | None = None
    plan_id: str | None = None
    run_id: int | None = None
    action: str | None = None
    operator: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = 50


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # what the store writes; sorts as text


def parse_time(text: str, *, now: datetime | None = None) -> str:
    """``2025-01-31``, ``2025-01-31T08:00``, ``...+08:00`` / ``Z`` or relative ``7d``, ``12h``,
    ``30m``, ``2w`` (that long ago) -> UTC in the store's format. Naive times are UTC."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"bad time {text!r}: use an ISO date/time (2025-01-31, 2025-01-31T08:00Z)"
                " or an age such as 7d, 12h, 30m"
            ) from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime(TIME_FORMAT)
