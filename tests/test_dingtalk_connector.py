"""DingTalk connector behaviour against the fake DingTalk server: paging at the limits, call
counts, token expiry, QPS backoff on both APIs, error bodies, settings validation, write-back
and delete results per record."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.errors import AuthError, BadResponseError, ConfigError, ConnectorError
from crmsync.hookspecs import StatusChange
from crmsync_connectors.dingtalk.connector import DingTalkConnector, DingTalkSession
from crmsync_connectors.dingtalk.fake import STATUS_FIELDS, FakeDingTalk
from crmsync_connectors.dingtalk.settings import SETTINGS_SCHEMA, parse_settings
from tests.http_fakes import FakeSleep
from tests.test_dingtalk_contract import VALUES, dingtalk_settings, secret


@pytest.fixture
def dt() -> Iterator[FakeDingTalk]:
    sizes = {"crm_customer": 250, "crm_customer_personal": 0, "crm_contact": 200,
             "crm_follow_record": 23}  # fmt: skip
    with FakeDingTalk(records=sizes, seed=11) as server:
        yield server


class Time:
    """The session's clock and sleep: sleeping moves the clock (the rate limiter's short waits
    stay short); ``backoffs`` are the waits of a second or more."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def backoffs(self) -> list[float]:
        return [w for w in self.waits if w >= 0.5]


def open_session(dt: FakeDingTalk, *, time: Time | None = None, **extra: Any) -> DingTalkSession:
    time = time or Time()
    connector = DingTalkConnector(sleep=time.sleep, clock=time.clock)
    return connector.open("dt", dingtalk_settings(dt, **extra))


def drain(session: DingTalkSession, module: str, since: str | None = None) -> list[Any]:
    return list(session.pull(module, since=since))


# ---------------------------------------------------------------------- settings


def _config(dt_table: str) -> str:
    return f'[connections.dt]\nconnector = "dingtalk"\n{dt_table}\n'


def test_config_without_status_is_refused_before_any_call_when_lifecycle_is_wanted() -> None:
    from crmsync.config import parse_config
    from crmsync.plugins import get_registry

    base = 'app_key = "k"\napp_secret = "env:DT_SECRET"\noperator_user_id = "u"\n'
    with pytest.raises(ConfigError) as err:
        parse_config(_config(base), get_registry())
    assert err.value.path == "connections.dt.status"
    assert err.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"connections\.dt\.status"):
        parse_config(_config(base + 'write_actions = ["void", "purge"]'), get_registry())
    # a read-and-purge connection needs no status field
    config = parse_config(_config(base + 'write_actions = ["purge"]'), get_registry())
    assert config.connections["dt"].settings["write_actions"] == ["purge"]


def test_a_wanted_action_without_its_option_value_names_the_key() -> None:
    settings = {
        "app_key": "k",
        "app_secret": "s",
        "operator_user_id": "u",
        "status": {"field": "DDSelectField-X", "values": {"active": "正常", "archived": "归档"}},
    }
    with pytest.raises(ConfigError) as err:
        parse_settings(settings, "sales")
    assert err.value.path == "connections.sales.status.values.voided"
    only_archive = {**settings, "write_actions": ["archive", "restore"]}
    assert parse_settings(only_archive, "sales").status is not None


def test_module_errors_name_the_allowed_modules_or_the_unknown_key() -> None:
    from crmsync.config import parse_config
    from crmsync.plugins import get_registry

    base = 'app_key = "k"\napp_secret = "env:DT_SECRET"\noperator_user_id = "u"\n'
    base += "write_actions = []\n"
    with pytest.raises(ConfigError, match=r"modules\[0\]: expected one of 'crm_customer'"):
        parse_config(_config(base + 'modules = ["crm_leads"]'), get_registry())
    with pytest.raises(ConfigError, match=r"modules\[1\]\.status: unknown key"):
        bad = 'modules = ["crm_customer", { name = "crm_contact", status = "x" }]'
        parse_config(_config(base + bad), get_registry())


def test_schema_marks_the_secret_and_refuses_unknown_modules_and_keys() -> None:
    from jsonschema import Draft202012Validator

    assert SETTINGS_SCHEMA["properties"]["app_secret"]["secret"]
    validator = Draft202012Validator(SETTINGS_SCHEMA)
    base = {"app_key": "k", "app_secret": "env:S", "operator_user_id": "u", "write_actions": []}
    assert not list(validator.iter_errors(base))
    assert list(validator.iter_errors({**base, "modules": ["crm_leads"]}))
    assert list(validator.iter_errors({**base, "page_size": 101}))
    assert list(validator.iter_errors({**base, "appsecret": "x"}))


def test_status_field_or_option_missing_in_the_crm_is_a_config_error(dt: FakeDingTalk) -> None:
    wrong_field = {"field": "DDSelectField-NOPE", "values": VALUES}
    with pytest.raises(ConfigError) as err:
        open_session(dt, modules=["crm_customer"], status=wrong_field).check()
    assert err.value.path == "connections.dt.status.field"
    assert STATUS_FIELDS["crm_customer"] in str(err.value)  # lists the select fields it has
    wrong_option = {
        "field": STATUS_FIELDS["crm_customer"],
        "values": {**VALUES, "archived": "归档"},
    }
    with pytest.raises(ConfigError) as err:
        open_session(dt, modules=["crm_customer"], status=wrong_option).list_modules()
    assert err.value.path == "connections.dt.status.values.archived"
    assert "已归档" in str(err.value)


# ---------------------------------------------------------------------- paging and call counts


@pytest.mark.parametrize(
    ("module", "records", "page_size"),
    [
        ("crm_customer", 250, 100),  # a short last page
        ("crm_customer", 200, 100),  # an exact multiple: no empty page after it
        ("crm_customer", 17, 1),  # the smallest page
        ("crm_contact", 200, 100),
        ("crm_contact", 200, 7),
        ("crm_follow_record", 23, 10),
        ("crm_customer_personal", 0, 100),  # empty: one call, still a final checkpoint
    ],
)
def test_a_full_pull_costs_ceil_n_over_page_size_calls(
    dt: FakeDingTalk, module: str, records: int, page_size: int
) -> None:
    if records != len(dt.ids(module)):
        dt.remove(module, sorted(dt.ids(module))[records:])
    session = open_session(dt, page_size=page_size)
    dt.reset_stats()
    pages = drain(session, module)
    ids = [r.id for p in pages for r in p.records]
    assert sorted(ids) == sorted(dt.ids(module)) and len(ids) == records
    calls = max(1, math.ceil(records / page_size))
    assert dt.stats()["read_calls"] == calls == sum(p.api_calls for p in pages)
    assert session.stats()["read_calls"] == calls
    assert all(len(p.records) <= page_size for p in pages)
    assert pages[-1].checkpoint
    times = [r.modified_at for p in pages for r in p.records]
    assert times == sorted(times)  # ascending modified time: every page's checkpoint is safe


def test_modified_times_are_china_time_converted_to_utc(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    record = next(iter(session.pull("crm_customer"))).records[0]
    raw = dt.record("crm_customer", record.id)
    from crmsync_connectors.dingtalk.fake.data import fmt_time

    assert record.data["gmtModified"] == fmt_time(raw.modified)  # as DingTalk wrote it
    from datetime import UTC, datetime

    assert record.modified_at == datetime.fromtimestamp(raw.modified, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_old_api_data_strings_are_parsed_into_fields(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    record = next(iter(session.pull("crm_contact"))).records[0]
    assert record.data["contact_name"].startswith("联系人")
    assert record.data["instanceId"] == record.id
    assert record.data["ownerStaffIds"]


def test_incremental_pull_is_inclusive_from_the_checkpoint(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    checkpoint = drain(session, "crm_customer")[-1].checkpoint
    dt.advance(120)
    changed = dt.touch("crm_customer", count=5)
    dt.reset_stats()
    pages = drain(session, "crm_customer", since=checkpoint)
    got = {r.id for p in pages for r in p.records}
    assert set(changed) <= got and len(got) <= 5 + 1  # + records at the boundary second
    assert dt.stats()["read_calls"] == 1
    assert pages[-1].checkpoint > checkpoint


# ---------------------------------------------------------------------- tokens and auth


def test_an_expired_token_is_refreshed_once_on_both_apis(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    drain(session, "crm_customer")
    dt.expire_tokens()
    assert len(drain(session, "crm_customer")) == 3  # v1.0: HTTP 400 InvalidAuthentication
    dt.expire_tokens()
    assert len(drain(session, "crm_contact")) == 2  # old API: errcode 88, sub_code 40014
    assert session.stats()["token_requests"] == 3
    assert dt.stats()["token_requests"] == 3


def test_the_token_is_renewed_before_its_7200_seconds_run_out(dt: FakeDingTalk) -> None:
    time = Time()
    session = open_session(dt, time=time)
    drain(session, "crm_customer")
    time.now += 7200 - 59  # within the refresh margin of the connector's clock
    dt.advance(7200)  # and the fake's token has expired
    dt.reset_stats()
    drain(session, "crm_contact")
    stats = dt.stats()
    assert stats["token_requests"] == 1 and stats["by_status"] == {"200": 3}  # nothing refused


@pytest.mark.parametrize(
    "body",
    [
        {"errcode": 42001, "errmsg": "access_token超时"},
        {"errcode": 88, "sub_code": "42001", "sub_msg": "access_token超时", "errmsg": "x"},
        {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token", "errmsg": "x"},
    ],
)
def test_old_api_token_invalid_codes_refresh_the_token_once(
    dt: FakeDingTalk, body: dict[str, Any]
) -> None:
    session = open_session(dt)
    session.check()
    dt.fail_next(200, 1, host="oapi", body=body)
    assert sum(len(p.records) for p in drain(session, "crm_contact")) == 200
    assert session.stats()["token_requests"] == 2


def test_a_token_refused_twice_is_an_auth_error_on_either_api(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    session.check()
    bad = {"code": "InvalidAuthentication", "message": "不合法的access_token"}
    dt.fail_next(400, 2, host="api", body=bad)
    with pytest.raises(AuthError, match=r"InvalidAuthentication\) after refreshing") as err:
        drain(session, "crm_customer")
    assert "'dt'" in str(err.value) and "crm_customer" in str(err.value)
    old = {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token", "errmsg": "x"}
    dt.fail_next(200, 2, host="oapi", body=old)
    with pytest.raises(AuthError, match="after refreshing the token") as err:
        drain(session, "crm_contact")
    assert "crm_contact" in str(err.value) and "access_token" not in str(err.value)
    assert session.stats()["token_requests"] == 3  # one to start, one refresh per refusal


def test_the_old_apis_query_token_is_masked_in_debug_logs(
    dt: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    session = open_session(dt)
    drain(session, "crm_contact")
    token = dt.mint_token()  # the fake renews and returns the token the session used
    assert "access_token=***" in caplog.text
    assert token not in caplog.text and dt.app_secret not in caplog.text


def test_wrong_credentials_name_the_connection_and_the_secret_reference(dt: FakeDingTalk) -> None:
    session = DingTalkConnector(sleep=FakeSleep()).open(
        "dt", {**dingtalk_settings(dt), "app_secret": secret("not-the-secret-123")}
    )
    with pytest.raises(AuthError) as err:
        session.check()
    text = str(err.value)
    assert "connection 'dt'" in text and "invalidClientIdOrSecret" in text
    assert "env:DINGTALK_APP_SECRET" in text and dt.app_key in text
    assert "not-the-secret-123" not in text and dt.app_secret not in text


# ---------------------------------------------------------------------- rate limits


def test_v1_qps_403_is_backed_off_one_second_and_succeeds(dt: FakeDingTalk) -> None:
    time = Time()
    session = open_session(dt, time=time)
    dt.throttle_next(2, host="api")
    pages = drain(session, "crm_customer")
    assert sum(len(p.records) for p in pages) == 250
    assert time.backoffs() == [1.0, 1.0]
    assert session.stats()["throttled"] == 2
    assert sum(p.api_calls for p in pages) == 3 + 2  # the throttled calls are counted


@pytest.mark.parametrize(("code", "wait"), [(90018, 1.0), (90002, 1.0), (90006, 30.0)])
def test_old_api_qps_errcodes_in_http_200_are_backed_off(
    dt: FakeDingTalk, code: int, wait: float
) -> None:
    time = Time()
    session = open_session(dt, time=time, max_retry_wait=30)
    dt.throttle_next(1, host="oapi", code=code)
    assert sum(len(p.records) for p in drain(session, "crm_contact")) == 200
    assert time.backoffs() == [wait]  # 90006 is a per-minute window, capped by max_retry_wait


def test_the_per_ip_ban_answer_waits_as_long_as_allowed_and_goes_on(dt: FakeDingTalk) -> None:
    time = Time()
    session = open_session(dt, time=time, max_retry_wait=120)
    ban = {"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": "u"}
    dt.fail_next(200, 1, host="oapi", body=ban)
    assert sum(len(p.records) for p in drain(session, "crm_contact")) == 200
    assert time.backoffs() == [120.0]  # 5 minutes asked, capped by max_retry_wait


def test_the_crm_apis_own_busy_answers_are_backed_off_too(dt: FakeDingTalk) -> None:
    time = Time()
    session = open_session(dt, time=time)
    for code in ("request.too.frequent", "system.busy"):
        dt.fail_next(400, 1, host="api", body={"code": code, "message": "请求过于频繁"})
    assert sum(len(p.records) for p in drain(session, "crm_customer")) == 250
    assert time.backoffs() == [1.0, 1.0]


def test_qps_limits_that_do_not_clear_end_in_a_clear_error(dt: FakeDingTalk) -> None:
    session = open_session(dt, max_retries=2)
    dt.throttle_next(5, host="api")
    with pytest.raises(ConnectorError, match=r"rate limited .*QpsLimitForAppkeyAndApi") as err:
        drain(session, "crm_customer")
    assert "'dt'" in str(err.value) and "crm_customer" in str(err.value)


def test_throttled_writes_are_sent_again_as_they_were_not_carried_out(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    ids = sorted(dt.ids("crm_customer"))[:3]
    session.list_modules()
    dt.throttle_next(1, host="api")
    results = session.push("crm_customer", [StatusChange(i, "archive") for i in ids])
    assert all(r.ok for r in results)
    assert all(dt.write_count(i) == 1 for i in ids)


# ---------------------------------------------------------------------- bad answers


def test_an_old_api_error_in_an_http_200_names_connection_module_page_and_errcode(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt, page_size=50)
    pages = session.pull("crm_contact")
    next(pages)
    dt.fail_next(200, 1, host="oapi", body={"errcode": 40035, "errmsg": "不合法的参数"})
    with pytest.raises(ConnectorError) as err:
        next(pages)
    text = str(err.value)
    assert "connection 'dt'" in text and "module 'crm_contact'" in text and "page 2" in text
    assert "errcode 40035" in text and "不合法的参数" in text


def test_malformed_json_on_a_later_page_names_the_page(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    pages = session.pull("crm_customer")
    next(pages)
    dt.malformed_next(1, host="api")
    with pytest.raises(BadResponseError, match=r"page 2.*malformed JSON"):
        next(pages)


@pytest.mark.parametrize(
    "body",
    [
        {"hasMore": False},  # no values
        {"values": [{"data": {}}], "hasMore": False},  # a record without instanceId
        {"values": [{"instanceId": "x", "gmtModified": "yesterday"}], "hasMore": False},
        {"values": [{"instanceId": "x"}], "hasMore": True},  # more, but no nextToken
    ],
)
def test_answers_missing_what_the_pull_needs_are_bad_responses(
    dt: FakeDingTalk, body: dict[str, Any]
) -> None:
    session = open_session(dt)
    dt.fail_next(200, 1, host="api", body=body)
    with pytest.raises(BadResponseError) as err:
        drain(session, "crm_customer")
    assert "module 'crm_customer'" in str(err.value) and "page 1" in str(err.value)


def test_a_v1_error_body_is_reported_with_its_code(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    body = {"code": "systemError.notPermittedAccess", "message": "no", "requestid": "r"}
    dt.fail_next(400, 1, host="api", body=body)
    with pytest.raises(ConnectorError, match=r"HTTP 400 systemError\.notPermittedAccess"):
        drain(session, "crm_customer")


def test_the_monthly_quota_is_reported_as_such_on_both_apis(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    quota = {"code": "Forbidden.AccessDenied.ApiCountLimitForOrg", "message": "超过调用量"}
    dt.fail_next(403, 1, host="api", body=quota)
    with pytest.raises(ConnectorError, match="monthly API quota") as err:
        drain(session, "crm_customer")
    assert not isinstance(err.value, AuthError)
    dt.fail_next(200, 1, host="oapi", body={"errcode": 90020, "errmsg": "超过调用量"})
    with pytest.raises(ConnectorError, match=r"errcode 90020.*monthly API quota"):
        drain(session, "crm_contact")
    daily = {"code": "daily.call.limit", "message": "daily call limit"}
    dt.fail_next(400, 1, host="api", body=daily)
    with pytest.raises(ConnectorError, match="daily call quota is used up"):
        drain(session, "crm_customer")


def test_unknown_module_is_refused_clearly(dt: FakeDingTalk) -> None:
    session = open_session(dt, modules=["crm_customer"])
    with pytest.raises(ConnectorError, match=r"module 'crm_contact' is not configured"):
        drain(session, "crm_contact")


# ---------------------------------------------------------------------- write-back


def test_void_archive_restore_write_the_status_select_and_read_back(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    ids = sorted(dt.ids("crm_customer"))[:6]
    session.push("crm_customer", [StatusChange(i, "void") for i in ids[:3]])
    session.push("crm_customer", [StatusChange(i, "archive") for i in ids[3:]])
    assert [dt.status_label("crm_customer", i) for i in ids] == ["作废"] * 3 + ["已归档"] * 3
    stored = dt.record("crm_customer", ids[0]).data[STATUS_FIELDS["crm_customer"]]
    assert '"key": "option_2"' in stored["extendValue"]  # the option key from the metadata
    pulled = {r.id: r.status for p in drain(session, "crm_customer") for r in p.records}
    assert [pulled[i] for i in ids] == ["voided"] * 3 + ["archived"] * 3
    results = session.push("crm_customer", [StatusChange(i, "restore") for i in ids])
    assert all(r.ok for r in results)
    assert {dt.status_label("crm_customer", i) for i in ids} == {"正常"}
    # other fields untouched (the batch update is partial)
    assert (
        dt.record("crm_customer", ids[0]).data["customer_name"].endswith("有限公司" + ids[0][-5:])
    )


def test_an_empty_status_field_reads_as_active(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    rid = sorted(dt.ids("crm_customer"))[0]
    dt.set_status("crm_customer", rid, None)
    pulled = {r.id: r.status for p in drain(session, "crm_customer") for r in p.records}
    assert pulled[rid] == "active"


def test_voiding_a_voided_record_or_restoring_an_active_one_is_a_harmless_success(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt)
    rid = sorted(dt.ids("crm_customer"))[0]
    assert session.push("crm_customer", [StatusChange(rid, "void")])[0].ok
    again = session.push("crm_customer", [StatusChange(rid, "void")])[0]
    assert again.ok and dt.status_label("crm_customer", rid) == "作废"
    other = sorted(dt.ids("crm_customer"))[1]
    assert session.push("crm_customer", [StatusChange(other, "restore")])[0].ok


def test_write_back_costs_ceil_m_over_10_calls(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    ids = sorted(dt.ids("crm_customer"))[:23]
    dt.reset_stats()
    results: list[Any] = []
    for start in range(0, 23, session.limits().batch_size):
        chunk = ids[start : start + session.limits().batch_size]
        results += session.push("crm_customer", [StatusChange(i, "archive") for i in chunk])
    assert all(r.ok for r in results) and len(results) == 23
    stats = dt.stats()
    assert stats["write_calls"] == math.ceil(23 / 10) == session.stats()["write_calls"]
    assert stats["meta_calls"] == 1  # the option keys, once per session
    assert stats["max_batch"] == 10


def test_per_record_failures_carry_the_crms_codes(dt: FakeDingTalk) -> None:
    session = open_session(dt)
    ids = sorted(dt.ids("crm_customer"))[:3]
    dt.reject_writes(ids[:1])
    results = session.push(
        "crm_customer",
        [
            StatusChange(ids[0], "archive"),
            StatusChange(ids[1], "update", {"no_such_field": "x"}),
            StatusChange("gone-record", "archive"),
            StatusChange(ids[2], "update", {"customer_address": "杭州市1号"}),
        ],
    )
    by_id = {r.record_id: r for r in results}
    assert by_id[ids[0]].error == "1002: 查重失败"
    assert by_id[ids[1]].error.startswith("fieldId.not.exists")
    assert by_id["gone-record"].error.startswith("data.not.exists")
    assert by_id[ids[2]].ok and dt.record("crm_customer", ids[2]).data["customer_address"] == (
        "杭州市1号"
    )


def test_a_restore_of_data_writes_the_records_fields_not_the_mirrors_system_keys(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt)
    record = next(iter(session.pull("crm_customer"))).records[0]
    copy = dict(record.data)
    dt.touch("crm_customer", ids=[record.id])  # a user changed the address since
    fields = {k: v for k, v in copy.items() if k != STATUS_FIELDS["crm_customer"]}
    (result,) = session.push("crm_customer", [StatusChange(record.id, "update", fields, copy)])
    assert result.ok, result.error
    assert dt.record("crm_customer", record.id).data["customer_address"] == copy["customer_address"]


def test_unsupported_and_unconfigured_actions_are_refused_before_any_call(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt, write_actions=["purge"], status=None)
    dt.reset_stats()
    with pytest.raises(ConnectorError, match=r"'archive' is not supported .*status"):
        session.push("crm_customer", [StatusChange("x", "archive")])
    assert dt.stats()["requests"] == 0
    (info,) = [m for m in session.list_modules() if m.name == "crm_customer"]
    assert info.actions == ("purge",) and info.status_field is None


def test_contacts_and_follow_records_write_through_their_batch_endpoints(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt)
    contact = sorted(dt.ids("crm_contact"))[0]
    follows = sorted(dt.ids("crm_follow_record"))[:12]
    assert session.push("crm_contact", [StatusChange(contact, "archive")])[0].ok
    assert dt.status_label("crm_contact", contact) == "已归档"
    # the option key came from the old API's describe (select_options there)
    stored = dt.record("crm_contact", contact).data[STATUS_FIELDS["crm_contact"]]
    assert '"key": "option_1"' in stored["extendValue"]
    dt.reset_stats()
    for start in (0, 10):
        chunk = follows[start : start + 10]
        assert all(
            r.ok
            for r in session.push("crm_follow_record", [StatusChange(i, "void") for i in chunk])
        )
    assert {dt.status_label("crm_follow_record", i) for i in follows} == {"作废"}
    assert dt.stats()["by_route"]["PUT /v1.0/crm/followRecords/batch"] == 2


def test_deletes_cost_one_call_per_customer_or_contact_and_one_per_10_follow_records(
    dt: FakeDingTalk,
) -> None:
    session = open_session(dt)
    customers = sorted(dt.ids("crm_customer"))[:4]
    contacts = sorted(dt.ids("crm_contact"))[:3]
    follows = sorted(dt.ids("crm_follow_record"))[:10]
    dt.reset_stats()
    results = session.delete("crm_customer", [*customers, "missing-id"])
    assert [r.ok for r in results] == [True] * 4 + [False]
    assert results[-1].error.startswith("data.not.exists")
    results = session.delete("crm_contact", [*contacts, "missing-id"])
    assert [r.ok for r in results] == [True] * 3 + [False]
    assert results[-1].error.startswith("errcode 60121")
    assert all(r.ok for r in session.delete("crm_follow_record", follows))
    stats = dt.stats()
    assert stats["delete_calls"] == 5 + 4 + 1
    assert not (set(customers) & dt.ids("crm_customer")) and not (
        set(contacts) & dt.ids("crm_contact")
    )


def test_the_commented_example_connection_is_valid() -> None:
    import tomllib
    from pathlib import Path

    from jsonschema import Draft202012Validator

    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    start = text.index("# [connections.dingtalk]")
    block = text[start : text.index("\n\n", start)]
    lines = [line[2:] for line in block.splitlines() if not line.startswith("# #")]
    table = tomllib.loads("\n".join(lines))["connections"]["dingtalk"]
    assert table.pop("connector") == "dingtalk"
    assert not list(Draft202012Validator(SETTINGS_SCHEMA).iter_errors(table))
    assert parse_settings(table, "dingtalk").status is not None
