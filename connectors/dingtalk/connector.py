"""DingTalkConnector (the plugin object) and DingTalkSession (one open DingTalk CRM connection).

Reads: customers through the v1.0 API (``GET /v1.0/crm/personalCustomers``, ``nextToken``
paging, up to 100 a page); contacts and follow records through the old API
(``/topapi/crm/objectdata/{contact,followrecord}/query``, ``cursor`` paging), which the v1.0
API has no query for. Both are asked for ascending ``gmt_modified`` with an inclusive
``BETWEEN`` from the checkpoint, so every page carries a checkpoint and a resumed pull skips
nothing.

Writes: DingTalk CRM has no archive or void state, so archive/void/restore set the admin's
custom 状态 select (``status`` setting) through the v1.0 batch updates, 10 records a call;
purge deletes (customers and contacts one call per record, follow records 10 a call).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from crmsync.errors import BadResponseError, ConfigError, ConnectorError
from crmsync.hookspecs import (
    FieldInfo,
    Limits,
    ModuleInfo,
    Page,
    RecordResult,
    Setting,
    StatusChange,
)
from crmsync_connectors.dingtalk.api import ApiCodeError, DingTalkApi
from crmsync_connectors.dingtalk.records import (
    EPOCH,
    ID_FIELD,
    MODIFIED_FIELD,
    checkpoint_ms,
    to_record,
)
from crmsync_connectors.dingtalk.settings import (
    LIFECYCLE,
    NEW_PAGE_MAX,
    OLD_API_MODULES,
    SETTINGS,
    SETTINGS_SCHEMA,
    TARGET,
    WRITE_BATCH,
    DingTalkSettings,
    parse_settings,
)

log = logging.getLogger(__name__)

CUSTOMERS = "/v1.0/crm/personalCustomers"
OLD_PATHS = {"crm_contact": "contact", "crm_follow_record": "followrecord"}
FAR_MS = 253402300799000  # 9999-12-31: the open end of an incremental BETWEEN
#: Per-record error codes worth trying again later. Assumption: DingTalk documents none for the
#: batch updates; a system error is the one that can pass.
RETRYABLE = frozenset({"systemError", "-1"})
#: Keys the mirror adds beside the record's own fields (records.py); never written back.
SYSTEM_KEYS = frozenset(
    {ID_FIELD, MODIFIED_FIELD, "gmtCreate", "objectType", "creatorUserId", "ownerStaffIds"}
)
_TYPES = {"TextField": "string", "TextareaField": "string", "NumberField": "number",
          "MoneyField": "number", "DDDateField": "datetime"}  # fmt: skip


class DingTalkConnector:
    """钉钉客户管理 (DingTalk's official CRM) through its v1.0 and old APIs."""

    name = "dingtalk"
    description = (
        "DingTalk CRM 钉钉客户管理: customers (v1.0 API), contacts and follow records (old "
        "API); archive/void/restore through a 状态 field, purge"
    )

    def __init__(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._clock = clock

    def settings_schema(self) -> dict[str, Any]:
        return SETTINGS_SCHEMA

    def settings(self) -> list[Setting]:
        return list(SETTINGS)

    def open(self, name: str, settings: Mapping[str, Any]) -> DingTalkSession:
        return DingTalkSession(
            name, parse_settings(settings, name), sleep=self._sleep, clock=self._clock
        )


class DingTalkSession:
    """An open DingTalk connection. No network until the first call; :meth:`close` frees it."""

    def __init__(
        self,
        name: str,
        settings: DingTalkSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings
        self.api = DingTalkApi(name, settings, sleep=sleep, clock=clock)
        self._meta: dict[str, list[dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"DingTalkSession({self.name!r}, modules={list(self.settings.modules)})"

    def limits(self) -> Limits:
        return Limits(
            page_size=self.settings.page_size,
            batch_size=WRITE_BATCH,
            concurrency=self.settings.concurrency,
            max_page_size=NEW_PAGE_MAX,
            requests_per_second=self.settings.requests_per_second,
        )

    def check(self) -> str:
        for module in self.settings.modules:
            self._checked_fields(module)
        return (
            f"reached {self.settings.api_url} and {self.settings.oapi_url}, auth ok "
            f"(mirroring {', '.join(self.settings.modules)})"
        )

    # ------------------------------------------------------------------ modules

    def _module(self, module: str) -> str:
        if module not in self.settings.modules:
            raise ConnectorError(
                f"module {module!r} is not configured (modules: "
                f"{', '.join(self.settings.modules)})",
                connection=self.name,
                module=module,
            )
        return module

    def _fields(self, module: str) -> list[dict[str, Any]]:
        """The object's field metadata (once per session)."""
        if module in self._meta:
            return self._meta[module]
        context: dict[str, Any] = {"connection": self.name, "module": module}
        if module in OLD_API_MODULES:
            answer = self.api.call_old(
                "meta",
                f"/topapi/crm/objectmeta/{OLD_PATHS[module]}/describe",
                {},
                context=context,
                idempotent=True,
            )
            result = answer.get("result")
            fields = result.get("fields") if isinstance(result, dict) else None
        else:
            _, body = self.api.call_new(
                "meta",
                "GET",
                f"{CUSTOMERS}/objectMeta",
                params={"relationType": module},
                context=context,
            )
            fields = body.get("fields")
        if not isinstance(fields, list):
            raise BadResponseError(
                "the object's metadata has no fields list", connection=self.name, module=module
            )
        self._meta[module] = [
            _options_named(f) for f in fields if isinstance(f, dict) and f.get("name")
        ]
        return self._meta[module]

    def _checked_fields(self, module: str) -> list[dict[str, Any]]:
        """The metadata, after checking the configured status field and its options exist."""
        fields = self._fields(module)
        status = self.settings.status
        if status is None:
            return fields
        field_id = status.field_for(module)
        key = f"connections.{self.name}"
        where = (
            f"{key}.modules.{module}.status_field"
            if module in status.module_fields
            else f"{key}.status.field"
        )
        found = next((f for f in fields if f.get("name") == field_id), None)
        if found is None:
            selects = [
                f"{f['name']} ({f.get('label', '')})" for f in fields if f.get("selectOptions")
            ]
            raise ConfigError(
                f"{field_id!r} is not a field of DingTalk's {module}; its select fields: "
                f"{', '.join(selects) or 'none'}",
                path=where,
            )
        options = [o.get("value") for o in found.get("selectOptions") or [] if isinstance(o, dict)]
        for state, label in status.values.items():
            if options and label not in options:
                raise ConfigError(
                    f"{label!r} is not an option of {field_id} ({found.get('label', '')}) in "
                    f"{module}; its options: {', '.join(map(str, options))}",
                    path=f"{key}.status.values.{state}",
                )
        return fields

    def _actions(self) -> tuple[str, ...]:
        actions = self.settings.write_actions
        if self.settings.status is None:
            actions = tuple(a for a in actions if a not in LIFECYCLE)
        return actions

    def list_modules(self) -> list[ModuleInfo]:
        out = []
        status = self.settings.status
        for module in self.settings.modules:
            fields = self._checked_fields(module)
            infos = [
                FieldInfo(str(f["name"]), _TYPES.get(str(f.get("type")), "json"), f.get("label"))
                for f in fields
            ]
            infos += [
                FieldInfo(ID_FIELD),
                FieldInfo("gmtCreate", "string", "创建时间"),
                FieldInfo(MODIFIED_FIELD, "string", "修改时间"),
                FieldInfo("creatorUserId"),
                FieldInfo("ownerStaffIds", "json", "负责人"),
            ]
            out.append(
                ModuleInfo(
                    name=module,
                    id_field=ID_FIELD,
                    modified_field=MODIFIED_FIELD,
                    fields=tuple(infos),
                    actions=self._actions(),
                    status_field=status.field_for(module) if status else None,
                )
            )
        return out

    # ------------------------------------------------------------------ pull

    def pull(self, module: str, since: str | None = None) -> Iterator[Page]:
        return self._pull(self._module(module), since)

    def _pull(self, module: str, since: str | None) -> Iterator[Page]:
        old = module in OLD_API_MODULES
        dsl: dict[str, Any] = {"orderFieldId": "gmt_modified", "order": "ASC"}
        if since:
            low = checkpoint_ms(since)
            dsl["queryGroupList"] = [
                {
                    "logicType": "AND",
                    "queryObjectList": [
                        {
                            "fieldId": "gmt_modified",
                            "filterType": "BETWEEN",
                            # Assumption: BETWEEN includes both ends (the DSL docs' example
                            # range ends at …999 ms); the boundary second is read again
                            "value": [str(low), str(FAR_MS)],
                        }
                    ],
                }
            ]
        query_dsl = json.dumps(dsl, separators=(",", ":"))
        status = self.settings.status
        status_field = status.field_for(module) if status else None
        checkpoint = since
        cursor: str | None = None
        number = 0
        while True:
            number += 1
            context: dict[str, Any] = {"connection": self.name, "module": module, "page": number}
            values, more, cursor_next, total = self._page(module, old, cursor, query_dsl, context)
            records = [
                to_record(
                    item,
                    old=old,
                    offset=self.settings.utc_offset,
                    status=status,
                    status_field=status_field,
                    where=context,
                )
                for item in values
            ]
            for rec in records:
                if rec.modified_at and (checkpoint is None or rec.modified_at > checkpoint):
                    checkpoint = rec.modified_at
            yield Page(
                number=number,
                records=records,
                checkpoint=checkpoint or EPOCH,
                api_calls=context.get("calls", 1),
                total=total,
            )
            # Assumption: hasMore / has_more is false on the last page that has records (no
            # trailing empty page), so a pull of N costs ceil(N / page_size) calls
            if not more or not values:
                return
            if not cursor_next:
                raise BadResponseError(
                    "the answer says there is more but gives no cursor to get it",
                    connection=self.name,
                    module=module,
                    page=number,
                )
            cursor = str(cursor_next)

    def _page(
        self, module: str, old: bool, cursor: str | None, query_dsl: str, context: dict[str, Any]
    ) -> tuple[list[Any], bool, Any, int | None]:
        """(values, has more, next cursor, total) of one page from the module's API."""
        size = self.settings.page_size
        operator = self.settings.operator_user_id
        if old:
            answer = self.api.call_old(
                "read",
                f"/topapi/crm/objectdata/{OLD_PATHS[module]}/query",
                {
                    "current_operator_userid": operator,
                    "cursor": cursor or "0",
                    "page_size": size,
                    "query_dsl": query_dsl,
                },
                context=context,
                idempotent=True,  # a query, though sent as POST
            )
            body = answer.get("result")
            values_key, more_key, next_key, total = "values", "has_more", "next_cursor", None
        else:
            params: dict[str, Any] = {
                "relationType": module,
                "maxResults": size,
                "queryDsl": query_dsl,
                "currentOperatorUserId": operator,
            }
            if cursor:
                params["nextToken"] = cursor
            _, body = self.api.call_new("read", "GET", CUSTOMERS, params=params, context=context)
            values_key, more_key, next_key = "values", "hasMore", "nextToken"
            total = body.get("totalCount") if isinstance(body.get("totalCount"), int) else None
        # Strict on purpose: a full pull that read an unexpected shape as "no records" would
        # tell the core every mirrored record was deleted. Assumption: an empty result still
        # carries "values": [] (as the documented examples do).
        if not isinstance(body, dict) or not isinstance(body.get(values_key), list):
            raise BadResponseError(
                f"the answer has no {values_key!r} list",
                connection=self.name,
                module=module,
                page=context["page"],
            )
        return list(body[values_key]), bool(body.get(more_key)), body.get(next_key), total

    # ------------------------------------------------------------------ push

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        module = self._module(module)
        supported = self._actions()
        for change in changes:
            if change.action not in supported:
                why = (
                    "set [connections.NAME.status] and list it in write_actions"
                    if change.action in LIFECYCLE
                    else f"supported: {', '.join(supported) or 'none'}"
                )
                raise ConnectorError(
                    f"action {change.action!r} is not supported by the DingTalk connector "
                    f"for this connection ({why})",
                    connection=self.name,
                    module=module,
                )
        results: dict[str, RecordResult] = {}
        purge = [c.record_id for c in changes if c.action == "purge"]
        if purge:
            for result in self.delete(module, purge):
                results[result.record_id] = result
        rows: list[tuple[str, list[dict[str, str]]]] = []
        for change in changes:
            if change.action == "purge":
                continue
            items = self._items(module, change)
            if items:
                rows.append((change.record_id, items))
            else:
                results[change.record_id] = RecordResult(change.record_id, True)
        for start in range(0, len(rows), WRITE_BATCH):
            results.update(self._write(module, rows[start : start + WRITE_BATCH]))
        return [
            results.get(c.record_id) or RecordResult(c.record_id, False, error="NO_RESULT")
            for c in changes
        ]

    def _items(self, module: str, change: StatusChange) -> list[dict[str, str]]:
        """The bizDataList of one change: the status option, then any field values."""
        items: dict[str, dict[str, str]] = {}
        status = self.settings.status
        if change.action in LIFECYCLE and status is not None:
            field_id = status.field_for(module)
            label = status.values[TARGET[change.action]]
            items[field_id] = {
                "key": field_id,
                "value": label,
                # V2 select format: the option's label and key (from the object's metadata)
                "extendValue": json.dumps(
                    {"label": label, "key": self._option_key(module, field_id, label)},
                    ensure_ascii=False,
                ),
            }
        for key, value in change.fields.items():
            if key == "tags" or key in items or key in SYSTEM_KEYS:
                continue  # the mirror's system keys are DingTalk's, not writable fields
            if isinstance(value, dict) and "value" in value:  # a field as pulled
                item = {"key": key, "value": _text(value["value"])}
                if value.get("extendValue"):
                    item["extendValue"] = _text(value["extendValue"])
            else:
                item = {"key": key, "value": _text(value)}
            items[key] = item
        return list(items.values())

    def _option_key(self, module: str, field_id: str, label: str) -> str:
        for f in self._fields(module):
            if f.get("name") == field_id:
                for option in f.get("selectOptions") or []:
                    if isinstance(option, dict) and option.get("value") == label:
                        return str(option.get("key") or "")
        return ""

    def _write(
        self, module: str, rows: list[tuple[str, list[dict[str, str]]]]
    ) -> dict[str, RecordResult]:
        context: dict[str, Any] = {"connection": self.name, "module": module}
        operator = self.settings.operator_user_id
        if module == "crm_follow_record":
            path, id_key = "/v1.0/crm/followRecords/batch", "instanceId"
            body: dict[str, Any] = {
                "operatorUserId": operator,
                "instanceList": [{"instanceId": rid, "dataArray": items} for rid, items in rows],
            }
        else:
            path = (
                "/v1.0/crm/contacts/batch"
                if module == "crm_contact"
                else ("/v1.0/crm/relationDatas/batch")
            )
            id_key = "relationId"
            body = {
                "operatorUserId": operator,
                "relationList": [{"relationId": rid, "bizDataList": items} for rid, items in rows],
            }
            if module != "crm_contact":
                body["relationType"] = module
                # Only the status changes: the org's duplicate rules judge names and phones
                body["skipDuplicateCheck"] = True
        # Assumption: the batch update changes only the keys sent (the docs' "更新" of the
        # listed model fields); the fake implements that.
        _, answer = self.api.call_new("write", "PUT", path, json=body, context=context)
        return self._results(module, answer, [rid for rid, _ in rows], id_key, path)

    def _results(
        self, module: str, answer: dict[str, Any], ids: list[str], id_key: str, path: str
    ) -> dict[str, RecordResult]:
        items = answer.get("results")
        if not isinstance(items, list):
            raise BadResponseError(
                f"{path} answered without a results list", connection=self.name, module=module
            )
        out: dict[str, RecordResult] = {}
        wanted = set(ids)
        for item in items:
            if not isinstance(item, dict) or str(item.get(id_key)) not in wanted:
                continue
            rid = str(item[id_key])
            if item.get("success") is True:
                out[rid] = RecordResult(rid, True)
            else:
                code = str(item.get("errorCode") or "FAILED")
                message = str(item.get("errorMsg") or "")[:200]
                out[rid] = RecordResult(
                    rid, False, error=f"{code}: {message}" if message else code,
                    retryable=code in RETRYABLE,
                )  # fmt: skip
        for rid in ids:
            out.setdefault(rid, RecordResult(rid, False, error="NO_RESULT"))
        return out

    # ------------------------------------------------------------------ delete

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        module = self._module(module)
        if "purge" not in self._actions():
            raise ConnectorError(
                "purge is not in write_actions for this connection",
                connection=self.name,
                module=module,
            )
        ids = [str(i) for i in record_ids]
        if module == "crm_follow_record":
            out: dict[str, RecordResult] = {}
            for start in range(0, len(ids), WRITE_BATCH):
                chunk = ids[start : start + WRITE_BATCH]
                context: dict[str, Any] = {"connection": self.name, "module": module}
                _, answer = self.api.call_new(
                    "delete",
                    "POST",
                    "/v1.0/crm/followRecords/batchRemove",
                    json={"operatorUserId": self.settings.operator_user_id, "instanceIds": chunk},
                    context=context,
                )
                out.update(self._results(module, answer, chunk, "instanceId", "batchRemove"))
            return [out[i] for i in ids]
        return [self._delete_one(module, rid) for rid in ids]

    def _delete_one(self, module: str, rid: str) -> RecordResult:
        """Customers and contacts are deleted one call each; a refusal is that record's result."""
        context: dict[str, Any] = {"connection": self.name, "module": module}
        operator = self.settings.operator_user_id
        if module == "crm_contact":
            try:
                self.api.call_old(
                    "delete",
                    "/topapi/crm/objectdata/contact/delete",
                    {"operator_userid": operator, "data_id": rid},
                    context=context,
                )
            except ApiCodeError as err:
                return RecordResult(rid, False, error=f"errcode {err.code}: {err.detail[-120:]}")
            return RecordResult(rid, True)
        status, body = self.api.call_new(
            "delete",
            "DELETE",
            f"{CUSTOMERS}/{quote(rid, safe='')}",
            params={"currentOperatorUserId": operator, "relationType": module},
            context=context,
            per_record=True,
        )
        if status < 400:
            return RecordResult(rid, True)
        code = str(body.get("code") or f"HTTP {status}")
        message = str(body.get("message") or "")[:200]
        return RecordResult(rid, False, error=f"{code}: {message}" if message else code)

    # ------------------------------------------------------------------ the rest

    def stats(self) -> dict[str, Any]:
        """Calls by kind (read, meta, write, delete), token requests, QPS answers backed off."""
        return self.api.stats()

    def close(self) -> None:
        log.info("%s: DingTalk calls %s", self.name, self.stats())
        self.api.close()


def _options_named(field: dict[str, Any]) -> dict[str, Any]:
    """One name for a select's options: the old API says select_options, v1.0 selectOptions."""
    if "select_options" in field and "selectOptions" not in field:
        return {**field, "selectOptions": field["select_options"]}
    return field


def _text(value: Any) -> str:
    """A value as the V2 write format wants it: text (JSON for lists and objects; an empty
    text clears the field)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
