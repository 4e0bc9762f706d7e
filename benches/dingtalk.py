"""Benchmark: the DingTalk connector against its fake (real HTTP on 127.0.0.1, in this process):
pull N customers (v1.0 API) and N/10 contacts (old API) into a fresh mirror, an incremental
pull, and write back M records through the 状态 field (archive, restore) and purge.

    python benches/dingtalk.py                      # 20k customers, write back 2,000
    python benches/dingtalk.py --records 100000 --writes 5000

The connector runs on a virtual clock: its rate limiter (requests_per_second, default 20: the
standard edition's per-app per-API limit) and its QPS backoffs advance virtual time instead of
sleeping, so the figures show both the wall time crmsync spends and the time DingTalk's limit
would impose ("api_seconds_at_limit").

Figures printed (JSON):

- full pull: records/s (wall), list calls against ceil(N / page_size) per object, seconds at
  the rate limit, QPS answers backed off, peak RSS (the fake's records live in this process
  too: "rss_after_fake_mb" is the floor before crmsync pulls);
- baselines in the same process: the same pages fetched with plain ``requests`` (token, then
  nextToken pages, no mirror) and the connector alone (pages drained, no mirror), ratios; and
  the connector at page size 20 (5x the calls);
- incremental pull after --changed customers changed: calls (ceil(changed / page_size));
- write-back of M customers: archive and restore (ceil(M / 10) batch updates each), purge
  (M deletes: one customer per call); a --burst run where every 5th call is throttled.
"""

from __future__ import annotations

import argparse
import json
import logging
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
from crmsync_connectors.dingtalk.connector import DingTalkConnector
from crmsync_connectors.dingtalk.fake import STATUS_FIELDS, FakeDingTalk

CUSTOMERS = "/v1.0/crm/personalCustomers"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class VirtualTime:
    """The connector's clock and sleep: a sleep moves the clock, nobody waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def settings(dt: FakeDingTalk, page_size: int, rps: float) -> dict[str, Any]:
    secret = SecretRef("env:BENCH", "app_secret", resolver=lambda r, p: dt.app_secret)
    return {
        "app_key": dt.app_key,
        "app_secret": secret,
        "operator_user_id": "manager4711",
        "api_url": dt.api_url,
        "oapi_url": dt.oapi_url,
        "modules": [
            "crm_customer",
            {"name": "crm_contact", "status_field": STATUS_FIELDS["crm_contact"]},
        ],
        "status": {
            "field": STATUS_FIELDS["crm_customer"],
            "values": {"active": "正常", "archived": "已归档", "voided": "作废"},
        },
        "page_size": page_size,
        "requests_per_second": rps,
    }


def open_session(dt: FakeDingTalk, page_size: int, rps: float = 20.0) -> tuple[Any, VirtualTime]:
    vt = VirtualTime()
    connector = DingTalkConnector(sleep=vt.sleep, clock=vt.clock)
    return connector.open("dt", settings(dt, page_size, rps)), vt


def baseline(dt: FakeDingTalk, page_size: int) -> tuple[int, float]:
    """The same customer pages with plain requests, no mirror: the floor to compare with."""
    http = requests.Session()
    started = time.perf_counter()
    token = http.post(dt.api_url + "/v1.0/oauth2/accessToken",
                      json={"appKey": dt.app_key, "appSecret": dt.app_secret}).json()  # fmt: skip
    http.headers["x-acs-dingtalk-access-token"] = token["accessToken"]
    dsl = json.dumps({"orderFieldId": "gmt_modified", "order": "ASC"})
    got, cursor = 0, None
    while True:
        params = {"relationType": "crm_customer", "maxResults": page_size, "queryDsl": dsl}
        if cursor:
            params["nextToken"] = cursor
        body = http.get(dt.api_url + CUSTOMERS, params=params).json()
        got += len(body["values"])
        if not body["hasMore"]:
            return got, time.perf_counter() - started
        cursor = body["nextToken"]


def timed_pull(dt: FakeDingTalk, tmp: Path, page_size: int, tag: str) -> dict[str, Any]:
    session, vt = open_session(dt, page_size)
    store = open_store(tmp / f"{tag}.db")
    dt.reset_stats()
    started = time.perf_counter()
    summary = pull_connection(session, store, "dt", modules=["crm_customer", "crm_contact"])
    seconds = time.perf_counter() - started
    stats = dt.stats()["by_route"]
    return {
        "session": session,
        "time": vt,
        "store": store,
        "seconds": seconds,
        "records": summary.total("records"),
        "customer_calls": stats.get(f"GET {CUSTOMERS}", 0),
        "contact_calls": stats.get("POST /topapi/crm/objectdata/contact/query", 0),
        "api_seconds_at_limit": round(vt.now, 1),
        "throttled": session.stats()["throttled"],
    }


def write_back(
    dt: FakeDingTalk, session: Any, vt: VirtualTime, ids: list[str], action: str
) -> dict[str, Any]:
    dt.reset_stats()
    vt_before = vt.now
    started = time.perf_counter()
    results = []
    batch = session.limits().batch_size
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        if action == "purge":
            results += session.delete("crm_customer", chunk)
        else:
            results += session.push("crm_customer", [StatusChange(i, action) for i in chunk])
    seconds = time.perf_counter() - started
    stats = dt.stats()
    return {
        "ok": sum(r.ok for r in results),
        "calls": stats["write_calls"] + stats["delete_calls"],
        "records_per_s": round(len(ids) / seconds),
        "api_seconds_at_limit": round(vt.now - vt_before, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--writes", type=int, default=2_000)
    ap.add_argument("--changed", type=int, default=250)
    ap.add_argument("--page-size", type=int, default=100)
    args = ap.parse_args()
    # the throttled run's retries are expected: keep their warnings out of the figures
    logging.getLogger("crmsync.http").setLevel(logging.ERROR)
    n, page, m = args.records, args.page_size, args.writes
    contacts = max(1, n // 10)
    out: dict[str, Any] = {"records": n, "contacts": contacts, "page_size": page, "writes": m}
    with FakeDingTalk(records={"crm_customer": n, "crm_contact": contacts}, seed=1) as dt:
        out["rss_after_fake_mb"] = round(peak_rss_mb())
        with tempfile.TemporaryDirectory(prefix="crmsync-bench-dt-") as tmpdir:
            tmp = Path(tmpdir)
            full = timed_pull(dt, tmp, page, "full")
            out.update(
                full_seconds=round(full["seconds"], 2),
                full_records_per_s=round(full["records"] / full["seconds"]),
                customer_list_calls=full["customer_calls"],
                customer_list_calls_formula=math.ceil(n / page),
                contact_query_calls=full["contact_calls"],
                contact_query_calls_formula=math.ceil(contacts / page),
                api_seconds_at_limit=full["api_seconds_at_limit"],
                qps_answers=full["throttled"],
                peak_rss_mb=round(peak_rss_mb()),
            )
            session, store, vt = full["session"], full["store"], full["time"]

            dt.advance(60)
            dt.touch("crm_customer", count=args.changed)
            dt.reset_stats()
            inc = pull_connection(session, store, "dt", modules=["crm_customer"])
            out.update(
                incremental_records=inc.total("records"),
                incremental_calls=dt.stats()["read_calls"],
                incremental_calls_formula=math.ceil(args.changed / page),
            )

            drainer, _ = open_session(dt, page, rps=1e9)
            started = time.perf_counter()
            drained = sum(len(p.records) for p in drainer.pull("crm_customer"))
            alone = time.perf_counter() - started
            drainer.close()
            got, base_s = baseline(dt, page)
            assert got == drained == n
            pull_rate = full["records"] / full["seconds"]
            out.update(
                connector_only_records_per_s=round(drained / alone),
                baseline_records_per_s=round(got / base_s),
                ratio_pull_vs_plain_requests=round(pull_rate / (got / base_s), 2),
                ratio_connector_only_vs_plain=round((drained / alone) / (got / base_s), 2),
            )
            small = timed_pull(dt, tmp, 20, "small")
            out.update(
                page20_records_per_s=round(small["records"] / small["seconds"]),
                page20_customer_calls=small["customer_calls"],
                ratio_page100_vs_page20=round(small["seconds"] / full["seconds"], 2),
            )
            small["session"].close()
            small["store"].close()

            chosen = sorted(dt.ids("crm_customer"))[:m]
            out["archive"] = write_back(dt, session, vt, chosen, "archive")
            out["archive"]["calls_formula"] = f"ceil(M / 10) = {math.ceil(m / 10)}"
            out["restore"] = write_back(dt, session, vt, chosen, "restore")
            out["restore"]["calls_formula"] = f"ceil(M / 10) = {math.ceil(m / 10)}"
            dt.burst(5, host="api")
            out["archive_with_every_5th_call_throttled"] = write_back(
                dt, session, vt, chosen, "archive"
            )
            out["archive_with_every_5th_call_throttled"]["qps_answers"] = session.stats()[
                "throttled"
            ]
            dt.burst(0, host="api")
            out["purge"] = write_back(dt, session, vt, chosen, "purge")
            out["purge"]["calls_formula"] = f"M = {m} (one customer per DELETE)"
            out["peak_rss_mb"] = round(peak_rss_mb())
            session.close()
            store.close()
    print(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
