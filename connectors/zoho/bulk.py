"""Full pulls through Zoho's Bulk Read API: create a job, poll it, download a zipped CSV.

``POST /crm/bulk/v8/read`` -> job id; ``GET /crm/bulk/v8/read/{id}`` until ``COMPLETED``
(``FAILURE`` fails the pull); ``GET .../result`` -> a zip holding one CSV of up to 200,000
records; ``result.more_records`` / ``next_page_token`` -> the next job. The zip is spooled to a
temporary file and its CSV read row by row, so memory holds one crmsync page, not the file.

CSV typing (README "Bulk Read"): every value is text. Converted by the fields metadata's
``data_type``: integers, decimals, booleans; date-times normalised to UTC ``...Z``; lookups /
owner / user fields (the CSV carries only the id) as ``{"id": ...}``; multi-select picklists
as lists split on ``,``; tags as ``[{"name": ...}]``; empty cells as None (``[]`` for lists).

Bulk results are not in ``Modified_Time`` order, so only the final page carries a checkpoint
(the newest ``Modified_Time`` read): an interrupted bulk pull keeps its complete pages but
starts over; the next pull after a finished one is incremental as usual.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import Page, PulledRecord
from crmsync.http import json_body
from crmsync_connectors.zoho.api import ZohoApi
from crmsync_connectors.zoho.metadata import MODIFIED_FIELD, Metadata
from crmsync_connectors.zoho.settings import BULK_PAGE, ZohoSettings

log = logging.getLogger(__name__)

BULK_ROOT = "/crm/bulk/v8"
DOWNLOAD_WINDOW = 60.0  # Zoho allows 10 downloads a minute
DOWNLOAD_RETRIES = 3  # waits of a full window after the HTTP client's own retries
MAX_POLL_WAIT = 60.0
POLL_CREDITS = 2  # polls assumed per job in the cost estimate
_INTS = {"integer", "bigint"}
_FLOATS = {"double", "currency", "decimal", "percent"}
_LOOKUPS = {"lookup", "ownerlookup", "userlookup"}


def estimate(records: int, groups: int, settings: ZohoSettings) -> tuple[int, int]:
    """(credits by record calls, credits by Bulk Read) for a full pull of ``records``."""
    rest = math.ceil(records / settings.page_size) * max(1, groups)
    pages = max(1, math.ceil(records / BULK_PAGE))
    bulk = pages * (settings.bulk_read_job_credits + POLL_CREDITS + 1)
    return rest, bulk


def convert(value: str, data_type: str) -> Any:
    """One CSV cell as the REST API would type it (see the module docstring)."""
    if data_type in ("multiselectpicklist", "tag"):
        items = [v.strip() for v in value.split(",") if v.strip()] if value else []
        return [{"name": v} for v in items] if data_type == "tag" else items
    if value == "":
        return None
    if data_type in _INTS:
        return int(value)
    if data_type in _FLOATS:
        return float(value)
    if data_type == "boolean":
        return value.strip().lower() == "true"
    if data_type == "datetime":
        from crmsync_connectors.zoho.pull import iso_z, parse_zoho_time

        return iso_z(parse_zoho_time(value))
    if data_type in _LOOKUPS:
        return {"id": value}
    return value


class BulkReader:
    def __init__(
        self,
        api: ZohoApi,
        metadata: Metadata,
        settings: ZohoSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = api
        self.metadata = metadata
        self.settings = settings
        self.sleep = sleep
        self.jobs = 0

    def _error(self, message: str, module: str, cls: type[ConnectorError] = BadResponseError):
        return cls(f"Bulk Read: {message}", connection=self.api.name, module=module)

    # ------------------------------------------------------------------ the pull

    def pull(self, module: str, fields: list[str], has_modified: bool) -> Iterator[Page]:
        from crmsync_connectors.zoho.pull import FULL_PULL_CHECKPOINT, iso_z, record_status

        types = {f.api_name: f.data_type for f in self.metadata.fields(module)}
        size = self.settings.page_size
        newest: datetime | None = None
        number = 0
        spent = [0]
        pending: list[PulledRecord] | None = None
        chunk: list[PulledRecord] = []
        for data in self._rows(module, fields, types, spent):
            raw = data.get(MODIFIED_FIELD)
            modified_at = raw if isinstance(raw, str) else None
            if modified_at:
                from crmsync_connectors.zoho.pull import parse_zoho_time

                moment = parse_zoho_time(modified_at)
                newest = moment if newest is None or moment > newest else newest
            chunk.append(
                PulledRecord(
                    id=str(data["id"]),
                    data=data,
                    modified_at=modified_at,
                    status=record_status(data, self.settings.status),
                )
            )
            if len(chunk) >= size:
                if pending is not None:
                    number += 1
                    yield Page(number=number, records=pending, api_calls=spent[0])
                    spent[0] = 0
                pending, chunk = chunk, []
        if pending is not None and chunk:
            number += 1
            yield Page(number=number, records=pending, api_calls=spent[0])
            spent[0] = 0
            pending = chunk
        elif pending is None:
            pending = chunk
        if has_modified:
            checkpoint = iso_z(newest) if newest is not None else None
        else:
            checkpoint = FULL_PULL_CHECKPOINT
        yield Page(number=number + 1, records=pending, checkpoint=checkpoint, api_calls=spent[0])

    def _rows(
        self, module: str, fields: list[str], types: dict[str, str], spent: list[int]
    ) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {"page": 1}
        while True:
            result = self._job(module, fields, query, spent)
            yield from self._download(module, result, types, spent)
            if not result.get("more_records"):
                return
            token = result.get("next_page_token")
            page = result.get("page")
            if token:
                query = {"page_token": str(token)}
            elif isinstance(page, int):
                query = {"page": page + 1}
            else:
                raise self._error("more_records without next_page_token or page", module)

    # ------------------------------------------------------------------ job, poll

    def _job(
        self, module: str, fields: list[str], query: dict[str, Any], spent: list[int]
    ) -> dict[str, Any]:
        body = {
            "query": {"module": {"api_name": module}, "fields": fields, **query},
            "file_type": "csv",
        }
        response, calls = self.api.request(
            "bulk", "POST", "/read", module=module, json=body, root=BULK_ROOT
        )
        spent[0] += calls
        created = json_body(response, {"connection": self.api.name, "module": module})
        try:
            job_id = str(created["data"][0]["details"]["id"])
        except (KeyError, IndexError, TypeError):
            raise self._error("the create-job answer has no data[0].details.id", module) from None
        self.jobs += 1
        waited = 0.0
        wait = self.settings.bulk_read_poll_interval
        while True:
            response, calls = self.api.request(
                "bulk", "GET", f"/read/{job_id}", module=module, root=BULK_ROOT
            )
            spent[0] += calls
            status = json_body(response, {"connection": self.api.name, "module": module})
            try:
                item = status["data"][0]
                state = item["state"]
            except (KeyError, IndexError, TypeError):
                raise self._error(f"job {job_id}: the status answer has no state", module) from None
            if state == "COMPLETED":
                result = item.get("result")
                if not isinstance(result, dict):
                    raise self._error(f"job {job_id} COMPLETED without a result", module)
                return {**result, "job_id": job_id}
            if state == "FAILURE":
                raise self._error(
                    f"Zoho reports job {job_id} FAILURE; nothing past the pages already "
                    'committed was kept, run the pull again (or set bulk_read = "never")',
                    module,
                )
            if state not in ("ADDED", "IN PROGRESS"):
                raise self._error(f"job {job_id}: unknown state {state!r}", module)
            if waited >= self.settings.bulk_read_max_wait:
                raise self._error(
                    f"job {job_id} still {state} after {waited:.0f} s (bulk_read_max_wait)",
                    module,
                    ConnectorError,
                )
            self.sleep(wait)
            waited += wait
            wait = min(MAX_POLL_WAIT, max(wait * 2, 0.001))

    # ------------------------------------------------------------------ download, parse

    def _fetch(self, module: str, job_id: str, url: str, spent: list[int]) -> Any:
        path = url
        if "://" in path:
            path = "/" + path.split("://", 1)[1].split("/", 1)[1]
        path = path.removeprefix(BULK_ROOT) if path.startswith(BULK_ROOT) else None
        path = path or f"/read/{job_id}/result"
        for attempt in range(DOWNLOAD_RETRIES + 1):
            try:
                response, calls = self.api.request(
                    "bulk", "GET", path, module=module, root=BULK_ROOT
                )
                spent[0] += calls
                return response
            except ConnectorError as err:
                if err.status != 429:
                    raise
                if attempt == DOWNLOAD_RETRIES:
                    raise self._error(
                        f"download of job {job_id} still throttled (HTTP 429; Zoho allows 10 "
                        f"Bulk Read downloads a minute) after {DOWNLOAD_RETRIES} waits of "
                        f"{DOWNLOAD_WINDOW:.0f} s; run the pull again later",
                        module,
                        ConnectorError,
                    ) from None
                log.info("%s/%s: Bulk Read download throttled, waiting", self.api.name, module)
                self.sleep(DOWNLOAD_WINDOW)
        raise AssertionError("unreachable")

    def _download(
        self, module: str, result: dict[str, Any], types: dict[str, str], spent: list[int]
    ) -> Iterator[dict[str, Any]]:
        job_id = result["job_id"]
        response = self._fetch(module, job_id, str(result.get("download_url") or ""), spent)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            for block in response.iter_content(1024 * 1024):
                spool.write(block)
            spool.seek(0)
            try:
                archive = zipfile.ZipFile(spool)
            except zipfile.BadZipFile:
                raise self._error(f"job {job_id}: the result is not a zip file", module) from None
            with archive:
                members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise self._error(
                        f"job {job_id}: the zip holds {len(members)} CSV files, expected 1",
                        module,
                    )
                try:
                    with archive.open(members[0]) as raw:
                        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                        yield from self._parse(module, job_id, text, types)
                except (zipfile.BadZipFile, UnicodeDecodeError, csv.Error, EOFError) as err:
                    raise self._error(f"job {job_id}: unreadable CSV ({err})", module) from None

    def _parse(
        self, module: str, job_id: str, text: io.TextIOWrapper, types: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        reader = csv.reader(text)
        header = next(reader, None)
        if not header or "id" not in header:
            raise self._error(f"job {job_id}: the CSV has no header row with an id column", module)
        width = len(header)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != width:
                raise self._error(
                    f"job {job_id}: CSV line {line} has {len(row)} values, the header {width}",
                    module,
                )
            data: dict[str, Any] = {}
            for name, value in zip(header, row, strict=True):
                if name == "id":
                    data["id"] = value
                    continue
                try:
                    data[name] = convert(value, types.get(name, "text"))
                except ValueError:
                    raise self._error(
                        f"job {job_id}: CSV line {line}: {name} {value!r} is not a "
                        f"{types.get(name)}",
                        module,
                    ) from None
            if not data.get("id"):
                raise self._error(f"job {job_id}: CSV line {line} has no id", module)
            yield data
