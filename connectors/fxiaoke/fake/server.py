"""The fake Fxiaoke OpenAPI server: state, rules and the HTTP handler. See the package
docstring for what it follows and what it assumes."""

from __future__ import annotations

import bisect
import email.utils
import secrets
import threading
from collections import Counter, deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import orjson

from crmsync.testing.local_server import LocalHandler, LocalHTTPServer
from crmsync_connectors.fxiaoke.fake import codes as C
from crmsync_connectors.fxiaoke.fake.data import OBJECTS, OPERATOR, SYSTEM_FIELDS, generate

DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MAX_LIMIT = 100
MAX_OFFSET = 10_000
MAX_ID_LIST = 100  # Assumption: idList cap of recover/delete/batch invalid (not documented)
OPERATORS = ("EQ", "N", "GT", "GTE", "LT", "LTE", "IN", "NIN", "IS", "ISN")
LIFE_STATUSES = frozenset({"normal", "invalid", "under_review", "in_change", "ineffective"})
TIME_FIELDS = ("create_time", "last_modified_time")


class FakeClock:
    """Fake wall time in seconds; the connector under test may use ``monotonic`` as its clock
    and ``advance`` as its sleep, so rate windows and token expiry agree on both sides."""

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, float(seconds))

    monotonic = now


class ApiError(Exception):
    def __init__(self, code: int, message: str, description: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.description = description or message


class FakeFxiaoke:
    def __init__(
        self,
        records: dict[str, int] | None = None,
        seed: int = 42,
        *,
        app_id: str = "FSAID_FAKE0001",
        app_secret: str = "fake-fxiaoke-app-secret",
        permanent_code: str = "fake-fxiaoke-permanent-code",
        token_ttl: int = 7200,
        rate_calls: int | None = 100,
        rate_period: float = 20.0,
        report_total: bool = True,
        clock_start: float = DEFAULT_START,
        verbose: bool = False,
    ) -> None:
        self.clock = FakeClock(clock_start)
        self.app_id, self.app_secret, self.permanent_code = app_id, app_secret, permanent_code
        self.corp_id = "FSCID_FAKECORP01"
        self.open_user_id = OPERATOR
        self.admin_mobile = "13800000000"
        self.token_ttl = token_ttl
        self.rate_calls, self.rate_period = rate_calls, rate_period
        self.report_total = report_total
        self.verbose = verbose
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in OBJECTS}
        self._sorted: dict[str, list[str]] = {o: [] for o in OBJECTS}
        now_ms = self.clock.ms()
        for obj, count in (records or {"AccountObj": 250}).items():
            if obj not in OBJECTS:
                raise ValueError(f"the fake has no object {obj!r} (has {', '.join(OBJECTS)})")
            for record in generate(obj, count, seed, now_ms):
                self._records[obj][record["_id"]] = record
            self._sorted[obj] = sorted(self._records[obj])
        self._tokens: dict[str, float] = {}
        self.issued: list[str] = []  # every corpAccessToken handed out (tests: never leaked)
        self._windows: dict[str, deque[float]] = {}
        self._faults: deque[dict[str, Any]] = deque()
        self._reject: set[str] = set()
        self._server: LocalHTTPServer | None = None
        self.reset_stats()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeFxiaoke:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self._server.serve_in_background("fake-fxiaoke")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop_serving()
            self._server = None

    def __enter__(self) -> FakeFxiaoke:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ test controls

    def ids(self, obj: str) -> list[str]:
        with self._lock:
            return list(self._sorted[obj])

    def record(self, obj: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records[obj].get(record_id)
            return dict(record) if record is not None else None

    def count(self, obj: str) -> int:
        with self._lock:
            return len(self._records[obj])

    def touch(self, obj: str, count: int | None = None, ids: Iterable[str] | None = None):
        """User edits: last_modified_time = now (not counted as API writes)."""
        with self._lock:
            chosen = list(ids) if ids is not None else self._sorted[obj][: count or 0]
            now = self.clock.ms()
            for rid in chosen:
                record = self._records[obj][rid]
                record["last_modified_time"] = now
                record["version"] = str(int(record["version"]) + 1)
            return chosen

    def set_life_status(
        self, obj: str, ids: Iterable[str], value: str, *, stamp: bool = True
    ) -> None:
        """A user (or a flow) changes life_status; ``stamp=False`` for seeding."""
        if value not in LIFE_STATUSES:
            raise ValueError(f"life_status {value!r} is not one of {sorted(LIFE_STATUSES)}")
        with self._lock:
            for rid in ids:
                self._records[obj][rid]["life_status"] = value
                if stamp:
                    self._records[obj][rid]["last_modified_time"] = self.clock.ms()

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def fail_next(
        self, status: int, count: int = 1, retry_after: float | None = None, path: str = ""
    ) -> None:
        """The next ``count`` API calls (path prefix) answer HTTP ``status`` (a gateway error:
        the OpenAPI itself answers 200)."""
        with self._lock:
            for _ in range(count):
                self._faults.append({"status": status, "retry_after": retry_after, "path": path})

    def fail_next_code(self, code: int, count: int = 1, path: str = "") -> None:
        """The next ``count`` API calls (path prefix) answer HTTP 200 with ``errorCode``."""
        with self._lock:
            for _ in range(count):
                self._faults.append({"code": code, "path": path})

    def malformed_next(self, count: int = 1, body: bytes = b'{"errorCode": 0, "data": {"dat',
                       path: str = "") -> None:  # fmt: skip
        with self._lock:
            for _ in range(count):
                self._faults.append({"raw": body, "path": path})

    def reject_writes(self, ids: Iterable[str]) -> None:
        """Writes touching these records fail (the record is locked by a flow)."""
        with self._lock:
            self._reject |= set(ids)

    def reset_stats(self) -> None:
        with self._lock:
            self.requests = 0
            self.by_path: Counter[str] = Counter()
            self.by_code: Counter[int] = Counter()
            self.writes: Counter[str] = Counter()
            self.token_requests = 0
            self.rate_limited = 0
            self.max_batch = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.triggers: Counter[str] = Counter()
            self.query_offsets: list[int] = []
            self.keyed_queries = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "by_code": dict(self.by_code),
                "writes": dict(self.writes),
                "write_calls": sum(
                    n for p, n in self.by_path.items() if not p.endswith(("/query", "/get"))
                    and p.startswith("/cgi/crm/")
                ),
                "query_calls": sum(n for p, n in self.by_path.items() if p.endswith("/query")),
                "token_requests": self.token_requests,
                "rate_limited": self.rate_limited,
                "max_batch": self.max_batch,
                "max_in_flight": self.max_in_flight,
                "triggers": dict(self.triggers),
                "keyed_queries": self.keyed_queries,
                "max_offset": max(self.query_offsets, default=0),
            }  # fmt: skip

    def write_count(self, obj: str, record_id: str) -> int:
        with self._lock:
            return self.writes.get(f"{obj}/{record_id}", 0)

    # ------------------------------------------------------------------ request handling

    def handle(self, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(path, raw)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handle(self, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {"Date": email.utils.formatdate(self.clock.now(), usegmt=True)}
        with self._lock:
            fault = None
            if self._faults and path.startswith(self._faults[0]["path"]):
                fault = self._faults.popleft()
        if fault is not None:
            if "status" in fault:
                if fault["retry_after"] is not None:
                    headers["Retry-After"] = str(fault["retry_after"])
                return fault["status"], headers, b'{"message":"gateway error"}'
            if "raw" in fault:
                return 200, headers, fault["raw"]
            return 200, headers, _error(ApiError(fault["code"], "injected error"))
        route = ROUTES.get(path)
        if route is None:
            return 404, headers, b"<html><body>404 Not Found</body></html>"
        try:
            try:
                body = orjson.loads(raw or b"null")
            except orjson.JSONDecodeError:
                raise ApiError(C.BAD_PARAM, "request body is not JSON") from None
            if not isinstance(body, dict):
                raise ApiError(C.BAD_PARAM, "request body must be a JSON object")
            self._rate(path)
            answer = route(self, path, body)
        except ApiError as err:
            with self._lock:
                self.by_code[err.code] += 1
            return 200, headers, _error(err)
        with self._lock:
            self.by_code[0] += 1
        ok = {"errorCode": 0, "errorMessage": "OK", "errorDescription": "success",
              "traceId": "E-O.fake." + secrets.token_hex(6)}  # fmt: skip
        return 200, headers, orjson.dumps({**ok, **answer})

    def _rate(self, path: str) -> None:
        """Per-interface limit over a sliding window of fake time (stricter than fixed)."""
        if self.rate_calls is None:
            return
        with self._lock:
            window = self._windows.setdefault(path, deque())
            now = self.clock.now()
            while window and now - window[0] >= self.rate_period:
                window.popleft()
            if len(window) >= self.rate_calls:
                self.rate_limited += 1
                raise ApiError(C.RATE_LIMITED, "接口调用频率超限 (rate limit exceeded)")
            window.append(now)

    # ------------------------------------------------------------------ auth

    def _token_get(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
        if (
            body.get("appId") != self.app_id
            or body.get("appSecret") != self.app_secret
            or body.get("permanentCode") != self.permanent_code
        ):
            raise ApiError(C.BAD_APP_CREDENTIALS, "appId, appSecret or permanentCode is wrong")
        token = secrets.token_hex(16).upper()
        with self._lock:
            self._tokens[token] = self.clock.now() + self.token_ttl
            self.issued.append(token)
        return {"corpAccessToken": token, "corpId": self.corp_id, "expiresIn": self.token_ttl}

    def _auth(self, body: dict[str, Any], *, need_user: bool = True) -> None:
        token = body.get("corpAccessToken")
        if not token:
            raise ApiError(C.CORP_NOT_FOUND, "corpAccessToken missing")
        with self._lock:
            expires = self._tokens.get(str(token))
        if expires is None or self.clock.now() >= expires or body.get("corpId") != self.corp_id:
            raise ApiError(C.TOKEN_EXPIRED, "corpAccessToken is invalid or expired")
        if need_user and body.get("currentOpenUserId") != self.open_user_id:
            raise ApiError(C.BAD_USER, "currentOpenUserId is not an employee of this enterprise")

    def _user_by_mobile(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._auth(body, need_user=False)
        if body.get("mobile") != self.admin_mobile:
            return {"empList": []}
        return {"empList": [{"openUserId": self.open_user_id, "name": "管理员",
                             "mobile": self.admin_mobile}]}  # fmt: skip

    # ------------------------------------------------------------------ objects

    def _object(self, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._auth(body)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ApiError(C.BAD_PARAM, "data must be a map")
        name = data.get("dataObjectApiName")
        if name is None and isinstance(data.get("object_data"), dict):
            name = data["object_data"].get("dataObjectApiName")
        if not isinstance(name, str) or name not in OBJECTS:
            raise ApiError(C.NO_OBJECT, f"object {name!r} does not exist")
        custom_path = path.startswith("/cgi/crm/custom/")
        if name.endswith("__c") != custom_path:
            raise ApiError(
                C.NO_OBJECT,
                f"object {name} is {'custom' if name.endswith('__c') else 'preset'}: "
                "wrong interface for it",
            )
        return name, data

    def _fields(self, obj: str) -> set[str]:
        return set(OBJECTS[obj]) | set(SYSTEM_FIELDS)

    def _query(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        info = data.get("search_query_info")
        if not isinstance(info, dict):
            raise ApiError(C.BAD_PARAM, "search_query_info is required")
        limit, offset = info.get("limit", 20), info.get("offset", 0)
        if not _int(limit) or not 1 <= limit <= MAX_LIMIT:
            raise ApiError(C.BAD_PARAM, f"limit must be 1..{MAX_LIMIT}")
        if not _int(offset) or offset < 0 or offset % limit:
            raise ApiError(C.BAD_PARAM, "offset must be a non-negative multiple of limit")
        if offset > MAX_OFFSET:
            raise ApiError(C.OFFSET_RANGE, "offset out of range 10000",
                           "offset cannot exceed 10000")  # fmt: skip
        known = self._fields(obj)
        filters = info.get("filters") or []
        if not isinstance(filters, list):
            raise ApiError(C.BAD_PARAM, "filters must be a list")
        checks = [_filter(f, known) for f in filters]
        life = [f for f in filters if f.get("field_name") == "life_status"]
        if not life:
            # Assumption (the stricter reading of an undocumented default): invalid records,
            # being in the recycle bin, are returned only when a filter on life_status asks.
            checks.append(lambda r: r.get("life_status") != "invalid")
        orders = info.get("orders") or [{"fieldName": "_id", "isAsc": True}]
        for order in orders:
            if not isinstance(order, dict) or order.get("fieldName") not in known:
                raise ApiError(C.NO_FIELD, f"cannot order by {order!r}")
        projection = info.get("fieldProjection")
        if projection is not None:
            if not isinstance(projection, list) or not all(isinstance(f, str) for f in projection):
                raise ApiError(C.BAD_PARAM, "fieldProjection must be a list of field names")
            unknown = [f for f in projection if f not in known]
            if unknown:
                raise ApiError(C.NO_FIELD, f"field {unknown[0]} does not exist on {obj}")
        want_total = bool(data.get("find_explicit_total_num")) and self.report_total
        keyed_after = next(
            (f["field_values"][0] for f in filters
             if f.get("field_name") == "_id" and f.get("operator") == "GT"),
            None,
        )  # fmt: skip
        with self._lock:
            self.query_offsets.append(offset)
            if keyed_after is not None:
                self.keyed_queries += 1
            records = self._records[obj]
            by_id = len(orders) == 1 and orders[0].get("fieldName") == "_id"
            if by_id and orders[0].get("isAsc", True) is not False:
                ids = self._sorted[obj]
                start = bisect.bisect_right(ids, str(keyed_after)) if keyed_after else 0
                candidates: Iterable[str] = (ids[i] for i in range(start, len(ids)))
            else:
                rows = sorted(records.values(), key=lambda r: _order_key(r, orders))
                candidates = (r["_id"] for r in rows)
            page: list[dict[str, Any]] = []
            matched = 0
            cursor_only = bool(life) and all(
                (f.get("field_name") == "_id" and f.get("operator") == "GT")
                or (
                    f.get("field_name") == "life_status"
                    and f.get("operator") == "IN"
                    and set(f.get("field_values") or ()) >= LIFE_STATUSES
                )
                for f in filters
            )
            if by_id and cursor_only:
                # only the _id cursor: slice the sorted ids instead of scanning (benches)
                ids = self._sorted[obj]
                start = bisect.bisect_right(ids, str(keyed_after)) if keyed_after else 0
                if orders[0].get("isAsc", True) is not False:
                    chosen = ids[start + offset : start + offset + limit]
                    page = [_project(records[rid], projection) for rid in chosen]
                    total = len(ids) - start if want_total else 0
                    return {"data": {"dataList": page, "offset": offset, "limit": limit,
                                     "total": total}}  # fmt: skip
            for rid in candidates:
                record = records[rid]
                if not all(check(record) for check in checks):
                    continue
                if offset <= matched < offset + limit:
                    page.append(_project(record, projection))
                matched += 1
                if matched >= offset + limit and not want_total:
                    break
        return {"data": {"dataList": page, "offset": offset, "limit": limit,
                         "total": matched if want_total else 0}}  # fmt: skip

    def _get(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        with self._lock:
            record = self._records[obj].get(str(data.get("objectDataId")))
            if record is None:
                raise ApiError(C.NOT_FOUND, "data not found")
            return {"data": dict(record)}

    # ------------------------------------------------------------------ writes

    def _wrote(self, obj: str, ids: list[str]) -> None:
        self.max_batch = max(self.max_batch, len(ids))
        for rid in ids:
            self.writes[f"{obj}/{rid}"] += 1

    def _id_list(self, data: dict[str, Any]) -> list[str]:
        ids = data.get("idList")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ApiError(C.BAD_PARAM, "idList must be a non-empty list of ids")
        if len(ids) > MAX_ID_LIST:
            raise ApiError(C.BAD_PARAM, f"idList takes at most {MAX_ID_LIST} ids")
        return ids

    def _existing(self, obj: str, rid: str) -> dict[str, Any]:
        record = self._records[obj].get(rid)
        if record is None:
            raise ApiError(C.NOT_FOUND, f"data {rid} not found")
        if rid in self._reject:
            raise ApiError(C.LOCKED, f"data {rid} is locked by an approval flow")
        return record

    def _stamp(self, record: dict[str, Any]) -> None:
        record["last_modified_time"] = self.clock.ms()
        record["last_modified_by"] = [self.open_user_id]
        record["version"] = str(int(record["version"]) + 1)

    def _update(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        values = data.get("object_data")
        if not isinstance(values, dict) or not isinstance(values.get("_id"), str):
            raise ApiError(C.BAD_PARAM, "object_data with _id is required")
        writable = set(OBJECTS[obj])
        for key in values:
            if key in ("_id", "dataObjectApiName"):
                continue
            if key == "owner":
                raise ApiError(C.BAD_PARAM, "owner cannot be updated here; use changeOwner")
            if key in SYSTEM_FIELDS:
                raise ApiError(C.BAD_PARAM, f"field {key} is read-only")
            if key not in writable:
                raise ApiError(C.NO_FIELD, f"field {key} does not exist on {obj}")
        with self._lock:
            record = self._existing(obj, values["_id"])
            if record["life_status"] == "invalid":
                # Assumption: an invalid record (in the recycle bin) cannot be edited.
                raise ApiError(C.ALREADY_INVALID, f"data {values['_id']} is invalid")
            for key, value in values.items():
                if key not in ("_id", "dataObjectApiName"):
                    record[key] = value
            self._stamp(record)
            self._wrote(obj, [values["_id"]])
            self.triggers[f"workflow={body.get('triggerWorkFlow', 'default')}"] += 1
        return {}

    def _invalid(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        rid = data.get("object_data_id")
        if not isinstance(rid, str) or not rid:
            raise ApiError(C.BAD_PARAM, "object_data_id must be one id (a string)")
        with self._lock:
            record = self._existing(obj, rid)
            if record["life_status"] == "invalid":
                raise ApiError(C.ALREADY_INVALID, f"data {rid} is already invalid")
            record["life_status"] = "invalid"
            self._stamp(record)
            self._wrote(obj, [rid])
        return {}

    def _batch_invalid(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object("/cgi/crm/custom/", body)
        ids = self._id_list(data)
        with self._lock:
            for rid in ids:  # Assumption: all or nothing
                if self._existing(obj, rid)["life_status"] == "invalid":
                    raise ApiError(C.ALREADY_INVALID, f"data {rid} is already invalid")
            for rid in ids:
                self._records[obj][rid]["life_status"] = "invalid"
                self._stamp(self._records[obj][rid])
            self._wrote(obj, ids)
        return {}

    def _recover(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        ids = self._id_list(data)
        with self._lock:
            for rid in ids:  # Assumption: all or nothing
                if self._existing(obj, rid)["life_status"] != "invalid":
                    raise ApiError(C.NOT_INVALID, f"data {rid} is not invalid")
            for rid in ids:
                self._records[obj][rid]["life_status"] = "normal"
                self._stamp(self._records[obj][rid])
            self._wrote(obj, ids)
        return {}

    def _delete(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        obj, data = self._object(path, body)
        ids = self._id_list(data)
        with self._lock:
            for rid in ids:  # documented: invalidate data before deletion
                if self._existing(obj, rid)["life_status"] != "invalid":
                    raise ApiError(C.NOT_INVALID, f"data {rid} must be invalid before deletion")
            for rid in ids:
                del self._records[obj][rid]
                self._sorted[obj].remove(rid)
            self._wrote(obj, ids)
        return {}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _error(err: ApiError) -> bytes:
    return orjson.dumps({"errorCode": err.code, "errorMessage": err.message,
                         "errorDescription": err.description,
                         "traceId": "E-O.fake." + secrets.token_hex(6)})  # fmt: skip


def _project(record: dict[str, Any], projection: list[str] | None) -> dict[str, Any]:
    if projection is None:
        return dict(record)
    return {"_id": record["_id"], **{f: record.get(f) for f in projection}}


def _order_key(record: dict[str, Any], orders: list[dict[str, Any]]) -> tuple[Any, ...]:
    key = []
    for order in orders:
        value = record.get(order["fieldName"])
        value = value if isinstance(value, int | float) else str(value)
        key.append(value if order.get("isAsc", True) else _Desc(value))
    return (*key, record["_id"])


class _Desc:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value


def _filter(spec: Any, known: set[str]) -> Any:
    if not isinstance(spec, dict):
        raise ApiError(C.BAD_PARAM, "a filter must be a map")
    field, op, values = spec.get("field_name"), spec.get("operator"), spec.get("field_values")
    if field not in known:
        raise ApiError(C.NO_FIELD, f"field {field} does not exist")
    if op not in OPERATORS:
        raise ApiError(C.BAD_PARAM, f"operator {op!r} is not supported")
    if not isinstance(values, list):
        raise ApiError(C.BAD_PARAM, "field_values must be a list")
    if op in ("IN", "NIN"):
        wanted = {str(v) for v in values}
        return lambda r: (str(r.get(field)) in wanted) == (op == "IN")
    if op in ("IS", "ISN"):
        return lambda r: (r.get(field) in (None, "", [])) == (op == "IS")
    if not values:
        raise ApiError(C.BAD_PARAM, f"operator {op} needs a value")
    raw = values[0]
    if field in TIME_FIELDS:
        try:
            bound: Any = int(str(raw))
        except ValueError:
            raise ApiError(C.BAD_PARAM, f"{field} takes epoch milliseconds") from None

        def get(r: dict[str, Any]) -> Any:
            return r.get(field) or 0
    else:
        bound = str(raw)

        def get(r: dict[str, Any]) -> Any:
            return str(r.get(field))

    compare = {
        "EQ": lambda a: a == bound, "N": lambda a: a != bound, "GT": lambda a: a > bound,
        "GTE": lambda a: a >= bound, "LT": lambda a: a < bound, "LTE": lambda a: a <= bound,
    }[op]  # fmt: skip
    return lambda r: compare(get(r))


def _object_routes() -> dict[str, Any]:
    routes: dict[str, Any] = {
        "/cgi/corpAccessToken/get/V2": FakeFxiaoke._token_get,
        "/cgi/user/getByMobile": FakeFxiaoke._user_by_mobile,
        "/cgi/crm/custom/data/invalid": FakeFxiaoke._batch_invalid,
    }
    actions = {
        "query": FakeFxiaoke._query, "get": FakeFxiaoke._get, "update": FakeFxiaoke._update,
        "invalid": FakeFxiaoke._invalid, "recover": FakeFxiaoke._recover,
        "delete": FakeFxiaoke._delete,
    }  # fmt: skip
    for prefix in ("/cgi/crm/v2/data/", "/cgi/crm/custom/v2/data/"):
        for action, handler in actions.items():
            routes[prefix + action] = handler
    return routes


ROUTES = _object_routes()


class _Handler(LocalHandler):
    server_state: FakeFxiaoke

    def _verbose(self) -> bool:
        return self.server_state.verbose

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]  # thirdTraceId and the like
        if self.command != "POST":
            status, headers, body = 405, {}, b"POST only"
        else:
            status, headers, body = self.server_state.handle(path, raw)
        # one write for head and body, with the fake clock's Date (LocalHandler.reply)
        kind = "text/html" if body.startswith(b"<html") else "application/json; charset=utf-8"
        self.reply(status, body, headers, content_type=kind)
