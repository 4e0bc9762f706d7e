"""The pull engine, driven through the in-memory connector (HTTP is covered elsewhere)."""

from __future__ import annotations

import pytest

from crmsync.config import parse_config
from crmsync.connections import open_session
from crmsync.errors import BadResponseError, ConfigError, ConnectorError
from crmsync.pull import FULL, FULL_FIRST, FULL_NO_MODIFIED, INCREMENTAL, pull_connection
from crmsync.store import open_store

CONFIG = '[connections.mem]\nconnector = "memory"\nurl = "memory://"\npage_size = 10\n'


@pytest.fixture
def crm(memory_plugin):
    crm = memory_plugin.connector.crm
    for _ in range(45):
        crm.add()
    return crm


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "s.db") as s:
        yield s


@pytest.fixture
def session(registry):
    s = open_session(parse_config(CONFIG, registry), registry, "mem")
    yield s
    s.close()


def pull(session, store, **kw):
    return pull_connection(session, store, "mem", modules=["Things"], **kw).modules[0]


def test_first_pull_is_full_and_stores_every_record(crm, store, session):
    result = pull(session, store)
    assert result.mode == FULL_FIRST
    assert (result.records, result.new, result.pages) == (45, 45, 5)
    assert store.count("mem", "Things") == 45
    assert store.cursor("mem", "Things").cursor == max(r["modified"] for r in crm.records.values())


def test_second_pull_is_incremental_from_the_cursor(crm, store, session):
    pull(session, store)
    crm.touch("3")
    crm.touch("7")
    crm.add()
    result = pull(session, store)
    assert result.mode == INCREMENTAL
    # the inclusive lower bound re-reads the boundary record: it is counted unchanged
    assert (result.new, result.changed) == (1, 2)
    assert result.unchanged <= 1
    assert store.get_record("mem", "Things", "3").data["name"].endswith("!")


def test_full_flag_pulls_everything_and_marks_vanished_records(crm, store, session):
    pull(session, store)
    del crm.records["5"]
    result = pull(session, store, full=True)
    assert result.mode == FULL
    assert result.deleted == 1
    assert store.count("mem", "Things") == 44
    assert store.get_record("mem", "Things", "5").crm_deleted_at is not None


def test_module_without_modified_time_is_always_pulled_in_full(crm, store, session):
    pull_connection(session, store, "mem", modules=["Static"])
    again = pull_connection(session, store, "mem", modules=["Static"]).modules[0]
    assert again.mode == FULL_NO_MODIFIED


def test_failed_pull_keeps_complete_pages_and_the_next_run_skips_nothing(crm, store, session):
    crm.fail_on_page = 3
    with pytest.raises(ConnectorError) as err:
        pull(session, store)
    assert "connection 'mem', module 'Things', page 3" in str(err.value)
    assert store.count("mem", "Things") == 20  # pages 1 and 2 committed
    failed = store.runs(limit=1)[0]
    assert failed.status == "failed" and "page 3" in failed.error
    crm.fail_on_page = None
    result = pull(session, store)
    assert result.mode == INCREMENTAL  # resumed from page 2's checkpoint
    assert store.count("mem", "Things") == 45


def test_unsorted_source_does_not_advance_the_cursor_mid_pull(memory_plugin, store, session):
    crm = memory_plugin.connector.crm
    crm.sorted_by_modified = False
    for _ in range(30):
        crm.add()
    crm.fail_on_page = 2
    with pytest.raises(ConnectorError):
        pull(session, store)
    assert store.cursor("mem", "Things") is None  # nothing safe to resume from
    crm.fail_on_page = None
    assert pull(session, store).mode == FULL_FIRST
    assert store.count("mem", "Things") == 30


def test_record_without_id_is_refused_and_its_page_not_committed(crm, store, session):
    crm.blank_id_on_page = 2
    with pytest.raises(BadResponseError) as err:
        pull(session, store)
    assert "module 'Things', page 2" in str(err.value) and "no usable id" in str(err.value)
    assert store.count("mem", "Things") == 10


def test_unexpected_connector_exception_is_reported_by_location_not_by_content(crm, store, session):
    crm.fail_on_page = 2
    crm.fail_with = RuntimeError("token=abc123 leaked")
    with pytest.raises(ConnectorError) as err:
        pull(session, store)
    assert "abc123" not in str(err.value)
    assert "connection 'mem', module 'Things', page 2" in str(err.value)
    assert "RuntimeError" in str(err.value)


def test_unknown_module_is_a_usage_error(crm, store, session):
    with pytest.raises(ConfigError, match=r"unknown module 'Nope'.*available: Static, Things"):
        pull_connection(session, store, "mem", modules=["Nope"])


def test_successful_pull_is_recorded_as_a_run(crm, store, session):
    pull(session, store)
    run = store.runs(limit=1)[0]
    assert run.status == "ok" and run.summary["records"] == 45 and run.module == "Things"
