"""The connector contract suite, run against the Jiandaoyun connector and its fake server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crmsync.hookspecs import SecretRef
from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.jiandaoyun.connector import JiandaoyunConnector
from crmsync_connectors.jiandaoyun.fake import (
    STATUS_OPTIONS,
    FakeClock,
    FakeJiandaoyun,
)

ACTIVE, ARCHIVED, VOIDED = STATUS_OPTIONS
STATUS_VALUES = {"active": ACTIVE, "archived": ARCHIVED, "voided": VOIDED}
STATUS_OF = {ACTIVE: "active", ARCHIVED: "archived", VOIDED: "voided", "": "active"}


def secret(value: str) -> SecretRef:
    return SecretRef("env:JDY_API_KEY", "api_key", resolver=lambda ref, path: value)


def jdy_settings(jdy: FakeJiandaoyun, **extra: Any) -> dict[str, Any]:
    module = {
        "app_id": jdy.app_id,
        "entry_id": jdy.entry_id,
        "status": {"field": "状态", "values": STATUS_VALUES},
    }
    module.update(extra.pop("module", {}))
    empty = {**module, "entry_id": jdy.empty_entry_id}
    return {
        "api_key": secret(jdy.api_key),
        "base_url": jdy.url,
        "modules": {"customers": module, "prospects": empty},
        "backoff_base": 0.5,
        **extra,
    }


class JiandaoyunHarness:
    module = "customers"
    empty_module = "prospects"

    def __init__(self, jdy: FakeJiandaoyun, clock: FakeClock) -> None:
        self.jdy = jdy
        self.clock = clock
        self.connector = JiandaoyunConnector(sleep=clock.sleep, clock=clock.now)
        self.secret_values = [jdy.api_key, "jdy-wrong-key-000000"]

    def settings(self) -> Mapping[str, Any]:
        return jdy_settings(self.jdy)

    def bad_auth_settings(self) -> Mapping[str, Any]:
        return {**jdy_settings(self.jdy), "api_key": secret("jdy-wrong-key-000000")}

    def ids(self) -> set[str]:
        return set(self.jdy.ids())

    def touch(self, count: int) -> list[str]:
        self.clock.advance(1)
        return self.jdy.touch(count)

    def status(self, record_id: str) -> str | None:
        text = self.jdy.status_text(record_id)
        return None if text is None else STATUS_OF.get(text, "active")

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        self.jdy.fail_next(status, count, retry_after=retry_after)

    def malformed_next(self, count: int) -> None:
        self.jdy.fail_next(200, count, body=b'{"data": [{"_id": "5e0')

    def incomplete_next(self, count: int) -> None:
        self.jdy.fail_next(200, count, body=b'{"status": "success"}', endpoint="data/list")

    def reject_writes(self, ids: list[str]) -> None:
        self.jdy.reject_writes(ids)

    def write_counts(self) -> dict[str, int]:
        return {i: self.jdy.write_count(i) for i in self.ids()}

    def max_in_flight(self) -> int:
        return self.jdy.stats()["max_in_flight"]

    def max_batch(self) -> int:
        return self.jdy.stats()["max_batch"]

    def requests(self) -> int:
        return self.jdy.stats()["requests"]


class TestJiandaoyunContract(ConnectorContract):
    @pytest.fixture
    def harness(self) -> Iterator[JiandaoyunHarness]:
        clock = FakeClock()
        with FakeJiandaoyun(records=250, clock=clock.now) as jdy:
            yield JiandaoyunHarness(jdy, clock)
