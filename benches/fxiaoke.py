"""Benchmark: the Fxiaoke connector against its fake (real HTTP on 127.0.0.1, in this process):
pull N records into a fresh mirror, an incremental pull, and write back M records through the
native lifecycle (void = invalid, restore = recover, purge = delete).

    python benches/fxiaoke.py                        # 20k records, write back 2,000
    python benches/fxiaoke.py --records 100000 --writes 5000

The connector runs on the fake's clock (its rate-limit waits advance fake time instead of
sleeping), so the figures show both the wall time crmsync spends and the time Fxiaoke's
documented limit (100 calls / 20 s per interface) would impose: "api_seconds_at_limit".

Figures printed:

- full pull: records/s (wall), query calls against ceil(N / page_size), seconds at the rate
  limit, 30004 answers (must be 0: the client keeps within the limit), peak RSS (the fake's
  records live in this process too: "rss_after_fake_mb" is the floor before crmsync pulls);
- baselines in the same process: the same pages fetched with plain ``requests`` (token, offset
  then _id paging, no mirror) and the connector alone (pages drained, no mirror), ratios
  crmsync/baseline; and the connector at page size 20 (5x the calls);
- incremental pull after --changed records changed: calls (ceil(changed / page_size));
- write-back of M records: void of a preset object (M invalid calls: one id per call), restore
  (ceil(M / 100) recover), purge of the voided (ceil(M / 100) delete), void of a custom object
  (ceil(M / 100) batch invalid); wall records/s and seconds at the limit.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from crmsync.hookspecs import SecretRef, StatusChange
from crmsync.pull import pull_connection
from crmsync.store import open_store
from crmsync_connectors.fxiaoke.connector import FxiaokeConnector
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke
from crmsync_connectors.fxiaoke.lifecycle import every_life_status


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings(fx: FakeFxiaoke, page_size: int) -> dict[str, Any]:
    def ref(value: str) -> SecretRef:
        return SecretRef("env:BENCH", "bench", resolver=lambda r, p: value)

    return {
        "base_url": fx.url,
        "app_id": fx.app_id,
        "app_secret": ref(fx.app_secret),
        "permanent_code": ref(fx.permanent_code),
        "current_open_user_id": fx.open_user_id,
        "objects": ["AccountObj", "Visit__c"],
        "page_size": page_size,
    }


def open_session(fx: FakeFxiaoke, page_size: int) -> Any:
    connector = FxiaokeConnector(clock=fx.clock.monotonic, sleep=fx.clock.advance)
    return connector.open("fx", settings(fx, page_size))


def baseline(fx: FakeFxiaoke, page_size: int) -> tuple[int, float]:
    """The same query pages with plain requests, no mirror: the floor to compare with."""
    http = requests.Session()
    started = time.perf_counter()
    token = http.post(fx.url + "/cgi/corpAccessToken/get/V2", json={
        "appId": fx.app_id, "appSecret": fx.app_secret, "permanentCode": fx.permanent_code,
    }).json()  # fmt: skip
    auth = {"corpAccessToken": token["corpAccessToken"], "corpId": token["corpId"],
            "currentOpenUserId": fx.open_user_id}  # fmt: skip
    got, offset, last = 0, 0, None
    while True:
        info: dict[str, Any] = {"limit": page_size, "offset": offset,
                                "filters": [every_life_status()],
                                "orders": [{"fieldName": "_id", "isAsc": True}]}  # fmt: skip
        if offset > 10_000:
            info["offset"] = 0
            info["filters"].append({"field_name": "_id", "operator": "GT", "field_values": [last]})
        body = {**auth, "data": {"dataObjectApiName": "AccountObj", "search_query_info": info}}
        rows = http.post(fx.url + "/cgi/crm/v2/data/query", json=body).json()["data"]["dataList"]
        got += len(rows)
        if len(rows) < page_size:
            return got, time.perf_counter() - started
        last = rows[-1]["_id"]
        if offset <= 10_000:
            offset += page_size


def timed_pull(fx: FakeFxiaoke, tmp: Path, page_size: int, tag: str) -> dict[str, Any]:
    session = open_session(fx, page_size)
    store = open_store(tmp / f"{tag}.db")
    fx.reset_stats()
    fake_before, started = fx.clock.now(), time.perf_counter()
    summary = pull_connection(session, store, "fx", modules=["AccountObj"])
    seconds = time.perf_counter() - started
    out = {
        "session": session,
        "store": store,
        "seconds": seconds,
        "records": summary.total("records"),
        "calls": fx.stats()["query_calls"],
        "api_seconds_at_limit": round(fx.clock.now() - fake_before, 1),
        "rate_limited": fx.stats()["rate_limited"],
    }
    return out


def write_back(fx: FakeFxiaoke, session: Any, module: str, ids: list[str], action: str) -> dict:
    fx.reset_stats()
    fake_before, started = fx.clock.now(), time.perf_counter()
    results = []
    if action == "purge":
        for start in range(0, len(ids), 100):
            results += session.delete(module, ids[start : start + 100])
    else:
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            results += session.push(module, [StatusChange(i, action) for i in chunk])
    seconds = time.perf_counter() - started
    stats = fx.stats()
    return {
        "ok": sum(r.ok for r in results),
        "calls": stats["write_calls"],
        "by_path": {k: v for k, v in stats["by_path"].items() if k.startswith("/cgi/crm/")},
        "records_per_s": round(len(ids) / seconds),
        "api_seconds_at_limit": round(fx.clock.now() - fake_before, 1),
        "rate_limited": stats["rate_limited"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--writes", type=int, default=2_000)
    ap.add_argument("--changed", type=int, default=250)
    ap.add_argument("--page-size", type=int, default=100)
    args = ap.parse_args()
    n, page, m = args.records, args.page_size, args.writes
    out: dict[str, Any] = {"records": n, "page_size": page, "writes": m}
    with FakeFxiaoke(records={"AccountObj": n, "Visit__c": m}, seed=1) as fx:
        ids = fx.ids("AccountObj")
        fx.set_life_status("AccountObj", ids, "normal", stamp=False)
        fx.set_life_status("Visit__c", fx.ids("Visit__c"), "normal", stamp=False)
        out["rss_after_fake_mb"] = round(peak_rss_mb())
        with tempfile.TemporaryDirectory(prefix="crmsync-bench-fx-") as tmpdir:
            tmp = Path(tmpdir)
            full = timed_pull(fx, tmp, page, "full")
            out.update(
                full_seconds=round(full["seconds"], 2),
                full_records_per_s=round(full["records"] / full["seconds"]),
                query_calls=full["calls"],
                query_calls_formula=math.ceil(n / page),
                api_seconds_at_limit=full["api_seconds_at_limit"],
                rate_limited_answers=full["rate_limited"],
                peak_rss_mb=round(peak_rss_mb()),
            )
            session, store = full["session"], full["store"]

            fx.advance(60)
            fx.touch("AccountObj", ids=ids[:: max(1, n // args.changed)][: args.changed])
            fx.reset_stats()
            inc = pull_connection(session, store, "fx", modules=["AccountObj"])
            out.update(
                incremental_records=inc.total("records"),
                incremental_calls=fx.stats()["query_calls"],
                incremental_calls_formula=math.ceil(args.changed / page),
            )

            fx.rate_calls = None  # the baselines measure speed, not the documented limit
            started = time.perf_counter()
            drained = sum(len(p.records) for p in session.pull("AccountObj"))
            alone = time.perf_counter() - started
            got, base_s = baseline(fx, page)
            assert got == drained == n
            out.update(
                connector_only_records_per_s=round(drained / alone),
                baseline_records_per_s=round(got / base_s),
                ratio_pull_vs_plain_requests=round((n / full["seconds"]) / (got / base_s), 2),
                ratio_connector_only_vs_plain=round((drained / alone) / (got / base_s), 2),
            )
            small = timed_pull(fx, tmp, 20, "small")
            out.update(
                page20_records_per_s=round(small["records"] / small["seconds"]),
                page20_calls=small["calls"],
                ratio_page100_vs_page20=round(small["seconds"] / full["seconds"], 2),
            )
            small["session"].close()
            small["store"].close()
            fx.rate_calls = 100

            chosen = ids[:m]
            fx.advance(20)
            out["void_preset"] = write_back(fx, session, "AccountObj", chosen, "void")
            out["void_preset"]["calls_formula"] = f"M = {m}"
            fx.advance(20)
            out["restore"] = write_back(fx, session, "AccountObj", chosen, "restore")
            out["restore"]["calls_formula"] = f"ceil(M / 100) = {math.ceil(m / 100)}"
            fx.set_life_status("AccountObj", chosen, "invalid")
            fx.advance(20)
            out["purge_voided"] = write_back(fx, session, "AccountObj", chosen, "purge")
            out["purge_voided"]["calls_formula"] = f"ceil(M / 100) = {math.ceil(m / 100)}"
            fx.advance(20)
            out["void_custom"] = write_back(fx, session, "Visit__c", fx.ids("Visit__c"), "void")
            out["void_custom"]["calls_formula"] = f"ceil(M / 100) = {math.ceil(m / 100)}"
            out["peak_rss_mb"] = round(peak_rss_mb())
            session.close()
            store.close()
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
