"""The sandbox CRM's HTTP server, and :class:`SandboxCRM`, its Python handle.

A stdlib :class:`~http.server.ThreadingHTTPServer` (one daemon thread per connection, HTTP/1.1
keep-alive) in front of a :class:`~crmsync.sandbox.store.RecordStore`. The HTTP API is
documented in ``API.md`` beside this file; :class:`SandboxCRM`'s methods mirror its control
endpoints so tests can drive the sandbox without HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import sys
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from crmsync.sandbox.auth import SandboxAuth
from crmsync.sandbox.clock import SandboxClock
from crmsync.sandbox.data import MODULE_FIELDS, MODULES, STATUSES, RecordGenerator, split_sizes
from crmsync.sandbox.faults import FAULT_KEYS, Faults
from crmsync.sandbox.store import RecordStore, encode
from crmsync.testing.local_server import LocalHandler, LocalHTTPServer, RequestStats

API_PREFIX = "/api/v1/"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_BATCH = 100
_MAX_BODY = 16 * 1024 * 1024
_RESERVED = frozenset(("id", "created_at", "modified_at"))  # fields a write cannot set
_PAGING = frozenset(("page", "offset", "cursor", "api_key"))  # not copied into next links


class ApiError(Exception):
    """An error answer: ``{"error": {"code": code, "message": message}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> bytes:
        return encode({"error": {"code": self.code, "message": self.message}})


# --------------------------------------------------------------------------- stats


class Stats(RequestStats):
    """What clients did to the sandbox (:class:`~crmsync.testing.local_server.RequestStats`),
    plus the faults it injected."""

    def _clear(self) -> None:
        super()._clear()
        self.faults: Counter[str] = Counter()

    def fault(self, *kinds: str) -> None:
        with self._lock:
            self.faults.update(kinds)

    def _snapshot(self) -> dict[str, Any]:
        return {**super()._snapshot(), "faults": dict(self.faults)}


# --------------------------------------------------------------------------- the CRM


class SandboxCRM:
    """A seeded, fault-injectable CRM served over real HTTP.

    ``records`` is split over modules (Leads 40%, Contacts 30%, Accounts 10%, Deals 20%)
    unless ``module_sizes`` is given, in which case exactly the listed modules get records.
    Data is generated at construction; :meth:`start` serves it, :meth:`stop` stops serving,
    :meth:`close` (or leaving a ``with`` block) also frees the storage.
    """

    def __init__(
        self,
        records: int = 500,
        seed: int = 42,
        token: str = "sandbox-token",
        module_sizes: Mapping[str, int] | None = None,
        clock_start: datetime | None = None,
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        refresh_token: str = "sandbox-refresh",
        token_ttl: int = 3600,
        db_path: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.seed = seed
        self.verbose = verbose
        sizes = dict(module_sizes) if module_sizes is not None else split_sizes(records)
        self.clock = SandboxClock(clock_start)
        self.auth = SandboxAuth(
            self.clock, token, client_id, client_secret, refresh_token, token_ttl
        )
        self.faults = Faults(seed)
        self.request_stats = Stats()  # the counters behind stats()
        self.store = RecordStore(db_path)
        try:
            self.store.load(RecordGenerator(seed, sizes, self.clock.start))
        except BaseException:
            self.store.close()
            raise
        self.sizes = {m: sizes.get(m, 0) for m in MODULES}
        self._touch_rng = random.Random(f"crmsync-sandbox-touch/{seed}")
        self._server: _Server | None = None
        self._closed = False

    # ----------------------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in background threads; returns the base URL (``http://127.0.0.1:54321``)."""
        if self._closed:
            raise RuntimeError("this SandboxCRM is closed")
        if self._server is not None:
            return self.base_url
        server = _Server((host, port), _Handler)
        server.crm = self
        self._server = server
        server.serve_in_background("crmsync-sandbox")
        return self.base_url

    def stop(self) -> None:
        """Stop serving: close the listening socket and every open connection, join threads."""
        server, self._server = self._server, None
        if server is not None:
            server.stop_serving()

    def close(self) -> None:
        """Stop, and free the storage (its temporary file)."""
        self.stop()
        if not self._closed:
            self._closed = True
            self.store.close()

    def __enter__(self) -> SandboxCRM:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running: call start()")
        host, port = self._server.server_address[:2]
        if ":" in str(host):
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def token(self) -> str:
        return self.auth.token

    # ----------------------------------------------------------------------- control

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault set (keys as in API.md: latency_ms, error_rate, error_status,
        rate_limit_every, rate_limit_burst, retry_after, drop_rate, drop_after_rate,
        expire_tokens_every, fail_next, fail_ids, malformed_next, omit_id_next). Raises
        ValueError on an unknown key or a bad value."""
        self.faults.configure(faults)

    def clear_faults(self) -> None:
        self.faults.clear()

    def advance(self, seconds: float) -> str:
        """Move the sandbox clock forward; returns the new now (ISO-8601)."""
        self.clock.advance(seconds)
        return self.clock.iso()

    def now(self) -> str:
        return self.clock.iso()

    def expire_tokens(self, static: bool = False, *, refresh: bool = False) -> None:
        """Expire every issued OAuth token now; ``static`` also invalidates the static token,
        ``refresh`` the refresh token, until :meth:`restore_tokens`."""
        self.auth.expire(static=static, refresh=refresh)

    def restore_tokens(self) -> None:
        self.auth.restore()

    def touch(
        self, module: str, count: int | None = None, ids: Iterable[str] | None = None
    ) -> list[str]:
        """Modify records as a CRM user would (modified_at = now; no write is counted):
        ``ids``, or ``count`` live records picked at random (seeded). Returns the ids touched."""
        module = self._module(module)
        if ids is not None:
            wanted = [_int_id(i) for i in ids]
        elif count is not None:
            wanted = self.store.sample_ids(module, count, self._touch_rng)
        else:
            raise ValueError("touch needs count or ids")
        now = self.clock.iso()
        return [str(i) for i in wanted if i is not None and self.store.update(module, i, {}, now)]

    def delete_records(self, module: str, ids: Iterable[str]) -> list[str]:
        """Delete records as a CRM user would (no write is counted); returns those deleted."""
        module = self._module(module)
        now = self.clock.iso()
        done = []
        for rid in ids:
            i = _int_id(rid)
            if i is not None and self.store.delete(module, i, now):
                done.append(str(i))
        return done

    def stats(self) -> dict[str, Any]:
        snap = self.request_stats.snapshot()
        snap["now"] = self.clock.iso()
        return snap

    def reset_stats(self) -> None:
        self.request_stats.reset()

    def write_count(self, module: str, record_id: str) -> int:
        return self.request_stats.write_count(self._module(module), str(record_id))

    # ----------------------------------------------------------------------- inspection

    def count(self, module: str) -> int:
        """Live (not deleted) records of ``module``."""
        return self.store.count(self._module(module))

    def record(self, module: str, record_id: str) -> dict | None:
        i = _int_id(record_id)
        return self.store.get(self._module(module), i) if i is not None else None

    def ids(self, module: str) -> list[str]:
        """Live ids of ``module``, ascending (meant for small sandboxes)."""
        return [str(i) for i in self.store.ids(self._module(module))]

    def deleted_ids(self, module: str) -> list[str]:
        return [str(i) for i in self.store.ids(self._module(module), deleted=True)]

    def duplicates(self, module: str) -> dict[str, str]:
        """Ground truth of the generated near-duplicates: duplicate id -> original id."""
        pairs = self.store.duplicates(self._module(module))
        return {str(k): str(v) for k, v in pairs.items()}

    def _module(self, name: str) -> str:
        module = _MODULE_NAMES.get(name.lower())
        if module is None:
            raise ValueError(f"unknown module {name!r}; modules: {', '.join(MODULES)}")
        return module


_MODULE_NAMES = {m.lower(): m for m in MODULES}


def _int_id(value: object) -> int | None:
    text = str(value)
    return int(text) if text.isdigit() and len(text) <= 18 else None


# --------------------------------------------------------------------------- HTTP server


class _Server(LocalHTTPServer):
    thread_name = "crmsync-sandbox-conn"
    crm: SandboxCRM


class _Handler(LocalHandler):
    server_version = "crmsync-sandbox/1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: _Server

    def _verbose(self) -> bool:
        return self.server.crm.verbose

    # ----------------------------------------------------------------------- plumbing

    def _dispatch(self) -> None:
        crm = self.server.crm
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except ApiError as err:
            self.close_connection = True
            self._send(err.status, err.body())
            return
        if path.startswith("/_sandbox/"):
            self._control(crm, path, body)
            return
        if not (path.startswith(API_PREFIX) or path == "/oauth/token"):
            self._send(404, ApiError(404, "NOT_FOUND", f"no route {path}").body())
            return
        route = _route_template(self.command, path)
        stats = crm.request_stats
        stats.enter(route)
        status: int | str = "dropped"
        try:
            latency = crm.faults.latency()
            if latency > 0 and self.server.stopping.wait(latency):
                self.close_connection = True
                return
            injected = crm.faults.decide(path)
            if injected is not None:
                stats.fault(*injected.kinds)
                if injected.expire_tokens:
                    crm.auth.expire()  # as if every issued token ran out just now
                if injected.drop:
                    self.close_connection = True  # close without a byte of answer
                    return
                if injected.status:
                    status = injected.status
                    self._send(status, injected.body, injected.headers)
                    return
            try:
                if path == "/oauth/token":
                    status, payload, headers = self._oauth(crm, body)
                else:
                    problem = crm.auth.check(self.headers, query)
                    if problem is not None:
                        raise ApiError(401, "INVALID_TOKEN", problem)
                    status, payload, headers = _Api(crm, self, query, body).route(path)
            except ApiError as err:
                status, payload, headers = err.status, err.body(), ()
                if err.status == 401:
                    headers = (("WWW-Authenticate", 'Bearer error="invalid_token"'),)
            if injected is not None and injected.drop_after:
                status = "dropped_after"  # served (a write is done), never answered
                self.close_connection = True
                return
            if 200 <= status < 300 and payload and crm.faults.take_malformed():
                stats.fault("malformed")
                payload = payload[: max(1, len(payload) // 2)]  # truncated JSON
            self._send(status, payload, headers)
        except Exception as exc:  # a sandbox bug: answer 500 and say why on stderr
            status = 500
            traceback.print_exc(file=sys.stderr)
            self._send(500, ApiError(500, "INTERNAL_ERROR", repr(exc)).body())
        finally:
            stats.leave(status)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "LENGTH_REQUIRED", "send Content-Length, not chunked bodies")
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", "bad Content-Length") from None
        if n < 0 or n > _MAX_BODY:
            raise ApiError(413, "TOO_LARGE", "request body too large")
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Write the whole response with one send: a header write then a body write would
        cost a second syscall and, with small bodies, a delayed-ACK stall."""
        self.log_request(status)
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if status != 204:
            lines.append("Content-Type: application/json; charset=utf-8")
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if status == 204 or self.command == "HEAD" else head + body)

    # ----------------------------------------------------------------------- OAuth

    def _oauth(self, crm: SandboxCRM, body: bytes) -> tuple[int, bytes, tuple]:
        if self.command != "POST":
            raise ApiError(405, "METHOD_NOT_ALLOWED", "POST /oauth/token")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        status, answer = crm.auth.issue(form, self.headers)
        return status, encode(answer), (("Cache-Control", "no-store"),)

    # ----------------------------------------------------------------------- control

    def _control(self, crm: SandboxCRM, path: str, body: bytes) -> None:
        try:
            args = _json_object(body) if body else {}
            result = _control(crm, self.command, path.removeprefix("/_sandbox/"), args)
        except ApiError as err:
            self._send(err.status, err.body())
            return
        except ValueError as err:
            self._send(400, ApiError(400, "BAD_REQUEST", str(err)).body())
            return
        self._send(200, encode(result))


def _control(crm: SandboxCRM, method: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The ``/_sandbox/*`` endpoints (no auth, no faults, not counted in stats)."""
    name = name.strip("/")
    if name == "faults":
        if method == "POST":
            crm.faults.configure(args)
        return {"faults": crm.faults.describe()}
    if name == "faults/clear" and method == "POST":
        crm.clear_faults()
        return {"faults": crm.faults.describe()}
    if name == "clock":
        if method == "POST":
            seconds = args.get("advance_seconds", 0)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advance_seconds must be a number")
            crm.advance(seconds)
        return {"now": crm.now()}
    if name == "tokens/expire" and method == "POST":
        crm.expire_tokens(static=bool(args.get("static")), refresh=bool(args.get("refresh")))
        return {"ok": True}
    if name == "tokens/restore" and method == "POST":
        crm.restore_tokens()
        return {"ok": True}
    if name == "touch" and method == "POST":
        ids = args.get("ids")
        count = args.get("count")
        if ids is None and not isinstance(count, int):
            raise ValueError("touch needs 'count' (integer) or 'ids' (list)")
        return {"ids": crm.touch(str(args.get("module", "")), count=count, ids=ids)}
    if name == "delete" and method == "POST":
        ids = args.get("ids")
        if not isinstance(ids, list):
            raise ValueError("delete needs 'ids' (list)")
        return {"ids": crm.delete_records(str(args.get("module", "")), ids)}
    if name == "stats":
        return crm.stats()
    if name == "stats/reset" and method == "POST":
        crm.reset_stats()
        return crm.stats()
    raise ApiError(404, "NOT_FOUND", f"no control endpoint {method} /_sandbox/{name}")


def _route_template(method: str, path: str) -> str:
    """``GET /api/v1/Leads/123`` -> ``GET /api/v1/{module}/{id}`` (stats key)."""
    if path == "/oauth/token":
        return f"{method} /oauth/token"
    parts = path[len(API_PREFIX) :].strip("/").split("/")
    if parts == ["modules"]:
        return f"{method} /api/v1/modules"
    if len(parts) == 1 and parts[0]:
        return f"{method} /api/v1/{{module}}"
    if len(parts) == 2:
        tail = parts[1] if parts[1] in ("deleted", "batch", "batch-delete") else "{id}"
        return f"{method} /api/v1/{{module}}/{tail}"
    return f"{method} (unknown)"


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "INVALID_BODY", "the body must be a JSON object")
    return value


# --------------------------------------------------------------------------- the API


class _Api:
    """One ``/api/v1/*`` request, authenticated and past the fault injector."""

    def __init__(
        self,
        crm: SandboxCRM,
        handler: _Handler,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        self.crm = crm
        self.store = crm.store
        self.handler = handler
        self.method = handler.command
        self.query = query
        self.body = body

    def route(self, path: str) -> tuple[int, bytes, tuple]:
        parts = path[len(API_PREFIX) :].strip("/").split("/")
        if parts == ["modules"]:
            self._allow("GET")
            return self._modules()
        module = _MODULE_NAMES.get(parts[0].lower()) if parts[0] else None
        if module is None or len(parts) > 2:
            raise ApiError(404, "NOT_FOUND", f"no module or route {path}")
        if len(parts) == 1:
            self._allow("GET")
            return self._list(module, path, deleted=False)
        tail = parts[1]
        if tail == "deleted":
            self._allow("GET")
            return self._list(module, path, deleted=True)
        if tail == "batch":
            self._allow("POST")
            return self._batch(module)
        if tail == "batch-delete":
            self._allow("POST")
            return self._batch_delete(module)
        self._allow("GET", "PATCH", "DELETE")
        if self.method == "GET":
            return self._get(module, tail)
        if self.method == "PATCH":
            return self._patch(module, tail)
        return self._delete(module, tail)

    def _allow(self, *methods: str) -> None:
        if self.method not in methods:
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"use {' or '.join(methods)}")

    # ----------------------------------------------------------------------- reading

    def _modules(self) -> tuple[int, bytes, tuple]:
        modules = [
            {
                "name": m,
                "id_field": "id",
                "modified_field": "modified_at",
                "fields": [{"name": n, "type": t} for n, t in MODULE_FIELDS[m]],
            }
            for m in MODULES
        ]
        return 200, encode({"modules": modules}), ()

    def _list(self, module: str, path: str, deleted: bool) -> tuple[int, bytes, tuple]:
        q = self.query
        time_field = "deleted_at" if deleted else "modified_at"
        since_param = "since" if deleted else "modified_since"
        if "per_page" in q:
            size_param = "per_page"
        elif "limit" in q:
            size_param = "limit"
        else:
            size_param = ""
        limit = _int_param(q, size_param, DEFAULT_PAGE_SIZE) if size_param else DEFAULT_PAGE_SIZE
        if limit > MAX_PAGE_SIZE:
            raise ApiError(400, "LIMIT_EXCEEDED", f"{size_param} must be <= {MAX_PAGE_SIZE}")
        if limit < 1:
            raise ApiError(400, "INVALID_PARAMETER", f"{size_param} must be >= 1")
        sort = _first(q, "sort") or "id"
        if sort not in ("id", time_field):
            raise ApiError(400, "INVALID_PARAMETER", f"sort must be id or {time_field}")
        since = _parse_time(_first(q, since_param), since_param)
        after = None
        page = offset = None
        if "cursor" in q:
            style = "cursor"
            if _first(q, "cursor"):
                sort, since, after = _decode_cursor(_first(q, "cursor"), time_field)
        elif "offset" in q or (size_param == "limit" and "page" not in q):
            style = "offset"
            offset = _int_param(q, "offset", 0)
            if offset < 0:
                raise ApiError(400, "INVALID_PARAMETER", "offset must be >= 0")
            page = offset // limit + 1
        else:
            style = "page"
            page = _int_param(q, "page", 1)
            if page < 1:
                raise ApiError(400, "INVALID_PARAMETER", "page must be >= 1")
            offset = (page - 1) * limit
        store_sort = "id" if sort == "id" else "modified_at"
        rows = self.store.page(
            module,
            limit=limit,
            deleted=deleted,
            sort=store_sort,
            since=since,
            after=after,
            offset=offset or 0,
        )
        bodies = rows.bodies
        if bodies and not deleted and self.crm.faults.take_omit_id():
            self.crm.request_stats.fault("omit_id")
            k = len(bodies) // 2
            broken = json.loads(bodies[k])
            broken.pop("id", None)
            bodies = [*bodies[:k], encode(broken), *bodies[k + 1 :]]
        next_cursor = None
        next_url = None
        if rows.has_more and rows.last_key is not None:
            next_cursor = _encode_cursor(sort, since, rows.last_key)
            if style == "cursor":
                step = {"cursor": next_cursor}
            elif style == "offset":
                step = {"offset": str((offset or 0) + limit)}
            else:
                step = {"page": str((page or 1) + 1)}
            next_url = self._next_url(path, step)
        meta = {
            "total": self.store.total(module, deleted=deleted, since=since),
            "page": page,
            "per_page": limit,
            "offset": offset,
            "next_cursor": next_cursor,
        }
        self.crm.request_stats.served(len(bodies))
        body = b"".join(
            (
                b'{"data":[',
                b",".join(bodies),
                b'],"meta":',
                encode(meta),
                b',"links":',
                encode({"next": next_url}),
                b"}",
            )
        )
        headers = (("Link", f'<{next_url}>; rel="next"'),) if next_url else ()
        return 200, body, headers

    def _next_url(self, path: str, step: dict[str, str]) -> str:
        """The same request with the next page's parameter; never carries ``api_key`` (a
        client re-sends its credentials, links must not spread them)."""
        pairs = [(k, v) for k, values in self.query.items() if k not in _PAGING for v in values]
        if "cursor" in step:
            # the cursor carries sort and filter; repeating them could only contradict it
            pairs = [(k, v) for k, v in pairs if k not in ("sort", "modified_since", "since")]
        pairs.extend(step.items())
        host = self.handler.headers.get("Host") or self.crm.base_url.removeprefix("http://")
        return f"http://{host}{path}?{urlencode(pairs)}"

    def _get(self, module: str, rid: str) -> tuple[int, bytes, tuple]:
        i = _int_id(rid)
        body = self.store.get_body(module, i) if i is not None else None
        if body is None:
            raise ApiError(404, "NOT_FOUND", f"{module} {rid} not found")
        return 200, b'{"data":' + body + b"}", ()

    # ----------------------------------------------------------------------- writing

    def _write(self, module: str, rid: object, fields: Mapping[str, Any]) -> tuple[dict, str]:
        """Write one record: (record, "") on success, (None, error code) otherwise."""
        i = _int_id(rid)
        if i is None or self.store.get_body(module, i) is None:
            return {}, "NOT_FOUND"
        if "status" in fields and fields["status"] not in STATUSES:
            return {}, "INVALID_STATUS"
        if self.crm.faults.rejects(str(i)):
            return {}, "WRITE_REJECTED"
        changes = {k: v for k, v in fields.items() if k not in _RESERVED}
        record = self.store.update(module, i, changes, self.crm.clock.iso())
        if record is None:  # deleted meanwhile
            return {}, "NOT_FOUND"
        self.crm.request_stats.wrote(module, str(i))
        return record, ""

    def _patch(self, module: str, rid: str) -> tuple[int, bytes, tuple]:
        record, error = self._write(module, rid, _json_object(self.body))
        if error:
            status = {"NOT_FOUND": 404, "INVALID_STATUS": 400, "WRITE_REJECTED": 422}[error]
            raise ApiError(status, error, f"{module} {rid}: {error}")
        return 200, encode({"data": record}), ()

    def _batch(self, module: str) -> tuple[int, bytes, tuple]:
        items = self._batch_items("records")
        results = []
        for item in items:
            if not isinstance(item, dict) or "id" not in item:
                rid = item.get("id") if isinstance(item, dict) else None
                results.append({"id": rid, "ok": False, "error": "INVALID_RECORD"})
                continue
            record, error = self._write(module, item["id"], item)
            if error:
                results.append({"id": str(item["id"]), "ok": False, "error": error})
            else:
                results.append(
                    {"id": record["id"], "ok": True, "modified_at": record["modified_at"]}
                )
        return 200, encode({"results": results}), ()

    def _delete_one(self, module: str, rid: object) -> str:
        i = _int_id(rid)
        if i is None or self.store.get_body(module, i) is None:
            return "NOT_FOUND"
        if self.crm.faults.rejects(str(i)):
            return "WRITE_REJECTED"
        if not self.store.delete(module, i, self.crm.clock.iso()):
            return "NOT_FOUND"
        self.crm.request_stats.wrote(module, str(i))
        return ""

    def _delete(self, module: str, rid: str) -> tuple[int, bytes, tuple]:
        error = self._delete_one(module, rid)
        if error:
            status = 404 if error == "NOT_FOUND" else 422
            raise ApiError(status, error, f"{module} {rid}: {error}")
        return 204, b"", ()

    def _batch_delete(self, module: str) -> tuple[int, bytes, tuple]:
        results = []
        for rid in self._batch_items("ids"):
            error = self._delete_one(module, rid)
            if error:
                results.append({"id": str(rid), "ok": False, "error": error})
            else:
                results.append({"id": str(rid), "ok": True})
        return 200, encode({"results": results}), ()

    def _batch_items(self, key: str) -> list[Any]:
        items = _json_object(self.body).get(key)
        if not isinstance(items, list):
            raise ApiError(400, "INVALID_BODY", f"the body must be {{{key!r}: [...]}}")
        self.crm.request_stats.batch(len(items))
        if len(items) > MAX_BATCH:
            raise ApiError(400, "LIMIT_EXCEEDED", f"at most {MAX_BATCH} per batch")
        return items


# --------------------------------------------------------------------------- params


def _first(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    value = _first(query, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be an integer") from None


def _parse_time(value: str | None, name: str) -> str | None:
    """An ISO-8601 instant -> the stored format (UTC, whole seconds, rounded up so the
    inclusive filter never returns a record older than asked)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be ISO-8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    seconds = int(when.timestamp()) + (1 if when.microsecond else 0)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_cursor(sort: str, since: str | None, key: tuple[str, int]) -> str:
    raw = json.dumps([sort, since, key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, time_field: str) -> tuple[str, str | None, tuple[str, int]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort, since, ts, rid = json.loads(raw)
        if sort not in ("id", time_field) or not isinstance(ts, str) or not isinstance(rid, int):
            raise ValueError(cursor)
        if since is not None and not isinstance(since, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(400, "INVALID_CURSOR", "cursor is not one this server issued") from None
    return sort, since, (ts, rid)


__all__ = ["FAULT_KEYS", "ApiError", "SandboxCRM", "Stats"]
