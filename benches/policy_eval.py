"""Compiled policy SQL vs a per-record Python evaluation (the Custodian-style baseline).

    python benches/policy_eval.py [--records 1000000] [--db /tmp/policy_bench.db]

Builds (once) a mirror of N lead-like records, then times the "stale leads" policy (status in
Lost/Junk and modified more than 365 days ago) three ways, warm: count via SQL, select ids via
SQL, and Python decoding each row's JSON and evaluating the same filter.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from crmsync.policy import count_sql, install_sql_functions, parse_policies, select_sql
from crmsync.store import open_store
from crmsync.store.base import canonical_record

NOW = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = {
    "name": "stale-leads",
    "connection": "crm",
    "module": "Leads",
    "action": "archive",
    "filter": {
        "all": [
            {"field": "Lead_Status", "op": "in", "value": ["Lost", "Junk"]},
            {"field": "Last_Activity_Time", "older_than": "365d"},
        ]
    },
}


def build(path: Path, n: int) -> None:
    open_store(path).close()
    db = sqlite3.connect(path)
    rng = random.Random(1)
    statuses = ["New", "Contacted", "Qualified", "Lost", "Junk"]
    rows = []
    for i in range(n):
        when = NOW - timedelta(seconds=rng.randrange(3 * 365 * 86400))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S" + (".%fZ" if i % 2 else "Z"))
        data = {
            "id": str(i),
            "First_Name": f"名{i}",
            "Last_Name": f"Surname{i}",
            "Email": f"user{i}@example.com",
            "Company": f"公司 {i % 5000}",
            "Lead_Status": rng.choice(statuses),
            "Lead_Source": rng.choice(["Web", "Trade Show", "Referral"]),
            "Annual_Revenue": rng.randrange(10**7),
            "Last_Activity_Time": stamp,
            "Owner": {"id": str(i % 50), "name": f"Owner {i % 50}"},
            "Tags": ["a", "b"][: i % 3],
        }
        text, digest = canonical_record(data)
        rows.append(("crm", "Leads", str(i), stamp, text, digest, "x", "x"))
        if len(rows) == 50_000:
            db.executemany(
                "INSERT INTO mirror (connection, module, record_id, modified_at,"
                " data, content_hash, first_seen_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows.clear()
    if rows:
        db.executemany(
            "INSERT INTO mirror (connection, module, record_id, modified_at,"
            " data, content_hash, first_seen_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.commit()
    db.close()


def python_baseline(db: sqlite3.Connection) -> int:
    cutoff = NOW - timedelta(days=365)
    hits = 0
    for (text,) in db.execute(
        "SELECT data FROM mirror WHERE connection = 'crm' AND module = 'Leads'"
        " AND crm_deleted_at IS NULL AND status = 'active'"
    ):
        data = orjson.loads(text)
        if data.get("Lead_Status") not in ("Lost", "Junk"):
            continue
        stamp = data.get("Last_Activity_Time")
        if isinstance(stamp, str) and datetime.fromisoformat(stamp) < cutoff:
            hits += 1
    return hits


def timed(fn):
    fn()  # warm
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/crmsync_policy_bench.db"))
    args = parser.parse_args()
    if not args.db.exists():
        start = time.perf_counter()
        build(args.db, args.records)
        print(f"built {args.records} records in {time.perf_counter() - start:.1f}s")
    (policy,) = parse_policies([POLICY])
    db = sqlite3.connect(args.db)
    install_sql_functions(db)
    csql, cparams = count_sql(policy, NOW)
    ssql, sparams = select_sql(policy, NOW, columns="record_id")
    count, t_count = timed(lambda: db.execute(csql, cparams).fetchone()[0])
    ids, t_select = timed(lambda: db.execute(ssql, sparams).fetchall())
    base, t_py = timed(lambda: python_baseline(db))
    assert count == len(ids) == base, (count, len(ids), base)
    total = db.execute("SELECT count(*) FROM mirror").fetchone()[0]
    print(f"mirror rows: {total}, matched: {count}")
    print(f"SQL count:   {t_count:.3f}s")
    print(f"SQL select:  {t_select:.3f}s")
    print(f"Python eval: {t_py:.3f}s ({total / t_py:,.0f} rec/s)")
    print(f"ratio (python / sql select): {t_py / t_select:.1f}x")


if __name__ == "__main__":
    main()
