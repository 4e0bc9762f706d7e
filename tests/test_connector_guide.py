"""docs/writing-a-connector.md: its Python examples parse, and the complete ones run."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from crmsync.errors import AuthError
from crmsync.hookspecs import SecretRef
from crmsync.http import HttpClient, json_body
from tests.http_fakes import FakeServer, Reply, Request

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "writing-a-connector.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text("utf-8"))


def test_every_python_example_in_the_guide_parses() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 8
    for block in blocks:
        try:
            ast.parse(block)
        except SyntaxError as exc:
            pytest.fail(f"example starting {block.splitlines()[0]!r}: {exc}")


def _app_token_auth() -> type:
    (block,) = [b for b in python_blocks() if "class AppTokenAuth(Auth):" in b]
    namespace: dict[str, Any] = {"__name__": "guide_example"}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    return namespace["AppTokenAuth"]


class TokenApi:
    """A token endpoint taking JSON, and one API path that wants the current token."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.valid: set[str] = set()

    def __call__(self, request: Request) -> Reply:
        if request.path == "/token":
            body = request.json()
            if body != {"appId": "app-1", "appSecret": "s3cret-value"}:
                return Reply(401, {"code": "bad_app", "echo": body.get("appSecret")})
            token = f"tok-{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid.add(token)
            return Reply(200, {"token": token, "expiresIn": 7200})
        if request.headers.get("x-token") not in self.valid:
            return Reply(401, {"code": "token_expired"})
        return Reply(200, {"ok": True})


def _secret(value: str) -> SecretRef:
    return SecretRef("env:APP_SECRET", "app_secret", resolver=lambda ref, path: value)


def test_the_guides_token_auth_fetches_caches_and_refreshes_once() -> None:
    auth_class = _app_token_auth()
    api = TokenApi()
    with FakeServer(api) as server:
        auth = auth_class(server.url, "app-1", _secret("s3cret-value"), sleep=lambda s: None)
        client = HttpClient(server.url, auth=auth, sleep=lambda s: None)
        assert json_body(client.request("GET", "things")) == {"ok": True}
        client.request("GET", "things")
        assert api.issued == ["tok-1"]  # cached
        api.valid.clear()  # the CRM expired it early
        assert client.request("GET", "things").status_code == 200
        assert api.issued == ["tok-1", "tok-2"]
        assert "s3cret-value" not in repr(auth)


def test_the_guides_token_auth_refusal_names_the_reference_not_the_secret() -> None:
    auth_class = _app_token_auth()
    with FakeServer(TokenApi()) as server:
        auth = auth_class(server.url, "app-1", _secret("wrong-value-123"), sleep=lambda s: None)
        client = HttpClient(server.url, auth=auth, sleep=lambda s: None)
        with pytest.raises(AuthError) as err:
            client.request("GET", "things")
    assert "wrong-value-123" not in str(err.value)
