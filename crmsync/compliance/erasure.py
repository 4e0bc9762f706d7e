"""Erasure requests (``crmsync erase``): find every record of a person, plan their erasure.

**Finding.** Across the configured connections (or the one chosen): mirror rows holding one of
the person's e-mail or phone keys in any field, records named outright (``--record``), records
of which only a snapshot version or a legacy copy still holds the keys (deleted from the CRM
long ago: the snapshot packs are scanned one at a time), and for all of them how many stored
versions each snapshot repository keeps. Records a legal hold or statutory minimum blocks
(:func:`crmsync.compliance.blocks.deletion_blocks`) are planned for *restriction* instead
(:func:`crmsync.compliance.precedence.decide`: hold > statutory minimum > erasure request).

**The plan** is an ordinary plan of kind ``erasure`` (crmsync.plans): one part per
(connection, module) and action (``erase`` / ``restrict``), one item per record with where it
was found (``detail``: places, field names, version counts, the block) — never the e-mail or
phone (the plan keeps only how many of each the request gave). It always needs approval by a
second operator (``crmsync approve``), then ``crmsync erase --apply PLAN``
(:mod:`crmsync.compliance.erasure_apply`).

**Guards** (exit 3, nothing stored): nothing found; more records than ``[erasure]
max_records`` (default 20; ``--max`` may lower it, never raise it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from crmsync.audit.model import AuditEntry
from crmsync.compliance.blocks import Block, deletion_blocks
from crmsync.compliance.erasure_config import erasure_of
from crmsync.compliance.erasure_match import Matcher, RecordRef, Subject
from crmsync.compliance.erasure_store import (
    MirrorHit,
    find_in_mirror,
    find_legacy,
    find_plan_details,
    legacy_copies,
    mirror_rows,
)
from crmsync.compliance.precedence import Facts, decide
from crmsync.config import Config
from crmsync.errors import ConfigError, GuardError
from crmsync.plans.model import PlanInfo, PlanItem, PlanPolicy
from crmsync.plans.planner import config_hash, iso, new_plan_id
from crmsync.store import Store

if TYPE_CHECKING:
    from crmsync.snapshots.repository import Repository

KIND = "erasure"
_BASIS = re.compile(r"[A-Z][A-Z0-9]{1,15}(-[0-9A-Za-z.]{1,12}){1,6}")
ABSENT = "absent"  # before_status of a record the mirror does not hold (snapshots only)


def check_basis(code: str) -> str:
    if not _BASIS.fullmatch(code):
        raise ConfigError(
            f"--basis {code!r} is not a legal-basis code (e.g. GDPR-17-1-b, PIPL-47-1-3)",
            path="--basis",
        )
    return code


@dataclass
class Found:
    """One record of the person and where its data is."""

    connection: str
    module: str
    record_id: str
    status: str = ABSENT  # the mirror's status, or "absent"
    in_crm: bool = False  # as of the last pull
    in_mirror: bool = False
    modified_at: str | None = None
    content_hash: str = ""
    fields: tuple[str, ...] = ()
    versions: int = 0  # stored versions in the snapshot repository
    kept: int = 0  # of which a snapshot under legal hold uses (left in place)
    snapshots: int = 0  # snapshots holding one of them
    legacy: int = 0  # legacy copies in the store (before store version 5)
    named: bool = False  # --record
    block: Block | None = None

    @property
    def ref(self) -> RecordRef:
        return (self.connection, self.module, self.record_id)

    @property
    def places(self) -> list[str]:
        out = []
        if self.in_crm:
            out.append("crm")
        if self.in_mirror:
            out.append("mirror")
        if self.versions:
            out.append("snapshots")
        if self.legacy:
            out.append("legacy copies")
        return out

    def detail(self) -> dict[str, Any]:
        """What the plan keeps of it: places, field names, counts, the block. No values."""
        out: dict[str, Any] = {
            "found": self.places, "matched_fields": list(self.fields),
            "versions": self.versions, "snapshots": self.snapshots, "legacy": self.legacy,
        }  # fmt: skip
        if self.kept:
            out["kept_by_snapshot_hold"] = self.kept
        if self.named:
            out["named"] = True
        elif self.in_mirror and not self.fields:
            # only an older version held the keys: the reviewer should look at this one
            out["current_matches"] = False
        if self.block is not None:
            decision = decide(
                Facts(
                    held=self.block.reason if self.block.kind == "hold" else None,
                    floor_until=self.block.until if self.block.kind == "statutory" else None,
                    floor_basis=self.block.code if self.block.kind == "statutory" else None,
                    erasure_requested=True,
                )
            )
            out["block"] = {
                "kind": self.block.kind, "reason": decision.reason, "until": self.block.until,
                "basis": decision.basis, "code": self.block.code,
            }  # fmt: skip
        return out


def find(
    config: Config,
    store: Store,
    subject: Subject,
    connections: Sequence[str],
    repo: Repository | None,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[Found]:
    """Every record of the person in ``connections`` (module docstring), blocks attached.
    With ``limit``, more records than that stop the search early (GuardError, exit 3): a
    shared address (info@...) should not cost a scan of every snapshot first."""
    now = now or datetime.now(UTC)
    matcher = Matcher(subject)
    found: dict[RecordRef, Found] = {}

    def note(hit: MirrorHit) -> Found:
        rec = found.setdefault(
            (hit.connection, hit.module, hit.record_id),
            Found(hit.connection, hit.module, hit.record_id),
        )
        rec.status, rec.in_crm, rec.in_mirror = hit.status, hit.in_crm, True
        rec.modified_at, rec.content_hash = hit.modified_at, hit.content_hash
        rec.fields = tuple(sorted(set(rec.fields) | set(hit.fields)))
        return rec

    for hit in find_in_mirror(store, matcher, connections):
        note(hit)
    named = [r for r in subject.records if r[0] in connections]
    rows = mirror_rows(store, named)
    for ref in named:
        rec = note(rows[ref]) if ref in rows else found.setdefault(ref, Found(*ref))
        rec.named = True
    for ref in find_legacy(store, matcher, connections):
        found.setdefault(ref, Found(*ref))
    if limit is not None and len(found) > limit:
        check_found(list(found.values()), limit)
    if repo is not None:
        from crmsync.snapshots.erase import scan, versions

        if matcher.searches_content:
            for ref in scan(repo, lambda line: _line_matches(matcher, line), connections):
                if ref[0] in connections:  # a pack shared with another connection's snapshots
                    found.setdefault(ref, Found(*ref))
        targets: dict[str, set[tuple[str, str]]] = {}
        for conn, module, rid in found:
            targets.setdefault(conn, set()).add((module, rid))
        held = held_snapshot_ids(store, now)
        for ref, where in versions(repo, targets, held).items():
            if ref in found:
                found[ref].versions = where.blobs
                found[ref].snapshots = len(where.snapshots)
                found[ref].kept = where.kept
    # Found by an old version only: the mirror may still hold the record, changed since.
    unseen = [ref for ref, rec in found.items() if not rec.in_mirror]
    for hit in mirror_rows(store, unseen).values():
        note(hit)
    for ref, n in legacy_copies(store, list(found)).items():
        found[ref].legacy = n
    by_module: dict[tuple[str, str], list[str]] = {}
    for conn, module, rid in found:
        by_module.setdefault((conn, module), []).append(rid)
    for (conn, module), ids in by_module.items():
        for rid, block in deletion_blocks(store, config, conn, module, ids, now).items():
            found[(conn, module, rid)].block = block
    return [found[k] for k in sorted(found)]


def held_snapshot_ids(store: Store, now: datetime) -> list[str]:
    """Snapshots an active legal hold keeps: erasure leaves the versions they use (hold >
    erasure request)."""
    from crmsync.compliance.holds import held_snapshots

    return sorted(held_snapshots(store, now))


def quoted_details(store: Store, subject: Subject, found: Sequence[Found]) -> list:
    """Plan items of other records whose detail quotes the person (an old duplicate cluster's
    key whose record changed since): cleared on apply too."""
    skip = {rec.ref for rec in found}
    return find_plan_details(store, Matcher(subject), skip)


def _line_matches(matcher: Matcher, line: bytes) -> bool:
    return matcher.candidate(line) and bool(matcher.fields(orjson.loads(line)))


def limit_for(config: Config, requested: int | None) -> int:
    """The most records one erasure may touch: ``--max`` may lower the configured one."""
    configured = erasure_of(config).max_records
    if requested is None:
        return configured
    if requested < 1:
        raise ConfigError("--max must be at least 1", path="--max")
    if requested > configured:
        # Said, not silently capped: the admin would otherwise believe the larger limit holds.
        raise ConfigError(
            f"--max {requested} is above [erasure] max_records ({configured}); --max may only"
            " lower it: raise max_records in the config for a larger request",
            path="--max",
        )
    return requested


def check_found(found: Sequence[Found], limit: int) -> None:
    """The guards: nothing found, or more than the limit (exit 3; nothing stored)."""
    if not found:
        raise GuardError("nothing to erase: no record in the mirror or the snapshots matches")
    if len(found) > limit:
        raise GuardError(
            f"the request matches {len(found)} records, more than the limit of {limit}"
            " ([erasure] max_records, or --max); nothing was planned. Narrow it (--connection,"
            " --record) or raise [erasure] max_records if this is really one person"
        )


def make_erasure_plan(
    config: Config,
    store: Store,
    found: Sequence[Found],
    *,
    subject: Subject,
    basis: str,
    reason: str | None,
    operator: str,
    limit: int,
    details: Sequence[tuple[str, str, str]] = (),
    now: datetime | None = None,
) -> PlanInfo:
    """Store the plan (module docstring). The guards must have passed (:func:`check_found`).
    ``details``: other plans' items whose detail quotes the person (:func:`quoted_details`),
    kept by reference (plan, part, record id) and cleared on apply."""
    now = now or datetime.now(UTC)
    plan_id = new_plan_id(now)
    store.create_plan(
        plan_id=plan_id, created_at=iso(now), created_by=operator,
        expires_at=iso(now + config.plan_ttl), config_hash=config_hash(config), queries=[],
        kind=KIND,
    )  # fmt: skip
    parts: dict[tuple[str, str, str], list[Found]] = {}
    for rec in found:
        action = "restrict" if rec.block is not None else "erase"
        parts.setdefault((action, rec.connection, rec.module), []).append(rec)
    params: dict[str, Any] = {"basis": basis, "request": subject.counts()}
    if reason:
        params["reason"] = reason
    if details:
        params["plan_details"] = [list(d) for d in details]
    policies = []
    with store.transaction() as tx:
        for (action, conn, module), recs in sorted(parts.items()):
            name = f"{action}:{conn}/{module}"
            tx.insert_plan_items(
                [
                    PlanItem(plan_id, name, conn, module, r.record_id, r.modified_at,
                             r.content_hash, r.status, detail=r.detail())
                    for r in recs
                ]
            )  # fmt: skip
            policies.append(
                PlanPolicy(
                    policy=name, connection=conn, module=module, action=action, params=params,
                    matched=len(recs), module_total=store.count(conn, module),
                    max_records=limit, max_percent=100.0, require_approval=True,
                )
            )  # fmt: skip
    store.set_plan_policies(plan_id, policies)
    store.append_audit(
        [
            AuditEntry(
                "plan.create", operator, plan_id=plan_id,
                detail={"kind": KIND, "basis": basis, "request": subject.counts(),
                        "records": len(found),
                        "restricted": sum(1 for r in found if r.block is not None)},
            )
        ]
    )  # fmt: skip
    plan = store.get_plan(plan_id)
    assert plan is not None
    return plan


def plan_view(store: Store, plan: PlanInfo) -> dict[str, Any]:
    """The plan as shown (and as --json prints it): parts, and per record where it was found."""
    parts = []
    for p in plan.policies:
        records = [
            {"record_id": i.record_id, "status": i.before_status, "state": i.state,
             **(i.detail or {})}
            for i in store.all_plan_items(plan.id, p.policy)
        ]  # fmt: skip
        parts.append(
            {"part": p.policy, "action": p.action, "connection": p.connection,
             "module": p.module, "records": records}
        )  # fmt: skip
    first = plan.policies[0].params if plan.policies else {}
    return {
        "id": plan.id, "kind": plan.kind, "status": plan.status, "created_by": plan.created_by,
        "expires_at": plan.expires_at, "basis": first.get("basis"),
        "request": first.get("request"), "reason": first.get("reason"),
        "approvals": [{"approver": a, "at": t} for a, t in plan.approvals], "parts": parts,
    }  # fmt: skip
