"""Benchmark: pull N sandbox records into a fresh mirror, then an incremental pull.

    python benches/pull.py                          # 100k records, loopback, concurrency 4
    python benches/pull.py --records 1000000 --paginator cursor
    python benches/pull.py --records 20000 --latency-ms 50 --concurrency 8

The sandbox runs in a separate process (``python -m crmsync.sandbox``), so the peak RSS printed
is crmsync's own. Figures printed:

- full pull: records/s, list API calls against the exact bound sum(ceil(n_module/page_size)),
  seconds, peak RSS, bytes stored;
- baseline: the same pages fetched with plain ``requests`` in this process (no mirror), and the
  ratio crmsync/baseline (what the mirror, validation and progress cost);
- with --latency-ms: efficiency against the bound concurrency * page_size / latency;
- incremental pull after --changed-percent of records changed: list calls against
  sum(ceil(changed_module/page_size) + 1), and the deleted-records calls (one per module).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from crmsync.config import load_config
from crmsync.connections import open_session
from crmsync.plugins import get_registry
from crmsync.pull import pull_connection
from crmsync.sandbox.connection import sandbox_connection_toml
from crmsync.store import open_store

TOKEN = "bench-token"


def start_sandbox(records: int, seed: int, latency_ms: int) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        "-m",
        "crmsync.sandbox",
        "--port",
        "0",
        "--records",
        str(records),
        "--seed",
        str(seed),
        "--token",
        TOKEN,
        "--latency-ms",
        str(latency_ms),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "sandbox listening on http://127.0.0.1:PORT"
    if "http" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.split()[-1].rstrip("/")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def baseline_fetch(
    api_url: str, modules: list[str], page_size: int, limit: int
) -> tuple[int, float]:
    """Plain sequential requests over the same pages, no mirror: the floor to compare with."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {TOKEN}"
    got, started = 0, time.perf_counter()
    for module in modules:
        page = 1
        while got < limit:
            body = http.get(
                f"{api_url}{module}", params={"page": page, "per_page": page_size}
            ).json()
            got += len(body["data"])
            if len(body["data"]) < page_size:
                break
            page += 1
    return got, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--paginator", default="page_number", choices=["page_number", "cursor"])
    ap.add_argument("--changed-percent", type=float, default=1.0)
    ap.add_argument("--baseline-records", type=int, default=20_000)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    proc, base_url = start_sandbox(args.records, args.seed, args.latency_ms)
    api_url = f"{base_url}/api/v1/"
    figures: dict[str, object] = {"records_requested": args.records, **vars(args)}
    try:
        with tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
            cfg = Path(tmp) / "crmsync.toml"
            cfg.write_text(
                '[store]\npath = "bench.db"\n\n'
                + sandbox_connection_toml(
                    api_url,
                    "env:CRMSYNC_BENCH_TOKEN",
                    concurrency=args.concurrency,
                    page_size=args.page_size,
                    paginator=args.paginator,
                )
            )
            os.environ["CRMSYNC_BENCH_TOKEN"] = TOKEN
            config = load_config(cfg, get_registry())
            session = open_session(config, get_registry(), "sandbox")
            modules = [m.name for m in session.list_modules()]
            counts = requests.get(f"{base_url}/_sandbox/stats").json()
            requests.post(f"{base_url}/_sandbox/stats/reset")

            with open_store(config.store_path) as store:
                started = time.perf_counter()
                full = pull_connection(session, store, "sandbox")
                seconds = time.perf_counter() - started
                sizes = {m.module: m.records for m in full.modules}
                n = sum(sizes.values())
                bound = sum(math.ceil(v / args.page_size) for v in sizes.values())
                figures.update(
                    records=n,
                    seconds=round(seconds, 3),
                    records_per_s=round(n / seconds),
                    list_calls=full.total("api_calls"),
                    list_calls_bound=bound,
                    peak_rss_mb=round(peak_rss_mb(), 1),
                    bytes_stored=sum(p.stat().st_size for p in Path(tmp).glob("bench.db*")),
                )
                if args.latency_ms:
                    ideal = args.concurrency * args.page_size / (args.latency_ms / 1000)
                    figures["latency_bound_records_per_s"] = round(ideal)
                    figures["efficiency_vs_bound"] = round(n / seconds / ideal, 3)

                changed = {}
                for module, size in sizes.items():
                    k = max(1, round(size * args.changed_percent / 100))
                    r = requests.post(
                        f"{base_url}/_sandbox/touch", json={"module": module, "count": k}
                    )
                    changed[module] = len(r.json()["ids"])
                requests.post(f"{base_url}/_sandbox/stats/reset")
                started = time.perf_counter()
                inc = pull_connection(session, store, "sandbox")
                routes = requests.get(f"{base_url}/_sandbox/stats").json()["by_route"]
                figures.update(
                    changed=sum(changed.values()),
                    incremental_calls=inc.total("api_calls"),
                    incremental_list_calls=routes.get("GET /api/v1/{module}", 0),
                    incremental_deleted_calls=routes.get("GET /api/v1/{module}/deleted", 0),
                    incremental_calls_bound=sum(
                        math.ceil(c / args.page_size) + 1 for c in changed.values()
                    ),
                    incremental_seconds=round(time.perf_counter() - started, 3),
                    incremental_records=inc.total("records"),
                    peak_rss_mb=round(peak_rss_mb(), 1),
                )
            session.close()

            got, base_s = baseline_fetch(
                api_url, modules, args.page_size, min(args.baseline_records, n)
            )
            figures["baseline_records_per_s"] = round(got / base_s)
            figures["ratio_vs_baseline"] = round(figures["records_per_s"] / (got / base_s), 2)
            figures["sandbox_stats_before"] = counts.get("requests")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    for key in (
        "records",
        "seconds",
        "records_per_s",
        "list_calls",
        "list_calls_bound",
        "peak_rss_mb",
        "bytes_stored",
        "baseline_records_per_s",
        "ratio_vs_baseline",
        "latency_bound_records_per_s",
        "efficiency_vs_bound",
        "changed",
        "incremental_calls",
        "incremental_list_calls",
        "incremental_deleted_calls",
        "incremental_calls_bound",
        "incremental_seconds",
    ):
        if key in figures:
            print(f"{key:30} {figures[key]}")
    if args.json:
        print(json.dumps(figures, default=str))


if __name__ == "__main__":
    main()
