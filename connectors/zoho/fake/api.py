"""The ``/crm/v8/`` API of the fake Zoho server: metadata, records (read, update, delete),
tags and the deleted-records listing. One :class:`Request` per HTTP request, already past
authentication, faults and limits (see server.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from crmsync_connectors.zoho.fake import schema as sc
from crmsync_connectors.zoho.fake.bulk import BULK_PREFIX, BULK_SCOPES, BulkRequest
from crmsync_connectors.zoho.fake.data import parse_time
from crmsync_connectors.zoho.fake.faults import error

if TYPE_CHECKING:
    from crmsync_connectors.zoho.fake.server import FakeZoho

API_PREFIX = "/crm/v8/"
MAX_FIELDS = 50
MAX_PER_PAGE = 200
DISCRETE_LIMIT = 2000
TOKEN_LIMIT = 100_000
MAX_WRITE = 100
MAX_TAGS = 10
TOKEN_TTL = 86400
SORTS = ("id", "Created_Time", "Modified_Time")
TRIGGERS = ("workflow", "approval", "blueprint", "pathfinder", "orchestration")


class ApiError(Exception):
    """An error answer in Zoho's envelope."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.payload = error(code, message, details)


def missing_param(name: str) -> ApiError:
    """Zoho's 400 for a required parameter that is absent."""
    return ApiError(
        400,
        "REQUIRED_PARAM_MISSING",
        "One of the expected parameter is missing",
        {"param_name": name},
    )


def limit_exceeded(name: str, limit: int) -> ApiError:
    """Zoho's 400 for a parameter over its documented limit."""
    return ApiError(
        400,
        "LIMIT_EXCEEDED",
        f"the permitted limit for {name} has exceeded",
        {"limit": limit, "param_name": name},
    )


def invalid_module() -> ApiError:
    return ApiError(400, "INVALID_MODULE", "the module name given seems to be invalid")


def _param_error(name: str, message: str = "invalid data") -> ApiError:
    return ApiError(400, "INVALID_DATA", message, {"param_name": name})


@dataclass(frozen=True)
class Route:
    """What a request is: its stats key, kind and the scopes any one of which allows it."""

    key: str
    kind: str  # record | metadata | deleted | write | bulk
    module: str | None
    scopes: tuple[str, ...]


def module_scopes(module: str, op: str) -> tuple[str, ...]:
    ops = (op, "WRITE", "ALL") if op in ("CREATE", "UPDATE", "DELETE") else (op, "ALL")
    return tuple(f"ZohoCRM.modules.{o}" for o in ops) + tuple(
        f"ZohoCRM.modules.{module}.{o}" for o in ops
    )


def classify(method: str, path: str) -> Route:
    """Route a ``/crm/v8/...`` or ``/crm/bulk/v8/read...`` request (raises ApiError for
    unknown URLs and modules)."""
    if path.rstrip("/") == BULK_PREFIX or path.startswith(BULK_PREFIX + "/"):
        tail = (
            "/{id}/result"
            if path.rstrip("/").endswith("/result")
            else ("/{id}" if path.rstrip("/") != BULK_PREFIX else "")
        )
        return Route(f"{method} {BULK_PREFIX}{tail}", "bulk", None, BULK_SCOPES)
    if not path.startswith(API_PREFIX):
        raise ApiError(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )
    parts = path[len(API_PREFIX) :].strip("/").split("/")
    if parts[0] == "settings" and len(parts) == 2 and parts[1] in ("modules", "fields"):
        what = parts[1]
        scopes = (
            "ZohoCRM.settings.ALL",
            "ZohoCRM.settings.READ",
            f"ZohoCRM.settings.{what}.ALL",
            f"ZohoCRM.settings.{what}.READ",
        )
        return Route(f"{method} /crm/v8/settings/{what}", "metadata", None, scopes)
    if not parts[0] or parts[0] == "settings":
        raise ApiError(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )
    module = sc.MODULES.get(parts[0])
    if module is None:
        module = next(
            (m for m in sc.MODULES.values() if m.api_name.lower() == parts[0].lower()), None
        )
    if module is None:
        raise invalid_module()
    name = module.api_name
    tail = "/".join(parts[1:])
    if tail == "":
        op = {"GET": "READ", "PUT": "UPDATE", "DELETE": "DELETE"}.get(method, "")
        kind = "record" if method == "GET" else "write"
        key = f"{method} /crm/v8/{{module}}"
    elif tail == "deleted":
        op, kind, key = "READ", "deleted", f"{method} /crm/v8/{{module}}/deleted"
    elif tail == "actions/count" and method == "GET":
        op, kind, key = "READ", "count", "GET /crm/v8/{module}/actions/count"
    elif tail in ("actions/add_tags", "actions/remove_tags"):
        op, kind, key = "UPDATE", "write", f"{method} /crm/v8/{{module}}/{tail}"
    elif len(parts) == 2 and parts[1].isdigit():
        op = {"GET": "READ", "DELETE": "DELETE"}.get(method, "")
        kind = "record" if method == "GET" else "write"
        key = f"{method} /crm/v8/{{module}}/{{id}}"
    else:
        raise ApiError(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )
    if not op:
        raise ApiError(
            405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
        )
    if kind == "write" and "actions" in tail and method != "POST":
        raise ApiError(
            405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
        )
    if kind == "deleted" and method != "GET":
        raise ApiError(
            405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
        )
    return Route(key, kind, name, module_scopes(name, op))


class PageTokens:
    """Server-side page tokens: each names a position in one query (module, sort,
    If-Modified-Since). Replaying a token gives the same page (field groups can share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, dict[str, Any]] = {}

    def issue(self, state: dict[str, Any], now: float) -> tuple[str, float]:
        raw = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
        token = hashlib.sha256(raw).hexdigest()[:48]
        with self._lock:
            entry = self._tokens.setdefault(token, {**state, "expires": now + TOKEN_TTL})
        return token, entry["expires"]

    def get(self, token: str, now: float) -> dict[str, Any]:
        with self._lock:
            state = self._tokens.get(token)
        if state is None or state["expires"] <= now:
            raise _param_error("page_token", "the page token is invalid or has expired")
        return state


class Request:
    def __init__(
        self,
        fake: FakeZoho,
        route: Route,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        self.fake = fake
        self.route = route
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def int_param(self, name: str, default: int, lo: int, hi: int | None = None) -> int:
        text = self.param(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise _param_error(name) from None
        if value < lo or (hi is not None and value > hi):
            raise _param_error(name)
        return value

    def json_body(self) -> dict[str, Any]:
        try:
            value = orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError:
            raise ApiError(400, "INVALID_DATA", "body is not a valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "INVALID_DATA", "body is not a valid JSON object")
        return value

    # ----------------------------------------------------------------------- dispatch

    def handle(self) -> tuple[int, Any]:
        r = self.route
        if r.kind == "bulk":
            return BulkRequest(self.fake, self.method, self.path, self.body).handle()
        if r.kind == "metadata":
            return self.settings()
        assert r.module is not None
        if r.key.endswith("/deleted"):
            return self.deleted(r.module)
        if r.kind == "count":
            return 200, {"count": self.fake.store.count(r.module)}
        if r.key.endswith("/add_tags"):
            return self.tags(r.module, add=True)
        if r.key.endswith("/remove_tags"):
            return self.tags(r.module, add=False)
        if r.key.endswith("{id}"):
            rid = self.path.rstrip("/").rsplit("/", 1)[1]
            if self.method == "GET":
                return self.get_one(r.module, rid)
            return self.delete(r.module, [rid], single=True)
        if self.method == "GET":
            return self.list(r.module)
        if self.method == "PUT":
            return self.update(r.module)
        ids = self.param("ids")
        if not ids:
            raise missing_param("ids")
        return self.delete(r.module, [i for i in ids.split(",") if i])

    # ----------------------------------------------------------------------- metadata

    def settings(self) -> tuple[int, Any]:
        if self.route.key.endswith("modules"):
            return 200, {"modules": sc.module_metadata()}
        module = self.param("module")
        if not module:
            raise missing_param("module")
        if module not in sc.MODULES:
            raise invalid_module()
        return 200, {"fields": sc.field_metadata(module)}

    # ----------------------------------------------------------------------- reading

    def _fields(self, module: str, required: bool = True) -> list[str] | None:
        text = self.param("fields")
        if text is None or not text.strip():
            if not required:
                return None
            raise missing_param("fields")
        names = [n.strip() for n in text.split(",") if n.strip()]
        if len(names) > MAX_FIELDS:
            raise limit_exceeded("fields", MAX_FIELDS)
        known = sc.MODULES[module].by_name
        for name in names:
            if name != "id" and name not in known:
                raise ApiError(
                    400, "INVALID_DATA", "invalid data", {"param_name": "fields", "api_name": name}
                )
        return names

    def _since(self, module: str) -> int | None:
        value = self.headers.get("If-Modified-Since")
        if not value or not sc.MODULES[module].has_modified_time:
            return None  # documented: ignored where there is no Modified_Time
        try:
            return parse_time(value)
        except ValueError:
            raise ApiError(
                400, "INVALID_DATA", "invalid data", {"header_name": "If-Modified-Since"}
            ) from None

    def list(self, module: str) -> tuple[int, Any]:
        fields = self._fields(module)
        assert fields is not None
        fake = self.fake
        now = fake.clock.timestamp()
        per_page = self.int_param("per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        sort_by = self.param("sort_by") or "id"
        if sort_by not in SORTS:
            raise _param_error("sort_by")
        if sort_by == "Modified_Time" and not sc.MODULES[module].has_modified_time:
            raise _param_error("sort_by")
        sort_order = self.param("sort_order") or "desc"
        if sort_order not in ("asc", "desc"):
            raise _param_error("sort_order")
        since = self._since(module)
        ids = None
        if self.param("ids"):
            try:
                ids = [int(i) for i in (self.param("ids") or "").split(",") if i][:MAX_PER_PAGE]
            except ValueError:
                raise _param_error("ids") from None
        token = self.param("page_token")
        after = None
        if token:
            state = fake.page_tokens.get(token, now)
            if (
                state["module"] != module
                or ("sort_by" in self.query and sort_by != state["sort_by"])
                or ("sort_order" in self.query and sort_order != state["sort_order"])
                or (since is not None and since != state["since"])
            ):
                raise _param_error("page_token", "the page token does not belong to this query")
            sort_by, sort_order, since = state["sort_by"], state["sort_order"], state["since"]
            position = state["position"]
            if position >= TOKEN_LIMIT:
                raise ApiError(
                    400,
                    "PAGINATION_LIMIT_EXCEEDED",
                    "You can only get upto 100000 records using page_token param",
                    {"limit": TOKEN_LIMIT},
                )
            after = tuple(state["after"])
            limit = min(per_page, TOKEN_LIMIT - position)
            page = position // per_page + 1
            offset = 0
        else:
            page = self.int_param("page", 1, 1)
            offset = (page - 1) * per_page
            if offset >= DISCRETE_LIMIT:
                raise ApiError(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "You can only get the first 2000 records without using page_token param",
                    {"limit": DISCRETE_LIMIT},
                )
            position = offset
            limit = min(per_page, DISCRETE_LIMIT - offset)
        rows = fake.store.page(
            module,
            sort_by=sort_by,
            desc=sort_order == "desc",
            limit=limit + 1,
            since=since,
            offset=offset,
            after=after,  # type: ignore[arg-type]
            ids=ids,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        if not rows:
            if since is not None:
                return fake.not_modified_status, None
            return 204, None
        data = []
        for _key, _rid, body in rows:
            record = orjson.loads(body)
            out = {"id": record["id"]}
            for name in fields:
                if name != "id":
                    out[name] = record.get(name)
            data.append(out)
        fake.stats_.served(len(data))
        next_token = None
        expiry = None
        if more and ids is None:
            last = rows[-1]
            state = {
                "module": module,
                "sort_by": sort_by,
                "sort_order": sort_order,
                "since": since,
                "position": position + len(rows),
                "after": [last[0], last[1]],
            }
            next_token, exp = fake.page_tokens.issue(state, now)
            expiry = fake.timefmt.fmt(int(exp))
        info = {
            "call": False,
            "per_page": per_page,
            "next_page_token": next_token,
            "count": len(data),
            "sort_by": sort_by,
            "page": page,
            "previous_page_token": None,
            "page_token_expiry": expiry,
            "sort_order": sort_order,
            "email": False,
            "more_records": more,
        }
        return 200, {"data": data, "info": info}

    def get_one(self, module: str, rid: str) -> tuple[int, Any]:
        fields = self._fields(module, required=False)
        record = self.fake.store.get(module, int(rid))
        if record is None:
            return 204, None
        if fields is not None:
            record = {"id": record["id"], **{n: record.get(n) for n in fields if n != "id"}}
        return 200, {"data": [record]}

    def deleted(self, module: str) -> tuple[int, Any]:
        kind = self.param("type") or "all"
        if kind not in ("all", "recycle", "permanent"):
            raise _param_error("type")
        per_page = self.int_param("per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        page = self.int_param("page", 1, 1)
        value = self.headers.get("If-Modified-Since")
        since = None
        if value:
            try:
                since = parse_time(value)
            except ValueError:
                raise ApiError(
                    400, "INVALID_DATA", "invalid data", {"header_name": "If-Modified-Since"}
                ) from None
        items = self.fake.store.deleted_page(
            module, kind=kind, since=since, limit=per_page + 1, offset=(page - 1) * per_page
        )
        more = len(items) > per_page
        items = items[:per_page]
        if not items:
            return 204, None
        data = [orjson.loads(i) for i in items]
        info = {"per_page": per_page, "count": len(data), "page": page, "more_records": more}
        return 200, {"data": data, "info": info}

    # ----------------------------------------------------------------------- writing

    def update(self, module: str) -> tuple[int, Any]:
        body = self.json_body()
        items = body.get("data")
        if not isinstance(items, list) or not items:
            raise missing_param("data")
        self.fake.stats_.batch(len(items))
        if len(items) > MAX_WRITE:
            raise limit_exceeded("data", MAX_WRITE)
        trigger = body.get("trigger")
        if trigger is not None and (
            not isinstance(trigger, list) or any(t not in TRIGGERS for t in trigger)
        ):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param_name": "trigger"})
        self.fake.stats_.triggered(trigger)
        results = [self.fake.apply_update(module, i, item) for i, item in enumerate(items)]
        return _multi_status(results), {"data": results}

    def delete(self, module: str, ids: list[str], single: bool = False) -> tuple[int, Any]:
        self.fake.stats_.batch(len(ids))
        if len(ids) > MAX_WRITE:
            raise limit_exceeded("ids", MAX_WRITE)
        results = [self.fake.apply_delete(module, rid) for rid in ids]
        return _multi_status(results), {"data": results}

    def tags(self, module: str, add: bool) -> tuple[int, Any]:
        body = self.json_body() if self.body else {}
        tags = body.get("tags")
        if tags is None and self.param("tag_names"):  # the v2 query-string form
            tags = [{"name": n} for n in (self.param("tag_names") or "").split(",") if n]
        ids = body.get("ids")
        if ids is None and self.param("ids"):
            ids = [i for i in (self.param("ids") or "").split(",") if i]
        if not isinstance(tags, list) or not tags:
            raise missing_param("tags")
        if not isinstance(ids, list) or not ids:
            raise missing_param("ids")
        if len(tags) > MAX_TAGS:
            raise limit_exceeded("tags", MAX_TAGS)
        self.fake.stats_.batch(len(ids))
        if len(ids) > MAX_WRITE:
            raise limit_exceeded("ids", MAX_WRITE)
        names = []
        for tag in tags:
            name = tag.get("name") if isinstance(tag, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "name"})
            names.append(name.strip())
        over_write = bool(body.get("over_write", False)) if add else False
        results = [self.fake.apply_tags(module, str(rid), names, add, over_write) for rid in ids]
        return _multi_status(results), {"data": results}


def _multi_status(results: list[dict[str, Any]]) -> int:
    ok = sum(1 for r in results if r["status"] == "success")
    if ok == len(results):
        return 200
    return 207 if ok else 400
