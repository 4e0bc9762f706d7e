"""A threaded HTTP server for fake CRMs on 127.0.0.1 (the sandbox, the fake Zoho server, a
plugin author's own fake) that stops cleanly.

ThreadingHTTPServer leaves daemon handler threads running after shutdown and keeps idle
keep-alive connections open; this one tracks both, so ``close_connections()`` then
``join_handlers()`` leave no thread behind and free the port at once.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    thread_name = "fake-crm-conn"  # names handler threads, for debugging leaks

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._serving: threading.Thread | None = None
        super().__init__(address, handler)

    def serve_in_background(self, name: str) -> None:
        self._serving = threading.Thread(
            target=self.serve_forever,
            # shutdown() waits for the next poll: at 0.05 s a fake's stop was most of a short
            # test's teardown; 100 idle wake-ups a second cost nothing measurable
            kwargs={"poll_interval": 0.01},
            name=name,
            daemon=True,
        )
        self._serving.start()

    def stop_serving(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every open connection; join every thread."""
        self.shutdown()
        self.stopping.set()  # wakes handlers sleeping on injected latency
        self.close_connections()
        self.server_close()
        if self._serving is not None:
            self._serving.join(timeout)
            self._serving = None
        self.join_handlers(timeout)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS lookup, slow on some hosts);
        # a local fake never uses it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=self.thread_name,
            daemon=True,
        )
        with self._conn_lock:
            self._conns.add(request)
            self._handlers.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.discard(request)
                self._handlers.discard(threading.current_thread())

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):  # unblocks a handler waiting for a request
                conn.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        with self._conn_lock:
            threads = list(self._handlers)
        for thread in threads:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError) or self.stopping.is_set():
            return  # a client went away; not the server's problem
        super().handle_error(request, client_address)


class LocalHandler(BaseHTTPRequestHandler):
    """Every method goes to ``_dispatch``; request logging only when ``_verbose()`` says so."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients pool connections, as with real CRMs
    # Headers and body are separate writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (~40 ms a request on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def reply(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Send a whole answer, head and body in one write.

        ``headers`` may carry ``Date`` (a fake clock's time, as the fake CRM's server would
        send it); otherwise the real time is sent, once. ``send_response()`` would add a second
        ``Date`` of its own.
        """
        extra = dict(headers or {})
        date = next((v for k, v in extra.items() if k.lower() == "date"), None)
        lines = [
            f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
            f"Date: {date or self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in extra.items() if k.lower() != "date"),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(status, len(body))
        self.wfile.write(head + body)

    def _verbose(self) -> bool:
        return False

    def log_message(self, format: str, *args: Any) -> None:
        if self._verbose():
            super().log_message(format, *args)


class RequestStats:
    """What clients did to a fake server, thread-safe: the evidence tests assert on (the
    contract harness reads ``max_in_flight``, ``max_batch`` and per-record ``write_count``).

    A fake calls :meth:`enter` when a request arrives and :meth:`leave` with its status when it
    is answered. Requests of a kind in ``untracked_kinds`` (a token endpoint) are counted but
    not as API calls in flight. Subclass to count more: extend :meth:`_clear` and
    :meth:`snapshot`, and take ``self._lock`` around your own counters.
    """

    untracked_kinds: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        """Zero every counter (called with the lock held)."""
        self.requests = 0
        self.by_route: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_batch = 0
        self.records_served = 0

    def enter(self, route: str, kind: str = "api") -> int:
        """Count a request; returns the API calls in flight, this one included (0 for an
        untracked kind)."""
        with self._lock:
            self.requests += 1
            self.by_route[route] += 1
            self.by_kind[kind] += 1
            if kind in self.untracked_kinds:
                return 0
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.in_flight

    def leave(self, status: int | str, kind: str = "api") -> None:
        with self._lock:
            if kind not in self.untracked_kinds:
                self.in_flight -= 1
            self.by_status[str(status)] += 1

    def wrote(self, module: str, record_id: str) -> None:
        with self._lock:
            self.writes[f"{module}/{record_id}"] += 1

    def batch(self, size: int) -> None:
        with self._lock:
            self.max_batch = max(self.max_batch, size)

    def served(self, records: int) -> None:
        with self._lock:
            self.records_served += records

    def write_count(self, module: str, record_id: str) -> int:
        with self._lock:
            return self.writes.get(f"{module}/{record_id}", 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        """The counters as plain data (called with the lock held)."""
        return {
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "by_kind": dict(self.by_kind),
            "by_status": dict(self.by_status),
            "writes": dict(self.writes),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_batch": self.max_batch,
            "records_served": self.records_served,
        }
