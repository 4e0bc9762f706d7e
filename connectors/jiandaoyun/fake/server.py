"""FakeJiandaoyun: the Jiandaoyun open API v5 (form data) over real HTTP on 127.0.0.1.

See the package docstring for what it follows and what it assumes.
"""

from __future__ import annotations

import bisect
import copy
import email.utils
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from crmsync.testing.local_server import LocalHandler, LocalHTTPServer
from crmsync_connectors.jiandaoyun.fake import data as seed

ROOT = "/api/v5/app/entry/"
#: Documented requests per second by endpoint (hc.jiandaoyun.com/open/14220..14527, 11261).
RATE_LIMITS = {
    "widget/list": 30,
    "data/list": 30,
    "data/get": 30,
    "data/update": 20,
    "data/batch_update": 10,
    "data/delete": 20,
    "data/batch_delete": 10,
}
GLOBAL_LIMIT = 50
METHODS = {
    "not_empty",
    "empty",
    "eq",
    "ne",
    "in",
    "nin",
    "range",
    "like",
    "verified",
    "unverified",
    "all",
    "gt",
    "lt",
}
NO_VALUE = {"empty", "not_empty", "verified", "unverified"}
# Error codes: 1 and 8303 are documented; the others are this fake's assumption (api.py says so).
INVALID = (1, "The request is invalid.")
APP_NOT_FOUND = (3000, "The app doesn't exist.")
FORM_NOT_FOUND = (3001, "The form doesn't exist.")
DATA_NOT_FOUND = (4000, "The data doesn't exist.")
WIDGET_NOT_FOUND = (4001, "The widget doesn't exist.")
BAD_KEY = (8301, "The API key is invalid.")
RATE = (8303, "超出请求频率限制")


class FakeClock:
    """A clock tests own: ``now()`` for the connector's limiter and the fake, ``sleep(s)``
    advances it instead of waiting. Share one between them and no test waits for time."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class _Reject(Exception):
    def __init__(self, error: tuple[int, str], status: int = 400) -> None:
        self.error = error
        self.status = status


@dataclass
class Stats:
    requests: int = 0
    by_endpoint: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    rate_limited: int = 0
    max_in_flight: int = 0
    max_batch: int = 0
    writes: Counter = field(default_factory=Counter)
    records_served: int = 0
    list_calls_by_kind: Counter = field(default_factory=Counter)


class FakeJiandaoyun:
    def __init__(
        self,
        records: int = 250,
        seed_value: int = 7,
        *,
        api_key: str = "jdy-fake-api-key-0123456789abcdef",
        clock: Callable[[], float] | None = None,
        clock_start: datetime = seed.CLOCK_START,
        enforce_rate_limits: bool = True,
        verbose: bool = False,
    ) -> None:
        self.api_key = api_key
        self.app_id = seed.APP_ID
        self.entry_id = seed.ENTRY_ID
        self.empty_entry_id = seed.EMPTY_ENTRY_ID
        self.widgets = copy.deepcopy(seed.WIDGETS)
        self.widget_names = {w["name"] for w in self.widgets}
        self._clock = clock or time.monotonic
        self._t0 = self._clock()
        self._start = clock_start
        self._offset = 0.0
        self.enforce_rate_limits = enforce_rate_limits
        self.verbose = verbose
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}
        self._ids: list[str] = []
        for rec in seed.seed_records(records, seed_value, clock_start):
            self._records[rec["_id"]] = rec
            self._ids.append(rec["_id"])
        self._ids.sort()
        self._rng = random.Random(seed_value + 1)
        self._windows: dict[str, list[float]] = {}
        self._in_flight = 0
        self._fail: list[dict[str, Any]] = []
        self._reject: set[str] = set()
        self._keys_enabled = {api_key}
        self.stats_ = Stats()
        self._server: LocalHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeJiandaoyun:
        outer = self

        class Handler(LocalHandler):
            def _dispatch(self) -> None:
                outer._handle(self)

            def _verbose(self) -> bool:
                return outer.verbose

        self._server = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self._server.serve_in_background("fake-jiandaoyun")
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/api"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop_serving()
            self._server = None

    def __enter__(self) -> FakeJiandaoyun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock

    def now_dt(self) -> datetime:
        return self._start + timedelta(seconds=self._clock() - self._t0 + self._offset)

    def now(self) -> str:
        return seed.jdy_time(self.now_dt())

    def advance(self, seconds: float) -> str:
        with self._lock:
            self._offset += seconds
        return self.now()

    # ------------------------------------------------------------------ controls

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        code: int | None = None,
        msg: str | None = None,
        body: bytes | dict | None = None,
        retry_after: float | None = None,
        endpoint: str | None = None,
    ) -> None:
        """The next ``count`` API requests (to ``endpoint``, if given) answer ``status`` with
        ``body`` (raw bytes: e.g. malformed JSON), or ``{"code","msg"}``."""
        with self._lock:
            self._fail.append(
                {
                    "status": status,
                    "count": count,
                    "code": code,
                    "msg": msg,
                    "body": body,
                    "retry_after": retry_after,
                    "endpoint": endpoint,
                }
            )

    def rate_limit_next(self, count: int = 1, endpoint: str | None = None) -> None:
        """The next ``count`` requests get the documented rate-limit answer (400, code 8303)."""
        self.fail_next(400, count, code=RATE[0], msg=RATE[1], endpoint=endpoint)

    def reject_writes(self, ids: Iterable[str]) -> None:
        """batch_update / batch_delete leave these records alone (success_count is short)."""
        with self._lock:
            self._reject = set(ids)

    def disable_key(self) -> None:
        """The admin disables the API key (开放平台 > 密钥管理): every call is refused."""
        with self._lock:
            self._keys_enabled.clear()

    def touch(self, count: int | None = None, ids: Iterable[str] | None = None) -> list[str]:
        """A user edits records in the UI: updateTime = now (not counted as API writes)."""
        with self._lock:
            chosen = list(ids) if ids is not None else self._rng.sample(self._ids, count or 0)
            for rid in chosen:
                self._records[rid]["updateTime"] = self.now()
                self._records[rid]["_widget_1600000000007"] = f"edited {self.now()}"
            return chosen

    def edit(self, record_id: str, **values: Any) -> dict[str, Any]:
        with self._lock:
            rec = self._records[record_id]
            rec.update(values)
            rec["updateTime"] = self.now()
            return copy.deepcopy(rec)

    def delete_records(self, ids: Iterable[str]) -> None:
        """A user deletes records in the UI."""
        with self._lock:
            for rid in ids:
                self._drop(rid)

    def add_record(self, **values: Any) -> str:
        """A user creates a record (its _id sorts after every existing one)."""
        with self._lock:
            rid = seed.record_id(len(self._ids) + 10**6, 1)
            now = self.now()
            self._records[rid] = {
                "_id": rid,
                "appId": self.app_id,
                "entryId": self.entry_id,
                "createTime": now,
                "updateTime": now,
                **values,
            }
            bisect.insort(self._ids, rid)
            return rid

    # ------------------------------------------------------------------ inspection

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def record(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            rec = self._records.get(record_id)
            return copy.deepcopy(rec) if rec is not None else None

    def status_text(self, record_id: str) -> str | None:
        rec = self.record(record_id)
        return None if rec is None else rec.get(seed.STATUS_WIDGET, "")

    def write_count(self, record_id: str) -> int:
        with self._lock:
            return self.stats_.writes.get(record_id, 0)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            s = self.stats_
            return {
                "requests": s.requests,
                "by_endpoint": dict(s.by_endpoint),
                "by_status": dict(s.by_status),
                "rate_limited": s.rate_limited,
                "max_in_flight": s.max_in_flight,
                "max_batch": s.max_batch,
                "writes": dict(s.writes),
                "records_served": s.records_served,
                "list_calls_by_kind": dict(s.list_calls_by_kind),
                "now": self.now(),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self.stats_ = Stats()

    # ------------------------------------------------------------------ HTTP

    def _handle(self, handler: LocalHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        if path.startswith("/_fake/"):
            self._control(handler, path, raw)
            return
        if not path.startswith(ROOT):
            self._send(handler, 404, {"code": INVALID[0], "msg": "Not Found"})
            return
        endpoint = path[len(ROOT) :]
        with self._lock:
            self.stats_.requests += 1
            self.stats_.by_endpoint[endpoint] += 1
            self._in_flight += 1
            self.stats_.max_in_flight = max(self.stats_.max_in_flight, self._in_flight)
        try:
            status, body, headers = self._answer(handler, endpoint, raw)
        except _Reject as rej:
            status, body, headers = rej.status, {"code": rej.error[0], "msg": rej.error[1]}, {}
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self.stats_.by_status[status] += 1
            if isinstance(body, dict) and body.get("code") == RATE[0]:
                self.stats_.rate_limited += 1
        self._send(handler, status, body, headers)

    def _control(self, handler: LocalHandler, path: str, raw: bytes) -> None:
        """Test controls over HTTP (no auth, not counted): for a fake in another process."""
        body = orjson.loads(raw) if raw else {}
        if path == "/_fake/stats":
            self._send(handler, 200, self.stats())
        elif path == "/_fake/stats/reset":
            self.reset_stats()
            self._send(handler, 200, {"ok": True})
        elif path == "/_fake/touch":
            self._send(handler, 200, {"ids": self.touch(body.get("count"), body.get("ids"))})
        elif path == "/_fake/clock":
            self._send(handler, 200, {"now": self.advance(float(body.get("advance_seconds", 0)))})
        else:
            self._send(handler, 404, {"code": INVALID[0], "msg": "unknown control"})

    def _send(
        self, handler: LocalHandler, status: int, body: Any, headers: dict | None = None
    ) -> None:
        payload = (
            body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        )
        handler.log_request(status)
        handler.send_response_only(status)  # Date comes from the fake clock, below
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Date", email.utils.format_datetime(self.now_dt(), usegmt=True))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(
        self, handler: LocalHandler, endpoint: str, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        injected = self._injected(endpoint)
        if injected is not None:
            return injected
        if handler.command != "POST":
            raise _Reject(INVALID, 405)
        auth = handler.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in self._keys_enabled:
            raise _Reject(BAD_KEY)
        if endpoint not in RATE_LIMITS:
            raise _Reject((INVALID[0], f"unknown endpoint {endpoint}"), 404)
        self._rate_check(endpoint)
        try:
            body = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            raise _Reject(INVALID) from None
        if not isinstance(body, dict):
            raise _Reject(INVALID)
        if body.get("app_id") != self.app_id:
            raise _Reject(APP_NOT_FOUND if body.get("app_id") else INVALID)
        if body.get("entry_id") == self.empty_entry_id:
            with self._lock:
                return 200, self._empty_form(endpoint, body), {}
        if body.get("entry_id") != self.entry_id:
            raise _Reject(FORM_NOT_FOUND if body.get("entry_id") else INVALID)
        route = {
            "widget/list": self._widgets,
            "data/list": self._list,
            "data/get": self._get,
            "data/update": self._update,
            "data/batch_update": self._batch_update,
            "data/delete": self._delete,
            "data/batch_delete": self._batch_delete,
        }[endpoint]
        with self._lock:
            return 200, route(body), {}

    def _injected(self, endpoint: str) -> tuple[int, Any, dict[str, str]] | None:
        with self._lock:
            for fault in self._fail:
                if fault["count"] > 0 and fault["endpoint"] in (None, endpoint):
                    fault["count"] -= 1
                    break
            else:
                return None
            self._fail = [f for f in self._fail if f["count"] > 0]
        headers = {}
        if fault["retry_after"] is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        body = fault["body"]
        if body is None:
            code = fault["code"] if fault["code"] is not None else fault["status"]
            body = {"code": code, "msg": fault["msg"] or "injected failure"}
        return fault["status"], body, headers

    def _rate_check(self, endpoint: str) -> None:
        if not self.enforce_rate_limits:
            return
        now = self._clock()
        with self._lock:
            for key, limit in ((endpoint, RATE_LIMITS[endpoint]), ("global", GLOBAL_LIMIT)):
                window = [t for t in self._windows.get(key, []) if now - t < 1.0]
                self._windows[key] = window
                if len(window) >= limit:
                    raise _Reject(RATE)
            for key in (endpoint, "global"):
                self._windows[key].append(now)

    # ------------------------------------------------------------------ endpoints

    def _empty_form(self, endpoint: str, body: dict) -> dict:
        """The app's second form: the same widgets, no records."""
        if endpoint == "widget/list":
            return {**self._widgets(body), "dataModifyTime": seed.jdy_time(self._start)}
        if endpoint == "data/list":
            self._filter(body.get("filter"))  # the same validation
            return {"data": []}
        if endpoint in ("data/batch_update", "data/batch_delete"):
            self._ids_param(body)
            return {"status": "success", "success_count": 0}
        raise _Reject(DATA_NOT_FOUND)

    def _widgets(self, body: dict) -> dict:
        newest = max((r.get("updateTime", "") for r in self._records.values()), default="")
        return {
            "widgets": copy.deepcopy(self.widgets),
            "sysWidgets": [{"name": n} for n in seed.SYSTEM_WIDGETS],
            "dataModifyTime": newest or self.now(),
        }

    def _list(self, body: dict) -> dict:
        limit = body.get("limit", 10)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise _Reject((INVALID[0], "limit must be 1..100"))
        fields = body.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise _Reject(INVALID)
            unknown = [f for f in fields if f not in self.widget_names | set(seed.SYSTEM_WIDGETS)]
            if unknown:
                raise _Reject(WIDGET_NOT_FOUND)
        match = self._filter(body.get("filter"))
        after = body.get("data_id")
        if after is not None and not isinstance(after, str):
            raise _Reject(INVALID)
        start = bisect.bisect_right(self._ids, after) if after else 0
        out = []
        for rid in self._ids[start:]:
            rec = self._records[rid]
            if match(rec):
                out.append(self._project(rec, fields))
                if len(out) == limit:
                    break
        self.stats_.records_served += len(out)
        kind = "filtered" if body.get("filter") else "full"
        self.stats_.list_calls_by_kind[kind] += 1
        return {"data": out}

    def _project(self, rec: dict, fields: list[str] | None) -> dict:
        if fields is None:
            return copy.deepcopy(rec)
        # As the documented example shows: the fields asked for plus _id, appId, entryId.
        keep = {"_id", "appId", "entryId", *fields}
        return {k: copy.deepcopy(v) for k, v in rec.items() if k in keep}

    def _filter(self, spec: Any) -> Callable[[dict], bool]:
        if spec is None:
            return lambda rec: True
        if not isinstance(spec, dict) or spec.get("rel") not in ("and", "or"):
            raise _Reject(INVALID)
        conds = spec.get("cond")
        if not isinstance(conds, list):
            raise _Reject(INVALID)
        tests = [self._condition(c) for c in conds]
        if spec["rel"] == "and":
            return lambda rec: all(t(rec) for t in tests)
        return lambda rec: any(t(rec) for t in tests)

    def _condition(self, cond: Any) -> Callable[[dict], bool]:
        # Public code that sends ``type: "eq"`` or ``val`` is wrong: refused, as the API does.
        if not isinstance(cond, dict) or "val" in cond or cond.get("method") not in METHODS:
            raise _Reject(INVALID)
        name, method = cond.get("field"), cond["method"]
        if name not in self.widget_names | set(seed.SYSTEM_WIDGETS):
            raise _Reject(WIDGET_NOT_FOUND)
        values = cond.get("value")
        if method not in NO_VALUE and not isinstance(values, list):
            raise _Reject(INVALID)
        if method in ("in", "nin") and len(values) > 200:
            raise _Reject((INVALID[0], "in/nin take at most 200 values"))
        is_time = name in ("createTime", "updateTime")

        def key(value: Any) -> Any:
            return _time(value) if is_time and isinstance(value, str) else value

        def test(rec: dict) -> bool:
            have = rec.get(name)
            if method == "empty":
                return have in (None, "", [])
            if method == "not_empty":
                return have not in (None, "", [])
            if method in ("eq", "ne"):
                hit = key(have) == key(values[0]) if values else False
                return hit if method == "eq" else not hit
            if method in ("in", "nin"):
                hit = key(have) in {key(v) for v in values}
                return hit if method == "in" else not hit
            if method == "like":
                return isinstance(have, str) and str(values[0]) in have
            if have is None:
                return False
            if method == "range":
                low = values[0] if values else None
                high = values[1] if len(values) > 1 else None
                return (low is None or key(have) >= key(low)) and (
                    high is None or key(have) <= key(high)
                )
            if method == "gt":
                return key(have) > key(values[0])
            if method == "lt":
                return key(have) < key(values[0])
            return False

        return test

    def _get(self, body: dict) -> dict:
        rec = self._records.get(str(body.get("data_id")))
        if rec is None:
            raise _Reject(DATA_NOT_FOUND)
        return {"data": copy.deepcopy(rec)}

    def _values(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _Reject(INVALID)
        out = {}
        for name, wrapped in data.items():
            if name not in self.widget_names:
                raise _Reject(WIDGET_NOT_FOUND)
            if not isinstance(wrapped, dict) or "value" not in wrapped:
                raise _Reject((INVALID[0], f"{name}: write values as {{'value': ...}}"))
            out[name] = wrapped["value"]
        return out

    def _write(self, rid: str, values: dict[str, Any]) -> None:
        rec = self._records[rid]
        rec.update(copy.deepcopy(values))
        rec["updateTime"] = self.now()
        rec["updater"] = seed.member("API", "api")
        self.stats_.writes[rid] += 1

    def _update(self, body: dict) -> dict:
        rid = str(body.get("data_id"))
        values = self._values(body.get("data"))
        if rid not in self._records:
            raise _Reject(DATA_NOT_FOUND)
        self._write(rid, values)
        return {"data": copy.deepcopy(self._records[rid])}

    def _ids_param(self, body: dict) -> list[str]:
        ids = body.get("data_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise _Reject(INVALID)
        if len(ids) > 100:
            raise _Reject((INVALID[0], "data_ids: at most 100"))
        self.stats_.max_batch = max(self.stats_.max_batch, len(ids))
        return ids

    def _batch_update(self, body: dict) -> dict:
        ids = self._ids_param(body)
        values = self._values(body.get("data"))
        # Assumption: ids not in the form are skipped and not counted (the docs show only the
        # count); a record already holding the values is counted (matched, not "modified").
        done = 0
        for rid in dict.fromkeys(ids):
            if rid in self._records and rid not in self._reject:
                self._write(rid, values)
                done += 1
        return {"status": "success", "success_count": done}

    def _delete(self, body: dict) -> dict:
        rid = str(body.get("data_id"))
        if rid not in self._records:
            raise _Reject(DATA_NOT_FOUND)
        self._drop(rid)
        self.stats_.writes[rid] += 1
        return {"status": "success"}

    def _batch_delete(self, body: dict) -> dict:
        ids = self._ids_param(body)
        done = 0
        for rid in dict.fromkeys(ids):  # Assumption: unknown ids are skipped, not an error
            if rid in self._records and rid not in self._reject:
                self._drop(rid)
                self.stats_.writes[rid] += 1
                done += 1
        return {"status": "success", "success_count": done}

    def _drop(self, rid: str) -> None:
        if self._records.pop(rid, None) is not None:
            i = bisect.bisect_left(self._ids, rid)
            if i < len(self._ids) and self._ids[i] == rid:
                del self._ids[i]


def _time(value: str) -> datetime:
    text = value.strip()
    if len(text) == 10:  # a date: "2022-01-01"
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
