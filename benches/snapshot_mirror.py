"""Benchmark: incremental snapshots taken from the mirror (store schema 9) against the first,
full snapshot: issue 6's target, mean incremental create <= 0.20 of the first.

    python benches/snapshot_mirror.py                         # 100k records, 5 days
    python benches/snapshot_mirror.py --records 1000000 --days 10

Workload: benches/snapshot.py's (the sandbox's seeded records; each day changes 1%, deletes
0.1%, adds 0.2%), kept in its own table, and brought into a real crmsync store (the mirror) the
way a pull would (``commit_page`` of the new and changed records, the deleted ids), outside any
timing. Timed, each day: ``snapshot_mirror`` (what ``crmsync snapshot create`` and
``crmsync run`` call) into our repository, with a freshly opened Repository (nothing in memory;
the parent's record set comes from the local cache, as in a new process). Day 0 is the full
create; later days read only the rows changed since (the store's snapshot mark).

Reference (skip with ``--no-reference``): the same day snapshotted into a second repository
the way it was done before schema 9, ``Repository.create`` reading the hash of every record
and the text of the changed ones. Both must give the same snapshot id (printed: "same").

Printed: a per-day table, then first create seconds, mean incremental seconds, their ratio
(target <= 0.20), and the reference's mean incremental and ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import snapshot as workload

from crmsync.hookspecs import PulledRecord
from crmsync.sandbox.data import DEFAULT_CLOCK_START
from crmsync.snapshots import LocalBackend, Repository
from crmsync.snapshots.source import mirror_texts, mirror_versions, snapshot_mirror
from crmsync.store import open_store
from crmsync.store.base import Store

CONNECTION = workload.CONNECTION
PAGE = 1000


def pull_into(store: Store, bench_db: Path, store_path: Path) -> tuple[int, int]:
    """Bring the store's mirror to the bench table's state, as pulls would: (upserted,
    deleted). Reads the difference in SQL; memory is a page."""
    db = sqlite3.connect(f"file:{bench_db}?mode=ro", uri=True)
    db.execute("ATTACH DATABASE ? AS st", (f"file:{store_path}?mode=ro",))
    upserted = deleted = 0
    try:
        modules = [m for (m,) in db.execute("SELECT DISTINCT module FROM records ORDER BY 1")]
        for module in modules:
            run = store.start_run("pull", CONNECTION, module)
            changed = db.execute(
                "SELECT r.record_id, r.text FROM records r LEFT JOIN st.mirror m"
                " ON m.connection = ? AND m.module = r.module AND m.record_id = r.record_id"
                " WHERE r.module = ? AND (m.content_hash IS NOT r.hash"
                " OR m.crm_deleted_at IS NOT NULL) ORDER BY r.record_id",
                (CONNECTION, module),
            ).fetchall()
            gone = [
                rid
                for (rid,) in db.execute(
                    "SELECT m.record_id FROM st.mirror m WHERE m.connection = ? AND m.module = ?"
                    " AND m.crm_deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM records r"
                    " WHERE r.module = m.module AND r.record_id = m.record_id)",
                    (CONNECTION, module),
                )
            ]
            for start in range(0, max(len(changed), len(gone), 1), PAGE):
                page = [PulledRecord(rid, orjson.loads(text)) for rid, text in
                        changed[start : start + PAGE]]  # fmt: skip
                store.commit_page(CONNECTION, module, run, page, gone[start : start + PAGE])
            upserted += len(changed)
            deleted += len(gone)
    finally:
        db.close()
    return upserted, deleted


def timed_day(args: argparse.Namespace, work: Path, store: Store, day: int) -> dict[str, Any]:
    modules = sorted(workload.FRESH_FIELDS)
    when = DEFAULT_CLOCK_START + timedelta(days=day)
    repo = Repository.open(LocalBackend(work / "ours"), cache_dir=work / "ours-cache")
    start = time.perf_counter()
    info = snapshot_mirror(
        repo, store, CONNECTION, modules, operator="bench", reason=f"day {day}", time=when
    )
    row: dict[str, Any] = {"day": day, "seconds": time.perf_counter() - start,
                           "records": info.records, "summary": info.summary}  # fmt: skip
    if not args.no_reference:
        ref = Repository.open(LocalBackend(work / "ref"), cache_dir=work / "ref-cache")
        first = ref.latest(CONNECTION, modules) is None
        start = time.perf_counter()
        other = ref.create(
            mirror_versions(store, CONNECTION, modules, with_text=first),
            load_texts=mirror_texts(store, CONNECTION), connection=CONNECTION,
            modules=modules, operator="bench", reason=f"day {day}", time=when,
        )  # fmt: skip
        row["ref_seconds"] = time.perf_counter() - start
        row["same"] = other.id == info.id
    return row


def bench(args: argparse.Namespace, work: Path) -> None:
    bench_db = work / "records.sqlite"
    db = workload.open_db(bench_db)
    workload.load_day0(db, args.records, args.seed)
    for name in ("ours", "ref"):
        Repository.init(LocalBackend(work / name), cache_dir=work / f"{name}-cache")
    store_path = work / "store.db"
    store = open_store(store_path)
    rows: list[dict[str, Any]] = []
    print(f"{'day':>3} {'records':>9} {'pulled':>7} {'gone':>6} {'create s':>9}"
          f" {'added':>6} {'changed':>7} {'removed':>7} {'ref s':>7} same")  # fmt: skip
    for day in range(args.days + 1):
        if day:
            workload.mutate_day(db, day, args.seed)
        start = time.perf_counter()
        upserted, gone = pull_into(store, bench_db, store_path)
        pull_secs = time.perf_counter() - start
        row = timed_day(args, work, store, day)
        rows.append(row)
        s = row["summary"]
        ref = f"{row['ref_seconds']:7.2f} {row['same']}" if "ref_seconds" in row else ""
        print(f"{day:>3} {row['records']:>9} {upserted:>7} {gone:>6} {row['seconds']:9.2f}"
              f" {s['added']:>6} {s['changed']:>7} {s['removed']:>7} {ref}"
              f"   (pull {pull_secs:.1f} s)", flush=True)  # fmt: skip
    db.close()
    first, later = rows[0], rows[1:]
    if not later:
        return
    mean = sum(r["seconds"] for r in later) / len(later)
    print(f"\nfirst (full) create: {first['seconds']:.2f} s")
    print(f"mean incremental create (changes from the mirror): {mean:.3f} s")
    print(f"ratio incremental / first: {mean / first['seconds']:.3f} (target <= 0.20)")
    if "ref_seconds" in first:
        ref_mean = sum(r["ref_seconds"] for r in later) / len(later)
        print(f"reference, every record's hash read (before schema 9): mean incremental"
              f" {ref_mean:.3f} s, ratio to its first {ref_mean / first['ref_seconds']:.3f};"
              f" same snapshots: {all(r['same'] for r in rows)}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000, help="day-0 records (all modules)")
    ap.add_argument("--days", type=int, default=5, help="incremental days after day 0")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-reference", action="store_true", help="skip the pre-schema-9 path")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (new or empty) and keep it")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="snapmirror-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        bench(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
