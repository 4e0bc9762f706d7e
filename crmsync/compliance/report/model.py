"""What the compliance report is made of: the store's aggregate rows and the report's sections.

Plain data, no I/O: :mod:`.gather` fills it, the renderers (:mod:`.text`, :mod:`.document`,
:mod:`.html`) read it. Nothing here holds a record field value, an e-mail or a phone: records
appear as counts, and erased ones as ``record_ref`` digests (sha256 of the id, as the audit
log keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# --------------------------------------------------------------------------- store rows


@dataclass(frozen=True)
class RestrictedGroup:
    """Restricted records of one module sharing a reason (the reason without its "until")."""

    reason: str
    records: int
    since: str | None  # the earliest restricted_at
    until: str | None  # the latest "until" of the group's reasons; None: until released


@dataclass(frozen=True)
class AuditGroup:
    """Audit entries of one action, plan, module, operator, outcome and legal basis."""

    action: str
    plan_id: str | None
    connection: str | None
    module: str | None
    operator: str
    outcome: str
    basis: str | None
    entries: int
    first: str
    last: str


@dataclass(frozen=True)
class ErasedRef:
    time: str
    plan_id: str | None
    connection: str | None
    module: str | None
    record_ref: str | None


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReportOptions:
    connection: str | None = None
    since: datetime | None = None  # default: until - 90 days
    until: datetime | None = None  # default: now
    limit: int = 50  # rows listed per list; counts are always complete
    nearing_days: int = 30
    now: datetime | None = None


@dataclass
class HoldRow:
    id: str
    kind: str
    scope: str
    reason: str
    created_by: str
    created_at: str
    expires_at: str | None
    records: int | None  # live mirrored records it covers now (None: snapshots hold)
    snapshots: tuple[str, ...] = ()
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    def ended(self) -> str:
        """When and how it ended: its release time, or "expired <time>"."""
        if self.released_at and not (self.expires_at and self.expires_at < self.released_at):
            return self.released_at[:19]
        return f"expired {(self.expires_at or '')[:19]}"


@dataclass
class RetentionRow:
    """One mirrored module and what its retention rule says of it now."""

    connection: str
    module: str
    rule: str | None  # "sales/Leads" or "sales/*"; None: no rule covers the module
    purge_voided_after: str | None
    purge_archived_after: str | None
    keep_at_least: str | None
    keep_basis: str | None
    purge_basis: str | None
    live: int = 0  # records in the CRM (not deleted there)
    voided: int = 0
    purgeable: int = 0  # voided past retention, not blocked: the next purge deletes them
    blocked: int = 0  # voided past retention but held or inside the statutory floor
    blocked_unrestricted: int = 0  # ... of which not yet marked restricted
    archived_past_maximum: int = 0  # archived past purge_archived_after: to be voided
    nearing: int = 0  # voided, past retention within the next nearing_days
    restricted: int = 0
    restricted_groups: list[RestrictedGroup] = field(default_factory=list)


@dataclass
class PlanActivity:
    """What one plan purged, erased or restricted in the period (from the audit log)."""

    plan_id: str | None
    kind: str  # purge | erasure | other
    action: str  # purge | erase | restrict
    connection: str | None
    module: str | None
    basis: str | None
    done: int = 0
    failed: int = 0
    skipped: int = 0
    first: str = ""
    last: str = ""
    applied_by: list[str] = field(default_factory=list)
    planned_by: str | None = None
    approved_by: list[str] = field(default_factory=list)


@dataclass
class OpenPlan:
    """A purge or erasure plan not carried out yet (waiting, approved, or left part-way)."""

    id: str
    kind: str
    status: str  # planned | applying
    created_by: str
    created_at: str
    expires_at: str
    approved_by: list[str]
    records: int
    expired: bool


@dataclass
class SnapshotRow:
    id: str
    time: str
    connection: str
    modules: tuple[str, ...]
    scope: str
    state: str  # overdue | held
    reason: str


@dataclass
class SnapshotSection:
    repository: str | None  # None: no [snapshots] repository configured
    available: bool
    problem: str | None = None
    max_age: str | None = None
    keep: dict[str, Any] = field(default_factory=dict)
    total: int = 0
    overdue: int = 0
    held: int = 0
    rows: list[SnapshotRow] = field(default_factory=list)  # overdue and held, capped


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    count: int = 1
    connection: str | None = None
    module: str | None = None
    ref: str | None = None  # a hold id, a plan id


@dataclass(frozen=True)
class AuditStatus:
    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    problem: str | None = None


@dataclass
class ComplianceReport:
    now: datetime
    since: datetime
    until: datetime
    connection: str | None
    limit: int
    nearing_days: int
    audit: AuditStatus
    active_holds: list[HoldRow] = field(default_factory=list)
    released_holds: list[HoldRow] = field(default_factory=list)
    retention: list[RetentionRow] = field(default_factory=list)
    activity: list[PlanActivity] = field(default_factory=list)
    activity_plans: int = 0  # plans with activity in the period (activity lists at most limit)
    erased_refs: list[ErasedRef] = field(default_factory=list)
    erased_total: int = 0
    open_plans: list[OpenPlan] = field(default_factory=list)
    open_plans_total: int = 0
    snapshots: SnapshotSection = field(default_factory=lambda: SnapshotSection(None, False))
    findings: list[Finding] = field(default_factory=list)
