"""crmsync.testing.local_server: LocalHandler.reply for plugin authors' fake servers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests

from crmsync.testing.local_server import LocalHandler, LocalHTTPServer

FAKE_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"


class Handler(LocalHandler):
    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/dated":
            self.reply(200, b'{"ok": true}', {"Date": FAKE_DATE, "X-Extra": "1"})
        elif self.path == "/echo":
            self.reply(201, body, content_type="text/plain")
        else:
            self.reply(404, b"")


@pytest.fixture
def url() -> Iterator[str]:
    server = LocalHTTPServer(("127.0.0.1", 0), Handler)
    server.serve_in_background("test-local-server")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.stop_serving()


def _raw(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_reply_sends_the_fake_clocks_date_once_and_extra_headers(url: str) -> None:
    raw = _raw(url, "/dated")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.count(b"\r\nDate: ") == 1 and f"Date: {FAKE_DATE}".encode() in head
    assert b"X-Extra: 1" in head and body == b'{"ok": true}'


def test_reply_keeps_connections_alive_and_bodies_exact(url: str) -> None:
    with requests.Session() as session:
        first = session.post(url + "/echo", data=b"hello")
        second = session.post(url + "/echo", data=b"again")
        missing = session.get(url + "/nope")
    assert (first.status_code, first.content, first.headers["Content-Type"]) == (
        201,
        b"hello",
        "text/plain",
    )
    assert second.content == b"again" and missing.status_code == 404
    assert "Date" in first.headers
