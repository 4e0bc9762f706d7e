"""A fake 纷享销客 Fxiaoke OpenAPI over real HTTP on 127.0.0.1, for tests and benches.

    from crmsync_connectors.fxiaoke.fake import FakeFxiaoke

    with FakeFxiaoke(records={"AccountObj": 450, "Visit__c": 30}) as fx:
        token = requests.post(fx.url + "/cgi/corpAccessToken/get/V2", json={
            "appId": fx.app_id, "appSecret": fx.app_secret,
            "permanentCode": fx.permanent_code}).json()

What it follows (/work/shared/reference/cn-crm-apis.md section A, and the vendor's pages on
developer.fxiaoke.com: deep paging FAQ, recover, delete, invalid):

- Every call is ``POST`` JSON; every answer is **HTTP 200** with ``errorCode`` (0 = success),
  ``errorMessage``, ``errorDescription``, ``traceId``. Only injected gateway faults
  (``fail_next``) and unknown paths (404, HTML) are other statuses. ``?thirdTraceId=`` ignored.
- ``POST /cgi/corpAccessToken/get/V2`` ``{appId, appSecret, permanentCode}`` ->
  ``{corpAccessToken, corpId, expiresIn}`` (``token_ttl``, 7200); wrong values -> 10006.
  Tokens expire by the fake clock; an expired or unknown token -> **20016**, none -> 20017.
  Every object call needs ``corpAccessToken``, ``corpId`` and ``currentOpenUserId`` at the top.
- ``POST /cgi/user/getByMobile`` ``{corpAccessToken, corpId, mobile}`` ->
  ``{empList:[{openUserId}]}``.
- Preset objects (``AccountObj``, ``LeadsObj``, ``ContactObj``) on ``/cgi/crm/v2/data/*``, the
  custom object ``Visit__c`` on ``/cgi/crm/custom/v2/data/*``; the wrong family -> an error.
- ``query``: ``search_query_info`` ``limit`` 1..100, ``offset`` a multiple of ``limit``,
  ``offset`` > 10,000 -> **10013** "offset out of range 10000"; filters (``EQ N GT GTE LT LTE
  IN NIN IS ISN``, ``field_values`` a list, times in epoch ms), ``orders``, ``fieldProjection``;
  ``_id GT x`` ordered by ``_id`` is the documented deep-paging form. Answer ``data:{dataList,
  offset, limit, total}``; ``total`` counted only with ``find_explicit_total_num`` (and
  ``report_total=True``), else 0. Invalid records are returned only when a filter on
  ``life_status`` is given (Assumption: the stricter reading of an undocumented default).
- ``update`` ``object_data:{_id, dataObjectApiName, ...}``: one record; ``owner`` and system
  fields refused; sets ``last_modified_time``. ``invalid``: ``object_data_id`` **one id, a
  string**. ``/cgi/crm/custom/data/invalid`` (custom only): ``idList``. ``recover`` and
  ``delete``: ``idList``; **delete only records that are invalid** (documented). Assumptions:
  ``idList`` ≤ 100; a batch is all-or-nothing (one failing id fails the call, nothing changes);
  an invalid record cannot be updated.
- Rate limit: ``rate_calls`` per ``rate_period`` s (100 / 20 s) **per interface path**, over a
  sliding window of fake time (stricter than a fixed window) -> **30004**.
- The codes of errors the docs do not number are the fake's own (``fake/codes.py``).

Python API: ``FakeFxiaoke(records={"AccountObj": 250}, seed=42, *, app_id, app_secret,
permanent_code, token_ttl=7200, rate_calls=100 (None: off), rate_period=20.0,
report_total=True, clock_start=2026-01-01Z)``; ``start()``/``stop()``/``with``; ``url``;
``clock`` (``now()``, ``ms()``, ``advance(s)``, ``monotonic()``: give the connector
``clock=fake.clock.monotonic, sleep=fake.clock.advance`` so waits pass in fake time);
``ids(obj)``, ``record(obj, id)``, ``count(obj)``, ``touch(obj, count|ids)``,
``set_life_status(obj, ids, value)``, ``expire_tokens()``, ``fail_next(status, count,
retry_after, path)``, ``fail_next_code(code, count, path)``, ``malformed_next(count, body,
path)``, ``reject_writes(ids)`` (errors for writes touching them), ``stats()``
(requests, by_path, by_code, writes, write_calls, query_calls, token_requests, rate_limited,
max_batch, max_in_flight, triggers, keyed_queries, max_offset), ``reset_stats()``,
``write_count(obj, id)``.
"""

from crmsync_connectors.fxiaoke.fake.server import FakeClock, FakeFxiaoke

__all__ = ["FakeClock", "FakeFxiaoke"]
