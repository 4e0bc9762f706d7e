"""The fake Zoho server: two stdlib ThreadingHTTPServers (the accounts host and the API host)
around one :class:`FakeZoho` state. See the package docstring for the Python and HTTP API.
"""

from __future__ import annotations

import random
import sys
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from crmsync.sandbox.clock import SandboxClock
from crmsync.testing.local_server import LocalHandler, LocalHTTPServer, RequestStats
from crmsync_connectors.zoho.fake import schema as sc
from crmsync_connectors.zoho.fake.api import (
    API_PREFIX,
    ApiError,
    PageTokens,
    Request,
    Route,
    classify,
)
from crmsync_connectors.zoho.fake.bulk import BulkState, Raw, job_cost
from crmsync_connectors.zoho.fake.data import DEFAULT_CLOCK_START, DEFAULT_TZ, TimeFormat, generate
from crmsync_connectors.zoho.fake.faults import CONCURRENCY, Credits, Faults, error
from crmsync_connectors.zoho.fake.oauth import DEFAULT_SCOPES, OAuth, scope_covers
from crmsync_connectors.zoho.fake.store import Store

CREDITS_HEADER = "X-API-CREDITS-REMAINING"
_MAX_BODY = 16 * 1024 * 1024


# --------------------------------------------------------------------------- stats


class Stats(RequestStats):
    """What clients did (:class:`~crmsync.testing.local_server.RequestStats`), plus Zoho's
    own: calls by kind, token requests (not API calls in flight), workflow triggers."""

    untracked_kinds = frozenset({"oauth"})

    def _clear(self) -> None:
        super()._clear()
        self.triggers: Counter[str] = Counter()

    def triggered(self, trigger: list[str] | None) -> None:
        with self._lock:
            self.triggers["<default>" if trigger is None else ",".join(trigger) or "[]"] += 1

    def _snapshot(self) -> dict[str, Any]:
        return {
            **super()._snapshot(),
            "record_calls": self.by_kind.get("record", 0),
            "metadata_calls": self.by_kind.get("metadata", 0),
            "write_calls": self.by_kind.get("write", 0),
            "deleted_calls": self.by_kind.get("deleted", 0),
            "bulk_calls": self.by_kind.get("bulk", 0),
            "token_requests": self.by_kind.get("oauth", 0),
            "triggers": dict(self.triggers),
        }


class FakeZoho:
    """A seeded, fault-injectable fake Zoho CRM org served over real HTTP (see the package
    docstring)."""

    def __init__(
        self,
        records: int | Mapping[str, int] = 500,
        seed: int = 42,
        *,
        client_id: str = "1000.FAKEZOHOCLIENTID",
        client_secret: str = "fake-zoho-client-secret",
        refresh_token: str = "1000.fake-zoho-refresh-token",
        scopes: str | Iterable[str] = DEFAULT_SCOPES,
        daily_credits: int | None = None,
        credits_header: str = "half",
        edition: str = "enterprise",
        concurrency: int | None = None,
        token_ttl: int = 3600,
        token_throttle_status: int = 400,
        not_modified_status: int = 304,
        clock_start: datetime | None = None,
        tz_offset: str = DEFAULT_TZ,
        db_path: str | None = None,
        verbose: bool = False,
        bulk_page_size: int = 200_000,
        bulk_job_polls: int = 1,
        bulk_job_seconds: float = 30.0,
        bulk_downloads_per_minute: int = 10,
        bulk_job_credits: int = 50,
    ) -> None:
        if isinstance(records, int):
            sizes = dict.fromkeys(sc.MODULE_NAMES, records)
        else:
            sizes = dict(records)
        unknown = set(sizes) - set(sc.MODULE_NAMES)
        if unknown:
            raise ValueError(f"unknown modules {sorted(unknown)}; modules: {sc.MODULE_NAMES}")
        if edition not in CONCURRENCY:
            raise ValueError(f"edition must be one of {sorted(CONCURRENCY)}")
        if credits_header not in ("half", "always", "never"):
            raise ValueError("credits_header must be half, always or never")
        if not_modified_status not in (204, 304):
            raise ValueError("not_modified_status must be 204 or 304")
        self.seed = seed
        self.verbose = verbose
        self.sizes = {m: int(sizes.get(m, 0)) for m in sc.MODULE_NAMES}
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.scopes = tuple(scopes.split(",")) if isinstance(scopes, str) else tuple(scopes)
        self.edition = edition
        self.concurrency = concurrency if concurrency is not None else CONCURRENCY[edition]
        self.not_modified_status = not_modified_status
        self.credits_header = credits_header
        self.clock = SandboxClock(clock_start or DEFAULT_CLOCK_START)
        self.timefmt = TimeFormat(tz_offset)
        self.oauth = OAuth(
            self.clock.timestamp,
            client_id,
            client_secret,
            refresh_token,
            self.scopes,
            token_ttl=token_ttl,
            throttle_status=token_throttle_status,
            seed=seed,
        )
        self.credits = Credits(daily_credits)
        self.faults = Faults(seed)
        self.stats_ = Stats()
        self.page_tokens = PageTokens()
        self.bulk = BulkState(
            page_size=bulk_page_size,
            job_polls=bulk_job_polls,
            job_seconds=bulk_job_seconds,
            downloads_per_minute=bulk_downloads_per_minute,
            job_credits=bulk_job_credits,
        )
        self.store = Store(db_path)
        try:
            for module, n in self.sizes.items():
                if n:
                    self.store.load(
                        module, generate(module, n, seed, self.clock.start, self.timefmt)
                    )
        except BaseException:
            self.store.close()
            raise
        self._touch_rng = random.Random(f"crmsync-fake-zoho-touch/{seed}")
        self._servers: dict[str, _Server] = {}
        self._closed = False

    # ----------------------------------------------------------------------- lifecycle

    def start(self, host: str = "127.0.0.1") -> None:
        """Serve both hosts in background threads (ports chosen by the OS)."""
        if self._closed:
            raise RuntimeError("this FakeZoho is closed")
        if self._servers:
            return
        for role in ("accounts", "api"):
            server = _Server((host, 0), _Handler)
            server.fake = self
            server.role = role
            self._servers[role] = server
            server.serve_in_background(f"fake-zoho-{role}")

    def stop(self) -> None:
        """Stop serving: close listening sockets and open connections, join threads."""
        servers, self._servers = self._servers, {}
        for server in servers.values():
            server.stop_serving()

    def close(self) -> None:
        """Stop, and free the storage."""
        self.stop()
        if not self._closed:
            self._closed = True
            self.store.close()

    def __enter__(self) -> FakeZoho:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _url(self, role: str) -> str:
        server = self._servers.get(role)
        if server is None:
            raise RuntimeError("the fake Zoho server is not running: call start()")
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def accounts_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the accounts host (``/oauth/v2/token``)."""
        return self._url("accounts")

    @property
    def api_domain(self) -> str:
        """``http://127.0.0.1:PORT`` of the API host; the token answer's ``api_domain``."""
        return self._url("api")

    @property
    def api_url(self) -> str:
        """``{api_domain}/crm/v8/``."""
        return self.api_domain + API_PREFIX

    # ----------------------------------------------------------------------- tokens

    def access_token(self, refresh_token: str | None = None) -> str:
        """A fresh access token for ``refresh_token`` (default: :attr:`refresh_token`), issued
        without HTTP and not counted against the 10-per-10-minutes limit."""
        return self.oauth.mint(refresh_token or self.refresh_token)

    def grant_code(self, scopes: str | Iterable[str] | None = None, ttl: float = 180) -> str:
        """A single-use grant code (self-client flow) for ``scopes`` (default: the fake's)."""
        return self.oauth.grant_code(self.scopes if scopes is None else scopes, ttl)

    def add_refresh_token(self, scopes: str | Iterable[str], token: str | None = None) -> str:
        """Register another refresh token with other scopes (e.g. to provoke
        OAUTH_SCOPE_MISMATCH); returns it."""
        return self.oauth.add_refresh_token(token, scopes)

    def revoke_refresh_token(self, token: str | None = None) -> None:
        """Revoke a refresh token (default: :attr:`refresh_token`) and its access tokens."""
        self.oauth.revoke(token or self.refresh_token)

    def expire_tokens(self) -> None:
        """Invalidate every access token now (refresh tokens stay valid)."""
        self.oauth.expire_all()

    # ----------------------------------------------------------------------- control

    def set_faults(self, **faults: Any) -> None:
        """Replace the fault set (keys in faults.py's docstring); ValueError if malformed."""
        self.faults.configure(faults)

    def clear_faults(self) -> None:
        self.faults.configure({})

    def advance(self, seconds: float) -> str:
        """Move the fake clock forward; returns the new now (org time, ISO 8601)."""
        self.clock.advance(seconds)
        return self.now()

    def now(self) -> str:
        return self.timefmt.fmt(int(self.clock.timestamp()))

    def touch(
        self, module: str, count: int | None = None, ids: Iterable[str] | None = None
    ) -> list[str]:
        """Modify records as a CRM user would: Modified_Time = now (Description changes too),
        no write counted. ``ids``, or ``count`` live records picked at random (seeded).
        Returns the ids touched, ascending."""
        module = self._module(module)
        if ids is not None:
            wanted = sorted({int(i) for i in ids if str(i).isdigit()})
        elif count is not None:
            live = self.store.ids(module)
            wanted = sorted(self._touch_rng.sample(live, min(count, len(live))))
        else:
            raise ValueError("touch needs count or ids")
        done = []
        now = int(self.clock.timestamp())
        with self.store.lock:
            for rid in wanted:
                record = self.store.get(module, rid)
                if record is None:
                    continue
                if "Description" in record:
                    record["Description"] = f"edited {self.timefmt.fmt(now)}"
                self._stamp(module, record, now, by=record.get("Owner"))
                done.append(str(rid))
        return done

    def edit(self, module: str, record_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields of a record as a CRM user would (no validation, no write counted);
        Modified_Time = now. Returns the record."""
        module = self._module(module)
        with self.store.lock:
            record = self.store.get(module, int(record_id))
            if record is None:
                raise KeyError(f"{module} {record_id} is not live")
            record.update(fields)
            self._stamp(module, record, int(self.clock.timestamp()), by=record.get("Owner"))
        return record

    def delete(self, module: str, ids: Iterable[str]) -> list[str]:
        """Delete records as a CRM user would (to the recycle bin; no write counted)."""
        module = self._module(module)
        return [str(rid) for rid in ids if self._delete(module, str(rid), by=sc.USERS[1])]

    def empty_recycle_bin(self, module: str | None = None) -> int:
        """Make recycle-bin entries permanent (``type`` "permanent", ``deleted_by``,
        ``display_name`` and ``created_by`` null); returns how many."""

        def permanent(item: dict[str, Any]) -> dict[str, Any]:
            return {
                **item,
                "deleted_by": None,
                "display_name": None,
                "created_by": None,
                "type": "permanent",
            }

        return self.store.empty_recycle_bin(self._module(module) if module else None, permanent)

    def stats(self) -> dict[str, Any]:
        """Counters: requests, by_route, by_kind, record_calls, metadata_calls, write_calls,
        deleted_calls, token_requests, by_status, writes ({"Leads/<id>": n}), triggers,
        in_flight, max_in_flight, max_batch, records_served, tokens_issued,
        tokens_issued_by_refresh_token, token_requests_throttled, credits_used (total),
        credits_remaining (window; None = unlimited), now."""
        snap = self.stats_.snapshot()
        snap.update(self.oauth.stats())
        now = self.clock.timestamp()
        snap["credits_used"] = self.credits.total
        snap["credits_remaining"] = self.credits.remaining(now)
        snap["now"] = self.now()
        return snap

    def fail_bulk_jobs(self, count: int = 1) -> None:
        """The next ``count`` Bulk Read jobs end in state FAILURE."""
        with self.bulk.lock:
            self.bulk.fail_next = count

    def bulk_jobs(self) -> list[dict[str, Any]]:
        """Bulk Read jobs so far: id, module, page, state, polls."""
        with self.bulk.lock:
            return [
                {"id": j.id, "module": j.module, "page": j.page, "state": j.state,
                 "polls": j.polls}
                for j in self.bulk.jobs.values()
            ]  # fmt: skip

    def reset_stats(self) -> None:
        """Zero the request counters (not tokens or credits)."""
        self.stats_.reset()

    def write_count(self, module: str, record_id: str) -> int:
        """Successful API writes (update, tag change, delete) to one record."""
        return self.stats_.write_count(self._module(module), str(record_id))

    # ----------------------------------------------------------------------- inspection

    def record(self, module: str, record_id: str) -> dict[str, Any] | None:
        """The full live record (every field), or None."""
        rid = str(record_id)
        return self.store.get(self._module(module), int(rid)) if rid.isdigit() else None

    def ids(self, module: str) -> list[str]:
        """Live ids, ascending (numerically; all are 19 digits, so also as strings)."""
        return [str(i) for i in self.store.ids(self._module(module))]

    def deleted_ids(self, module: str) -> list[str]:
        return [str(i) for i in self.store.deleted_ids(self._module(module))]

    def count(self, module: str) -> int:
        """Live records of ``module``."""
        return self.store.count(self._module(module))

    def modules(self) -> tuple[str, ...]:
        return sc.MODULE_NAMES

    def field_names(self, module: str) -> list[str]:
        return [f.api_name for f in sc.MODULES[self._module(module)].fields]

    def _module(self, name: str) -> str:
        for m in sc.MODULE_NAMES:
            if m.lower() == str(name).lower():
                return m
        raise ValueError(f"unknown module {name!r}; modules: {', '.join(sc.MODULE_NAMES)}")

    # ----------------------------------------------------------------------- writes

    def _stamp(self, module: str, record: dict[str, Any], now: int, by: Any) -> None:
        has_mt = sc.MODULES[module].has_modified_time
        if has_mt:
            record["Modified_Time"] = self.timefmt.fmt(now)
            if isinstance(by, dict):
                record["Modified_By"] = {"name": by.get("name"), "id": by.get("id")}
        self.store.put(module, record, now if has_mt else None)

    def _delete(self, module: str, rid: str, by: Mapping[str, Any]) -> bool:
        if not rid.isdigit():
            return False
        with self.store.lock:
            record = self.store.get(module, int(rid))
            if record is None:
                return False
            now = int(self.clock.timestamp())
            item = {
                "deleted_by": {"name": by["name"], "id": by["id"]},
                "id": record["id"],
                "display_name": record.get(sc.MODULES[module].name_field),
                "type": "recycle",
                "created_by": record.get("Created_By"),
                "deleted_time": self.timefmt.fmt(now),
            }
            return self.store.delete(module, int(rid), item, now)

    def apply_update(self, module: str, index: int, item: Any) -> dict[str, Any]:
        """One ``PUT`` item -> its result entry."""
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            return _item_error("INVALID_DATA", "invalid data", {"json_path": path})
        rid = str(item.get("id") or "")
        if not rid:
            return _item_error(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": "id", "json_path": f"{path}.id"},
            )
        mod = sc.MODULES[module]
        with self.store.lock:
            record = self.store.get(module, int(rid)) if rid.isdigit() else None
            if record is None:
                return _item_error(
                    "INVALID_DATA",
                    "the id given seems to be invalid",
                    {"api_name": "id", "json_path": f"{path}.id"},
                )
            rejected = self.faults.rejection(rid)
            if rejected:
                return _item_error(rejected, "the record cannot be updated", {"id": rid})
            changes: dict[str, Any] = {}
            for name, value in item.items():
                if name == "id" or name.startswith("$"):
                    continue
                field = mod.by_name.get(name)
                if field is None:
                    return _item_error(
                        "INVALID_DATA",
                        "invalid data",
                        {"api_name": name, "json_path": f"{path}.{name}"},
                    )
                if field.read_only:
                    continue  # Zoho ignores system fields in an update
                problem = _validate(field, value)
                if problem:
                    message = (
                        "required field not found"
                        if problem == "MANDATORY_NOT_FOUND"
                        else "invalid data"
                    )
                    return _item_error(
                        problem, message, {"api_name": name, "json_path": f"{path}.{name}"}
                    )
                changes[name] = value
            record.update(changes)
            now = int(self.clock.timestamp())
            self._stamp(module, record, now, by=sc.API_USER)
        self.stats_.wrote(module, rid)
        details = {
            "Modified_Time": record.get("Modified_Time") or self.timefmt.fmt(now),
            "Modified_By": {"name": sc.API_USER["name"], "id": sc.API_USER["id"]},
            "Created_Time": record.get("Created_Time"),
            "id": rid,
            "Created_By": record.get("Created_By"),
            "$approval_state": "approved",
        }
        return {
            "code": "SUCCESS",
            "details": details,
            "message": "record updated",
            "status": "success",
        }

    def apply_delete(self, module: str, rid: str) -> dict[str, Any]:
        rejected = self.faults.rejection(rid)
        if rejected and rid.isdigit() and self.store.get(module, int(rid)) is not None:
            return _item_error(rejected, "the record cannot be deleted", {"id": rid})
        if not self._delete(module, rid, by=sc.API_USER):
            return _item_error("INVALID_DATA", "the id given seems to be invalid", {"id": rid})
        self.stats_.wrote(module, rid)
        return {
            "code": "SUCCESS",
            "details": {"id": rid},
            "message": "record deleted",
            "status": "success",
        }

    def apply_tags(
        self, module: str, rid: str, names: list[str], add: bool, over_write: bool
    ) -> dict[str, Any]:
        if not sc.MODULES[module].has_modified_time:
            return _item_error("INVALID_DATA", "tags are not supported in this module", {"id": rid})
        with self.store.lock:
            record = self.store.get(module, int(rid)) if rid.isdigit() else None
            if record is None:
                return _item_error("INVALID_DATA", "the id given seems to be invalid", {"id": rid})
            rejected = self.faults.rejection(rid)
            if rejected:
                return _item_error(rejected, "the record cannot be updated", {"id": rid})
            tags = [] if over_write else list(record.get("Tag") or [])
            have = {t["name"].lower() for t in tags}
            if add:
                for name in names:
                    if name.lower() not in have:
                        tags.append({"name": name, "id": _tag_id(name)})
                        have.add(name.lower())
            else:
                drop = {n.lower() for n in names}
                tags = [t for t in tags if t["name"].lower() not in drop]
            record["Tag"] = tags
            self._stamp(module, record, int(self.clock.timestamp()), by=sc.API_USER)
        self.stats_.wrote(module, rid)
        return {
            "code": "SUCCESS",
            "details": {"id": rid, "tags": [t["name"] for t in tags]},
            "message": "tags updated successfully",
            "status": "success",
        }


def _tag_id(name: str) -> str:
    from crmsync_connectors.zoho.fake.data import TAG_IDS

    return TAG_IDS.get(name) or str(
        5725767000000800000 + int.from_bytes(name.encode()[:6], "big") % 99999
    )


def _item_error(code: str, message: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return error(code, message, details)


def _validate(field: sc.Field, value: Any) -> str | None:
    """Why ``value`` cannot go into ``field`` (an error code), or None."""
    empty = value is None or value == "" or value == [] or value == sc.NONE
    if empty:
        return "MANDATORY_NOT_FOUND" if field.mandatory else None
    jt = field.json_type
    if field.data_type == "picklist":
        return None if value in field.picklist else "INVALID_DATA"
    if jt == "string":
        if not isinstance(value, str) or len(value) > field.length:
            return "INVALID_DATA"
        if field.data_type == "email" and ("@" not in value or " " in value):
            return "INVALID_DATA"
        return None
    if jt == "integer":
        return None if isinstance(value, int) and not isinstance(value, bool) else "INVALID_DATA"
    if jt == "double":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "INVALID_DATA"
    if jt == "boolean":
        return None if isinstance(value, bool) else "INVALID_DATA"
    if jt == "jsonobject":
        return None if isinstance(value, dict) and value.get("id") else "INVALID_DATA"
    if jt == "jsonarray":
        return None if isinstance(value, list) else "INVALID_DATA"
    return None


# --------------------------------------------------------------------------- HTTP


class _Server(LocalHTTPServer):
    thread_name = "fake-zoho-conn"
    fake: FakeZoho
    role: str


class _Handler(LocalHandler):
    server_version = "FakeZoho/1.0"
    server: _Server

    def _verbose(self) -> bool:
        return self.server.fake.verbose

    def _dispatch(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except ApiError as err:
            self.close_connection = True
            self._send(err.status, err.payload)
            return
        if path.startswith("/_fake/"):
            self._control(fake, path, body)
            return
        role = self.server.role
        if role == "accounts" and path.startswith("/oauth/v2/token"):
            self._oauth(fake, path, query, body)
        elif role == "api" and path.startswith("/crm/"):
            self._api(fake, path, query, body)
        else:
            self._send(
                404,
                error(
                    "INVALID_URL_PATTERN",
                    "Please check if the URL trying to access is a correct one",
                ),
            )

    # ----------------------------------------------------------------------- OAuth

    def _oauth(self, fake: FakeZoho, path: str, query: dict[str, list[str]], body: bytes) -> None:
        stats = fake.stats_
        key = f"{self.command} {path}"
        stats.enter(key, "oauth")
        status: int | str = "dropped"
        try:
            injected = fake.faults.decide(path)
            if injected is not None:
                if injected.drop:
                    self.close_connection = True
                    return
                status = injected.status
                self._send(status, injected.body)
                return
            if self.command != "POST":
                status = 405
                self._send(405, {"error": "invalid_request"})
                return
            params = {k: v[0] for k, v in query.items()}
            ctype = self.headers.get("Content-Type", "")
            if body and "json" not in ctype:
                form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                params.update({k: v[0] for k, v in form.items()})
            if path.rstrip("/") == "/oauth/v2/token/revoke":
                fake.oauth.revoke(params.get("token", ""))
                status, answer = 200, {"status": "success"}
            elif path.rstrip("/") == "/oauth/v2/token":
                status, answer = fake.oauth.token_endpoint(params, fake.api_domain)
            else:
                status, answer = 404, {"error": "invalid_request"}
            self._send(status, answer, (("Cache-Control", "no-store"),))
        finally:
            stats.leave(status, "oauth")

    # ----------------------------------------------------------------------- API

    def _api(self, fake: FakeZoho, path: str, query: dict[str, list[str]], body: bytes) -> None:
        route_error: ApiError | None = None
        try:
            route = classify(self.command, path)
        except ApiError as err:
            route_error = err
            route = Route(f"{self.command} (invalid)", "invalid", None, ())
        stats = fake.stats_
        in_flight = stats.enter(route.key, route.kind)
        status: int | str = "dropped"
        try:
            latency = fake.faults.latency(path)
            if latency > 0 and self.server.stopping.wait(latency):
                self.close_connection = True
                return
            injected = fake.faults.decide(path)
            if injected is not None:
                if injected.drop:
                    self.close_connection = True
                    return
                status = injected.status
                self._send(status, injected.body)
                return
            headers: tuple[tuple[str, str], ...] = ()
            try:
                self._authenticate(fake, route)
                if route_error is not None:
                    raise route_error
                if in_flight > fake.concurrency:
                    raise ApiError(
                        429,
                        "TOO_MANY_REQUESTS",
                        "The number of concurrent requests exceeds the limit.",
                    )
                now = fake.clock.timestamp()
                cost = job_cost(fake, self.command, path) if route.kind == "bulk" else 1
                if not fake.credits.take(now, cost):
                    raise ApiError(
                        429, "TOO_MANY_REQUESTS", "You have exhausted the API credits for the day."
                    )
                headers = self._credit_headers(fake, now)
                status, payload = Request(
                    fake, route, self.command, path, query, self.headers, body
                ).handle()
            except ApiError as err:
                status, payload = err.status, err.payload
            self._send(status, payload, headers)
        except Exception as exc:  # a fake bug: answer 500 and say why on stderr
            status = 500
            traceback.print_exc(file=sys.stderr)
            self._send(500, error("INTERNAL_ERROR", repr(exc)))
        finally:
            stats.leave(status, route.kind)

    def _authenticate(self, fake: FakeZoho, route: Route) -> None:
        header = self.headers.get("Authorization", "").strip()
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() not in ("zoho-oauthtoken", "bearer") or not token.strip():
            raise ApiError(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        found = fake.oauth.check(token.strip())
        if found is None:
            raise ApiError(401, "INVALID_TOKEN", "invalid oauth token")
        if route.scopes and not scope_covers(found[1], route.scopes):
            raise ApiError(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")

    def _credit_headers(self, fake: FakeZoho, now: float) -> tuple[tuple[str, str], ...]:
        budget = fake.credits.budget
        if budget is None or fake.credits_header == "never":
            return ()
        remaining = fake.credits.remaining(now) or 0
        if fake.credits_header == "always" or remaining * 2 <= budget:
            return ((CREDITS_HEADER, str(remaining)),)
        return ()

    # ----------------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "INVALID_REQUEST", "send Content-Length, not chunked bodies")
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "INVALID_REQUEST", "bad Content-Length") from None
        if n < 0 or n > _MAX_BODY:
            raise ApiError(413, "INVALID_REQUEST", "request body too large")
        return self.rfile.read(n)

    def _send(self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.log_request(status)
        content_type = "application/json;charset=UTF-8"
        if isinstance(payload, Raw):
            body, content_type = payload.body, payload.content_type
            if payload.filename:
                headers = (
                    *headers,
                    ("Content-Disposition", f'attachment; filename="{payload.filename}"'),
                )
        elif isinstance(payload, bytes):
            body = payload
        else:
            body = b"" if payload is None else orjson.dumps(payload)
        no_body = status in (204, 304)
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if not no_body:
            lines.append(f"Content-Type: {content_type}")
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if no_body else head + body)

    # ----------------------------------------------------------------------- control

    def _control(self, fake: FakeZoho, path: str, body: bytes) -> None:
        try:
            args = orjson.loads(body) if body else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            result = _control(fake, self.command, path.removeprefix("/_fake/").strip("/"), args)
        except (ValueError, KeyError, TypeError) as err:
            self._send(400, error("INVALID_REQUEST", str(err)))
            return
        if result is None:
            self._send(404, error("INVALID_URL_PATTERN", f"no control endpoint {path}"))
            return
        self._send(200, result)


def _control(fake: FakeZoho, method: str, name: str, args: dict[str, Any]) -> Any:
    """``/_fake/*``: no auth, no faults, not counted."""
    post = method == "POST"
    if name == "faults":
        if post:
            fake.faults.configure(args)
        return {"faults": fake.faults.describe()}
    if name == "clock":
        if post:
            seconds = args.get("advance_seconds", 0)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advance_seconds must be a number")
            fake.advance(seconds)
        return {"now": fake.now()}
    if name == "touch" and post:
        return {"ids": fake.touch(str(args.get("module")), args.get("count"), args.get("ids"))}
    if name == "delete" and post:
        return {"ids": fake.delete(str(args.get("module")), list(args["ids"]))}
    if name == "revoke" and post:
        fake.revoke_refresh_token(args.get("token"))
        return {"ok": True}
    if name == "grant_code" and post:
        return {"code": fake.grant_code(args.get("scopes"))}
    if name == "tokens/expire" and post:
        fake.expire_tokens()
        return {"ok": True}
    if name == "recycle_bin/empty" and post:
        return {"count": fake.empty_recycle_bin(args.get("module"))}
    if name == "stats":
        return fake.stats()
    if name == "stats/reset" and post:
        fake.reset_stats()
        return fake.stats()
    return None
