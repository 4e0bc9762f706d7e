"""``crmsync report`` over a large mirror of sandbox records: seconds and peak RSS.

    python benches/report.py [--records 100000] [--db /tmp/crmsync_report_bench.db] [--rebuild]

Builds (once, cached at ``--db``) a store whose mirror holds ``--records`` records of the
bundled sandbox's generator (all four modules, 5 % near-duplicates, tags, statuses, three
years of times), inserted straight into the ``mirror`` table. Then, in a child process (so the
figures are the report's own, not the build's), gathers the report of every module as
``crmsync report`` does, renders it as JSON and HTML, and prints:

* wall seconds for the whole report and per store call (the status counts; the per-module
  pass with its GROUP BYs; the field sample), and the process's CPU seconds (on a busy
  machine wall time overstates; CPU time does less);
* peak RSS (``ru_maxrss``) and, at the end, anonymous vs file-backed resident memory — the
  store maps its file (``mmap_size``), so pages of the mirror that a scan touched count as
  file-backed RSS: the OS's page cache, not the report's memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crmsync.report.document import as_document
from crmsync.report.gather import build_report
from crmsync.report.html import render_html
from crmsync.report.model import ReportOptions
from crmsync.sandbox.data import RecordGenerator, split_sizes
from crmsync.store import open_store
from crmsync.store.base import canonical_record

CONNECTION = "sandbox"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIMED = ("report_status_counts", "report_module")


def build(path: Path, records: int) -> None:
    """A store migrated by crmsync, its mirror filled directly (executemany, one transaction)."""
    path.unlink(missing_ok=True)
    open_store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    stamp = "2026-01-01T00:00:00Z"

    def rows() -> Iterator[tuple[Any, ...]]:
        for rec in RecordGenerator(seed=42, sizes=split_sizes(records)):
            text, digest = canonical_record(rec.data)
            yield (CONNECTION, rec.module, rec.data["id"], rec.data["modified_at"],
                   rec.data["status"], text, digest, stamp, stamp)  # fmt: skip

    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        rows(),
    )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def memory() -> dict[str, float]:
    """Current anonymous and file-backed resident memory (MB), from /proc/self/status."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def child(db: Path) -> None:
    store = open_store(db)
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for name in TIMED:
        method = getattr(store, name)

        def timed(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kw)
            finally:
                spent[_name] += time.perf_counter() - started
                calls[_name] += 1

        setattr(store, name, timed)
    started = time.perf_counter()
    report = build_report(store, ReportOptions(now=NOW))
    gathered = time.perf_counter() - started
    document = json.dumps(as_document(report), ensure_ascii=False)
    page = render_html(report)
    total = time.perf_counter() - started
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": total,
                "gather_seconds": gathered,
                "queries": {k: [round(spent[k], 2), calls[k]] for k in TIMED},
                "field_sample_seconds": gathered - sum(spent.values()),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "end": memory(),
                "records": sum(m.records for m in report.modules),
                "json_bytes": len(document.encode()),
                "html_bytes": len(page.encode()),
                "clusters": {
                    m.module: {d.key: d.clusters for d in m.duplicates} for m in report.modules
                },
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    db = args.db or Path(f"/tmp/crmsync_report_bench_{args.records}.db")
    if args.rebuild or not db.exists():
        started = time.perf_counter()
        build(db, args.records)
        print(f"built {args.records:,} records in {time.perf_counter() - started:.1f} s ({db})")
    open_store(db).close()  # migrate here (a newer crmsync may add to the store), not in the child
    size = db.stat().st_size / 1e6
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(db)], capture_output=True, text=True, check=True
    ).stdout
    r = json.loads(out)
    print(f"report over {r['records']:,} records ({size:,.0f} MB store)")
    print(
        f"  total            {r['seconds']:.2f} s (gather {r['gather_seconds']:.2f} s),"
        f" CPU {r['cpu_seconds']:.2f} s (process, imports included)"
    )
    for name, (seconds, n) in r["queries"].items():
        print(f"  {name:<22} {seconds:6.2f} s in {n} queries")
    print(f"  field sample           {r['field_sample_seconds']:6.2f} s")
    print(f"  peak RSS         {r['peak_rss_mb']:.0f} MB")
    end = r["end"]
    if end:
        print(f"  at the end       anonymous {end['RssAnon']:.0f} MB, file-backed "
              f"{end['RssFile']:.0f} MB (the mapped store)")  # fmt: skip
    print(f"  output           JSON {r['json_bytes']:,} B, HTML {r['html_bytes']:,} B")
    print(f"  clusters         {r['clusters']}")


if __name__ == "__main__":
    main()
