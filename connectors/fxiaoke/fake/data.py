"""Seed data of the fake Fxiaoke: objects, their fields, and deterministic records."""

from __future__ import annotations

import random
from typing import Any

#: apiName -> fields a user can write (system fields are added to every object).
OBJECTS: dict[str, tuple[str, ...]] = {
    "AccountObj": (
        "name", "account_no", "tel", "email", "industry", "account_level", "remark",
        "crmsync_archived__c",
    ),
    "LeadsObj": (
        "name", "company", "mobile", "email", "leads_status", "source", "remark",
        "crmsync_archived__c",
    ),
    "ContactObj": ("name", "account_id", "mobile", "email", "job_title", "crmsync_archived__c"),
    "Visit__c": ("name", "visit_date__c", "result__c", "account_id", "crmsync_archived__c"),
}  # fmt: skip

#: Present on every record; not writable through update.
SYSTEM_FIELDS = (
    "_id", "owner", "create_time", "last_modified_time", "created_by", "last_modified_by",
    "record_type", "lock_status", "is_deleted", "life_status", "object_describe_api_name",
    "version",
)  # fmt: skip

LIFE_STATUSES = (
    ("normal", 0.93),
    ("invalid", 0.03),
    ("under_review", 0.02),
    ("in_change", 0.01),
    ("ineffective", 0.01),
)
INDUSTRIES = ("制造业", "零售", "互联网", "金融", "教育", "医疗")
LEADS_STATUSES = ("un_processed", "processed", "closed", "junk")
OPERATOR = "FSUID_0A1B2C3D4E5F60718293A4B5C6D7E8F9"
YEAR_MS = 365 * 86_400_000


def new_id(rng: random.Random) -> str:
    """A 24-hex id like Fxiaoke's (ObjectId-shaped); random, so _id order is not age order."""
    return f"{rng.getrandbits(96):024x}"


def _life_status(rng: random.Random) -> str:
    roll = rng.random()
    for value, share in LIFE_STATUSES:
        if roll < share:
            return value
        roll -= share
    return "normal"


def generate(obj: str, count: int, seed: int, now_ms: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:{obj}")
    out: list[dict[str, Any]] = []
    for n in range(count):
        created = now_ms - rng.randrange(120_000, 2 * YEAR_MS)
        modified = created + rng.randrange(0, now_ms - 60_000 - created)  # a minute ago at most
        record: dict[str, Any] = {
            "_id": new_id(rng),
            "name": f"{obj.removesuffix('Obj').removesuffix('__c')} {n:05d}",
            "owner": [OPERATOR],
            "create_time": created,
            "last_modified_time": modified,
            "created_by": [OPERATOR],
            "last_modified_by": [OPERATOR],
            "record_type": "default__c",
            "lock_status": "0",
            "is_deleted": False,
            "life_status": _life_status(rng),
            "object_describe_api_name": obj,
            "version": "1",
        }
        if obj == "AccountObj":
            record.update(
                account_no=f"A{n:06d}",
                tel=f"0755-{rng.randrange(10_000_000, 99_999_999)}",
                email=f"contact{n}@example.cn",
                industry=rng.choice(INDUSTRIES),
                account_level=rng.choice(("A", "B", "C")),
                remark="" if rng.random() < 0.5 else "key account",
            )
        elif obj == "LeadsObj":
            record.update(
                company=f"公司 {n}",
                mobile=f"13{rng.randrange(100_000_000, 999_999_999)}",
                email=f"lead{n}@example.cn",
                leads_status=rng.choice(LEADS_STATUSES),
                source=rng.choice(("web", "event", "referral")),
                remark="",
            )
        elif obj == "ContactObj":
            record.update(
                account_id="",
                mobile=f"139{rng.randrange(10_000_000, 99_999_999)}",
                email=f"person{n}@example.cn",
                job_title=rng.choice(("经理", "总监", "工程师")),
            )
        else:
            record.update(
                visit_date__c=created,
                result__c=rng.choice(("ok", "follow_up", "lost")),
                account_id="",
            )
        record["crmsync_archived__c"] = None
        out.append(record)
    return out
