"""The Jiandaoyun connector against its fake: paging and call counts, increments and
checkpoints, rate limits, error codes and bad answers, field keys, per-record write results."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.hookspecs import StatusChange
from crmsync_connectors.jiandaoyun.connector import JiandaoyunConnector, JiandaoyunSession
from crmsync_connectors.jiandaoyun.fake import STATUS_WIDGET, FakeClock, FakeJiandaoyun
from crmsync_connectors.jiandaoyun.settings import SETTINGS_SCHEMA
from tests.test_jiandaoyun_contract import ACTIVE, ARCHIVED, VOIDED, jdy_settings, secret

MODULE = "customers"
LEVEL = "_widget_1600000000003"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jdy(clock: FakeClock) -> Iterator[FakeJiandaoyun]:
    with FakeJiandaoyun(records=250, clock=clock.now) as server:
        yield server


def open_session(jdy: FakeJiandaoyun, clock: FakeClock, **extra: Any) -> JiandaoyunSession:
    connector = JiandaoyunConnector(sleep=clock.sleep, clock=clock.now)
    return connector.open("jdy", jdy_settings(jdy, **extra))


def drain(session: JiandaoyunSession, since: str | None = None) -> list[Any]:
    return list(session.pull(MODULE, since=since))


# ---------------------------------------------------------------------- paging and calls


@pytest.mark.parametrize(("records", "page_size"), [(0, 100), (99, 100), (100, 100), (250, 100)])
def test_full_pull_costs_one_list_call_per_page_plus_one_when_the_last_page_is_full(
    clock: FakeClock, records: int, page_size: int
) -> None:
    with FakeJiandaoyun(records=records, clock=clock.now) as jdy:
        session = open_session(jdy, clock, page_size=page_size)
        pages = drain(session)
        ids = [r.id for p in pages for r in p.records]
        assert ids == sorted(ids) == jdy.ids()
        # ceil(N / L) calls, and one more (answered empty) when L divides N: the API has no
        # "more" flag or total, only a page shorter than the limit ends the list.
        expected = records // page_size + 1
        assert expected in (math.ceil(records / page_size), math.ceil(records / page_size) + 1)
        assert sum(p.api_calls for p in pages) == expected
        assert jdy.stats()["by_endpoint"]["data/list"] == expected
        assert session.stats()["record_calls"] == expected
        assert session.stats()["metadata_calls"] == 1  # widget/list, once per form


def test_page_size_is_the_data_list_limit(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    pages = drain(open_session(jdy, clock, page_size=7))
    assert [len(p.records) for p in pages[:-1]] == [7] * (len(pages) - 1)
    assert len(pages) == 250 // 7 + 1


def test_records_carry_normalised_times_status_and_the_api_names(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    first = drain(open_session(jdy, clock))[0].records[0]
    raw = jdy.record(first.id)
    assert first.modified_at and first.modified_at.endswith("Z")
    assert first.modified_at[:19] == raw["updateTime"][:19]
    assert first.data["customer_name"] == raw["customer_name"]  # the alias is the API name
    assert first.status == "active"
    jdy.edit(first.id, **{STATUS_WIDGET: VOIDED})
    again = drain(open_session(jdy, clock))[0].records[0]
    assert again.status == "voided"


def test_label_keys_let_policies_use_the_titles_and_writes_use_the_widget_names(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock, field_keys="label")
    info = session.list_modules()[0]
    assert info.status_field == "状态" and info.modified_field == "updateTime"
    assert {"客户名称", "客户等级", "状态", "_id"} <= {f.name for f in info.fields}
    record = drain(session)[0].records[0]
    assert record.data["客户名称"] == jdy.record(record.id)["customer_name"]
    results = session.push(MODULE, [StatusChange(record.id, "update", {"客户等级": "流失"})])
    assert results[0].ok
    assert jdy.record(record.id)[LEVEL] == "流失"


def test_configured_fields_are_pulled_by_alias_label_or_widget_id(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock, module={"fields": ["客户名称", LEVEL]})
    record = drain(session)[0].records[0]
    assert set(record.data) == {
        "_id", "appId", "entryId", "customer_name", LEVEL, "updateTime", STATUS_WIDGET,
    }  # fmt: skip


# ---------------------------------------------------------------------- increments


def test_a_record_edited_behind_the_cursor_during_a_pull_is_read_by_the_next_one(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    pull = session.pull(MODULE)
    first = next(pull)
    clock.advance(5)
    edited = jdy.touch(ids=[first.records[0].id])  # behind the cursor now
    rest = list(pull)
    checkpoint = rest[-1].checkpoint
    again = {r.id for p in drain(session, since=checkpoint) for r in p.records}
    assert set(edited) <= again


def test_resuming_a_pull_keeps_its_start_as_the_final_checkpoint(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    pages = drain(session)
    middle = pages[1].checkpoint
    assert middle and middle.count("|") == 2
    clock.advance(3600)
    resumed = drain(session, since=middle)
    assert {r.id for p in resumed for r in p.records} == {
        r.id for p in pages[2:] for r in p.records
    }
    assert resumed[-1].checkpoint == pages[-1].checkpoint


def test_incremental_pull_filters_on_update_time_inclusively(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock, incremental_overlap=0)
    checkpoint = drain(session)[-1].checkpoint
    assert checkpoint and "|" not in checkpoint
    jdy.reset_stats()
    assert [r for p in drain(session, since=checkpoint) for r in p.records] == []
    assert jdy.stats()["list_calls_by_kind"] == {"filtered": 1}


def test_a_checkpoint_from_elsewhere_is_refused_clearly(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    with pytest.raises(ConnectorError, match="not one this connector wrote"):
        drain(open_session(jdy, clock), since="page=3")


# ---------------------------------------------------------------------- rate limits


def test_the_client_side_limiter_keeps_every_endpoint_under_its_documented_rate(
    clock: FakeClock,
) -> None:
    with FakeJiandaoyun(records=600, clock=clock.now) as jdy:
        session = open_session(jdy, clock, page_size=5)
        assert len({r.id for p in drain(session) for r in p.records}) == 600
        assert jdy.stats()["rate_limited"] == 0
        # 121 data/list calls at 27 a second (30 less 10 % headroom): four full windows waited
        assert session.stats()["limiter_wait_seconds"] >= 4.0 - 0.01


def test_the_8303_answer_is_backed_off_and_the_pull_completes(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    jdy.rate_limit_next(3, endpoint="data/list")
    session = open_session(jdy, clock, backoff_base=1.0)
    assert len({r.id for p in drain(session) for r in p.records}) == 250
    assert session.stats()["rate_limited"] == 3
    assert [w for w in clock.waits if w >= 1.0][:3] == [1.0, 2.0, 4.0]
    assert session.stats()["record_calls"] == 3 + 3  # the refused calls count too


def test_a_server_without_client_limits_answers_8303_and_the_connector_backs_off(
    clock: FakeClock,
) -> None:
    with FakeJiandaoyun(records=400, clock=clock.now) as jdy:
        fast = {k: 1000.0 for k in ("data/list", "global")}
        session = open_session(jdy, clock, page_size=10, rate_limits=fast, backoff_base=1.0)
        assert len({r.id for p in drain(session) for r in p.records}) == 400
        assert jdy.stats()["rate_limited"] > 0
        assert session.stats()["rate_limited"] == jdy.stats()["rate_limited"]


def test_rate_limit_that_does_not_end_is_a_clear_error(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    jdy.rate_limit_next(10)
    with pytest.raises(ConnectorError, match="still rate limited") as err:
        drain(open_session(jdy, clock, max_retries=2))
    assert "'jdy'" in str(err.value) and "'customers'" in str(err.value)


def test_http_429_honours_retry_after(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    jdy.fail_next(429, 1, retry_after=7)
    assert len({r.id for p in drain(open_session(jdy, clock)) for r in p.records}) == 250
    assert 7.0 in clock.waits


# ---------------------------------------------------------------------- bad answers, errors


def test_wrong_api_key_is_an_auth_error_naming_the_connection(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    settings = {**jdy_settings(jdy), "api_key": secret("jdy-not-a-key-987654")}
    session = JiandaoyunConnector(sleep=clock.sleep, clock=clock.now).open("jdy", settings)
    with pytest.raises(AuthError) as err:
        session.check()
    text = str(err.value)
    assert "'jdy'" in text and "8301" in text and "密钥管理" in text
    assert "jdy-not-a-key-987654" not in text + repr(err.value)


def test_a_key_disabled_mid_pull_stops_with_an_auth_error(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    pull = open_session(jdy, clock).pull(MODULE)
    next(pull)
    jdy.disable_key()
    with pytest.raises(AuthError, match="refused the API key"):
        list(pull)


def test_http_200_carrying_an_error_code_is_an_error(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    jdy.fail_next(200, 1, code=3001, msg="The form doesn't exist.", endpoint="data/list")
    with pytest.raises(ConnectorError, match="entry_id") as err:
        drain(open_session(jdy, clock))
    assert "code 3001" in str(err.value) and "page 1" in str(err.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"data": [{"_id": "5e', "malformed JSON"),
        (b'{"items": []}', "without a data list"),
        (b'{"data": [{"name": "x"}]}', "without _id"),
        (b'{"data": [{"_id": "a", "updateTime": "yesterday"}]}', "not a time"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_bad_answers_are_bad_response_errors_naming_connection_module_and_page(
    jdy: FakeJiandaoyun, clock: FakeClock, body: bytes, match: str
) -> None:
    jdy.fail_next(200, 1, body=body, endpoint="data/list")
    with pytest.raises(BadResponseError, match=match) as err:
        drain(open_session(jdy, clock))
    assert "connection 'jdy', module 'customers', page 1" in str(err.value)


def test_unknown_app_form_and_module_are_named(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    bad_app = open_session(jdy, clock, module={"app_id": "000000000000000000000000"})
    with pytest.raises(ConnectorError, match=r"3000.*app_id") as err:
        bad_app.check()
    assert "module 'customers'" in str(err.value)
    bad_form = open_session(jdy, clock, module={"entry_id": "000000000000000000000000"})
    with pytest.raises(ConnectorError, match=r"3001.*entry_id"):
        bad_form.list_modules()
    with pytest.raises(ConnectorError, match="not configured"):
        drain_other = open_session(jdy, clock)
        list(drain_other.pull("contacts"))


def test_unknown_fields_and_status_options_are_named(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    with pytest.raises(ConnectorError, match=r"'客户来源' is not on the form.*客户名称"):
        drain(open_session(jdy, clock, module={"fields": ["客户来源"]}))
    values = {"active": ACTIVE, "archived": "归档", "voided": VOIDED}
    odd = open_session(jdy, clock, module={"status": {"field": "状态", "values": values}})
    with pytest.raises(ConnectorError, match=r"no option '归档'.*已归档"):
        odd.list_modules()
    session = open_session(jdy, clock)
    with pytest.raises(ConnectorError, match="'来源' is not on the form"):
        session.push(MODULE, [StatusChange(jdy.ids()[0], "update", {"来源": "x"})])


def test_settings_schema_refuses_bad_values() -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(SETTINGS_SCHEMA)
    good = {"api_key": "env:K", "modules": {"c": {"app_id": "a", "entry_id": "e"}}}
    assert not list(validator.iter_errors(good))
    for bad in (
        {**good, "page_size": 101},
        {**good, "field_keys": "alias"},
        {**good, "modules": {}},
        {**good, "modules": {"c": {"app_id": "a"}}},
        {**good, "modules": {"c": {"app_id": "a", "entry_id": "e", "status": {"field": "s"}}}},
        {**good, "colour": "red"},
    ):
        assert list(validator.iter_errors(bad)), bad


# ---------------------------------------------------------------------- write-back


def test_write_back_costs_one_batch_update_per_100_records_of_the_same_values(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    ids = jdy.ids()
    results = []
    for start in range(0, 250, 100):
        results += session.push(
            MODULE, [StatusChange(i, "archive") for i in ids[start : start + 100]]
        )
    assert all(r.ok for r in results) and len(results) == 250
    assert jdy.stats()["by_endpoint"]["data/batch_update"] == math.ceil(250 / 100)
    assert session.stats()["verify_calls"] == 0
    assert all(jdy.status_text(i) == ARCHIVED for i in ids)
    assert jdy.stats()["max_batch"] == 100


def test_a_mixed_batch_is_one_call_per_target_value(jdy: FakeJiandaoyun, clock: FakeClock) -> None:
    session = open_session(jdy, clock)
    ids = jdy.ids()[:30]
    changes = [StatusChange(i, "archive" if n % 2 else "void") for n, i in enumerate(ids)]
    results = session.push(MODULE, changes)
    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert jdy.stats()["by_endpoint"]["data/batch_update"] == 2
    assert jdy.status_text(ids[0]) == VOIDED and jdy.status_text(ids[1]) == ARCHIVED


@pytest.mark.parametrize(("id_filter", "checks"), [(False, 11), (True, 1)])
def test_short_success_count_gives_per_record_results_from_a_read_back(
    jdy: FakeJiandaoyun, clock: FakeClock, id_filter: bool, checks: int
) -> None:
    session = open_session(jdy, clock, id_filter=id_filter)
    ids = jdy.ids()[:10]
    jdy.reject_writes(ids[:2])
    results = {
        r.record_id: r
        for r in session.push(MODULE, [StatusChange(i, "void") for i in [*ids, "f" * 24]])
    }
    assert results[ids[0]].error.startswith("NOT_WRITTEN") and results[ids[0]].retryable
    assert results["f" * 24].error.startswith("NOT_FOUND") and not results["f" * 24].retryable
    assert all(results[i].ok for i in ids[2:])
    assert session.stats()["verify_calls"] == checks  # data/get per id, or one data/list


def test_archiving_an_archived_record_and_restoring_an_active_one_are_ok(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    rid = jdy.ids()[0]
    jdy.edit(rid, **{STATUS_WIDGET: ARCHIVED})
    assert session.push(MODULE, [StatusChange(rid, "archive")])[0].ok
    assert session.push(MODULE, [StatusChange(rid, "restore")])[0].ok
    assert session.push(MODULE, [StatusChange(rid, "restore")])[0].ok
    assert jdy.status_text(rid) == ACTIVE


def test_restore_from_a_copy_drops_read_only_system_fields(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    rid = jdy.ids()[0]
    copy = jdy.record(rid)
    jdy.edit(rid, customer_name="被改坏的名字", **{STATUS_WIDGET: VOIDED})
    fields = {k: v for k, v in copy.items() if k != STATUS_WIDGET}
    assert session.push(MODULE, [StatusChange(rid, "restore", fields, copy)])[0].ok
    now = jdy.record(rid)
    assert now["customer_name"] == copy["customer_name"] and now[STATUS_WIDGET] == ACTIVE


def test_without_a_status_widget_only_update_and_purge_are_offered(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    settings = jdy_settings(jdy)
    del settings["modules"][MODULE]["status"]
    session = JiandaoyunConnector(sleep=clock.sleep, clock=clock.now).open("jdy", settings)
    assert session.list_modules()[0].actions == ("update", "purge")
    with pytest.raises(ConnectorError, match=r"configure modules.customers.status"):
        session.push(MODULE, [StatusChange(jdy.ids()[0], "archive")])


@pytest.mark.parametrize(
    ("id_filter", "reads"),
    # 6 ids read before, the 5 that existed read again after the short count; or 1 + 1 lists
    [(False, {"data/get": 6 + 5}), (True, {"data/list": 2})],
)
def test_purge_checks_which_records_exist_then_deletes_them(
    jdy: FakeJiandaoyun, clock: FakeClock, id_filter: bool, reads: dict[str, int]
) -> None:
    session = open_session(jdy, clock, id_filter=id_filter)
    ids = jdy.ids()[:5]
    jdy.reject_writes(ids[:1])
    results = {r.record_id: r for r in session.delete(MODULE, [*ids, "e" * 24])}
    assert results["e" * 24].error.startswith("NOT_FOUND")
    assert results[ids[0]].error.startswith("NOT_DELETED") and results[ids[0]].retryable
    assert all(results[i].ok for i in ids[1:])
    assert set(ids[1:]).isdisjoint(jdy.ids())
    assert jdy.stats()["by_endpoint"] == {"widget/list": 1, "data/batch_delete": 1, **reads}


def test_batches_over_100_are_refused_before_any_call(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    session = open_session(jdy, clock)
    with pytest.raises(ConnectorError, match="at most 100"):
        session.push(MODULE, [StatusChange(str(i), "archive") for i in range(101)])
    with pytest.raises(ConnectorError, match="at most 100"):
        session.delete(MODULE, [str(i) for i in range(101)])
    assert jdy.stats()["requests"] == 0


def test_the_commented_example_connection_is_valid() -> None:
    import tomllib
    from pathlib import Path

    from jsonschema import Draft202012Validator

    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    start = text.index("# [connections.jdy]")
    block = text[start : text.index("\n\n", start)]
    lines = [line[2:] for line in block.splitlines() if not line.startswith("# #")]
    table = tomllib.loads("\n".join(lines))["connections"]["jdy"]
    assert table.pop("connector") == "jiandaoyun"
    assert not list(Draft202012Validator(SETTINGS_SCHEMA).iter_errors(table))


def test_a_key_echoed_in_an_error_message_is_not_repeated(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    jdy.fail_next(400, 1, code=1, msg=f"bad header Bearer {jdy.api_key}", endpoint="data/list")
    with pytest.raises(ConnectorError) as err:
        drain(open_session(jdy, clock))
    assert jdy.api_key not in str(err.value) and "Bearer ***" in str(err.value)


def test_the_limiter_never_starts_more_than_27_list_calls_in_any_second(clock: FakeClock) -> None:
    from crmsync.ratelimit import SlidingWindowLimiter
    from crmsync_connectors.jiandaoyun.api import rate_windows

    windows = rate_windows({"data/list": 30, "global": 50})
    limiter = SlidingWindowLimiter(windows, clock=clock.now, sleep=clock.sleep)
    starts = []
    for _ in range(100):
        limiter.wait("data/list", "global")
        starts.append(clock.now())
    assert all(starts[i + 27] - starts[i] >= 1.0 for i in range(len(starts) - 27))
    clock.advance(5)  # idle time (the mirror committing) is not lost: the next 27 go at once
    before = clock.now()
    for _ in range(27):
        limiter.wait("data/list", "global")
    assert clock.now() == before
