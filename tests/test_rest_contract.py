"""The connector contract suite, run against the REST connector and the bundled sandbox CRM."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crmsync.hookspecs import SecretRef
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.connection import sandbox_connection_settings
from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.rest import RestConnector
from tests.http_fakes import FakeSleep


class SandboxHarness:
    module = "Leads"

    def __init__(self, sandbox: SandboxCRM) -> None:
        self.sandbox = sandbox
        self.connector = RestConnector(sleep=FakeSleep())
        self.secret_values = [sandbox.token, "wrong-token-value"]

    def _settings(self, token: str) -> dict[str, Any]:
        settings = sandbox_connection_settings(self.sandbox.api_url, page_size=50, concurrency=3)
        settings["auth"]["token"] = SecretRef("env:T", "auth.token", resolver=lambda r, p: token)
        return settings

    def settings(self) -> Mapping[str, Any]:
        return self._settings(self.sandbox.token)

    def bad_auth_settings(self) -> Mapping[str, Any]:
        return self._settings("wrong-token-value")

    def ids(self) -> set[str]:
        return set(self.sandbox.ids(self.module))

    def touch(self, count: int) -> list[str]:
        self.sandbox.advance(60)  # changes happen after the last pull, as in real life
        return self.sandbox.touch(self.module, count=count)

    def status(self, record_id: str) -> str | None:
        record = self.sandbox.record(self.module, record_id)
        return record["status"] if record else None

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        spec: dict[str, Any] = {"status": status, "count": count}
        if retry_after is not None:
            spec["retry_after"] = retry_after
        self.sandbox.set_faults(fail_next=[spec])

    def reject_writes(self, ids: list[str]) -> None:
        self.sandbox.set_faults(fail_ids=ids)

    def write_counts(self) -> dict[str, int]:
        return {i: self.sandbox.write_count(self.module, i) for i in self.ids()}

    def max_in_flight(self) -> int:
        return self.sandbox.stats()["max_in_flight"]

    def max_batch(self) -> int:
        return self.sandbox.stats()["max_batch"]

    def requests(self) -> int:
        return self.sandbox.stats()["requests"]


class TestRestConnectorContract(ConnectorContract):
    @pytest.fixture
    def harness(self) -> Iterator[SandboxHarness]:
        sandbox = SandboxCRM(records=600, seed=3)
        sandbox.start()
        try:
            yield SandboxHarness(sandbox)
        finally:
            sandbox.close()
