"""The fake's form and seed records: one CRM-like form (客户), deterministic from the seed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

APP_ID = "5f3a0c1e2b4d6f0001a00001"
ENTRY_ID = "5f3a0c1e2b4d6f0001b00001"
EMPTY_ENTRY_ID = "5f3a0c1e2b4d6f0001b00002"  # a second form of the app, with no records
CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)

STATUS_OPTIONS = ("正常", "已归档", "已作废")
LEVELS = ("A", "B", "C", "流失")

#: The form's widgets as widget/list answers them. ``customer_name`` has an alias (the API then
#: names it by the alias everywhere); the others go by their _widget_ id.
WIDGETS: list[dict[str, Any]] = [
    {
        "name": "customer_name",
        "widgetName": "_widget_1600000000001",
        "label": "客户名称",
        "type": "text",
    },
    {"name": "_widget_1600000000002", "label": "联系电话", "type": "text"},
    {
        "name": "_widget_1600000000003",
        "label": "客户等级",
        "type": "combo",
        "items": [{"text": v, "value": v} for v in LEVELS],
    },
    {"name": "_widget_1600000000004", "label": "邮箱", "type": "text"},
    {
        "name": "_widget_1600000000005",
        "label": "状态",
        "type": "radiogroup",
        "items": [{"text": v, "value": v} for v in STATUS_OPTIONS],
    },
    {"name": "_widget_1600000000006", "label": "金额", "type": "number"},
    {"name": "_widget_1600000000007", "label": "备注", "type": "textarea"},
]
for _w in WIDGETS:
    _w.setdefault("widgetName", _w["name"])

STATUS_WIDGET = "_widget_1600000000005"
LEVEL_WIDGET = "_widget_1600000000003"
SYSTEM_WIDGETS = ("_id", "appId", "entryId", "creator", "updater", "createTime", "updateTime")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_WORDS = ("科技", "贸易", "实业", "信息", "咨询", "电子", "物流", "建设")
_CITIES = ("上海", "北京", "深圳", "杭州", "成都", "武汉", "南京", "苏州")


def jdy_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def member(name: str, username: str) -> dict[str, Any]:
    return {
        "name": name,
        "username": username,
        "status": 1,
        "type": 0,
        "departments": [1],
        "integrate_id": username,
    }


def record_id(index: int, seed: int) -> str:
    """24 hex digits, ascending with ``index`` like MongoDB ObjectIds of records created in turn."""
    return f"{0x5E000000 + index * 97:08x}{seed % 0xFFFF:04x}{index:012x}"


def seed_records(count: int, seed: int, start: datetime) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    span = 3 * 365 * 86400
    out = []
    for i in range(count):
        created = start - timedelta(seconds=span - i * (span // max(count, 1)))
        updated = created + timedelta(seconds=rng.randint(0, 86400 * 30), milliseconds=i % 1000)
        updated = min(updated, start - timedelta(days=1))
        owner = member(rng.choice(("小简", "销售一", "销售二")), f"user{rng.randint(1, 3)}")
        out.append(
            {
                "_id": record_id(i, seed),
                "appId": APP_ID,
                "entryId": ENTRY_ID,
                "creator": owner,
                "updater": owner,
                "createTime": jdy_time(created),
                "updateTime": jdy_time(updated),
                "customer_name": f"{rng.choice(_CITIES)}{rng.choice(_WORDS)}"
                f"{rng.choice(_SURNAMES)}{i}有限公司",
                "_widget_1600000000002": f"1{rng.randint(30, 89)}{rng.randint(10**7, 10**8 - 1)}",
                LEVEL_WIDGET: rng.choice(LEVELS),
                "_widget_1600000000004": f"contact{i}@example.cn" if rng.random() < 0.8 else "",
                STATUS_WIDGET: "正常" if rng.random() < 0.9 else "",
                "_widget_1600000000006": round(rng.uniform(0, 50000), 2),
                "_widget_1600000000007": "",
            }
        )
    return out
