"""The fake Zoho CRM server (crmsync_connectors.zoho.fake) behaves as Zoho v8 is documented."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from crmsync_connectors.zoho.fake import FakeZoho

FIELDS = "Last_Name,Email,Lead_Status,Modified_Time"


@pytest.fixture(scope="module")
def zoho() -> Iterator[FakeZoho]:
    """A shared, read-mostly fake: 2,500 Leads (to cross the 2,000 boundary)."""
    with FakeZoho(records={"Leads": 2500, "Contacts": 30, "Site_Visits": 12}) as fake:
        yield fake


@pytest.fixture
def fresh() -> Iterator[FakeZoho]:
    """A small private fake for tests that write or change limits."""
    with FakeZoho(records=20) as fake:
        yield fake


def token_request(z: FakeZoho, how: str = "query", **extra: str) -> requests.Response:
    params = {
        "grant_type": "refresh_token",
        "refresh_token": z.refresh_token,
        "client_id": z.client_id,
        "client_secret": z.client_secret,
        **extra,
    }
    url = z.accounts_url + "/oauth/v2/token"
    if how == "query":
        return requests.post(url, params=params, timeout=5)
    return requests.post(url, data=params, timeout=5)


def auth(z: FakeZoho, scheme: str = "Zoho-oauthtoken") -> dict[str, str]:
    return {"Authorization": f"{scheme} {z.access_token()}"}


def get(z: FakeZoho, module: str = "Leads", headers: dict | None = None, **params: Any):
    return requests.get(z.api_url + module, params=params, headers=headers or auth(z), timeout=5)


# --------------------------------------------------------------------------- OAuth


@pytest.mark.parametrize("how", ["query", "form"])
def test_refresh_token_exchange(fresh: FakeZoho, how: str) -> None:
    r = token_request(fresh, how)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["api_domain"] == fresh.api_domain != fresh.accounts_url
    ok = requests.get(
        body["api_domain"] + "/crm/v8/settings/modules",
        headers={"Authorization": "Zoho-oauthtoken " + body["access_token"]},
        timeout=5,
    )
    assert ok.status_code == 200
    assert fresh.stats()["tokens_issued"] == 1


def test_bad_client_and_refresh_token(fresh: FakeZoho) -> None:
    assert token_request(fresh, client_secret="nope").json() == {"error": "invalid_client"}
    r = token_request(fresh, refresh_token="1000.unknown")
    assert r.status_code == 200
    assert r.json() == {"error": "invalid_code"}
    fresh.revoke_refresh_token()
    assert token_request(fresh).json() == {"error": "invalid_code"}


def test_authorization_code_grant(fresh: FakeZoho) -> None:
    code = fresh.grant_code(scopes="ZohoCRM.modules.ALL")
    params = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": fresh.client_id,
        "client_secret": fresh.client_secret,
    }
    first = requests.post(fresh.accounts_url + "/oauth/v2/token", data=params, timeout=5).json()
    assert first["refresh_token"] and first["access_token"]
    again = requests.post(fresh.accounts_url + "/oauth/v2/token", data=params, timeout=5)
    assert again.json() == {"error": "invalid_code"}  # single use
    # a code only covering modules cannot read metadata
    h = {"Authorization": "Zoho-oauthtoken " + first["access_token"]}
    meta = requests.get(fresh.api_url + "settings/modules", headers=h, timeout=5)
    assert meta.status_code == 401
    assert meta.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert get(fresh, headers=h, fields="Last_Name").status_code == 200


def test_token_expiry_via_clock(fresh: FakeZoho) -> None:
    h = {"Authorization": "Zoho-oauthtoken " + token_request(fresh).json()["access_token"]}
    assert get(fresh, headers=h, fields="Last_Name").status_code == 200
    fresh.advance(3599)
    assert get(fresh, headers=h, fields="Last_Name").status_code == 200
    fresh.advance(1)
    r = get(fresh, headers=h, fields="Last_Name")
    assert r.status_code == 401
    assert r.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_ten_tokens_per_ten_minutes(fresh: FakeZoho) -> None:
    for _ in range(10):
        assert "access_token" in token_request(fresh).json()
    denied = token_request(fresh)
    assert denied.status_code == 400
    assert denied.json()["error"] == "Access Denied"
    fresh.advance(599)
    assert token_request(fresh).json()["error"] == "Access Denied"
    fresh.advance(1)
    assert "access_token" in token_request(fresh).json()
    stats = fresh.stats()
    assert stats["tokens_issued"] == 11
    assert stats["token_requests_throttled"] == 2


def test_header_forms(zoho: FakeZoho) -> None:
    assert get(zoho, headers=auth(zoho, "Bearer"), fields="Last_Name").status_code == 200
    none = get(zoho, headers={"X": "y"}, fields="Last_Name")
    assert none.status_code == 401
    assert none.json()["code"] == "AUTHENTICATION_FAILURE"
    bad = get(zoho, headers={"Authorization": "Zoho-oauthtoken 1000.bogus"}, fields="Last_Name")
    assert bad.json()["code"] == "INVALID_TOKEN"


def test_hosts_are_separate(zoho: FakeZoho) -> None:
    r = requests.get(zoho.accounts_url + "/crm/v8/Leads", headers=auth(zoho), timeout=5)
    assert r.status_code == 404
    assert r.json()["code"] == "INVALID_URL_PATTERN"


# --------------------------------------------------------------------------- metadata


def test_metadata(zoho: FakeZoho) -> None:
    modules = requests.get(zoho.api_url + "settings/modules", headers=auth(zoho), timeout=5)
    names = {m["api_name"]: m for m in modules.json()["modules"]}
    assert {"Leads", "Contacts", "Accounts", "Deals", "Site_Visits"} <= set(names)
    assert names["Leads"]["api_supported"] is True
    assert names["Home"]["api_supported"] is False
    fields = requests.get(
        zoho.api_url + "settings/fields", params={"module": "Leads"}, headers=auth(zoho), timeout=5
    ).json()["fields"]
    by_name = {f["api_name"]: f for f in fields}
    assert len(fields) > 50
    assert by_name["Last_Name"]["system_mandatory"] is True
    status_values = [v["actual_value"] for v in by_name["Lead_Status"]["pick_list_values"]]
    assert "Contacted" in status_values and "Junk Lead" in status_values
    assert by_name["Owner"]["data_type"] == "ownerlookup"
    visits = requests.get(
        zoho.api_url + "settings/fields",
        params={"module": "Site_Visits"},
        headers=auth(zoho),
        timeout=5,
    ).json()["fields"]
    assert "Modified_Time" not in {f["api_name"] for f in visits}
    assert zoho.stats()["metadata_calls"] >= 3


def test_unknown_module(zoho: FakeZoho) -> None:
    r = get(zoho, "Nope", fields="Last_Name")
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_MODULE"


# --------------------------------------------------------------------------- reading


def test_fields_required_capped_and_known(zoho: FakeZoho) -> None:
    missing = get(zoho)
    assert missing.status_code == 400
    assert missing.json()["code"] == "REQUIRED_PARAM_MISSING"
    assert missing.json()["details"] == {"param_name": "fields"}
    names = zoho.field_names("Leads")
    too_many = get(zoho, fields=",".join(names[:51]))
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "LIMIT_EXCEEDED"
    assert too_many.json()["details"] == {"limit": 50, "param_name": "fields"}
    assert get(zoho, fields=",".join(names[:50])).status_code == 200
    unknown = get(zoho, fields="Last_Name,Nope")
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "INVALID_DATA"


def test_only_requested_fields(zoho: FakeZoho) -> None:
    body = get(zoho, fields="Last_Name,Owner,Tag", per_page=5).json()
    assert len(body["data"]) == 5
    for rec in body["data"]:
        assert set(rec) == {"id", "Last_Name", "Owner", "Tag"}
        assert len(rec["id"]) == 19 and rec["id"].isdigit()
        assert set(rec["Owner"]) == {"name", "id", "email"}
    info = body["info"]
    assert info["per_page"] == 5 and info["count"] == 5 and info["page"] == 1
    assert info["more_records"] is True and info["next_page_token"]
    assert get(zoho, fields="Last_Name", per_page=201).status_code == 400


def test_paging_across_the_2000_boundary(zoho: FakeZoho) -> None:
    h = auth(zoho)
    seen: list[str] = []
    token = None
    for page in range(1, 11):
        body = get(zoho, headers=h, fields="Last_Name", page=page, sort_order="asc").json()
        seen += [r["id"] for r in body["data"]]
        token = body["info"]["next_page_token"]
    assert len(seen) == 2000
    past = get(zoho, headers=h, fields="Last_Name", page=11, sort_order="asc")
    assert past.status_code == 400
    assert past.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    assert past.json()["details"] == {"limit": 2000}
    while token:
        body = get(zoho, headers=h, fields="Last_Name", page_token=token, sort_order="asc").json()
        seen += [r["id"] for r in body["data"]]
        token = body["info"]["next_page_token"]
        assert body["info"]["more_records"] == bool(token)
    assert seen == zoho.ids("Leads")


def test_page_token_replays_for_field_groups(zoho: FakeZoho) -> None:
    first = get(zoho, fields="Last_Name", per_page=50).json()
    token = first["info"]["next_page_token"]
    a = get(zoho, fields="Last_Name", per_page=50, page_token=token).json()["data"]
    b = get(zoho, fields="Email", per_page=50, page_token=token).json()["data"]
    assert [r["id"] for r in a] == [r["id"] for r in b]
    other = get(zoho, fields="Email", page_token=token, sort_by="Created_Time")
    assert other.status_code == 400


def test_sort(zoho: FakeZoho) -> None:
    desc = get(zoho, fields="Modified_Time", sort_by="Modified_Time", per_page=50).json()
    ids = [r["id"] for r in get(zoho, fields="Last_Name", per_page=50).json()["data"]]
    assert ids == sorted(ids, reverse=True)  # default: id desc
    times = [r["Modified_Time"] for r in desc["data"]]
    from crmsync_connectors.zoho.fake.data import parse_time

    epochs = [parse_time(t) for t in times]
    assert epochs == sorted(epochs, reverse=True)
    asc = get(zoho, fields="Created_Time", sort_by="Created_Time", sort_order="asc").json()
    created = [parse_time(r["Created_Time"]) for r in asc["data"]]
    assert created == sorted(created)
    assert get(zoho, fields="Last_Name", sort_by="Email").status_code == 400


def test_if_modified_since_304_204(fresh: FakeZoho) -> None:
    h = auth(fresh)
    now = fresh.now()
    nothing = get(fresh, headers={**h, "If-Modified-Since": now}, fields="Last_Name")
    assert nothing.status_code == 304
    assert nothing.content == b""
    fresh.advance(10)
    touched = fresh.touch("Leads", count=3)
    fresh.advance(10)
    since = {**h, "If-Modified-Since": now}
    body = get(fresh, headers=since, fields="Last_Name,Modified_Time").json()
    assert sorted(r["id"] for r in body["data"]) == touched
    # inclusive: a record modified exactly at If-Modified-Since is returned
    exact = get(
        fresh,
        headers={**h, "If-Modified-Since": fresh.record("Leads", touched[0])["Modified_Time"]},
        fields="Last_Name",
    )
    assert {r["id"] for r in exact.json()["data"]} == set(touched)
    # module without Modified_Time: the header is ignored (full pull)
    visits = get(fresh, "Site_Visits", headers=since, fields="Name").json()
    assert len(visits["data"]) == 20
    fresh.delete("Contacts", fresh.ids("Contacts"))
    empty = get(fresh, "Contacts", headers=h, fields="Last_Name")
    assert empty.status_code == 204
    assert empty.content == b""


# --------------------------------------------------------------------------- writing


def put(z: FakeZoho, items: list[dict], module: str = "Leads", **extra: Any):
    return requests.put(
        z.api_url + module, json={"data": items, **extra}, headers=auth(z), timeout=5
    )


def test_put_results_in_order_and_207(fresh: FakeZoho) -> None:
    ids = fresh.ids("Leads")
    fresh.advance(60)
    r = put(
        fresh,
        [
            {"id": ids[0], "Record_Status": "Archived"},
            {"id": ids[1], "Lead_Status": "Not A Status"},
            {"id": "1234"},
            {"id": ids[2], "Last_Name": ""},
            {"id": ids[3], "Record_Status": "Void", "Lead_Status": "Contacted"},
        ],
        trigger=[],
    )
    assert r.status_code == 207
    data = r.json()["data"]
    assert [d["code"] for d in data] == [
        "SUCCESS",
        "INVALID_DATA",
        "INVALID_DATA",
        "MANDATORY_NOT_FOUND",
        "SUCCESS",
    ]
    assert data[0]["details"]["id"] == ids[0]
    assert data[0]["details"]["Modified_Time"] == fresh.now()
    assert data[0]["message"] == "record updated" and data[0]["status"] == "success"
    assert data[1]["details"]["api_name"] == "Lead_Status"
    assert data[1]["status"] == "error"
    assert data[3]["details"]["api_name"] == "Last_Name"
    assert fresh.record("Leads", ids[0])["Record_Status"] == "Archived"
    assert fresh.record("Leads", ids[3])["Lead_Status"] == "Contacted"
    assert fresh.record("Leads", ids[0])["Modified_Time"] == fresh.now()
    assert fresh.write_count("Leads", ids[0]) == 1
    assert fresh.write_count("Leads", ids[1]) == 0
    assert fresh.stats()["triggers"] == {"[]": 1}
    assert put(fresh, [{"id": ids[5], "Record_Status": "Active"}]).status_code == 200
    assert put(fresh, [{"id": ids[5], "Record_Status": "Nope"}]).status_code == 400


def test_put_limit(fresh: FakeZoho) -> None:
    r = put(fresh, [{"id": fresh.ids("Leads")[0]}] * 101)
    assert r.status_code == 400
    assert r.json()["code"] == "LIMIT_EXCEEDED"


def test_reject_ids_fault(fresh: FakeZoho) -> None:
    ids = fresh.ids("Leads")
    fresh.set_faults(reject_ids={ids[1]: "RECORD_LOCKED"})
    r = put(fresh, [{"id": i, "Record_Status": "Void"} for i in ids[:3]])
    assert r.status_code == 207
    assert [d["code"] for d in r.json()["data"]] == ["SUCCESS", "RECORD_LOCKED", "SUCCESS"]


def test_tags(fresh: FakeZoho) -> None:
    ids = fresh.ids("Leads")[:2]
    url = fresh.api_url + "Leads/actions/"
    add = requests.post(
        url + "add_tags",
        json={"tags": [{"name": "crmsync-archived"}], "ids": ids},
        headers=auth(fresh),
        timeout=5,
    )
    assert add.status_code == 200
    assert all(d["code"] == "SUCCESS" for d in add.json()["data"])
    assert "crmsync-archived" in [t["name"] for t in fresh.record("Leads", ids[0])["Tag"]]
    rm = requests.post(
        url + "remove_tags",
        json={"tags": [{"name": "crmsync-archived"}], "ids": [ids[0], "42"]},
        headers=auth(fresh),
        timeout=5,
    )
    assert rm.status_code == 207
    assert [d["code"] for d in rm.json()["data"]] == ["SUCCESS", "INVALID_DATA"]
    assert "crmsync-archived" not in [t["name"] for t in fresh.record("Leads", ids[0])["Tag"]]
    assert fresh.write_count("Leads", ids[0]) == 2


def test_delete_and_deleted_listing(fresh: FakeZoho) -> None:
    ids = fresh.ids("Leads")
    fresh.advance(5)
    before = fresh.now()
    r = requests.delete(
        fresh.api_url + "Leads",
        params={"ids": f"{ids[0]},{ids[1]},999"},
        headers=auth(fresh),
        timeout=5,
    )
    assert r.status_code == 207
    assert [d["code"] for d in r.json()["data"]] == ["SUCCESS", "SUCCESS", "INVALID_DATA"]
    assert r.json()["data"][0]["message"] == "record deleted"
    assert fresh.count("Leads") == 18
    too_many = requests.delete(
        fresh.api_url + "Leads",
        params={"ids": ",".join(["1"] * 101)},
        headers=auth(fresh),
        timeout=5,
    )
    assert too_many.status_code == 400
    listed = get(fresh, "Leads/deleted", type="recycle").json()
    assert {d["id"] for d in listed["data"]} == {ids[0], ids[1]}
    item = listed["data"][0]
    assert item["type"] == "recycle" and item["deleted_time"] == before
    assert set(item) >= {"deleted_by", "display_name", "created_by", "deleted_time"}
    assert listed["info"]["more_records"] is False
    fresh.advance(5)
    later = {**auth(fresh), "If-Modified-Since": fresh.now()}
    assert get(fresh, "Leads/deleted", headers=later).status_code == 204
    fresh.empty_recycle_bin()
    perm = get(fresh, "Leads/deleted", type="permanent").json()["data"]
    assert {d["id"] for d in perm} == {ids[0], ids[1]}
    assert perm[0]["deleted_by"] is None and perm[0]["display_name"] is None
    assert get(fresh, "Leads/deleted", type="recycle").status_code == 204


# --------------------------------------------------------------------------- limits


def test_429_bursts_have_no_retry_after(fresh: FakeZoho) -> None:
    fresh.set_faults(burst_every=5, burst_length=2)
    h = auth(fresh)
    codes = [get(fresh, headers=h, fields="Last_Name").status_code for _ in range(10)]
    assert codes == [200, 200, 200, 429, 429] * 2
    r = get(fresh, headers=h, fields="Last_Name")
    r = get(fresh, headers=h, fields="Last_Name")
    r = get(fresh, headers=h, fields="Last_Name")
    r = get(fresh, headers=h, fields="Last_Name")
    assert r.status_code == 429
    assert r.json()["code"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in r.headers


def test_5xx_rate_is_deterministic() -> None:
    def run() -> list[int]:
        with FakeZoho(records={"Leads": 5}) as z:
            z.set_faults(error_rate=0.3)
            h = auth(z)
            return [get(z, headers=h, fields="Last_Name").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 500 in first and 200 in first


def test_dropped_connection(fresh: FakeZoho) -> None:
    fresh.set_faults(drop_next=1)
    with pytest.raises(requests.ConnectionError):
        get(fresh, fields="Last_Name")
    assert get(fresh, fields="Last_Name").status_code == 200


def test_credits() -> None:
    with FakeZoho(records={"Leads": 5}, daily_credits=4) as z:
        h = auth(z)
        r1 = get(z, headers=h, fields="Last_Name")
        assert "X-API-CREDITS-REMAINING" not in r1.headers
        r2 = get(z, headers=h, fields="Last_Name")
        assert r2.headers["X-API-CREDITS-REMAINING"] == "2"
        get(z, headers=h, fields="Last_Name")
        get(z, headers=h, fields="Last_Name")
        out = get(z, headers=h, fields="Last_Name")
        assert out.status_code == 429
        assert out.json()["code"] == "TOO_MANY_REQUESTS"
        z.advance(86400)
        assert get(z, headers=h, fields="Last_Name").status_code == 401  # token expired too
        assert get(z, fields="Last_Name").status_code == 200
        assert z.stats()["credits_used"] == 5


def test_concurrency_limit() -> None:
    with FakeZoho(records={"Leads": 5}, edition="free") as z:
        z.set_faults(latency_ms=300)
        h = auth(z)
        codes: list[int] = []
        lock = threading.Lock()

        def call() -> None:
            code = get(z, headers=h, fields="Last_Name").status_code
            with lock:
                codes.append(code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes.count(200) == 5
        assert codes.count(429) == 3
        assert z.stats()["max_in_flight"] == 8


def test_control_endpoint(fresh: FakeZoho) -> None:
    base = fresh.api_domain + "/_fake/"
    assert requests.post(base + "faults", json={"burst_every": 2}, timeout=5).ok
    assert (
        requests.post(base + "clock", json={"advance_seconds": 60}, timeout=5).json()["now"]
        == fresh.now()
    )
    assert requests.post(base + "faults", json={"nope": 1}, timeout=5).status_code == 400
    stats = requests.get(base + "stats", timeout=5).json()
    assert "record_calls" in stats


# --------------------------------------------------------------------------- data


def test_determinism_and_shape() -> None:
    with (
        FakeZoho(records={"Leads": 50, "Deals": 5}, seed=7) as a,
        FakeZoho(records={"Leads": 50, "Deals": 9}, seed=7) as b,
    ):
        assert a.ids("Leads") == b.ids("Leads")
        rid = a.ids("Leads")[10]
        assert a.record("Leads", rid) == b.record("Leads", rid)
        rec = a.record("Leads", rid)
        assert rec["Modified_Time"].endswith("+05:30")
        assert rec["Last_Name"]
        assert rec["Record_Status"] in ("Active", "Archived", "Void")
    with FakeZoho(records={"Leads": 50}, seed=8) as c:
        assert c.record("Leads", c.ids("Leads")[10]) != rec
