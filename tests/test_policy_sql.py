"""The compiled SQL agrees with the reference evaluator (tests/policy_reference.py) on random
records and random filters; plus the edges worth naming one by one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.policy import (
    Action,
    All,
    AnyOf,
    Condition,
    FieldRef,
    Not,
    Policy,
    compile_policy,
    count_sql,
    install_sql_functions,
    select_sql,
)
from crmsync.policy.model import parse_duration
from crmsync.store.base import canonical_record
from crmsync.store.migrations import MIGRATIONS
from tests.policy_reference import evaluate

NOW = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
DURATIONS = ["1s", "90m", "5h", "30d", "1w", "365d", "2y"]


def new_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        db.executescript(script)
    install_sql_functions(db)
    return db


def insert(db: sqlite3.Connection, records: list[dict], connection="crm", module="Leads") -> None:
    for rec in records:
        text, digest = canonical_record(rec["data"])
        db.execute(
            "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
            " content_hash, first_seen_at, updated_at, crm_deleted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'x', 'x', ?)",
            (
                connection,
                module,
                rec["record_id"],
                rec["modified_at"],
                rec["status"],
                text,
                digest,
                rec.get("crm_deleted_at"),
            ),
        )


def policy(node, action="tag", **kw) -> Policy:
    params = {"tags": ["x"]} if action == "tag" else {}
    return Policy(
        name="p", connection="crm", module="Leads", action=Action(action, params), filter=node, **kw
    )


def matching(db: sqlite3.Connection, node, now=NOW) -> set[str]:
    where, params = compile_policy(policy(node), now)
    return {r for (r,) in db.execute(f"SELECT record_id FROM mirror WHERE {where}", params)}


# --------------------------------------------------------------------------- strategies

FIELDS = ["Name", "Lead Status", "a.b", 'q"uote', "客户名称", "back\\slash", "tab\tkey", "Amount"]
FIELDS += ["When", "Owner", "@odd", "it's"]

texts = st.sampled_from(
    [
        "",
        "Lost",
        "lost",
        "Lost ",
        "张三",
        "张",
        "三",
        "a.b",
        "[]",
        "{}",
        "1",
        "true",
        "null",
        "😀",
        "ÿ",
        "a'b",
        'a"b',
        "%",
        "_",
    ]
) | st.text(max_size=4)
numbers = st.sampled_from([0, 1, -1, 2, 1.0, 0.5, -2.25, 3.0, 10**12]) | st.integers(
    -(2**53), 2**53
)
scalars = st.one_of(texts, numbers, st.booleans())

OFFSETS = [
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(microseconds=-1),
    timedelta(milliseconds=1),
    timedelta(milliseconds=-1),
    timedelta(seconds=1),
    timedelta(seconds=-1),
    timedelta(days=1),
    timedelta(days=-1),
]


@st.composite
def instants(draw) -> datetime:
    now = draw(st.sampled_from([NOW, NOW.replace(microsecond=0)]))
    base = now - parse_duration(draw(st.sampled_from(DURATIONS)))
    delta = draw(st.sampled_from(OFFSETS) | st.timedeltas(timedelta(-800), timedelta(800)))
    return base + delta


def _fmt(moment: datetime, form: str) -> str:
    utc = moment.astimezone(UTC)
    if form == "z_seconds":
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "z_micros":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "z_millis":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if form == "offset":
        return moment.astimezone(timezone(timedelta(hours=8))).isoformat(timespec="seconds")
    if form == "offset_millis":
        return moment.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat(
            timespec="milliseconds"
        )
    if form == "space":
        return utc.strftime("%Y-%m-%d %H:%M:%S")
    return utc.strftime("%Y-%m-%d")


FORMS = ["z_seconds", "z_micros", "z_millis", "offset", "offset_millis", "space", "date"]
times = st.builds(_fmt, instants(), st.sampled_from(FORMS))
mirror_times = st.none() | st.builds(_fmt, instants(), st.sampled_from(["z_seconds", "z_micros"]))

leaf_values = st.one_of(st.none(), scalars, times)
values = st.one_of(
    leaf_values,
    st.lists(st.one_of(st.none(), scalars), max_size=3),
    st.fixed_dictionaries({}, optional={"name": leaf_values, "when": times}),
)


@st.composite
def records(draw) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(1, 6))):
        data = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
        rows.append(
            {
                "record_id": f"r{i}",
                "modified_at": draw(mirror_times),
                "status": draw(st.sampled_from(["active", "archived", "voided"])),
                "data": data,
            }
        )
    return rows


field_refs = st.one_of(
    st.sampled_from(FIELDS).map(lambda f: FieldRef(path=(f,))),
    st.sampled_from(["record_id", "status", "modified_at"]).map(lambda c: FieldRef(column=c)),
    st.sampled_from([("Owner", "name"), ("Owner", "when"), ("a.b", "c")]).map(
        lambda p: FieldRef(path=p)
    ),
)
REGEXES = ["^L", "ost$", "张", "[0-9]", "^$", r"a\.b", "(?i)lost", "^r[0-9]$"]


@st.composite
def conditions(draw) -> Condition:
    op = draw(
        st.sampled_from(
            [
                "eq",
                "ne",
                "in",
                "not_in",
                "lt",
                "le",
                "gt",
                "ge",
                "contains",
                "startswith",
                "regex",
                "empty",
                "not_empty",
                "older_than",
                "newer_than",
            ]
        )
    )
    ref = draw(field_refs)
    if op in ("eq", "ne", "contains"):
        value = draw(scalars | times)
    elif op in ("in", "not_in"):
        value = draw(st.lists(scalars | times, min_size=1, max_size=3))
    elif op in ("lt", "le", "gt", "ge"):
        value = draw(texts | numbers | times)
    elif op == "startswith":
        value = draw(texts.filter(bool))
    elif op == "regex":
        value = draw(st.sampled_from(REGEXES))
    elif op in ("older_than", "newer_than"):
        value = draw(st.sampled_from(DURATIONS))
    else:
        value = None
    return Condition(ref, op, value)


filters_ = st.recursive(
    conditions(),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda xs: All(tuple(xs))),
        st.lists(children, max_size=3).map(lambda xs: AnyOf(tuple(xs))),
        children.map(Not),
    ),
    max_leaves=6,
)


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=records(), node=filters_, now=st.sampled_from([NOW, NOW.replace(microsecond=0)]))
def test_sql_agrees_with_reference(rows, node, now):
    db = new_db()
    insert(db, rows)
    expected = {r["record_id"] for r in rows if evaluate(node, r, now)}
    assert matching(db, node, now) == expected


@settings(max_examples=100, deadline=None)
@given(rows=records(), node=filters_)
def test_not_is_the_complement(rows, node):
    db = new_db()
    insert(db, rows)
    every = {r["record_id"] for r in rows}
    assert matching(db, Not(node)) == every - matching(db, node)


# --------------------------------------------------------------------------- named edges


def rec(rid: str, data: dict, modified_at: str | None = None, status="active") -> dict:
    return {"record_id": rid, "modified_at": modified_at, "status": status, "data": data}


def cond(field, op, value=None) -> Condition:
    return Condition(FieldRef.parse(field), op, value)


@pytest.fixture
def db():
    db = new_db()
    insert(
        db,
        [
            rec("1", {"Name": "张三丰", "Tags": ["vip", 1, True], "Amount": 10}),
            rec("2", {"Name": "Lost", "a.b": "dot", 'q"uote': "yes", "Amount": "10"}),
            rec("3", {"Name": None, "Amount": 10.0, "Flag": True}),
            rec("4", {"Owner": {"name": "Ann"}, "@odata": "x", "Flag": 1}),
        ],
    )
    return db


def test_missing_and_null_are_no_value(db):
    assert matching(db, cond("Name", "eq", "Lost")) == {"2"}
    assert matching(db, cond("Name", "ne", "Lost")) == {"1", "3", "4"}
    assert matching(db, cond("Name", "empty")) == {"3", "4"}
    assert matching(db, cond("Name", "lt", "zzz")) == {"2"}  # code points: 'L' < 'z' < '张'


def test_types_never_mix(db):
    assert matching(db, cond("Amount", "eq", 10)) == {"1", "3"}  # 10 == 10.0, not "10"
    assert matching(db, cond("Amount", "eq", "10")) == {"2"}
    assert matching(db, cond("Flag", "eq", True)) == {"3"}  # true is not 1
    assert matching(db, cond("Flag", "eq", 1)) == {"4"}


def test_unicode_contains_startswith_and_array_membership(db):
    assert matching(db, cond("Name", "contains", "三")) == {"1"}
    assert matching(db, cond("Name", "startswith", "张三")) == {"1"}
    assert matching(db, cond("Tags", "contains", "vip")) == {"1"}
    assert matching(db, cond("Tags", "contains", True)) == {"1"}
    assert matching(db, cond("Tags", "contains", "vi")) == set()  # membership, not substring


def test_awkward_field_names_and_nested_paths(db):
    assert matching(db, cond("a.b", "eq", "dot")) == {"2"}
    assert matching(db, cond('q"uote', "eq", "yes")) == {"2"}
    assert matching(db, cond(["Owner", "name"], "eq", "Ann")) == {"4"}
    assert matching(db, cond("@@odata", "eq", "x")) == {"4"}
    assert matching(db, cond("Name", "regex", "^张")) == {"1"}


@pytest.mark.parametrize(
    ("stamp", "older"),
    [
        ("2023-06-02T12:00:00Z", False),  # exactly at the cutoff: neither older nor newer
        ("2023-06-02T11:59:59Z", True),
        ("2023-06-02T11:59:59.999999Z", True),  # sorts before '...:00Z' as a time, not as text
        ("2023-06-02T12:00:00.000001Z", False),
        ("2023-06-02T20:00:00+08:00", False),  # the same instant, with an offset
        ("2023-06-02T19:59:59+08:00", True),
        ("2023-06-02", True),
        ("not a time", False),
    ],
)
def test_older_than_boundary(stamp, older):
    db = new_db()
    insert(db, [rec("r", {"When": stamp}, modified_at=stamp if stamp.endswith("Z") else None)])
    now = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
    node = Condition(FieldRef(path=("When",)), "older_than", "365d")
    assert matching(db, node, now) == ({"r"} if older else set())
    newer = Condition(FieldRef(path=("When",)), "newer_than", "365d")
    expected_newer = not older and stamp not in ("2023-06-02T12:00:00Z", "not a time")
    expected_newer = expected_newer and stamp != "2023-06-02T20:00:00+08:00"
    assert matching(db, newer, now) == ({"r"} if expected_newer else set())
    if stamp.endswith("Z"):
        mirror_col = Condition(FieldRef(column="modified_at"), "older_than", "365d")
        assert matching(db, mirror_col, now) == ({"r"} if older else set())


def test_select_sql_scopes_connection_module_live_records_and_action_statuses():
    db = new_db()
    insert(
        db,
        [
            rec("a", {"S": "x"}),
            rec("b", {"S": "x"}, status="archived"),
            rec("c", {"S": "x"}, status="voided"),
            {**rec("d", {"S": "x"}), "crm_deleted_at": "2024-01-01T00:00:00Z"},
        ],
    )
    insert(db, [rec("e", {"S": "x"})], module="Deals")
    insert(db, [rec("f", {"S": "x"})], connection="other")
    node = cond("S", "eq", "x")
    for action, expected in [
        ("archive", ["a"]),
        ("void", ["a", "b"]),
        ("restore", ["b", "c"]),
        ("tag", ["a", "b", "c"]),
    ]:
        sql, params = select_sql(policy(node, action=action), NOW)
        assert [r[0] for r in db.execute(sql, params)] == expected
        sql, params = count_sql(policy(node, action=action), NOW)
        assert db.execute(sql, params).fetchone()[0] == len(expected)


def test_one_query_per_policy_with_values_as_parameters():
    node = All((cond("Name", "eq", "x'); DROP TABLE mirror; --"), cond("it's", "eq", 1)))
    sql, params = select_sql(policy(node), NOW)
    assert "DROP" not in sql and "x'); DROP TABLE mirror; --" in params
    db = new_db()
    insert(db, [rec("1", {"Name": "x'); DROP TABLE mirror; --", "it's": 1})])
    assert [r[0] for r in db.execute(sql, params)] == ["1"]


def test_empty_all_matches_everything_and_empty_any_nothing(db):
    assert matching(db, All(())) == {"1", "2", "3", "4"}
    assert matching(db, AnyOf(())) == set()


def test_works_on_a_real_store(tmp_path):
    from crmsync.store import open_store

    store = open_store(tmp_path / "s.db")
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    install_sql_functions(db)
    insert(db, [rec("1", {"Lead_Status": "Lost"}, modified_at="2020-01-01T00:00:00Z")])
    node = All(
        (cond("Lead_Status", "in", ["Lost", "Junk"]), cond("@modified_at", "older_than", "365d"))
    )
    sql, params = select_sql(policy(node, action="archive"), NOW)
    assert [r[0] for r in db.execute(sql, params)] == ["1"]
