"""`crmsync sandbox` as a real process: SIGTERM (what systemd, Docker and schedulers send) and
SIGINT stop it cleanly, exit 0, even with a client holding a keep-alive connection open."""

from __future__ import annotations

import http.client
import select
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

DEADLINE = 30.0  # seconds for any one wait; a clean stop takes well under one


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmsync", "sandbox", "--port", "0", "--records", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("sandbox listening on "):
        proc.kill()
        pytest.fail(f"sandbox did not start: {line!r} {proc.communicate()[1]}")
    return proc, line.split()[-1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sandbox_exits_zero_on_signal_with_a_client_connected(signum: int) -> None:
    proc, url = start_sandbox()
    try:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        conn.request("GET", "/api/v1/Leads", headers={"Authorization": "Bearer sandbox-token"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200  # it answers; the keep-alive connection stays open
        proc.send_signal(signum)
        started = time.monotonic()
        out, err = proc.communicate(timeout=DEADLINE)  # polls the exit; no fixed sleep
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5.0
    assert out.rstrip().endswith("sandbox stopped")
    assert "Traceback" not in err
