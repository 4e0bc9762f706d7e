"""Fxiaoke's ``life_status`` as crmsync's lifecycle status, and the paths of each object.

``life_status`` values (reference: a Facishare internal enum) and what crmsync makes of them:

* ``normal`` 正常 -> ``active``; ``archived`` when the configured archive field holds its value.
* ``invalid`` 作废 -> ``voided``: the record is in Fxiaoke's recycle bin; ``recover`` brings it
  back, ``delete`` removes it for good.
* ``ineffective`` 未生效 (created, approval not passed yet), ``under_review`` 审核中 (in an
  approval flow), ``in_change`` 变更中 (a change awaiting approval) -> ``active``: the record is
  live and in the working lists, only locked by a flow. Policies may select it; Fxiaoke may
  refuse to invalid a locked record, which comes back as that record's failed result.
* anything else (a value added later) -> ``active``, the safe reading: never voided by guess.

Archive: Fxiaoke has no native archive. Voiding (invalid) is not an archive: it moves the
record to the recycle bin, out of every list and report. So archive is offered only when the
admin names a field (a custom select/boolean such as ``crmsync_archived__c``) and its value;
otherwise ``ModuleInfo.actions`` leaves archive out and an archive policy is refused clearly.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crmsync_connectors.fxiaoke.settings import ArchiveSettings

LIFE_STATUS = "life_status"
MODIFIED_FIELD = "last_modified_time"
ID_FIELD = "_id"
INVALID = "invalid"
ACTIVE_LIFE_STATUSES = ("normal", "ineffective", "under_review", "in_change")
LIFE_STATUSES = (*ACTIVE_LIFE_STATUSES, INVALID)


def every_life_status() -> dict[str, object]:
    """The filter sent with every query. Whether ``query`` returns invalid records unasked is
    not documented (the reference advises filtering on life_status explicitly); asking for
    every known value returns them either way. Assumption: no other value exists (one added
    later would not be mirrored until it is listed here)."""
    return {"field_name": LIFE_STATUS, "operator": "IN", "field_values": list(LIFE_STATUSES)}


def record_status(data: Mapping[str, Any], archive: ArchiveSettings | None) -> str:
    if data.get(LIFE_STATUS) == INVALID:
        return "voided"
    if archive is not None and data.get(archive.field) == archive.value:
        return "archived"
    return "active"


def iso_ms(value: Any) -> str | None:
    """Epoch milliseconds (int, or digits as text) as ISO-8601 UTC ``Z``; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float):
        return None
    try:
        moment = datetime.fromtimestamp(float(value) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def data_path(object_name: str, action: str) -> str:
    """Preset objects use ``/cgi/crm/v2/data/*``; custom ones (``__c``) the custom paths."""
    if object_name.endswith("__c"):
        return f"/cgi/crm/custom/v2/data/{action}"
    return f"/cgi/crm/v2/data/{action}"


#: Custom objects only: invalid of many ids in one call (the reference: no ``v2`` here).
CUSTOM_BATCH_INVALID = "/cgi/crm/custom/data/invalid"
