"""What retention and legal holds add to ``snapshot forget`` (and ``crmsync run``'s retention):

- a snapshot older than ``[retention] snapshots_max_age`` is forgotten even when
  ``[snapshots.keep]`` would keep it (storage limitation: backups count, GDPR Art.5(1)(e),
  PIPL Art.47); this applies to apply's pre-change copies too;
- a snapshot a legal hold names (``crmsync hold add --snapshot ID``; a prefix as ``snapshot``
  commands accept) is never forgotten, whatever else says so.

Restic's rules are otherwise untouched: this only overrides their verdicts, after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crmsync.compliance import holds
from crmsync.compliance.retention import retention_of


@dataclass(frozen=True)
class Override:
    keep: bool
    reason: str


def overrides(
    snapshots: Iterable[tuple[str, str]],
    config: Any,
    now: datetime | None = None,
    *,
    max_age: bool = True,
) -> dict[str, Override]:
    """``{snapshot id: Override}`` for the (id, ISO time) pairs these rules decide
    (``max_age=False``: holds only, for snapshots forgotten by name)."""
    now = now or datetime.now(UTC)
    limit = retention_of(config).snapshots_max_age if max_age else None
    held = _held(config, now)
    out: dict[str, Override] = {}
    for sid, time in snapshots:
        hold = next((h for prefix, h in held.items() if sid.startswith(prefix)), None)
        if hold is not None:
            out[sid] = Override(True, f"legal hold {hold.id}")
            continue
        if limit is not None:
            taken = datetime.fromisoformat(time.replace("Z", "+00:00"))
            if taken.tzinfo is None:
                taken = taken.replace(tzinfo=UTC)
            if taken < now - limit:
                text = retention_of(config).snapshots_max_age_text
                out[sid] = Override(False, f"older than snapshots_max_age {text}")
    return out


def overridden(
    decisions: list[tuple[Any, bool, list[str]]], config: Any, *, max_age: bool = True
) -> list[tuple[Any, bool, list[str]]]:
    """``forget``'s (snapshot info, keep, reasons) with these rules' verdicts applied."""
    rules = overrides(((s.id, s.time) for s, _, _ in decisions), config, max_age=max_age)
    out = []
    for snap, keep, reasons in decisions:
        rule = rules.get(snap.id)
        if rule is not None and rule.keep != keep:
            keep, reasons = rule.keep, [*reasons, rule.reason] if rule.keep else [rule.reason]
        out.append((snap, keep, reasons))
    return out


def _held(config: Any, now: datetime) -> dict[str, holds.Hold]:
    """Held snapshot ids, from the store when it exists (forget never creates one)."""
    if not config.store_path.exists():
        return {}
    from crmsync.store import open_store

    with open_store(config.store_path) as store:
        return holds.held_snapshots(store, now)
