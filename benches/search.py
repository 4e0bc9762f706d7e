"""``crmsync search`` over a large mirror: keyword latency, the LIKE scan it replaces, index
build time, the cost per pulled page, and the bytes the index adds.

    python benches/search.py                       # 100k sandbox records
    python benches/search.py --records 1000000     # the issue's target size
    python benches/search.py --db /tmp/x.db --rebuild --repeat 30

Workload: the bundled sandbox's seeded records (``RecordGenerator``: Leads, Contacts, Accounts,
Deals, about 60 % Chinese), written straight into a store at the schema version before search
(cached at ``--db``.base; ``--rebuild`` makes it again). Then, on a copy:

- **index build**: opening the store runs the search migration, which queues every record,
  and the first search indexes them (what an upgrade costs once); bytes the index adds (file
  size, after a checkpoint);
- **keyword search**: each query of :data:`QUERIES` (Chinese and English: names, 2-character
  names and trade names, companies, phrases, e-mail and phone fragments, OR) through
  ``crmsync.search.finder.find`` (the store's ranked query plus names and snippets for the top
  20), ``--repeat`` times after a warm-up; p50/p95 per language against the 50 ms target;
  queries whose matches fill the ranking window are marked;
- **LIKE baseline**: the same words as ``data LIKE '%word%'`` (ANDed) ordered by modified time,
  a scan of every record — what search would cost without the index; the ratio per query;
- **pull pages**: commit_page of ``--page`` changed records and of as many new ones, with the
  index's triggers and (on the same store, triggers dropped at the end) without them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crmsync.hookspecs import PulledRecord
from crmsync.sandbox.data import RecordGenerator, split_sizes
from crmsync.search import SearchRequest, parse_query
from crmsync.search.finder import find
from crmsync.store import open_store
from crmsync.store.base import canonical_record
from crmsync.store.migrations import MIGRATIONS

CONNECTION = "sandbox"
SEARCH_VERSION = next(i + 1 for i, script in enumerate(MIGRATIONS) if "mirror_fts" in script)

# (language, query): what an admin types looking for a customer.
QUERIES: tuple[tuple[str, str], ...] = (
    ("zh", "张伟"),  # a 2-character person name
    ("zh", "王秀英"),
    ("zh", "欧阳"),
    ("zh", "金桥"),  # a 2-character trade name (南京金桥管理咨询有限公司)
    ("zh", "南京金桥"),
    ("zh", "华信科技"),
    ("zh", "鼎盛 物流"),
    ("zh", '"瑞丰医疗器械"'),
    ("zh", "云帆 OR 启航"),
    ("zh", "技术总监 杭州"),
    ("en", "Northwind"),
    ("en", "smith"),
    ("en", "michael smith"),
    ("en", '"Acme Logistics"'),
    ("en", "pied piper"),
    ("en", "olivia.brown"),
    ("en", "(415) 88"),
    ("en", "Stark OR Wayne"),
    ("en", "Cyberdyne -Ltd"),
    ("en", "jennifer.wilson@gmail"),
)


def build_base(path: Path, n: int) -> None:
    """A store at the schema before search, its mirror filled directly."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp, isolation_level=None)
    for script in MIGRATIONS[: SEARCH_VERSION - 1]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {SEARCH_VERSION - 1}")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    rows = []
    for rec in RecordGenerator(seed=42, sizes=split_sizes(n)):
        text, digest = canonical_record(rec.data)
        rows.append(
            (rec.module, rec.data["id"], rec.data["modified_at"], rec.data["status"], text, digest)
        )
        if len(rows) >= 20000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("COMMIT")
    db.close()
    tmp.rename(path)


def _insert(db: sqlite3.Connection, rows: list[tuple[str, ...]]) -> None:
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, seen_run)"
        f" VALUES ('{CONNECTION}', ?, ?, ?, ?, ?, ?, 'x', 'x', 1)",
        rows,
    )


def file_size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def bench_queries(store, repeat: int) -> dict[str, tuple[list[float], bool, int]]:
    out = {}
    for _, text in QUERIES:
        request = SearchRequest(parse_query(text))
        result = find(store, request)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            find(store, request)
            times.append(time.perf_counter() - t0)
        out[text] = (times, result.window_full, len(result.rows))
    return out


def like_sql(text: str) -> tuple[str, list[str]]:
    query = parse_query(text)
    assert query is not None
    parts, args = [], []
    for group in query.groups:
        parts.append("(" + " OR ".join("data LIKE ?" for _ in group) + ")")
        args += [f"%{lit}%" for lit in group]
    for lit in query.excluded:
        parts.append("data NOT LIKE ?")
        args.append(f"%{lit}%")
    sql = (
        "SELECT record_id FROM mirror WHERE " + " AND ".join(parts) + " ORDER BY modified_at DESC"
        " LIMIT 20"
    )
    return sql, args


def bench_like(path: Path, repeat: int) -> dict[str, float]:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA mmap_size = {1 << 30}")
    out = {}
    for _, text in QUERIES:
        sql, args = like_sql(text)
        db.execute(sql, args).fetchall()  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            db.execute(sql, args).fetchall()
            times.append(time.perf_counter() - t0)
        out[text] = statistics.median(times)
    db.close()
    return out


def pages(store, size: int, count: int, *, new: bool, salt: str) -> list[float]:
    """Seconds per commit_page of ``size`` changed (or new) records."""
    ids = [
        r[0]
        for r in store._db.execute(
            "SELECT record_id FROM mirror WHERE module = 'Leads' ORDER BY record_id LIMIT ?",
            (size * count,),
        )
    ]
    run_id = store.start_run("pull", CONNECTION, "Leads")
    out = []
    for k in range(count):
        chunk = ids[k * size : (k + 1) * size]
        records = []
        for rid in chunk:
            data = store.get_record(CONNECTION, "Leads", rid).data
            data["company"] = f"{data.get('company', '')} {salt}{k}"
            if new:
                rid = f"{salt}{k}-{rid}"
                data["id"] = rid
            records.append(PulledRecord(rid, data, data["modified_at"]))
        t0 = time.perf_counter()
        store.commit_page(CONNECTION, "Leads", run_id, records)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/crmsync_search_bench.db"))
    parser.add_argument("--rebuild", action="store_true", help="Regenerate the cached base.")
    parser.add_argument("--repeat", type=int, default=20, help="Timed runs per query.")
    parser.add_argument("--like-repeat", type=int, default=3)
    parser.add_argument("--page", type=int, default=500, help="Records per pulled page.")
    args = parser.parse_args()

    base = args.db.with_suffix(f".{args.records}.base")
    if args.rebuild or not base.exists():
        t0 = time.perf_counter()
        build_base(base, args.records)
        print(f"base store: {args.records:,} sandbox records in {time.perf_counter() - t0:.0f} s")
    work = args.db
    for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        p.unlink(missing_ok=True)
    shutil.copy(base, work)
    before = file_size(work)

    t0 = time.perf_counter()
    store = open_store(work)  # the search migration queues every record
    store.update_search_index()  # and the first search (or pull) indexes them
    build = time.perf_counter() - t0
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = file_size(work)
    n = args.records
    print(f"\nindex build ({n:,} records, store migration {SEARCH_VERSION}): {build:.1f} s")
    print(
        f"store size: {before / 1e6:.0f} MB without the index, {after / 1e6:.0f} MB with it:"
        f" +{(after - before) / 1e6:.0f} MB (+{(after - before) / before:.0%},"
        f" {(after - before) / n:.0f} bytes a record)"
    )

    print(f"\nkeyword search through crmsync.search (top 20, {args.repeat} runs each):")
    results = bench_queries(store, args.repeat)
    like = bench_like(work, args.like_repeat)
    print(f"{'lang':4} {'query':24} {'p50 ms':>8} {'p95 ms':>8} {'LIKE ms':>9} {'ratio':>7}  rows")
    per_lang: dict[str, list[float]] = {"zh": [], "en": []}
    ratios = []
    for lang, text in QUERIES:
        times, full, rows = results[text]
        per_lang[lang] += times
        p50 = statistics.median(times)
        ratios.append(like[text] / p50)
        mark = " (window full)" if full else ""
        print(
            f"{lang:4} {text:24} {p50 * 1000:8.1f} {percentile(times, 95) * 1000:8.1f}"
            f" {like[text] * 1000:9.0f} {like[text] / p50:6.0f}x  {rows}{mark}"
        )
    for lang, times in per_lang.items():
        print(
            f"{lang}: p50 {statistics.median(times) * 1000:.1f} ms,"
            f" p95 {percentile(times, 95) * 1000:.1f} ms (target <= 50 ms)"
        )
    every = per_lang["zh"] + per_lang["en"]
    print(
        f"all: p95 {percentile(every, 95) * 1000:.1f} ms; LIKE scan / search: median"
        f" {statistics.median(ratios):.0f}x, min {min(ratios):.0f}x"
    )

    with_index = {
        "changed": pages(store, args.page, 6, new=False, salt="bench"),
        "new": pages(store, args.page, 6, new=True, salt="new"),
    }
    for trigger in ("insert", "update", "delete"):
        store._db.execute(f"DROP TRIGGER mirror_fts_{trigger}")
    without = {
        "changed": pages(store, args.page, 6, new=False, salt="plain"),
        "new": pages(store, args.page, 6, new=True, salt="fresh"),
    }
    store.close()
    print(f"\npull pages of {args.page} records (commit_page, median of 6):")
    for kind in ("changed", "new"):
        a, b = statistics.median(with_index[kind]), statistics.median(without[kind])
        print(
            f"{kind:8}: {a * 1000:.0f} ms with the index, {b * 1000:.0f} ms without:"
            f" +{(a - b) * 1000:.0f} ms a page, {(a - b) / args.page * 1e6:.0f} us a record"
        )


if __name__ == "__main__":
    main()
