"""The fake DingTalk CRM's objects, their field metadata and deterministic seed records.

Four objects, as DingTalk's official CRM (客户管理) has them: company customers
(``crm_customer``) and personal customers (``crm_customer_personal``), read through the v1.0
API; contacts (``crm_contact``) and follow records (``crm_follow_record``), read through the
older ``/topapi`` API. Field ids look like DingTalk's (``customer_name``,
``DDSelectField-…``); every object has a custom single-select 状态 field (the status field an
admin adds for crmsync) with options 正常 / 已归档 / 作废.

Records are a pure function of ``(seed, object, count, clock_start)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

CN_TZ = timezone(timedelta(hours=8))  # DingTalk answers wall-clock times in China time
DEFAULT_CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)

NEW_API_OBJECTS = ("crm_customer", "crm_customer_personal")
OLD_API_OBJECTS = ("crm_contact", "crm_follow_record")
OBJECTS = NEW_API_OBJECTS + OLD_API_OBJECTS

STATUS_OPTIONS = (("option_0", "正常"), ("option_1", "已归档"), ("option_2", "作废"))
#: The 状态 field's id per object (what the admin's config names).
STATUS_FIELDS = {
    "crm_customer": "DDSelectField-STATUS01",
    "crm_customer_personal": "DDSelectField-STATUS02",
    "crm_contact": "DDSelectField-CSTATUS1",
    "crm_follow_record": "DDSelectField-FSTATUS1",
}
USERS = ("manager4711", "user0102", "user0233", "user0377")
SOURCES = (("option_s0", "官网"), ("option_s1", "展会"), ("option_s2", "转介绍"))
FOLLOW_KINDS = (("option_K2U5VJBL", "当面拜访"), ("option_K2U5VJBM", "电话"))
COMPANIES = ("杭州", "上海", "北京", "深圳", "成都", "苏州")
TRADES = ("科技", "贸易", "物流", "餐饮", "咨询", "制造")


def _select(options: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in options]


#: objectMeta / describe ``fields`` per object: name, label, type, nillable, selectOptions.
FIELDS: dict[str, list[dict[str, Any]]] = {
    "crm_customer": [
        {"name": "customer_name", "label": "客户名称", "type": "TextField", "nillable": False},
        {"name": "customer_phone", "label": "电话", "type": "DDPhoneField", "nillable": True},
        {"name": "customer_address", "label": "地址", "type": "TextField", "nillable": True},
        {
            "name": "DDSelectField-SOURCE01",
            "label": "客户来源",
            "type": "DDSelectField",
            "nillable": True,
            "selectOptions": _select(SOURCES),
        },
    ],
    "crm_contact": [
        {"name": "contact_name", "label": "姓名", "type": "TextField", "nillable": False},
        {"name": "contact_phone", "label": "手机", "type": "DDPhoneField", "nillable": True},
        {
            "name": "contact_related_customer",
            "label": "关联客户",
            "type": "CustomerField",
            "nillable": False,
        },
    ],
    "crm_follow_record": [
        {
            "name": "follow_record_related_customer",
            "label": "关联客户",
            "type": "CustomerField",
            "nillable": False,
        },
        {
            "name": "DDSelectField-K2U5UJAC",
            "label": "跟进方式",
            "type": "DDSelectField",
            "nillable": True,
            "selectOptions": _select(FOLLOW_KINDS),
        },
        {"name": "TextareaField-K2U5UJAF", "label": "跟进内容", "type": "TextareaField",
         "nillable": True},
    ],
}  # fmt: skip
FIELDS["crm_customer_personal"] = [dict(f) for f in FIELDS["crm_customer"]]
for _obj, _fid in STATUS_FIELDS.items():
    FIELDS[_obj].append(
        {
            "name": _fid,
            "label": "状态",
            "type": "DDSelectField",
            "nillable": True,
            "selectOptions": _select(STATUS_OPTIONS),
        }
    )


def select_value(options: tuple[tuple[str, str], ...], label: str) -> dict[str, str]:
    """A select field's value as DingTalk stores it: the label plus {label, key} as JSON."""
    return dict(_select_value(options, label))


@functools.lru_cache(maxsize=64)
def _select_value(options: tuple[tuple[str, str], ...], label: str) -> dict[str, str]:
    key = next((k for k, v in options if v == label), "")
    extend = json.dumps({"label": label, "key": key}, ensure_ascii=False)
    return {"value": label, "extendValue": extend}


def fmt_time(ts: int) -> str:
    """Epoch seconds -> ``2019-12-25 15:33:12`` in China time, as DingTalk writes times."""
    return datetime.fromtimestamp(ts, CN_TZ).strftime("%Y-%m-%d %H:%M:%S")


def instance_id(obj: str, seed: int, n: int) -> str:
    digest = hashlib.sha1(f"{obj}/{seed}/{n}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{n:08d}"


@dataclass
class Rec:
    id: str
    obj: str
    data: dict[str, Any]
    created: int
    modified: int
    creator: str
    owners: list[str] = field(default_factory=list)

    def status_label(self) -> str | None:
        value = self.data.get(STATUS_FIELDS[self.obj])
        return value.get("value") if isinstance(value, dict) else None


def generate(obj: str, count: int, seed: int, clock_start: datetime) -> list[Rec]:
    """``count`` records of ``obj``, created and modified in the 3 years before clock_start.
    About a tenth have no 状态 value yet (the field was added after they were created)."""
    rng = random.Random(f"crmsync-fake-dingtalk/{obj}/{seed}")
    end = int(clock_start.timestamp())
    start = end - 3 * 365 * 86400
    out = []
    for n in range(count):
        created = rng.randint(start, end - 3600)
        modified = rng.randint(created, end - 60)
        owner = rng.choice(USERS)
        city, trade = rng.choice(COMPANIES), rng.choice(TRADES)
        if obj in NEW_API_OBJECTS:
            data: dict[str, Any] = {
                "customer_name": f"{city}{trade}有限公司{n:05d}",
                "customer_phone": {"value": f"1{rng.randint(3, 9)}{rng.randint(0, 10**9):09d}"},
                "customer_address": f"{city}市{rng.randint(1, 999)}号",
                "DDSelectField-SOURCE01": select_value(SOURCES, rng.choice(SOURCES)[1]),
            }
        elif obj == "crm_contact":
            data = {
                "contact_name": f"联系人{n:05d}",
                "contact_phone": {"value": f"1{rng.randint(3, 9)}{rng.randint(0, 10**9):09d}"},
                "contact_related_customer": {
                    "value": json.dumps([str(rng.randint(1, 99))]),
                    "extendValue": json.dumps(
                        {"quote": 1, "list": [{"instanceId": instance_id("crm_customer", seed, n)}]}
                    ),
                },
            }
        else:
            data = {
                "follow_record_related_customer": {
                    "value": json.dumps([str(rng.randint(1, 99))]),
                    "extendValue": json.dumps(
                        {"quote": 1, "list": [{"instanceId": instance_id("crm_customer", seed, n)}]}
                    ),
                },
                "DDSelectField-K2U5UJAC": select_value(FOLLOW_KINDS, rng.choice(FOLLOW_KINDS)[1]),
                "TextareaField-K2U5UJAF": f"第{n}次跟进",
            }
        if rng.random() >= 0.1:
            data[STATUS_FIELDS[obj]] = select_value(STATUS_OPTIONS, "正常")
        out.append(Rec(instance_id(obj, seed, n), obj, data, created, modified, owner, [owner]))
    return out
