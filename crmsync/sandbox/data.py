"""Deterministic, realistic seed data for the sandbox CRM.

Everything here is a pure function of ``(seed, sizes, clock_start)``: the same inputs give
byte-identical records, so tests can assert on data and benchmarks are repeatable. Records are
produced as a stream (one dict at a time); the only state kept across records is what later
records must refer to (account ids/names/domains) and a bounded reservoir of earlier records to
copy near-duplicates from, so generating a million records never holds a million dicts.
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

MODULES: tuple[str, ...] = ("Leads", "Contacts", "Accounts", "Deals")

# Default split of ``records`` over modules (what a small B2B CRM tends to look like).
DEFAULT_SHARES: Mapping[str, float] = {
    "Leads": 0.40,
    "Contacts": 0.30,
    "Accounts": 0.10,
    "Deals": 0.20,
}

# Accounts first: Contacts and Deals refer to them by account_id.
GENERATION_ORDER: tuple[str, ...] = ("Accounts", "Contacts", "Deals", "Leads")

# Ids are 13-digit numbers (Zoho-like), distinct across modules, increasing with creation time.
ID_BASES: Mapping[str, int] = {
    "Leads": 4_150_000_000_000,
    "Contacts": 4_250_000_000_000,
    "Accounts": 4_350_000_000_000,
    "Deals": 4_450_000_000_000,
}

STATUSES: tuple[str, ...] = ("active", "archived", "voided")
LEAD_STATUSES: tuple[str, ...] = (
    "New",
    "Contacted",
    "Qualified",
    "Unqualified",
    "Lost",
    "Junk",
    "Converted",
)
_LEAD_STATUS_WEIGHTS = (24, 26, 14, 12, 10, 5, 9)
DEAL_STAGES: tuple[str, ...] = (
    "Qualification",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
)
_DEAL_STAGE_WEIGHTS = (18, 14, 14, 9, 25, 20)

_FIELD_TYPES = {
    "created_at": "datetime",
    "modified_at": "datetime",
    "amount": "number",
    "close_date": "date",
    "tags": "json",
}


def _fields(*names: str) -> tuple[tuple[str, str], ...]:
    """(name, type) for every field of a module, common ones included, in record order."""
    every = ("id", "created_at", "modified_at", *names, "owner", "status", "tags")
    return tuple((name, _FIELD_TYPES.get(name, "string")) for name in every)


_PERSON = ("first_name", "last_name", "full_name")
MODULE_FIELDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "Leads": _fields(*_PERSON, "company", "email", "phone", "lead_status", "source", "city",
                     "country"),
    "Contacts": _fields(*_PERSON, "email", "phone", "title", "account_id", "city", "country"),
    "Accounts": _fields("name", "industry", "website", "phone", "city", "country"),
    "Deals": _fields("name", "account_id", "amount", "currency", "close_date", "stage"),
}  # fmt: skip

DEFAULT_CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_SECONDS = 3 * 365 * 86400  # created/modified times lie in the 3 years before the start

DUPLICATE_RATE = 0.05
_RESERVOIR = 2000  # earlier records a near-duplicate may copy (uniform sample, bounded memory)

# --------------------------------------------------------------------------- vocabulary
# (hanzi, pinyin) so emails match names, as they do in real Chinese CRMs.

CN_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"),
    ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"),
    ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"), ("胡", "hu"),
    ("郭", "guo"), ("何", "he"), ("高", "gao"), ("林", "lin"), ("罗", "luo"),
    ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"),
    ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"), ("彭", "peng"),
    ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("蒋", "jiang"), ("蔡", "cai"), ("杜", "du"), ("叶", "ye"),
    ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("沈", "shen"), ("欧阳", "ouyang"), ("司马", "sima"),
)  # fmt: skip
CN_GIVEN = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("秀英", "xiuying"), ("敏", "min"),
    ("静", "jing"), ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"),
    ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀兰", "xiulan"), ("霞", "xia"),
    ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("建华", "jianhua"),
    ("志强", "zhiqiang"), ("晓明", "xiaoming"), ("雪", "xue"), ("婷", "ting"),
    ("浩", "hao"), ("宇", "yu"), ("子涵", "zihan"), ("欣怡", "xinyi"), ("梓萱", "zixuan"),
    ("俊杰", "junjie"), ("文博", "wenbo"), ("思远", "siyuan"), ("佳怡", "jiayi"),
    ("一鸣", "yiming"), ("海燕", "haiyan"), ("国庆", "guoqing"), ("晨", "chen"),
    ("鹏", "peng"), ("颖", "ying"), ("倩", "qian"), ("建国", "jianguo"), ("丹", "dan"),
)  # fmt: skip
EN_FIRST = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Susan", "Richard", "Jessica", "Joseph", "Sarah",
    "Thomas", "Karen", "Daniel", "Emily", "Matthew", "Olivia", "Anthony", "Sophie",
    "Mark", "Emma", "Andrew", "Hannah", "Kevin", "Grace", "Brian", "Chloe", "Oliver",
    "Amelia", "Lucas", "Isabella", "Ethan", "Mia", "Noah", "Charlotte",
)  # fmt: skip
EN_LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson",
    "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Hill", "Green", "Adams", "Baker", "Nelson", "Carter",
    "Mitchell", "O'Brien", "Murphy", "Evans", "Turner", "Collins", "Edwards",
)  # fmt: skip

# (city, area code for landlines)
CN_CITIES = (
    ("北京", "010"), ("上海", "021"), ("广州", "020"), ("深圳", "0755"), ("杭州", "0571"),
    ("成都", "028"), ("南京", "025"), ("武汉", "027"), ("西安", "029"), ("苏州", "0512"),
    ("天津", "022"), ("重庆", "023"), ("厦门", "0592"), ("青岛", "0532"),
)  # fmt: skip
# (city, country, country calling code, area codes)
EN_CITIES = (
    ("San Francisco", "United States", "1", ("415", "628")),
    ("New York", "United States", "1", ("212", "646")),
    ("Chicago", "United States", "1", ("312", "773")),
    ("Austin", "United States", "1", ("512", "737")),
    ("Seattle", "United States", "1", ("206", "425")),
    ("Boston", "United States", "1", ("617", "857")),
    ("Toronto", "Canada", "1", ("416", "647")),
    ("London", "United Kingdom", "44", ("20",)),
    ("Manchester", "United Kingdom", "44", ("161",)),
    ("Sydney", "Australia", "61", ("2",)),
    ("Singapore", "Singapore", "65", ("6",)),
)
CN_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
    "152", "155", "156", "157", "158", "159", "166", "177", "180", "181", "182",
    "185", "186", "187", "188", "189", "199",
)  # fmt: skip

# Chinese company = city + trade name + line of business + legal form.
CN_TRADE_NAMES = (
    ("华信", "huaxin"), ("恒通", "hengtong"), ("鼎盛", "dingsheng"), ("远景", "yuanjing"),
    ("博达", "boda"), ("金桥", "jinqiao"), ("天成", "tiancheng"), ("中联", "zhonglian"),
    ("瑞丰", "ruifeng"), ("新元", "xinyuan"), ("东方", "dongfang"), ("宏图", "hongtu"),
    ("海纳", "haina"), ("星辰", "xingchen"), ("长城", "changcheng"), ("明德", "mingde"),
    ("正泰", "zhengtai"), ("云帆", "yunfan"), ("汇智", "huizhi"), ("启航", "qihang"),
    ("安达", "anda"), ("聚源", "juyuan"), ("盛世", "shengshi"), ("嘉禾", "jiahe"),
)  # fmt: skip
CN_BUSINESS = (
    ("科技", "Software"), ("信息技术", "Software"), ("贸易", "Retail"), ("物流", "Logistics"),
    ("医疗器械", "Healthcare"), ("电子", "Manufacturing"), ("文化传媒", "Media"),
    ("建设工程", "Construction"), ("食品", "Food & Beverage"), ("管理咨询", "Consulting"),
    ("新能源", "Energy"), ("教育科技", "Education"), ("机械制造", "Manufacturing"),
    ("投资管理", "Finance"),
)  # fmt: skip
CN_LEGAL = ("有限公司", "有限公司", "有限公司", "股份有限公司", "集团有限公司")
EN_COMPANY_WORDS = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Vandelay",
    "Bluth", "Pied Piper", "Hooli", "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Oceanic",
    "Summit", "Redwood", "Silverline", "Brightwave", "Ironclad", "Evergreen", "Keystone",
    "Harbor", "Pinnacle", "Crescent",
)  # fmt: skip
EN_BUSINESS = (
    ("Logistics", "Logistics"), ("Software", "Software"), ("Systems", "Software"),
    ("Analytics", "Software"), ("Foods", "Food & Beverage"), ("Health", "Healthcare"),
    ("Energy", "Energy"), ("Manufacturing", "Manufacturing"), ("Capital", "Finance"),
    ("Retail", "Retail"), ("Media", "Media"), ("Consulting", "Consulting"),
    ("Construction", "Construction"), ("Learning", "Education"),
)  # fmt: skip
EN_LEGAL = ("Ltd", "Inc", "Inc.", "LLC", "Corp", "Co.", "Group", "PLC")

TITLES_CN = ("销售经理", "总经理", "采购主管", "技术总监", "财务经理", "市场专员", "运营总监",
             "行政主管", "项目经理", "副总裁")  # fmt: skip
TITLES_EN = ("Sales Manager", "CEO", "CTO", "Procurement Lead", "Office Manager",
             "VP Engineering", "Marketing Director", "Finance Manager", "Operations Lead",
             "Account Executive")  # fmt: skip
SOURCES = ("Website", "Trade Show", "展会", "Referral", "Cold Call", "官网", "百度推广",
           "WeChat", "LinkedIn", "Partner", "Email Campaign", "Webinar")  # fmt: skip
OWNERS = ("张敏", "李强", "王磊", "陈静", "刘洋", "Emily Chen", "Michael Brown", "Sarah Johnson",
          "赵丽", "David Wilson")  # fmt: skip
TAGS = ("VIP", "重点客户", "展会2025", "newsletter", "partner", "key-account", "华东区", "华南区",
        "renewal", "do-not-call")  # fmt: skip
DEAL_PRODUCTS_CN = ("年度服务续约", "ERP 实施", "云服务器采购", "培训服务", "设备升级", "二期项目",
                    "数据迁移", "框架协议")  # fmt: skip
DEAL_PRODUCTS_EN = ("Annual Renewal", "Fleet Tracking Pilot", "Enterprise License",
                    "Onboarding Package", "Support Upgrade", "Phase 2", "Data Migration",
                    "Master Agreement")  # fmt: skip
CN_MAIL = ("163.com", "126.com", "qq.com", "sina.com", "foxmail.com", "aliyun.com")
EN_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com")
MAIL_TYPOS = {"gmail.com": "gmial.com", "163.com": "163.con", "qq.com": "qq.cm",
              "outlook.com": "outlok.com", "yahoo.com": "yaho.com",
              "126.com": "126.cm"}  # fmt: skip


def split_sizes(records: int) -> dict[str, int]:
    """Split a total over modules by :data:`DEFAULT_SHARES`; rounding leftovers go to Leads."""
    if records < 0:
        raise ValueError("records must be >= 0")
    sizes = {m: int(records * DEFAULT_SHARES[m]) for m in MODULES}
    sizes["Leads"] += records - sum(sizes.values())
    return sizes


_DAYS: dict[int, str] = {}


def iso(epoch: int) -> str:
    """Seconds since the epoch -> ``2024-05-01T12:00:00Z`` (the one format the sandbox uses).

    Formats the date once per day: this runs twice per generated record."""
    day, rem = divmod(int(epoch), 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    hours, rem = divmod(rem, 3600)
    return f"{date}T{hours:02d}:{rem // 60:02d}:{rem % 60:02d}Z"


def _weighted(values: tuple[str, ...], weights: tuple[int, ...]) -> tuple[str, ...]:
    """A lookup table: ``table[int(random() * len(table))]`` draws ``values`` by ``weights``
    (much faster than ``Random.choices`` per call)."""
    return tuple(v for v, w in zip(values, weights, strict=True) for _ in range(w))


def _randint(rng: random.Random, a: int, b: int) -> int:
    """Like ``rng.randint(a, b)``, several times faster (precision is not a concern here)."""
    return a + int(rng.random() * (b - a + 1))


class GeneratedRecord(NamedTuple):
    """One generated record; ``duplicate_of`` names the record it near-duplicates, if any.

    (A NamedTuple, not a dataclass: a million of these are built per big sandbox.)"""

    module: str
    data: dict
    duplicate_of: str | None = None


class RecordGenerator:
    """Stream the seeded records of every module, Accounts first.

    Each module has its own random stream (seeded by ``seed`` and the module name), so one
    module's data does not change when another module's size does, except for the account ids
    Contacts and Deals pick from.
    """

    def __init__(
        self,
        seed: int = 42,
        sizes: Mapping[str, int] | None = None,
        clock_start: datetime | None = None,
    ) -> None:
        sizes = dict(sizes) if sizes is not None else split_sizes(500)
        unknown = set(sizes) - set(MODULES)
        if unknown:
            raise ValueError(f"unknown modules: {sorted(unknown)}")
        if any(n < 0 for n in sizes.values()):
            raise ValueError("module sizes must be >= 0")
        self.seed = seed
        self.sizes = {m: sizes.get(m, 0) for m in MODULES}
        start = clock_start or DEFAULT_CLOCK_START
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.start_epoch = int(start.timestamp())
        # What Contacts/Deals need of Accounts; compact so 100k accounts stay cheap.
        self._account_ids = array("q")
        self._account_names: list[str] = []
        self._account_domains: list[str] = []
        self._account_cn = bytearray()

    def __iter__(self) -> Iterator[GeneratedRecord]:
        for module in GENERATION_ORDER:
            yield from self.module(module)

    def module(self, module: str) -> Iterator[GeneratedRecord]:
        """Yield the records of one module in id order (Accounts must be generated first)."""
        n = self.sizes[module]
        if n == 0:
            return
        rng = random.Random(f"crmsync-sandbox/{self.seed}/{module}")
        make = getattr(self, f"_make_{module.lower()}")
        base = ID_BASES[module]
        t0 = self.start_epoch - HISTORY_SECONDS
        span = HISTORY_SECONDS / n
        reservoir: list[dict] = []
        seen = 0
        next_id = base
        for i in range(n):
            next_id += 1 + int(rng.random() * 3)  # gaps: ids are not contiguous in real CRMs
            rid = str(next_id)
            created = int(t0 + (i + rng.random()) * span)
            modified = self._modified(rng, created)
            dup_of = None
            if reservoir and module != "Deals" and rng.random() < DUPLICATE_RATE:
                original = reservoir[int(rng.random() * len(reservoir))]
                rec = _near_duplicate(rng, module, original)
                dup_of = original["id"]
            else:
                rec = make(rng)
            head = {"id": rid, "created_at": iso(created), "modified_at": iso(modified)}
            head.update(rec)
            head["owner"] = OWNERS[int(rng.random() * len(OWNERS))]
            head["status"] = _status(rng)
            head["tags"] = _tags(rng)
            if module == "Accounts":
                self._remember_account(next_id, head)
            # Reservoir sampling: a uniform sample of everything generated so far.
            if dup_of is None:
                seen += 1
                if len(reservoir) < _RESERVOIR:
                    reservoir.append(head)
                else:
                    j = int(rng.random() * seen)
                    if j < _RESERVOIR:
                        reservoir[j] = head
            yield GeneratedRecord(module, head, dup_of)

    # ----------------------------------------------------------------------- times

    def _modified(self, rng: random.Random, created: int) -> int:
        """Most records are edited soon after creation, a few much later. About 3% share an
        exact instant with others (a nightly bulk job at 02:00:00Z), so ties on modified_at
        are common, as in real CRMs, and cursor pagination must break them by id."""
        end = self.start_epoch - 1
        r = rng.random()
        if r < 0.15:
            return created
        if r < 0.18:
            night = (created // 86400 + 1 + int(rng.random() * 30)) * 86400 + 7200
            return night if night <= end else created
        return created + int((end - created) * rng.random() ** 3)

    # ----------------------------------------------------------------------- modules

    def _make_leads(self, rng: random.Random) -> dict:
        person = _person(rng)
        cn = person.pop("_cn")
        company, _domain, _industry = _company(rng, cn)
        rec = {
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "full_name": person["full_name"],
            "company": company,
            "email": _email(rng, person, None),
            "phone": _phone(rng, cn, person["_area"]),
            "lead_status": _LEAD_STATUS_TABLE[int(rng.random() * len(_LEAD_STATUS_TABLE))],
            "source": SOURCES[int(rng.random() * len(SOURCES))],
            "city": person["city"],
            "country": person["country"],
        }
        return rec

    def _make_contacts(self, rng: random.Random) -> dict:
        account = self._pick_account(rng)
        cn = account[3] if account else rng.random() < 0.6
        person = _person(rng, cn)
        person.pop("_cn")
        domain = account[2] if account and rng.random() < 0.7 else None
        titles = TITLES_CN if cn and rng.random() < 0.8 else TITLES_EN
        return {
            "first_name": person["first_name"],
            "last_name": person["last_name"],
            "full_name": person["full_name"],
            "email": _email(rng, person, domain),
            "phone": _phone(rng, cn, person["_area"]),
            "title": titles[int(rng.random() * len(titles))],
            "account_id": account[0] if account else None,
            "city": person["city"],
            "country": person["country"],
        }

    def _make_accounts(self, rng: random.Random) -> dict:
        cn = rng.random() < 0.6
        name, domain, industry = _company(rng, cn)
        if cn:
            city, area = next(c for c in CN_CITIES if name.startswith(c[0]))
            country = "中国" if rng.random() < 0.85 else "China"
            phone = _cn_landline(rng, area)
        else:
            city, country, cc, areas = EN_CITIES[int(rng.random() * len(EN_CITIES))]
            phone = _intl_phone(rng, cc, areas)
        return {
            "name": name,
            "industry": industry,
            "website": f"https://www.{domain}",
            "phone": phone,
            "city": city,
            "country": country,
            "_domain": domain,
            "_cn": cn,
        }

    def _make_deals(self, rng: random.Random) -> dict:
        account = self._pick_account(rng)
        cn = account[3] if account else rng.random() < 0.6
        products = DEAL_PRODUCTS_CN if cn else DEAL_PRODUCTS_EN
        who = account[1] if account else "Prospect"
        amount = round(10 ** (3 + rng.random() * 3.3), -2)  # 1k .. 2M, log-uniform
        currency = "CNY" if cn else _CURRENCY_TABLE[int(rng.random() * len(_CURRENCY_TABLE))]
        close = self.start_epoch - int(rng.random() * HISTORY_SECONDS * 0.9) + 180 * 86400
        return {
            "name": f"{who} - {products[int(rng.random() * len(products))]}",
            "account_id": account[0] if account else None,
            "amount": amount,
            "currency": currency,
            "close_date": iso(close)[:10],
            "stage": _DEAL_STAGE_TABLE[int(rng.random() * len(_DEAL_STAGE_TABLE))],
        }

    # ----------------------------------------------------------------------- accounts

    def _remember_account(self, rid: int, rec: dict) -> None:
        domain = rec.pop("_domain")
        cn = rec.pop("_cn")
        self._account_ids.append(rid)
        self._account_names.append(_short_company(rec["name"]))
        self._account_domains.append(domain)
        self._account_cn.append(1 if cn else 0)

    def _pick_account(self, rng: random.Random) -> tuple[str, str, str, bool] | None:
        n = len(self._account_ids)
        if n == 0:
            return None
        k = int(rng.random() * n)
        return (
            str(self._account_ids[k]),
            self._account_names[k],
            self._account_domains[k],
            bool(self._account_cn[k]),
        )


# --------------------------------------------------------------------------- pieces

_LEAD_STATUS_TABLE = _weighted(LEAD_STATUSES, _LEAD_STATUS_WEIGHTS)
_DEAL_STAGE_TABLE = _weighted(DEAL_STAGES, _DEAL_STAGE_WEIGHTS)
_CURRENCY_TABLE = _weighted(("USD", "EUR", "GBP"), (80, 12, 8))


def _status(rng: random.Random) -> str:
    r = rng.random()
    return "active" if r < 0.90 else "archived" if r < 0.97 else "voided"


def _tags(rng: random.Random) -> list[str]:
    r = rng.random()
    if r < 0.6:
        return []
    if r < 0.9:
        return [TAGS[int(rng.random() * len(TAGS))]]
    a, b = rng.sample(TAGS, 2)
    return [a, b]


def _person(rng: random.Random, cn: bool | None = None) -> dict:
    if cn is None:
        cn = rng.random() < 0.6
    if cn:
        sur, sur_py = CN_SURNAMES[int(rng.random() * len(CN_SURNAMES))]
        given, given_py = CN_GIVEN[int(rng.random() * len(CN_GIVEN))]
        city, area = CN_CITIES[int(rng.random() * len(CN_CITIES))]
        return {
            "first_name": given,
            "last_name": sur,
            "full_name": sur + given,
            "_first": given_py,
            "_last": sur_py,
            "city": city,
            "country": "中国" if rng.random() < 0.85 else "China",
            "_area": area,
            "_cn": True,
        }
    first = EN_FIRST[int(rng.random() * len(EN_FIRST))]
    last = EN_LAST[int(rng.random() * len(EN_LAST))]
    city, country, cc, areas = EN_CITIES[int(rng.random() * len(EN_CITIES))]
    return {
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}",
        "_first": first.lower(),
        "_last": last.lower().replace("'", ""),
        "city": city,
        "country": country,
        "_area": (cc, areas),
        "_cn": False,
    }


def _email(rng: random.Random, person: dict, domain: str | None) -> str:
    first, last = person["_first"], person["_last"]
    cn = isinstance(person["_area"], str)
    if domain is None:
        pool = CN_MAIL if cn and rng.random() < 0.8 else EN_MAIL
        domain = pool[int(rng.random() * len(pool))]
    if domain == "qq.com":
        return f"{_randint(rng, 10000, 3999999999)}@qq.com"  # QQ mail is mostly QQ numbers
    r = rng.random()
    if r < 0.35:
        local = f"{first}.{last}" if not cn else f"{last}.{first}"
    elif r < 0.6:
        local = f"{last}{first}" if cn else f"{first[0]}{last}"
    elif r < 0.8:
        local = (
            f"{last}{first}{_randint(rng, 1, 99)}"
            if cn
            else f"{first}_{last}{_randint(rng, 1, 99)}"
        )
    else:
        local = f"{first}.{last}" if cn else f"{first}{last[0]}"
    return f"{local}@{domain}"


def _phone(rng: random.Random, cn: bool, area: object) -> str:
    if cn:
        if rng.random() < 0.75:
            return _cn_mobile(rng)
        return _cn_landline(rng, area if isinstance(area, str) else "010")
    cc, areas = area if isinstance(area, tuple) else ("1", ("415",))
    return _intl_phone(rng, cc, areas)


def _cn_mobile(rng: random.Random) -> str:
    prefix = CN_MOBILE_PREFIXES[int(rng.random() * len(CN_MOBILE_PREFIXES))]
    a, b = _randint(rng, 0, 9999), _randint(rng, 0, 9999)
    r = rng.random()
    if r < 0.5:
        return f"+86 {prefix} {a:04d} {b:04d}"
    if r < 0.85:
        return f"{prefix}{a:04d}{b:04d}"
    return f"{prefix}-{a:04d}-{b:04d}"


def _cn_landline(rng: random.Random, area: str) -> str:
    digits = 8 if len(area) == 3 else 7 + int(rng.random() * 2)
    return f"{area}-{_randint(rng, 2 * 10 ** (digits - 1), 10**digits - 1)}"


def _intl_phone(rng: random.Random, cc: str, areas: tuple[str, ...]) -> str:
    area = areas[int(rng.random() * len(areas))]
    if cc == "1":
        mid, end = _randint(rng, 200, 999), _randint(rng, 0, 9999)
        r = rng.random()
        if r < 0.6:
            return f"+1 ({area}) {mid}-{end:04d}"
        if r < 0.85:
            return f"{area}-{mid}-{end:04d}"
        return f"+1 {area} {mid} {end:04d}"
    if cc == "65":  # Singapore: 8 digits, no area code
        return f"+65 {area}{_randint(rng, 100, 999)} {_randint(rng, 1000, 9999)}"
    return f"+{cc} {area} {_randint(rng, 1000, 9999)} {_randint(rng, 1000, 9999)}"


def _company(rng: random.Random, cn: bool) -> tuple[str, str, str]:
    """(name, web domain, industry)."""
    if cn:
        city, _ = CN_CITIES[int(rng.random() * len(CN_CITIES))]
        trade, trade_py = CN_TRADE_NAMES[int(rng.random() * len(CN_TRADE_NAMES))]
        biz, industry = CN_BUSINESS[int(rng.random() * len(CN_BUSINESS))]
        legal = CN_LEGAL[int(rng.random() * len(CN_LEGAL))]
        tld = ".com.cn" if rng.random() < 0.4 else ".cn" if rng.random() < 0.5 else ".com"
        return f"{city}{trade}{biz}{legal}", f"{trade_py}{_randint(rng, 1, 999)}{tld}", industry
    word = EN_COMPANY_WORDS[int(rng.random() * len(EN_COMPANY_WORDS))]
    biz, industry = EN_BUSINESS[int(rng.random() * len(EN_BUSINESS))]
    legal = EN_LEGAL[int(rng.random() * len(EN_LEGAL))]
    slug = word.lower().replace(" ", "")
    return f"{word} {biz} {legal}", f"{slug}{biz.lower()}{_randint(rng, 1, 99)}.com", industry


def _short_company(name: str) -> str:
    """``北京华信科技有限公司`` -> ``华信科技``; ``Acme Logistics Ltd`` -> ``Acme Logistics``."""
    for legal in ("集团有限公司", "股份有限公司", "有限公司"):
        if name.endswith(legal):
            name = name[: -len(legal)]
            for city, _ in CN_CITIES:
                if name.startswith(city):
                    return name[len(city) :]
            return name
    return name.rsplit(" ", 1)[0]


# --------------------------------------------------------------------------- duplicates


def _near_duplicate(rng: random.Random, module: str, original: dict) -> dict:
    """A copy of ``original``'s business fields with 1-3 small, typical variations (what a
    second import or a hurried sales rep produces). Id, times, owner, status are the caller's."""
    rec = {
        k: v
        for k, v in original.items()
        if k not in ("id", "created_at", "modified_at", "owner", "status", "tags")
    }
    variations = [_vary_case, _vary_space, _vary_phone, _vary_email, _vary_company]
    for vary in rng.sample(variations, 1 + int(rng.random() * 3)):
        vary(rng, rec)
    if module == "Accounts":
        # Accounts are remembered for Contacts/Deals; keep their side fields consistent.
        website = rec.get("website", "")
        rec["_domain"] = website.removeprefix("https://www.")
        rec["_cn"] = any("\u4e00" <= ch <= "\u9fff" for ch in rec.get("name", ""))
    return rec


def _name_key(rec: dict) -> str:
    return "full_name" if "full_name" in rec else "name"


def _vary_case(rng: random.Random, rec: dict) -> None:
    key = _name_key(rec)
    value = rec[key]
    if value.isascii():
        rec[key] = value.upper() if rng.random() < 0.5 else value.lower()
    elif rec.get("email"):
        rec["email"] = rec["email"][0].upper() + rec["email"][1:]
    else:
        rec[key] = value + " "


def _vary_space(rng: random.Random, rec: dict) -> None:
    key = _name_key(rec)
    value = rec[key]
    if not value.isascii() and "last_name" in rec and value.startswith(rec["last_name"]):
        # 张伟 -> 张 伟 : a space between surname and given name
        rec[key] = rec["last_name"] + " " + value[len(rec["last_name"]) :]
    elif " " in value and rng.random() < 0.5:
        rec[key] = value.replace(" ", "  ", 1)
    else:
        rec[key] = f" {value} " if rng.random() < 0.5 else value + " "


def _vary_phone(rng: random.Random, rec: dict) -> None:
    phone = rec.get("phone")
    if not phone:
        return
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.startswith(("+1 ", "+1(", "(")) or (phone.startswith("+1") and len(digits) == 11):
        local = digits[-10:]
        options = (f"({local[:3]}) {local[3:6]}-{local[6:]}", f"+1{local}", local)
    elif phone.startswith("+86") or (len(digits) == 11 and digits[0] == "1"):
        local = digits[-11:]  # a mobile number, +86 or not
        options = (local, f"+86{local}", f"{local[:3]} {local[3:7]} {local[7:]}")
    elif phone.startswith("0"):  # a landline with its area code
        area, number = phone.split("-", 1) if "-" in phone else (phone[:3], phone[3:])
        options = (f"{area}{number}", f"({area}) {number}", f"+86 {area[1:]} {number}")
    elif len(digits) == 10:
        options = (f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"+1{digits}", digits)
    else:
        options = (digits, phone.replace(" ", "-"), phone.replace("-", " "))
    choice = options[int(rng.random() * len(options))]
    rec["phone"] = choice if choice != phone else options[0] + " "


def _vary_email(rng: random.Random, rec: dict) -> None:
    email = rec.get("email")
    if not email or "@" not in email:
        if "website" in rec:
            rec["website"] = rec["website"].replace("https://", "http://")
        return
    local, domain = email.split("@", 1)
    r = rng.random()
    if r < 0.35 and domain in MAIL_TYPOS:
        rec["email"] = f"{local}@{MAIL_TYPOS[domain]}"
    elif r < 0.65 and len(local) > 3:
        k = 1 + int(rng.random() * (len(local) - 2))
        rec["email"] = f"{local[:k]}{local[k + 1]}{local[k]}{local[k + 2 :]}@{domain}"
    elif r < 0.8:
        rec["email"] = email.upper() if rng.random() < 0.3 else email.capitalize()
    else:
        other = EN_MAIL if domain not in EN_MAIL else CN_MAIL[:2]
        rec["email"] = f"{local}@{other[int(rng.random() * len(other))]}"


def _vary_company(rng: random.Random, rec: dict) -> None:
    key = "company" if "company" in rec else "name" if "industry" in rec else None
    if key is None:
        _vary_space(rng, rec)
        return
    value = rec[key]
    if value.endswith("有限公司"):
        rec[key] = value.removesuffix("股份有限公司").removesuffix("有限公司")
    elif value.endswith("公司"):
        rec[key] = value + " "
    elif rng.random() < 0.5:
        rec[key] = value.rstrip(".") + "." if not value.endswith(".") else value.rstrip(".")
    else:
        rec[key] = value.upper()
