"""Benchmark: snapshot repository size and time over simulated daily snapshots.

    python benches/snapshot.py                       # 100k records, 5 days
    python benches/snapshot.py --records 1000000 --days 30

Day 0 is a full snapshot; each later day changes ~1% of records, adds 0.2% and deletes ~0.1%,
then snapshots with parent=latest. Records are generated on the fly, so peak RSS is the
repository's (parent map + index), not the bench's. Printed: per-day seconds, new blobs,
manifest kind, repository bytes; at the end the repository size against one zstd-compressed
JSONL export of day 0 (same zstd level, one stream), and peak RSS. (No restic run here yet.)
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import zstandard

from crmsync.snapshots import LocalBackend, Repository
from crmsync.snapshots import format as fmt
from crmsync.store.base import canonical_record

STATUSES = ["New", "Contacted", "Qualified", "Lost", "Won", "Nurture"]
CITIES = ["上海", "北京", "深圳", "杭州", "Berlin", "Austin", "Lyon", "Osaka"]


def make_record(rng: random.Random, i: int, rev: int = 0) -> dict:
    return {
        "id": str(4_000_000_000_000_000_000 + i),
        "First_Name": rng.choice(["Wei", "Anna", "Li", "Jon", "Mei", "Ravi"]) + str(i % 97),
        "Last_Name": f"Name{rng.randrange(10**6)}",
        "Email": f"user{i}@example{rng.randrange(50)}.com",
        "Phone": f"+86 1{rng.randrange(10**9, 10**10)}",
        "Company": f"Company {rng.randrange(20000)} Ltd",
        "City": rng.choice(CITIES),
        "Lead_Status": rng.choice(STATUSES),
        "Annual_Revenue": rng.randrange(10**7),
        "Modified_Time": f"2026-01-{1 + rev:02d}T{rng.randrange(24):02d}:00:00+08:00",
        "Description": " ".join(rng.choice(["call", "demo", "follow", "up", "price", "quote",
                                            "trial", "renewal"]) for _ in range(rng.randrange(12))),
        "Tag": [rng.choice(["vip", "cold", "webinar", "partner"])] if rng.random() < 0.3 else [],
    }  # fmt: skip


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


class Workload:
    """Deterministic day-by-day records, generated on the fly (the bench holds no record set).

    Day d (>= 1) changes ~1% of records, deletes ~0.1% and adds 0.2% x N new ones; a record's
    data depends only on (id, the last day it changed), so any day can be streamed again.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    def _hit(self, i: int, day: int, salt: int, per: int) -> bool:
        return (i * 2654435761 + day * 40503 + salt * 7919 + self.seed) % per == 0

    def day(self, d: int):
        added = self.n // 500
        for i in range(self.n + d * added):
            born = 0 if i < self.n else 1 + (i - self.n) // added
            if born > d or any(self._hit(i, x, 2, 1000) for x in range(born + 1, d + 1)):
                continue  # not yet added, or deleted on some day since it was born
            rev = max((x for x in range(born + 1, d + 1) if self._hit(i, x, 1, 100)), default=born)
            rng = random.Random(i * 1000 + rev)
            yield "bench", "Leads", str(4_000_000_000_000_000_000 + i), make_record(rng, i, rev)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()
    work = Workload(args.records, args.seed)

    cctx = zstandard.ZstdCompressor(level=fmt.ZSTD_LEVEL)
    with tempfile.TemporaryDirectory() as tmp:
        export_path = Path(tmp) / "day0.jsonl.zst"
        with open(export_path, "wb") as fh, cctx.stream_writer(fh) as zw:
            for _c, _m, _rid, data in work.day(0):
                zw.write(canonical_record(data)[0].encode() + b"\n")
        export = export_path.stat().st_size
        root = Path(tmp) / "repo"
        repo = Repository.init(LocalBackend(root))
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        print(
            f"{'day':>3} {'seconds':>8} {'records':>9} {'new blobs':>9} {'kind':>5} {'repo MB':>8}"
        )
        first_seconds = secs = 0.0
        for day in range(args.days + 1):
            start = time.perf_counter()
            info = repo.create(
                work.day(day), connection="bench", modules=["Leads"], parent="latest",
                operator="bench", reason=f"day {day}", time=t0 + timedelta(days=day),
            )  # fmt: skip
            secs = time.perf_counter() - start
            first_seconds = first_seconds or secs
            print(
                f"{day:>3} {secs:>8.2f} {info.records:>9} {info.summary['new_blobs']:>9} "
                f"{info.kind:>5} {dir_bytes(root) / 1e6:>8.2f}"
            )
        total = dir_bytes(root)
        parts = {d: dir_bytes(root / d) for d in ("packs", "index", "snapshots")}
        start = time.perf_counter()
        report = repo.verify(read_data=True)
        verify_secs = time.perf_counter() - start
    print()
    print(f"zstd export of day 0 (one stream): {export / 1e6:.2f} MB")
    print(
        f"repository after {args.days} days: {total / 1e6:.2f} MB  ("
        + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in parts.items())
        + ")"
    )
    print(f"ratio repository / export: {total / export:.3f}x")
    print(f"last incremental / first snapshot time (includes generating records): "
          f"{secs / first_seconds:.2f}")  # fmt: skip
    print(f"verify --read-data: {verify_secs:.2f} s, ok={report.ok}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
