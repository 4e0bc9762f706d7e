"""The Fxiaoke connector against the fake Fxiaoke OpenAPI: paging at the 10,000-offset cap,
token expiry, rate limits, errors inside HTTP 200, bad answers, and the native lifecycle
write-back with its call counts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from crmsync.errors import AuthError, BadResponseError, ConnectorError
from crmsync.hookspecs import StatusChange
from crmsync_connectors.fxiaoke.api import FxiaokeError, QuotaError
from crmsync_connectors.fxiaoke.fake import FakeFxiaoke, codes
from crmsync_connectors.fxiaoke.lifecycle import record_status
from crmsync_connectors.fxiaoke.settings import SETTINGS_SCHEMA, ArchiveSettings
from tests.fxiaoke_support import WRONG_SECRET, connector, fx_settings, ref, status_of

BIG = 10_150  # past the 10,000 offset cap with page size 100 and 30


@pytest.fixture(scope="module")
def big() -> Iterator[FakeFxiaoke]:
    with FakeFxiaoke(records={"AccountObj": BIG, "Visit__c": 300}, seed=11) as fx:
        yield fx


@pytest.fixture
def fx() -> Iterator[FakeFxiaoke]:
    with FakeFxiaoke(records={"AccountObj": 120, "LeadsObj": 40, "Visit__c": 150}, seed=3) as f:
        yield f


def _open(fx: FakeFxiaoke, **extra: Any) -> Any:
    return connector(fx).open("fxfake", fx_settings(fx, **extra))


def _ready(fx: FakeFxiaoke, **extra: Any) -> Any:
    """A session that has its token, and a fake whose counters and rate windows are clear."""
    session = _open(fx, **extra)
    session.check()
    fx.advance(20)
    fx.reset_stats()
    return session


def _normal(fx: FakeFxiaoke, obj: str, n: int) -> list[str]:
    return [i for i in fx.ids(obj) if fx.record(obj, i)["life_status"] == "normal"][:n]


# ---------------------------------------------------------------------- paging


@pytest.mark.parametrize("page_size", [100, 30])
def test_full_pull_crosses_the_offset_cap_by_id_and_costs_ceil_n_over_limit(
    big: FakeFxiaoke, page_size: int
) -> None:
    session = _ready(big, page_size=page_size)
    pages = list(session.pull("AccountObj"))
    ids = [r.id for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == BIG and set(ids) == set(big.ids("AccountObj"))
    assert ids == sorted(ids)  # one _id order across the switch: nothing skipped or repeated
    calls = math.ceil(BIG / page_size)
    assert len(pages) == calls == sum(p.api_calls for p in pages)
    stats = big.stats()
    assert stats["query_calls"] == calls and set(stats["by_code"]) == {0}
    offset_pages = 10_000 // page_size + 1  # offsets 0, limit, ... up to the cap (inclusive)
    assert stats["max_offset"] == (10_000 // page_size) * page_size <= 10_000
    assert stats["keyed_queries"] == calls - offset_pages
    assert stats["rate_limited"] == 0  # the client kept within 100 calls / 20 s
    assert all(p.checkpoint.startswith("r:") for p in pages[:-1])
    assert pages[-1].checkpoint.startswith("t:") and pages[0].total == BIG
    session.close()


def test_exact_multiple_costs_one_call_more_only_without_a_total(big: FakeFxiaoke) -> None:
    session = _ready(big)
    assert sum(len(p.records) for p in session.pull("Visit__c")) == 300
    assert big.stats()["query_calls"] == 3
    big.report_total = False
    try:
        big.reset_stats()
        assert sum(len(p.records) for p in session.pull("Visit__c")) == 300
        assert big.stats()["query_calls"] == 4  # the empty 4th page says "done"
    finally:
        big.report_total = True
    assert "/cgi/crm/custom/v2/data/query" in big.stats()["by_path"]


def test_resuming_after_the_switch_to_id_paging_reads_the_rest(big: FakeFxiaoke) -> None:
    session = _ready(big)
    pull = session.pull("AccountObj")
    seen: set[str] = set()
    checkpoint = None
    for page in pull:
        seen.update(r.id for r in page.records)
        checkpoint = page.checkpoint
        if page.number == 101:
            break
    assert checkpoint is not None and checkpoint.startswith("r::")
    rest = [r.id for p in session.pull("AccountObj", since=checkpoint) for r in p.records]
    assert len(rest) == BIG - 10_100 and seen | set(rest) == set(big.ids("AccountObj"))


def test_incremental_pull_reads_what_changed_since_the_pull_began(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    checkpoint = list(session.pull("LeadsObj"))[-1].checkpoint
    fx.advance(30)
    changed = fx.touch("LeadsObj", ids=fx.ids("LeadsObj")[5:8])
    fx.reset_stats()
    pages = list(session.pull("LeadsObj", since=checkpoint))
    assert {r.id for p in pages for r in p.records} == set(changed)
    assert fx.stats()["query_calls"] == 1
    assert all(r.modified_at and r.modified_at.endswith("Z") for p in pages for r in p.records)


def test_a_checkpoint_from_elsewhere_is_refused_clearly(fx: FakeFxiaoke) -> None:
    with pytest.raises(ConnectorError, match="not made by the Fxiaoke connector") as err:
        list(_open(fx).pull("AccountObj", since="2025-01-01T00:00:00Z"))
    assert "fxfake" in str(err.value) and "AccountObj" in str(err.value)


def test_life_status_maps_to_the_lifecycle() -> None:
    archive = ArchiveSettings("crmsync_archived__c", "archived")
    assert record_status({"life_status": "invalid"}, archive) == "voided"
    assert record_status({"life_status": "normal"}, archive) == "active"
    assert record_status({"life_status": "under_review"}, None) == "active"
    for locked in ("in_change", "ineffective", "something_new"):
        assert record_status({"life_status": locked}, archive) == "active"
    archived = {"life_status": "normal", "crmsync_archived__c": "archived"}
    assert record_status(archived, archive) == "archived"
    assert record_status({**archived, "life_status": "invalid"}, archive) == "voided"
    assert record_status(archived, None) == "active"


def test_pulled_records_carry_status_from_life_status(fx: FakeFxiaoke) -> None:
    ids = fx.ids("AccountObj")
    fx.set_life_status("AccountObj", ids[:2], "invalid")
    fx.set_life_status("AccountObj", ids[2:3], "under_review")
    pulled = {r.id: r for p in _open(fx).pull("AccountObj") for r in p.records}
    assert pulled[ids[0]].status == pulled[ids[1]].status == "voided"
    assert pulled[ids[2]].status == "active"
    (info,) = [m for m in _open(fx).list_modules() if m.name == "AccountObj"]
    assert info.status_field == "life_status" and info.modified_field == "last_modified_time"
    assert info.actions == ("archive", "void", "restore", "purge", "update")


# ---------------------------------------------------------------------- auth


def test_token_is_renewed_before_it_expires_by_time(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    session.check()
    fx.advance(7200 - 60)  # inside the renewal margin
    session.check()
    assert session.stats()["token_calls"] == 2
    assert codes.TOKEN_EXPIRED not in fx.stats()["by_code"]


def test_token_expired_error_code_refreshes_once_then_succeeds(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    session.check()
    fx.expire_tokens()
    fx.reset_stats()
    assert sum(len(p.records) for p in session.pull("LeadsObj")) == 40
    assert fx.stats()["by_code"][codes.TOKEN_EXPIRED] == 1
    assert fx.stats()["token_requests"] == 1


def test_token_refused_again_after_renewal_is_an_auth_error(fx: FakeFxiaoke) -> None:
    fx.fail_next_code(codes.TOKEN_EXPIRED, 2, path="/cgi/crm/")
    with pytest.raises(AuthError, match="refused again right after renewing") as err:
        list(_open(fx).pull("LeadsObj"))
    assert "fxfake" in str(err.value) and "LeadsObj" in str(err.value)


def test_wrong_credentials_name_the_connection_and_hide_the_secret(fx: FakeFxiaoke) -> None:
    session = _open(fx, app_secret=ref(WRONG_SECRET, "app_secret"))
    with pytest.raises(AuthError, match="errorCode 10006") as err:
        session.check()
    text = str(err.value)
    assert "connection 'fxfake'" in text and "app_secret" in text
    assert WRONG_SECRET not in text and fx.permanent_code not in text


def test_operator_is_looked_up_once_by_admin_mobile(fx: FakeFxiaoke) -> None:
    settings = fx_settings(fx, admin_mobile=fx.admin_mobile)
    del settings["current_open_user_id"]
    session = connector(fx).open("fxfake", settings)
    assert fx.open_user_id in session.check()
    list(session.pull("LeadsObj"))
    assert session.stats()["user_calls"] == 1
    settings["admin_mobile"] = "13999999999"
    with pytest.raises(ConnectorError, match="no employee has that number"):
        connector(fx).open("fxfake", settings).check()


# ---------------------------------------------------------------------- limits and errors


def test_rate_limit_code_backs_off_and_succeeds(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    before = fx.clock.now()
    fx.fail_next_code(codes.RATE_LIMITED, 2, path="/cgi/crm/")
    assert sum(len(p.records) for p in session.pull("LeadsObj")) == 40
    assert session.stats()["backoffs"] == 2 and fx.clock.now() > before


def test_rate_limit_that_persists_is_reported_after_the_retries(fx: FakeFxiaoke) -> None:
    fx.fail_next_code(codes.RATE_LIMITED, 10, path="/cgi/crm/")
    with pytest.raises(FxiaokeError, match=r"errorCode 30004.*still after 2 retries") as err:
        list(_open(fx, max_retries=2).pull("LeadsObj"))
    assert "connection 'fxfake', module 'LeadsObj', page 1" in str(err.value)


def test_per_endpoint_limit_is_kept_client_side(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    ids = _normal(fx, "AccountObj", 110)
    start = fx.clock.now()
    results = session.push("AccountObj", [StatusChange(i, "void") for i in ids[:100]])
    results += session.push("AccountObj", [StatusChange(i, "void") for i in ids[100:]])
    assert all(r.ok for r in results)
    assert fx.stats()["rate_limited"] == 0
    assert fx.clock.now() - start >= 20  # call 101 waited for the 20 s window
    assert session.stats()["rate_limit_wait_s"] >= 20


def test_quota_codes_stop_at_once(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    session.check()
    fx.reset_stats()
    fx.fail_next_code(codes.DAILY_QUOTA, 1, path="/cgi/crm/")
    with pytest.raises(QuotaError, match="quota is used up"):
        list(session.pull("LeadsObj"))
    assert fx.stats()["requests"] == 1


def test_other_error_codes_in_http_200_are_errors(fx: FakeFxiaoke) -> None:
    fx.fail_next_code(-2, 1, path="/cgi/crm/")
    with pytest.raises(FxiaokeError, match="errorCode -2") as err:
        list(_open(fx).pull("LeadsObj"))
    assert err.value.code == -2 and "page 1" in str(err.value)
    assert "(traceId E-O.fake." in str(err.value)  # what Fxiaoke's support asks for


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"errorCode": 0, "data": {"dataL', "malformed JSON"),
        (b'{"errorMessage": "OK", "data": {"dataList": []}}', "without a numeric errorCode"),
        (b'{"errorCode": 0, "errorMessage": "OK"}', "without data.dataList"),
        (b'{"errorCode": 0, "data": {"dataList": [{"name": "x"}]}}', "a row without a text _id"),
        (b"[1, 2]", "JSON list, not an object"),
    ],
)
def test_bad_answers_are_clear_errors_naming_the_page(
    fx: FakeFxiaoke, body: bytes, message: str
) -> None:
    session = _open(fx)
    session.check()
    fx.malformed_next(1, body=body, path="/cgi/crm/")
    with pytest.raises(BadResponseError, match=message) as err:
        list(session.pull("LeadsObj"))
    assert "connection 'fxfake', module 'LeadsObj', page 1" in str(err.value)


def test_unknown_object_and_field_are_named(fx: FakeFxiaoke) -> None:
    with pytest.raises(ConnectorError, match="'Ghost__c'") as err:
        _open(fx, objects=["Ghost__c"]).check()
    assert "custom object" in str(err.value)
    with pytest.raises(ConnectorError, match="no_such_field"):
        _open(fx, objects=[{"name": "AccountObj", "fields": ["name", "no_such_field"]}]).check()
    with pytest.raises(ConnectorError, match="not configured"):
        list(_open(fx).pull("OpportunityObj"))


def test_projection_always_asks_for_the_fields_crmsync_needs(fx: FakeFxiaoke) -> None:
    session = _open(fx, objects=[{"name": "LeadsObj", "fields": ["name", "email"]}])
    record = next(iter(session.pull("LeadsObj"))).records[0]
    assert set(record.data) == {
        "_id", "name", "email", "life_status", "last_modified_time", "crmsync_archived__c",
    }  # fmt: skip


def test_schema_refuses_bad_settings() -> None:
    validator = Draft202012Validator(SETTINGS_SCHEMA)
    good = {
        "app_id": "FSAID_1", "app_secret": "env:S", "permanent_code": "env:P",
        "current_open_user_id": "FSUID_ABC", "objects": ["AccountObj"],
    }  # fmt: skip
    assert not list(validator.iter_errors(good))
    for bad in (
        {**good, "page_size": 101},
        {**good, "pagesize": 10},
        {k: v for k, v in good.items() if k != "current_open_user_id"},
        {**good, "objects": ["bad name"]},
        {**good, "archive": {"field": "x__c"}},
    ):
        assert list(validator.iter_errors(bad)), bad
    assert SETTINGS_SCHEMA["properties"]["app_secret"]["secret"] is True


# ---------------------------------------------------------------------- write-back


def test_void_of_a_preset_object_is_one_invalid_call_per_record(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    ids = _normal(fx, "AccountObj", 25)
    fx.reset_stats()
    results = session.push("AccountObj", [StatusChange(i, "void") for i in ids])
    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert fx.stats()["by_path"] == {"/cgi/crm/v2/data/invalid": 25}
    assert {status_of(fx.record("AccountObj", i)) for i in ids} == {"voided"}


def test_void_of_a_custom_object_is_batched(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    ids = _normal(fx, "Visit__c", 130)
    fx.reset_stats()
    results = []
    for start in range(0, len(ids), 100):
        results += session.push("Visit__c", [StatusChange(i, "void") for i in ids[start:][:100]])
    assert all(r.ok for r in results)
    assert fx.stats()["by_path"] == {"/cgi/crm/custom/data/invalid": 2}  # ceil(130 / 100)


def test_restore_and_purge_are_batched(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    ids = _normal(fx, "AccountObj", 60)
    session.push("AccountObj", [StatusChange(i, "void") for i in ids])
    fx.reset_stats()
    assert all(r.ok for r in session.push("AccountObj", [StatusChange(i, "restore") for i in ids]))
    # with an archive field: a state query says what each record needs, then one recover
    assert fx.stats()["by_path"] == {"/cgi/crm/v2/data/query": 1, "/cgi/crm/v2/data/recover": 1}
    assert {status_of(fx.record("AccountObj", i)) for i in ids} == {"active"}
    settings = fx_settings(fx)
    del settings["archive"]
    native = connector(fx).open("fxfake", settings)
    native.push("AccountObj", [StatusChange(i, "void") for i in ids])
    fx.reset_stats()
    assert all(r.ok for r in native.push("AccountObj", [StatusChange(i, "restore") for i in ids]))
    assert fx.stats()["by_path"] == {"/cgi/crm/v2/data/recover": 1}  # ceil(M / 100)
    session.push("AccountObj", [StatusChange(i, "void") for i in ids])
    fx.reset_stats()
    assert all(r.ok for r in session.delete("AccountObj", ids))
    assert fx.stats()["by_path"] == {"/cgi/crm/v2/data/delete": 1}
    assert not set(ids) & set(fx.ids("AccountObj"))


def test_purge_of_active_records_invalids_them_first(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    voided, active = _normal(fx, "AccountObj", 6)[:3], _normal(fx, "AccountObj", 6)[3:]
    fx.set_life_status("AccountObj", voided, "invalid")
    fx.reset_stats()
    results = session.delete("AccountObj", [*voided, *active, "f" * 24])
    assert [r.ok for r in results] == [True] * 6 + [False]
    assert results[-1].error.startswith("NOT_FOUND: connection 'fxfake', AccountObj record ff")
    by_path = fx.stats()["by_path"]
    assert by_path["/cgi/crm/v2/data/invalid"] == 3  # one per active record, then delete
    assert by_path["/cgi/crm/v2/data/delete"] == 2  # the refused batch, then the good one
    assert by_path["/cgi/crm/v2/data/query"] == 1
    assert not set(voided + active) & set(fx.ids("AccountObj"))


def test_already_invalid_and_not_invalid_records_get_clear_codes(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    ids = _normal(fx, "AccountObj", 4)
    fx.set_life_status("AccountObj", ids[:1], "invalid")
    results = session.push("AccountObj", [StatusChange(i, "void") for i in ids[:2]])
    assert results[0].error == (
        f"ALREADY_VOIDED: connection 'fxfake', AccountObj record {ids[0]} is already invalid (作废)"
    )
    assert results[1].ok
    results = session.push("AccountObj", [StatusChange(i, "restore") for i in ids[1:4]])
    assert results[0].ok
    assert [r.error.split(":")[0] for r in results[1:]] == ["NOT_VOIDED", "NOT_VOIDED"]
    assert status_of(fx.record("AccountObj", ids[1])) == "active"


def test_locked_records_fail_alone_with_the_server_code(fx: FakeFxiaoke) -> None:
    session = _open(fx)
    ids = _normal(fx, "AccountObj", 5)
    fx.reject_writes(ids[:1])
    results = session.push("AccountObj", [StatusChange(i, "void") for i in ids])
    assert not results[0].ok and results[0].error.startswith(f"FXIAOKE_{codes.LOCKED}: ")
    assert ids[0] in results[0].error and all(r.ok for r in results[1:])


def test_archive_restore_and_update_write_fields(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    ids = _normal(fx, "LeadsObj", 3)
    fx.reset_stats()
    assert all(r.ok for r in session.push("LeadsObj", [StatusChange(i, "archive") for i in ids]))
    assert fx.stats()["by_path"] == {"/cgi/crm/v2/data/update": 3}
    assert fx.stats()["triggers"] == {"workflow=False": 3}
    assert {status_of(fx.record("LeadsObj", i)) for i in ids} == {"archived"}
    assert all(r.ok for r in session.push("LeadsObj", [StatusChange(i, "restore") for i in ids]))
    assert {status_of(fx.record("LeadsObj", i)) for i in ids} == {"active"}
    update = StatusChange(ids[0], "update", {"remark": "checked"})
    assert session.push("LeadsObj", [update])[0].ok
    assert fx.record("LeadsObj", ids[0])["remark"] == "checked"
    bad = session.push("LeadsObj", [StatusChange(ids[0], "update", {"nope__c": 1})])[0]
    assert not bad.ok and bad.error.startswith("FXIAOKE_") and "nope__c" in bad.error


def test_archive_without_a_field_is_not_offered(fx: FakeFxiaoke) -> None:
    settings = fx_settings(fx)
    del settings["archive"]
    session = connector(fx).open("fxfake", settings)
    assert "archive" not in session.list_modules()[0].actions
    with pytest.raises(ConnectorError, match="no native archive"):
        session.push("AccountObj", [StatusChange(fx.ids("AccountObj")[0], "archive")])
    with pytest.raises(ConnectorError, match="'tag' is not supported"):
        session.push("AccountObj", [StatusChange(fx.ids("AccountObj")[0], "tag")])


def test_void_with_a_reason_writes_it_before_the_invalid(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    ids = _normal(fx, "LeadsObj", 2)
    changes = [StatusChange(ids[0], "void", {"remark": "duplicate"}),
               StatusChange(ids[1], "void", {"nope__c": "x"})]  # fmt: skip
    ok, bad = session.push("LeadsObj", changes)
    assert ok.ok and fx.record("LeadsObj", ids[0]) | {} == {
        **fx.record("LeadsObj", ids[0]),
        "remark": "duplicate",
        "life_status": "invalid",
    }
    assert not bad.ok and "nope__c" in bad.error
    assert fx.record("LeadsObj", ids[1])["life_status"] == "normal"  # not voided half-way


def test_token_endpoint_rate_limit_is_waited_out_not_called_bad_credentials(
    fx: FakeFxiaoke,
) -> None:
    fx.fail_next_code(codes.RATE_LIMITED, 2, path="/cgi/corpAccessToken/")
    session = _open(fx)
    assert "corpAccessToken ok" in session.check()
    assert session.stats()["token_calls"] == 3
    fx.fail_next_code(-2, 1, path="/cgi/corpAccessToken/")
    with pytest.raises(ConnectorError, match="errorCode -2") as err:
        _open(fx).check()
    assert not isinstance(err.value, AuthError)


def test_restore_of_an_archived_then_voided_record_makes_it_active(fx: FakeFxiaoke) -> None:
    session = _ready(fx)
    rid = _normal(fx, "LeadsObj", 1)[0]
    assert session.push("LeadsObj", [StatusChange(rid, "archive")])[0].ok
    assert session.push("LeadsObj", [StatusChange(rid, "void")])[0].ok
    assert status_of(fx.record("LeadsObj", rid)) == "voided"
    assert session.push("LeadsObj", [StatusChange(rid, "restore")])[0].ok
    assert status_of(fx.record("LeadsObj", rid)) == "active"
    assert fx.record("LeadsObj", rid)["crmsync_archived__c"] is None


def test_no_secret_or_token_reaches_the_logs(fx: FakeFxiaoke, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    session = _open(fx, max_retries=1)
    fx.fail_next_code(codes.RATE_LIMITED, 1, path="/cgi/crm/")
    fx.fail_next(503, 1, path="/cgi/crm/")
    list(session.pull("LeadsObj"))
    fx.expire_tokens()
    session.push("LeadsObj", [StatusChange(fx.ids("LeadsObj")[0], "void")])
    session.close()
    with pytest.raises(AuthError):
        _open(fx, app_secret=ref(WRONG_SECRET, "app_secret")).check()
    assert caplog.records  # retries and the token renewal were logged
    for secret in (fx.app_secret, fx.permanent_code, WRONG_SECRET, *fx.issued):
        assert secret not in caplog.text


def test_the_commented_example_connection_is_valid() -> None:
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    start = text.index("# [connections.fxiaoke]")
    block = text[start : text.index("\n\n", start)]
    lines = [line[2:] for line in block.splitlines() if not line.startswith("# #")]
    table = tomllib.loads("\n".join(lines))["connections"]["fxiaoke"]
    assert table.pop("connector") == "fxiaoke"
    assert not list(Draft202012Validator(SETTINGS_SCHEMA).iter_errors(table))
    assert "archive" in table and table["app_secret"].startswith("keyring:")
