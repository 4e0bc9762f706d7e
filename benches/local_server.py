"""Benchmark: what a fake server's answer costs, by how it is written (crmsync.testing).

    python benches/local_server.py                 # 400 requests per variant
    python benches/local_server.py --requests 2000

A pooled requests.Session (as HttpClient's) sends GETs over one kept-alive connection to a
LocalHTTPServer answering a 2 kB JSON body three ways:

* baseline: ``send_response`` + ``send_header`` + ``end_headers`` + ``wfile.write(body)``
  with Nagle's algorithm on (how a plain BaseHTTPRequestHandler answers);
* the same separate writes with ``disable_nagle_algorithm`` (LocalHandler's default now);
* ``LocalHandler.reply``: head and body in one write.

Printed: ms per request and requests/s for each, and the ratio against the baseline.
"""

from __future__ import annotations

import argparse
import json
import time

import requests

from crmsync.testing.local_server import LocalHandler, LocalHTTPServer

BODY = json.dumps({"code": 0, "items": [{"id": i, "name": "x" * 12} for i in range(60)]}).encode()


class SeparateWrites(LocalHandler):
    def _dispatch(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


class SeparateWritesWithNagle(SeparateWrites):
    disable_nagle_algorithm = False


class OneWrite(LocalHandler):
    def _dispatch(self) -> None:
        self.reply(200, BODY)


def measure(handler: type[LocalHandler], requests_count: int) -> float:
    server = LocalHTTPServer(("127.0.0.1", 0), handler)
    server.serve_in_background("bench-local-server")
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with requests.Session() as session:
            session.get(url).raise_for_status()  # connect once, as a pooled client does
            start = time.perf_counter()
            for _ in range(requests_count):
                session.get(url).raise_for_status()
            return time.perf_counter() - start
    finally:
        server.stop_serving()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    variants = [
        ("separate writes, Nagle on (baseline)", SeparateWritesWithNagle),
        ("separate writes, Nagle off", SeparateWrites),
        ("LocalHandler.reply (one write)", OneWrite),
    ]
    baseline = None
    print(f"{args.requests} GETs of a {len(BODY)}-byte JSON body over one kept-alive connection")
    for label, handler in variants:
        seconds = measure(handler, args.requests)
        baseline = baseline or seconds
        per = seconds / args.requests * 1000
        print(
            f"{label:40s} {per:7.2f} ms/request {args.requests / seconds:8.0f} req/s  "
            f"x{baseline / seconds:.1f} vs baseline"
        )


if __name__ == "__main__":
    main()
