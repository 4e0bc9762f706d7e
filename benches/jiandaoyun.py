"""Benchmark: the Jiandaoyun connector against its fake (in another process): pull N records
into a fresh mirror, an incremental pull, and write back M status changes.

    python benches/jiandaoyun.py                      # 20k records, write back 2,000
    python benches/jiandaoyun.py --records 100000 --writes 10000

Figures printed:

- full pull with the documented rate limits (data/list 30/s; the connector keeps 10 %
  headroom): records/s against the rate bound page_size * 27/s, list calls against the exact
  count floor(N / page_size) + 1 (= ceil(N / page_size), plus one empty answer when page_size
  divides N), peak RSS of this process (the fake runs in its own);
- the same pull with the fake's limits lifted (raw speed of connector + mirror), the connector
  alone (pages drained, no mirror), and a baseline:
  the same pages fetched with plain ``requests`` in this process, no mirror; ratio against it;
- a second baseline in the same process: the connector itself at page size 10 (10x the calls);
- incremental pull after --changed records changed: calls (ceil(changed / page_size) + 0/1);
- write-back of M archive changes: batch_update calls against ceil(M / 100), records/s with the
  documented batch_update limit (10/s) and without it.
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
from itertools import islice
from pathlib import Path
from typing import Any

import requests

from crmsync.config import load_config
from crmsync.connections import open_session
from crmsync.hookspecs import StatusChange
from crmsync.plugins import get_registry
from crmsync.pull import pull_connection
from crmsync.store import open_store

CONFIG = """
[store]
path = "bench.db"

[connections.jdy]
connector = "jiandaoyun"
api_key = "env:CRMSYNC_BENCH_JDY_KEY"
base_url = "{url}"
page_size = {page_size}
{limits}

[connections.jdy.modules.customers]
app_id = "{app_id}"
entry_id = "{entry_id}"
status.field = "状态"
status.values = {{ active = "正常", archived = "已归档", voided = "已作废" }}
"""
FAST = 'rate_limits = { "data/list" = 100000, "data/batch_update" = 100000, global = 100000 }'


def start_fake(records: int, rate_limits: bool) -> tuple[subprocess.Popen, dict[str, str]]:
    cmd = [sys.executable, "-m", "crmsync_connectors.jiandaoyun.fake", "--records", str(records)]
    if not rate_limits:
        cmd.append("--no-rate-limits")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"fake did not start: {line!r}")
    words = line.split()
    info = dict(w.split("=", 1) for w in words if "=" in w)
    info["url"] = words[words.index("on") + 1]
    return proc, info


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stats(fake: dict[str, str], reset: bool = False) -> dict[str, Any]:
    root = fake["url"].rsplit("/api", 1)[0]
    if reset:
        requests.post(root + "/_fake/stats/reset", timeout=10)
        return {}
    return requests.get(root + "/_fake/stats", timeout=10).json()


def baseline(fake: dict[str, str], page_size: int) -> tuple[int, float]:
    """The same data/list pages with plain requests, no mirror: the floor to compare with."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {fake['api_key']}"
    body: dict[str, Any] = {"app_id": fake["app_id"], "entry_id": fake["entry_id"]}
    body["limit"] = page_size
    got, started = 0, time.perf_counter()
    while True:
        rows = http.post(fake["url"] + "/v5/app/entry/data/list", json=body).json()["data"]
        got += len(rows)
        if len(rows) < page_size:
            return got, time.perf_counter() - started
        body["data_id"] = rows[-1]["_id"]


def run_pull(fake: dict[str, str], tmp: Path, page_size: int, fast: bool, tag: str) -> Any:
    cfg = tmp / f"{tag}.toml"
    cfg.write_text(
        CONFIG.format(page_size=page_size, limits=FAST if fast else "", **fake).replace(
            "bench.db", f"{tag}.db"
        )
    )
    os.environ["CRMSYNC_BENCH_JDY_KEY"] = fake["api_key"]
    config = load_config(cfg, get_registry())
    session = open_session(config, get_registry(), "jdy")
    store = open_store(config.store_path)
    stats(fake, reset=True)
    started = time.perf_counter()
    summary = pull_connection(session, store, "jdy")
    return session, store, summary, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--writes", type=int, default=2_000)
    ap.add_argument("--changed", type=int, default=250)
    ap.add_argument("--page-size", type=int, default=100)
    args = ap.parse_args()
    n, page = args.records, args.page_size
    out: dict[str, Any] = {"records": n, "page_size": page}
    with tempfile.TemporaryDirectory(prefix="crmsync-bench-jdy-") as tmpdir:
        tmp = Path(tmpdir)
        proc, fake = start_fake(n, rate_limits=True)
        try:
            session, store, full, secs = run_pull(fake, tmp, page, fast=False, tag="limited")
            calls = full.total("api_calls")
            out.update(
                limited_seconds=round(secs, 2),
                limited_records_per_s=round(n / secs),
                rate_bound_records_per_s=round(page * 30 * 0.9),
                list_calls=calls,
                list_calls_formula=n // page + 1,
                ceil_n_over_page=math.ceil(n / page),
                fake_rate_limited=stats(fake)["rate_limited"],
            )
            root = fake["url"].rsplit("/api", 1)[0]
            requests.post(root + "/_fake/clock", json={"advance_seconds": 120}, timeout=10)
            requests.post(root + "/_fake/touch", json={"count": args.changed}, timeout=10)
            stats(fake, reset=True)
            started = time.perf_counter()
            inc = pull_connection(session, store, "jdy")
            out.update(
                incremental_seconds=round(time.perf_counter() - started, 2),
                incremental_records=inc.total("records"),
                incremental_calls=inc.total("api_calls"),
                incremental_calls_formula=f"{args.changed} // {page} + 1 = "
                f"{args.changed // page + 1} (plus records in the overlap window)",
            )
            ids = [r.record_id for r in islice(store.iter_records("jdy", "customers"), args.writes)]
            stats(fake, reset=True)
            started = time.perf_counter()
            results = []
            for start in range(0, len(ids), 100):
                chunk = ids[start : start + 100]
                results += session.push("customers", [StatusChange(i, "archive") for i in chunk])
            wsecs = time.perf_counter() - started
            out.update(
                writes=len(ids),
                writes_ok=sum(r.ok for r in results),
                write_seconds_limited=round(wsecs, 2),
                write_records_per_s_limited=round(len(ids) / wsecs),
                batch_update_calls=stats(fake)["by_endpoint"].get("data/batch_update", 0),
                batch_update_formula=math.ceil(len(ids) / 100),
            )
            session.close()
            store.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        proc, fake = start_fake(n, rate_limits=False)
        try:
            session, store, full, secs = run_pull(fake, tmp, page, fast=True, tag="fast")
            out.update(fast_seconds=round(secs, 2), fast_records_per_s=round(n / secs))
            store.close()
            started = time.perf_counter()
            pulled = sum(len(p.records) for p in session.pull("customers"))
            alone = time.perf_counter() - started
            out.update(connector_only_records_per_s=round(pulled / alone))
            got, base_s = baseline(fake, page)
            out.update(
                baseline_records_per_s=round(got / base_s),
                ratio_vs_plain_requests=round((n / secs) / (got / base_s), 2),
                ratio_connector_only_vs_plain=round((pulled / alone) / (got / base_s), 2),
            )
            session.close()
            session, store, small, small_s = run_pull(fake, tmp, 10, fast=True, tag="small")
            out.update(
                page10_records_per_s=round(n / small_s),
                page10_calls=small.total("api_calls"),
                ratio_page100_vs_page10=round(small_s / secs, 2),
            )
            session.close()
            store.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
