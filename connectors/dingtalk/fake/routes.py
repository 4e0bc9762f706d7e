"""The fake DingTalk's routes: the v1.0 API (host ``api``) and the old topapi (host ``oapi``),
each with its own auth transport, paging and error shapes (package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from crmsync_connectors.dingtalk.fake import data as dd
from crmsync_connectors.dingtalk.fake.server import (
    NEW_PAGE_MAX,
    OLD_PAGE_MAX,
    QPS_NEW,
    WRITE_BATCH,
    FakeDingTalk,
    new_error,
    old_error,
)

CUSTOMERS = "/v1.0/crm/personalCustomers"
OLD_QUERY = {
    "/topapi/crm/objectdata/contact/query": "crm_contact",
    "/topapi/crm/objectdata/followrecord/query": "crm_follow_record",
}
OLD_DESCRIBE = {
    "/topapi/crm/objectmeta/contact/describe": "crm_contact",
    "/topapi/crm/objectmeta/followrecord/describe": "crm_follow_record",
}


def classify(role: str, method: str, path: str) -> tuple[str, str]:
    """(route key for stats, kind: token | read | meta | write | delete | invalid)."""
    if role == "api":
        if path == "/v1.0/oauth2/accessToken":
            return f"{method} {path}", "token"
        if path == f"{CUSTOMERS}/objectMeta":
            return f"{method} {path}", "meta"
        if path == CUSTOMERS:
            return f"{method} {path}", "read"
        if path in ("/v1.0/crm/relationDatas/batch", "/v1.0/crm/contacts/batch",
                    "/v1.0/crm/followRecords/batch"):  # fmt: skip
            return f"{method} {path}", "write"
        if path.startswith(CUSTOMERS + "/") or path == "/v1.0/crm/followRecords/batchRemove":
            key = path if path.endswith("batchRemove") else CUSTOMERS + "/{dataId}"
            return f"{method} {key}", "delete"
        return f"{method} (invalid)", "invalid"
    if path == "/gettoken":
        return f"{method} {path}", "token"
    if path in OLD_QUERY:
        return f"{method} {path}", "read"
    if path in OLD_DESCRIBE:
        return f"{method} {path}", "meta"
    if path == "/topapi/crm/objectdata/contact/delete":
        return f"{method} {path}", "delete"
    return f"{method} (invalid)", "invalid"


def injected(role: str, kind: str, spec: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
    """The answer of an injected fault, in the host's own shape."""
    headers: dict[str, str] = {}
    if kind == "malformed":
        return 200, b'{"values": [{"instanceId": "cut', headers
    if kind == "incomplete":
        if role == "api":
            return 200, {"hasMore": False, "maxResults": 100}, headers
        return 200, {"errcode": 0, "errmsg": "ok", "result": {"has_more": False}}, headers
    if kind == "throttle":
        if role == "api":
            code = spec.get("code") or QPS_NEW
            return 403, {"code": code, "message": "当前API调用超过QPS限制",
                         "requestid": "fake"}, headers  # fmt: skip
        code = spec.get("code") or 90018
        return 200, {"errcode": int(code), "errmsg": "您的服务器调用钉钉开放平台当前接口的"
                     "所有请求都被暂时禁用了"}, headers  # fmt: skip
    status = int(spec["status"])
    if spec.get("retry_after") is not None:
        headers["Retry-After"] = str(spec["retry_after"])
    body = spec.get("body")
    if body is None:
        body = (
            {"code": "ServiceUnavailable", "message": "injected fault", "requestid": "fake"}
            if role == "api"
            else {"errcode": -1, "errmsg": "系统繁忙"}
        )
    return status, body, headers


def handle(
    fake: FakeDingTalk,
    role: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Any,
    body: bytes,
) -> tuple[int, Any]:
    if role == "api":
        return _new_api(fake, method, path, query, headers, body)
    return _old_api(fake, method, path, query, body)


def _json(body: bytes, role: str) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except ValueError:
        if role == "api":
            raise new_error(400, "InvalidParameter.Body", "body is not JSON") from None
        raise old_error(40035, "不合法的参数: body is not JSON") from None
    if not isinstance(value, dict):
        raise new_error(400, "InvalidParameter.Body", "body must be a JSON object")
    return value


# --------------------------------------------------------------------------- v1.0 API


def _new_api(
    fake: FakeDingTalk,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Any,
    body: bytes,
) -> tuple[int, Any]:
    if path == "/v1.0/oauth2/accessToken" and method == "POST":
        args = _json(body, "api")
        if not args.get("appKey") or not args.get("appSecret"):
            raise new_error(400, "MissingParameter", "缺少参数 appKey 或 appSecret")
        if args["appKey"] != fake.app_key or args["appSecret"] != fake.app_secret:
            raise new_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        return 200, {"accessToken": fake.mint_token(), "expireIn": fake.token_ttl}
    token = headers.get("x-acs-dingtalk-access-token")
    if not token:
        raise new_error(
            400,
            "AuthenticationFailed.MissingParameter",
            "缺少参数：x-acs-dingtalk-access-token",  # noqa: RUF001 (the vendor's text)
        )
    if not fake.token_valid(token):
        raise new_error(400, "InvalidAuthentication", "不合法的access_token")
    if path == f"{CUSTOMERS}/objectMeta" and method == "GET":
        obj = _relation_type(query.get("relationType"))
        return 200, {"name": obj, "customized": False, "fields": dd.FIELDS[obj]}
    if path == CUSTOMERS and method == "GET":
        return 200, _list_customers(fake, query)
    if method == "PUT" and path == "/v1.0/crm/relationDatas/batch":
        args = _json(body, "api")
        obj = _relation_type(args.get("relationType"))
        return 200, _batch_update(fake, obj, args, "relationList", "relationId", "bizDataList")
    if method == "PUT" and path == "/v1.0/crm/contacts/batch":
        args = _json(body, "api")
        return 200, _batch_update(
            fake, "crm_contact", args, "relationList", "relationId", "bizDataList"
        )
    if method == "PUT" and path == "/v1.0/crm/followRecords/batch":
        args = _json(body, "api")
        return 200, _batch_update(
            fake, "crm_follow_record", args, "instanceList", "instanceId", "dataArray"
        )
    if method == "POST" and path == "/v1.0/crm/followRecords/batchRemove":
        args = _json(body, "api")
        _operator(args.get("operatorUserId"))
        ids = args.get("instanceIds")
        if not isinstance(ids, list) or not ids or len(ids) > WRITE_BATCH:
            raise new_error(400, "invalidParameter.instanceIds", f"1..{WRITE_BATCH} instanceIds")
        fake.batch_seen(len(ids))
        results = []
        for rid in ids:
            ok = fake.delete_one("crm_follow_record", str(rid))
            results.append(
                {"instanceId": rid, "success": True}
                if ok
                else {"instanceId": rid, "success": False, "errorCode": "data.not.exists",
                      "errorMsg": "data not exists"}
            )  # fmt: skip
        return 200, {"results": results}
    if method == "DELETE" and path.startswith(CUSTOMERS + "/"):
        _operator(query.get("currentOperatorUserId"))
        rid = path.rsplit("/", 1)[1]
        obj = _relation_type(query.get("relationType") or "crm_customer")
        fake.batch_seen(1)
        if not fake.delete_one(obj, rid):
            raise new_error(400, "data.not.exists", "data not exists")
        return 200, {"instanceId": rid}
    raise new_error(404, "InvalidAction.NotFound", f"Specified api is not found: {path}")


def _relation_type(value: Any) -> str:
    if value not in dd.NEW_API_OBJECTS:
        raise new_error(400, "relationType.not.exists", "relationType not exists")
    return str(value)


def _operator(value: Any) -> None:
    if not value:
        raise new_error(400, "invalidParameter.operatorUserId", "operatorUserId is required")


def _dsl(raw: str | None, role: str) -> dict[str, Any] | None:
    if raw in (None, "", "null"):
        return None
    try:
        value = orjson.loads(raw or "")
        if not isinstance(value, dict):
            raise ValueError
        return value
    except ValueError:
        if role == "api":
            raise new_error(400, "queryDsl.invalid.json", "queryDsl is not json format") from None
        raise old_error(40035, "不合法的参数: query_dsl is not json format") from None


def _page_args(size: Any, cursor: Any, limit: int, role: str) -> tuple[int, int]:
    try:
        n = int(size)
        offset = int(cursor or 0)
    except (TypeError, ValueError):
        n, offset = -1, -1
    if not 1 <= n <= limit or offset < 0:
        if role == "api":
            raise new_error(400, "invalidParameter.maxResults", f"maxResults must be 1..{limit}")
        raise old_error(40035, f"不合法的参数: page_size must be 1..{limit}")
    return n, offset


def _list_customers(fake: FakeDingTalk, query: Mapping[str, str]) -> dict[str, Any]:
    obj = _relation_type(query.get("relationType"))
    size, offset = _page_args(query.get("maxResults"), query.get("nextToken"), NEW_PAGE_MAX, "api")
    dsl = _dsl(query.get("queryDsl"), "api")
    try:
        recs, more, total = fake.query(obj, dsl, offset, size)
    except (ValueError, KeyError, TypeError):
        raise new_error(400, "queryDsl.invalid.json", "queryDsl is not valid") from None
    answer: dict[str, Any] = {
        "values": [_new_shape(r) for r in recs],
        "hasMore": more,
        "maxResults": size,
        "totalCount": total,
    }
    if more:
        answer["nextToken"] = str(offset + size)
    return answer


def _new_shape(rec: dd.Rec) -> dict[str, Any]:
    return {
        "instanceId": rec.id,
        "objectType": rec.obj,
        "creatorUserId": rec.creator,
        "creatorNick": rec.creator,
        "data": rec.data,
        "extendData": {},
        "permission": {"ownerStaffIds": rec.owners, "participantStaffIds": []},
        "procOutResult": "agree",
        "procInstStatus": "COMPLETED",
        "gmtCreate": dd.fmt_time(rec.created),
        "gmtModified": dd.fmt_time(rec.modified),
    }


def _batch_update(
    fake: FakeDingTalk, obj: str, args: dict[str, Any], list_key: str, id_key: str, items_key: str
) -> dict[str, Any]:
    _operator(args.get("operatorUserId"))
    rows = args.get(list_key)
    if not isinstance(rows, list) or not rows:
        raise new_error(400, f"invalidParameter.{list_key}", f"{list_key} is required")
    if len(rows) > WRITE_BATCH:
        raise new_error(
            400, f"invalidParameter.{list_key}", f"{list_key} size exceeds {WRITE_BATCH}"
        )
    fake.batch_seen(len(rows))
    results = []
    for row in rows:
        rid = str(row.get(id_key)) if isinstance(row, dict) else ""
        outcome = fake.write(obj, rid, row.get(items_key) if isinstance(row, dict) else None)
        result = {id_key: rid, **outcome}
        if id_key == "relationId":
            result["duplicatedRelationIds"] = []
        results.append(result)
    return {"results": results}


# --------------------------------------------------------------------------- old topapi


def _old_api(
    fake: FakeDingTalk, method: str, path: str, query: Mapping[str, str], body: bytes
) -> tuple[int, Any]:
    if path == "/gettoken" and method == "GET":
        if not query.get("appkey"):
            raise old_error(40035, "缺少参数 corpid or appkey")
        if query.get("appkey") != fake.app_key or query.get("appsecret") != fake.app_secret:
            raise old_error(40096, "不合法的appKey或appSecret")
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": fake.mint_token(),
                     "expires_in": fake.token_ttl}  # fmt: skip
    token = query.get("access_token")
    if not token:
        raise old_error(
            88, "ding talk error[subcode=40000,submsg=access_token is blank]",
            sub_code="40000", sub_msg="access_token is blank",
        )  # fmt: skip
    if not fake.token_valid(token):
        raise old_error(
            88, "ding talk error[subcode=40014,submsg=不合法的access_token]",
            sub_code="40014", sub_msg="不合法的access_token",
        )  # fmt: skip
    if method != "POST":
        raise old_error(404, "请求的URI地址不存在")
    if path in OLD_QUERY:
        args = _json(body, "oapi")
        obj = OLD_QUERY[path]
        size, offset = _page_args(args.get("page_size"), args.get("cursor"), OLD_PAGE_MAX, "oapi")
        dsl = _dsl(args.get("query_dsl"), "oapi")
        try:
            recs, more, _total = fake.query(obj, dsl, offset, size)
        except (ValueError, KeyError, TypeError):
            raise old_error(40035, "不合法的参数: query_dsl") from None
        result = {
            "values": [_old_shape(r) for r in recs],
            "has_more": more,
            "next_cursor": str(offset + size),
            "page_size": size,
        }
        return 200, {"errcode": 0, "errmsg": "ok", "result": result}
    if path in OLD_DESCRIBE:
        obj = OLD_DESCRIBE[path]
        # the old API names the options select_options (the v1.0 API: selectOptions)
        fields = [
            {("select_options" if k == "selectOptions" else k): v for k, v in f.items()}
            for f in dd.FIELDS[obj]
        ]
        result = {"name": obj, "customized": False, "fields": fields}
        return 200, {"errcode": 0, "errmsg": "ok", "result": result}
    if path == "/topapi/crm/objectdata/contact/delete":
        args = _json(body, "oapi")
        if not args.get("operator_userid") or not args.get("data_id"):
            raise old_error(40035, "缺少参数 operator_userid or data_id")
        rid = str(args["data_id"])
        fake.batch_seen(1)
        if not fake.delete_one("crm_contact", rid):
            # 60121: DingTalk's generic "not found" errcode
            raise old_error(60121, "找不到该数据")
        return 200, {"errcode": 0, "errmsg": "ok", "result": {"instance_id": rid}}
    raise old_error(404, "请求的URI地址不存在")


def _old_shape(rec: dd.Rec) -> dict[str, Any]:
    return {
        "instance_id": rec.id,
        "object_type": rec.obj,
        "creator_userid": rec.creator,
        "creator_nick": rec.creator,
        "data": orjson.dumps(rec.data).decode(),  # the old API sends data as a JSON string
        "extend_data": "{}",
        "permission": {"owner_userid_list": rec.owners, "participant_userid_list": []},
        "gmt_create": dd.fmt_time(rec.created),
        "gmt_modified": dd.fmt_time(rec.modified),
    }
