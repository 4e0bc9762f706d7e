"""The Bulk Read API of the fake Zoho server (``/crm/bulk/v8/read``): jobs, polling, zipped CSV.

- ``POST /crm/bulk/v8/read`` ``{"query": {"module": {"api_name"}, "fields": [...], "page": n |
  "page_token": t}, "file_type": "csv"}`` -> 201 ``{"data": [{"status": "success", "code":
  "ADDED_SUCCESSFULLY", "details": {"id", "operation": "read", "state": "ADDED", ...}}]}``.
  No ``fields`` = every field. Costs ``bulk_job_credits`` API credits (default 50: an
  assumption, Zoho's reference here does not give the figure).
- ``GET /crm/bulk/v8/read/{id}`` -> ``{"data": [{"id", "operation", "state", "query",
  "result"?}]}``. A job answers ``IN PROGRESS`` to its first ``bulk_job_polls`` polls (default 1)
  unless the fake clock has moved ``bulk_job_seconds`` (default 30) past its creation, then
  ``COMPLETED`` with ``result {page, count, download_url, per_page, more_records,
  next_page_token}`` (the records are snapshotted then). ``fail_bulk_jobs(n)`` makes the next
  ``n`` jobs end in ``FAILURE`` instead.
- ``GET /crm/bulk/v8/read/{id}/result`` -> ``application/zip`` holding ``{id}.csv``; 400
  ``RESOURCE_NOT_FOUND``-style ``INVALID_DATA`` before completion; more than
  ``bulk_downloads_per_minute`` (10) downloads in 60 fake seconds -> 429 TOO_MANY_REQUESTS.

CSV conventions (kept simple; the connector documents the same): a header row of api names
(``id`` first, then the requested fields in order), one row per record sorted by id ascending,
``bulk_page_size`` rows a page (200,000; configurable for tests). Values: empty for null;
lookups / owner / user fields as the referenced **id**; multi-select picklists and tags as
their values (tag names) joined with ``,``; booleans ``true``/``false``; numbers as written;
date-times as stored (org offset, ``2025-03-01T10:00:00+05:30``).

Scope: ``ZohoCRM.bulk.read`` or ``ZohoCRM.bulk.ALL`` (the module read scope is not checked
separately). Every bulk request counts as kind ``bulk`` in the stats (``bulk_calls``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import zipfile
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from crmsync_connectors.zoho.fake import schema as sc

if TYPE_CHECKING:
    from crmsync_connectors.zoho.fake.server import FakeZoho

BULK_PREFIX = "/crm/bulk/v8/read"
BULK_SCOPES = ("ZohoCRM.bulk.read", "ZohoCRM.bulk.ALL")
DOWNLOAD_WINDOW = 60.0


@dataclass
class Raw:
    """A non-JSON answer body."""

    body: bytes
    content_type: str
    filename: str | None = None


@dataclass
class Job:
    id: str
    module: str
    fields: list[str]
    page: int
    created: float
    created_time: str
    fail: bool
    polls: int = 0
    state: str = "ADDED"
    result: dict[str, Any] | None = None
    zipped: bytes | None = None


@dataclass
class BulkState:
    page_size: int = 200_000
    job_polls: int = 1
    job_seconds: float = 30.0
    downloads_per_minute: int = 10
    job_credits: int = 50
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[str, Job] = field(default_factory=dict)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> (module, page)
    downloads: deque[float] = field(default_factory=deque)
    fail_next: int = 0
    seq: int = 0


def csv_value(f: sc.Field | None, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("id") or "")
    if isinstance(value, list):
        parts = [str(v.get("name") if isinstance(v, dict) else v) for v in value]
        return ",".join(parts)
    return str(value)


def job_cost(fake: FakeZoho, method: str, path: str) -> int:
    """Credits a bulk request costs: ``job_credits`` to create a job, else 1."""
    return fake.bulk.job_credits if method == "POST" and path.rstrip("/") == BULK_PREFIX else 1


class BulkRequest:
    def __init__(self, fake: FakeZoho, method: str, path: str, body: bytes) -> None:
        self.fake = fake
        self.state = fake.bulk
        self.method = method
        self.path = path.rstrip("/")
        self.body = body

    def handle(self) -> tuple[int, Any]:
        from crmsync_connectors.zoho.fake.api import ApiError

        rest = (
            self.path[len(BULK_PREFIX) :].strip("/").split("/") if self.path != BULK_PREFIX else []
        )
        if not rest:
            if self.method != "POST":
                raise ApiError(405, "INVALID_REQUEST_METHOD", "use POST to create a job")
            return self.create()
        if self.method != "GET" or len(rest) > 2 or (len(rest) == 2 and rest[1] != "result"):
            raise ApiError(
                404,
                "INVALID_URL_PATTERN",
                "Please check if the URL trying to access is a correct one",
            )
        with self.state.lock:
            job = self.state.jobs.get(rest[0])
        if job is None:
            raise ApiError(
                400, "INVALID_DATA", "the job id given seems to be invalid", {"id": rest[0]}
            )
        if len(rest) == 1:
            return self.poll(job)
        return self.download(job)

    def create(self) -> tuple[int, Any]:
        from crmsync_connectors.zoho.fake.api import ApiError, invalid_module

        try:
            body = orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(400, "INVALID_DATA", "body is not a valid JSON") from None
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, dict):
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                {"param_name": "query"},
            )  # fmt: skip
        if body.get("file_type", "csv") != "csv":
            raise ApiError(
                400, "INVALID_DATA", "only csv is supported", {"param_name": "file_type"}
            )
        module_ref = query.get("module")
        name = module_ref.get("api_name") if isinstance(module_ref, dict) else module_ref
        module = sc.MODULES.get(str(name))
        if module is None:
            raise invalid_module()
        fields = query.get("fields") or [f.api_name for f in module.fields]
        if not isinstance(fields, list):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "fields"})
        for f in fields:
            if f != "id" and f not in module.by_name:
                raise ApiError(
                    400, "INVALID_DATA", "invalid data", {"param_name": "fields", "api_name": f}
                )
        page = query.get("page", 1)
        token = query.get("page_token")
        with self.state.lock:
            if token is not None:
                found = self.state.tokens.get(str(token))
                if found is None or found[0] != module.api_name:
                    raise ApiError(
                        400, "INVALID_DATA", "the page token is invalid",
                        {"param_name": "page_token"},
                    )  # fmt: skip
                page = found[1]
            if not isinstance(page, int) or isinstance(page, bool) or page < 1:
                raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "page"})
            self.state.seq += 1
            job_id = str(5725767000001000000 + self.state.seq)
            fail = self.state.fail_next > 0
            if fail:
                self.state.fail_next -= 1
            now = self.fake.clock.timestamp()
            job = Job(
                job_id,
                module.api_name,
                [f for f in fields if f != "id"],
                page,
                now,
                self.fake.timefmt.fmt(int(now)),
                fail,
            )
            self.state.jobs[job_id] = job
        details = {
            "id": job_id,
            "operation": "read",
            "state": "ADDED",
            "created_by": {"id": sc.API_USER["id"], "name": sc.API_USER["name"]},
            "created_time": job.created_time,
        }
        item = {
            "status": "success",
            "code": "ADDED_SUCCESSFULLY",
            "message": "Added successfully.",
            "details": details,
        }
        return 201, {"data": [item], "info": {}}

    def poll(self, job: Job) -> tuple[int, Any]:
        now = self.fake.clock.timestamp()
        with self.state.lock:
            job.polls += 1
            if job.state in ("ADDED", "IN PROGRESS"):
                done = (
                    job.polls > self.state.job_polls or now >= job.created + self.state.job_seconds
                )
                if not done:
                    job.state = "IN PROGRESS"
                elif job.fail:
                    job.state = "FAILURE"
                else:
                    self._complete(job)
        item: dict[str, Any] = {
            "id": job.id,
            "operation": "read",
            "state": job.state,
            "created_time": job.created_time,
            "query": {"module": {"api_name": job.module}, "fields": job.fields, "page": job.page},
            "file_type": "csv",
        }
        if job.result is not None:
            item["result"] = job.result
        return 200, {"data": [item]}

    def _complete(self, job: Job) -> None:
        size = self.state.page_size
        module = sc.MODULES[job.module]
        rows = self.fake.store.page(
            job.module, sort_by="id", desc=False, limit=size + 1, offset=(job.page - 1) * size
        )
        more = len(rows) > size
        rows = rows[:size]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["id", *job.fields])
        for _key, _rid, body in rows:
            record = orjson.loads(body)
            writer.writerow(
                [
                    record["id"],
                    *(csv_value(module.by_name.get(f), record.get(f)) for f in job.fields),
                ]
            )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{job.id}.csv", text.getvalue().encode("utf-8"))
        job.zipped = buffer.getvalue()
        token = None
        if more:
            token = hashlib.sha256(f"{job.module}/{job.page + 1}/{job.id}".encode()).hexdigest()[
                :40
            ]
            self.state.tokens[token] = (job.module, job.page + 1)
        self.fake.stats_.served(len(rows))
        job.state = "COMPLETED"
        job.result = {
            "page": job.page,
            "count": len(rows),
            "download_url": f"{BULK_PREFIX}/{job.id}/result",
            "per_page": size,
            "more_records": more,
            "next_page_token": token,
        }

    def download(self, job: Job) -> tuple[int, Any]:
        from crmsync_connectors.zoho.fake.api import ApiError

        if job.state != "COMPLETED" or job.zipped is None:
            raise ApiError(
                400, "INVALID_DATA", "the job is not completed yet", {"state": job.state}
            )
        now = self.fake.clock.timestamp()
        with self.state.lock:
            window = self.state.downloads
            while window and window[0] <= now - DOWNLOAD_WINDOW:
                window.popleft()
            if len(window) >= self.state.downloads_per_minute:
                raise ApiError(
                    429, "TOO_MANY_REQUESTS", "the download limit (per minute) is exceeded"
                )
            window.append(now)
        return 200, Raw(job.zipped, "application/zip", f"{job.id}.zip")
