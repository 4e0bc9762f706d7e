"""Write-back through Fxiaoke's native lifecycle: void = ``invalid`` (作废), restore =
``recover`` (恢复), purge = ``delete`` (after ``invalid``), and field writes (``update``) for
archive (when configured) and update.

Calls per batch of M records (at most 100):

* void, preset object: M ``invalid`` calls (it takes one ``object_data_id``); custom object:
  one batch ``invalid`` (``idList``).
* restore: one ``recover`` (``idList``); with an archive field configured, a state ``query``
  first (which records are invalid, which archived) and one ``update`` per archived record.
* purge: one ``delete`` (``idList``). Fxiaoke deletes only invalid records, so a batch holding
  active ones costs one state ``query``, an ``invalid`` per active record (as void), then the
  ``delete`` (the reference: delete = invalid + delete; crmsync follows it rather than refuse).
* archive / update / restore of an archived record: one ``update`` per record.

The batch endpoints answer one errorCode for the whole call. Assumption: a failed batch call
changed nothing (not documented); crmsync then asks the records' state with one ``query`` and
answers each record: already in the wanted state, gone, or sent again on its own.
Failures get a code first (``ALREADY_VOIDED``, ``NOT_VOIDED``, ``NOT_FOUND``,
``FXIAOKE_<errorCode>``), then the connection, object and record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crmsync.errors import AuthError, ConnectorError
from crmsync.hookspecs import RecordResult, StatusChange
from crmsync_connectors.fxiaoke.api import RATE_LIMITED, FxiaokeApi, FxiaokeError, QuotaError
from crmsync_connectors.fxiaoke.lifecycle import (
    CUSTOM_BATCH_INVALID,
    ID_FIELD,
    INVALID,
    LIFE_STATUS,
    MODIFIED_FIELD,
    data_path,
    every_life_status,
)
from crmsync_connectors.fxiaoke.pull import data_list
from crmsync_connectors.fxiaoke.settings import MAX_BATCH, FxiaokeSettings

LIFECYCLE = ("void", "restore", "purge")
RECYCLE_NOTE = "deleted from Fxiaoke for good (they were invalid, in its recycle bin)"


class Writer:
    def __init__(self, api: FxiaokeApi, settings: FxiaokeSettings) -> None:
        self.api = api
        self.settings = settings

    def supported_actions(self) -> tuple[str, ...]:
        archive = ("archive",) if self.settings.archive is not None else ()
        return (*archive, *LIFECYCLE, "update")

    # ------------------------------------------------------------------ helpers

    def _fail(self, module: str, rid: str, code: str, why: str, retryable: bool = False):
        return RecordResult(
            rid,
            False,
            error=f"{code}: connection {self.api.name!r}, {module} record {rid} {why}",
            retryable=retryable,
        )

    def _from_error(self, module: str, rid: str, err: FxiaokeError) -> RecordResult:
        return self._fail(
            module,
            rid,
            f"FXIAOKE_{err.code}",
            f"refused: {err.server_message or 'no message'}",
            retryable=err.code in RATE_LIMITED,
        )

    def states(self, module: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: row} of those ids that exist (life_status, modified time, archive field)."""
        fields = [ID_FIELD, LIFE_STATUS, MODIFIED_FIELD]
        if self.settings.archive is not None:
            fields.append(self.settings.archive.field)
        out: dict[str, dict[str, Any]] = {}
        path = data_path(module, "query")
        for start in range(0, len(ids), MAX_BATCH):
            chunk = list(ids[start : start + MAX_BATCH])
            data = {
                "dataObjectApiName": module,
                "search_query_info": {
                    "limit": len(chunk),
                    "offset": 0,
                    "filters": [
                        {"field_name": ID_FIELD, "operator": "IN", "field_values": chunk},
                        every_life_status(),
                    ],
                    "orders": [{"fieldName": ID_FIELD, "isAsc": True}],
                    "fieldProjection": fields,
                },
            }
            answer, _ = self.api.call("query", path, data, module=module, idempotent=True)
            rows, _total = data_list(answer, path, self.api.name, module, 1)
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get(ID_FIELD), str):
                    out[row[ID_FIELD]] = row
        return out

    def _explain(
        self, module: str, failed: dict[str, FxiaokeError], wanted_invalid: bool
    ) -> dict[str, RecordResult]:
        """Turn failed single-record calls into clear results, from the records' state."""
        if not failed:
            return {}
        rows = self.states(module, list(failed))
        out: dict[str, RecordResult] = {}
        for rid, err in failed.items():
            row = rows.get(rid)
            if row is None:
                out[rid] = self._fail(module, rid, "NOT_FOUND", "does not exist (or is deleted)")
            elif wanted_invalid and row.get(LIFE_STATUS) == INVALID:
                out[rid] = self._fail(module, rid, "ALREADY_VOIDED", "is already invalid (作废)")
            else:
                out[rid] = self._from_error(module, rid, err)
        return out

    # ------------------------------------------------------------------ push

    def push(self, module: str, changes: Sequence[StatusChange]) -> list[RecordResult]:
        supported = self.supported_actions()
        for change in changes:
            if change.action not in supported:
                why = (
                    "Fxiaoke has no native archive; set [connections.NAME.archive] (field, value) "
                    "to archive by a field"
                    if change.action == "archive"
                    else f"supported: {', '.join(supported)}"
                )
                raise ConnectorError(
                    f"action {change.action!r} is not supported by the Fxiaoke connector ({why})",
                    connection=self.api.name,
                    module=module,
                )
        results: dict[str, RecordResult] = {}
        by_action: dict[str, list[StatusChange]] = {}
        for change in changes:
            by_action.setdefault(change.action, []).append(change)
        archive = self.settings.archive
        for action, group in by_action.items():
            for start in range(0, len(group), MAX_BATCH):
                chunk = group[start : start + MAX_BATCH]
                if action == "void":
                    # extra values (a reason) first: an invalid record takes no more updates
                    before = self._updates(
                        module, [(c.record_id, dict(c.fields)) for c in chunk if c.fields]
                    )
                    results.update({k: r for k, r in before.items() if not r.ok})
                    todo = [c.record_id for c in chunk if c.record_id not in results]
                    results.update(self.void(module, todo) if todo else {})
                elif action == "restore":
                    results.update(self.restore(module, chunk))
                elif action == "purge":
                    for r in self.delete(module, [c.record_id for c in chunk]):
                        results[r.record_id] = r
                elif action == "archive" and archive is not None:
                    results.update(
                        self._updates(
                            module, [(c.record_id, {**c.fields, archive.field: archive.value})
                                     for c in chunk]
                        )
                    )  # fmt: skip
                else:  # update
                    results.update(self._updates(module, [(c.record_id, dict(c.fields))
                                                          for c in chunk]))  # fmt: skip
        return [results[c.record_id] for c in changes]

    # ------------------------------------------------------------------ void

    def void(self, module: str, ids: Sequence[str]) -> dict[str, RecordResult]:
        if module.endswith("__c") and len(ids) > 1:
            try:
                self.api.call(
                    "write", CUSTOM_BATCH_INVALID,
                    {"dataObjectApiName": module, "idList": list(ids)}, module=module,
                )  # fmt: skip
                return {rid: RecordResult(rid, True) for rid in ids}
            except (AuthError, QuotaError):
                raise
            except FxiaokeError:
                rows = self.states(module, ids)
                results: dict[str, RecordResult] = {}
                todo = []
                for rid in ids:
                    if rid not in rows:
                        results[rid] = self._fail(module, rid, "NOT_FOUND", "does not exist")
                    elif rows[rid].get(LIFE_STATUS) == INVALID:
                        results[rid] = self._fail(
                            module, rid, "ALREADY_VOIDED", "is already invalid (作废)"
                        )
                    else:
                        todo.append(rid)
                return {**results, **self._void_each(module, todo)}
        return self._void_each(module, ids)

    def _void_each(self, module: str, ids: Sequence[str]) -> dict[str, RecordResult]:
        # Preset objects: one id per call (object_data_id is a string), so M calls; the
        # per-endpoint limiter keeps them within Fxiaoke's limit.
        path = data_path(module, "invalid")
        results: dict[str, RecordResult] = {}
        failed: dict[str, FxiaokeError] = {}
        for rid in ids:
            try:
                self.api.call(
                    "write", path, {"dataObjectApiName": module, "object_data_id": rid},
                    module=module,
                )  # fmt: skip
                results[rid] = RecordResult(rid, True)
            except (AuthError, QuotaError):
                raise
            except FxiaokeError as err:
                failed[rid] = err
        results.update(self._explain(module, failed, wanted_invalid=True))
        return results

    # ------------------------------------------------------------------ restore

    def restore(self, module: str, chunk: Sequence[StatusChange]) -> dict[str, RecordResult]:
        """Back to active: ``recover`` for invalid records, the archive field cleared where it is
        set (also on a record that was archived, then voided), then any restored field values
        (``restore --data``). Without an archive field one ``recover`` does the batch; with one,
        a state ``query`` first says which record needs what."""
        ids = [c.record_id for c in chunk]
        results: dict[str, RecordResult] = {}
        if self.settings.archive is None:
            try:
                data = {"dataObjectApiName": module, "idList": ids}
                self.api.call("write", data_path(module, "recover"), data, module=module)
                results = {rid: RecordResult(rid, True) for rid in ids}
            except (AuthError, QuotaError):
                raise
            except FxiaokeError:
                # some were not invalid, or are gone: ask, then answer each
                results = self._restore_by_state(module, chunk)
        else:
            results = self._restore_by_state(module, chunk)
        extra = [
            (c.record_id, dict(c.fields))
            for c in chunk
            if c.fields and (c.record_id not in results or results[c.record_id].ok)
        ]
        if extra:
            results.update(self._updates(module, extra))
        return results

    def _restore_by_state(
        self, module: str, chunk: Sequence[StatusChange]
    ) -> dict[str, RecordResult]:
        """Results for the records that need no field values afterwards; the others are left
        out when their state is fine (restore() then writes their values)."""
        ids = [c.record_id for c in chunk]
        with_values = {c.record_id for c in chunk if c.fields}
        archive = self.settings.archive
        rows = self.states(module, ids)
        results: dict[str, RecordResult] = {}
        invalid = [rid for rid in ids if rows.get(rid, {}).get(LIFE_STATUS) == INVALID]
        if invalid:
            results.update(self._recover_each(module, invalid))
        unarchive = []
        for rid in ids:
            row = rows.get(rid)
            if row is None:
                results[rid] = self._fail(module, rid, "NOT_FOUND", "does not exist")
            elif archive is not None and row.get(archive.field) == archive.value:
                if rid not in results or results[rid].ok:
                    unarchive.append((rid, {archive.field: archive.active_value}))
            elif row.get(LIFE_STATUS) != INVALID and rid not in with_values:
                results[rid] = self._fail(
                    module,
                    rid,
                    "NOT_VOIDED",
                    "is neither invalid nor archived (nothing to restore)",
                )
        results.update(self._updates(module, unarchive))
        return results

    def _recover_each(self, module: str, ids: Sequence[str]) -> dict[str, RecordResult]:
        path = data_path(module, "recover")
        if len(ids) > 1:
            try:
                self.api.call("write", path, {"dataObjectApiName": module, "idList": list(ids)},
                              module=module)  # fmt: skip
                return {rid: RecordResult(rid, True) for rid in ids}
            except (AuthError, QuotaError):
                raise
            except FxiaokeError:
                pass
        out: dict[str, RecordResult] = {}
        for rid in ids:
            try:
                self.api.call("write", path, {"dataObjectApiName": module, "idList": [rid]},
                              module=module)  # fmt: skip
                out[rid] = RecordResult(rid, True)
            except (AuthError, QuotaError):
                raise
            except FxiaokeError as err:
                out[rid] = self._from_error(module, rid, err)
        return out

    # ------------------------------------------------------------------ updates

    def _updates(
        self, module: str, rows: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> dict[str, RecordResult]:
        path = data_path(module, "update")
        top = {
            "triggerWorkFlow": self.settings.trigger_workflow,
            "triggerApprovalFlow": self.settings.trigger_approval,
        }
        results: dict[str, RecordResult] = {}
        failed: dict[str, FxiaokeError] = {}
        for rid, fields in rows:
            if not fields:
                results[rid] = RecordResult(rid, True)  # nothing to write
                continue
            body = {"object_data": {ID_FIELD: rid, "dataObjectApiName": module, **fields}}
            try:
                self.api.call("write", path, body, module=module, top=top)
                results[rid] = RecordResult(rid, True)
            except (AuthError, QuotaError):
                raise
            except FxiaokeError as err:
                failed[rid] = err
        results.update(self._explain(module, failed, wanted_invalid=False))
        return results

    # ------------------------------------------------------------------ delete

    def delete(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        out: list[RecordResult] = []
        for start in range(0, len(record_ids), MAX_BATCH):
            ids = [str(i) for i in record_ids[start : start + MAX_BATCH]]
            results = self._delete_batch(module, ids)
            out += [results[rid] for rid in ids]
        return out

    def _delete_batch(self, module: str, ids: list[str]) -> dict[str, RecordResult]:
        path = data_path(module, "delete")
        try:  # voided records, the usual case: one call
            self.api.call("write", path, {"dataObjectApiName": module, "idList": ids},
                          module=module)  # fmt: skip
            return {rid: RecordResult(rid, True) for rid in ids}
        except (AuthError, QuotaError):
            raise
        except FxiaokeError:
            pass
        rows = self.states(module, ids)
        results: dict[str, RecordResult] = {}
        for rid in ids:
            if rid not in rows:
                results[rid] = self._fail(module, rid, "NOT_FOUND", "does not exist")
        active = [rid for rid in ids if rid in rows and rows[rid].get(LIFE_STATUS) != INVALID]
        voided = self.void(module, active) if active else {}
        for rid, result in voided.items():
            if not result.ok:
                results[rid] = result
        deletable = [rid for rid in ids if rid not in results]
        if deletable:
            try:
                self.api.call("write", path, {"dataObjectApiName": module, "idList": deletable},
                              module=module)  # fmt: skip
                results.update({rid: RecordResult(rid, True) for rid in deletable})
            except (AuthError, QuotaError):
                raise
            except FxiaokeError:
                for rid in deletable:
                    try:
                        self.api.call("write", path, {"dataObjectApiName": module,
                                                      "idList": [rid]}, module=module)  # fmt: skip
                        results[rid] = RecordResult(rid, True)
                    except (AuthError, QuotaError):
                        raise
                    except FxiaokeError as err:
                        results[rid] = self._from_error(module, rid, err)
        return results
