"""Shared by the Fxiaoke tests: settings for a connection to the fake, and the contract
harness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmsync.hookspecs import SecretRef
from crmsync_connectors.fxiaoke.connector import FxiaokeConnector
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke

ARCHIVE = {"field": "crmsync_archived__c", "value": "archived", "active_value": None}
WRONG_SECRET = "wrong-fxiaoke-app-secret"


def ref(value: str, path: str) -> SecretRef:
    return SecretRef(f"env:FX_{path.upper()}", path, resolver=lambda r, p: value)


def fx_settings(fx: FakeFxiaoke, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "base_url": fx.url,
        "app_id": fx.app_id,
        "app_secret": ref(fx.app_secret, "app_secret"),
        "permanent_code": ref(fx.permanent_code, "permanent_code"),
        "current_open_user_id": fx.open_user_id,
        "objects": ["AccountObj", "LeadsObj", "Visit__c"],
        "archive": dict(ARCHIVE),
        "backoff_base": 0.5,
    }
    settings.update(extra)
    return settings


def connector(fx: FakeFxiaoke) -> FxiaokeConnector:
    """Waits (rate limit, backoff) pass in the fake's time: no test sleeps."""
    return FxiaokeConnector(clock=fx.clock.monotonic, sleep=fx.clock.advance)


def status_of(record: Mapping[str, Any] | None) -> str | None:
    if record is None:
        return None
    if record["life_status"] == "invalid":
        return "voided"
    return "archived" if record.get("crmsync_archived__c") == "archived" else "active"


class FxiaokeHarness:
    """One object of the fake, every record normal; ``archive`` False: the void-only, native
    lifecycle (the suite then writes void and restores with recover)."""

    empty_module = "ContactObj"  # configured, no records on the fake

    def __init__(self, fx: FakeFxiaoke, module: str = "AccountObj", archive: bool = True) -> None:
        self.fx = fx
        self.module = module
        self.archive = archive
        fx.set_life_status(module, fx.ids(module), "normal", stamp=False)
        self.connector = connector(fx)

    @property
    def secret_values(self) -> list[str]:
        return [self.fx.app_secret, self.fx.permanent_code, WRONG_SECRET, *self.fx.issued]

    def settings(self) -> Mapping[str, Any]:
        settings = fx_settings(self.fx, objects=[self.module, self.empty_module])
        if not self.archive:
            del settings["archive"]
        return settings

    def bad_auth_settings(self) -> Mapping[str, Any]:
        return {**self.settings(), "app_secret": ref(WRONG_SECRET, "app_secret")}

    def ids(self) -> set[str]:
        return set(self.fx.ids(self.module))

    def touch(self, count: int) -> list[str]:
        self.fx.advance(60)
        return self.fx.touch(self.module, ids=self.fx.ids(self.module)[::37][:count])

    def status(self, record_id: str) -> str | None:
        return status_of(self.fx.record(self.module, record_id))

    def fail_next(self, status: int, count: int, retry_after: float | None = None) -> None:
        self.fx.fail_next(status, count, retry_after, path="/cgi/crm/")

    def reject_writes(self, ids: list[str]) -> None:
        self.fx.reject_writes(ids)

    def write_counts(self) -> dict[str, int]:
        return {i: self.fx.write_count(self.module, i) for i in self.ids()}

    def max_in_flight(self) -> int:
        return int(self.fx.stats()["max_in_flight"])

    def max_batch(self) -> int:
        return int(self.fx.stats()["max_batch"])

    def requests(self) -> int:
        """API calls, retries included; token requests not counted."""
        stats = self.fx.stats()
        return int(stats["requests"]) - int(stats["token_requests"])

    def expire_tokens(self) -> None:
        self.fx.expire_tokens()

    def malformed_next(self, count: int) -> None:
        self.fx.malformed_next(count, path="/cgi/crm/")

    def incomplete_next(self, count: int) -> None:
        body = b'{"errorCode": 0, "errorMessage": "OK", "data": {"offset": 0, "total": 0}}'
        self.fx.malformed_next(count, body=body, path="/cgi/crm/")
