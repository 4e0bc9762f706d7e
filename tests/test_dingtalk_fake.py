"""The fake DingTalk server itself follows DingTalk's documented (and probed) behaviour: two
hosts with their own auth transport, paging caps, error shapes and QPS answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from crmsync_connectors.dingtalk.fake import STATUS_FIELDS, FakeDingTalk

CUSTOMERS = "/v1.0/crm/personalCustomers"
CONTACTS = "/topapi/crm/objectdata/contact/query"


@pytest.fixture
def dt() -> Iterator[FakeDingTalk]:
    with FakeDingTalk(records={"crm_customer": 205, "crm_contact": 12}, seed=1) as server:
        yield server


@pytest.fixture
def token(dt: FakeDingTalk) -> str:
    dt.clear_faults()
    body = requests.post(
        dt.api_url + "/v1.0/oauth2/accessToken",
        json={"appKey": dt.app_key, "appSecret": dt.app_secret},
        timeout=5,
    ).json()
    assert body["expireIn"] == 7200
    return body["accessToken"]


def new(dt: FakeDingTalk, token: str, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"x-acs-dingtalk-access-token": token}
    return requests.request(method, dt.api_url + path, headers=headers, timeout=5, **kw)


def old(dt: FakeDingTalk, token: str | None, path: str, body: Any) -> dict[str, Any]:
    params = {"access_token": token} if token else {}
    response = requests.post(dt.oapi_url + path, params=params, json=body, timeout=5)
    assert response.status_code == 200  # the old API answers errors with HTTP 200 too
    return response.json()


def test_token_endpoints_refuse_wrong_credentials_in_each_apis_shape(dt: FakeDingTalk) -> None:
    wrong = requests.post(
        dt.api_url + "/v1.0/oauth2/accessToken",
        json={"appKey": dt.app_key, "appSecret": "nope"},
        timeout=5,
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalidClientIdOrSecret"
    assert "requestid" in wrong.json()
    legacy = requests.get(
        dt.oapi_url + "/gettoken", params={"appkey": dt.app_key, "appsecret": "nope"}, timeout=5
    ).json()
    assert legacy["errcode"] == 40096


def test_one_token_works_on_both_hosts_each_in_its_own_place(dt: FakeDingTalk, token: str) -> None:
    params = {"relationType": "crm_customer", "maxResults": 1}
    assert new(dt, token, "GET", CUSTOMERS, params=params).status_code == 200
    assert old(dt, token, CONTACTS, {"page_size": 1})["errcode"] == 0
    # the old habit on the new host, and the new habit on the old host, are refused
    as_query = requests.get(
        dt.api_url + CUSTOMERS, params={**params, "access_token": token}, timeout=5
    )
    assert as_query.status_code == 400
    assert as_query.json()["code"] == "AuthenticationFailed.MissingParameter"
    blank = old(dt, None, CONTACTS, {"page_size": 1})
    assert blank["errcode"] == 88 and blank["sub_code"] == "40000"


def test_tokens_expire_after_7200_seconds_and_are_renewed_while_valid(
    dt: FakeDingTalk, token: str
) -> None:
    again = requests.post(
        dt.api_url + "/v1.0/oauth2/accessToken",
        json={"appKey": dt.app_key, "appSecret": dt.app_secret},
        timeout=5,
    ).json()["accessToken"]
    assert again == token  # within its validity: the same token, renewed
    dt.advance(7201)
    expired = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_customer",
                                                        "maxResults": 1})  # fmt: skip
    assert expired.status_code == 400 and expired.json()["code"] == "InvalidAuthentication"
    legacy = old(dt, token, CONTACTS, {"page_size": 1})
    assert legacy["errcode"] == 88 and legacy["sub_code"] == "40014"


def test_v1_paging_next_token_caps_and_inclusive_between(dt: FakeDingTalk, token: str) -> None:
    too_big = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_customer",
                                                        "maxResults": 101})  # fmt: skip
    assert too_big.status_code == 400
    dsl = json.dumps({"orderFieldId": "gmt_modified", "order": "ASC"})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"relationType": "crm_customer", "maxResults": 100, "queryDsl": dsl}
        if cursor:
            params["nextToken"] = cursor
        body = new(dt, token, "GET", CUSTOMERS, params=params).json()
        pages += 1
        seen += body["values"]
        assert body["totalCount"] == 205
        if not body["hasMore"]:
            assert "nextToken" not in body
            break
        cursor = body["nextToken"]
    assert pages == 3 and len({v["instanceId"] for v in seen}) == 205
    times = [v["gmtModified"] for v in seen]
    assert times == sorted(times) and isinstance(seen[0]["data"], dict)
    # BETWEEN on gmt_modified is inclusive at both ends (epoch ms)
    from datetime import datetime, timedelta, timezone

    last = datetime.strptime(times[-1], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=timezone(timedelta(hours=8))
    )
    ms = str(int(last.timestamp() * 1000))
    dsl = {"queryGroupList": [{"logicType": "AND", "queryObjectList": [
        {"fieldId": "gmt_modified", "filterType": "BETWEEN", "value": [ms, ms]}]}]}  # fmt: skip
    body = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_customer",
               "maxResults": 10, "queryDsl": json.dumps(dsl)}).json()  # fmt: skip
    assert seen[-1]["instanceId"] in {v["instanceId"] for v in body["values"]}
    bad = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_customer",
              "maxResults": 10, "queryDsl": "{nope"})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["code"] == "queryDsl.invalid.json"
    unknown = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_lead",
                  "maxResults": 10})  # fmt: skip
    assert unknown.json()["code"] == "relationType.not.exists"


def test_old_api_pages_carry_data_as_a_json_string_and_cap_page_size(
    dt: FakeDingTalk, token: str
) -> None:
    first = old(dt, token, CONTACTS, {"cursor": "0", "page_size": 10})
    result = first["result"]
    assert result["has_more"] is True and isinstance(result["values"][0]["data"], str)
    assert json.loads(result["values"][0]["data"])["contact_name"]
    rest = old(dt, token, CONTACTS, {"cursor": result["next_cursor"], "page_size": 10})
    assert rest["result"]["has_more"] is False and len(rest["result"]["values"]) == 2
    assert old(dt, token, CONTACTS, {"page_size": 201})["errcode"] == 40035
    assert old(dt, token, "/topapi/crm/objectdata/nothing", {})["errcode"] == 404


def test_batch_updates_are_capped_partial_and_answer_per_record(
    dt: FakeDingTalk, token: str
) -> None:
    ids = sorted(dt.ids("crm_customer"))
    field = STATUS_FIELDS["crm_customer"]
    row = {"bizDataList": [{"key": field, "value": "已归档"}]}

    def put(relation_ids: list[str]) -> requests.Response:
        body = {"relationType": "crm_customer", "operatorUserId": "manager4711",
                "relationList": [{"relationId": i, **row} for i in relation_ids]}  # fmt: skip
        return new(dt, token, "PUT", "/v1.0/crm/relationDatas/batch", json=body)

    assert put(ids[:11]).status_code == 400  # "最大值10"
    name_before = dt.record("crm_customer", ids[0]).data["customer_name"]
    results = put([ids[0], "no-such-record"]).json()["results"]
    assert results[0] == {"relationId": ids[0], "success": True, "duplicatedRelationIds": []}
    assert results[1]["success"] is False and results[1]["errorCode"] == "data.not.exists"
    assert dt.status_label("crm_customer", ids[0]) == "已归档"
    assert dt.record("crm_customer", ids[0]).data["customer_name"] == name_before
    bad_option = {**row, "bizDataList": [{"key": field, "value": "归档"}]}
    body = {"relationType": "crm_customer", "operatorUserId": "u",
            "relationList": [{"relationId": ids[1], **bad_option}]}  # fmt: skip
    answer = new(dt, token, "PUT", "/v1.0/crm/relationDatas/batch", json=body).json()
    assert answer["results"][0]["errorCode"] == "invalidParameter.selectValue"


def test_qps_answers_have_each_hosts_shape(dt: FakeDingTalk, token: str) -> None:
    dt.throttle_next(1, host="api")
    throttled = new(dt, token, "GET", CUSTOMERS, params={"relationType": "crm_customer",
                                                          "maxResults": 1})  # fmt: skip
    assert throttled.status_code == 403
    assert throttled.json()["code"] == "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
    dt.throttle_next(1, host="oapi")
    assert old(dt, token, CONTACTS, {"page_size": 1})["errcode"] == 90018
    dt.burst(3, host="oapi")
    codes = [old(dt, token, CONTACTS, {"page_size": 1})["errcode"] for _ in range(6)]
    assert codes.count(90018) == 2
    dt.burst(0, host="oapi")


def test_deletes_answer_per_record_on_both_apis(dt: FakeDingTalk, token: str) -> None:
    customer = sorted(dt.ids("crm_customer"))[-1]
    path = f"{CUSTOMERS}/{customer}"
    params = {"currentOperatorUserId": "manager4711", "relationType": "crm_customer"}
    assert new(dt, token, "DELETE", path, params=params).json() == {"instanceId": customer}
    gone = new(dt, token, "DELETE", path, params=params)
    assert gone.status_code == 400 and gone.json()["code"] == "data.not.exists"
    contact = sorted(dt.ids("crm_contact"))[-1]
    body = {"operator_userid": "manager4711", "data_id": contact}
    assert old(dt, token, "/topapi/crm/objectdata/contact/delete", body)["errcode"] == 0
    assert old(dt, token, "/topapi/crm/objectdata/contact/delete", body)["errcode"] == 60121
