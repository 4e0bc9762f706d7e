"""Which rule wins for one record: legal hold > statutory minimum > erasure request / maximum
retention > ordinary policy (design-anchors §5; GDPR Art.17(3), Art.18; PIPL Art.47).

A pure function of the facts, so the whole table can be tested: :func:`decide`.

- Something wants the record deleted (an erasure request, its maximum retention has passed, a
  purge policy or ``purge_voided_after`` selects it) and nothing blocks it: **purge**.
- It is wanted deleted but a hold or an unexpired statutory floor blocks it: **restrict**
  (voided, excluded from processing, the reason audited; purged when the block ends).
- Nothing wants it deleted but a hold or floor covers it: **keep** (nothing to do; a report
  says why it is kept).
- Otherwise **none**: no compliance rule applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["purge", "restrict", "keep", "none"]

# Legal-basis codes audited with a verdict (design-anchors §5: codes, not personal data).
BASIS_ERASURE = "GDPR-17-1"  # an erasure request (the request names its own ground)
BASIS_MAXIMUM = "PIPL-47-1-1"  # purpose achieved / no longer necessary; GDPR Art.5(1)(e)
BASIS_RETENTION = "PIPL-47-1-2"  # the retention period has expired
BASIS_HOLD = "GDPR-17-3-e"  # legal claims: kept, processing restricted (GDPR Art.18)
BASIS_STATUTORY = "PIPL-47-2"  # a statutory period not expired: store only, stop processing


@dataclass(frozen=True)
class Facts:
    """What applies to one record at one moment."""

    held: str | None = None  # the hold that covers it (id and reason), if any
    floor_until: str | None = None  # its statutory floor's end, when not yet passed
    floor_basis: str | None = None  # the floor's legal-basis code
    erasure_requested: bool = False
    maximum_passed: bool = False  # purge_archived_after (purpose ended) has passed
    policy_purge: bool = False  # a purge policy / purge_voided_after selects it
    policy_basis: str | None = None  # the purge's configured legal-basis code


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    basis: str | None = None  # legal-basis code for the audit log


def decide(facts: Facts) -> Decision:
    """The verdict for one record, and why (module docstring)."""
    due = facts.erasure_requested or facts.maximum_passed or facts.policy_purge
    if facts.held is not None:
        if due:
            return Decision("restrict", f"deletion due but under {facts.held}", BASIS_HOLD)
        return Decision("keep", f"kept by {facts.held}", BASIS_HOLD)
    if facts.floor_until is not None:
        basis = facts.floor_basis or BASIS_STATUTORY
        what = f"statutory minimum ({basis}) until {facts.floor_until}"
        if due:
            return Decision("restrict", f"deletion due but inside the {what}", basis)
        return Decision("keep", f"kept by the {what}", basis)
    if facts.erasure_requested:
        return Decision("purge", "erasure requested", BASIS_ERASURE)
    if facts.maximum_passed:
        return Decision("purge", "maximum retention passed (purpose ended)", BASIS_MAXIMUM)
    if facts.policy_purge:
        return Decision("purge", "past its retention period", facts.policy_basis or BASIS_RETENTION)
    return Decision("none", "no retention rule applies")
