"""JiandaoyunConnector (the plugin object) and JiandaoyunSession (one open connection)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from crmsync.errors import ConnectorError
from crmsync.hookspecs import Limits, ModuleInfo, Page, RecordResult, Setting, StatusChange
from crmsync_connectors.jiandaoyun.api import JiandaoyunApi
from crmsync_connectors.jiandaoyun.forms import ID_FIELD, MODIFIED_FIELD, Forms
from crmsync_connectors.jiandaoyun.pull import Puller
from crmsync_connectors.jiandaoyun.settings import (
    MAX_BATCH,
    MAX_PAGE_SIZE,
    SETTINGS,
    SETTINGS_SCHEMA,
    JiandaoyunSettings,
    parse_settings,
)
from crmsync_connectors.jiandaoyun.write import Writer

log = logging.getLogger(__name__)


class JiandaoyunConnector:
    """简道云 Jiandaoyun forms through the open API v5 ("Connect Jiandaoyun" in README.md)."""

    name = "jiandaoyun"
    description = (
        "简道云 Jiandaoyun (open API v5): forms as modules, updateTime increments, "
        "status widget write-back"
    )

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

    def open(self, name: str, settings: Mapping[str, Any]) -> JiandaoyunSession:
        return JiandaoyunSession(
            name, parse_settings(settings), sleep=self._sleep, clock=self._clock
        )


class JiandaoyunSession:
    """An open Jiandaoyun connection. No network until the first call; :meth:`close` frees it.

    :meth:`stats` counts calls by kind: ``record_calls`` (data/list pages: what
    ``Page.api_calls`` reports), ``metadata_calls`` (widget/list, once per form per session),
    ``write_calls`` (batch_update, batch_delete) and ``verify_calls`` (data/get per id, or
    data/list by id with ``id_filter``: when a write's count comes back short, and before each
    purge batch).
    """

    def __init__(
        self,
        name: str,
        settings: JiandaoyunSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self.api = JiandaoyunApi(name, settings, sleep=sleep, clock=clock)
        self.forms = Forms(self.api, settings.modules, settings.field_keys)
        self.puller = Puller(self.api, self.forms, settings)
        self.writer = Writer(self.api, self.forms, id_filter=settings.id_filter)

    def __repr__(self) -> str:
        return f"JiandaoyunSession({self.name!r}, base_url={self.settings.base_url!r})"

    def limits(self) -> Limits:
        return Limits(
            page_size=self.settings.page_size,
            batch_size=MAX_BATCH,
            concurrency=1,  # the data_id cursor makes paging sequential
            max_page_size=MAX_PAGE_SIZE,
            requests_per_second=self.settings.rate_limits["data/list"],
        )

    def check(self) -> str:
        for module in self.settings.modules:
            self.forms.form(module)
        return f"reached {self.settings.base_url}, API key ok; forms: " + ", ".join(
            f"{m} ({len(self.forms.form(m).widgets)} fields)" for m in self.settings.modules
        )

    def list_modules(self) -> list[ModuleInfo]:
        out = []
        for module, spec in self.settings.modules.items():
            form = self.forms.form(module)
            status_field = None
            if spec.status is not None:
                widget = form.resolve(spec.status.field, connection=self.name)
                status_field = form.key(widget.name)
            out.append(
                ModuleInfo(
                    name=module,
                    id_field=ID_FIELD,
                    modified_field=MODIFIED_FIELD,
                    fields=form.field_infos(),
                    actions=self.writer.supported_actions(module),
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
        if len(record_ids) > MAX_BATCH:
            raise ConnectorError(
                f"delete takes at most {MAX_BATCH} records, got {len(record_ids)}",
                connection=self.name,
                module=module,
            )
        return self.writer.delete(self._module(module), record_ids)

    def stats(self) -> dict[str, Any]:
        return self.api.stats()

    def close(self) -> None:
        log.info("%s: Jiandaoyun calls %s", self.name, self.stats())
        self.api.close()
