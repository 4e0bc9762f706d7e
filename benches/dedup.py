"""Duplicate detection over a 1M-record mirror: ``duplicate_of`` as crmsync plans it (one SQL
window query with the cleaning keys as a SQL function), against a plain Python pass.

    python benches/dedup.py [--records 1000000] [--db /tmp/crmsync_dedup_bench.db] [--rebuild]
                            [--keys email phone company+name] [--no-baseline] [--repeat 2]
                            [--plan]

Builds (once, cached at ``--db``) a store whose mirror holds ``--records`` Leads from the
sandbox generator (``crmsync.sandbox.data``: Chinese and English people and companies, 5 %
near-duplicates with case, space, suffix and phone-format variants). Then, for each key —

* ``email``: ``duplicate_of = ["email"], normalize = "email"``
* ``phone``: ``duplicate_of = ["phone"], normalize = "e164", default_region = "CN"``
* ``company+name``: ``duplicate_of = ["company", "full_name"]`` (company, name keys),
  ``keep = "most_complete"``

— it runs, each in a child process (peak RSS = the child's ``ru_maxrss`` from ``wait4``):

* **crmsync**: :func:`crmsync.policy.duplicates.cluster_sql` — every record to void, with its
  cluster key and survivor — counted in SQL (what ``crmsync plan`` copies into the plan);
* **plan** (``--plan``): ``crmsync plan`` of a void policy with that filter, end to end
  (:func:`crmsync.plans.planner.make_plan`: the records to void stored as plan items, each with
  its cluster and survivor; the store opened as crmsync opens it, memory map off as above); the
  plan is deleted afterwards;
* **baseline**: the same rows read from SQLite, decoded, keyed with the same key functions and
  grouped in a Python dict, survivors picked by the same rule.

All must find the same number of records and clusters. Targets (issue 7): <= 30 s and peak
RSS <= 256 MB for 1M records. Each figure is the best of ``--repeat`` runs (seconds: wall
time of the query; CPU: the child's CPU seconds over the query, which a loaded machine
disturbs less; peak MB: the largest of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crmsync.policy import parse_policies
from crmsync.policy.duplicates import cluster_sql, dup_key, key_fields
from crmsync.policy.filters import Scope
from crmsync.policy.sql import install_sql_functions
from crmsync.sandbox.data import RecordGenerator
from crmsync.store import open_store
from crmsync.store.base import canonical_record

CONNECTION, MODULE = "sandbox", "Leads"
KEYS: dict[str, dict[str, Any]] = {
    "email": {"duplicate_of": ["email"], "normalize": "email"},
    "phone": {"duplicate_of": ["phone"], "normalize": "e164", "default_region": "CN"},
    "company+name": {
        "duplicate_of": ["company", "full_name"],
        "normalize": {"company": "company", "full_name": "name"},
        "keep": "most_complete",
    },
}
TARGET_SECONDS, TARGET_RSS_MB = 30.0, 256.0


def build(path: Path, n: int) -> None:
    """A store migrated by crmsync, its mirror filled directly with generated Leads."""
    open_store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    sql = (
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
    )
    rows: list[tuple[Any, ...]] = []
    db.execute("BEGIN")
    for rec in RecordGenerator(seed=42, sizes={MODULE: n}).module(MODULE):
        data = rec.data
        text, digest = canonical_record(data)
        status = data["status"]
        stamp = data["modified_at"]
        rows.append((CONNECTION, MODULE, data["id"], stamp, status, text, digest, stamp, stamp))
        if len(rows) >= 20_000:
            db.executemany(sql, rows)
            rows.clear()
    db.executemany(sql, rows)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def policy_value(name: str) -> dict[str, Any]:
    raw = {
        "name": "dedup",
        "connection": CONNECTION,
        "module": MODULE,
        "action": "void",
        "filter": KEYS[name],
    }
    [policy] = parse_policies([raw])
    return policy.filter.value  # type: ignore[union-attr]


def connect(path: Path) -> sqlite3.Connection:
    """The store's file as ``crmsync plan`` reads it (its SQL functions), no memory map: mapped
    pages of a 1 GB file would count in the process's RSS though the OS can drop them."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA mmap_size = 0")
    install_sql_functions(db)
    return db


def run_crmsync(path: Path, name: str) -> dict[str, Any]:
    sql, params = cluster_sql(policy_value(name), Scope(CONNECTION, MODULE))
    db = connect(path)
    start, cpu = time.perf_counter(), time.process_time()
    voids, clusters = db.execute(
        f"SELECT count(*), count(DISTINCT cluster) FROM ({sql})", params
    ).fetchone()
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "voids": voids,
        "clusters": clusters,
    }


def run_plan(path: Path, name: str) -> dict[str, Any]:
    """``crmsync plan`` of the policy, end to end (:func:`make_plan`: the records to void and
    each one's cluster and survivor stored as plan items); the plan is deleted afterwards."""
    from crmsync.config import Config
    from crmsync.plans.planner import make_plan

    raw = {"name": "dedup", "connection": CONNECTION, "module": MODULE, "action": "void"}
    [policy] = parse_policies([{**raw, "filter": KEYS[name]}])
    store = open_store(path)
    store._db.execute("PRAGMA mmap_size = 0")  # type: ignore[attr-defined]  # as connect() says
    start, cpu = time.perf_counter(), time.process_time()
    plan = make_plan(Config(path=None, store_path=path, raw={}), store, [policy], operator="bench")
    result = {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    store.close()
    with sqlite3.connect(path) as db:
        (clusters,) = db.execute(
            "SELECT count(DISTINCT json_extract(detail, '$.cluster')) FROM plan_items"
            " WHERE plan_id = ?",
            (plan.id,),
        ).fetchone()
        for table, column in (("plan_items", "plan_id"), ("plan_policies", "plan_id")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (plan.id,))
        db.execute("DELETE FROM plans WHERE id = ?", (plan.id,))
    return {**result, "voids": plan.policies[0].matched, "clusters": clusters}


def _rows(db: sqlite3.Connection) -> Iterator[tuple[str, str, str | None, str]]:
    last = ""
    while True:  # keyset pages, as the store reads
        page = db.execute(
            "SELECT record_id, status, modified_at, data FROM mirror WHERE connection = ?"
            " AND module = ? AND crm_deleted_at IS NULL AND status IN ('active', 'archived')"
            " AND record_id > ? ORDER BY record_id LIMIT 10000",
            (CONNECTION, MODULE, last),
        ).fetchall()
        if not page:
            return
        yield from page
        last = page[-1][0]


def run_baseline(path: Path, name: str) -> dict[str, Any]:
    from tests.policy_reference import filled_fields

    value = policy_value(name)
    fields = [(ref.path[0], mode) for ref, mode in key_fields(value)]
    complete = value.get("keep") == "most_complete"
    db = connect(path)
    start, cpu = time.perf_counter(), time.process_time()
    best: dict[tuple[str, ...], tuple[Any, ...]] = {}
    sizes: dict[tuple[str, ...], int] = {}
    for rid, status, modified, text in _rows(db):
        data = orjson.loads(text)
        key = tuple(dup_key(mode, data.get(field)) for field, mode in fields)
        if None in key:
            continue
        rank = (status == "active", filled_fields(data) if complete else 0, modified or "", rid)
        sizes[key] = sizes.get(key, 0) + 1
        if key not in best or rank > best[key]:
            best[key] = rank
    clusters = sum(1 for n in sizes.values() if n > 1)
    voids = sum(n - 1 for n in sizes.values())
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "voids": voids,
        "clusters": clusters,
    }


def child(path: Path, kind: str, name: str) -> tuple[dict[str, Any], float]:
    """Run one measurement in a fresh interpreter; (its result, its peak RSS in MB)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--db", str(path), "--child", kind, name],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{kind} {name} failed")
    return json.loads(out), usage.ru_maxrss / 1024


def best_of(repeat: int, path: Path, kind: str, name: str) -> tuple[dict[str, Any], float]:
    """The fastest of ``repeat`` runs (seconds and CPU each at their minimum), the largest RSS."""
    runs = [child(path, kind, name) for _ in range(max(repeat, 1))]
    result = dict(runs[0][0])
    for key in ("seconds", "cpu"):
        result[key] = min(r[key] for r, _ in runs)
    for r, _ in runs[1:]:
        if (r["voids"], r["clusters"]) != (result["voids"], result["clusters"]):
            raise SystemExit(f"{kind} {name}: runs disagree: {r} {result}")
    return result, max(rss for _, rss in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/crmsync_dedup_bench.db"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--keys", nargs="*", default=list(KEYS), choices=list(KEYS))
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement (best kept)")
    ap.add_argument("--plan", action="store_true", help="also time crmsync plan end to end")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, name = args.child
        if kind == "migrate":
            open_store(args.db).close()
            return
        runs = {"crmsync": run_crmsync, "plan": run_plan, "baseline": run_baseline}
        result = runs[kind](args.db, name)
        print(json.dumps(result))
        return
    db_path = args.db.with_name(f"{args.db.stem}-{args.records}{args.db.suffix}")
    if args.rebuild or not db_path.exists():
        db_path.unlink(missing_ok=True)
        start = time.perf_counter()
        build(db_path, args.records)
        print(f"built {args.records:,} Leads in {time.perf_counter() - start:.1f} s: {db_path}")
    # Migrated before measuring (a new schema's work is not the query's), in a child: a child's
    # peak RSS starts at its parent's at the fork.
    subprocess.run([sys.executable, __file__, "--db", str(db_path), "--child", "migrate", ""])
    with sqlite3.connect(db_path) as db:
        (n,) = db.execute("SELECT count(*) FROM mirror").fetchone()
    print(f"mirror: {n:,} records ({db_path.stat().st_size / 1e6:.0f} MB)\n")
    header = f"{'key':<14}{'run':<10}{'seconds':>9}{'CPU s':>8}{'records/s':>12}{'peak MB':>9}"
    print(header + f"{'clusters':>10}{'to void':>9}")
    verdicts = []
    for name in args.keys:
        ours, rss = best_of(args.repeat, db_path, "crmsync", name)
        rows = [("crmsync", ours, rss)]
        if args.plan:
            planned, plan_rss = best_of(args.repeat, db_path, "plan", name)
            if (planned["voids"], planned["clusters"]) != (ours["voids"], ours["clusters"]):
                raise SystemExit(f"{name}: the plan and the query disagree: {planned} {ours}")
            rows.append(("plan", planned, plan_rss))
        if not args.no_baseline:
            base, base_rss = best_of(args.repeat, db_path, "baseline", name)
            rows.append(("baseline", base, base_rss))
            if (base["voids"], base["clusters"]) != (ours["voids"], ours["clusters"]):
                raise SystemExit(f"{name}: crmsync and the baseline disagree: {ours} {base}")
        for label, r, mb in rows:
            rate = n / r["seconds"]
            print(
                f"{name:<14}{label:<10}{r['seconds']:>9.2f}{r['cpu']:>8.2f}{rate:>12,.0f}{mb:>9.0f}"
                f"{r['clusters']:>10,}{r['voids']:>9,}"
            )
        if not args.no_baseline:
            ratio = rows[-1][1]["seconds"] / ours["seconds"]
            print(f"{'':<14}crmsync is {ratio:.2f}x the baseline's speed")
        for label, r, mb in rows[: 2 if args.plan else 1]:
            ok = r["seconds"] <= TARGET_SECONDS and mb <= TARGET_RSS_MB
            verdict = f"{r['seconds']:.1f} s (CPU {r['cpu']:.1f} s), {mb:.0f} MB"
            verdicts.append(f"{name} {label}: {verdict} {'ok' if ok else 'MISSED'}")
    targets = f"<= {TARGET_SECONDS:.0f} s, <= {TARGET_RSS_MB:.0f} MB"
    print(f"\ntargets ({targets}): " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
