"""apply's pre-change copies: a snapshot of exactly the records a policy is about to change,
committed to the snapshot repository before the first write; ``restore --data`` reads them.

The copy is a *selection* snapshot whose parent is the newest whole snapshot of the connection
that holds the module, so records already kept there cost no new data. The store notes which
versions each pre-change snapshot holds (for restore by record or by hash).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

from crmsync.snapshots.configured import open_configured
from crmsync.snapshots.errors import SnapshotError
from crmsync.snapshots.repository import RecordVersion, Repository

if TYPE_CHECKING:
    from crmsync.config import SnapshotsConfig
    from crmsync.store import Store

PRE_CHANGE_TAG = "pre-change"


class PreChangeSnapshots:
    def __init__(self, settings: SnapshotsConfig, store: Store):
        self.settings = settings
        self.store = store
        self._repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = open_configured(self.settings, create=True)
        return self._repo

    def take(
        self, plan_id: str, policy: str, connection: str, module: str, run_id: int, operator: str
    ) -> str | None:
        """Snapshot the pending, not yet copied items of one policy; None: nothing to copy."""
        rows = self.store.iter_unsnapshotted_items(plan_id, policy)
        first = next(rows, None)
        if first is None:
            return None
        info = self.repo.create(
            (RecordVersion(*row) for row in chain([first], rows)),
            connection=connection,
            modules=[module],
            tags=[PRE_CHANGE_TAG],
            parent=self._parent(connection, module),
            operator=operator,
            reason=f"before apply of plan {plan_id}, policy {policy}",
            selection=True,
        )
        noted = self.store.record_items_snapshot(plan_id, policy, run_id, info.id)
        if noted != info.records:  # the mirror changed between the two reads: never expected
            raise SnapshotError(
                f"pre-change snapshot {info.id} holds {info.records} records but {noted} plan"
                " items were noted; run apply again (nothing has been written to the CRM)"
            )
        return info.id

    def _parent(self, connection: str, module: str) -> str | None:
        whole = [
            s for s in self.repo.list()
            if s.connection == connection and module in s.modules and s.scope == "all"
        ]  # fmt: skip
        return whole[-1].id if whole else None

    def copy(self, digest: str) -> dict[str, Any] | None:
        """The kept record version with this hash (None: no copy was ever taken)."""
        where = self.store.copy_location(digest)
        if where is None:
            return self.store.snapshot_object(digest)  # taken before store version 5
        snapshot_id, _connection, module, record_id = where
        if snapshot_id.startswith("snap-"):
            return self.store.snapshot_object(digest)
        data = self.repo.get(snapshot_id, module, record_id)
        if data is None:
            raise SnapshotError(
                f"the copy of {module}/{record_id} in snapshot {snapshot_id} is no longer in the"
                f" snapshot repository at {self.settings.repository} (forgotten?)"
            )
        from crmsync.store.base import canonical_record

        if canonical_record(data)[1] != digest:
            raise SnapshotError(
                f"snapshot {snapshot_id} holds another version of {module}/{record_id} than"
                " the one the store noted; run `crmsync snapshot verify`"
            )
        return data
