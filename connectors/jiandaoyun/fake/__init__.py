"""A fake 简道云 Jiandaoyun (open API v5, form data) over real HTTP on 127.0.0.1.

    from crmsync_connectors.jiandaoyun.fake import FakeClock, FakeJiandaoyun

    clock = FakeClock()
    with FakeJiandaoyun(records=250, clock=clock.now) as jdy:
        requests.post(jdy.url + "/v5/app/entry/data/list",
                      json={"app_id": jdy.app_id, "entry_id": jdy.entry_id, "limit": 100},
                      headers={"Authorization": "Bearer " + jdy.api_key})

``FakeJiandaoyun(records=250, seed_value=7, *, api_key=..., clock=None,
clock_start=2026-01-01T00:00:00Z, enforce_rate_limits=True, verbose=False)``: one app
(``app_id``) with a form (``entry_id``, 客户) of seven widgets — ``customer_name`` (an alias of
``_widget_1600000000001``, 客户名称), 联系电话, 客户等级 (combo A/B/C/流失), 邮箱, 状态
(radiogroup 正常/已归档/已作废, ``_widget_1600000000005``), 金额, 备注 — holding ``records`` seed
records (updateTime in the three years before ``clock_start``), and a second form
(``empty_entry_id``) with the same widgets and no records. ``url`` is the API root
(``http://127.0.0.1:PORT/api``) after ``start()``.

Follows (hc.jiandaoyun.com/open/11261, 10993, 14220-14527; the reference's section C):
every call is ``POST /api/v5/app/entry/<endpoint>`` with a JSON body and ``Authorization:
Bearer <key>``; errors are HTTP 400 ``{"code","msg"}``; per-endpoint limits per second
(widget/list, data/list, data/get 30; data/update, data/delete 20; batch_update,
batch_delete 10; 50 in all) answered 400 code 8303 when exceeded; ``data/list`` in ascending
``_id`` order after the ``data_id`` cursor, ``limit`` 1..100 (default 10; else code 1),
``fields`` (answers those plus ``_id``, ``appId``, ``entryId``), ``filter`` ``{rel, cond:
[{field, type, method, value}]}`` with the documented methods (``range`` inclusive, null open;
``in``/``nin`` <= 200 values; ``val`` or an unknown method is refused with code 1);
``data/batch_update`` (<= 100 ``data_ids``, the same ``{"<name>": {"value": v}}`` for all,
answers ``{"status": "success", "success_count": n}``), ``data/batch_delete`` (<= 100),
``data/get``, ``data/update``, ``data/delete``, ``widget/list`` (``widgets`` with ``name``
(alias or widget id), ``widgetName``, ``label``, ``type``, ``items``; ``sysWidgets``;
``dataModifyTime``). API writes do not check option values (the API skips validation).
Responses carry ``Date`` from the fake clock.

Assumes, where the documentation we could read is silent: codes 8301 (API key refused or
disabled), 3000 (unknown app_id), 3001 (unknown entry_id), 4000 (unknown data_id), 4001
(unknown widget in ``fields``, ``filter`` or ``data``); ``batch_update``/``batch_delete`` skip
ids that are not in the form and count only the records they wrote (a record that already
holds the values counts); ``filter`` accepts ``_id`` with ``in`` and full ISO timestamps on
``updateTime``. API keys never expire (no token-expiry error exists to imitate).

Controls: ``fail_next(status, count=1, *, code, msg, body (bytes: sent raw), retry_after,
endpoint)``, ``rate_limit_next(count, endpoint)``, ``reject_writes(ids)`` (batch writes skip
them), ``disable_key()``, ``touch(count | ids)`` / ``edit(id, **values)`` / ``add_record``
/ ``delete_records(ids)`` (UI users; updateTime = now), ``advance(seconds)``, ``now()``.
Inspection: ``ids()``, ``record(id)``, ``status_text(id)``, ``write_count(id)``, ``stats()``
(requests, by_endpoint, by_status, rate_limited, max_in_flight, max_batch, writes,
records_served, list_calls_by_kind {full, filtered}), ``reset_stats()``.

``clock``: a callable of seconds (default ``time.monotonic``). The fake's time is
``clock_start`` plus the time that clock has run plus ``advance()``; rate-limit windows run on
it too. Give the connector and the fake one :class:`FakeClock` and no test waits.
"""

from crmsync_connectors.jiandaoyun.fake.data import STATUS_OPTIONS, STATUS_WIDGET
from crmsync_connectors.jiandaoyun.fake.server import FakeClock, FakeJiandaoyun

__all__ = ["STATUS_OPTIONS", "STATUS_WIDGET", "FakeClock", "FakeJiandaoyun"]
