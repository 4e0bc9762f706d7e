"""A legal hold as stored (:class:`Hold`), apart from the code that adds, releases and applies
holds (:mod:`.holds`), so the store can return holds without importing that code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("records", "tag", "filter", "connection", "snapshots")
TAG_KEYS = ("tags", "Tag")  # as crmsync.search.filters: the sandbox's list, Zoho's {name, id}


def stamp(moment: datetime) -> str:
    """The store's time form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Hold:
    id: str
    kind: str
    reason: str
    created_by: str
    created_at: str
    connection: str | None = None
    module: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)
    expires_at: str | None = None
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None
    records: int = 0  # records named by a `records` hold

    def active(self, now: datetime) -> bool:
        return self.released_at is None and (
            self.expires_at is None or self.expires_at > stamp(now)
        )

    def scope_text(self) -> str:
        where = "/".join(p for p in (self.connection, self.module) if p) or "every connection"
        if self.kind == "records":
            return f"{self.records} record(s) in {where}"
        if self.kind == "tag":
            return f"tag {self.spec.get('tag')!r} in {where}"
        if self.kind == "filter":
            return f"filter {json.dumps(self.spec.get('filter'), ensure_ascii=False)} in {where}"
        if self.kind == "snapshots":
            return "snapshots " + ", ".join(s[:8] for s in self.spec.get("snapshots", []))
        return where

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "connection": self.connection,
            "module": self.module,
            "spec": dict(self.spec),
            # Only a `records` hold names records; 0 on a tag/filter/module hold would read as
            # "covers none" (`crmsync compliance report` counts what each covers now).
            "records": self.records if self.kind == "records" else None,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "released_at": self.released_at,
            "released_by": self.released_by,
            "release_reason": self.release_reason,
        }
