"""`crmsync compliance report` against the sandbox CRM, after real holds, a purge and an
erasure made through the real commands: the numbers match what was done, the JSON document
keeps its keys, the HTML page escapes hostile values, and no output of any format carries the
erased person's e-mail or phone (or the erased records' ids)."""

from __future__ import annotations

import ast
import hashlib
import json
import pathlib
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.snapshots import crypto
from crmsync.snapshots import format as fmt
from crmsync.store.base import Store
from tests.lifecycle_support import TOKEN, run, write_config
from tests.test_purge import LOST, POLICIES, SEEDED_VOIDED, age

HELD_ID = "4150000000003"  # a Lost lead: voided, past retention, held -> restricted
EMAIL, PHONE = "wang.fang.report@example.org", "+86 139 0000 8765"
HOSTILE = "<script>alert('x')</script> case #42 & more"
RETENTION = """
[snapshots]
repository = "snaps"

[retention]
snapshots_max_age = "1d"

[[retention.rules]]
connection = "sandbox"
module = "Leads"
purge_voided_after = "30d"
purge_archived_after = "3y"
purge_basis = "PIPL-47-1-2"

[erasure]
max_records = 5
default_region = "CN"
"""
TOP_KEYS = {
    "format", "generated_at", "period", "connection", "limit", "nearing_days", "audit_chain",
    "holds", "retention", "activity", "open_plans", "snapshots", "findings",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch):
    monkeypatch.setattr(crypto, "DEFAULT_N", crypto.MIN_N)


def ok(result):
    assert result.exit_code == 0, result.output + result.stderr
    return result


def report(config, *args):
    return json.loads(ok(run(config, "compliance", "report", "--json", *args)).stdout)


def codes(doc):
    return sorted(f["code"] for f in doc["findings"])


@pytest.fixture
def scene(tmp_path, lc_sandbox, monkeypatch):
    """Pulled; the Lost leads voided and aged past retention; a record hold (expiring in 5
    days, hostile reason) and a released tag hold; an e-mail/phone on two contacts."""
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    config = write_config(tmp_path, lc_sandbox.api_url, policies=POLICIES)
    config.write_text(config.read_text() + RETENTION)
    people = lc_sandbox.ids("Contacts")[:2]
    now = lc_sandbox.clock.iso()
    lc_sandbox.store.update("Contacts", int(people[0]), {"email": EMAIL}, now)
    lc_sandbox.store.update("Contacts", int(people[1]), {"phone": PHONE}, now)
    ok(run(config, "pull"))
    plan = json.loads(ok(run(config, "plan", "--json", "--policy", "void-lost")).stdout)
    ok(run(config, "apply", plan["id"]))
    age(config, days=31)
    held = f"sandbox:Leads:{HELD_ID}"
    ok(run(config, "hold", "add", "--record", held, "--reason", HOSTILE, "--expires", "5d",
           "--operator", "legal"))  # fmt: skip
    tag = json.loads(ok(run(config, "hold", "add", "--tag", "VIP", "--reason", "audit 2026",
                            "--operator", "legal", "--json")).stdout)  # fmt: skip
    ok(run(config, "hold", "release", tag["id"], "--reason", "audit closed", "--operator", "dpo"))
    return config, people


def test_report_counts_what_holds_purge_and_erasure_did_and_leaks_no_personal_data(scene, tmp_path):
    config, people = scene
    due = set(LOST + SEEDED_VOIDED) - {HELD_ID}
    before = report(config)
    assert set(before) >= TOP_KEYS and before["format"] == "crmsync-compliance-report/1"
    assert before["audit_chain"]["ok"] is True
    (leads,) = [r for r in before["retention"] if r["module"] == "Leads"]
    assert (leads["purgeable"], leads["blocked"], leads["blocked_unrestricted"]) == (len(due), 1, 1)
    assert leads["voided"] == len(due) + 1 and leads["rule"] == "sandbox/Leads"
    contacts = next(r for r in before["retention"] if r["module"] == "Contacts")
    assert contacts["rule"] is None and contacts["purgeable"] == 0
    (hold,) = before["holds"]["active"]
    assert (hold["kind"], hold["records"], hold["reason"]) == ("records", 1, HOSTILE)
    (released,) = before["holds"]["released"]
    assert (released["released_by"], released["release_reason"]) == ("dpo", "audit closed")
    assert codes(before) == ["hold-expiring", "purge-due", "restrict-due"]
    purge_due = next(f for f in before["findings"] if f["code"] == "purge-due")
    assert purge_due["count"] == len(due) and "sandbox/Leads" in purge_due["message"]
    assert "expires in 5 day(s)" in " ".join(f["message"] for f in before["findings"])
    fails = run(config, "compliance", "report", "--fail-on-findings")
    assert fails.exit_code == 4 and "findings (3):" in fails.stdout

    # the purge: planned by alice, approved by carol, applied by alice
    plan = json.loads(ok(run(config, "purge", "--json", "--operator", "alice")).stdout)["plan"]
    waiting = report(config)
    (open_plan,) = waiting["open_plans"]["plans"]
    assert (open_plan["id"], open_plan["records"], open_plan["approved_by"]) == (
        plan, len(due) + 1, [],
    )  # fmt: skip
    assert "purge-open" in codes(waiting)
    ok(run(config, "approve", plan, "--operator", "carol"))
    approved = next(f for f in report(config)["findings"] if f["code"] == "purge-open")
    assert f"approved by carol, not applied: crmsync apply {plan}" in approved["message"]
    ok(run(config, "apply", plan, "--operator", "alice"))
    # the erasure: the person's two contacts, approved by bob
    erase = json.loads(ok(run(config, "erase", "--email", EMAIL, "--phone", PHONE, "--basis",
                              "GDPR-17-1-b", "--operator", "alice", "--json")).stdout)  # fmt: skip
    ok(run(config, "approve", erase["id"], "--operator", "bob"))
    ok(run(config, "erase", "--apply", erase["id"], "--operator", "bob"))

    after = report(config)
    assert after["audit_chain"]["ok"] is True
    (leads,) = [r for r in after["retention"] if r["module"] == "Leads"]
    assert (leads["purgeable"], leads["blocked_unrestricted"], leads["restricted"]) == (0, 0, 1)
    (group,) = leads["restricted_reasons"]
    assert group["records"] == 1 and group["reason"] == f"GDPR-17-3-e: hold {hold['id']}"
    assert group["until"] == hold["expires_at"]
    acts = {(a["plan_id"], a["action"]): a for a in after["activity"]["entries"]}
    purged = acts[(plan, "purge")]
    assert (purged["kind"], purged["done"], purged["failed"], purged["basis"]) == (
        "purge", len(due), 0, "PIPL-47-1-2",
    )  # fmt: skip
    assert (purged["planned_by"], purged["approved_by"], purged["applied_by"]) == (
        "alice", ["carol"], ["alice"],
    )  # fmt: skip
    assert acts[(plan, "restrict")]["done"] == 1
    erased = acts[(erase["id"], "erase")]
    assert (erased["kind"], erased["done"], erased["basis"]) == ("erasure", 2, "GDPR-17-1-b")
    assert erased["approved_by"] == ["bob"] and erased["applied_by"] == ["bob"]
    refs = {hashlib.sha256(i.encode()).hexdigest() for i in people}
    assert after["activity"]["erased"]["records"] == 2
    assert {e["record_ref"] for e in after["activity"]["erased"]["record_refs"]} == refs
    assert codes(after) == ["hold-expiring"] and after["open_plans"]["total"] == 0
    assert after["activity"]["plans"] == 2  # the purge and the erasure (voiding is neither)

    # snapshots: apply's pre-change copy and erasure's rewrites are older than 1d two days on
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    snaps = report(config, "--now", later)["snapshots"]
    assert snaps["available"] and snaps["overdue"] == snaps["total"] >= 1
    first = snaps["listed"][0]["id"]
    ok(run(config, "hold", "add", "--snapshot", first[:12], "--reason", "tax audit"))
    snaps = report(config, "--now", later)["snapshots"]
    assert (snaps["held"], snaps["overdue"]) == (1, snaps["total"] - 1)
    assert {s["id"]: s["state"] for s in snaps["listed"]}[first] == "held"

    week = (datetime.now(UTC) + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ended = {h["id"]: h for h in report(config, "--now", week)["holds"]["released"]}
    assert ended[hold["id"]]["released_at"] is None  # expired, never released: listed as ended
    assert "expired 20" in ok(run(config, "compliance", "report", "--now", week)).stdout

    # no format carries the person, nor the erased records' ids; the HTML escapes the reason
    page = tmp_path / "compliance.html"
    ok(run(config, "compliance", "report", "--html", str(page)))
    html = page.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)" in html
    text = ok(run(config, "compliance", "report")).stdout
    limited = report(config, "--limit", "1")
    assert len(limited["activity"]["erased"]["record_refs"]) == 1
    assert limited["activity"]["erased"]["records"] == 2
    outputs = [html, text, json.dumps(after), json.dumps(limited)]
    for output in outputs:
        low = output.lower()
        for secret in (EMAIL, PHONE, "13900008765", "wang.fang", *people):
            assert secret.lower() not in low, secret
    assert HOSTILE in text and "purge-due" not in text


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A config whose CRM is never called (the report reads the store only)."""
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    return write_config(tmp_path, "http://127.0.0.1:9/api/v1/", policies=[])


def test_an_empty_store_reports_nothing_to_do(offline, tmp_path):
    config = offline
    doc = report(config)
    assert set(doc) >= TOP_KEYS and doc["findings"] == [] and doc["retention"] == []
    assert doc["holds"] == {"active": [], "released": []}
    assert doc["activity"]["entries"] == [] and doc["activity"]["erased"]["records"] == 0
    assert (
        doc["snapshots"]["available"] is False
        and "no snapshot repository" in (doc["snapshots"]["problem"])
    )
    assert doc["audit_chain"]["ok"] is True
    text = ok(run(config, "compliance", "report", "--fail-on-findings")).stdout
    assert "findings: none" in text
    page = tmp_path / "empty.html"
    ok(run(config, "compliance", "report", "--html", str(page)))
    assert "Nothing needs action." in page.read_text()


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--since", "last tuesday"], "--since"),
        (["--until", "2026-13-01"], "--until"),
        (["--since", "2026-06-01", "--until", "2026-05-01"], "--since"),
        (["--connection", "nope"], "no connection named 'nope'"),
        (["--json", "--html", "x.html"], "--json or --html"),
        (["--html", "/no/such/dir/x.html"], "does not exist"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_arguments_exit_2_naming_them(offline, args, phrase):
    result = run(offline, "compliance", "report", *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert phrase in result.stderr and "Traceback" not in result.stderr


def test_the_period_selects_the_audited_activity(scene):
    config, _ = scene
    plan = json.loads(ok(run(config, "purge", "--json", "--operator", "alice")).stdout)["plan"]
    ok(run(config, "approve", plan, "--operator", "carol"))
    ok(run(config, "apply", plan, "--operator", "alice"))
    today = datetime.now(UTC).date()
    inside = report(config, "--since", str(today - timedelta(days=1)), "--until", str(today))
    assert {a["plan_id"] for a in inside["activity"]["entries"]} == {plan}
    assert inside["period"]["until"] == f"{today + timedelta(days=1)}T00:00:00Z"
    before = report(config, "--until", str(today - timedelta(days=1)))
    assert before["activity"]["entries"] == [] and before["holds"]["released"] == []
    assert report(config, "--connection", "sandbox")["activity"]["plans"] == 1


def test_a_broken_audit_chain_is_a_finding_in_the_header(offline):
    for tag in ("a", "b"):
        ok(run(offline, "hold", "add", "--tag", tag, "--reason", "r", "--operator", "legal"))
    with sqlite3.connect(offline.parent / "mirror.db") as db:  # someone edits the log by hand
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET operator = 'mallory' WHERE seq = 1")
    doc = report(offline)
    assert doc["audit_chain"]["ok"] is False and codes(doc) == ["audit-chain-broken"]
    result = run(offline, "compliance", "report", "--fail-on-findings")
    assert result.exit_code == 4 and "audit chain: BROKEN: " in result.stdout


def test_a_filter_hold_is_shown_by_the_fields_it_reads_never_its_values(scene):
    config, _ = scene
    spec = json.dumps({"field": "email", "op": "eq", "value": EMAIL})
    ok(run(config, "hold", "add", "--connection", "sandbox", "--module", "Contacts", "--filter",
           spec, "--reason", "subject access request", "--operator", "legal"))  # fmt: skip
    doc = report(config)
    (held,) = [h for h in doc["holds"]["active"] if h["kind"] == "filter"]
    assert held["scope"] == "filter on email in sandbox/Contacts" and held["records"] == 1
    assert EMAIL not in json.dumps(doc)
    assert EMAIL not in ok(run(config, "compliance", "report")).stdout


def test_an_erasure_plan_left_unapplied_is_a_finding_until_and_after_it_expires(scene):
    config, people = scene
    erase = json.loads(ok(run(config, "erase", "--email", EMAIL, "--basis", "GDPR-17-1-b",
                              "--operator", "alice", "--json")).stdout)  # fmt: skip
    (waiting,) = [f for f in report(config)["findings"] if f["code"] == "erasure-open"]
    assert (
        waiting["ref"] == erase["id"]
        and "waits for a second person's approval" in (waiting["message"])
    )
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = report(config, "--now", later)
    (expired,) = [f for f in doc["findings"] if f["code"] == "erasure-open"]
    assert "unapplied: the request is not carried out" in expired["message"]
    assert doc["open_plans"]["plans"][0]["expired"] is True
    assert EMAIL not in json.dumps(doc) and people[0] not in json.dumps(doc)


def test_records_nearing_retention_and_archived_past_their_maximum_are_counted(scene):
    config, _ = scene
    age(config, days=20, ids=[LOST[1]])  # voided 20 days ago: due in 10 days
    with sqlite3.connect(config.parent / "mirror.db") as db:
        old = db.execute(
            "UPDATE mirror SET status_since = '2022-01-01T00:00:00.000000Z'"
            " WHERE module = 'Leads' AND status = 'archived'"
        ).rowcount
    assert old > 0
    doc = report(config, "--nearing", "15")
    (leads,) = [r for r in doc["retention"] if r["module"] == "Leads"]
    assert (leads["nearing"], leads["archived_past_maximum"]) == (1, old)
    (maximum,) = [f for f in doc["findings"] if f["code"] == "maximum-exceeded"]
    assert maximum["count"] == old and "(3y)" in maximum["message"]
    assert report(config, "--nearing", "5")["retention"][-1]["nearing"] == 0


def test_an_unreadable_snapshot_repository_is_a_finding_not_a_crash(offline):
    offline.write_text(offline.read_text() + '\n[snapshots]\nrepository = "snaps"\n')
    (offline.parent / "snaps").mkdir()
    (offline.parent / "snaps" / fmt.CONFIG_NAME).write_bytes(b"not a repository config")
    doc = report(offline)
    assert doc["snapshots"]["available"] is False
    assert codes(doc) == ["snapshots-unreadable"]
    assert "could not be read" in doc["findings"][0]["message"]


def test_the_report_reaches_the_store_only_through_its_interface():
    """As tests/test_store_interface.py checks for crmsync/compliance: no connection, no
    statement run here, and every store method called is declared by Store."""
    from tests.test_store_interface import REACHING_IN

    package = pathlib.Path(__file__).resolve().parent.parent / "crmsync/compliance/report"
    modules = sorted(package.glob("*.py"))
    reaching = [
        f"{path.name}:{n}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if REACHING_IN.search(line)
    ]
    calls = {
        (path.name, node.func.attr)
        for path in modules
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "store"
    }
    assert len(calls) >= 8 and not reaching, reaching
    assert [c for c in calls if not hasattr(Store, c[1]) or c[1].startswith("_")] == []
