"""Write-back: lifecycle status as a picklist field (``PUT /{module}``) or as tags
(``/actions/add_tags`` / ``remove_tags``), field updates, and deletes (purge).

Every call carries at most 100 records; Zoho answers one item per record, in input order
(HTTP 200, 207 for mixed results, 400 when every record failed); each becomes one
:class:`RecordResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import RecordResult, StatusChange
from crmsync.http import json_body
from crmsync_connectors.zoho.api import ZohoApi
from crmsync_connectors.zoho.pull import iso_z, parse_zoho_time
from crmsync_connectors.zoho.settings import MAX_BATCH, ZohoSettings

#: Per-record codes worth trying again later.
RETRYABLE = frozenset(
    {
        "TOO_MANY_REQUESTS",
        "INTERNAL_ERROR",
        "INTERNAL_SERVER_ERROR",
        "RECORD_LOCKED",
        "LIMIT_REACHED",
    }
)
RECYCLE_BIN_NOTE = "moved to Zoho's recycle bin (restorable there until it is emptied)"
LIFECYCLE = ("archive", "void", "restore")
WRITE_ACTIONS = (*LIFECYCLE, "update", "tag", "purge")


def _result(record_id: str, item: Any) -> RecordResult:
    if not isinstance(item, dict):
        return RecordResult(record_id, False, error="BAD_RESPONSE: no result for this record")
    code = str(item.get("code") or item.get("status") or "UNKNOWN")
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    if code == "SUCCESS" or item.get("status") == "success":
        modified = details.get("Modified_Time")
        modified_at = None
        if isinstance(modified, str) and modified:
            try:
                modified_at = iso_z(parse_zoho_time(modified))
            except ValueError:
                modified_at = None
        return RecordResult(record_id, True, modified_at=modified_at)
    field = details.get("api_name")
    message = item.get("message")
    error = code + (f" ({field})" if field else "")
    if isinstance(message, str) and message:
        error += f": {message[:200]}"
    return RecordResult(record_id, False, error=error, retryable=code in RETRYABLE)


def _merge(results: dict[str, RecordResult], new: RecordResult) -> None:
    """A record written by several calls is ok only if every call was."""
    old = results.get(new.record_id)
    if old is None or (old.ok and not new.ok) or (old.ok and new.ok and new.modified_at):
        results[new.record_id] = new


class Writer:
    def __init__(self, api: ZohoApi, settings: ZohoSettings) -> None:
        self.api = api
        self.settings = settings

    def supported_actions(self) -> tuple[str, ...]:
        lifecycle = LIFECYCLE if self.settings.status is not None else ()
        return (*lifecycle, "purge", "tag", "update")

    # ------------------------------------------------------------------ push

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        supported = self.supported_actions()
        for change in changes:
            if change.action not in supported:
                why = (
                    "configure [connections.NAME.status] (mode field or tags) to write lifecycle "
                    "status"
                    if change.action in LIFECYCLE
                    else f"supported: {', '.join(supported)}"
                )
                raise ConnectorError(
                    f"action {change.action!r} is not supported by the Zoho connector ({why})",
                    connection=self.api.name,
                    module=module,
                )
        results: dict[str, RecordResult] = {}
        purge = [c.record_id for c in changes if c.action == "purge"]
        for start in range(0, len(purge), MAX_BATCH):
            for r in self.delete(module, purge[start : start + MAX_BATCH]):
                _merge(results, r)
        rows: list[dict[str, Any]] = []
        tag_ops: dict[tuple[str, str], list[str]] = {}
        status = self.settings.status
        for change in changes:
            if change.action == "purge":
                continue
            fields = {k: v for k, v in change.fields.items() if k != "tags"}
            if change.action == "tag":
                for name in change.fields.get("tags") or ():
                    tag_ops.setdefault(("add", str(name)), []).append(change.record_id)
            elif change.action in LIFECYCLE and status is not None:
                if status.mode == "field":
                    target = {"archive": "archived", "void": "voided", "restore": "active"}
                    fields[status.field or ""] = status.values.get(target[change.action])
                else:
                    archived, voided = status.tags["archived"], status.tags["voided"]
                    if change.action == "archive":
                        tag_ops.setdefault(("add", archived), []).append(change.record_id)
                    elif change.action == "void":
                        tag_ops.setdefault(("add", voided), []).append(change.record_id)
                    else:
                        for name in (archived, voided):
                            tag_ops.setdefault(("remove", name), []).append(change.record_id)
            if fields or (change.action == "update"):
                rows.append({"id": change.record_id, **fields})
        for start in range(0, len(rows), MAX_BATCH):
            for r in self._put(module, rows[start : start + MAX_BATCH]):
                _merge(results, r)
        for (op, name), ids in tag_ops.items():
            for start in range(0, len(ids), MAX_BATCH):
                for r in self._tags(module, op, name, ids[start : start + MAX_BATCH]):
                    _merge(results, r)
        return [results[c.record_id] for c in changes if c.record_id in results] + [
            RecordResult(c.record_id, True)
            for c in changes
            if c.record_id not in results  # e.g. update with nothing to write
        ]

    def _put(self, module: str, rows: list[dict[str, Any]]) -> list[RecordResult]:
        body: dict[str, Any] = {"data": rows, "trigger": list(self.settings.trigger)}
        response, _ = self.api.request(
            "write", "PUT", f"/{module}", module=module, json=body, raise_for_status=False
        )
        return self._items(module, response, [str(r["id"]) for r in rows], "PUT")

    def _tags(self, module: str, op: str, name: str, ids: list[str]) -> list[RecordResult]:
        body = {"tags": [{"name": name}], "ids": ids}
        if op == "add":
            body["over_write"] = False
        response, _ = self.api.request(
            "write",
            "POST",
            f"/{module}/actions/{op}_tags",
            module=module,
            json=body,
            raise_for_status=False,
        )
        return self._items(module, response, ids, f"{op}_tags")

    # ------------------------------------------------------------------ delete

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        results: list[RecordResult] = []
        for start in range(0, len(record_ids), MAX_BATCH):
            ids = [str(i) for i in record_ids[start : start + MAX_BATCH]]
            params = {
                "ids": ",".join(ids),
                "wf_trigger": "true" if self.settings.delete_workflows else "false",
            }
            response, _ = self.api.request(
                "write",
                "DELETE",
                f"/{module}",
                module=module,
                params=params,
                raise_for_status=False,
            )
            results += self._items(module, response, ids, "DELETE")
        return results

    # ------------------------------------------------------------------ results

    def _items(self, module: str, response: Any, ids: list[str], what: str) -> list[RecordResult]:
        body = json_body(response, {"connection": self.api.name, "module": module})
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            code = body.get("code") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            raise ConnectorError(
                f"{what} /{module} answered HTTP {response.status_code} "
                f"{code or ''}: {str(message or '')[:200]}".rstrip(": "),
                connection=self.api.name,
                module=module,
                status=response.status_code,
            )
        if len(items) != len(ids):
            raise BadResponseError(
                f"{what} /{module} answered {len(items)} results for {len(ids)} records",
                connection=self.api.name,
                module=module,
            )
        results = []
        for rid, item in zip(ids, items, strict=True):
            details = item.get("details") if isinstance(item, dict) else None
            got = details.get("id") if isinstance(details, dict) else None
            if got is not None and str(got) != rid and item.get("status") == "success":
                raise BadResponseError(
                    f"{what} /{module}: result for record {rid} names record {got}",
                    connection=self.api.name,
                    module=module,
                )
            results.append(_result(rid, item))
        return results
