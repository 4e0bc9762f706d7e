"""What a report is made of, and every choice behind it in one place: which records the
quality sections count, the age buckets, the default category and key fields, and the fields
and normalisation that make a duplicate key.

The store fills the small count types (:class:`StatusCount`, :class:`ProfileCounts`,
:class:`ValueCounts`, :class:`DuplicateCounts`) with SQL aggregates; :mod:`crmsync.report.gather`
turns them into a :class:`Report`, which the renderers (text, JSON, HTML) only read. This
module imports nothing of crmsync, so the store can use its types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LIFECYCLE_STATUSES: tuple[str, ...] = ("active", "archived", "voided", "purged")

# The quality sections (categories, duplicates, stale, missing) count the records still in use:
# in the CRM (not deleted there) and active or archived, the records a duplicates policy
# compares too. Voided and purged records are already dealt with.
IN_USE_STATUSES: tuple[str, ...] = ("active", "archived")


@dataclass(frozen=True)
class AgeBucket:
    label: str
    max_days: int | None  # younger than this many days; None: everything older


AGE_BUCKETS: tuple[AgeBucket, ...] = (
    AgeBucket("<30d", 30),
    AgeBucket("30-90d", 90),
    AgeBucket("90-365d", 365),
    AgeBucket("1-2y", 730),
    AgeBucket(">2y", None),
)

# --stale-field: which time a record's age is read from. "@modified_at" is the mirror's column
# (the CRM's modified time); a creation time is a CRM field, named differently per CRM: the
# first of these a record has counts.
STALE_FIELDS: dict[str, tuple[str, ...]] = {
    "modified": ("@modified_at",),
    "created": ("created_at", "Created_Time", "createTime", "create_time", "CreatedDate"),
}

# Default category fields: those of these a module's records have (tags are counted per tag).
DEFAULT_CATEGORY_FIELDS: tuple[str, ...] = (
    "lead_status", "stage", "industry", "type", "source", "title", "tags",
    "Lead_Status", "Stage", "Industry", "Type", "Account_Type", "Lead_Source", "Tag",
)  # fmt: skip

# Default key fields (missing-field counts): those of these a module's records have.
DEFAULT_KEY_FIELDS: tuple[str, ...] = (
    "name", "full_name", "company", "email", "phone", "website", "account_id", "amount",
    "stage", "close_date",
    "Account_Name", "Deal_Name", "Full_Name", "Last_Name", "Company", "Email", "Phone",
    "Mobile", "Website", "Amount", "Stage", "Closing_Date",
)  # fmt: skip


@dataclass(frozen=True)
class DuplicateKey:
    """One duplicate key: the first of ``fields`` a module's records have (``by_module``
    overrides per module name, case-insensitive), normalised by the first mode of ``modes``
    that :data:`crmsync.policy.duplicates.MODES` offers (so a better mode, once there, is
    picked up here and nowhere else)."""

    name: str
    fields: tuple[str, ...]
    modes: tuple[str, ...]
    by_module: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def candidates(self, module: str) -> tuple[str, ...]:
        return self.by_module.get(module.lower(), self.fields)

    def mode(self, available: Sequence[str]) -> str:
        return next(m for m in (*self.modes, "text") if m in available)


DUPLICATE_KEYS: tuple[DuplicateKey, ...] = (
    DuplicateKey("email", ("email", "Email", "email_address"), ("email", "text")),
    DuplicateKey("phone", ("phone", "Phone", "mobile", "Mobile"), ("phone",)),
    DuplicateKey(
        "company",
        ("company", "Company", "company_name", "Account_Name"),
        ("company", "text"),
        by_module={"accounts": ("name", "Account_Name", "company")},
    ),
)

# --------------------------------------------------------------------------- store results


@dataclass(frozen=True)
class ReportScope:
    """The live records (not deleted in the CRM) of one module with one of ``statuses``."""

    connection: str
    module: str
    statuses: tuple[str, ...] = IN_USE_STATUSES


@dataclass(frozen=True)
class ModuleStatus:
    """Every mirrored record of a module by lifecycle status, and how many of them were
    deleted in the CRM (whatever their status)."""

    connection: str
    module: str
    status: dict[str, int]
    deleted_in_crm: int

    @property
    def records(self) -> int:
        return sum(self.status.values())


@dataclass(frozen=True)
class ModuleQuery:
    """What :meth:`~crmsync.store.base.Store.report_module` counts in a scope.

    ``time_fields``: a record's time is the first of these it has (``@modified_at`` is the
    mirror's column); ``cutoffs``: time keys (as ``crmsync.policy.filters.cutoff`` gives),
    newest first; ``missing_fields``: fields whose records with no value are counted;
    ``category_fields``: fields whose values are counted; ``duplicate_keys``: (field,
    ``crmsync_dupkey`` mode) pairs whose clusters are counted; ``limit``: values and clusters
    listed per field or key."""

    time_fields: tuple[str, ...]
    cutoffs: tuple[str, ...]
    missing_fields: tuple[str, ...]
    category_fields: tuple[str, ...]
    duplicate_keys: tuple[tuple[str, str], ...]
    limit: int


@dataclass(frozen=True)
class ProfileCounts:
    """``records`` in the scope; ``since[i]``: records whose time is at or after
    ``cutoffs[i]``; ``timed``: records with a time at all; ``missing[f]``: records with no
    value for field ``f`` (missing, null, blank text, empty array or object)."""

    records: int
    since: tuple[int, ...]
    timed: int
    missing: dict[str, int]


@dataclass(frozen=True)
class ValueCount:
    value: Any
    records: int


@dataclass(frozen=True)
class ValueCounts:
    """A field's values in a scope, most frequent first (array elements counted one by one;
    ``total`` is therefore occurrences, not records). ``none``: records with no value."""

    top: tuple[ValueCount, ...]
    none: int
    distinct: int
    total: int


@dataclass(frozen=True)
class DuplicateCounts:
    """Groups of two or more records sharing a normalised key, and the largest of them."""

    clusters: int
    records: int
    largest: tuple[ValueCount, ...]


@dataclass(frozen=True)
class ModuleCounts:
    """The answer to a :class:`ModuleQuery`: categories and duplicates in the query's order."""

    profile: ProfileCounts
    categories: tuple[ValueCounts, ...]
    duplicates: tuple[DuplicateCounts, ...]


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReportOptions:
    connection: str | None = None
    module: str | None = None
    category_fields: tuple[str, ...] = ()  # empty: the defaults a module has
    key_fields: tuple[str, ...] = ()  # empty: the defaults a module has
    stale_field: str = "modified"
    top: int = 10  # values shown per category, largest clusters per key
    now: datetime | None = None  # None: the current time


@dataclass(frozen=True)
class CategoryReport:
    field: str
    values: tuple[ValueCount, ...]
    other: int
    none: int
    distinct: int


@dataclass(frozen=True)
class DuplicateReport:
    key: str
    field: str
    mode: str
    clusters: int
    records: int
    largest: tuple[ValueCount, ...]

    @property
    def surplus(self) -> int:
        """Records a de-duplication keeping one per cluster would void."""
        return self.records - self.clusters


@dataclass(frozen=True)
class StaleReport:
    field: str
    buckets: tuple[ValueCount, ...]  # value: the bucket's label
    unknown: int  # records with no readable time


@dataclass(frozen=True)
class MissingField:
    field: str
    records: int
    percent: float


@dataclass(frozen=True)
class ModuleReport:
    connection: str
    module: str
    records: int
    status: dict[str, int]
    deleted_in_crm: int
    in_use: int
    categories: tuple[CategoryReport, ...]
    duplicates: tuple[DuplicateReport, ...]
    stale: StaleReport
    missing: tuple[MissingField, ...]


@dataclass(frozen=True)
class Report:
    now: datetime
    stale_field: str
    modules: tuple[ModuleReport, ...]
    connections: tuple[str, ...]  # asked for or mirrored, including ones with no records yet
