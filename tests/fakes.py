"""An in-process connector for engine tests that need no HTTP (the REST connector's own tests
use real servers). It keeps records in a list and can fail on a chosen page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crmsync.errors import ConnectorError
from crmsync.hookspecs import (
    FieldInfo,
    Limits,
    ModuleInfo,
    Page,
    PulledRecord,
    RecordResult,
    Setting,
    StatusChange,
    hookimpl,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string"},
        "page_size": {"type": "integer", "minimum": 1},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {"type": {"enum": ["none", "bearer"]}, "token": {"type": "string"}},
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "bearer"}}},
                    "then": {"required": ["token"], "properties": {"token": {"secret": True}}},
                }
            ],
        },
        "paginator": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"type": {"enum": ["page_number", "offset", "cursor"]}},
        },
    },
}


class MemoryCRM:
    """The data behind the fake connector, shared with the test that drives it."""

    def __init__(self, n: int = 0, *, sorted_by_modified: bool = True):
        self.records: dict[str, dict[str, Any]] = {}
        self.clock = 1_000
        self.sorted_by_modified = sorted_by_modified
        self.fail_on_page: int | None = None
        self.fail_with: Exception | None = None
        self.blank_id_on_page: int | None = None
        self.calls = 0
        for _ in range(n):
            self.add()

    def tick(self) -> str:
        self.clock += 1
        return f"2025-01-01T00:{self.clock // 60 % 60:02d}:{self.clock % 60:02d}Z-{self.clock:08d}"

    def add(self, **fields: Any) -> str:
        rid = str(len(self.records) + 1)
        self.records[rid] = {"id": rid, "name": f"record {rid}", "modified": self.tick(), **fields}
        return rid

    def touch(self, rid: str) -> None:
        self.records[rid]["modified"] = self.tick()
        self.records[rid]["name"] += "!"


class MemorySession:
    def __init__(self, crm: MemoryCRM, page_size: int):
        self.crm = crm
        self.page_size = page_size
        self.closed = False

    def check(self) -> str:
        return "memory ok"

    def limits(self) -> Limits:
        return Limits(page_size=self.page_size, batch_size=10)

    def list_modules(self) -> list[ModuleInfo]:
        return [
            ModuleInfo("Things", "id", "modified", (FieldInfo("name"),)),
            ModuleInfo("Static", "id", None),
        ]

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        rows = sorted(self.crm.records.values(), key=lambda r: r["modified"])
        if not self.crm.sorted_by_modified:
            rows = sorted(rows, key=lambda r: int(r["id"]))
        if since is not None:
            rows = [r for r in rows if r["modified"] >= since]
        high = since
        for number, start in enumerate(range(0, max(len(rows), 1), self.page_size), 1):
            self.crm.calls += 1
            if self.crm.fail_on_page == number:
                raise self.crm.fail_with or ConnectorError("boom")
            chunk = rows[start : start + self.page_size]
            recs = [PulledRecord(r["id"], dict(r), r["modified"]) for r in chunk]
            if self.crm.blank_id_on_page == number and recs:
                recs[0] = PulledRecord("", recs[0].data, recs[0].modified_at)
            for r in chunk:
                high = max(high or "", r["modified"])
            last = start + self.page_size >= len(rows)
            checkpoint = high if (self.crm.sorted_by_modified or last) else None
            yield Page(number, recs, checkpoint=checkpoint, total=len(rows))

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        return [RecordResult(c.record_id, c.record_id in self.crm.records) for c in changes]

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        return [RecordResult(i, self.crm.records.pop(i, None) is not None) for i in record_ids]

    def close(self) -> None:
        self.closed = True


class MemoryConnector:
    name = "memory"
    description = "In-memory CRM for tests"

    def __init__(self) -> None:
        self.crm = MemoryCRM()
        self.opened: list[Mapping[str, Any]] = []

    def settings_schema(self) -> dict[str, Any]:
        return SCHEMA

    def settings(self) -> list[Setting]:
        return [Setting("url", "where the memory CRM lives", required=True)]

    def open(self, name: str, settings: Mapping[str, Any]) -> MemorySession:
        self.opened.append(settings)
        return MemorySession(self.crm, int(settings.get("page_size", 10)))


class MemoryPlugin:
    """A pluggy plugin object registering one MemoryConnector."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()

    @hookimpl
    def crmsync_register_connectors(self, register: Any) -> None:
        register(self.connector)
