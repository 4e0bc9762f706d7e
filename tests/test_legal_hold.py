"""Legal holds: adding, listing and releasing them (audited), which records they cover (by id,
tag, filter, connection/module), and the deletion blocks purge and erasure read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.audit import AuditQuery, verify_store
from crmsync.compliance import holds
from crmsync.compliance.blocks import Block, deletion_blocks
from crmsync.config import parse_config
from crmsync.errors import ConfigError, GuardError
from crmsync.hookspecs import PulledRecord
from crmsync.store import open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

CONFIG = """
[connections.sales]
connector = "memory"
url = "http://example.invalid"

[[retention.rules]]
connection = "sales"
module = "Invoices"
purge_voided_after = "30d"
keep_at_least = "10y"
keep_basis = "HGB-257"
"""


@pytest.fixture
def config(registry):
    return parse_config(CONFIG, registry)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run = store.start_run("pull", "sales", "Leads")
        store.commit_page(
            "sales",
            "Leads",
            run,
            [
                PulledRecord("L1", {"name": "Ann", "tags": ["VIP"]}, status="voided"),
                PulledRecord("L2", {"name": "Bob", "Tag": [{"name": "Litigation", "id": "7"}]}),
                PulledRecord("L3", {"name": "Cy", "country": "DE"}, status="voided"),
                PulledRecord("L4", {"name": "Di", "country": "CN"}, status="voided"),
            ],
        )
        store.commit_page(
            "sales",
            "Invoices",
            run,
            [
                PulledRecord("I1", {"created_at": "2020-01-01T00:00:00Z"}, status="voided"),
                PulledRecord("I2", {"created_at": "2010-01-01T00:00:00+08:00"}, status="voided"),
            ],
        )
        yield store


def ids(store, now=NOW):
    return set(holds.held_ids(store, "sales", "Leads", ["L1", "L2", "L3", "L4", "L9"], now))


def test_no_hold_no_block(store, config):
    assert deletion_blocks(store, config, "sales", "Leads", ["L1", "L2"], NOW) == {}


def test_hold_by_record_id_blocks_only_those_records_even_ones_not_mirrored(store, config):
    hold = holds.add_hold(
        store,
        kind="records",
        reason="case 2026-17",
        operator="legal",
        records=[("sales", "Leads", "L1"), ("sales", "Leads", "L9")],
        now=NOW,
    )
    assert hold.records == 2 and (hold.connection, hold.module) == ("sales", "Leads")
    assert ids(store) == {"L1", "L9"}
    blocks = deletion_blocks(store, config, "sales", "Leads", ["L1", "L2", "L9"], NOW)
    assert set(blocks) == {"L1", "L9"}
    assert blocks["L1"] == Block(
        "hold", f"legal hold {hold.id} (case 2026-17; by legal)", None, hold.id
    )


def test_hold_by_tag_matches_tag_lists_and_zoho_tag_objects_ignoring_case(store):
    holds.add_hold(store, kind="tag", spec={"tag": "vip"}, reason="r", operator="o", now=NOW)
    holds.add_hold(store, kind="tag", spec={"tag": "LITIGATION"}, reason="r", operator="o", now=NOW)
    assert ids(store) == {"L1", "L2"}


def test_hold_by_filter_uses_the_policy_language(store):
    spec = {"filter": {"field": "country", "op": "eq", "value": "DE"}}
    holds.add_hold(
        store,
        kind="filter",
        connection="sales",
        module="Leads",
        spec=spec,
        reason="r",
        operator="o",
        now=NOW,
    )
    assert ids(store) == {"L3"}
    sql, params = holds.held_sql(holds.active_holds(store, NOW), "sales", "Leads", NOW, "m")
    rows = store._db.execute(
        f"SELECT record_id FROM mirror AS m WHERE module = 'Leads' AND {sql}", params
    ).fetchall()
    assert rows == [("L3",)]


def test_bad_hold_filter_names_the_key(store):
    with pytest.raises(ConfigError) as err:
        holds.parse_filter({"field": "country", "op": "equals", "value": 1}, "sales", "Leads")
    assert err.value.path.startswith("--filter")


def test_hold_on_a_module_covers_all_of_it_and_not_other_modules(store):
    holds.add_hold(
        store, kind="connection", connection="sales", module="Leads", reason="r", operator="o"
    )
    assert ids(store) == {"L1", "L2", "L3", "L4", "L9"}
    assert holds.held_ids(store, "sales", "Invoices", ["I1"], NOW) == {}


def test_released_or_expired_holds_block_nothing_and_release_is_audited(store):
    hold = holds.add_hold(
        store, kind="records", records=[("sales", "Leads", "L1")], reason="r", operator="o"
    )
    holds.add_hold(
        store,
        kind="records",
        records=[("sales", "Leads", "L2")],
        reason="r",
        operator="o",
        now=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert ids(store) == {"L1", "L2"}
    assert ids(store, NOW + timedelta(days=2)) == {"L1"}
    released = holds.release_hold(store, hold.id, reason="case closed", operator="legal2")
    assert released.released_by == "legal2" and released.release_reason == "case closed"
    assert ids(store) == {"L2"}
    with pytest.raises(GuardError, match="already released"):
        holds.release_hold(store, hold.id, reason="again", operator="x")
    with pytest.raises(ConfigError, match="no hold"):
        holds.release_hold(store, "hold-nope", reason="x", operator="x")
    actions = [e.action for e in store.find_audit(AuditQuery())]
    assert actions == ["hold.add", "hold.add", "hold.release"]
    assert verify_store(store).ok
    assert hold.id in [h.id for h in holds.list_holds(store, include_released=True)]
    assert hold.id not in [h.id for h in holds.list_holds(store)]


def test_statutory_floor_blocks_until_its_clock_plus_period(store, config):
    blocks = deletion_blocks(store, config, "sales", "Invoices", ["I1", "I2"], NOW)
    # I1 created 2020: floor 10y (3650 d) ends in 2029; I2 (2009-12-31T16:00Z) has passed
    assert set(blocks) == {"I1"}
    assert blocks["I1"].kind == "statutory" and blocks["I1"].code == "HGB-257"
    assert blocks["I1"].until == "2029-12-29T00:00:00Z"
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert deletion_blocks(store, config, "sales", "Invoices", ["I1"], later) == {}


def test_hold_ranks_before_the_statutory_floor(store, config):
    holds.add_hold(
        store, kind="records", records=[("sales", "Invoices", "I1")], reason="r", operator="o"
    )
    assert deletion_blocks(store, config, "sales", "Invoices", ["I1"], NOW)["I1"].kind == "hold"


RECORD = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["active", "archived", "voided"]),
        "age": st.integers(0, 400),  # days in that status
        "tag": st.sampled_from([None, "VIP", "vip", "other"]),
        "city": st.sampled_from(["DE", "CN"]),
        "created": st.integers(2015, 2026),
    }
)
HOLDS = st.lists(
    st.one_of(
        st.tuples(st.just("records"), st.sets(st.integers(0, 11), max_size=3)),
        st.tuples(st.just("tag"), st.sampled_from(["vip", "other"])),
        st.tuples(st.just("filter"), st.sampled_from(["DE", "CN"])),
        st.tuples(st.just("connection"), st.booleans()),  # the module, or another one
    ),
    max_size=3,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(RECORD, min_size=1, max_size=12), held=HOLDS, floor=st.booleans())
def test_purge_never_selects_a_held_or_floored_record_and_restricts_exactly_those(
    registry, tmp_path, records, held, floor
):
    """Property: over random records and holds, the purge part and the restrict part split the
    records due for deletion exactly along deletion_blocks: never a blocked record purged."""
    from crmsync.compliance.purge import part_queries
    from crmsync.compliance.retention import retention_of

    rule = 'purge_voided_after = "30d"\n'
    if floor:
        rule += 'keep_at_least = "8y"\nkeep_basis = "HGB-257"\n'
    config = parse_config(
        CONFIG.split("[[retention.rules]]")[0]
        + f'[[retention.rules]]\nconnection = "sales"\nmodule = "Leads"\n{rule}',
        registry,
    )
    with open_store(tmp_path / "p.db") as store:
        db = store._db
        for table in ("mirror", "legal_holds", "legal_hold_records"):
            db.execute(f"DELETE FROM {table}")
        run = store.start_run("pull", "sales", "Leads")
        pulled = [
            PulledRecord(
                f"R{i}",
                {"city": r["city"], "tags": [r["tag"]] if r["tag"] else [],
                 "created_at": f"{r['created']}-06-01T00:00:00Z"},
                status=r["status"],
            )
            for i, r in enumerate(records)
        ]  # fmt: skip
        store.commit_page("sales", "Leads", run, pulled)
        for i, r in enumerate(records):
            since = (NOW - timedelta(days=r["age"])).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            db.execute("UPDATE mirror SET status_since = ? WHERE record_id = ?", (since, f"R{i}"))
        for kind, value in held:
            if kind == "records":
                refs = [("sales", "Leads", f"R{i}") for i in value]
                if refs:
                    holds.add_hold(store, kind=kind, records=refs, reason="r", operator="o")
            elif kind == "tag":
                holds.add_hold(store, kind=kind, spec={"tag": value}, reason="r", operator="o")
            elif kind == "filter":
                spec = {"filter": {"field": "city", "op": "eq", "value": value}}
                holds.add_hold(store, kind=kind, connection="sales", module="Leads", spec=spec,
                               reason="r", operator="o")  # fmt: skip
            else:
                module = "Leads" if value else "Deals"
                holds.add_hold(store, kind=kind, connection="sales", module=module,
                               reason="r", operator="o")  # fmt: skip
        rule_obj = retention_of(config).rule_for("sales", "Leads")
        active = holds.active_holds(store, NOW)
        parts = part_queries(rule_obj, active, "sales", "Leads", NOW)
        purged = {row[2] for row in db.execute(*parts["purge"].select())}
        restricted = {row[2] for row in db.execute(*parts["restrict"].select())}
        ids = [p.id for p in pulled]
        blocked = deletion_blocks(store, config, "sales", "Leads", ids, NOW)
        due = {f"R{i}" for i, r in enumerate(records) if r["status"] == "voided" and r["age"] >= 30}
        assert purged == due - set(blocked)
        assert restricted == due & set(blocked)
