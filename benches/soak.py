"""Benchmark: the fault-injection soak of issue 8 at full size — `crmsync run` over 100k records.

    python benches/soak.py                          # 100k records, 5% 5xx, 1% + 1% drops
    python benches/soak.py --records 10000 --fault-rate 0.1

The sandbox runs in its own process (``python -m crmsync.sandbox``); the soak itself is
tests/soak_support.py, the same as tests/test_soak.py runs at 6k records: an OAuth2
(refresh-token) connection; an auto_apply archive policy (active Lost/Junk leads, ~5% of all
records); faults: --fault-rate 503s, 429 bursts (3 in a row every 97th request,
``Retry-After: 0.01``), connections dropped before (--drop-rate) and after (--drop-after-rate)
the request is served, every OAuth token expired every 250th request, and mid-apply one forced
token expiry plus one write-back dropped after it was done and one before. ``run_once`` runs
again after every run that did not end ok, as a scheduler would (at most --max-runs).

Printed: records, faults injected by kind, crmsync's HTTP retries and token refreshes, runs
needed and their statuses, API requests (the sandbox's count and crmsync's), writes, lost,
duplicated, unexpected, wall seconds; then the errors of the runs that did not end ok, by kind.
Exit 1 unless the last run ended ok with 0 lost, 0 duplicated and 0 unexpected writes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.soak_support

from tests.soak_support import FAULTS, soak

TOKEN = "bench-soak-token"


def start_sandbox(records: int, seed: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "crmsync.sandbox", "--port", "0"]
    cmd += ["--records", str(records), "--seed", str(seed), "--token", TOKEN]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "sandbox listening on http://127.0.0.1:PORT"
    if "http" not in line:
        proc.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    return proc, line.split()[-1].rstrip("/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--fault-rate", type=float, default=FAULTS["error_rate"], help="5xx share")
    ap.add_argument("--drop-rate", type=float, default=FAULTS["drop_rate"])
    ap.add_argument("--drop-after-rate", type=float, default=FAULTS["drop_after_rate"])
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--max-runs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()

    faults = {
        **FAULTS,
        "error_rate": args.fault_rate,
        "drop_rate": args.drop_rate,
        "drop_after_rate": args.drop_after_rate,
    }
    started = time.monotonic()
    proc, base_url = start_sandbox(args.records, args.seed)
    print(f"sandbox of {args.records} records up in {time.monotonic() - started:.1f}s")
    try:
        with tempfile.TemporaryDirectory(prefix="crmsync-soak-") as tmp:
            figures = soak(
                base_url,
                TOKEN,
                Path(tmp),
                faults=faults,
                max_runs=args.max_runs,
                batch_size=args.batch_size,
                page_size=args.page_size,
                concurrency=args.concurrency,
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"faults: {args.fault_rate:.0%} 503, drops {args.drop_rate:.0%} before / "
        f"{args.drop_after_rate:.0%} after serving, 429 x{faults['rate_limit_burst']} every "
        f"{faults['rate_limit_every']}th request, tokens expire every "
        f"{faults['expire_tokens_every']}th"
    )
    for line in figures.lines():
        print(line)
    kinds = Counter(re.sub(r"\d+", "N", e.split(" ", 1)[-1])[:170] for e in figures.errors)
    for kind, n in kinds.most_common():
        print(f"  run error x{n}: {kind}")
    good = (
        figures.runs[-1:] == ["ok"]
        and not figures.lost
        and not figures.duplicated
        and not figures.unexpected
        and not figures.changed
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
