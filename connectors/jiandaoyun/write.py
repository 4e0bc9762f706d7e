"""Write-back: the status widget (archive / void / restore), field updates, and purge.

``data/batch_update`` writes the SAME values to at most 100 records and answers only
``{"status": "success", "success_count": n}`` (open/14225), so changes are grouped by the
values they write: one call per group of up to 100 records. When ``success_count`` is short,
one ``data/list`` call filtered on those ids (``_id in [...]``) tells which records hold the
values and which are missing or unchanged: one result per record, never a guess.

Purge: ``data/batch_delete`` (<= 100 ids, open/14527) also answers only a count, and a record
that is gone afterwards may have been deleted now or never have existed. So a purge first reads
which of the ids exist (``data/get`` per id, or one ``data/list`` with ``id_filter``), deletes
those, and reads again only if the count is short: per 100 records 101 calls (2 with
``id_filter``). Deleted records cannot be restored through the API (restore is from crmsync's
snapshots, as a new record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import RecordResult, StatusChange
from crmsync_connectors.jiandaoyun.api import DATA_NOT_FOUND, JiandaoyunApi, JiandaoyunError
from crmsync_connectors.jiandaoyun.forms import ID_FIELD, Form, Forms
from crmsync_connectors.jiandaoyun.settings import MAX_BATCH

LIFECYCLE = {"archive": "archived", "void": "voided", "restore": "active"}
NOT_FOUND = "NOT_FOUND: no such record in the form"
NOT_WRITTEN = "NOT_WRITTEN: batch_update did not change this record"
NOT_DELETED = "NOT_DELETED: batch_delete left this record in place"


def _chunks(items: Sequence[str], size: int = MAX_BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Writer:
    def __init__(self, api: JiandaoyunApi, forms: Forms, *, id_filter: bool = False) -> None:
        self.api = api
        self.forms = forms
        self.id_filter = id_filter

    def supported_actions(self, module: str) -> tuple[str, ...]:
        lifecycle = tuple(LIFECYCLE) if self.forms.modules[module].status is not None else ()
        return (*lifecycle, "update", "purge")

    # ------------------------------------------------------------------ push

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        if len(changes) > MAX_BATCH:
            raise ConnectorError(
                f"push takes at most {MAX_BATCH} records, got {len(changes)}",
                connection=self.api.name,
                module=module,
            )
        supported = self.supported_actions(module)
        for change in changes:
            if change.action not in supported:
                why = (
                    f"configure modules.{module}.status (a widget and its option texts) to "
                    "write lifecycle status"
                    if change.action in LIFECYCLE
                    else f"supported: {', '.join(supported)}"
                )
                raise ConnectorError(
                    f"action {change.action!r} is not supported by the Jiandaoyun connector "
                    f"({why})",
                    connection=self.api.name,
                    module=module,
                )
        form = self.forms.form(module)
        results: dict[str, RecordResult] = {}
        purge = [c.record_id for c in changes if c.action == "purge"]
        if purge:
            results.update((r.record_id, r) for r in self.delete(module, purge))
        groups: dict[bytes, tuple[dict[str, Any], list[str]]] = {}
        for change in changes:
            if change.action == "purge":
                continue
            payload = self._payload(form, change)
            if not payload:  # an update with nothing to write
                results[change.record_id] = RecordResult(change.record_id, True)
                continue
            key = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
            groups.setdefault(key, (payload, []))[1].append(change.record_id)
        for payload, ids in groups.values():
            for chunk in _chunks(ids):
                results.update((r.record_id, r) for r in self._update(form, chunk, payload))
        return [results[c.record_id] for c in changes]

    def _payload(self, form: Form, change: StatusChange) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in change.fields.items():
            name = form.to_api(key, connection=self.api.name)
            if name is not None:  # system fields are read-only: a restored copy carries them
                values[name] = value
        status = form.settings.status
        if change.action in LIFECYCLE and status is not None:
            widget = form.resolve(status.field, connection=self.api.name)
            values[widget.name] = status.values[LIFECYCLE[change.action]]
        # Writes wrap each value (open/14225): {"<name>": {"value": ...}}
        return values

    def _update(self, form: Form, ids: list[str], values: dict[str, Any]) -> list[RecordResult]:
        spec = form.settings
        body = {
            "app_id": spec.app_id,
            "entry_id": spec.entry_id,
            "data_ids": ids,
            "data": {name: {"value": value} for name, value in values.items()},
        }
        answer, _, _ = self.api.call("write", "data/batch_update", body, module=spec.name)
        count = _count(answer, "data/batch_update", self.api.name, spec.name)
        if count >= len(ids):
            return [RecordResult(i, True) for i in ids]
        # Short: find out which records hold the values now.
        found = self._existing(form, ids, list(values))
        out = []
        for rid in ids:
            row = found.get(rid)
            if row is None:
                out.append(RecordResult(rid, False, error=NOT_FOUND))
            elif all(row.get(k) == v for k, v in values.items()):
                out.append(RecordResult(rid, True))
            else:
                out.append(RecordResult(rid, False, error=NOT_WRITTEN, retryable=True))
        return out

    def _existing(self, form: Form, ids: list[str], fields: list[str]) -> dict[str, dict]:
        """The records among ``ids`` that exist, by id (with at least ``fields``).

        By default one documented ``data/get`` per id (30/s; "no such record" is code 4000,
        an assumption). With ``id_filter = true`` one ``data/list`` with ``_id in [ids]``
        instead. Assumption: the filter takes ``_id`` -- it is not among the filter fields the
        documentation lists, so it is opt-in, for deployments where an admin checked it."""
        if self.id_filter:
            return self._existing_by_filter(form, ids, fields)
        spec = form.settings
        found: dict[str, dict] = {}
        for rid in ids:
            body = {"app_id": spec.app_id, "entry_id": spec.entry_id, "data_id": rid}
            try:
                answer, _, _ = self.api.call("verify", "data/get", body, module=spec.name)
            except JiandaoyunError as err:
                if err.code == DATA_NOT_FOUND:
                    continue
                raise
            row = answer.get("data")
            if not isinstance(row, dict) or row.get(ID_FIELD) != rid:
                raise BadResponseError(
                    f"data/get of record {rid} answered without that record",
                    connection=self.api.name,
                    module=spec.name,
                )
            found[rid] = row
        return found

    def _existing_by_filter(self, form: Form, ids: list[str], fields: list[str]) -> dict[str, dict]:
        spec = form.settings
        body = {
            "app_id": spec.app_id,
            "entry_id": spec.entry_id,
            "limit": len(ids),
            "filter": {"rel": "and", "cond": [{"field": ID_FIELD, "method": "in", "value": ids}]},
        }
        if fields:
            body["fields"] = fields
        answer, _, _ = self.api.call("verify", "data/list", body, module=spec.name)
        rows = answer.get("data")
        if not isinstance(rows, list):
            raise BadResponseError(
                "data/list answered without a data list",
                connection=self.api.name,
                module=spec.name,
            )
        return {str(r[ID_FIELD]): r for r in rows if isinstance(r, dict) and r.get(ID_FIELD) in ids}

    # ------------------------------------------------------------------ delete

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        form = self.forms.form(module)
        spec = form.settings
        results: list[RecordResult] = []
        for chunk in _chunks([str(i) for i in record_ids]):
            existing = self._existing(form, chunk, [])
            present = [i for i in chunk if i in existing]
            missing = [i for i in chunk if i not in existing]
            results += [RecordResult(i, False, error=NOT_FOUND) for i in missing]
            if not present:
                continue
            body = {"app_id": spec.app_id, "entry_id": spec.entry_id, "data_ids": present}
            answer, _, _ = self.api.call("write", "data/batch_delete", body, module=module)
            count = _count(answer, "data/batch_delete", self.api.name, module)
            left: set[str] = set()
            if count < len(present):
                left = set(self._existing(form, present, []))
            results += [
                RecordResult(i, False, error=NOT_DELETED, retryable=True)
                if i in left
                else RecordResult(i, True)
                for i in present
            ]
        return results


def _count(answer: dict[str, Any], endpoint: str, connection: str, module: str) -> int:
    count = answer.get("success_count")
    if answer.get("status") != "success" or isinstance(count, bool) or not isinstance(count, int):
        raise BadResponseError(
            f"{endpoint} answered without status success and a success_count: {str(answer)[:120]}",
            connection=connection,
            module=module,
        )
    return count
