"""The connector contract suite, run against the DingTalk connector and the fake DingTalk
server: once for customers (the v1.0 API) and once for contacts (the old API)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from crmsync.hookspecs import SecretRef
from crmsync.testing.contract import ConnectorContract
from crmsync_connectors.dingtalk.connector import DingTalkConnector
from crmsync_connectors.dingtalk.fake import STATUS_FIELDS, FakeDingTalk
from tests.http_fakes import FakeClock, FakeSleep

VALUES = {"active": "正常", "archived": "已归档", "voided": "作废"}
STATUS = {label: status for status, label in VALUES.items()}
OPERATOR = "manager4711"


def secret(value: str) -> SecretRef:
    return SecretRef("env:DINGTALK_APP_SECRET", "app_secret", resolver=lambda r, p: value)


def dingtalk_settings(dt: FakeDingTalk, **extra: Any) -> dict[str, Any]:
    """Settings for the fake: customers plus the other objects, each with its 状态 field."""
    return {
        "app_key": dt.app_key,
        "app_secret": secret(dt.app_secret),
        "operator_user_id": OPERATOR,
        "api_url": dt.api_url,
        "oapi_url": dt.oapi_url,
        "modules": [
            "crm_customer",
            {
                "name": "crm_customer_personal",
                "status_field": STATUS_FIELDS["crm_customer_personal"],
            },
            {"name": "crm_contact", "status_field": STATUS_FIELDS["crm_contact"]},
            {"name": "crm_follow_record", "status_field": STATUS_FIELDS["crm_follow_record"]},
        ],
        "status": {"field": STATUS_FIELDS["crm_customer"], "values": VALUES},
        "requests_per_second": 1000,
        **extra,
    }


class DingTalkHarness:
    def __init__(self, dt: FakeDingTalk, module: str, empty_module: str) -> None:
        self.dt = dt
        self.module = module
        self.empty_module = empty_module
        self.connector = DingTalkConnector(sleep=FakeSleep(), clock=FakeClock())
        self.secret_values = [dt.app_secret, "wrong-app-secret-0001"]

    def settings(self) -> Mapping[str, Any]:
        return dingtalk_settings(self.dt)

    def bad_auth_settings(self) -> Mapping[str, Any]:
        return {**dingtalk_settings(self.dt), "app_secret": secret("wrong-app-secret-0001")}

    def ids(self) -> set[str]:
        return self.dt.ids(self.module)

    def touch(self, count: int) -> list[str]:
        self.dt.advance(60)
        return self.dt.touch(self.module, count=count)

    def status(self, record_id: str) -> str | None:
        if self.dt.record(self.module, record_id) is None:
            return None
        return STATUS.get(self.dt.status_label(self.module, record_id) or "", "active")

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        self.dt.fail_next(status, count, host="any", retry_after=retry_after)

    def reject_writes(self, ids: list[str]) -> None:
        self.dt.reject_writes(ids)

    def write_counts(self) -> dict[str, int]:
        return {i: self.dt.write_count(i) for i in self.ids()}

    def max_in_flight(self) -> int:
        return self.dt.stats()["max_in_flight"]

    def max_batch(self) -> int:
        return self.dt.stats()["max_batch"]

    def requests(self) -> int:
        return self.dt.stats()["requests"]

    def expire_tokens(self) -> None:
        self.dt.expire_tokens()

    def malformed_next(self, count: int) -> None:
        self.dt.malformed_next(count)

    def incomplete_next(self, count: int) -> None:
        self.dt.incomplete_next(count)


class TestDingTalkCustomersContract(ConnectorContract):
    """crm_customer: nextToken paging over the v1.0 API, writes by relationDatas/batch."""

    @pytest.fixture
    def harness(self) -> Iterator[DingTalkHarness]:
        with FakeDingTalk(records={"crm_customer": 330}, seed=5) as dt:
            yield DingTalkHarness(dt, "crm_customer", empty_module="crm_customer_personal")


class TestDingTalkContactsContract(ConnectorContract):
    """crm_contact: cursor paging over the old API (errcode bodies), writes by contacts/batch,
    deletes one old-API call each."""

    @pytest.fixture
    def harness(self) -> Iterator[DingTalkHarness]:
        with FakeDingTalk(records={"crm_contact": 330}, seed=6) as dt:
            yield DingTalkHarness(dt, "crm_contact", empty_module="crm_follow_record")
