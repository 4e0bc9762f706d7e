"""Benchmark the sandbox CRM itself: generation time, serving rate, server RSS.

    python benches/sandbox_serve.py                      # 100k records
    python benches/sandbox_serve.py --records 1000000

Figures printed:

- generation: seconds to generate and store N records in-process (``SandboxCRM(records=N)``);
- serving: the sandbox in a separate process (``python -m crmsync.sandbox``), every module
  walked with keyset cursors at ``--page-size`` over loopback by one client thread and by
  ``--threads`` threads (one module each); records/s with bodies read (not JSON-parsed) and
  with JSON parsing, as a client would;
- the server process's RSS after loading and after serving.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.data import MODULES

TOKEN = "sandbox-token"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def walk(api_url: str, module: str, page_size: int, parse: bool) -> int:
    """Keyset-walk one module; the number of records seen."""
    n = 0
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        params: dict = {"limit": page_size, "cursor": ""}
        while True:
            r = http.get(api_url + module, params=params)
            r.raise_for_status()
            if parse:
                body = r.json()
                n += len(body["data"])
                cursor = body["meta"]["next_cursor"]
            else:
                # cheap: count records by their ids without parsing, cursor from the text
                text = r.text
                n += text.count('{"id":"')
                start = text.rfind('"next_cursor":')
                value = text[start + 14 : text.index("}", start)]
                cursor = None if value == "null" else value.strip('"')
            if cursor is None:
                return n
            params = {"limit": page_size, "cursor": cursor}


def serve(records: int, page_size: int, threads: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync.sandbox", "--port", "0", "--records", str(records)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        started = time.perf_counter()
        url = proc.stdout.readline().split()[-1]
        print(f"server process ready in {time.perf_counter() - started:.1f}s at {url}")
        print(f"server RSS after load: {rss_mb(proc.pid):.0f} MB")
        api = url + "/api/v1/"
        for parse in (False, True):
            label = "json-parsed" if parse else "bodies read"
            t = time.perf_counter()
            n = sum(walk(api, m, page_size, parse) for m in MODULES)
            dt = time.perf_counter() - t
            print(f"1 client thread, {label}: {n} records in {dt:.1f}s = {n / dt:,.0f} rec/s")
        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            n = sum(pool.map(lambda m: walk(api, m, page_size, False), MODULES[:threads]))
        dt = time.perf_counter() - t
        print(
            f"{threads} client threads, bodies read: {n} records in {dt:.1f}s = {n / dt:,.0f} rec/s"
        )
        print(f"server RSS after serving: {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    if not args.skip_generation:
        t = time.perf_counter()
        crm = SandboxCRM(records=args.records)
        print(f"generation+storage of {args.records:,} records: {time.perf_counter() - t:.1f}s")
        crm.close()
    serve(args.records, args.page_size, args.threads)


if __name__ == "__main__":
    main()
