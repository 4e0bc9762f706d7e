"""Scheduled snapshot and retention: what ``crmsync snapshot create`` and ``crmsync snapshot
forget --prune`` do, without the CLI (for ``crmsync run`` and ``crmsync serve`` jobs).

Retention follows ``[snapshots.keep]`` over groups of (connection, modules), as ``forget``'s
default ``--group-by``; apply's pre-change copies are never forgotten here (``restore --data``
reads them; ``crmsync snapshot forget --include-pre-change`` removes them by hand).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crmsync.config import Config
from crmsync.errors import ConfigError, CrmsyncError
from crmsync.store import Store

if TYPE_CHECKING:
    from crmsync.snapshots.repository import SnapshotInfo

SCHEDULED_TAG = "scheduled"


@dataclass
class RetentionResult:
    kept: int = 0
    forgotten: list[str] = field(default_factory=list)
    prune: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "forgotten": list(self.forgotten), "prune": self.prune}


def take_snapshots(
    config: Config,
    store: Store,
    connections: Iterable[str],
    *,
    operator: str,
    tags: Sequence[str] = (SCHEDULED_TAG,),
    reason: str = "crmsync run",
) -> list[SnapshotInfo]:
    """One whole snapshot per connection the mirror holds anything of (others are skipped);
    the repository is created on first use."""
    from crmsync.snapshots.configured import open_configured
    from crmsync.snapshots.source import mirror_modules, snapshot_mirror

    repo = None
    infos = []
    for name in connections:
        modules = mirror_modules(store, name)
        if not modules:
            continue
        repo = repo or open_configured(config.snapshots, create=True)
        # later snapshots read what changed since the last one (or hashes, texts of changes)
        infos.append(
            snapshot_mirror(repo, store, name, modules, tags=tags, operator=operator, reason=reason)
        )
    return infos


def apply_retention(config: Config, *, prune: bool = True) -> RetentionResult:
    """Forget the whole snapshots ``[snapshots.keep]`` does not keep, then prune their data."""
    from crmsync.snapshots.configured import open_configured, repository_exists
    from crmsync.snapshots.retention import KeepPolicy, SnapshotRef, apply_policy

    settings = config.snapshots
    keep = dict(settings.keep)
    if "tags" in keep:
        keep["tags"] = tuple(keep["tags"])
    try:
        policy = KeepPolicy(**keep)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), path="snapshots.keep") from None
    if not repository_exists(settings):
        return RetentionResult()
    repo = open_configured(settings)
    whole = [s for s in repo.list() if s.scope != "selection"]
    refs = [
        SnapshotRef(s.id, datetime.fromisoformat(s.time), s.tags, (s.connection, s.modules))
        for s in whole
    ]
    try:
        decisions = apply_policy(refs, policy) if refs else []
    except ValueError as exc:
        raise CrmsyncError(f"retention: {exc}") from None
    # [retention] snapshots_max_age and legal holds on snapshots (crmsync.compliance), over
    # every snapshot: pre-change copies age out too
    from crmsync.compliance.snapshot_rules import overridden

    verdicts = {d.snapshot.id: d.keep for d in decisions}
    ruled = overridden([(s, verdicts.get(s.id, True), []) for s in repo.list()], config)
    result = RetentionResult(kept=sum(keep for s, keep, _ in ruled if s.scope != "selection"))
    result.forgotten = [s.id for s, keep, _ in ruled if not keep]
    if result.forgotten:
        repo.forget(result.forgotten)
        if prune:
            result.prune = repo.prune().as_dict()
    return result
