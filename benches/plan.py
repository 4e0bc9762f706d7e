"""``crmsync plan`` over a 1M-record mirror, end to end: from the store to the stored plan.

    python benches/plan.py [--records 1000000] [--db /tmp/crmsync_plan_bench.db] [--rebuild]

Builds (once, cached at ``--db``) a mirror of sandbox-like records — 80 % Leads (lead_status
~10 % Lost/Junk, company, email, modified_at spread over 3 years), 20 % Deals (stage,
close_date) — then times :func:`crmsync.plans.planner.make_plan` (policy queries, INSERT ..
SELECT into plan_items, module totals, plan policies, audit entry):

* **first plan**: the store has none of the policy indexes yet, so it builds them;
* **warm plan**: the indexes exist (the steady state: every later ``crmsync plan``).

for two policy sets — the indexable classics (stale leads, closed-lost deals) and the same
plus one ``regex`` policy that no B-tree index can serve (a full scan of its module) — and the
same policies evaluated per record in Python, decoding each stored row and running the tests'
reference evaluator (a generic evaluator, as Cloud Custodian's ValueFilter is). Both must find
the same records.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.policy_reference

from crmsync.config import Config
from crmsync.plans.planner import ITEM_COLUMNS, make_plan
from crmsync.policy import Policy, parse_policies, select_sql
from crmsync.store import Store, open_store
from crmsync.store.base import canonical_record
from tests.policy_reference import evaluate

T = TypeVar("T")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONNECTION = "sandbox"
HISTORY = 3 * 365 * 86400

STALE_LEADS = {
    "name": "stale-leads",
    "connection": CONNECTION,
    "module": "Leads",
    "action": "archive",
    "max_percent": 100,
    "filter": {
        "all": [
            {"field": "lead_status", "op": "in", "value": ["Lost", "Junk"]},
            {"older_than": "365d"},
        ]
    },
}
CLOSED_LOST_DEALS = {
    "name": "closed-lost-deals",
    "connection": CONNECTION,
    "module": "Deals",
    "action": "archive",
    "max_percent": 100,
    "filter": {
        "all": [
            {"field": "stage", "op": "eq", "value": "Closed Lost"},
            {"field": "close_date", "older_than": "2y"},
        ]
    },
}
TEST_EMAILS = {
    "name": "test-emails",
    "connection": CONNECTION,
    "module": "Leads",
    "action": "void",
    "max_percent": 100,
    "filter": {"field": "email", "op": "regex", "value": r"@(example|test)\.(com|org)$"},
}

LEAD_STATUSES = ["New", "Contacted", "Qualified", "Unqualified", "Lost", "Junk", "Converted"]
LEAD_WEIGHTS = [26, 28, 15, 12, 6, 4, 9]  # ~10 % Lost/Junk
STAGES = ["Qualification", "Needs Analysis", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
STAGE_WEIGHTS = [18, 14, 14, 9, 25, 20]
SOURCES = ["Web", "Referral", "Trade Show", "Cold Call", "Partner", "Advertisement"]
CITIES = [("Shanghai", "中国"), ("北京", "中国"), ("London", "UK"), ("Austin", "US")]
DOMAINS = ["gmail.com", "qq.com", "163.com", "acme.io", "outlook.com"]


def stamp(epoch: int, micros: int | None) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if micros is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def build(path: Path, n: int) -> None:
    """A store migrated by crmsync, its mirror filled directly (executemany in big batches)."""
    open_store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    rng = random.Random(4)
    start = int(NOW.timestamp())
    leads = n * 4 // 5
    statuses = rng.choices(LEAD_STATUSES, LEAD_WEIGHTS, k=leads)
    stages = rng.choices(STAGES, STAGE_WEIGHTS, k=n - leads)
    sql = (
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
    )
    rows: list[tuple[Any, ...]] = []
    db.execute("BEGIN")
    for i in range(n):
        created = start - rng.randrange(HISTORY)
        modified = created + int((start - created) * rng.random() ** 3)
        micros = rng.randrange(1_000_000) if i % 3 == 0 else None  # both mirror forms
        common = {
            "id": str(i),
            "created_at": stamp(created, None),
            "modified_at": stamp(modified, micros),
            "owner": {"id": str(i % 40), "name": f"Owner {i % 40}"},
            "status": "active",
            "tags": ["vip"] if i % 17 == 0 else [],
        }
        if i < leads:
            module = "Leads"
            city, country = CITIES[i % len(CITIES)]
            first, last = f"First{i % 997}", f"Last{i % 1009}"
            domain = "example.com" if i % 97 == 0 else DOMAINS[i % len(DOMAINS)]
            data = {
                **common,
                "first_name": first,
                "last_name": last,
                "full_name": f"{first} {last}",
                "company": f"Company {i % 20011} Ltd",
                "email": f"{first}.{last}{i}@{domain}".lower(),
                "phone": f"+86 21 {i % 10**8:08d}",
                "lead_status": statuses[i],
                "source": SOURCES[i % len(SOURCES)],
                "city": city,
                "country": country,
            }
        else:
            module = "Deals"
            close = start - rng.randrange(int(HISTORY * 0.9)) + 180 * 86400
            data = {
                **common,
                "name": f"Company {i % 20011} Ltd - Subscription",
                "account_id": str(i % 50_000),
                "amount": round(10 ** (3 + rng.random() * 3.3), -2),
                "currency": "CNY" if i % 2 else "USD",
                "close_date": stamp(close, None)[:10],
                "stage": stages[i - leads],
            }
        status = "archived" if i % 50 == 0 else "active"
        text, digest = canonical_record(data)
        rows.append(
            (CONNECTION, module, f"{i:07d}", data["modified_at"], status, text, digest, "x", "x")
        )
        if len(rows) == 100_000:
            db.executemany(sql, rows)
            rows.clear()
    db.executemany(sql, rows)
    db.execute("COMMIT")
    db.close()


def drop_policy_indexes(path: Path) -> int:
    db = sqlite3.connect(path, isolation_level=None)
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mirror_f_%'"
        )
    ]
    for name in names:
        db.execute(f'DROP INDEX "{name}"')
    db.execute("DELETE FROM plan_items")
    db.execute("VACUUM")
    db.close()
    return len(names)


def python_baseline(path: Path, policies: Sequence[Policy]) -> dict[str, int]:
    """Per record: read the row, decode its JSON, evaluate the filter (Custodian-style)."""
    from crmsync.policy import actions

    db = sqlite3.connect(path)
    matched: dict[str, int] = {}
    for policy in policies:
        statuses = actions.registry[policy.action.type].from_statuses
        hits = 0
        for record_id, modified_at, status, text in db.execute(
            "SELECT record_id, modified_at, status, data FROM mirror"
            " WHERE connection = ? AND module = ? AND crm_deleted_at IS NULL",
            (policy.connection, policy.module),
        ):
            if statuses is not None and status not in statuses:
                continue
            record = {
                "record_id": record_id,
                "modified_at": modified_at,
                "status": status,
                "data": orjson.loads(text),
            }
            if evaluate(policy.filter, record, NOW):
                hits += 1
        matched[policy.name] = hits
    db.close()
    return matched


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def select_only(store: Store, policies: Sequence[Policy]) -> dict[str, int]:
    """The policy queries alone (what the Python baseline does: evaluation, no plan written)."""
    db: sqlite3.Connection = store._db  # type: ignore[attr-defined]
    out = {}
    for policy in policies:
        sql, params = select_sql(policy, NOW, columns=ITEM_COLUMNS)
        out[policy.name] = len(db.execute(sql, params).fetchall())
    return out


def plan_once(store: Store, config: Config, policies: Sequence[Policy]) -> dict[str, int]:
    plan = make_plan(config, store, policies, operator="bench", now=NOW)
    return {p.policy: p.matched for p in plan.policies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/crmsync_plan_bench.db"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=5, help="warm plans to time (median)")
    args = parser.parse_args()
    if args.rebuild or not args.db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        _, seconds = timed(lambda: build(args.db, args.records))
        print(f"built {args.records:,} records in {seconds:.1f}s")
    drop_policy_indexes(args.db)

    indexable = parse_policies([STALE_LEADS, CLOSED_LOST_DEALS])
    everything = parse_policies([STALE_LEADS, CLOSED_LOST_DEALS, TEST_EMAILS])
    config = Config(path=None, store_path=args.db, raw={"bench": True})
    store = open_store(args.db)
    rows = store.count(CONNECTION, "Leads") + store.count(CONNECTION, "Deals")
    print(f"mirror rows: {rows:,}  (db {args.db.stat().st_size / 1e6:,.0f} MB before indexes)")

    for label, policies in (("indexable", indexable), ("with regex", everything)):
        matched, first = timed(lambda p=policies: plan_once(store, config, p))
        warm = []
        for _ in range(args.repeat):
            again, seconds = timed(lambda p=policies: plan_once(store, config, p))
            assert again == matched, (again, matched)
            warm.append(seconds)
        selects = [timed(lambda p=policies: select_only(store, p)) for _ in range(args.repeat)]
        assert all(found == matched for found, _ in selects)
        select_seconds = statistics.median(seconds for _, seconds in selects)
        base, py_seconds = timed(lambda p=policies: python_baseline(args.db, p))
        assert base == matched, (base, matched)
        module_rows = sum(store.count(CONNECTION, m) for m in {p.module for p in policies})
        print(f"\n[{label}] " + ", ".join(f"{k}: {v:,} matched" for k, v in matched.items()))
        print(f"  first plan (builds indexes): {first:.3f}s")
        print(f"  warm plan (median of {args.repeat}): {statistics.median(warm):.3f}s")
        print(f"  policy queries alone (no plan written): {select_seconds:.3f}s")
        print(f"  python baseline: {py_seconds:.3f}s ({module_rows / py_seconds:,.0f} rec/s)")
        print(f"  ratio python / warm plan: {py_seconds / statistics.median(warm):.1f}x")
        print(f"  ratio python / policy queries alone: {py_seconds / select_seconds:.1f}x")
    store.close()
    print(f"\ndb bytes: {args.db.stat().st_size:,}")


if __name__ == "__main__":
    main()
