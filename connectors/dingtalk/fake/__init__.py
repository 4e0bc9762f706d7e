"""A fake DingTalk CRM (钉钉客户管理) over real HTTP on 127.0.0.1, for tests and benches.

    from crmsync_connectors.dingtalk.fake import FakeDingTalk

    with FakeDingTalk(records={"crm_customer": 250, "crm_contact": 40}) as dt:
        token = requests.post(dt.api_url + "/v1.0/oauth2/accessToken",
                              json={"appKey": dt.app_key, "appSecret": dt.app_secret}).json()
        requests.get(dt.api_url + "/v1.0/crm/personalCustomers",
                     params={"relationType": "crm_customer", "maxResults": 100},
                     headers={"x-acs-dingtalk-access-token": token["accessToken"]})

Two hosts, as DingTalk has (reference: /work/shared/reference/cn-crm-apis.md, section B):

``api_url`` (api.dingtalk.com, the v1.0 API)
    Auth: header ``x-acs-dingtalk-access-token``; missing -> HTTP 400
    ``AuthenticationFailed.MissingParameter``; unknown or expired -> HTTP 400
    ``InvalidAuthentication`` "不合法的access_token" (both as probed against the live API).
    Errors are HTTP 4xx/5xx ``{"code", "message", "requestid"}``. QPS limit -> HTTP 403
    ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`` (``throttle_next``).

    - ``POST /v1.0/oauth2/accessToken`` ``{appKey, appSecret}`` -> ``{accessToken, expireIn}``
      (7200 s of fake time; asking again while valid returns the same token, renewed); wrong
      key/secret -> HTTP 400 ``invalidClientIdOrSecret``.
    - ``GET /v1.0/crm/personalCustomers/objectMeta?relationType=`` -> ``{name, customized,
      fields: [{name, label, type, nillable, selectOptions: [{key, value}]}]}``.
    - ``GET /v1.0/crm/personalCustomers?relationType=crm_customer|crm_customer_personal
      &maxResults=1..100&nextToken=&queryDsl=&currentOperatorUserId=`` -> ``{values: [{instanceId,
      objectType, creatorUserId, data: {...}, permission, gmtCreate, gmtModified ("YYYY-MM-DD
      HH:MM:SS", China time)}], hasMore, nextToken (only when hasMore), maxResults,
      totalCount}``. queryDsl: ``orderFieldId`` gmt_create (default) | gmt_modified, ``order``
      DESC (default) | ASC, and a ``BETWEEN`` condition on gmt_modified / gmt_create with
      [from_ms, to_ms], inclusive; other conditions are accepted and ignored. Bad JSON ->
      400 ``queryDsl.invalid.json``; unknown relationType -> 400 ``relationType.not.exists``;
      maxResults outside 1..100 -> 400 ``invalidParameter.maxResults``.
    - ``PUT /v1.0/crm/relationDatas/batch`` ``{relationType, operatorUserId, relationList:
      [{relationId, bizDataList: [{key, value, extendValue}]}]}`` (<= 10 relations, else 400)
      -> ``{results: [{relationId, success, errorCode, errorMsg, duplicatedRelationIds}]}``.
      Only the keys sent change (partial update); an unknown key (``fieldId.not.exists``), a
      select value that is not an option (``invalidParameter.selectValue``), an unknown
      record (``data.not.exists``) or a ``reject_writes`` id fail per record.
    - ``PUT /v1.0/crm/contacts/batch`` (same body without relationType) and ``PUT
      /v1.0/crm/followRecords/batch`` ``{operatorUserId, instanceList: [{instanceId,
      dataArray}]}``: the same per-record results (``instanceId`` for follow records).
    - ``DELETE /v1.0/crm/personalCustomers/{id}?currentOperatorUserId=&relationType=`` ->
      ``{instanceId}``; unknown -> 400 ``data.not.exists``.
    - ``POST /v1.0/crm/followRecords/batchRemove`` ``{operatorUserId, instanceIds}`` (<= 10)
      -> ``{results: [{instanceId, success, ...}]}``.

``oapi_url`` (oapi.dingtalk.com, the old API)
    Auth: ``?access_token=`` (the same token as the v1.0 API: one token, two transports).
    Every answer is HTTP 200 with ``errcode``/``errmsg``: missing token -> errcode 88,
    sub_code 40000; unknown or expired -> errcode 88, sub_code "40014" (as probed). QPS
    limit -> errcode 90018 (``throttle_next``, or 90002 / 90006 by ``code``).

    - ``GET /gettoken?appkey=&appsecret=`` -> ``{errcode: 0, access_token, expires_in}``;
      wrong -> errcode 40096.
    - ``POST /topapi/crm/objectdata/contact/query`` and ``.../followrecord/query`` ``{cursor,
      page_size (1..200), query_dsl (a JSON string), current_operator_userid}`` ->
      ``{errcode: 0, result: {values: [{instance_id, object_type, data (a JSON *string*),
      gmt_create, gmt_modified, permission: {owner_userid_list, ...}}], has_more,
      next_cursor, page_size}}``.
    - ``POST /topapi/crm/objectmeta/contact/describe`` and ``.../followrecord/describe`` ->
      ``{errcode: 0, result: {name, fields}}``.
    - ``POST /topapi/crm/objectdata/contact/delete`` ``{operator_userid, data_id}`` ->
      ``{errcode: 0, result: {instance_id}}``; unknown -> errcode 60121.
    - anything else -> errcode 404 "请求的URI地址不存在".

Where DingTalk's documentation is silent the fake assumes (as the connector does): the v1.0
token works on the old host; batch updates change only the keys sent; contacts/followRecords
batches and batchRemove take 10 like relationDatas/batch; BETWEEN includes both ends;
``hasMore`` is false on the last page with records (no trailing empty page); ``nextToken`` is an
offset; an unknown record is ``data.not.exists`` (the code of the single-update API's table); a
v1.0 unknown path is 404 ``InvalidAction.NotFound``; times are China time.

Control (Python): ``advance(seconds)``, ``expire_tokens()``, ``mint_token()``,
``fail_next(status, count, host="any"|"api"|"oapi"|"token", body=None, retry_after=None)``,
``throttle_next(count, host, code=None)``, ``malformed_next(count, host)``,
``incomplete_next(count, host)`` (a success without its records list), ``burst(every,
host)``, ``reject_writes(ids, code="1002", message="查重失败")``, ``clear_faults()``,
``touch(obj, count=|ids=)``, ``set_status(obj, id, label)``, ``remove(obj, ids)``.
Inspection: ``ids(obj)``, ``record(obj, id)``, ``status_label(obj, id)``, ``stats()``
(requests, by_route, by_kind, token_requests, read_calls, meta_calls, write_calls,
delete_calls, by_status, writes, max_in_flight, max_batch, records_served, tokens_issued),
``reset_stats()``, ``write_count(id)``. Seed data: ``fake/data.py``.
"""

from crmsync_connectors.dingtalk.fake.data import OBJECTS, STATUS_FIELDS, STATUS_OPTIONS
from crmsync_connectors.dingtalk.fake.server import WRITE_BATCH, FakeDingTalk

__all__ = ["OBJECTS", "STATUS_FIELDS", "STATUS_OPTIONS", "WRITE_BATCH", "FakeDingTalk"]
