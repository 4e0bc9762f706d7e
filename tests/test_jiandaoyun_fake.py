"""The fake Jiandaoyun itself follows the documented API (so the connector tests mean something):
raw HTTP against it, no connector involved."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from crmsync_connectors.jiandaoyun.fake import STATUS_WIDGET, FakeClock, FakeJiandaoyun


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jdy(clock: FakeClock) -> Iterator[FakeJiandaoyun]:
    with FakeJiandaoyun(records=120, clock=clock.now) as server:
        yield server


def call(jdy: FakeJiandaoyun, endpoint: str, key: str | None = None, **body: Any) -> Any:
    payload = {"app_id": jdy.app_id, "entry_id": jdy.entry_id, **body}
    return requests.post(
        f"{jdy.url}/v5/app/entry/{endpoint}",
        json=payload,
        headers={"Authorization": f"Bearer {key or jdy.api_key}"},
        timeout=5,
    )


def error(response: requests.Response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


def test_every_error_is_http_400_with_code_and_msg(jdy: FakeJiandaoyun) -> None:
    assert error(call(jdy, "data/list", key="nope")) == (400, 8301)
    assert error(call(jdy, "data/list", app_id="x" * 24)) == (400, 3000)
    assert error(call(jdy, "data/list", entry_id="x" * 24)) == (400, 3001)
    assert error(call(jdy, "data/get", data_id="x" * 24)) == (400, 4000)
    assert error(call(jdy, "data/list", fields=["nope"])) == (400, 4001)
    assert "msg" in call(jdy, "data/list", limit=0).json()


def test_list_is_in_ascending_id_order_after_the_cursor_with_limit_1_to_100(
    jdy: FakeJiandaoyun,
) -> None:
    assert len(call(jdy, "data/list").json()["data"]) == 10  # documented default
    assert error(call(jdy, "data/list", limit=101)) == (400, 1)
    assert error(call(jdy, "data/list", limit=0)) == (400, 1)
    first = call(jdy, "data/list", limit=100).json()["data"]
    rest = call(jdy, "data/list", limit=100, data_id=first[-1]["_id"]).json()["data"]
    ids = [r["_id"] for r in first + rest]
    assert ids == sorted(ids) == jdy.ids() and len(rest) == 20


def test_fields_answer_those_plus_id_app_and_entry(jdy: FakeJiandaoyun) -> None:
    row = call(jdy, "data/list", limit=1, fields=["customer_name"]).json()["data"][0]
    assert set(row) == {"_id", "appId", "entryId", "customer_name"}


def test_filter_range_is_inclusive_and_wrong_shapes_are_refused(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    clock.advance(10)
    touched = jdy.touch(ids=jdy.ids()[:3])
    when = jdy.record(touched[0])["updateTime"]
    cond = {"field": "updateTime", "type": "datetime", "method": "range", "value": [when, None]}
    rows = call(jdy, "data/list", limit=100, filter={"rel": "and", "cond": [cond]}).json()["data"]
    assert {r["_id"] for r in rows} == set(touched)
    for bad in (
        {**cond, "val": [when]},  # public code's wrong key
        {**cond, "method": "between"},
        {"field": "_id", "method": "in", "value": ["x"] * 201},
    ):
        assert error(call(jdy, "data/list", filter={"rel": "and", "cond": [bad]})) == (400, 1)
    assert error(call(jdy, "data/list", filter={"rel": "xor", "cond": []})) == (400, 1)


def test_batch_update_writes_wrapped_values_to_at_most_100_ids(jdy: FakeJiandaoyun) -> None:
    ids = jdy.ids()[:3]
    data = {STATUS_WIDGET: {"value": "已归档"}}
    answer = call(jdy, "data/batch_update", data_ids=[*ids, "f" * 24], data=data).json()
    assert answer == {"status": "success", "success_count": 3}
    assert all(jdy.record(i)[STATUS_WIDGET] == "已归档" for i in ids)
    assert error(call(jdy, "data/batch_update", data_ids=["a"] * 101, data=data)) == (400, 1)
    unwrapped = {STATUS_WIDGET: "已归档"}
    assert error(call(jdy, "data/batch_update", data_ids=ids, data=unwrapped)) == (400, 1)
    unknown = {"_widget_9": {"value": 1}}
    assert error(call(jdy, "data/batch_update", data_ids=ids, data=unknown)) == (400, 4001)


def test_batch_delete_counts_what_it_deleted(jdy: FakeJiandaoyun) -> None:
    ids = jdy.ids()[:2]
    answer = call(jdy, "data/batch_delete", data_ids=[*ids, "f" * 24]).json()
    assert answer == {"status": "success", "success_count": 2}
    assert set(ids).isdisjoint(jdy.ids())


def test_widget_list_names_aliases_labels_and_options(jdy: FakeJiandaoyun) -> None:
    body = call(jdy, "widget/list").json()
    by_label = {w["label"]: w for w in body["widgets"]}
    assert by_label["客户名称"]["name"] == "customer_name"
    assert by_label["客户名称"]["widgetName"].startswith("_widget_")
    assert [i["value"] for i in by_label["状态"]["items"]] == ["正常", "已归档", "已作废"]
    assert {"name": "updateTime"} in body["sysWidgets"] and body["dataModifyTime"]


def test_per_endpoint_rate_limit_answers_8303_within_one_second(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    answers = [call(jdy, "data/batch_delete", data_ids=["f" * 24]) for _ in range(11)]
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert error(answers[10]) == (400, 8303)
    clock.advance(1.0)
    assert call(jdy, "data/batch_delete", data_ids=["f" * 24]).status_code == 200
    assert jdy.stats()["rate_limited"] == 1


def test_date_header_and_update_times_run_on_the_fake_clock(
    jdy: FakeJiandaoyun, clock: FakeClock
) -> None:
    clock.advance(3600)
    answer = call(jdy, "data/update", data_id=jdy.ids()[0], data={"customer_name": {"value": "x"}})
    date = email.utils.parsedate_to_datetime(answer.headers["Date"])
    assert date.isoformat().startswith("2026-01-01T01:00")
    assert answer.json()["data"]["updateTime"].startswith("2026-01-01T01:00:00")
    assert jdy.write_count(jdy.ids()[0]) == 1
