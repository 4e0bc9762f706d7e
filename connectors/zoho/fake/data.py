"""Deterministic seed records for the fake Zoho org, and Zoho's time format.

Records are a pure function of ``(seed, module, count, clock start, timezone)``: each module has
its own random stream, so one module's data never changes when another's size does. Records are
streamed one at a time (100k Leads in a few seconds, bounded memory).

Ids are 19-digit numeric strings, increasing with ``Created_Time``; times are ISO 8601 with the
org's UTC offset (``2024-05-01T12:00:00+05:30``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from crmsync.sandbox.data import (
    CN_CITIES,
    CN_GIVEN,
    CN_MAIL,
    CN_MOBILE_PREFIXES,
    CN_SURNAMES,
    CN_TRADE_NAMES,
    EN_CITIES,
    EN_COMPANY_WORDS,
    EN_FIRST,
    EN_LAST,
    EN_MAIL,
    TAGS,
    TITLES_CN,
    TITLES_EN,
)
from crmsync_connectors.zoho.fake import schema as sc

DEFAULT_CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_TZ = "+05:30"
HISTORY_SECONDS = 3 * 365 * 86400  # seed records were created in the 3 years before the start
ID_BASE = 5_725_767_000_001_000_000  # 19 digits
ID_MODULE_STRIDE = 10_000_000_000_000  # room for 10^9 records per module (ids step <= 9)
TAG_IDS = {name: str(5725767000000700001 + i) for i, name in enumerate(TAGS)}


class Row(NamedTuple):
    """One stored record: id, created and modified epochs (modified None if the module has no
    Modified_Time) and the record as Zoho returns it (every field, ``id`` first)."""

    id: int
    created: int
    modified: int | None
    record: dict[str, Any]


# --------------------------------------------------------------------------- time


def parse_offset(offset: str) -> timezone:
    """``+05:30`` -> a fixed timezone."""
    sign = -1 if offset.startswith("-") else 1
    hours, _, minutes = offset.lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


class TimeFormat:
    """Formats epochs as Zoho does for an org in ``offset``; memoises the date part per day."""

    def __init__(self, offset: str = DEFAULT_TZ) -> None:
        self.offset = offset
        self.shift = int(parse_offset(offset).utcoffset(None).total_seconds())  # type: ignore[union-attr]
        self._days: dict[int, str] = {}

    def fmt(self, epoch: int) -> str:
        local = int(epoch) + self.shift
        day, rem = divmod(local, 86400)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        hours, rem = divmod(rem, 3600)
        return f"{date}T{hours:02d}:{rem // 60:02d}:{rem % 60:02d}{self.offset}"

    def date(self, epoch: int) -> str:
        return self.fmt(epoch)[:10]


def parse_time(value: str) -> int:
    """An ISO 8601 time (``2019-07-25T15:26:49+05:30``, ``...Z``; no offset = UTC) or an HTTP
    date -> epoch seconds, rounded down. ValueError if neither."""
    text = value.strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+", 1))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(value) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() // 1)


# --------------------------------------------------------------------------- generation


def module_id_base(module: str) -> int:
    return ID_BASE + sc.MODULE_NAMES.index(module) * ID_MODULE_STRIDE


def _pick(rng: random.Random, seq: tuple[Any, ...]) -> Any:
    return seq[int(rng.random() * len(seq))]


def _person(rng: random.Random) -> tuple[str, str, str]:
    """(first, last, email local part): two in three are Chinese names."""
    if rng.random() < 0.66:
        surname, s_py = _pick(rng, CN_SURNAMES)
        given, g_py = _pick(rng, CN_GIVEN)
        return given, surname, f"{s_py}.{g_py}"
    first, last = _pick(rng, EN_FIRST), _pick(rng, EN_LAST)
    return first, last, f"{first}.{last}".lower().replace("'", "")


def _company(rng: random.Random) -> tuple[str, str, str, str]:
    """(company, domain, city, phone)."""
    if rng.random() < 0.6:
        city, area = _pick(rng, CN_CITIES)
        trade, py = _pick(rng, CN_TRADE_NAMES)
        phone = f"{area}-{int(rng.random() * 90000000) + 10000000}"
        return f"{city}{trade}科技有限公司", f"{py}.com.cn", city, phone
    city, _country, cc, areas = _pick(rng, EN_CITIES)
    word = _pick(rng, EN_COMPANY_WORDS)
    phone = f"+{cc} {areas[0]} {int(rng.random() * 9000000) + 1000000}"
    return f"{word} Ltd", word.lower().replace(" ", "") + ".com", city, phone


def _mobile(rng: random.Random) -> str:
    return f"{_pick(rng, CN_MOBILE_PREFIXES)}{int(rng.random() * 90000000) + 10000000}"


def _tags(rng: random.Random) -> list[dict[str, str]]:
    if rng.random() < 0.7:
        return []
    name = _pick(rng, TAGS)
    return [{"name": name, "id": TAG_IDS[name]}]


def _weighted(values: tuple[str, ...], weights: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(v for v, w in zip(values, weights, strict=True) for _ in range(w))


_LEAD_STATUS_T = _weighted(sc.LEAD_STATUS[1:], (10, 6, 14, 4, 6, 20, 8, 4))
_RECORD_STATUS_T = _weighted(("Active", "Archived", "Void"), (90, 8, 2))
_STAGE_T = _weighted(sc.DEAL_STAGE, (14, 12, 8, 8, 10, 8, 22, 12, 6))


def generate(
    module: str,
    count: int,
    seed: int,
    clock_start: datetime,
    tf: TimeFormat,
) -> Iterator[Row]:
    """Stream ``count`` records of ``module`` in id order."""
    mod = sc.MODULES[module]
    rng = random.Random(f"crmsync-fake-zoho/{seed}/{module}")
    end = int(clock_start.timestamp())
    t0 = end - HISTORY_SECONDS
    span = HISTORY_SECONDS / max(count, 1)
    next_id = module_id_base(module)
    make = _MAKERS[module]
    users = sc.USERS
    for i in range(count):
        next_id += 1 + int(rng.random() * 9)
        created = int(t0 + (i + rng.random()) * span)
        modified = created
        if rng.random() < 0.6:
            modified = min(end - 1, created + int(rng.random() ** 3 * (end - created)))
        owner = _pick(rng, users)
        creator = _pick(rng, users)
        rec: dict[str, Any] = {"id": str(next_id), "Owner": owner}
        rec["Created_By"] = {"name": creator["name"], "id": creator["id"]}
        rec["Created_Time"] = tf.fmt(created)
        if mod.has_modified_time:
            rec["Modified_By"] = {"name": owner["name"], "id": owner["id"]}
            rec["Modified_Time"] = tf.fmt(modified)
            rec["Last_Activity_Time"] = tf.fmt(modified) if rng.random() < 0.5 else None
            rec["Tag"] = _tags(rng)
        make(rng, rec, tf, created)
        rec["Record_Status"] = _pick(rng, _RECORD_STATUS_T)
        for f in mod.fields:  # every field present, null when unset (as Zoho answers)
            if f.api_name not in rec:
                rec[f.api_name] = False if f.data_type == "boolean" else None
        yield Row(next_id, created, modified if mod.has_modified_time else None, rec)


def _make_leads(rng: random.Random, rec: dict[str, Any], tf: TimeFormat, created: int) -> None:
    first, last, local = _person(rng)
    company, domain, city, phone = _company(rng)
    cn = not first.isascii()
    rec["Salutation"] = _pick(rng, sc.SALUTATION[1:]) if not cn else None
    rec["First_Name"] = first
    rec["Last_Name"] = last
    rec["Full_Name"] = f"{last}{first}" if cn else f"{first} {last}"
    rec["Company"] = company
    rec["Designation"] = _pick(rng, TITLES_CN if cn else TITLES_EN)
    rec["Email"] = (
        f"{local}@{_pick(rng, CN_MAIL if cn else EN_MAIL)}" if rng.random() < 0.85 else None
    )
    rec["Phone"] = phone
    rec["Mobile"] = _mobile(rng) if cn else None
    rec["Website"] = f"https://www.{domain}"
    rec["Lead_Source"] = _pick(rng, sc.LEAD_SOURCE[1:])
    rec["Lead_Status"] = _pick(rng, _LEAD_STATUS_T)
    rec["Industry"] = _pick(rng, sc.INDUSTRY[1:])
    rec["No_of_Employees"] = int(rng.random() * 5000) + 1
    rec["Annual_Revenue"] = float(int(rng.random() * 500) * 10000)
    rec["Rating"] = _pick(rng, sc.RATING)
    rec["Email_Opt_Out"] = rng.random() < 0.05
    rec["City"] = city
    rec["Country"] = "China" if cn else "United States"
    rec["Converted__s"] = False
    rec["Preferred_Language"] = "中文" if cn else "English"
    rec["Budget_Range"] = _pick(rng, sc.BUDGET)
    rec["WeChat_ID"] = f"wx_{local.replace('.', '_')}" if cn else None
    rec["Province"] = city if cn else None
    rec["Campaign_Code"] = f"CMP-{int(rng.random() * 900) + 100}"
    rec["Decision_Maker"] = rng.random() < 0.3
    rec["Follow_Up_Date"] = tf.date(created + 14 * 86400)
    rec["Score"] = int(rng.random() * 100)
    rec["Region"] = ("华东区", "华南区", "华北区", "West", "East")[int(rng.random() * 5)]


def _make_contacts(rng: random.Random, rec: dict[str, Any], tf: TimeFormat, created: int) -> None:
    first, last, local = _person(rng)
    company, _domain, city, phone = _company(rng)
    cn = not first.isascii()
    rec["First_Name"] = first
    rec["Last_Name"] = last
    rec["Full_Name"] = f"{last}{first}" if cn else f"{first} {last}"
    rec["Account_Name"] = {
        "name": company,
        "id": str(module_id_base("Accounts") + 1 + int(rng.random() * 1000)),
    }
    rec["Title"] = _pick(rng, TITLES_CN if cn else TITLES_EN)
    rec["Email"] = f"{local}@{_pick(rng, CN_MAIL if cn else EN_MAIL)}"
    rec["Phone"] = phone
    rec["Mobile"] = _mobile(rng) if cn else None
    rec["Lead_Source"] = _pick(rng, sc.LEAD_SOURCE[1:])
    rec["Mailing_City"] = city
    rec["Mailing_Country"] = "China" if cn else "United States"


def _make_accounts(rng: random.Random, rec: dict[str, Any], tf: TimeFormat, created: int) -> None:
    company, domain, city, phone = _company(rng)
    rec["Account_Name"] = company
    rec["Account_Type"] = _pick(rng, sc.ACCOUNT_TYPE[1:])
    rec["Industry"] = _pick(rng, sc.INDUSTRY[1:])
    rec["Phone"] = phone
    rec["Website"] = f"https://www.{domain}"
    rec["Employees"] = int(rng.random() * 20000) + 1
    rec["Billing_City"] = city


def _make_deals(rng: random.Random, rec: dict[str, Any], tf: TimeFormat, created: int) -> None:
    company, _domain, _city, _phone = _company(rng)
    rec["Deal_Name"] = f"{company} - {int(rng.random() * 900) + 100}"
    rec["Account_Name"] = {
        "name": company,
        "id": str(module_id_base("Accounts") + 1 + int(rng.random() * 1000)),
    }
    rec["Amount"] = float(int(rng.random() * 2000) * 500)
    rec["Closing_Date"] = tf.date(created + int(rng.random() * 120) * 86400)
    rec["Stage"] = _pick(rng, _STAGE_T)
    rec["Probability"] = int(rng.random() * 10) * 10
    rec["Type"] = _pick(rng, sc.DEAL_TYPE[1:])


def _make_site_visits(
    rng: random.Random, rec: dict[str, Any], tf: TimeFormat, created: int
) -> None:
    company, _domain, city, _phone = _company(rng)
    rec["Name"] = f"{city} {company}"
    rec["Visit_Date"] = tf.date(created)
    rec["Visit_Type"] = _pick(rng, sc.VISIT_TYPE[1:])


_MAKERS = {
    "Leads": _make_leads,
    "Contacts": _make_contacts,
    "Accounts": _make_accounts,
    "Deals": _make_deals,
    "Site_Visits": _make_site_visits,
}
