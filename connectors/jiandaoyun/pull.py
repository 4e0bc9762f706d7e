"""Pulling a form: ``data/list`` pages over the ``data_id`` cursor, increments by ``updateTime``.

``data/list`` always answers in ascending ``_id`` order (open/14220): the cursor is the last
``_id`` of the previous page, and a page shorter than ``limit`` is the last one (a full last
page costs one more call, answered empty). An incremental pull adds the filter
``updateTime range [T, null]`` (inclusive).

Checkpoints. Records come in ``_id`` order, not ``updateTime`` order, so the newest time seen is
NOT a safe checkpoint: a record with a smaller ``_id`` edited while the pull runs would be
behind the cursor and newer than nothing we saw. A pull therefore remembers its start S, the
server's clock (``Date`` of the first answer, floored to the second) less
``incremental_overlap`` seconds for clock skew between Jiandaoyun's servers:

* final page: checkpoint ``S`` (ISO-8601 UTC). The next pull asks ``updateTime >= S``: every
  record changed after this pull began is read again, so nothing edited during it is skipped.
* other pages: ``S|T|last_id`` (T = this pull's own lower bound, empty for a full pull).
  Resuming from it continues the same query after ``last_id`` and ends with checkpoint ``S``:
  records behind the cursor that changed meanwhile have ``updateTime >= S``.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.errors import BadResponseError, ConnectorError
from crmsync.hookspecs import Page, PulledRecord
from crmsync_connectors.jiandaoyun.api import JiandaoyunApi
from crmsync_connectors.jiandaoyun.forms import ID_FIELD, MODIFIED_FIELD, Form, Forms
from crmsync_connectors.jiandaoyun.settings import JiandaoyunSettings


def parse_time(value: str) -> datetime:
    """``2017-10-20T22:41:51.430Z`` (or with an offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def jdy_time(moment: datetime) -> str:
    """The filter value for a time: Jiandaoyun's own form, milliseconds and ``Z``.
    Assumption: ``range`` on ``updateTime`` takes a full timestamp (the docs show dates)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Checkpoint:
    start: datetime  # the next pull's lower bound
    lower: datetime | None = None  # this pull's lower bound (mid-pull checkpoints)
    after: str | None = None  # the cursor (mid-pull checkpoints)

    def encode(self) -> str:
        if self.after is None:
            return jdy_time(self.start)
        lower = jdy_time(self.lower) if self.lower else ""
        return f"{jdy_time(self.start)}|{lower}|{self.after}"

    @classmethod
    def decode(cls, text: str) -> Checkpoint:
        parts = text.split("|")
        try:
            if len(parts) == 1:
                return cls(parse_time(parts[0]))
            if len(parts) == 3 and parts[2]:
                lower = parse_time(parts[1]) if parts[1] else None
                return cls(parse_time(parts[0]), lower, parts[2])
        except ValueError:
            pass
        raise ConnectorError(
            f"checkpoint {text[:80]!r} is not one this connector wrote (an ISO time, or "
            "START|LOWER|LAST_ID); pull with --full to start again"
        )


def server_time(response: Any) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class StatusReader:
    """The lifecycle status a record shows: its status widget's option text, mapped back.
    Resolved once per pull (not per record)."""

    def __init__(self, form: Form) -> None:
        status = form.settings.status
        self.name: str | None = None
        self.by_text: dict[Any, str] = {}
        if status is not None:
            self.name = form.resolve(status.field, connection="").name
            for name in ("active", "archived", "voided"):
                self.by_text.setdefault(status.values[name], name)

    def __call__(self, record: Mapping[str, Any]) -> str | None:
        if self.name is None:
            return None
        value = record.get(self.name)
        # empty or another option: the record is in the working lists
        return self.by_text.get(value, "active") if isinstance(value, str) else "active"


_JDY_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def modified_z(value: str) -> str:
    """``updateTime`` as crmsync's ISO UTC form; Jiandaoyun's own form is converted by string
    (the pull's hot path), anything else parsed."""
    if _JDY_TIME.fullmatch(value):
        return value[:19] + "Z" if value[20:23] == "000" else value[:23] + "000Z"
    return iso_z(parse_time(value))


class Puller:
    def __init__(self, api: JiandaoyunApi, forms: Forms, settings: JiandaoyunSettings) -> None:
        self.api = api
        self.forms = forms
        self.settings = settings

    def pull(self, module: str, since: str | None) -> Iterator[Page]:
        form = self.forms.form(module)
        spec = form.settings
        checkpoint = Checkpoint.decode(since) if since else None
        if checkpoint is None:
            lower, after, start = None, None, None
        elif checkpoint.after is None:
            lower, after, start = checkpoint.start, None, None
        else:
            lower, after, start = checkpoint.lower, checkpoint.after, checkpoint.start
        fields = form.api_names(spec.fields, connection=self.api.name) if spec.fields else None
        if fields is not None:
            extra = [MODIFIED_FIELD]
            if spec.status is not None:
                extra.append(form.resolve(spec.status.field, connection=self.api.name).name)
            fields = list(dict.fromkeys([*fields, *extra]))
        status = StatusReader(form)
        limit = self.settings.page_size
        number = 0
        while True:
            number += 1
            body: dict[str, Any] = {"app_id": spec.app_id, "entry_id": spec.entry_id}
            body["limit"] = limit
            if after is not None:
                body["data_id"] = after
            if fields is not None:
                body["fields"] = fields
            if lower is not None:
                body["filter"] = {
                    "rel": "and",
                    "cond": [
                        {
                            "field": MODIFIED_FIELD,
                            "type": "datetime",
                            "method": "range",
                            "value": [jdy_time(lower), None],
                        }
                    ],
                }
            answer, response, calls = self.api.call(
                "record", "data/list", body, module=module, page=number
            )
            if start is None:
                now = server_time(response) or datetime.now(UTC)
                start = now.replace(microsecond=0) - timedelta(
                    seconds=self.settings.incremental_overlap
                )
            rows = answer.get("data")
            if not isinstance(rows, list):
                raise BadResponseError(
                    "data/list answered without a data list",
                    connection=self.api.name,
                    module=module,
                    page=number,
                )
            records = [self._record(form, status, row, number) for row in rows]
            if len(records) > limit:
                raise BadResponseError(
                    f"data/list answered {len(records)} records for limit {limit}",
                    connection=self.api.name,
                    module=module,
                    page=number,
                )
            more = len(records) == limit
            if records:
                last = records[-1].id
                if after is not None and last <= after:
                    raise BadResponseError(
                        f"data/list went backwards (last _id {last} after cursor {after})",
                        connection=self.api.name,
                        module=module,
                        page=number,
                    )
                after = last
            mark = Checkpoint(start, lower, after) if more else Checkpoint(start)
            yield Page(number, records, mark.encode(), api_calls=calls)
            if not more:
                return

    def _record(self, form: Form, status: StatusReader, row: Any, number: int) -> PulledRecord:
        rid = row.get(ID_FIELD) if isinstance(row, dict) else None
        if not isinstance(rid, str) or not rid:
            raise BadResponseError(
                f"data/list answered a record without {ID_FIELD}: {str(row)[:100]}",
                connection=self.api.name,
                module=form.settings.name,
                page=number,
            )
        modified = row.get(MODIFIED_FIELD)
        modified_at = None
        if isinstance(modified, str) and modified:
            try:
                modified_at = modified_z(modified)
            except ValueError:
                raise BadResponseError(
                    f"record {rid}: {MODIFIED_FIELD} {modified[:40]!r} is not a time",
                    connection=self.api.name,
                    module=form.settings.name,
                    page=number,
                ) from None
        return PulledRecord(rid, form.record_data(row), modified_at, status(row))
