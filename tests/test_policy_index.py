"""Index-friendly policy SQL (crmsync.policy.sql, "Indexes"): the top-level prefilters never
change a result — with or without the indexes the store builds for them — and SQLite really
answers a policy from its index."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.config import Config
from crmsync.plans.planner import make_plan
from crmsync.policy import All, Condition, FieldRef, Not, Policy, compile_policy, select_sql
from crmsync.policy.filters import cutoff_moment
from crmsync.policy.sql import compile_filter, index_columns, index_name, prefilter
from crmsync.store import open_store
from crmsync.store.migrations import SCHEMA_VERSION
from tests.policy_reference import evaluate
from tests.test_policy_sql import (
    DURATIONS,
    NOW,
    conditions,
    filters_,
    insert,
    new_db,
    policy,
    rec,
    records,
)
from tests.test_store_migrations import make_store_at

top_level = st.one_of(
    conditions(),
    st.lists(st.one_of(conditions(), filters_), min_size=1, max_size=4).map(
        lambda xs: All(tuple(xs))
    ),
    st.lists(conditions(), min_size=1, max_size=2).map(lambda xs: All((All(tuple(xs)),))),
)


def exact_only(db: sqlite3.Connection, node, now=NOW) -> set[str]:
    """The filter without any prefilter: what the compiler emitted before indexes."""
    where, params = compile_filter(node, now)
    return {r for (r,) in db.execute(f"SELECT record_id FROM mirror WHERE {where}", params)}


def with_prefilters(db: sqlite3.Connection, node, now=NOW) -> set[str]:
    where, params = compile_policy(policy(node), now)
    return {r for (r,) in db.execute(f"SELECT record_id FROM mirror WHERE {where}", params)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=records(), node=top_level, now=st.sampled_from([NOW, NOW.replace(microsecond=0)]))
def test_prefilters_agree_with_the_reference_and_the_exact_sql(rows, node, now):
    db = new_db()
    insert(db, rows)
    expected = {r["record_id"] for r in rows if evaluate(node, r, now)}
    assert with_prefilters(db, node, now) == expected
    assert exact_only(db, node, now) == expected


# Texts SQLite reads as times far from the date they start with: offsets up to 14:59, hour 24,
# day 31 of a short month (rolled over), a space instead of 'T', a date alone. The reference
# evaluator does not model SQLite's roll-over, so these compare the SQL with and without its
# prefilter — the prefilter must only ever narrow the rows the exact SQL reads, never its result.
ODD_FORMS = [
    "{d}T{t}+14:59",
    "{d}T{t}-14:59",
    "{d}T{t}+00:00",
    "{d} {t}",
    "{d}",
    "{d}T24:00:00Z",
    "{d}T{t}.5Z",
    "{d}T{t}Z",
    "{d}T{t}.000001Z",
    "{y}-02-31T{t}Z",
    "{y}-04-31",
]


@st.composite
def odd_times(draw, base: datetime) -> str:
    moment = base + timedelta(seconds=draw(st.integers(-12 * 86400, 12 * 86400)))
    form = draw(st.sampled_from(ODD_FORMS))
    return form.format(d=f"{moment:%Y-%m-%d}", t=f"{moment:%H:%M:%S}", y=f"{moment:%Y}")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), duration=st.sampled_from(DURATIONS), op=st.sampled_from(["older", "newer"]))
def test_time_prefilter_keeps_every_time_sqlite_reads(data, duration, op):
    base = cutoff_moment(NOW, duration)
    stamps = data.draw(st.lists(odd_times(base), min_size=1, max_size=8))
    db = new_db()
    insert(db, [rec(f"r{i}", {"When": s}, modified_at=s) for i, s in enumerate(stamps)])
    for ref in (FieldRef(path=("When",)), FieldRef(column="modified_at")):
        node = All((Condition(ref, f"{op}_than", duration),))
        assert with_prefilters(db, node) == exact_only(db, node)


def test_only_top_level_conditions_get_prefilters_and_exact_ones_stand_alone():
    lost = Condition(FieldRef(path=("Lead_Status",)), "in", ["Lost", "Junk"])
    old = Condition(FieldRef(column="modified_at"), "older_than", "365d")
    where, params = compile_policy(policy(All((lost, old))), NOW)
    assert where.startswith(
        """(json_extract(data, '$."Lead_Status"') IN (?, ?) AND modified_at < ?"""
    )
    assert "json_type" not in where  # the IN is exact for these strings: no JSON read besides it
    assert params[:3] == ["Lost", "Junk", "2023-06-04"]
    assert prefilter(Not(lost), NOW) is None
    assert prefilter(Condition(FieldRef(path=("X",)), "not_in", ["a"]), NOW) is None
    assert prefilter(Condition(FieldRef(path=("X",)), "contains", "a"), NOW) is None
    assert not prefilter(Condition(FieldRef(path=("X",)), "eq", "[1]"), NOW).exact
    assert not prefilter(Condition(FieldRef(path=("X",)), "eq", 1), NOW).exact
    assert prefilter(Condition(FieldRef(path=("X",)), "eq", 2.5), NOW).exact
    assert prefilter(Condition(FieldRef(path=('q"uote',)), "eq", "x"), NOW) is None  # json_each


def test_index_columns_put_equalities_before_one_range():
    node = All(
        (
            Condition(FieldRef(column="modified_at"), "older_than", "30d"),
            Condition(FieldRef(path=("stage",)), "eq", "Closed Lost"),
            Condition(FieldRef(path=("amount",)), "gt", 10),
            Condition(FieldRef(path=("name",)), "regex", "^x"),
        )
    )
    assert index_columns(policy(node)) == (
        """json_extract(data, '$."stage"')""",
        "connection",
        "module",
        "modified_at",
    )
    only_time = Condition(FieldRef(column="modified_at"), "older_than", "30d")
    assert index_columns(policy(only_time)) == ("modified_at", "connection", "module")
    assert index_columns(policy(Condition(FieldRef(path=("n",)), "regex", "^x"))) is None
    assert index_columns(policy(Condition(FieldRef(column="record_id"), "eq", "1"))) is None


# --------------------------------------------------------------------------- in a real store

STALE = All(
    (
        Condition(FieldRef(path=("lead_status",)), "in", ["Lost", "Junk"]),
        Condition(FieldRef(column="modified_at"), "older_than", "365d"),
    )
)


def seeded_store(path: Path, n: int = 400):
    store = open_store(path)
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    install = [
        rec(
            f"L{i:04d}",
            {
                "lead_status": ["Lost", "Junk", "New", None, ["Lost"], 1][i % 6],
                "email": f"u{i}@example.com",
            },
            modified_at=(NOW - timedelta(days=(i * 7) % 1100)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            status=["active", "active", "archived"][i % 3],
        )
        for i in range(n)
    ]
    insert(db, install)
    db.close()
    return open_store(path), install


def plan_query(store, pol: Policy) -> tuple[list[str], list[tuple]]:
    sql, params = select_sql(pol, NOW, columns="record_id")
    db = store._db  # the store's own connection (regexp installed)
    ids = [r[0] for r in db.execute(sql, params)]
    return ids, db.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()


def test_the_store_builds_the_index_and_sqlite_answers_the_policy_from_it(tmp_path):
    store, rows = seeded_store(tmp_path / "s.db")
    pol = policy(STALE, action="archive")
    before, _ = plan_query(store, pol)
    created = store.ensure_policy_indexes([pol])
    assert created == [index_name(index_columns(pol))]
    assert store.ensure_policy_indexes([pol]) == []  # once
    after, explain = plan_query(store, pol)
    expected = sorted(
        r["record_id"] for r in rows if r["status"] == "active" and evaluate(STALE, r, NOW)
    )
    assert before == after == expected and expected
    detail = " ".join(row[-1] for row in explain)
    used = f"USING INDEX {created[0]} (<expr>=? AND connection=? AND module=? AND modified_at<?)"
    assert used in detail, detail
    count = (
        "SELECT count(*) FROM mirror WHERE connection = ? AND module = ? AND crm_deleted_at IS NULL"
    )
    explain = store._db.execute(f"EXPLAIN QUERY PLAN {count}", ("crm", "Leads")).fetchall()
    assert "USING INDEX mirror_live" in " ".join(row[-1] for row in explain)
    keyset = (
        "SELECT record_id FROM mirror WHERE connection = ? AND module = ? AND record_id > ?"
        " AND crm_deleted_at IS NULL ORDER BY record_id LIMIT 5"
    )
    explain = store._db.execute(f"EXPLAIN QUERY PLAN {keyset}", ("crm", "Leads", "L")).fetchall()
    assert "sqlite_autoindex_mirror_1" in " ".join(row[-1] for row in explain)  # pages stay cheap
    store.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=top_level)
def test_results_are_the_same_with_the_policy_indexes(tmp_path_factory, node):
    path = tmp_path_factory.mktemp("idx") / "s.db"
    store, rows = seeded_store(path, n=60)
    pol = policy(node, action="tag")
    before, _ = plan_query(store, pol)
    store.ensure_policy_indexes([pol])
    after, _ = plan_query(store, pol)
    assert before == after == sorted(r["record_id"] for r in rows if evaluate(node, r, NOW))
    store.close()


def test_plan_builds_the_indexes_and_matches_the_reference(tmp_path):
    store, rows = seeded_store(tmp_path / "s.db")
    pol = Policy(
        name="stale", connection="crm", module="Leads", action=policy(STALE, "archive").action,
        filter=STALE, max_percent=100.0,
    )  # fmt: skip
    config = Config(path=None, store_path=tmp_path / "s.db")
    plan = make_plan(config, store, [pol], operator="alice", now=NOW)
    expected = [r for r in rows if r["status"] == "active" and evaluate(STALE, r, NOW)]
    assert plan.policies[0].matched == len(expected)
    assert plan.policies[0].module_total == len(rows)
    names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert index_name(index_columns(pol)) in names
    store.close()


def test_version_3_store_gains_the_live_index_and_keeps_its_data(tmp_path):
    path = tmp_path / "v3.db"
    make_store_at(path, 3)
    db = sqlite3.connect(path, isolation_level=None)
    insert(db, [rec(f"r{i}", {"n": i}) for i in range(5)])
    insert(db, [{**rec("gone", {"n": 9}), "crm_deleted_at": "2024-01-01T00:00:00Z"}])
    db.close()
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.count("crm", "Leads") == 5
        assert store.count("crm", "Leads", include_deleted=True) == 6
        names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert "mirror_live" in names


def test_cutoff_far_in_the_past_still_compiles():
    node = Condition(FieldRef(column="modified_at"), "older_than", "999999y")
    pre = prefilter(node, NOW)
    assert pre is None or pre.params[0] <= "0001-01-03"
    assert UTC  # keep the import honest for readers: times here are UTC


def test_indexes_no_configured_policy_needs_are_dropped(tmp_path):
    from crmsync.policy.validate import parse_policies
    from crmsync.store import open_store

    raw = [
        {
            "name": "a",
            "connection": "c",
            "module": "m",
            "action": "archive",
            "filter": {"field": "lead_status", "op": "eq", "value": "Lost"},
        },
        {
            "name": "b",
            "connection": "c",
            "module": "m",
            "action": "archive",
            "filter": {"field": "stage", "op": "eq", "value": "Closed"},
        },
    ]
    a, b = parse_policies(raw, connections={"c"})
    with open_store(tmp_path / "s.db") as store:
        created = store.ensure_policy_indexes([a, b])
        assert len(created) == 2
        store.ensure_policy_indexes([a], keep=[a])  # policy b was removed from the config
        names = {
            n
            for (n,) in store._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'mirror_f_%'"
            )
        }
        assert len(names) == 1
        # planning b again rebuilds only b's index
        assert store.ensure_policy_indexes([b], keep=[a, b]) == [created[1]]
