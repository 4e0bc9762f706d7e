"""DingTalk records in both APIs' shapes -> :class:`PulledRecord`; times and checkpoints.

The v1.0 API answers ``{instanceId, data: {...}, gmtModified, permission: {ownerStaffIds}}``;
the old API ``{instance_id, data: "<JSON string>", gmt_modified, permission:
{owner_userid_list}}``. Both become one mirror shape: the record's own fields (``data``) plus
``instanceId``, ``objectType``, ``creatorUserId``, ``ownerStaffIds``, ``gmtCreate`` and
``gmtModified`` (as DingTalk wrote them: ``2019-12-25 15:33:12``, local time).
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timezone
from typing import Any

import orjson

from crmsync.errors import BadResponseError
from crmsync.hookspecs import PulledRecord
from crmsync_connectors.dingtalk.settings import StatusSettings

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ID_FIELD = "instanceId"
MODIFIED_FIELD = "gmtModified"
EPOCH = "1970-01-01T00:00:00Z"


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dingtalk_time(text: str, offset: timezone) -> datetime:
    """``2019-12-25 15:33:12`` in the org's offset (China time: +08:00) -> aware datetime.
    Epoch milliseconds (a number or digits) are accepted too."""
    if isinstance(text, int | float) or (isinstance(text, str) and text.isdigit()):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=offset)


def to_utc_z(text: Any, offset: timezone) -> str:
    """A DingTalk time -> ISO-8601 UTC ``Z``. The pull's hot path: the fixed layout is sliced
    by hand (strptime cost ~20 us a record); anything else goes through
    :func:`parse_dingtalk_time`. ValueError/TypeError when unreadable."""
    if (
        isinstance(text, str)
        and len(text) == 19
        and text[4] == "-"
        and text[10] == " "
        and text[13] == ":"
    ):
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError(text)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(text)
        shift = offset.utcoffset(None)
        seconds = calendar.timegm((year, month, day, hour, minute, second))
        seconds -= int(shift.total_seconds())
        t = time.gmtime(seconds)
        return (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
        )
    return iso_z(parse_dingtalk_time(text, offset))


def checkpoint_ms(checkpoint: str) -> int:
    """A checkpoint (ISO-8601 UTC) -> epoch milliseconds for a queryDsl BETWEEN."""
    try:
        moment = datetime.fromisoformat(checkpoint.replace("Z", "+00:00"))
    except ValueError:
        raise BadResponseError(f"not a DingTalk connector checkpoint: {checkpoint!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def label_of(value: Any) -> Any:
    """A select field's value: ``{"value": label, "extendValue": ...}`` -> label."""
    return value.get("value") if isinstance(value, dict) else value


def to_record(
    item: Any,
    *,
    old: bool,
    offset: timezone,
    status: StatusSettings | None,
    status_field: str | None,
    where: dict[str, Any],
) -> PulledRecord:
    """One record of either API -> PulledRecord; BadResponseError naming module and page."""
    if not isinstance(item, dict):
        raise _bad(where, f"a record is {type(item).__name__}, not an object")
    rid = item.get("instance_id" if old else "instanceId")
    if not isinstance(rid, str) or not rid:
        raise _bad(where, f"a record has no instance id: {sorted(item)[:8]}")
    fields = item.get("data")
    if old and isinstance(fields, str):
        try:
            fields = orjson.loads(fields)  # the old API sends data as a JSON string
        except ValueError:
            raise _bad(where, f"record {rid}: data is not valid JSON") from None
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise _bad(where, f"record {rid}: data is {type(fields).__name__}, not an object")
    permission = item.get("permission")
    if isinstance(permission, list):  # one documented example wraps it in a list
        permission = permission[0] if permission else {}
    permission = permission if isinstance(permission, dict) else {}
    modified = item.get("gmt_modified" if old else "gmtModified")
    created = item.get("gmt_create" if old else "gmtCreate")
    modified_at = None
    if modified not in (None, ""):
        try:
            modified_at = to_utc_z(modified, offset)
        except (TypeError, ValueError):
            raise _bad(where, f"record {rid}: unreadable modified time {modified!r}") from None
    data = {
        **fields,
        ID_FIELD: rid,
        "objectType": item.get("object_type" if old else "objectType"),
        "creatorUserId": item.get("creator_userid" if old else "creatorUserId"),
        "ownerStaffIds": permission.get("owner_userid_list" if old else "ownerStaffIds") or [],
        "gmtCreate": created,
        MODIFIED_FIELD: modified,
    }
    record_status = None
    if status is not None and status_field:
        record_status = status.status_of(label_of(fields.get(status_field)))
    return PulledRecord(id=rid, data=data, modified_at=modified_at, status=record_status)


def _bad(where: dict[str, Any], why: str) -> BadResponseError:
    return BadResponseError(
        why,
        connection=where.get("connection"),
        module=where.get("module"),
        page=where.get("page"),
    )
