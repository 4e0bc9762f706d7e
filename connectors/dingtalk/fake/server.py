"""The fake DingTalk server: two LocalHTTPServers (the new API host and the old ``oapi`` host)
around one :class:`FakeDingTalk` state. See the package docstring for what it serves."""

from __future__ import annotations

import bisect
import hashlib
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from crmsync.sandbox.clock import SandboxClock
from crmsync.testing.local_server import LocalHandler, LocalHTTPServer
from crmsync_connectors.dingtalk.fake import data as dd

WRITE_BATCH = 10  # relationList / instanceList / instanceIds per call
NEW_PAGE_MAX = 100  # maxResults of GET /v1.0/crm/personalCustomers
OLD_PAGE_MAX = 200  # page_size of /topapi/crm/objectdata/*/query
_FAR = 253402300799000  # 9999-12-31 in ms: an open upper bound
QPS_NEW = "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
QPS_NEW_GLOBAL = "Forbidden.AccessDenied.QpsLimitForApi"
TOUCH_FIELD = {
    "crm_customer": "customer_address",
    "crm_customer_personal": "customer_address",
    "crm_contact": "contact_name",
    "crm_follow_record": "TextareaField-K2U5UJAF",
}


class Answer(Exception):
    """Raised inside a handler: answer ``status`` with ``payload`` (JSON)."""

    def __init__(self, status: int, payload: Any, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = dict(headers or {})


def new_error(status: int, code: str, message: str) -> Answer:
    """The v1.0 API's error shape: HTTP 4xx/5xx, string ``code``, ``requestid``."""
    return Answer(status, {"code": code, "message": message, "requestid": _request_id()})


def old_error(errcode: int, errmsg: str, **extra: Any) -> Answer:
    """The old API's error shape: HTTP 200 with ``errcode`` != 0."""
    return Answer(200, {"errcode": errcode, "errmsg": errmsg, **extra, "request_id": "fakereq"})


_counter = iter(range(1, 1 << 62))


def _request_id() -> str:
    return f"01A08FE7-{next(_counter):04X}-7BBD-B223-447768EA4B29"


# --------------------------------------------------------------------------- faults


class Faults:
    """Injected answers, consumed in order: ``fail_next`` (any HTTP status), ``throttle_next``
    (the host's own QPS answer), ``malformed_next`` (a cut-off JSON body),
    ``incomplete_next`` (a success without the records list), ``burst_every``
    (every Nth data request of a host is throttled), ``reject_ids`` (per-record write
    failures). Token requests are never faulted unless ``host`` is ``"token"``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.fail_next: list[dict[str, Any]] = []
            self.throttle_next: list[dict[str, Any]] = []
            self.malformed_next: list[dict[str, Any]] = []
            self.incomplete_next: list[dict[str, Any]] = []
            self.burst_every: dict[str, int] = {}
            self.reject_ids: dict[str, tuple[str, str]] = {}
            self._seen: Counter[str] = Counter()

    def decide(self, host: str) -> tuple[str, dict[str, Any]] | None:
        """Once per request: ``("fail" | "throttle" | "malformed", spec)`` or None."""
        with self.lock:
            for kind, specs in (
                ("fail", self.fail_next),
                ("throttle", self.throttle_next),
                ("malformed", self.malformed_next),
                ("incomplete", self.incomplete_next),
            ):
                for spec in specs:
                    if spec["count"] > 0 and spec["host"] in (host, "any"):
                        spec["count"] -= 1
                        return kind, spec
            if host == "token":
                return None
            self._seen[host] += 1
            every = self.burst_every.get(host) or self.burst_every.get("any")
            if every and self._seen[host] % every == 0:
                return "throttle", {"host": host, "code": None}
            return None


# --------------------------------------------------------------------------- stats


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.by_route: Counter[str] = Counter()
            self.by_kind: Counter[str] = Counter()
            self.by_status: Counter[str] = Counter()
            self.writes: Counter[str] = Counter()
            self.in_flight = 0
            self.max_in_flight = 0
            self.max_batch = 0
            self.records_served = 0

    def enter(self, route: str, kind: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_route[route] += 1
            self.by_kind[kind] += 1
            if kind != "token":
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, kind: str, status: int | str) -> None:
        with self.lock:
            if kind != "token":
                self.in_flight -= 1
            self.by_status[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_route": dict(self.by_route),
                "by_kind": dict(self.by_kind),
                "token_requests": self.by_kind.get("token", 0),
                "read_calls": self.by_kind.get("read", 0),
                "meta_calls": self.by_kind.get("meta", 0),
                "write_calls": self.by_kind.get("write", 0),
                "delete_calls": self.by_kind.get("delete", 0),
                "by_status": dict(self.by_status),
                "writes": dict(self.writes),
                "max_in_flight": self.max_in_flight,
                "max_batch": self.max_batch,
                "records_served": self.records_served,
            }


# --------------------------------------------------------------------------- the fake


class FakeDingTalk:
    """A seeded, fault-injectable fake DingTalk CRM served over real HTTP (package docstring)."""

    def __init__(
        self,
        records: int | Mapping[str, int] = 200,
        seed: int = 42,
        *,
        app_key: str = "dingfakeappkey0001",
        app_secret: str = "fake-dingtalk-app-secret-0001",
        token_ttl: int = 7200,
        clock_start: datetime | None = None,
        verbose: bool = False,
    ) -> None:
        sizes = dict.fromkeys(dd.OBJECTS, records) if isinstance(records, int) else dict(records)
        unknown = set(sizes) - set(dd.OBJECTS)
        if unknown:
            raise ValueError(f"unknown objects {sorted(unknown)}; objects: {dd.OBJECTS}")
        self.seed = seed
        self.app_key = app_key
        self.app_secret = app_secret
        self.token_ttl = token_ttl
        self.verbose = verbose
        self.clock = SandboxClock(clock_start or dd.DEFAULT_CLOCK_START)
        self.lock = threading.RLock()
        self.faults = Faults()
        self.stats_ = Stats()
        self._records: dict[str, dict[str, dd.Rec]] = {}
        for obj in dd.OBJECTS:
            recs = dd.generate(obj, int(sizes.get(obj, 0)), seed, self.clock.start)
            self._records[obj] = {r.id: r for r in recs}
        self._order: dict[str, list[tuple[int, str]] | None] = dict.fromkeys(dd.OBJECTS)
        self._tokens: dict[str, float] = {}  # token -> expiry (fake epoch seconds)
        self._current: str | None = None
        self._minted = 0
        self._touches = 0
        self._servers: dict[str, _Server] = {}

    # ----------------------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1") -> None:
        if self._servers:
            return
        for role in ("api", "oapi"):
            server = _Server((host, 0), _Handler)
            server.fake = self
            server.role = role
            self._servers[role] = server
            server.serve_in_background(f"fake-dingtalk-{role}")

    def stop(self) -> None:
        """Stop both hosts at once (each waits for its serve loop's poll)."""
        servers, self._servers = self._servers, {}
        stoppers = [threading.Thread(target=s.stop_serving) for s in servers.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    close = stop

    def __enter__(self) -> FakeDingTalk:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.stop()

    def _url(self, role: str) -> str:
        server = self._servers.get(role)
        if server is None:
            raise RuntimeError("the fake DingTalk server is not running: call start()")
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:P`` standing in for https://api.dingtalk.com."""
        return self._url("api")

    @property
    def oapi_url(self) -> str:
        """``http://127.0.0.1:P`` standing in for https://oapi.dingtalk.com."""
        return self._url("oapi")

    # ----------------------------------------------------------------------- control

    def advance(self, seconds: float) -> None:
        """Move the fake clock (tokens expire by it; writes and touches stamp it)."""
        self.clock.advance(seconds)

    def now(self) -> int:
        return int(self.clock.timestamp())

    def expire_tokens(self) -> None:
        """Every access token is invalid from now on (as after an app secret reset)."""
        with self.lock:
            self._tokens.clear()
            self._current = None

    def fail_next(
        self,
        status: int,
        count: int = 1,
        host: str = "any",
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        """The next ``count`` requests to ``host`` (api | oapi | token | any) get ``status``."""
        with self.faults.lock:
            self.faults.fail_next.append(
                {"status": status, "count": count, "host": host, "body": body,
                 "retry_after": retry_after}
            )  # fmt: skip

    def throttle_next(self, count: int = 1, host: str = "any", code: Any = None) -> None:
        """The next ``count`` requests get the host's QPS answer: api -> HTTP 403
        Forbidden.AccessDenied.QpsLimitForAppkeyAndApi (or ``code``); oapi -> HTTP 200 errcode
        90018 (or ``code``, e.g. 90002 / 90006)."""
        with self.faults.lock:
            self.faults.throttle_next.append({"count": count, "host": host, "code": code})

    def malformed_next(self, count: int = 1, host: str = "any") -> None:
        """The next ``count`` requests get HTTP 200 with a JSON body cut off in the middle."""
        with self.faults.lock:
            self.faults.malformed_next.append({"count": count, "host": host})

    def incomplete_next(self, count: int = 1, host: str = "any") -> None:
        """The next ``count`` requests get HTTP 200 / errcode 0 without the list of records."""
        with self.faults.lock:
            self.faults.incomplete_next.append({"count": count, "host": host})

    def burst(self, every: int, host: str = "any") -> None:
        """Every ``every``-th data request to ``host`` is throttled (0 turns it off)."""
        with self.faults.lock:
            self.faults.burst_every[host] = every

    def reject_writes(
        self, ids: Iterable[str], code: str = "1002", message: str = "查重失败"
    ) -> None:
        """Writes to these records fail per record (``success: false``, errorCode, errorMsg)."""
        with self.faults.lock:
            for rid in ids:
                self.faults.reject_ids[str(rid)] = (code, message)

    def clear_faults(self) -> None:
        self.faults.clear()

    def touch(
        self, obj: str, count: int | None = None, ids: Iterable[str] | None = None
    ) -> list[str]:
        """Edit records as a CRM user would (gmtModified = now); returns their ids."""
        with self.lock:
            recs = self._records[obj]
            if ids is None:
                ordered = sorted(recs)
                step = max(1, len(ordered) // max(1, count or 1))
                self._touches += 1
                start = self._touches % step
                ids = ordered[start::step][: count or 0]
            done = []
            field = TOUCH_FIELD[obj]
            for rid in ids:
                rec = recs.get(str(rid))
                if rec is not None:
                    rec.data[field] = f"edited {dd.fmt_time(self.now())}"
                    self._stamp(rec)
                    done.append(rec.id)
            return done

    def set_status(self, obj: str, record_id: str, label: str | None) -> None:
        """A user sets (or clears) the 状态 select by hand."""
        with self.lock:
            rec = self._records[obj][record_id]
            field = dd.STATUS_FIELDS[obj]
            if label is None:
                rec.data.pop(field, None)
            else:
                rec.data[field] = dd.select_value(dd.STATUS_OPTIONS, label)
            self._stamp(rec)

    def remove(self, obj: str, ids: Iterable[str]) -> list[str]:
        """A user deletes records."""
        with self.lock:
            gone = [str(i) for i in ids if self._records[obj].pop(str(i), None) is not None]
            self._order[obj] = None
            return gone

    def stats(self) -> dict[str, Any]:
        snap = self.stats_.snapshot()
        snap["tokens_issued"] = self._minted
        return snap

    def reset_stats(self) -> None:
        self.stats_.reset()

    def write_count(self, record_id: str) -> int:
        with self.stats_.lock:
            return self.stats_.writes.get(str(record_id), 0)

    # ----------------------------------------------------------------------- inspection

    def ids(self, obj: str) -> set[str]:
        with self.lock:
            return set(self._records[obj])

    def record(self, obj: str, record_id: str) -> dd.Rec | None:
        with self.lock:
            return self._records[obj].get(str(record_id))

    def status_label(self, obj: str, record_id: str) -> str | None:
        """The 状态 option's label, or None when the record is gone or the field is empty."""
        rec = self.record(obj, record_id)
        return None if rec is None else rec.status_label()

    def mint_token(self) -> str:
        """An access token issued without HTTP (not counted)."""
        with self.lock:
            return self._mint()

    # ----------------------------------------------------------------------- internals

    def _mint(self) -> str:
        now = self.clock.timestamp()
        # DingTalk's token docs: asking again within the validity returns the same token,
        # its validity renewed (documented for /gettoken; assumed for /v1.0/oauth2/accessToken)
        if self._current and self._tokens.get(self._current, 0) > now:
            self._tokens[self._current] = now + self.token_ttl
            return self._current
        self._minted += 1
        token = hashlib.sha1(f"dt/{self.seed}/{self._minted}".encode()).hexdigest()
        self._tokens[token] = now + self.token_ttl
        self._current = token
        return token

    def token_valid(self, token: str | None) -> bool:
        with self.lock:
            return bool(token) and self._tokens.get(token or "", 0) > self.clock.timestamp()

    def _stamp(self, rec: dd.Rec) -> None:
        rec.modified = self.now()
        self._order[rec.obj] = None

    def ordered(self, obj: str, by: str) -> list[tuple[int, str]]:
        """(time, id) ascending by gmt_modified (cached) or gmt_create."""
        with self.lock:
            if by == "gmt_modified":
                cached = self._order[obj]
                if cached is None:
                    cached = sorted((r.modified, r.id) for r in self._records[obj].values())
                    self._order[obj] = cached
                return cached
            return sorted((r.created, r.id) for r in self._records[obj].values())

    def query(
        self, obj: str, dsl: dict[str, Any] | None, offset: int, size: int
    ) -> tuple[list[dd.Rec], bool, int]:
        """One page of a DSL query: records, has_more, total. Supports a BETWEEN filter on
        gmt_modified / gmt_create (inclusive, epoch ms) and orderFieldId/order."""
        dsl = dsl or {}
        by = dsl.get("orderFieldId") or "gmt_create"
        if by not in ("gmt_create", "gmt_modified"):
            raise ValueError("orderFieldId")
        lo, hi, field = 0, _FAR, by
        for group in dsl.get("queryGroupList") or ():
            for cond in group.get("queryObjectList") or ():
                if cond.get("filterType") == "BETWEEN" and cond.get("fieldId") in (
                    "gmt_modified",
                    "gmt_create",
                ):
                    field = cond["fieldId"]
                    low, high = cond["value"]
                    lo, hi = int(low), int(high)
        with self.lock:
            keys = self.ordered(obj, field)
            start = bisect.bisect_left(keys, (lo // 1000 + (lo % 1000 > 0), ""))
            end = bisect.bisect_right(keys, (hi // 1000, "\uffff"))
            window = keys[start:end]
            if field != by:
                window = sorted(
                    (getattr(self._records[obj][i], "created" if by == "gmt_create" else
                             "modified"), i) for _, i in window
                )  # fmt: skip
            if (dsl.get("order") or "DESC").upper() == "DESC":
                window = window[::-1]
            chunk = window[offset : offset + size]
            recs = [self._records[obj][i] for _, i in chunk]
        self.stats_.records_served += len(recs)
        return recs, offset + size < len(window), len(window)

    def write(self, obj: str, rid: str, items: Any) -> dict[str, Any]:
        """Apply one relation's bizDataList / dataArray (only the keys given: a partial update).
        Returns ``{"success": bool, "errorCode", "errorMsg"}``."""
        rejected = self.faults.reject_ids.get(rid)
        if rejected:
            return {"success": False, "errorCode": rejected[0], "errorMsg": rejected[1]}
        with self.lock:
            rec = self._records[obj].get(rid)
            if rec is None:
                return {"success": False, "errorCode": "data.not.exists",
                        "errorMsg": "data not exists"}  # fmt: skip
            known = {f["name"]: f for f in dd.FIELDS[obj]}
            if not isinstance(items, list):
                return {"success": False, "errorCode": "invalidParameter",
                        "errorMsg": "bizDataList must be an array"}  # fmt: skip
            for item in items:
                key = item.get("key") if isinstance(item, dict) else None
                if key not in known:
                    return {"success": False, "errorCode": "fieldId.not.exists",
                            "errorMsg": f"field {key} not exist"}  # fmt: skip
                options = known[key].get("selectOptions")
                value = item.get("value")
                if options is not None and value not in [o["value"] for o in options]:
                    return {"success": False, "errorCode": "invalidParameter.selectValue",
                            "errorMsg": f"{value!r} is not an option of {key}"}  # fmt: skip
            for item in items:
                if options_of(known, item["key"]) is not None or item.get("extendValue"):
                    rec.data[item["key"]] = {
                        "value": item.get("value"),
                        "extendValue": item.get("extendValue") or "{}",
                    }
                else:
                    rec.data[item["key"]] = item.get("value")
            self._stamp(rec)
        with self.stats_.lock:
            self.stats_.writes[rid] += 1
        return {"success": True}

    def delete_one(self, obj: str, rid: str) -> bool:
        if self.faults.reject_ids.get(rid):
            return False
        with self.lock:
            gone = self._records[obj].pop(rid, None) is not None
            self._order[obj] = None
        if gone:
            with self.stats_.lock:
                self.stats_.writes[rid] += 1
        return gone

    def batch_seen(self, size: int) -> None:
        with self.stats_.lock:
            self.stats_.max_batch = max(self.stats_.max_batch, size)


def options_of(known: Mapping[str, Any], key: str) -> Any:
    return known[key].get("selectOptions")


# --------------------------------------------------------------------------- HTTP


class _Server(LocalHTTPServer):
    fake: FakeDingTalk
    role: str
    thread_name = "fake-dingtalk-conn"


class _Handler(LocalHandler):
    server: _Server

    def _verbose(self) -> bool:
        return self.server.fake.verbose

    def _dispatch(self) -> None:
        from crmsync_connectors.dingtalk.fake import routes

        fake, role = self.server.fake, self.server.role
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key, kind = routes.classify(role, self.command, path)
        host = "token" if kind == "token" else role
        fake.stats_.enter(key, kind)
        status: int | str = 500
        headers: dict[str, str] = {}
        try:
            injected = fake.faults.decide(host)
            if injected is not None:
                status, payload, headers = routes.injected(role, *injected)
            else:
                try:
                    status, payload = routes.handle(
                        fake, role, self.command, path, query, self.headers, body
                    )
                except Answer as answer:
                    status, payload, headers = answer.status, answer.payload, answer.headers
        except Exception as exc:  # a bug of the fake: answer 500 and say why on stderr
            traceback.print_exc(file=sys.stderr)
            status, payload = 500, {"code": "systemError", "message": repr(exc)}
        finally:
            # counted before the answer leaves: a client that has its answer sees it counted
            fake.stats_.leave(kind, status)
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
