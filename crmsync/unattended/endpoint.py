"""The small HTTP endpoint of ``crmsync serve`` (stdlib ``ThreadingHTTPServer``, one thread).

* ``GET /healthz`` — liveness: 200 while the scheduler loop runs (a job may be running), 503
  once it stopped or is stopping. A failed job does *not* fail it: restarting serve does not
  fix a CRM outage (use ``/readyz`` or the metrics to alert on that).
* ``GET /readyz`` — 200 when the store can be read and no job's last run ended ``failed`` or
  ``partial``; 503 otherwise (a job recovers it by its next good run).
* ``GET /metrics`` — Prometheus text format (:mod:`crmsync.unattended.metrics`).

Both health answers are JSON with each job's state. Binds 127.0.0.1 unless told otherwise: the
endpoint has no authentication, and the job states name the store and policies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crmsync import __version__
from crmsync.unattended.metrics import CONTENT_TYPE, Metrics
from crmsync.unattended.scheduler import Scheduler

OFF = ("off", "none", "")


def parse_listen(text: str) -> tuple[str, int] | None:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``":9464"`` (all interfaces) or ``"off"``.
    Raises ValueError with what was expected."""
    text = text.strip()
    if text.lower() in OFF:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464) or 'off'; got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _server_class(host: str) -> type[_Server]:
    if ":" not in host:
        return _Server
    import socket

    class _Server6(_Server):
        address_family = socket.AF_INET6

    return _Server6


class Endpoint:
    """Serves health and metrics in a background thread until :meth:`close`."""

    def __init__(
        self,
        address: tuple[str, int],
        scheduler: Scheduler,
        metrics: Metrics,
        *,
        store_ok: Callable[[], bool] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.metrics = metrics
        self.store_ok = store_ok or (lambda: True)
        handler = type("Handler", (_Handler,), {"endpoint": self})
        self.server = _server_class(address[0])(address, handler)
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="crmsync-serve-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}"

    def start(self) -> Endpoint:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ answers

    def health(self) -> tuple[int, dict[str, Any]]:
        s = self.scheduler
        alive = s.loop_alive and not s.stop_event.is_set()
        body = {"status": "ok" if alive else "stopping", "version": __version__, **s.status()}
        return (200 if alive else 503), body

    def ready(self) -> tuple[int, dict[str, Any]]:
        code, body = self.health()
        failing = self.scheduler.unhealthy_jobs()
        store = self.store_ok()
        ok = code == 200 and not failing and store
        body.update(
            status="ok" if ok else ("stopping" if code != 200 else "failing"),
            failing_jobs=failing,
            store_ok=store,
        )
        return (200 if ok else 503), body


class _Handler(BaseHTTPRequestHandler):
    endpoint: Endpoint
    server_version = f"crmsync/{__version__}"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.endpoint.metrics.render().encode(), CONTENT_TYPE)
        elif path in ("/healthz", "/readyz"):
            code, body = self.endpoint.health() if path == "/healthz" else self.endpoint.ready()
            self._send(code, json.dumps(body, indent=1).encode(), "application/json")
        elif path == "/":
            text = "crmsync serve: /healthz /readyz /metrics\n"
            self._send(200, text.encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass
