"""Audit log figures: appends/s and verify time, each against a baseline without hashing.

    python benches/audit.py [--entries 100000] [--batch 100]

Appends: N entries in transactions of ``batch`` (as the apply engine writes one per push batch),
sealed by ``Store.append_audit``; baseline: the same rows INSERTed in the same transactions
with no head read, no canonical JSON and no SHA-256 (but the same columns, indexes and index
key distribution). Building the AuditEntry objects (which
validates them) is timed apart, since both pay it. Verify: ``verify_store`` over the whole
chain; baseline: reading every row through ``Store.iter_audit`` without checking anything.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from crmsync.audit import AuditEntry, record_ref, verify_store
from crmsync.store import open_store


def entries(start: int, count: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            action="archive",
            operator="scheduler:cron",
            connection="sales",
            module="Leads",
            record_id=f"L{i:08d}",
            before_status="active",
            after_status="archived",
            plan_id="plan-20250101-0001",
            run_id=42,
            snapshot_id="snap-3f2a",
            policy="stale-leads",
            detail={"batch": i // 100},
        )
        for i in range(start, start + count)
    ]


def bench_appends(path: Path, total: int, batch: int) -> tuple[float, float]:
    """(seconds in append_audit, seconds building and validating the AuditEntry objects)."""
    build = append = 0.0
    with open_store(path) as store:
        for start in range(0, total, batch):
            t0 = time.perf_counter()
            items = entries(start, batch)
            t1 = time.perf_counter()
            store.append_audit(items)
            build += t1 - t0
            append += time.perf_counter() - t1
    return append, build


def bench_plain_inserts(path: Path, total: int, batch: int) -> float:
    open_store(path).close()  # same schema, triggers and indexes
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    elapsed = 0.0
    seq = 0
    for start in range(0, total, batch):
        rows = []
        items = entries(start, batch)
        # Same index key distribution as the real table (record_ref is a digest), computed
        # outside the timed part: the ratio then isolates the chain's own cost.
        refs = [record_ref(e.record_id or "") for e in items]
        started = time.perf_counter()
        for e, ref in zip(items, refs, strict=True):
            seq += 1
            rows.append(
                (seq, 1, "2025-01-01T00:00:00.000000Z", e.operator, e.action, e.connection,
                 e.module, e.record_id, ref, e.before_status, e.after_status, e.plan_id,
                 e.run_id, e.snapshot_id, e.policy, e.outcome, e.detail_text, ref, ref)
            )  # fmt: skip
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"INSERT INTO audit_log VALUES ({', '.join('?' * 19)})", rows)
        db.execute("COMMIT")
        elapsed += time.perf_counter() - started
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    n, batch = args.entries, args.batch
    with tempfile.TemporaryDirectory() as tmp:
        chained = Path(tmp) / "chained.db"
        append_s, build_s = bench_appends(chained, n, batch)
        plain_s = bench_plain_inserts(Path(tmp) / "plain.db", n, batch)
        with open_store(chained) as store:
            started = time.perf_counter()
            result = verify_store(store)
            verify_s = time.perf_counter() - started
            assert result.ok and result.entries == n, result
            started = time.perf_counter()
            read = sum(1 for _ in store.iter_audit())
            read_s = time.perf_counter() - started
            assert read == n
    print(f"entries {n}, batch {batch}")
    print(
        f"append (hash chain): {n / append_s:,.0f} entries/s ({append_s:.2f} s); "
        f"plain INSERT: {n / plain_s:,.0f}/s ({plain_s:.2f} s); cost x{append_s / plain_s:.2f}"
    )
    print(f"building + validating AuditEntry objects (both): {n / build_s:,.0f}/s")
    print(
        f"verify: {verify_s:.2f} s ({n / verify_s:,.0f} entries/s); "
        f"read-only scan: {read_s:.2f} s; cost x{verify_s / read_s:.2f}"
    )


if __name__ == "__main__":
    main()
