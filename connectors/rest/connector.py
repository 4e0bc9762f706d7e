"""RestConnector (the plugin object) and RestSession (one open connection): pull, check, limits.

Write-back (push/delete) lives in :mod:`operations`; pagination in :mod:`paginators`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import (
    ACTIONS,
    Limits,
    ModuleInfo,
    Page,
    PulledRecord,
    RecordResult,
    Setting,
    StatusChange,
)
from crmsync.http import HttpClient, json_body, redact_url
from crmsync_connectors.rest.config import ModuleConfig, RestSettings, build_auth, parse_settings
from crmsync_connectors.rest.operations import Writer
from crmsync_connectors.rest.paginators import PageRequest, Paginator, make_paginator
from crmsync_connectors.rest.schema import SETTINGS, SETTINGS_SCHEMA
from crmsync_connectors.rest.templates import lookup_from, render
from crmsync_connectors.rest.values import format_cursor, get_path, iso_z, normalised, parse_time

log = logging.getLogger(__name__)


class RestConnector:
    """A CRM described entirely by its ``[connections.NAME]`` table (see README.md)."""

    name = "rest"
    description = "Generic REST CRM described declaratively in config (auth, paging, write-back)"

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Injectable so tests never wait for backoff, rate limits or token expiry.
        self._sleep = sleep
        self._clock = clock

    def settings_schema(self) -> dict[str, Any]:
        return SETTINGS_SCHEMA

    def settings(self) -> list[Setting]:
        return list(SETTINGS)

    def open(self, name: str, settings: Mapping[str, Any]) -> RestSession:
        parsed = parse_settings(name, settings)
        auth = build_auth(name, parsed.auth, clock=self._clock)
        client = HttpClient(
            parsed.base_url,
            auth=auth,
            timeout=parsed.timeout,
            max_retries=parsed.max_retries,
            max_retry_wait=parsed.max_retry_wait,
            backoff_base=parsed.backoff_base,
            concurrency=parsed.concurrency,
            requests_per_second=parsed.requests_per_second,
            sleep=self._sleep,
            clock=self._clock,
            headers=parsed.headers,
        )
        return RestSession(name, parsed, client)


@dataclass
class _Fetched:
    request: PageRequest
    response: requests.Response
    body: Any
    records: list[PulledRecord]
    newest: datetime | None
    calls: int
    total: int | None


class RestSession:
    """An open REST connection. Owns one pooled HttpClient; :meth:`close` frees it."""

    def __init__(self, name: str, settings: RestSettings, client: HttpClient) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self._writer = Writer(name, client, settings.concurrency)

    def __repr__(self) -> str:
        return f"RestSession({self.name!r}, {redact_url(self.settings.base_url)!r})"

    # ------------------------------------------------------------------ small things

    def limits(self) -> Limits:
        return Limits(
            page_size=self.settings.page_size,
            batch_size=self.settings.batch_size,
            concurrency=self.settings.concurrency,
            requests_per_second=self.settings.requests_per_second,
        )

    def stats(self) -> dict[str, Any]:
        """Requests made so far on this connection (retries and writes included)."""
        return {"api_calls": self.client.calls}

    def list_modules(self) -> list[ModuleInfo]:
        return [
            ModuleInfo(
                name=m.name,
                id_field=m.id_field,
                modified_field=m.modified_field,
                actions=tuple(a for a in ACTIONS if a in m.operations),
                status_field=m.status_field,
            )
            for m in self.settings.modules.values()
        ]

    def check(self) -> str:
        module = next(iter(self.settings.modules.values()))
        paginator = make_paginator(module.paginator, 1)
        fetched = self._fetch(module, paginator.first(), dict(module.params), paginator)
        where = redact_url(self.settings.base_url)
        count = f"{fetched.total} records" if fetched.total is not None else "listing ok"
        return f"reached {where}, auth ok ({module.name}: {count})"

    def close(self) -> None:
        self.client.close()

    def _module(self, module: str) -> ModuleConfig:
        try:
            return self.settings.modules[module]
        except KeyError:
            known = ", ".join(self.settings.modules)
            raise ConnectorError(
                f"unknown module {module!r} (configured: {known})",
                connection=self.name,
                module=module,
            ) from None

    # ------------------------------------------------------------------ pull

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        m = self._module(module)
        incremental = m.incremental if m.modified_field else None
        params: dict[str, Any] = dict(m.params)
        if incremental is None:
            since = None  # no modified time: always a full pull
        elif since:
            params[incremental.param] = format_cursor(
                since, incremental.format, incremental.lookback_seconds
            )
        # Sorted ascending by modified: every page's running max is a safe resume point.
        sorted_by_modified = bool(incremental and incremental.sort_param)
        if incremental and incremental.sort_param:
            params[incremental.sort_param] = incremental.sort_value
        paginator = make_paginator(m.paginator, m.page_size)
        tracker = _Checkpoint(since, every_page=sorted_by_modified, enabled=incremental is not None)

        def fetch(request: PageRequest) -> _Fetched:
            return self._fetch(m, request, params, paginator)

        def page(fetched: _Fetched, final: bool) -> Page:
            tracker.see(fetched.newest)
            deleted: list[str] = []
            calls = fetched.calls
            if final and since and m.deleted:
                deleted, extra = self._deleted_since(m, since, fetched.request.index + 1)
                calls += extra
            return Page(
                number=fetched.request.index + 1,
                records=fetched.records,
                checkpoint=tracker.checkpoint(final),
                deleted_ids=deleted,
                api_calls=calls,
                total=fetched.total,
            )

        first = fetch(paginator.first())
        if paginator.random_access and first.total is not None:
            yield from self._parallel(m, paginator, first, fetch, page)
        else:
            yield from self._sequential(paginator, first, fetch, page)

    def _sequential(
        self,
        paginator: Paginator,
        fetched: _Fetched,
        fetch: Callable[[PageRequest], _Fetched],
        page: Callable[[_Fetched, bool], Page],
    ) -> Iterator[Page]:
        # The next request depends only on this response, so it is sent before this page is
        # handed over: the network works while the engine commits. At most two pages in memory.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmsync-next") as pool:
            ahead: Future[_Fetched] | None = None
            try:
                while True:
                    following = paginator.next(
                        fetched.request, fetched.response, fetched.body, len(fetched.records)
                    )
                    ahead = pool.submit(fetch, following) if following is not None else None
                    yield page(fetched, following is None)
                    if ahead is None:
                        return
                    fetched = ahead.result()
                    ahead = None
            finally:
                if ahead is not None:
                    ahead.cancel()

    def _parallel(
        self,
        m: ModuleConfig,
        paginator: Any,
        first: _Fetched,
        fetch: Callable[[PageRequest], _Fetched],
        page: Callable[[_Fetched, bool], Page],
    ) -> Iterator[Page]:
        """Pages 2..n fetched concurrently, yielded strictly in order.

        ``concurrency`` requests are in flight and as many more are queued behind them, so the
        workers keep fetching while the consumer commits a page; memory stays bounded by
        2 x concurrency pages."""
        total = first.total or 0
        served = len(first.records)
        if 0 < served < paginator.page_size and served < total:
            log.warning(
                "%s/%s: asked for %d records per page, got %d: using that page size",
                self.name,
                m.name,
                paginator.page_size,
                served,
            )
            paginator.adopt_step(served)
        count = paginator.page_count(total)
        if count <= 1:
            yield from self._sequential(paginator, first, fetch, page)
            return
        width = self.settings.concurrency
        window = 2 * width
        pending: deque[Future[_Fetched]] = deque()
        next_index = 1
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"crmsync-{m.name}") as pool:
            try:
                while next_index < count and len(pending) < window:
                    pending.append(pool.submit(fetch, paginator.nth(next_index)))
                    next_index += 1
                yield page(first, False)
                while pending:
                    fetched = pending.popleft().result()
                    if next_index < count:
                        pending.append(pool.submit(fetch, paginator.nth(next_index)))
                        next_index += 1
                    if pending:
                        yield page(fetched, False)
                        continue
                    # The last planned page: if the CRM grew meanwhile, carry on sequentially.
                    yield from self._sequential(paginator, fetched, fetch, page)
            finally:
                for future in pending:
                    future.cancel()

    def _fetch(
        self,
        m: ModuleConfig,
        request: PageRequest,
        params: Mapping[str, Any],
        paginator: Paginator,
    ) -> _Fetched:
        context: dict[str, Any] = {
            "connection": self.name,
            "module": m.name,
            "page": request.index + 1,
        }
        if request.url is not None:
            # A next link carries every parameter already (filters, sort, cursor).
            response = self.client.request("GET", request.url, context=context)
        else:
            response = self.client.request(
                "GET", m.path, params={**params, **request.params}, context=context
            )
        body = json_body(response, context)
        try:
            records, newest = self._records(m, body)
        except BadResponseError as err:
            raise err.located(connection=self.name, module=m.name, page=request.index + 1) from None
        return _Fetched(
            request, response, body, records, newest, context["calls"], paginator.total(body)
        )

    def _records(self, m: ModuleConfig, body: Any) -> tuple[list[PulledRecord], datetime | None]:
        try:
            raw = get_path(body, m.records_path)
        except KeyError:
            raise BadResponseError(
                f"the response has no record list at records_path {m.records_path!r}"
            ) from None
        if not isinstance(raw, list):
            raise BadResponseError(
                f"records_path {m.records_path or '(body)'!r} is a {type(raw).__name__}, "
                "not a list of records"
            )
        records: list[PulledRecord] = []
        newest: datetime | None = None
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise BadResponseError(f"record #{i + 1} is a {type(item).__name__}, not an object")
            rid = item.get(m.id_field)
            if rid is None or rid == "" or isinstance(rid, dict | list):
                raise BadResponseError(f"record #{i + 1} has no id field {m.id_field!r}")
            modified = None
            if m.modified_field and item.get(m.modified_field) not in (None, ""):
                try:
                    moment = parse_time(item[m.modified_field], m.modified_format)
                except (ValueError, OverflowError):
                    raise BadResponseError(
                        f"record {rid}: cannot read {m.modified_field!r} as {m.modified_format}"
                    ) from None
                newest = moment if newest is None or moment > newest else newest
                modified = normalised(item[m.modified_field], moment)
            status = None
            if m.status_field:
                # A value not listed in status_values means the record is live (active).
                value = get_path(item, m.status_field, None)
                status = m.status_by_value.get(json.dumps(value), "active")
            records.append(
                PulledRecord(id=str(rid), data=item, modified_at=modified, status=status)
            )
        return records, newest

    def _deleted_since(self, m: ModuleConfig, since: str, page: int) -> tuple[list[str], int]:
        """Ids the CRM reports deleted since ``since`` (all pages; ids only, so memory is small)."""
        assert m.deleted is not None
        d = m.deleted
        path = render(d.path, lookup_from({"module": m.name, "path": m.path}), url=True)
        paginator = make_paginator(d.paginator, m.page_size)
        params = {d.param: format_cursor(since, d.format)}
        ids: list[str] = []
        calls = 0
        request: PageRequest | None = paginator.first()
        while request is not None:
            context: dict[str, Any] = {"connection": self.name, "module": m.name, "page": page}
            if request.url is not None:
                response = self.client.request("GET", request.url, context=context)
            else:
                response = self.client.request(
                    "GET", path, params={**params, **request.params}, context=context
                )
            calls += context["calls"]
            body = json_body(response, context)
            items = get_path(body, d.records_path, None)
            if not isinstance(items, list):
                raise BadResponseError(
                    f"deleted records: no list at records_path {d.records_path!r}",
                    connection=self.name,
                    module=m.name,
                    page=page,
                )
            ids += [str(i[d.id_field]) for i in items if isinstance(i, dict) and d.id_field in i]
            request = paginator.next(request, response, body, len(items))
        return ids, calls

    # ------------------------------------------------------------------ write-back

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        return self._writer.push(self._module(module), changes)

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        changes = [StatusChange(record_id=rid, action="purge") for rid in record_ids]
        return self._writer.push(self._module(module), changes)


class _Checkpoint:
    """Max modified time seen, handed out on every page (sorted pulls) or the last one."""

    def __init__(self, since: str | None, *, every_page: bool, enabled: bool) -> None:
        self.since = since
        self.every_page = every_page
        self.enabled = enabled
        self.newest: datetime | None = None

    def see(self, moment: datetime | None) -> None:
        if moment is not None and (self.newest is None or moment > self.newest):
            self.newest = moment

    def checkpoint(self, final: bool) -> str | None:
        if not self.enabled or not (final or self.every_page):
            return None
        if self.newest is None:
            return self.since
        if self.since is not None and parse_time(self.since, "iso8601") > self.newest:
            return self.since  # never move the cursor backwards
        return iso_z(self.newest)
