"""ZohoConnector (the plugin object) and ZohoSession (one open Zoho connection)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from crmsync.errors import ConnectorError
from crmsync.hookspecs import (
    Limits,
    ModuleInfo,
    Page,
    RecordResult,
    Setting,
    StatusChange,
)
from crmsync_connectors.zoho.api import ZohoApi
from crmsync_connectors.zoho.bulk import BulkReader
from crmsync_connectors.zoho.metadata import MODIFIED_FIELD, Metadata
from crmsync_connectors.zoho.pull import Puller
from crmsync_connectors.zoho.settings import (
    MAX_BATCH,
    SETTINGS,
    SETTINGS_SCHEMA,
    ZohoSettings,
    parse_settings,
)
from crmsync_connectors.zoho.write import RECYCLE_BIN_NOTE, Writer

log = logging.getLogger(__name__)


class ZohoConnector:
    """Zoho CRM through REST API v8 (see README.md in this directory)."""

    name = "zoho"
    description = "Zoho CRM (REST API v8): OAuth self-client, every data centre, status write-back"

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._clock = clock

    def settings_schema(self) -> dict[str, Any]:
        return SETTINGS_SCHEMA

    def settings(self) -> list[Setting]:
        return list(SETTINGS)

    def open(self, name: str, settings: Mapping[str, Any]) -> ZohoSession:
        return ZohoSession(name, parse_settings(settings), sleep=self._sleep, clock=self._clock)


class ZohoSession:
    """An open Zoho connection. No network until the first call; :meth:`close` frees it.

    :meth:`stats` counts calls by kind: ``record_calls`` (+ ``deleted_calls``) are what
    ``Page.api_calls`` reports; ``metadata_calls`` (modules, fields: once per session) and
    ``write_calls`` are reported there and logged on close.
    """

    def __init__(
        self,
        name: str,
        settings: ZohoSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self.api = ZohoApi(name, settings, sleep=sleep, clock=clock)
        self.metadata = Metadata(self.api)
        self.bulk = BulkReader(self.api, self.metadata, settings, sleep=sleep)
        self.puller = Puller(self.api, self.metadata, settings, self.bulk)
        self.writer = Writer(self.api, settings)

    def __repr__(self) -> str:
        return f"ZohoSession({self.name!r}, datacentre={self.settings.datacentre!r})"

    def limits(self) -> Limits:
        return Limits(
            page_size=self.settings.page_size,
            batch_size=MAX_BATCH,
            concurrency=self.settings.concurrency,
            max_page_size=200,
        )

    def check(self) -> str:
        modules = self.metadata.modules()
        missing = [m for m in self.settings.modules if m not in modules]
        if missing:
            self.metadata.require_module(missing[0])
        return (
            f"reached {self.api.base()}, auth ok ({len(modules)} modules; "
            f"mirroring {', '.join(self.settings.modules)})"
        )

    def list_modules(self) -> list[ModuleInfo]:
        out: list[ModuleInfo] = []
        status = self.settings.status
        for name in self.settings.modules:
            self.metadata.require_module(name)
            fields = self.metadata.fields(name)
            names = {f.api_name for f in fields}
            status_field = None
            if status is not None:
                status_field = status.field if status.mode == "field" else "Tag"
            out.append(
                ModuleInfo(
                    name=name,
                    id_field="id",
                    modified_field=MODIFIED_FIELD if MODIFIED_FIELD in names else None,
                    fields=tuple(f.info() for f in fields),
                    actions=self.writer.supported_actions(),
                    status_field=status_field,
                )
            )
        return out

    def _module(self, module: str) -> str:
        if module not in self.settings.modules:
            raise ConnectorError(
                f"module {module!r} is not configured (modules: "
                f"{', '.join(self.settings.modules)})",
                connection=self.name,
                module=module,
            )
        return module

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        return self.puller.pull(self._module(module), since)

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        return self.writer.push(self._module(module), changes)

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        results = self.writer.delete(self._module(module), record_ids)
        done = sum(1 for r in results if r.ok)
        if done:
            log.info("%s/%s: %d record(s) %s", self.name, module, done, RECYCLE_BIN_NOTE)
        return results

    def stats(self) -> dict[str, Any]:
        """Calls spent so far by kind, token requests, and the last credits figure;
        ``bulk_jobs`` (Bulk Read jobs created) and ``pull_paths`` ({module: "bulk" |
        "records"}, the path of each module's last full pull)."""
        return {
            **self.api.stats(),
            "bulk_jobs": self.bulk.jobs,
            "pull_paths": dict(self.puller.paths),
        }

    def close(self) -> None:
        log.info("%s: Zoho calls %s", self.name, self.stats())
        self.api.close()
