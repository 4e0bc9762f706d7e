"""Purge planning over a large mirror: seconds for `crmsync purge --dry-run`'s queries with legal
holds and a statutory floor, against the bare retention selection as the baseline.

    python benches/purge.py [--records 100000] [--db /tmp/crmsync_purge_bench.db] [--rebuild]

Builds (once, cached at ``--db``) a store whose Leads module holds ``--records`` synthetic
records: a fifth voided, their retention clocks (``status_since``) spread over two years,
creation times over eight years, one record in fifty tagged ``VIP``, cities from a list of 20,
a seventh archived (clocks over four years; the rule's maximum is three).
Active holds: 1 000 record ids, the tag ``vip``, the filter ``city = "Austin"``. The rule:
``purge_voided_after = "180d"``, ``keep_at_least = "5y"`` from ``created``.

Prints, best of ``--repeat`` runs:

* **baseline**: ``count(*)`` of voided records past 180 days (the selection retention alone
  needs; what a plain policy query costs);
* **dry run**: ``make_purge_plan(dry_run=True)`` — the purge part (not held, floor passed),
  the restrict part (held or inside the floor) and the void part, each one query, counted in
  Python as the CLI does (20 entries kept per part);
* **dry run --json**: the same with every record's reason (held ones name their holds);
* **re-check**: ``deletion_blocks`` for 500 ids (what apply does per batch);

and the ratio dry run / baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crmsync.compliance import holds
from crmsync.compliance.blocks import deletion_blocks
from crmsync.compliance.purge import make_purge_plan
from crmsync.config import parse_config
from crmsync.plugins import build_registry
from crmsync.store import open_store
from crmsync.store.base import canonical_record

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CITIES = ["Austin", *[f"City{i}" for i in range(19)]]
CONFIG = """
[store]
path = "{db}"

[connections.sandbox]
connector = "rest"
base_url = "http://127.0.0.1:9/api/v1/"
[connections.sandbox.modules.Leads]
path = "Leads"

[[retention.rules]]
connection = "sandbox"
module = "Leads"
purge_voided_after = "180d"
purge_archived_after = "3y"
keep_at_least = "5y"
keep_basis = "HGB-257"
max_records = 1000000
"""


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(path: Path, records: int) -> None:
    path.unlink(missing_ok=True)
    rng = random.Random(9)
    with open_store(path) as store:
        rows = []
        for i in range(records):
            created = NOW - timedelta(days=rng.uniform(0, 8 * 365))
            data = {
                "id": str(i),
                "name": f"Lead {i}",
                "city": rng.choice(CITIES),
                "tags": ["VIP"] if i % 50 == 0 else [],
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            text, digest = canonical_record(data)
            status = "voided" if i % 5 == 0 else ("archived" if i % 7 == 0 else "active")
            span = 1460 if status == "archived" else 730  # some archived past their 3y maximum
            since = stamp(NOW - timedelta(days=rng.uniform(0, span)))
            rows.append(("sandbox", "Leads", str(i), stamp(created), status, text, digest,
                         stamp(created), stamp(created), since))  # fmt: skip
        db = store._db
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
            " content_hash, first_seen_at, updated_at, status_since)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("DELETE FROM mirror_fts_pending")  # the search index is not measured here
        db.execute("COMMIT")
        ids = [("sandbox", "Leads", str(i)) for i in range(0, records, max(1, records // 1000))]
        holds.add_hold(store, kind="records", records=ids[:1000], reason="case", operator="b")
        holds.add_hold(store, kind="tag", spec={"tag": "vip"}, reason="vip", operator="b")
        holds.add_hold(
            store,
            kind="filter",
            connection="sandbox",
            module="Leads",
            spec={"filter": {"field": "city", "op": "eq", "value": "Austin"}},
            reason="audit",
            operator="b",
        )


def best(repeat: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/crmsync_purge_bench.db"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    db = args.db.with_name(f"{args.db.stem}-{args.records}{args.db.suffix}")
    if args.rebuild or not db.exists():
        start = time.perf_counter()
        build(db, args.records)
        print(
            f"built {args.records} records in {time.perf_counter() - start:.1f} s", file=sys.stderr
        )
    config = parse_config(CONFIG.format(db=db), build_registry())
    with open_store(db) as store:
        cutoff = (NOW - timedelta(days=180)).strftime("%Y-%m-%d %H:%M:%S")
        baseline, matched = best(
            args.repeat,
            lambda: store._db.execute(
                "SELECT count(*) FROM mirror WHERE connection = 'sandbox' AND module = 'Leads'"
                " AND crm_deleted_at IS NULL AND status = 'voided'"
                " AND datetime(coalesce(status_since, first_seen_at)) <= ?",
                (cutoff,),
            ).fetchone()[0],
        )
        dry, result = best(
            args.repeat,
            lambda: make_purge_plan(
                config, store, operator="bench", dry_run=True, now=NOW, shown=20
            ),
        )
        # --json: every record with its reason (the held ones name their holds), as a stored
        # plan computes them
        dry_all, _ = best(
            args.repeat,
            lambda: make_purge_plan(
                config, store, operator="bench", dry_run=True, now=NOW, shown=None
            ),
        )
        step = max(1, args.records // 500)
        ids = [str(i) for i in range(step // 2 + 1, args.records, step)][:500]  # none held by id
        recheck, blocked = best(
            args.repeat, lambda: deletion_blocks(store, config, "sandbox", "Leads", ids, NOW)
        )
    figures = {
        "records": args.records,
        "due_voided": matched,
        "parts": result.counts,  # type: ignore[attr-defined]
        "baseline_s": round(baseline, 3),
        "dry_run_s": round(dry, 3),
        "ratio": round(dry / baseline, 2) if baseline else None,
        "dry_run_json_s": round(dry_all, 3),
        "recheck_500_s": round(recheck, 4),
        "recheck_blocked": len(blocked),  # type: ignore[arg-type]
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
