"""Run the fake Jiandaoyun on 127.0.0.1 (benches, trying the connector by hand).

    python -m crmsync_connectors.jiandaoyun.fake --records 20000 [--port 0] [--no-rate-limits]

Prints ``fake jiandaoyun listening on <api url> app_id=... entry_id=... api_key=...`` and
serves until interrupted. HTTP controls: GET ``/_fake/stats``, POST ``/_fake/stats/reset``,
POST ``/_fake/touch`` ``{"count"}``, POST ``/_fake/clock`` ``{"advance_seconds"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from crmsync_connectors.jiandaoyun.fake.server import FakeJiandaoyun


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-rate-limits", action="store_true")
    args = ap.parse_args()
    fake = FakeJiandaoyun(
        records=args.records, seed_value=args.seed, enforce_rate_limits=not args.no_rate_limits
    )
    fake.start()
    print(
        f"fake jiandaoyun listening on {fake.url} app_id={fake.app_id} "
        f"entry_id={fake.entry_id} api_key={fake.api_key}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
