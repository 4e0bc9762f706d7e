"""FxiaokeConnector (the plugin object) and FxiaokeSession (one open Fxiaoke connection)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from crmsync.errors import ConnectorError
from crmsync.hookspecs import (
    FieldInfo,
    Limits,
    ModuleInfo,
    Page,
    RecordResult,
    Setting,
    StatusChange,
)
from crmsync_connectors.fxiaoke.api import FxiaokeApi, FxiaokeError
from crmsync_connectors.fxiaoke.lifecycle import ID_FIELD, LIFE_STATUS, MODIFIED_FIELD, data_path
from crmsync_connectors.fxiaoke.pull import Puller
from crmsync_connectors.fxiaoke.settings import (
    MAX_BATCH,
    MAX_LIMIT,
    SETTINGS,
    SETTINGS_SCHEMA,
    FxiaokeSettings,
    ObjectSettings,
    parse_settings,
)
from crmsync_connectors.fxiaoke.write import RECYCLE_NOTE, Writer

log = logging.getLogger(__name__)


class FxiaokeConnector:
    """纷享销客 Fxiaoke OpenAPI (see README.md in this directory)."""

    name = "fxiaoke"
    description = (
        "纷享销客 Fxiaoke (OpenAPI): corpAccessToken, preset and custom objects, native "
        "invalid/recover/delete lifecycle"
    )

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep

    def settings_schema(self) -> dict[str, Any]:
        return SETTINGS_SCHEMA

    def settings(self) -> list[Setting]:
        return list(SETTINGS)

    def open(self, name: str, settings: Mapping[str, Any]) -> FxiaokeSession:
        return FxiaokeSession(name, parse_settings(settings), clock=self._clock, sleep=self._sleep)


class FxiaokeSession:
    """An open Fxiaoke connection. No network until the first call; :meth:`close` frees it."""

    def __init__(
        self,
        name: str,
        settings: FxiaokeSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self.api = FxiaokeApi(name, settings, clock=clock, sleep=sleep)
        self.puller = Puller(self.api, settings)
        self.writer = Writer(self.api, settings)

    def __repr__(self) -> str:
        return f"FxiaokeSession({self.name!r}, {self.settings.base_url!r})"

    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            page_size=s.page_size,
            batch_size=MAX_BATCH,
            concurrency=1,
            max_page_size=MAX_LIMIT,
            requests_per_second=s.rate_limit_calls / s.rate_limit_period,
        )

    def _object(self, module: str) -> ObjectSettings:
        try:
            return self.settings.objects[module]
        except KeyError:
            raise ConnectorError(
                f"object {module!r} is not configured (objects: "
                f"{', '.join(self.settings.objects)})",
                connection=self.name,
                module=module,
            ) from None

    def probe(self, module: str) -> None:
        """One query of one record: proves the object (and projected fields) exist."""
        obj = self._object(module)
        info: dict[str, Any] = {"limit": 1, "offset": 0, "filters": []}
        if obj.fields is not None:
            info["fieldProjection"] = [ID_FIELD, *obj.fields]
        data = {"dataObjectApiName": module, "search_query_info": info}
        try:
            self.api.call("query", data_path(module, "query"), data, module=module,
                          idempotent=True)  # fmt: skip
        except FxiaokeError as err:
            what = "custom object (__c)" if obj.custom else "preset object"
            fields = f" or one of its fields ({', '.join(obj.fields)})" if obj.fields else ""
            raise ConnectorError(
                f"Fxiaoke refused a query of {what} {module!r}: the object{fields} may not "
                f"exist or the operator may not see it ({err.detail})",
                connection=self.name,
                module=module,
            ) from None

    def check(self) -> str:
        for module in self.settings.objects:
            self.probe(module)
        return (
            f"reached {self.settings.base_url}, corpAccessToken ok, operator "
            f"{self.api.user_id()}; mirroring {', '.join(self.settings.objects)}"
        )

    def list_modules(self) -> list[ModuleInfo]:
        out = []
        for name, obj in self.settings.objects.items():
            fields: tuple[FieldInfo, ...] = ()
            if obj.fields is not None:
                fields = tuple(FieldInfo(f) for f in obj.fields)
            out.append(
                ModuleInfo(
                    name=name,
                    id_field=ID_FIELD,
                    modified_field=MODIFIED_FIELD,
                    fields=fields,
                    actions=self.writer.supported_actions(),
                    status_field=LIFE_STATUS,
                )
            )
        return out

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        return self.puller.pull(self._object(module), since)

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        self._object(module)
        return self.writer.push(module, changes)

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        self._object(module)
        results = self.writer.delete(module, record_ids)
        done = sum(1 for r in results if r.ok)
        if done:
            log.info("%s/%s: %d record(s) %s", self.name, module, done, RECYCLE_NOTE)
        return results

    def stats(self) -> dict[str, Any]:
        """Calls by kind (query, write, token, user), errorCode backoffs, and seconds spent
        waiting for the per-endpoint rate limit."""
        return self.api.stats()

    def close(self) -> None:
        log.info("%s: Fxiaoke calls %s", self.name, self.stats())
        self.api.close()
