"""Helpers for the `crmsync run` and notification tests: configs, a capturing webhook server."""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from crmsync.testing.local_server import LocalHandler, LocalHTTPServer
from tests.lifecycle_support import POLICIES, run, write_config

# stale-leads archives on its own; void-junk-contacts needs approval (so no auto_apply)
AUTO_POLICIES = copy.deepcopy(POLICIES)
AUTO_POLICIES[0]["auto_apply"] = True


def run_config(tmp_path: Path, api_url: str, extra: str = "", policies=AUTO_POLICIES) -> Path:
    path = write_config(tmp_path, api_url, policies=policies)
    if extra:
        with path.open("a", encoding="utf-8") as f:
            f.write("\n" + extra + "\n")
    return path


def json_run(config: Path, *args: str) -> tuple[int, list[dict], str]:
    """`crmsync run --log-format json`: (exit code, every stdout line parsed, stderr)."""
    result = run(config, "run", "--log-format", "json", *args)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, lines, result.stderr


class Hooks:
    """A webhook receiver: keeps every POST; answers from ``statuses`` (then 200)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}
        self.lock = threading.Lock()
        self.server: LocalHTTPServer | None = None

    def __enter__(self) -> Hooks:
        hooks = self

        class Handler(LocalHandler):
            def _dispatch(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.urlsplit(self.path)
                with hooks.lock:
                    hooks.posts.append(
                        {
                            "path": url.path,
                            "query": dict(urllib.parse.parse_qsl(url.query)),
                            "body": json.loads(body or b"null"),
                        }
                    )
                    status = hooks.statuses.pop(0) if hooks.statuses else 200
                data = json.dumps(hooks.answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self.server.serve_in_background("webhook-receiver")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.stop_serving()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def bodies(self, path: str) -> list[Any]:
        return [p["body"] for p in self.posts if p["path"] == path]
