"""The fake Fxiaoke itself follows the documented OpenAPI behaviour (raw HTTP, no connector):
errors in HTTP 200, token expiry, offset cap and _id paging, preset vs custom paths, the
invalid -> recover / delete rules and the per-interface rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from crmsync_connectors.fxiaoke.fake import FakeFxiaoke, codes

QUERY = "/cgi/crm/v2/data/query"


@pytest.fixture
def fx() -> Iterator[FakeFxiaoke]:
    with FakeFxiaoke(records={"AccountObj": 40, "Visit__c": 5}, seed=2) as f:
        yield f


@pytest.fixture
def big() -> Iterator[FakeFxiaoke]:
    with FakeFxiaoke(records={"AccountObj": 10_120}, seed=2) as f:
        f.set_life_status("AccountObj", f.ids("AccountObj"), "normal", stamp=False)
        yield f


def post(fx: FakeFxiaoke, path: str, body: Any) -> dict[str, Any]:
    response = requests.post(fx.url + path + "?thirdTraceId=t1", json=body, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def token(fx: FakeFxiaoke) -> dict[str, Any]:
    answer = post(fx, "/cgi/corpAccessToken/get/V2", {"appId": fx.app_id,
                  "appSecret": fx.app_secret, "permanentCode": fx.permanent_code})  # fmt: skip
    assert answer["errorCode"] == 0 and answer["expiresIn"] == 7200
    return {"corpAccessToken": answer["corpAccessToken"], "corpId": answer["corpId"],
            "currentOpenUserId": fx.open_user_id}  # fmt: skip


def call(fx: FakeFxiaoke, auth: dict[str, Any], path: str, data: dict[str, Any]) -> dict:
    return post(fx, path, {**auth, "data": data})


def query(obj: str = "AccountObj", **info: Any) -> dict[str, Any]:
    return {"dataObjectApiName": obj, "search_query_info": {"limit": 100, "offset": 0, **info}}


def test_token_errors_are_http_200_with_error_codes(fx: FakeFxiaoke) -> None:
    wrong = post(fx, "/cgi/corpAccessToken/get/V2", {"appId": fx.app_id, "appSecret": "x",
                 "permanentCode": fx.permanent_code})  # fmt: skip
    assert wrong["errorCode"] == codes.BAD_APP_CREDENTIALS
    auth = token(fx)
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == 0
    no_token = {k: v for k, v in auth.items() if k != "corpAccessToken"}
    assert call(fx, no_token, QUERY, query(limit=1))["errorCode"] == codes.CORP_NOT_FOUND
    fx.advance(7200)
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == codes.TOKEN_EXPIRED
    auth = token(fx)
    fx.expire_tokens()
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == codes.TOKEN_EXPIRED


def test_query_limits_offset_cap_and_id_paging(big: FakeFxiaoke) -> None:
    fx = big
    auth = token(fx)
    assert call(fx, auth, QUERY, query(limit=101))["errorCode"] == codes.BAD_PARAM
    assert call(fx, auth, QUERY, query(offset=150))["errorCode"] == codes.BAD_PARAM
    at_cap = call(fx, auth, QUERY, query(offset=10_000))
    assert at_cap["errorCode"] == 0 and len(at_cap["data"]["dataList"]) == 100
    past = call(fx, auth, QUERY, query(offset=10_100))
    assert past["errorCode"] == codes.OFFSET_RANGE == 10013
    assert past["errorMessage"] == "offset out of range 10000"
    last = at_cap["data"]["dataList"][-1]["_id"]
    keyed = call(fx, auth, QUERY, query(
        filters=[{"field_name": "_id", "operator": "GT", "field_values": [last]}],
        orders=[{"fieldName": "_id", "isAsc": True}],
        fieldProjection=["_id", "life_status"],
    ))  # fmt: skip
    rows = keyed["data"]["dataList"]
    assert [r["_id"] for r in rows] == sorted(fx.ids("AccountObj"))[10_100:]
    assert set(rows[0]) == {"_id", "life_status"}
    totals = call(fx, auth, QUERY, {**query(limit=5), "find_explicit_total_num": True})
    assert totals["data"]["total"] == 10_120
    assert call(fx, auth, QUERY, query(limit=5))["data"]["total"] == 0
    unknown = call(fx, auth, QUERY, query(fieldProjection=["nope"]))
    assert unknown["errorCode"] == codes.NO_FIELD


def test_invalid_records_are_returned_when_life_status_is_filtered(fx: FakeFxiaoke) -> None:
    auth = token(fx)
    ids = fx.ids("AccountObj")
    fx.set_life_status("AccountObj", ids, "normal")
    fx.set_life_status("AccountObj", ids[:3], "invalid")
    unasked = call(fx, auth, QUERY, query())["data"]["dataList"]
    assert {r["_id"] for r in unasked} == set(ids[3:])
    values = ["normal", "invalid", "under_review", "in_change", "ineffective"]
    every = {"field_name": "life_status", "operator": "IN", "field_values": values}
    asked = call(fx, auth, QUERY, query(filters=[every]))["data"]["dataList"]
    assert {r["_id"] for r in asked} == set(ids)


def test_preset_and_custom_objects_have_their_own_paths(fx: FakeFxiaoke) -> None:
    auth = token(fx)
    custom = "/cgi/crm/custom/v2/data/query"
    assert call(fx, auth, custom, query("Visit__c"))["errorCode"] == 0
    assert call(fx, auth, QUERY, query("Visit__c"))["errorCode"] == codes.NO_OBJECT
    assert call(fx, auth, custom, query("AccountObj"))["errorCode"] == codes.NO_OBJECT
    assert call(fx, auth, QUERY, query("GhostObj"))["errorCode"] == codes.NO_OBJECT
    ids = fx.ids("Visit__c")[:2]
    fx.set_life_status("Visit__c", ids, "normal")
    batch = {"dataObjectApiName": "Visit__c", "idList": ids}
    assert call(fx, auth, "/cgi/crm/custom/data/invalid", batch)["errorCode"] == 0
    preset = {"dataObjectApiName": "AccountObj", "idList": fx.ids("AccountObj")[:2]}
    assert call(fx, auth, "/cgi/crm/custom/data/invalid", preset)["errorCode"] == codes.NO_OBJECT


def test_invalid_recover_delete_follow_the_recycle_bin_rules(fx: FakeFxiaoke) -> None:
    auth = token(fx)
    rid = fx.ids("AccountObj")[0]
    fx.set_life_status("AccountObj", [rid], "normal")
    path = "/cgi/crm/v2/data/"
    one = {"dataObjectApiName": "AccountObj", "object_data_id": rid}
    ids = {"dataObjectApiName": "AccountObj", "idList": [rid]}
    as_list = {"dataObjectApiName": "AccountObj", "object_data_id": [rid]}
    assert call(fx, auth, path + "invalid", as_list)["errorCode"] == codes.BAD_PARAM
    assert call(fx, auth, path + "delete", ids)["errorCode"] == codes.NOT_INVALID
    assert call(fx, auth, path + "recover", ids)["errorCode"] == codes.NOT_INVALID
    assert call(fx, auth, path + "invalid", one)["errorCode"] == 0
    assert fx.record("AccountObj", rid)["life_status"] == "invalid"
    assert call(fx, auth, path + "invalid", one)["errorCode"] == codes.ALREADY_INVALID
    assert call(fx, auth, path + "recover", ids)["errorCode"] == 0
    assert fx.record("AccountObj", rid)["life_status"] == "normal"
    assert call(fx, auth, path + "invalid", one)["errorCode"] == 0
    assert call(fx, auth, path + "delete", ids)["errorCode"] == 0
    assert fx.record("AccountObj", rid) is None
    gone = call(fx, auth, path + "recover", ids)
    assert gone["errorCode"] == codes.NOT_FOUND
    update = {"object_data": {"_id": fx.ids("AccountObj")[1], "dataObjectApiName": "AccountObj",
                              "owner": ["x"]}}  # fmt: skip
    assert call(fx, auth, path + "update", update)["errorCode"] == codes.BAD_PARAM


def test_rate_limit_is_per_interface_over_a_sliding_window(fx: FakeFxiaoke) -> None:
    auth = token(fx)
    for _ in range(100):
        assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == 0
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == codes.RATE_LIMITED
    other = {"dataObjectApiName": "AccountObj", "objectDataId": fx.ids("AccountObj")[0]}
    assert call(fx, auth, "/cgi/crm/v2/data/get", other)["errorCode"] == 0  # its own limit
    fx.advance(19.9)
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == codes.RATE_LIMITED
    fx.advance(0.2)
    assert call(fx, auth, QUERY, query(limit=1))["errorCode"] == 0


def test_non_json_and_unknown_paths(fx: FakeFxiaoke) -> None:
    bad = requests.post(fx.url + QUERY, data=b"{nope", timeout=5)
    assert bad.status_code == 200 and bad.json()["errorCode"] == codes.BAD_PARAM
    assert requests.post(fx.url + "/cgi/nothing", json={}, timeout=5).status_code == 404
    assert requests.get(fx.url + QUERY, timeout=5).status_code == 405
