"""Pulling a Zoho module: field groups, ``page`` then ``page_token``, increments, deletions.

One page of crmsync = one ``per_page`` page of Zoho, requested once per field group (v8 takes
at most 50 ``fields`` a call): the groups are requested with identical paging, sort and
``If-Modified-Since`` so their records line up, and merged by id after checking that every
group returned the same ids (a mismatch fails the pull, it never mixes or drops records).

Records are sorted by ``Modified_Time`` ascending, so every page carries a safe checkpoint: the
newest modified time T so far. ``If-Modified-Since`` is inclusive (whole seconds), so resuming
from T re-reads the records stamped T and never skips one. The final page's checkpoint is T + 1 s
when the server's clock (``Date`` header) is already 2 s past T: no record can still be stamped
T, so an incremental pull with nothing new is a single 304 instead of re-reading the last
second's records. Modules without ``Modified_Time`` are always pulled in full, sorted by id.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import Page, PulledRecord
from crmsync.http import json_body
from crmsync_connectors.zoho.api import ZohoApi
from crmsync_connectors.zoho.bulk import BulkReader, estimate
from crmsync_connectors.zoho.metadata import MODIFIED_FIELD, Metadata
from crmsync_connectors.zoho.settings import MAX_FIELDS_PER_CALL, StatusSettings, ZohoSettings

log = logging.getLogger(__name__)

#: Records reachable with ``page``; past this Zoho needs ``page_token``.
DISCRETE_LIMIT = 2000
#: Checkpoint of modules without a modified time (they are always pulled in full).
FULL_PULL_CHECKPOINT = "full"
SETTLED = timedelta(seconds=2)  # server clock this far past T: nothing more is stamped T


def parse_zoho_time(value: str) -> datetime:
    """``2021-08-04T14:08:39+03:00`` (or ``...Z``) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def if_modified_since(since: str) -> str:
    """The header value for a checkpoint (inclusive), in Zoho's offset form."""
    moment = parse_zoho_time(since)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def field_groups(fields: Sequence[str], size: int = MAX_FIELDS_PER_CALL) -> list[list[str]]:
    """``fields`` (first ones first, duplicates and ``id`` dropped) in groups of ``size``."""
    seen: list[str] = []
    for name in fields:
        if name != "id" and name not in seen:
            seen.append(name)
    return [seen[i : i + size] for i in range(0, len(seen), size)] or [[]]


def record_status(data: dict[str, Any], status: StatusSettings | None) -> str | None:
    """The lifecycle status a record shows in Zoho (None when no status is configured)."""
    if status is None:
        return None
    if status.mode == "field":
        value = data.get(status.field or "")
        for name in ("voided", "archived", "active"):
            if name in status.values and value == status.values[name]:
                return name
        return "active"
    tags = data.get("Tag")
    names = (
        {t.get("name") for t in tags if isinstance(t, dict)} if isinstance(tags, list) else set()
    )
    if status.tags.get("voided") in names:
        return "voided"
    if status.tags.get("archived") in names:
        return "archived"
    return "active"


class _GroupMismatch(BadResponseError):
    """Field groups of one page disagree on the records (retried once, then reported)."""


@dataclass
class _GroupPage:
    records: list[dict[str, Any]]
    more: bool
    next_token: str | None
    calls: int
    server_time: datetime | None = None


def _server_time(response: Any) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class _Merged:
    number: int
    records: list[PulledRecord]
    newest: datetime | None
    server_time: datetime | None
    more: bool
    tokens: list[str | None]
    calls: int


class Puller:
    def __init__(
        self,
        api: ZohoApi,
        metadata: Metadata,
        settings: ZohoSettings,
        bulk: BulkReader | None = None,
    ) -> None:
        self.api = api
        self.metadata = metadata
        self.settings = settings
        self.bulk = bulk
        self.paths: dict[str, str] = {}  # module -> "bulk" | "records" (the last full pull)

    def record_count(self, module: str) -> int | None:
        """``GET /{module}/actions/count`` (1 credit); None if the org does not answer it."""
        response, _ = self.api.request(
            "count", "GET", f"/{module}/actions/count", module=module, raise_for_status=False
        )
        if response.status_code != 200:
            return None
        try:
            count = response.json().get("count")
        except (ValueError, AttributeError):
            return None
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    def choose_bulk(self, module: str, groups: int) -> bool:
        """Whether this full pull goes through Bulk Read; logs the path and why."""
        mode = self.settings.bulk_read
        if self.bulk is None or mode == "never":
            why = "bulk_read = never"
            use = False
        elif mode == "always":
            why = "bulk_read = always"
            use = True
        else:
            count = self.record_count(module)
            if count is None:
                why, use = "record count unavailable", False
            else:
                rest, bulk = estimate(count, groups, self.settings)
                use = count >= self.settings.bulk_read_threshold and bulk < rest
                why = (
                    f"{count} records: ~{rest} credits by record calls, ~{bulk} by Bulk Read"
                    f" (threshold {self.settings.bulk_read_threshold})"
                )
        self.paths[module] = "bulk" if use else "records"
        log.info(
            "%s/%s: full pull via %s (%s)",
            self.api.name,
            module,
            "Bulk Read" if use else "record calls",
            why,
        )
        return use

    def fields_for(self, module: str) -> tuple[list[list[str]], bool]:
        """Field groups for ``module`` and whether it has ``Modified_Time``."""
        self.metadata.require_module(module)
        known = [f.api_name for f in self.metadata.fields(module)]
        has_modified = MODIFIED_FIELD in known
        configured = self.settings.modules[module].fields
        if configured is not None:
            unknown = [f for f in configured if f not in known and f != "id"]
            if unknown and known:
                raise ConnectorError(
                    f"unknown field(s) {', '.join(unknown)} (not in Zoho's fields metadata)",
                    connection=self.api.name,
                    module=module,
                )
        wanted: list[str] = []
        if has_modified:
            wanted.append(MODIFIED_FIELD)
        status = self.settings.status
        if status is not None:
            if status.mode == "field" and status.field:
                wanted.append(status.field)
            elif status.mode == "tags":
                wanted.append("Tag")
        wanted += list(configured) if configured is not None else known
        return field_groups(wanted), has_modified

    def pull(self, module: str, since: str | None) -> Iterator[Page]:
        groups, has_modified = self.fields_for(module)
        if not has_modified:
            since = None
        if since is None and self.choose_bulk(module, len(groups)):
            assert self.bulk is not None
            yield from self.bulk.pull(module, [f for g in groups for f in g], has_modified)
            return
        headers = {"If-Modified-Since": if_modified_since(since)} if since else {}
        params: dict[str, Any] = {
            "per_page": self.settings.page_size,
            "sort_by": MODIFIED_FIELD if has_modified else "id",
            "sort_order": "asc",
        }
        floor = parse_zoho_time(since) if since else None
        newest: datetime | None = None  # newest Modified_Time among the records read
        workers = max(1, min(self.settings.concurrency, len(groups)))
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="crmsync-zoho") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="crmsync-zoho-next") as ahead_pool,
        ):

            def fetch(number: int, tokens: list[str | None]) -> _Merged:
                try:
                    return self._page(module, groups, params, headers, number, tokens, pool)
                except _GroupMismatch:
                    # A record changed between the group requests: ask for the page once more.
                    return self._page(module, groups, params, headers, number, tokens, pool)

            current = fetch(1, [None] * len(groups))
            ahead: Future[_Merged] | None = None
            try:
                while True:
                    if current.more:
                        ahead = ahead_pool.submit(fetch, current.number + 1, current.tokens)
                    if current.newest is not None and (newest is None or current.newest > newest):
                        newest = current.newest
                    final = not current.more
                    deleted: list[str] = []
                    calls = current.calls
                    if final and since:
                        deleted, extra = self._deleted(module, headers, current.number)
                        calls += extra
                    if has_modified:
                        checkpoint = self._checkpoint(since, floor, newest, current, final)
                    else:
                        checkpoint = FULL_PULL_CHECKPOINT if final else None
                    yield Page(
                        number=current.number,
                        records=current.records,
                        checkpoint=checkpoint,
                        deleted_ids=deleted,
                        api_calls=calls,
                    )
                    if ahead is None:
                        return
                    current = ahead.result()
                    ahead = None
            finally:
                if ahead is not None:
                    ahead.cancel()

    @staticmethod
    def _checkpoint(
        since: str | None,
        floor: datetime | None,
        newest: datetime | None,
        page: _Merged,
        final: bool,
    ) -> str | None:
        if newest is None or (floor is not None and floor >= newest):
            return since  # nothing newer read: the cursor stays (never moves backwards)
        server = page.server_time
        if final and server is not None and server >= newest + SETTLED:
            return iso_z(newest + timedelta(seconds=1))
        return iso_z(newest)

    # ------------------------------------------------------------------ one page

    def _page(
        self,
        module: str,
        groups: list[list[str]],
        params: dict[str, Any],
        headers: dict[str, str],
        number: int,
        tokens: list[str | None],
        pool: ThreadPoolExecutor,
    ) -> _Merged:
        per_page = self.settings.page_size
        use_page = number * per_page <= DISCRETE_LIMIT
        requests = []
        for i, group in enumerate(groups):
            p = dict(params)
            if group:
                p["fields"] = ",".join(group)
            if use_page:
                p["page"] = number
            else:
                if not tokens[i]:
                    raise BadResponseError(
                        f"Zoho said more records follow record {DISCRETE_LIMIT} but gave no "
                        "next_page_token",
                        connection=self.api.name,
                        module=module,
                        page=number,
                    )
                p["page_token"] = tokens[i]
            requests.append(p)
        if len(requests) == 1:
            return self._merge(module, number, [self._group(module, requests[0], headers, number)])
        if number == 1 and headers:
            # An increment often has nothing new: ask one group first, the rest only if it
            # found records (one call instead of one per group for a 304).
            first = self._group(module, requests[0], headers, number)
            if not first.records and not first.more:
                return self._merge(module, number, [first])
            futures = [pool.submit(self._group, module, p, headers, number) for p in requests[1:]]
            return self._merge(module, number, [first, *(f.result() for f in futures)])
        futures = [pool.submit(self._group, module, p, headers, number) for p in requests]
        return self._merge(module, number, [f.result() for f in futures])

    def _group(
        self, module: str, params: dict[str, Any], headers: dict[str, str], number: int
    ) -> _GroupPage:
        response, calls = self.api.request(
            "record",
            "GET",
            f"/{module}",
            module=module,
            page=number,
            params=params,
            headers=headers,
        )
        if response.status_code in (204, 304):
            return _GroupPage([], False, None, calls, _server_time(response))
        context = {"connection": self.api.name, "module": module, "page": number}
        body = json_body(response, context)
        data = body.get("data") if isinstance(body, dict) else None
        info = body.get("info") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(r, dict) and "id" in r for r in data):
            raise BadResponseError(
                "the records response has no data list of records with ids",
                connection=self.api.name,
                module=module,
                page=number,
            )
        info = info if isinstance(info, dict) else {}
        token = info.get("next_page_token")
        return _GroupPage(
            data,
            bool(info.get("more_records")),
            str(token) if token else None,
            calls,
            _server_time(response),
        )

    def _merge(self, module: str, number: int, results: list[_GroupPage]) -> _Merged:
        first = results[0]
        ids = [str(r["id"]) for r in first.records]
        merged = {rid: dict(r) for rid, r in zip(ids, first.records, strict=True)}
        for i, other in enumerate(results[1:], start=2):
            other_ids = [str(r["id"]) for r in other.records]
            if other_ids != ids or other.more != first.more:
                missing = len(set(ids) - set(other_ids))
                extra = len(set(other_ids) - set(ids))
                raise _GroupMismatch(
                    f"field group {i} returned different records than group 1 for the same "
                    f"page ({missing} missing, {extra} extra"
                    f"{', other order' if not missing and not extra else ''}): records changed "
                    "during the pull (also on a second try); nothing from this page was kept, "
                    "run the pull again",
                    connection=self.api.name,
                    module=module,
                    page=number,
                )
            for rid, record in zip(other_ids, other.records, strict=True):
                merged[rid].update(record)
        records: list[PulledRecord] = []
        newest: datetime | None = None
        for rid in ids:
            data = merged[rid]
            modified_at = None
            raw = data.get(MODIFIED_FIELD)
            if isinstance(raw, str) and raw:
                try:
                    moment = parse_zoho_time(raw)
                except ValueError:
                    raise BadResponseError(
                        f"record {rid}: cannot read {MODIFIED_FIELD} {raw!r} as a time",
                        connection=self.api.name,
                        module=module,
                        page=number,
                    ) from None
                newest = moment if newest is None or moment > newest else newest
                modified_at = iso_z(moment)
            records.append(
                PulledRecord(
                    id=rid,
                    data=data,
                    modified_at=modified_at,
                    status=record_status(data, self.settings.status),
                )
            )
        times = [r.server_time for r in results]
        return _Merged(
            number,
            records,
            newest,
            None if None in times else min(t for t in times if t is not None),
            first.more,
            [r.next_token for r in results],
            sum(r.calls for r in results),
        )

    # ------------------------------------------------------------------ deletions

    def _deleted(self, module: str, headers: dict[str, str], page: int) -> tuple[list[str], int]:
        ids: list[str] = []
        calls = 0
        number = 1
        while True:
            response, spent = self.api.request(
                "deleted",
                "GET",
                f"/{module}/deleted",
                module=module,
                page=page,
                params={"type": "all", "per_page": 200, "page": number},
                headers=headers,
            )
            calls += spent
            if response.status_code in (204, 304):
                break
            body = json_body(response, {"connection": self.api.name, "module": module})
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise BadResponseError(
                    "the deleted-records response has no data list",
                    connection=self.api.name,
                    module=module,
                    page=page,
                )
            ids += [str(d["id"]) for d in data if isinstance(d, dict) and d.get("id")]
            info = body.get("info") if isinstance(body.get("info"), dict) else {}
            if not info.get("more_records") or not data:
                break
            number += 1
        return ids, calls
