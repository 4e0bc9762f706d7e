"""Benchmark: plan and apply an archive policy over a sandbox mirror, end to end.

    python benches/apply.py                     # 50k sandbox records
    python benches/apply.py --records 200000 --latency-ms 20

The sandbox runs in its own process. Printed: records planned, plan seconds, apply seconds and
records/s (pull-before-apply, drift check, copies, write-back, audit), write calls against the
bound ceil(M / batch size), audit entries, store bytes before/after; and, as the baseline from
the same run, the same write-back done by calling the connector's push directly (no plan, no
copies, no audit): the ratio is what safety costs.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pull import TOKEN, start_sandbox

from crmsync.config import load_config
from crmsync.connections import open_session
from crmsync.hookspecs import StatusChange
from crmsync.plans.apply import apply_plan
from crmsync.plans.planner import make_plan
from crmsync.plugins import get_registry
from crmsync.pull import pull_connection
from crmsync.sandbox.connection import sandbox_connection_toml
from crmsync.store import open_store

POLICY = """
[[policies]]
name = "lost-leads"
connection = "sandbox"
module = "Leads"
action = "archive"
max_percent = 100
max_records = 10000000
filter = { field = "lead_status", op = "in", value = ["Lost", "Junk"] }

[[policies]]
name = "baseline-leads"
connection = "sandbox"
module = "Leads"
action = "archive"
enabled = false
max_percent = 100
max_records = 10000000
filter = { field = "lead_status", op = "in", value = ["Unqualified"] }
"""


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("bench.db*"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--latency-ms", type=int, default=0)
    args = ap.parse_args()

    proc, base_url = start_sandbox(args.records, 7, args.latency_ms)
    try:
        with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
            folder = Path(tmp)
            cfg = folder / "crmsync.toml"
            cfg.write_text(
                '[store]\npath = "bench.db"\n\n'
                + sandbox_connection_toml(f"{base_url}/api/v1/", "env:CRMSYNC_BENCH_TOKEN")
                + POLICY
            )
            os.environ["CRMSYNC_BENCH_TOKEN"] = TOKEN
            registry = get_registry()
            config = load_config(cfg, registry)
            with open_store(config.store_path) as store:
                session = open_session(config, registry, "sandbox")
                pull_connection(session, store, "sandbox", modules=["Leads"])
                before = store_bytes(folder)

                started = time.perf_counter()
                plan = make_plan(config, store, [config.policies[0]], operator="bench")
                plan_s = time.perf_counter() - started
                planned = plan.policies[0].matched

                started = time.perf_counter()
                result = apply_plan(config, registry, store, plan.id, operator="bench")
                apply_s = time.perf_counter() - started
                batch = session.limits().batch_size

                # baseline: the same kind of write-back straight through the connector
                ids = [
                    r.record_id
                    for r in store.iter_records("sandbox", "Leads")
                    if r.data.get("lead_status") == "Unqualified" and r.status == "active"
                ]
                started = time.perf_counter()
                for i in range(0, len(ids), batch):
                    session.push("Leads", [StatusChange(x, "archive") for x in ids[i : i + batch]])
                base_s = time.perf_counter() - started
                session.close()
                audit = store.audit_head()
                after = store_bytes(folder)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    rate = planned / apply_s if apply_s else 0.0
    base_rate = len(ids) / base_s if base_s else 0.0
    rows = [
        ("records planned", planned),
        ("plan seconds", round(plan_s, 3)),
        ("apply seconds", round(apply_s, 3)),
        ("apply records/s", round(rate)),
        ("write calls", result.api_calls),
        ("write calls bound", math.ceil(planned / batch)),
        ("done", sum(s.get("done", 0) for s in result.counts.values())),
        ("audit entries (chain head seq)", audit.seq if audit else 0),
        ("store bytes added by plan+apply", after - before),
        ("baseline push records/s", round(base_rate)),
        ("ratio apply / baseline", round(rate / base_rate, 2) if base_rate else "-"),
    ]
    for key, value in rows:
        print(f"{key:34} {value}")


if __name__ == "__main__":
    main()
