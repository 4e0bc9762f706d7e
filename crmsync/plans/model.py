"""Plans: what a set of policies would do to the mirror, frozen for review, approval and apply.

A plan is the Terraform-style contract between ``crmsync plan`` and ``crmsync apply``: apply
changes exactly the records the plan listed (never what a policy would match *now*), skips the
ones that changed in the CRM since (drift), and refuses a plan that expired, was made under a
different config, or lacks a required approval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Item states. An item moves pending -> sending -> done | failed | drift; "sending" is
# committed before the request goes out, so after a crash apply knows which records may
# already have been written (it checks them in the CRM instead of writing them again).
PENDING = "pending"
SENDING = "sending"
DONE = "done"
FAILED = "failed"
DRIFT = "drift"
GONE = "gone"  # deleted in the CRM since the plan
FINAL_STATES = (DONE, FAILED, DRIFT, GONE)

# Plan statuses.
PLANNED = "planned"
APPLYING = "applying"
APPLIED = "applied"  # every item reached a final state
EXPIRED = "expired"

# Lifecycle status each action leaves a record in.
TARGET_STATUS = {"archive": "archived", "void": "voided", "restore": "active"}


@dataclass(frozen=True)
class PlanPolicy:
    """One policy's part of a plan, with its guard verdict."""

    policy: str
    connection: str
    module: str
    action: str
    params: dict[str, Any]
    matched: int
    module_total: int
    max_records: int
    max_percent: float
    require_approval: bool
    guard: str | None = None  # None: within limits; else why it is exceeded

    @property
    def percent(self) -> float:
        return 100.0 * self.matched / self.module_total if self.module_total else 0.0


@dataclass(frozen=True)
class PlanInfo:
    id: str
    created_at: str
    created_by: str
    expires_at: str
    config_hash: str
    status: str
    policies: list[PlanPolicy] = field(default_factory=list)
    approvals: list[tuple[str, str]] = field(default_factory=list)  # (approver, at)
    kind: str = "policy"  # policy | restore

    def policy(self, name: str) -> PlanPolicy | None:
        return next((p for p in self.policies if p.policy == name), None)


@dataclass(frozen=True)
class PlanItem:
    plan_id: str
    policy: str
    connection: str
    module: str
    record_id: str
    planned_modified_at: str | None
    planned_hash: str
    before_status: str
    state: str = PENDING
    error: str | None = None
    snapshot_id: str | None = None
    source_hash: str | None = None  # restore --data: the kept copy to put field values back from
    # Per-record plan data (store schema 6): {"fields": {...}, "before": {...}} for a policy that
    # computes each record's values (update with normalize, classify); {"cluster": key,
    # "survivor": record id} for a record a duplicates policy voids. None: nothing per record.
    detail: dict[str, Any] | None = None

    @property
    def fields(self) -> dict[str, Any] | None:
        """The field values planned for this record, when the policy computed them."""
        return None if self.detail is None else self.detail.get("fields")
