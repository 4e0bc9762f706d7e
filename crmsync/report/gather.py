"""Gather a report from the store: a handful of SQL aggregates per module, no record loaded.

Per module: the status counts (one query for the whole mirror), the fields its records have
(a sample, to pick default category/key fields and the duplicate keys' fields), one pass for
the records in use, their age buckets and missing fields, one GROUP BY per category field and
one per duplicate key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from crmsync.errors import EXIT_USAGE, CrmsyncError
from crmsync.policy.duplicates import MODES
from crmsync.policy.filters import cutoff
from crmsync.policy.validate import mirror_fields
from crmsync.report.model import (
    AGE_BUCKETS,
    DEFAULT_CATEGORY_FIELDS,
    DEFAULT_KEY_FIELDS,
    DUPLICATE_KEYS,
    IN_USE_STATUSES,
    STALE_FIELDS,
    CategoryReport,
    DuplicateReport,
    MissingField,
    ModuleQuery,
    ModuleReport,
    ModuleStatus,
    Report,
    ReportOptions,
    ReportScope,
    StaleReport,
    ValueCount,
)
from crmsync.store.base import Store

FIELD_SAMPLE = 2000  # records sampled per module to learn which fields it has


class ReportUsageError(CrmsyncError):
    """The report was asked for something the mirror does not hold (exit 2)."""

    exit_code = EXIT_USAGE


def build_report(
    store: Store, options: ReportOptions, *, configured: Iterable[str] | None = None
) -> Report:
    """The report of every mirrored module (or the one connection/module asked for).

    ``configured``: the connections of the config; a connection neither there nor in the
    mirror is unknown (None: any name the mirror holds is known)."""
    if options.stale_field not in STALE_FIELDS:
        known = ", ".join(STALE_FIELDS)
        raise ReportUsageError(f"unknown stale field {options.stale_field!r}; use one of {known}")
    now = options.now or datetime.now(UTC)
    counts = store.report_status_counts(options.connection, options.module)
    if not counts and options.connection is not None:
        _check_connection(store, options.connection, set(configured or ()))
    if not counts and options.module is not None:
        _check_module(options, store.report_status_counts(options.connection))
    modules = tuple(module_report(store, status, options, now) for status in counts)
    connections = {m.connection for m in counts}
    if options.connection is not None:
        connections.add(options.connection)
    return Report(
        now=now,
        stale_field=options.stale_field,
        modules=modules,
        connections=tuple(sorted(connections)),
    )


def _check_connection(store: Store, connection: str, configured: set[str]) -> None:
    if connection in configured:
        return  # configured, nothing pulled yet: an empty report says so
    mirrored = {c.connection for c in store.report_status_counts()}
    if connection in mirrored:
        return  # no longer configured, still mirrored
    known = ", ".join(sorted(configured | mirrored)) or "none"
    raise ReportUsageError(f"no connection named {connection!r} (known: {known})")


def _check_module(options: ReportOptions, found: Iterable[ModuleStatus]) -> None:
    mirrored = sorted({count.module for count in found})
    where = f" of connection {options.connection!r}" if options.connection else ""
    known = ", ".join(mirrored) or "none; run `crmsync pull` first"
    raise ReportUsageError(f"no module {options.module!r} in the mirror{where} (mirrored: {known})")


def module_report(
    store: Store, mirrored: ModuleStatus, options: ReportOptions, now: datetime
) -> ModuleReport:
    connection, module = mirrored.connection, mirrored.module
    present = mirror_fields(store, connection, module, limit=FIELD_SAMPLE) or set()
    keys = [
        (key, field)
        for key in DUPLICATE_KEYS
        if (field := next((f for f in key.candidates(module) if f in present), None))
    ]
    query = ModuleQuery(
        time_fields=STALE_FIELDS[options.stale_field],
        cutoffs=tuple(cutoff(now, f"{b.max_days}d") for b in AGE_BUCKETS if b.max_days),
        missing_fields=options.key_fields or _present(DEFAULT_KEY_FIELDS, present),
        category_fields=options.category_fields or _present(DEFAULT_CATEGORY_FIELDS, present),
        duplicate_keys=tuple((field, key.mode(MODES)) for key, field in keys),
        limit=options.top,
    )
    counts = store.report_module(ReportScope(connection, module, IN_USE_STATUSES), query)
    profile = counts.profile
    return ModuleReport(
        connection=connection,
        module=module,
        records=mirrored.records,
        status=dict(mirrored.status),
        deleted_in_crm=mirrored.deleted_in_crm,
        in_use=profile.records,
        categories=tuple(
            CategoryReport(
                field=name,
                values=found.top,
                other=found.total - found.none - sum(v.records for v in found.top),
                none=found.none,
                distinct=found.distinct,
            )
            for name, found in zip(query.category_fields, counts.categories, strict=True)
        ),
        duplicates=tuple(
            DuplicateReport(key.name, field, mode, found.clusters, found.records, found.largest)
            for (key, field), (_, mode), found in zip(
                keys, query.duplicate_keys, counts.duplicates, strict=True
            )
        ),
        stale=_stale(options.stale_field, profile.since, profile.timed, profile.records),
        missing=tuple(
            MissingField(name, n, _percent(n, profile.records))
            for name, n in profile.missing.items()
        ),
    )


def _present(candidates: tuple[str, ...], present: set[str]) -> tuple[str, ...]:
    return tuple(name for name in candidates if name in present)


def _percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def _stale(field: str, since: tuple[int, ...], timed: int, records: int) -> StaleReport:
    """Bucket counts from the cumulative ``since`` counts (newest cutoff first): the last
    bucket holds every timed record older than the last cutoff."""
    buckets = []
    newer = 0
    for bucket, at_or_after in zip(AGE_BUCKETS, [*since, timed], strict=True):
        buckets.append(ValueCount(bucket.label, at_or_after - newer))
        newer = at_or_after
    return StaleReport(field=field, buckets=tuple(buckets), unknown=records - timed)
