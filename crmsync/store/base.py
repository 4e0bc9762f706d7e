"""The store interface. SQLite implements it today; a server database can implement it later.

Everything crmsync remembers goes through this: the mirror of CRM records, per-(connection,
module) sync cursors, runs, and the audit log. Each mutating call is one transaction: a page of
records and the cursor that comes with it commit together or not at all. Writes that must commit
together across kinds (mirror statuses and the audit entries describing them) go through
:meth:`Store.transaction`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from crmsync.audit.model import AuditEntry, AuditQuery, AuditRecord
from crmsync.hookspecs import PulledRecord
from crmsync.plans.model import PlanInfo, PlanItem, PlanPolicy
from crmsync.report.model import ModuleCounts, ModuleQuery, ModuleStatus, ReportScope

if TYPE_CHECKING:
    from collections.abc import Callable

    from crmsync.compliance.hold_model import Hold
    from crmsync.compliance.report.model import AuditGroup, ErasedRef, RestrictedGroup
    from crmsync.policy.model import Policy
    from crmsync.search.model import MirrorMatches, RecordState, SearchRequest


def canonical_json(data: Mapping[str, Any]) -> str:
    """Sorted keys, compact, UTF-8: the same record always gives the same text (and hash).

    orjson is 4-5x faster than json here, and this runs once per pulled record. Values orjson
    refuses (integers beyond 64 bits, non-string keys) fall back to json with the same layout.
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_record(data: Mapping[str, Any]) -> tuple[str, str]:
    """(canonical JSON text, its SHA-256 hex digest), hashing orjson's bytes directly."""
    try:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        raw = canonical_json(data).encode("utf-8")
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PageStats:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class CursorState:
    connection: str
    module: str
    cursor: str | None
    updated_at: str | None
    last_full_pull_at: str | None


@dataclass(frozen=True)
class MirrorRecord:
    connection: str
    module: str
    record_id: str
    modified_at: str | None
    status: str
    data: dict[str, Any]
    content_hash: str
    crm_deleted_at: str | None


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    connection: str | None
    module: str | None
    started_at: str
    finished_at: str | None
    status: str  # running | ok | failed
    summary: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class ModuleCount:
    connection: str
    module: str
    live: int
    deleted_in_crm: int


class ChangePoint(NamedTuple):
    """Where a snapshot started reading the mirror: rows stamped with generation ``gen`` or
    later, or inserted with a rowid above ``max_rowid``, changed after it."""

    gen: int
    max_rowid: int


class SnapshotMark(NamedTuple):
    """The snapshot the mirror's ``modules`` of ``connection`` were last taken into, in the
    repository with id ``repository`` (its index objects then: ``indexes``), from ``since``."""

    connection: str
    modules: tuple[str, ...]
    repository: str
    snapshot_id: str
    indexes: tuple[str, ...]
    since: ChangePoint


class MirrorChange(NamedTuple):
    """A mirror row changed since a :class:`ChangePoint`: its text and hash, or ``deleted``
    (gone from the CRM; text None)."""

    record_id: str
    text: str | None
    content_hash: str
    deleted: bool


class StoreTransaction(ABC):
    """One write transaction, from :meth:`Store.transaction`. Everything done through it
    commits together when the ``with`` block ends, or not at all if it raises. Add methods
    here (not raw SQL in callers) when another kind of write must join the transaction, e.g.
    the apply engine's per-batch checkpoint."""

    @abstractmethod
    def append_audit(self, entries: Iterable[AuditEntry]) -> list[AuditRecord]:
        """Seal ``entries`` onto the chain head, in order; returns them as stored."""

    @abstractmethod
    def set_status(
        self,
        connection: str,
        module: str,
        record_id: str,
        status: str,
        *,
        expected: str | None = None,
        modified_at: str | None = None,
    ) -> bool:
        """Set a mirrored record's lifecycle status. With ``expected``, only if the current
        status is that (compare-and-set). ``modified_at``: the CRM's new modified time after
        our own write, so a later drift check does not mistake our change for someone
        else's. Returns whether a row changed."""

    @abstractmethod
    def set_item_state(self, item: PlanItem, state: str, *, error: str | None = None) -> None:
        """Move a plan item to ``state`` (the apply engine's per-batch checkpoint)."""

    # -- restriction and purge (crmsync.compliance.purge_apply, erasure_apply)
    @abstractmethod
    def mark_restricted(
        self, connection: str, module: str, record_id: str, reason: str, at: str
    ) -> None:
        """Mark a mirrored record restricted (kept, not processed) for ``reason``; a record
        restricted before keeps its first ``at``."""

    @abstractmethod
    def mark_purged(self, connection: str, module: str, record_id: str, at: str) -> None:
        """Mark a mirrored record purged (deleted in the CRM at ``at`` unless noted earlier),
        no longer restricted."""

    # -- erasure (crmsync.compliance.erasure, erasure_apply)
    @abstractmethod
    def insert_plan_items(self, items: Sequence[PlanItem]) -> None:
        """Add chosen records to plans being made, each with its detail (an erasure plan's
        parts, stored together)."""

    @abstractmethod
    def clear_audit_record_id(self, seq: int) -> None:
        """Drop the record id of audit entry ``seq``, appended in this transaction: an
        erasure proof keeps the record_ref, never the id."""

    # -- legal holds (crmsync.compliance.holds), audited in the same transaction
    @abstractmethod
    def add_hold(self, hold: Hold, records: Sequence[tuple[str, str, str]]) -> None:
        """Store a new hold and, for a ``records`` hold, the (connection, module, record_id)
        it names (duplicates ignored)."""

    @abstractmethod
    def release_hold(self, hold_id: str, *, released_at: str, operator: str, reason: str) -> bool:
        """Mark a hold released (kept, with who, when and why) unless it already is; returns
        whether it was released now."""


class Store(ABC):
    """Local state. Implementations must make each method below atomic."""

    # -- runs
    @abstractmethod
    def start_run(self, kind: str, connection: str | None, module: str | None) -> int: ...

    @abstractmethod
    def finish_run(
        self, run_id: int, status: str, summary: Mapping[str, Any], error: str | None = None
    ) -> None: ...

    @abstractmethod
    def runs(self, limit: int = 20, kind: str | None = None) -> list[Run]: ...

    # -- cursors
    @abstractmethod
    def cursor(self, connection: str, module: str) -> CursorState | None: ...

    # -- mirror
    @abstractmethod
    def commit_page(
        self,
        connection: str,
        module: str,
        run_id: int,
        records: Sequence[PulledRecord],
        deleted_ids: Sequence[str] = (),
        checkpoint: str | None = None,
    ) -> PageStats:
        """Upsert a page of records, mark deletions, and store ``checkpoint`` (if not None) as
        the module's cursor, in one transaction."""

    @abstractmethod
    def finish_pull(
        self, connection: str, module: str, run_id: int, *, full: bool, checkpoint: str | None
    ) -> int:
        """Close a complete pull: store the cursor; after a full pull, mark every record the
        pull did not see as deleted in the CRM. Returns how many were marked."""

    @abstractmethod
    def get_record(self, connection: str, module: str, record_id: str) -> MirrorRecord | None: ...

    @abstractmethod
    def iter_records(
        self, connection: str, module: str, *, include_deleted: bool = False, batch: int = 500
    ) -> Iterator[MirrorRecord]: ...

    def iter_record_texts(
        self, connection: str, module: str, *, batch: int = 1000, with_text: bool = True
    ) -> Iterator[tuple[str, str | None, str]]:
        """(record id, data as canonical JSON text, its SHA-256 hex) of the records still in the
        CRM, by record id, in keyset pages (snapshots store these as they are). Without
        ``with_text`` the text is None (an incremental snapshot reads only the hashes). This
        default re-serialises :meth:`iter_records`; a store that keeps the text returns it."""
        for rec in self.iter_records(connection, module, batch=batch):
            text, digest = canonical_record(rec.data)
            yield rec.record_id, text if with_text else None, digest

    def record_texts(
        self, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, tuple[str, str]]:
        """record id -> (canonical JSON text, SHA-256 hex) for those of ``record_ids`` in the
        mirror."""
        out = {}
        for rid in record_ids:
            rec = self.get_record(connection, module, rid)
            if rec is not None:
                out[rid] = canonical_record(rec.data)
        return out

    # -- what changed since a snapshot (incremental snapshots; optional: a store without it
    # returns None from begin_snapshot_changes and every snapshot reads the whole mirror)
    def begin_snapshot_changes(self) -> ChangePoint | None:
        """Start a snapshot: the point the next one reads changes from (None: unsupported)."""
        return None

    def snapshot_mark(
        self, connection: str, modules: Sequence[str], repository: str
    ) -> SnapshotMark | None:
        return None

    def put_snapshot_mark(self, mark: SnapshotMark) -> None:
        """Note the snapshot just taken (replaces the mark of the same key)."""
        return None

    def drop_snapshot_marks(self, connection: str | None = None) -> None:
        """Forget marks: the next snapshots read the whole mirror."""
        return None

    def iter_changed_record_texts(
        self, connection: str, module: str, since: ChangePoint, *, batch: int = 1000
    ) -> Iterator[MirrorChange]:
        """The rows of ``module`` changed since ``since`` (live or deleted in the CRM), by
        record id; only called when :meth:`begin_snapshot_changes` returned a point."""
        raise NotImplementedError

    @abstractmethod
    def count(self, connection: str, module: str, *, include_deleted: bool = False) -> int: ...

    @abstractmethod
    def module_counts(self, connection: str | None = None) -> list[ModuleCount]: ...

    def lifecycle_counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """(connection, module) -> records still in the CRM per lifecycle status (``active``,
        ``archived``, ``voided``; ``other`` for any other), plus ``deleted_in_crm``: the
        gauges of ``crmsync serve``'s metrics. This default reads every record."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for mc in self.module_counts():
            known = ("active", "archived", "voided")
            counts = out.setdefault((mc.connection, mc.module), dict.fromkeys((*known, "other"), 0))
            for rec in self.iter_records(mc.connection, mc.module):
                status = rec.status if rec.status in known else "other"
                counts[status] = counts.get(status, 0) + 1
            counts["deleted_in_crm"] = mc.deleted_in_crm
        return out

    # -- report aggregates (crmsync.report): a few rows each, however big the mirror
    @abstractmethod
    def report_status_counts(
        self, connection: str | None = None, module: str | None = None
    ) -> list[ModuleStatus]:
        """Records per lifecycle status of every mirrored (connection, module), in order."""

    @abstractmethod
    def report_module(self, scope: ReportScope, query: ModuleQuery) -> ModuleCounts:
        """Count what ``query`` asks of the records in ``scope``: records by age, records with
        no value per key field, the ``query.limit`` most frequent values per category field
        (array elements one by one) with how many records have none, and per duplicate key
        the clusters of records sharing ``crmsync_dupkey(mode, field)`` with the largest."""

    # -- compliance report aggregates (crmsync.compliance.report): a few rows each
    def bulk_reads(self) -> AbstractContextManager[Any]:
        """A context for reading whole tables (reports): the SQLite store turns memory-mapped
        reads off inside it, so the pages read do not count as the process's memory."""
        return nullcontext()

    @abstractmethod
    def mirror_condition_counts(
        self, connection: str, module: str, conditions: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[int]:
        """For each SQL condition over a mirror row (with its parameters), how many records of
        ``connection/module`` still in the CRM satisfy it: one pass over the module."""

    @abstractmethod
    def restricted_groups(self, connection: str, module: str, limit: int) -> list[RestrictedGroup]:
        """The module's restricted records grouped by reason (at most ``limit`` groups, the
        largest first): how many, restricted since, and until when."""

    @abstractmethod
    def audit_groups(
        self, actions: Sequence[str], since: str, until: str, connection: str | None = None
    ) -> list[AuditGroup]:
        """Audit entries of ``actions`` in [since, until) counted per action, plan, module,
        operator, outcome and legal basis (``detail.basis``)."""

    @abstractmethod
    def open_plan_ids(self, kinds: Sequence[str], limit: int) -> tuple[list[str], int]:
        """Plans of ``kinds`` not finished (planned, or left applying), oldest first: the
        first ``limit`` ids and how many there are."""

    @abstractmethod
    def erased_refs(
        self, since: str, until: str, limit: int, connection: str | None = None
    ) -> tuple[list[ErasedRef], int]:
        """The first ``limit`` erasure proofs in [since, until) (their record_ref, never an
        id) and how many there are in all."""

    # -- legal holds (crmsync.compliance.holds): few, read whole; their records asked by id
    @abstractmethod
    def list_holds(self, *, include_released: bool = False) -> list[Hold]:
        """Holds (active and expired; released ones too with ``include_released``), oldest
        first."""

    @abstractmethod
    def get_hold(self, hold_id: str) -> Hold | None: ...

    @abstractmethod
    def hold_record_ids(
        self, hold_id: str, connection: str, module: str, record_ids: Sequence[str]
    ) -> set[str]:
        """Those of ``record_ids`` that the ``records`` hold ``hold_id`` names (whether or not
        the mirror still has them)."""

    @abstractmethod
    def mirror_ids_where(
        self,
        connection: str,
        module: str,
        record_ids: Sequence[str],
        condition: tuple[str, Sequence[Any]],
    ) -> set[str]:
        """Those of ``record_ids`` whose mirror row satisfies ``condition``: a compiled SQL
        expression over the row and its parameters (:func:`crmsync.compliance.holds.held_sql`,
        as :mod:`crmsync.policy.sql` compiles filters)."""

    # -- retention and purge (crmsync.compliance.purge): compiled queries run as given
    @abstractmethod
    def mirror_values(
        self, connection: str, module: str, record_ids: Sequence[str], expressions: Sequence[str]
    ) -> dict[str, tuple[Any, ...]]:
        """record id -> the value of each SQL ``expression`` over its mirror row (compiled
        from retention rules, e.g. when a statutory floor ends), for those of ``record_ids``
        the mirror has."""

    @abstractmethod
    def query_mirror(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of a compiled SELECT over the mirror (a purge plan's part, its count: a
        :class:`crmsync.compliance.purge.PartQuery`), as :meth:`create_plan` runs the
        planner's queries."""

    @abstractmethod
    def snapshot_hashes(
        self, snapshot_id: str, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, str]:
        """record id -> the content hash noted for it in snapshot ``snapshot_id``, for those of
        ``record_ids`` the snapshot holds."""

    # -- erasure (crmsync.compliance.erasure_store): find a person's rows, remove every trace
    @abstractmethod
    def mirror_candidates(
        self, candidate: Callable[[bytes], bool], connections: Sequence[str]
    ) -> list[MirrorRecord]:
        """Mirror rows of ``connections`` (deleted in the CRM or not) whose stored JSON bytes
        ``candidate`` accepts: one pass, no row parsed unless it may match."""

    @abstractmethod
    def legacy_candidates(
        self, candidate: Callable[[bytes], bool], connections: Sequence[str]
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(connection, module, record_id, data) of legacy copies (taken before store version
        5) of ``connections``' records whose JSON bytes ``candidate`` accepts."""

    @abstractmethod
    def plan_detail_candidates(
        self, candidate: Callable[[bytes], bool]
    ) -> list[tuple[str, str, str, str, str, Any]]:
        """(plan_id, policy, connection, module, record_id, detail) of plan items whose
        detail's JSON bytes ``candidate`` accepts."""

    @abstractmethod
    def legacy_copy_count(self, connection: str, module: str, record_id: str) -> int:
        """How many distinct legacy copies of the record the store keeps."""

    @abstractmethod
    def all_plan_items(self, plan_id: str, policy: str) -> list[PlanItem]:
        """Every item of a plan's part, whatever its state, by record id (a plan shown whole;
        for small plans such as an erasure's)."""

    @abstractmethod
    def erase_records(
        self,
        refs: Sequence[tuple[str, str, str]],
        keep_plan: str,
        details: Sequence[Sequence[str]] = (),
        finish: Callable[[StoreTransaction], None] | None = None,
    ) -> dict[str, int]:
        """In one write transaction, with deleted content overwritten: delete the mirror rows
        of ``refs`` (and their search index entries), their legacy copies, the details of plan
        items naming them (except plan ``keep_plan``'s) and of the (plan_id, policy,
        record_id) ``details``, and the record ids of earlier audit entries about them; then
        ``finish(tx)`` in the same transaction. Returns rows changed per kind (mirror,
        plan_details, legacy_copies, audit_redacted). Safe to repeat."""

    @abstractmethod
    def scrub(self) -> dict[str, int]:
        """Leave no deleted bytes behind after :meth:`erase_records`: merge the search index,
        rebuild the database file, checkpoint and truncate its write-ahead log. Returns the
        checkpoint's figures (busy: 1 when another process's reader kept the log)."""

    # -- transactions and the audit log (append-only: there is no update or delete API)
    @abstractmethod
    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A write transaction (exclusive of other writers, in every process) for changes that
        must commit together. Not reentrant: nesting raises StoreError."""

    def append_audit(self, entries: Iterable[AuditEntry]) -> list[AuditRecord]:
        """Append entries in a transaction of their own (events with no state change)."""
        with self.transaction() as tx:
            return tx.append_audit(entries)

    @abstractmethod
    def audit_head(self) -> AuditRecord | None:
        """The last entry (highest seq), or None when the log is empty."""

    @abstractmethod
    def iter_audit(self, *, after_seq: int = 0, batch: int = 1000) -> Iterator[AuditRecord]:
        """Every entry with seq > ``after_seq`` in seq order, read in batches (bounded
        memory, no read transaction held between batches)."""

    @abstractmethod
    def find_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Entries matching ``query``: the newest ``query.limit``, in seq order."""

    @abstractmethod
    def redact_audit_record(self, record_id: str, connection: str | None = None) -> int:
        """Erase ``record_id`` from the audit log (an erasure request), keeping the entries
        and the chain intact: the hash covers the id's digest, which stays. Returns how many
        entries were redacted."""

    # -- plans (crmsync.plans): items are copied from the mirror inside the store
    @abstractmethod
    def create_plan(
        self,
        *,
        plan_id: str,
        created_at: str,
        created_by: str,
        expires_at: str,
        config_hash: str,
        queries: Sequence[tuple[str, str, list[Any]]],
        kind: str = "policy",
    ) -> dict[str, int]: ...

    @abstractmethod
    def add_plan_items(self, plan_id: str, policy: str, items: Sequence[PlanItem]) -> int: ...

    @abstractmethod
    def set_plan_policies(self, plan_id: str, policies: Sequence[PlanPolicy]) -> None: ...

    @abstractmethod
    def get_plan(self, plan_id: str) -> PlanInfo | None: ...

    @abstractmethod
    def list_plans(self, limit: int = 20) -> list[PlanInfo]: ...

    @abstractmethod
    def set_plan_status(
        self, plan_id: str, status: str, audit: AuditEntry | None = None
    ) -> None: ...

    @abstractmethod
    def approve_plan(self, plan_id: str, approver: str, audit: AuditEntry) -> None: ...

    @abstractmethod
    def plan_items(
        self,
        plan_id: str,
        policy: str,
        *,
        states: Sequence[str],
        limit: int | None = None,
        after: str = "",
    ) -> list[PlanItem]: ...

    @abstractmethod
    def iter_plan_items(
        self, plan_id: str, policy: str, *, states: Sequence[str], batch: int = 1000
    ) -> Iterator[PlanItem]: ...

    @abstractmethod
    def drifted_plan_items(
        self, plan_id: str, policy: str, *, after: str = "", limit: int = 1000
    ) -> list[tuple[PlanItem, bool]]: ...

    @abstractmethod
    def plan_item_states(self, plan_id: str) -> dict[str, dict[str, int]]:
        """Per policy (part) of the plan: how many items are in each state."""

    @abstractmethod
    def count_plan_items(self, plan_id: str, *, states: Sequence[str]) -> int: ...

    @abstractmethod
    def plan_samples(self, plan_id: str, policy: str, limit: int) -> list[tuple[str, dict]]: ...

    @abstractmethod
    def annotate_plan_items(self, plan_id: str, policy: str, sql: str, params: list[Any]) -> int:
        """Set items' per-record ``detail`` from a query of (record_id, detail JSON text)."""

    @abstractmethod
    def plan_details(
        self, plan_id: str, policy: str, limit: int
    ) -> list[tuple[str, dict[str, Any]]]: ...

    @abstractmethod
    def plan_clusters(
        self, plan_id: str, policy: str, limit: int
    ) -> list[tuple[Any, str, list[str]]]:
        """Duplicate clusters of a plan, largest first: (key, survivor, voided record ids)."""

    # -- pre-change copies: data in the snapshot repository, which copy is where in the store
    @abstractmethod
    def iter_unsnapshotted_items(
        self, plan_id: str, policy: str
    ) -> Iterator[tuple[str, str, str, str]]:
        """(module, record_id, data, content_hash) from the mirror of every pending item no
        snapshot holds yet, by record id."""

    @abstractmethod
    def record_items_snapshot(
        self, plan_id: str, policy: str, run_id: int, snapshot_id: str
    ) -> int:
        """Note that snapshot ``snapshot_id`` holds every pending item not yet snapshotted
        (as :meth:`iter_unsnapshotted_items` yielded them), in one transaction; returns how
        many."""

    @abstractmethod
    def note_snapshot_copies(
        self, snapshot_id: str, connection: str, rows: Sequence[tuple[str, str, str]]
    ) -> None:
        """Note that snapshot ``snapshot_id`` holds these (module, record_id, hash) versions
        (``snapshot restore --to-crm`` restores from a whole snapshot through the same path
        as from a pre-change copy)."""

    @abstractmethod
    def copy_location(self, digest: str) -> tuple[str, str, str, str] | None:
        """(snapshot_id, connection, module, record_id) of a kept copy with this hash."""

    @abstractmethod
    def snapshot_hash(
        self, snapshot_id: str, connection: str, module: str, record_id: str
    ) -> str | None: ...

    @abstractmethod
    def latest_copy_hash(self, connection: str, module: str, record_id: str) -> str | None: ...

    @abstractmethod
    def snapshot_object(self, digest: str) -> dict[str, Any] | None:
        """A copy taken before store version 5, when copies lived in the store."""

    @abstractmethod
    def close(self) -> None: ...

    # -- policy indexes (crmsync.policy.sql "Indexes")
    def ensure_policy_indexes(
        self, policies: Sequence[Policy], *, keep: Sequence[Policy] | None = None
    ) -> list[str]:
        """Create the mirror indexes the policies' queries can use (once; later calls find
        them); with ``keep``, drop policy indexes none of those policies needs. Returns the
        names of the indexes created now. A store without indexes answers the same queries by
        scanning, so the default does nothing."""
        return []

    # -- full-text search (crmsync.search; the SQLite store's index is store migration 7)
    def search_mirror(self, request: SearchRequest) -> MirrorMatches:
        """Mirrored records matching ``request``: the best ``request.limit`` by relevance
        (among the ``request.window`` most recently added matches), or for a search without
        a query the most recently modified."""
        raise NotImplementedError("this store cannot search its mirror")

    def record_states(
        self, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, RecordState]:
        """record id -> (content hash, lifecycle status) for those of ``record_ids`` in the
        mirror."""
        raise NotImplementedError("this store cannot search its mirror")

    def pending_search_index(self) -> int:
        """Records written but not yet in the search index (the next search indexes them)."""
        return 0

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
