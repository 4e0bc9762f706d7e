"""Cleaning through plan / approve / apply against the sandbox CRM: duplicate clusters and
survivors (its planted near-duplicates, in Chinese and English), normalisation, classification,
and bad input (exit 2 with the key path)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

import pytest

from crmsync.cleaning.keys import company_key, email_key, phone_key
from crmsync.sandbox import SandboxCRM
from crmsync.store import open_store
from crmsync.store.migrations import SCHEMA_VERSION
from tests.lifecycle_support import TOKEN, make_plan, run, write_config
from tests.policy_reference import filled_fields

DEDUPE_ACCOUNTS = {
    "name": "dedupe-accounts",
    "connection": "sandbox",
    "module": "Accounts",
    "action": "void",
    "max_percent": 30,
    "filter": {
        "duplicate_of": ["name", "phone"],
        "normalize": {"name": "company", "phone": "e164"},
        "default_region": "CN",
        "keep": "most_complete",
    },
}
DEDUPE_LEADS = {
    "name": "dedupe-leads",
    "connection": "sandbox",
    "module": "Leads",
    "action": "void",
    "max_percent": 30,
    "filter": {"duplicate_of": ["email"], "normalize": "email", "keep": "oldest"},
}
CLEAN_CONTACTS = {
    "name": "clean-contacts",
    "connection": "sandbox",
    "module": "Contacts",
    "action": "update",
    "max_percent": 100,
    "normalize": {"phone": "e164", "email": ["trim", "lower"], "full_name": "collapse_space"},
    "default_region": "CN",
    "filter": {"field": "@status", "op": "eq", "value": "active"},
}
CLASSIFY_LEADS = {
    "name": "classify-leads",
    "connection": "sandbox",
    "module": "Leads",
    "action": "classify",
    "max_percent": 100,
    "rules": [
        {
            "name": "vip",
            "when": {"field": "lead_status", "op": "eq", "value": "Qualified"},
            "tags": ["重要客户"],
            "set": {"category": "VIP"},
        },
        {
            "when": {
                "all": [
                    {"field": "lead_status", "op": "in", "value": ["New", "Contacted"]},
                    {"field": "created_at", "newer_than": "2y"},
                ]
            },
            "tags": ["潜在客户"],
        },
        {"set": {"category": "其他"}},
    ],
}


@pytest.fixture(scope="module")
def crm():
    with SandboxCRM(records=800, seed=7, token=TOKEN) as sandbox:
        sandbox.start()
        yield sandbox


@pytest.fixture
def config(tmp_path, crm, monkeypatch):
    monkeypatch.setenv("LC_TOKEN", TOKEN)

    def make(*policies: dict) -> Any:
        return write_config(tmp_path, crm.api_url, list(policies))

    return make


def live(crm: SandboxCRM, module: str) -> list[dict]:
    out = []
    for rid in crm.ids(module):
        record = crm.record(module, rid)
        if record is not None and record["status"] in ("active", "archived"):
            out.append(record)
    return out


def expected_clusters(records: list[dict], key, rank) -> dict[Any, tuple[str, set[str]]]:
    """key -> (survivor, the others), by an independent Python grouping."""
    groups: dict[Any, list[dict]] = defaultdict(list)
    for record in records:
        k = key(record)
        if k is not None:
            groups[k].append(record)
    out = {}
    for k, members in groups.items():
        if len(members) > 1:
            kept = max(members, key=rank)
            out[k] = (kept["id"], {m["id"] for m in members} - {kept["id"]})
    return out


def account_key(r: dict) -> Any:
    name, phone = company_key(r.get("name")), phone_key(r.get("phone"), "CN")
    return None if name is None or phone is None else [name, phone]


def most_complete(r: dict) -> tuple:
    return (r["status"] == "active", filled_fields(r), r["modified_at"], r["id"])


def test_duplicate_clusters_survivors_and_void_after_approval(config, crm):
    cfg = config(DEDUPE_ACCOUNTS, DEDUPE_LEADS)
    accounts = live(crm, "Accounts")
    want = expected_clusters(accounts, lambda r: tuple(account_key(r) or ()) or None, most_complete)
    leads = live(crm, "Leads")
    want_leads = expected_clusters(
        leads,
        lambda r: email_key(r.get("email")),
        lambda r: (r["status"] != "active", r["modified_at"] and "~", r["id"]),
    )

    plan = make_plan(cfg)
    by_name = {p["policy"]: p for p in plan["policies"]}
    dedupe = by_name["dedupe-accounts"]
    assert dedupe["requires_approval"] and dedupe["records"] == sum(
        len(v) for _, v in want.values()
    )
    got = {tuple(c["key"]): (c["survivor"], set(c["void"])) for c in dedupe["clusters"]}
    assert got == want  # every cluster (fewer than 10 here), its survivor and its records
    # the planted near-duplicates: a Chinese name without its legal form, an English one in
    # another case or with a dot, and phones in other formats
    names = {crm.record("Accounts", i)["name"] for _, ids in got.values() for i in ids}
    assert any(not n.endswith("公司") and not n.isascii() for n in names)
    assert any(n.isascii() for n in names)
    assert by_name["dedupe-leads"]["records"] == sum(len(v) for _, v in want_leads.values())

    # voiding needs a second operator's approval
    assert run(cfg, "apply", plan["id"]).exit_code == 3
    assert crm.stats()["writes"] == {}
    assert run(cfg, "approve", plan["id"], "--operator", "bob").exit_code == 0
    applied = run(cfg, "apply", plan["id"], "--json", "--operator", "bob")
    assert applied.exit_code == 0, applied.stderr
    voided = {k for k in crm.stats()["writes"] if k.startswith("Accounts/")}
    assert voided == {f"Accounts/{i}" for _, ids in want.values() for i in ids}
    for survivor, ids in want.values():
        assert crm.record("Accounts", survivor)["status"] == "active"
        assert all(crm.record("Accounts", i)["status"] == "voided" for i in ids)

    # the audit names the survivor, and nothing of the key (an e-mail here): no field values,
    # not even a digest an erasure could not take back
    log = json.loads(run(cfg, "audit", "log", "--policy", "dedupe-accounts", "--json").stdout)
    voids = [e for e in log if e["action"] == "void"]
    assert voids and all(e["detail"]["survivor"] in {s for s, _ in want.values()} for e in voids)
    assert all("cluster" not in e["detail"] for e in voids)
    assert not any("@" in json.dumps(e["detail"]) for e in voids)

    # `plans show` reads the clusters back from the store
    shown = run(cfg, "plans", "show", plan["id"])
    assert shown.exit_code == 0 and "keep " in shown.stdout and "cluster " in shown.stdout
    # a re-plan after a pull finds no duplicates left
    again = make_plan(cfg, "--policy", "dedupe-accounts")
    assert again["policies"][0]["records"] == 0


def test_normalisation_plan_apply_and_replan_finds_nothing(config, crm):
    cfg = config(CLEAN_CONTACTS)
    plan = make_plan(cfg)
    [p] = plan["policies"]
    assert p["records"] > 0 and not p["requires_approval"]
    change = p["changes"][0]
    assert set(change["after"]) <= {"phone", "email", "full_name"}
    assert all(change["before"][k] != v for k, v in change["after"].items())

    terminal = run(cfg, "plans", "show", plan["id"])
    assert " -> " in terminal.stdout

    applied = run(cfg, "apply", plan["id"], "--json")
    assert applied.exit_code == 0, applied.stderr
    assert json.loads(applied.stdout)["policies"]["clean-contacts"]["done"] == p["records"]
    record = crm.record("Contacts", change["record_id"])
    for key, value in change["after"].items():
        assert record[key] == value
    for rid in crm.ids("Contacts"):
        r = crm.record("Contacts", rid)
        if r["status"] == "active" and r.get("email"):
            assert r["email"] == r["email"].strip().lower()

    again = make_plan(cfg)  # pulls first
    assert again["policies"][0]["records"] == 0


def test_classification_sets_tags_and_category(config, crm):
    cfg = config(CLASSIFY_LEADS)
    plan = make_plan(cfg)
    [p] = plan["policies"]
    assert p["action"] == "classify" and p["records"] > 0
    applied = run(cfg, "apply", plan["id"], "--json")
    assert applied.exit_code == 0, applied.stderr
    seen = defaultdict(int)
    for rid in crm.ids("Leads"):
        r = crm.record("Leads", rid)
        if r["status"] not in ("active", "archived"):
            continue
        if r["lead_status"] == "Qualified":  # first match: the vip rule only
            assert "重要客户" in r["tags"] and r["category"] == "VIP"
            assert "潜在客户" not in r["tags"]
            seen["vip"] += 1
        elif "潜在客户" in r["tags"]:
            assert r["lead_status"] in ("New", "Contacted") and "category" not in r
            seen["potential"] += 1
        else:
            assert r["category"] == "其他"
            seen["other"] += 1
    assert min(seen.values()) > 0 and len(seen) == 3
    # already classified records are not planned again
    assert make_plan(cfg)["policies"][0]["records"] == 0


def test_classification_all_match_adds_up_tags(config, crm):
    policy = {
        **CLASSIFY_LEADS,
        "name": "tag-all",
        "match": "all",
        "rules": [
            {
                "when": {"field": "source", "op": "in", "value": ["展会", "Trade Show"]},
                "tags": ["展会"],
            },
            {"when": {"field": "country", "op": "eq", "value": "中国"}, "tags": ["华语"]},
        ],
    }
    cfg = config(policy)
    plan = make_plan(cfg)
    both = [c for c in plan["policies"][0]["changes"] if c.get("after", {}).get("tags")]
    assert plan["policies"][0]["records"] > 0 and both
    assert run(cfg, "apply", plan["id"]).exit_code == 0
    for rid in crm.ids("Leads"):
        r = crm.record("Leads", rid)
        if r["status"] == "voided":
            continue
        assert ("展会" in r["tags"]) == (r["source"] in ("展会", "Trade Show"))
        assert ("华语" in r["tags"]) == (r["country"] == "中国")


BAD = [
    (
        {**CLEAN_CONTACTS, "normalize": {"phone": "e165"}},
        "policies.clean-contacts.normalize.phone: unknown transform 'e165'",
    ),
    (
        {**CLEAN_CONTACTS, "normalize": {"phone": ["trim", "e164x"]}},
        "policies.clean-contacts.normalize.phone[1]: unknown transform",
    ),
    (
        {**CLEAN_CONTACTS, "default_region": "XX"},
        "policies.clean-contacts.default_region: unsupported phone region 'XX'",
    ),
    (
        {**DEDUPE_ACCOUNTS, "filter": {**DEDUPE_ACCOUNTS["filter"], "default_region": "China"}},
        "policies.dedupe-accounts.filter.default_region: unsupported phone region",
    ),
    (
        {**DEDUPE_ACCOUNTS, "filter": {**DEDUPE_ACCOUNTS["filter"], "keep": "best"}},
        "policies.dedupe-accounts.filter.keep: expected one of",
    ),
    (
        {**CLASSIFY_LEADS, "rules": [{"when": {"field": "x", "op": "eq", "value": 1}}]},
        "policies.classify-leads.rules[0]:",
    ),
    (
        {**CLASSIFY_LEADS, "rules": [{"when": {"field": "x", "op": "equals"}, "tags": ["a"]}]},
        "policies.classify-leads.rules[0].when.op: unknown op 'equals'",
    ),
    (
        {**CLASSIFY_LEADS, "match": "any"},
        "policies.classify-leads.match: expected one of",
    ),
    (
        {**CLASSIFY_LEADS, "rules": [{"tags": ["a"], "set": {"tags": "x"}}]},
        "policies.classify-leads.rules[0].set.tags:",
    ),
]


@pytest.mark.parametrize(("policy", "message"), BAD)
def test_bad_cleaning_config_exits_2_naming_the_key(config, policy, message):
    cfg = config(policy)
    for command in (["validate"], ["plan"]):
        result = run(cfg, *command)
        assert result.exit_code == 2, result.stdout + result.stderr
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_version_5_store_opens_with_plans_and_items_without_detail(tmp_path):
    from tests.test_store_migrations import make_store_at

    path = tmp_path / "v5.db"
    make_store_at(path, 5)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "INSERT INTO plans VALUES ('p1', 'policy', '2025-01-01T00:00:00Z', 'alice',"
        " '2099-01-01T00:00:00Z', 'h', 'planned')"
    )
    db.execute(
        "INSERT INTO plan_items (plan_id, policy, connection, module, record_id,"
        " planned_modified_at, planned_hash, before_status) VALUES"
        " ('p1', 'x', 'crm', 'Leads', 'L1', NULL, 'h1', 'active')"
    )
    db.close()
    with open_store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 6
        [item] = store.plan_items("p1", "x", states=("pending",))
        assert item.detail is None and item.fields is None
        assert store.plan_clusters("p1", "x", 10) == [] and store.plan_details("p1", "x", 5) == []
