"""Write-back: render the configured operation per batch (or per record) and read the results.

Every change gets exactly one RecordResult. A record's own failure (in the CRM's result list,
a per-record 404, a value its template needs but the change lacks) is a result; a whole-batch
4xx fails each record of the batch; auth and network failures after retries raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import RecordResult, StatusChange
from crmsync.http import HttpClient, error_code, json_body
from crmsync_connectors.rest.config import ModuleConfig, OperationConfig
from crmsync_connectors.rest.templates import TemplateError, lookup_from, render
from crmsync_connectors.rest.values import get_path, iso_z, parse_time

_Indexed = list[tuple[int, StatusChange]]


class Writer:
    def __init__(self, connection: str, client: HttpClient, concurrency: int) -> None:
        self.connection = connection
        self.client = client
        self.concurrency = max(1, concurrency)

    def push(self, m: ModuleConfig, changes: Sequence[StatusChange]) -> list[RecordResult]:
        by_action: dict[str, _Indexed] = {}
        for position, change in enumerate(changes):
            by_action.setdefault(change.action, []).append((position, change))
        results: dict[int, RecordResult] = {}
        for action, items in by_action.items():
            op = m.operations.get(action)
            if op is None:
                configured = ", ".join(m.operations) or "none"
                raise ConnectorError(
                    f"action {action!r} is not configured for this module (configured: "
                    f"{configured}); add [connections.{self.connection}.operations.{action}]",
                    connection=self.connection,
                    module=m.name,
                )
            if op.batched:
                for start in range(0, len(items), op.batch_size):
                    results.update(self._batch(m, op, items[start : start + op.batch_size]))
            else:
                results.update(self._per_record(m, op, items))
        return [results[position] for position in range(len(changes))]

    # ------------------------------------------------------------------ helpers

    def _values(self, m: ModuleConfig, op: OperationConfig, **extra: Any) -> dict[str, Any]:
        return {"module": m.name, "action": op.action, "path": m.path, **extra}

    def _context(self, m: ModuleConfig) -> dict[str, Any]:
        return {"connection": self.connection, "module": m.name}

    def _with_fields(self, op: OperationConfig, rendered: Any, change: StatusChange) -> Any:
        # The template's own keys win: extra fields must not override the id or the status.
        if op.include_fields and isinstance(rendered, dict):
            return {**change.fields, **rendered}
        return rendered

    @staticmethod
    def _record_fields(change: StatusChange) -> dict[str, Any]:
        return {**(change.data or {}), **change.fields}

    def _modified(self, m: ModuleConfig, op: OperationConfig, source: Any) -> str | None:
        if not op.result_modified_path:
            return None
        value = get_path(source, op.result_modified_path, None)
        if value in (None, ""):
            return None
        try:
            return iso_z(parse_time(value, m.modified_format))
        except (ValueError, OverflowError):
            return None  # an unreadable time must not turn a successful write into a failure

    @staticmethod
    def _http_failure(response: requests.Response, default: str | None = None) -> str:
        try:
            code = error_code(response.json())
        except ValueError:
            code = None
        return code or default or f"HTTP {response.status_code}"

    # ------------------------------------------------------------------ batch mode

    def _batch(
        self, m: ModuleConfig, op: OperationConfig, items: _Indexed
    ) -> dict[int, RecordResult]:
        results: dict[int, RecordResult] = {}
        rendered: list[Any] = []
        sent: _Indexed = []
        for position, change in items:
            lookup = lookup_from(
                self._values(m, op, id=change.record_id), self._record_fields(change)
            )
            try:
                item = render(op.item, lookup) if op.item is not None else None
            except TemplateError as missing:
                results[position] = RecordResult(
                    change.record_id, False, f"MISSING_VALUE {missing.name}"
                )
                continue
            rendered.append(self._with_fields(op, item, change))
            sent.append((position, change))
        if not sent:
            return results
        ids = [change.record_id for _, change in sent]
        lookup = lookup_from(self._values(m, op, records=rendered, ids=ids))
        context = self._context(m)
        response = self.client.request(
            op.method,
            render(op.path, lookup, url=True),
            params=render(op.params, lookup) or None,
            json=render(op.body, lookup) if op.body is not None else None,
            context=context,
            raise_for_status=False,
        )
        if response.status_code >= 400 or response.status_code not in op.success_status:
            # The whole batch was refused (e.g. 400 LIMIT_EXCEEDED): every record fails with it.
            error = self._http_failure(response)
            for position, change in sent:
                results[position] = RecordResult(change.record_id, False, error)
            return results
        if not op.result_path:
            for position, change in sent:
                results[position] = RecordResult(change.record_id, True)
            return results
        body = json_body(response, context)
        entries = get_path(body, op.result_path, None)
        if not isinstance(entries, list):
            raise BadResponseError(
                f"{op.action}: no result list at result_path {op.result_path!r}",
                connection=self.connection,
                module=m.name,
            )
        by_id = {
            str(entry.get(op.result_id_field)): entry
            for entry in entries
            if isinstance(entry, dict)
        }
        for position, change in sent:
            entry = by_id.get(change.record_id)
            results[position] = self._entry_result(m, op, change.record_id, entry)
        return results

    def _entry_result(
        self, m: ModuleConfig, op: OperationConfig, record_id: str, entry: dict | None
    ) -> RecordResult:
        if entry is None:
            return RecordResult(record_id, False, "NO_RESULT")
        raw_error = entry.get(op.error_field)
        if op.success_field:
            ok = entry.get(op.success_field) == op.success_value
        else:
            ok = raw_error in (None, "", False)
        if ok:
            return RecordResult(record_id, True, modified_at=self._modified(m, op, entry))
        error = error_code({"error": raw_error}) if raw_error not in (None, "") else "FAILED"
        return RecordResult(record_id, False, error)

    # ------------------------------------------------------------------ per-record mode

    def _per_record(
        self, m: ModuleConfig, op: OperationConfig, items: _Indexed
    ) -> dict[int, RecordResult]:
        def one(indexed: tuple[int, StatusChange]) -> tuple[int, RecordResult]:
            position, change = indexed
            return position, self._one(m, op, change)

        if self.concurrency == 1 or len(items) == 1:
            return dict(map(one, items))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return dict(pool.map(one, items))

    def _one(self, m: ModuleConfig, op: OperationConfig, change: StatusChange) -> RecordResult:
        lookup = lookup_from(self._values(m, op, id=change.record_id), self._record_fields(change))
        try:
            path = render(op.path, lookup, url=True)
            params = render(op.params, lookup) or None
            body = render(op.body, lookup) if op.body is not None else None
        except TemplateError as missing:
            return RecordResult(change.record_id, False, f"MISSING_VALUE {missing.name}")
        if op.body is not None or op.include_fields:
            body = self._with_fields(op, body if body is not None else {}, change)
        response = self.client.request(
            op.method,
            path,
            params=params,
            json=body,
            context=self._context(m),
            raise_for_status=False,
        )
        if response.status_code in op.success_status:
            modified = None
            if op.result_modified_path and response.content:
                try:
                    modified = self._modified(m, op, response.json())
                except ValueError:
                    modified = None
            return RecordResult(change.record_id, True, modified_at=modified)
        if response.status_code == 404:
            return RecordResult(change.record_id, False, self._http_failure(response, "NOT_FOUND"))
        return RecordResult(change.record_id, False, self._http_failure(response))
