"""``crmsync compliance report`` over a large store, against ``crmsync report`` on the same store.

    python benches/compliance_report.py [--records 1000000] [--db /tmp/crmsync_compliance.db]
                                        [--rebuild] [--repeat 3]

Builds (once, cached at ``--db``) a store whose mirror holds ``--records`` records of the
bundled sandbox's generator (four modules, its status mix), their retention clocks
(``status_since``) spread over two years, a few restricted; an audit log with 20 purge plans
(1 000 purge entries each, plus restrictions) and 2 000 erasure proofs; and holds by record
ids (1 000), by tag, by filter, on a whole module, and one released. The config has a
retention rule per module (one with a statutory floor). No snapshot repository (the
snapshot section lists a repository's snapshots: its cost is the repository's ``list``).

Each command runs in a child process (``crmsync -c CONFIG ...``), best of ``--repeat``; prints
wall seconds, CPU seconds and peak RSS (the child's ``ru_maxrss`` from ``wait4``) of

* **baseline**: ``crmsync report --json`` (data quality; one pass per module + GROUP BYs);
* **compliance**: ``crmsync compliance report --json`` (one pass per module for every
  retention and hold figure, the audit log's GROUP BYs, a full audit chain verification);

and the ratio compliance / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crmsync.audit.model import AuditEntry
from crmsync.compliance import holds
from crmsync.sandbox.data import RecordGenerator, split_sizes
from crmsync.store import open_store
from crmsync.store.base import canonical_record

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CONFIG = """
[store]
path = "{db}"

[snapshots]
repository = "{db}.snapshots"

[retention]
snapshots_max_age = "400d"

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
keep_at_least = "2y"
keep_basis = "HGB-257"

[[retention.rules]]
connection = "sandbox"
purge_voided_after = "90d"
"""


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(path: Path, records: int) -> None:
    path.unlink(missing_ok=True)
    open_store(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    created = "2026-01-01T00:00:00Z"

    def rows() -> Iterator[tuple[Any, ...]]:
        for rec in RecordGenerator(seed=42, sizes=split_sizes(records)):
            text, digest = canonical_record(rec.data)
            since = stamp(NOW - timedelta(days=rng.uniform(0, 730)))
            yield ("sandbox", rec.module, rec.data["id"], rec.data["modified_at"],
                   rec.data["status"], text, digest, created, created, since)  # fmt: skip

    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at, status_since)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    db.execute(
        "UPDATE mirror SET restricted_at = status_since,"
        " restricted_reason = 'HGB-257: statutory until 2027-06-01T00:00:00Z'"
        " WHERE status = 'voided' AND rowid % 50 = 0"
    )
    db.execute("DELETE FROM mirror_fts_pending")  # the search index is not measured here
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    with open_store(path) as store:
        leads = [r[0] for r in store._db.execute(  # type: ignore[attr-defined]
            "SELECT record_id FROM mirror WHERE module = 'Leads' LIMIT 1000")]  # fmt: skip
        h = lambda **kw: holds.add_hold(store, reason="case", operator="legal", now=NOW, **kw)  # noqa: E731
        h(kind="records", records=[("sandbox", "Leads", r) for r in leads])
        h(kind="tag", spec={"tag": "vip"})
        h(kind="filter", connection="sandbox", module="Contacts",
          spec={"filter": {"field": "city", "op": "eq", "value": "Austin"}})  # fmt: skip
        h(kind="connection", connection="sandbox", module="Deals")
        gone = h(kind="tag", spec={"tag": "audit"})
        holds.release_hold(store, gone.id, reason="closed", operator="dpo", now=NOW)
        for p in range(20):
            plan = f"20261{p:03d}-purge"
            entries = [
                AuditEntry("purge", "alice", connection="sandbox", module="Leads",
                           record_id=f"gone-{p}-{i}", before_status="voided",
                           after_status="purged", plan_id=plan, detail={"basis": "PIPL-47-1-2"})
                for i in range(1000)
            ] + [
                AuditEntry("restrict", "alice", connection="sandbox", module="Leads",
                           record_id=f"held-{p}-{i}", plan_id=plan,
                           detail={"basis": "GDPR-17-3-e", "block": "hold"})
                for i in range(50)
            ]  # fmt: skip
            store.append_audit(entries)
        store.append_audit(
            [
                AuditEntry("erase", "bob", connection="sandbox", module="Contacts",
                           record_id=None, plan_id="20261100-erasure",
                           detail={"basis": "GDPR-17-1-b", "versions": 1})
                for _ in range(2000)
            ]
        )  # fmt: skip


def child(config: Path, args: list[str]) -> tuple[float, float, float, bytes]:
    """One command in a fresh interpreter: (wall s, CPU s, peak RSS MB, its stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync", "-c", str(config), *args], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed ({status})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def best(repeat: int, config: Path, args: list[str]) -> dict[str, Any]:
    runs = [child(config, args) for _ in range(max(repeat, 1))]
    return {
        "wall_s": round(min(r[0] for r in runs), 2),
        "cpu_s": round(min(r[1] for r in runs), 2),
        "peak_rss_mb": round(max(r[2] for r in runs), 1),
        "output": json.loads(runs[-1][3]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/crmsync_compliance.db"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    db = args.db.with_name(f"{args.db.stem}-{args.records}{args.db.suffix}")
    if args.rebuild or not db.exists():
        start = time.perf_counter()
        build(db, args.records)
        print(
            f"built {args.records} records in {time.perf_counter() - start:.0f} s", file=sys.stderr
        )
    config = db.with_suffix(".toml")
    config.write_text(CONFIG.format(db=db))
    now = ["--now", NOW.strftime("%Y-%m-%dT%H:%M:%SZ")]
    base = best(args.repeat, config, ["report", "--json", *now])
    # the whole audit log is the period (its entries carry the build's real times)
    period = ["--since", "2000-01-01", "--until", "2100-01-01"]
    comp = best(args.repeat, config, ["compliance", "report", "--json", *now, *period])
    doc = comp.pop("output")
    base.pop("output")
    figures = {
        "records": args.records,
        "audit_entries": doc["audit_chain"]["entries"],
        "purgeable": {r["module"]: r["purgeable"] for r in doc["retention"]},
        "findings": len(doc["findings"]),
        "plans_in_period": doc["activity"]["plans"],
        "erased_in_period": doc["activity"]["erased"]["records"],
        "baseline_report": base,
        "compliance_report": comp,
        "ratio_wall": round(comp["wall_s"] / base["wall_s"], 2),
        "ratio_rss": round(comp["peak_rss_mb"] / base["peak_rss_mb"], 2),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
