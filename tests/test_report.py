"""crmsync report: counts against the bundled sandbox, the JSON document, the HTML page."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmsync.hookspecs import PulledRecord
from crmsync.policy.duplicates import dup_key
from crmsync.report.document import as_document
from crmsync.report.gather import build_report
from crmsync.report.html import ReportWriteError, render_html, write_atomic
from crmsync.report.model import AGE_BUCKETS, ReportOptions
from crmsync.report.text import print_report
from crmsync.sandbox import SandboxCRM
from crmsync.store import Store, open_store
from tests.lifecycle_support import make_plan, run

NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the sandbox's clock start: its times all lie before
IN_USE = ("active", "archived")


def pulled(config: Path) -> None:
    result = run(config, "pull")
    assert result.exit_code == 0, result.stderr


def report_json(config: Path, *args: str) -> dict:
    result = run(config, "report", "--json", "--now", "2026-01-01T00:00:00Z", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def modules_of(doc: dict) -> dict[str, dict]:
    return {m["module"]: m for c in doc["connections"] for m in c["modules"]}


def in_use(sandbox: SandboxCRM, module: str) -> list[dict]:
    records = (sandbox.record(module, i) for i in sandbox.ids(module))
    return [r for r in records if r["status"] in IN_USE]


def store_of(config: Path) -> Store:
    return open_store(config.parent / "mirror.db")


def edit(sandbox: SandboxCRM, module: str, record_id: str, **changes: object) -> None:
    assert sandbox.store.update(module, int(record_id), changes, sandbox.now()) is not None


# --------------------------------------------------------------------------- counts


def test_status_counts_add_up_to_the_mirror_and_show_crm_deletions(lc_config, lc_sandbox):
    gone = lc_sandbox.ids("Leads")[:3]
    lc_sandbox.delete_records("Leads", gone)
    pulled(lc_config)
    doc = report_json(lc_config)
    modules = modules_of(doc)
    assert sorted(modules) == ["Accounts", "Contacts", "Deals", "Leads"]
    with store_of(lc_config) as store:
        for name, m in modules.items():
            assert sum(m["status"].values()) == m["records"]
            assert m["records"] == store.count("sandbox", name, include_deleted=True)
            live = Counter(r["status"] for r in in_use(lc_sandbox, name))
            assert m["in_use"] == live["active"] + live["archived"]
    assert set(modules["Leads"]["status"]) == {"active", "archived", "voided", "purged"}
    assert modules["Leads"]["deleted_in_crm"] == 0  # a first pull never saw them
    lc_sandbox.delete_records("Leads", lc_sandbox.ids("Leads")[:2])
    pulled(lc_config)  # incremental: the CRM reports its deletions
    after = modules_of(report_json(lc_config))["Leads"]
    assert after["deleted_in_crm"] == 2
    assert after["records"] == modules["Leads"]["records"]
    assert doc["totals"]["records"] == sum(m["records"] for m in modules.values())


def test_an_applied_archive_policy_shows_in_the_status_counts(lc_config):
    plan = make_plan(lc_config, "--policy", "stale-leads")
    before = modules_of(report_json(lc_config))["Leads"]["status"]
    planned = plan["policies"][0]["records"]
    assert planned > 0
    applied = run(lc_config, "apply", plan["id"], "--json", "--operator", "bob")
    assert applied.exit_code == 0, applied.stderr
    after = modules_of(report_json(lc_config))["Leads"]["status"]
    assert after["archived"] == before["archived"] + planned
    assert after["active"] == before["active"] - planned
    assert after["voided"] == before["voided"]


def test_duplicate_clusters_are_the_planted_near_duplicates_under_the_policy_keys(
    lc_config, lc_sandbox
):
    pulled(lc_config)
    modules = modules_of(report_json(lc_config, "--top", "1000"))
    languages = set()
    for name in ("Leads", "Contacts"):
        records = in_use(lc_sandbox, name)
        by_id = {r["id"]: r for r in records}
        found = {d["key"]: d for d in modules[name]["duplicates"]}
        assert {"email", "phone"} <= set(found)
        for d in found.values():
            keys = Counter(dup_key(d["mode"], r.get(d["field"])) for r in records)
            clusters = {k: n for k, n in keys.items() if k is not None and n > 1}
            assert d["clusters"] == len(clusters)
            assert d["records"] == sum(clusters.values())
            assert d["surplus"] == d["records"] - d["clusters"]
            assert {c["key"]: c["records"] for c in d["largest"]} == clusters
        # every planted pair whose key survives normalisation is in a cluster
        for dup, original in lc_sandbox.duplicates(name).items():
            if dup not in by_id or original not in by_id:
                continue
            for d in found.values():
                key = dup_key(d["mode"], by_id[dup].get(d["field"]))
                if key is not None and key == dup_key(d["mode"], by_id[original].get(d["field"])):
                    assert key in {c["key"] for c in d["largest"]}
                    languages.add("zh" if re.search(r"[\u4e00-\u9fff]", key) else "en")
        assert any(d["clusters"] for d in found.values())
    assert "en" in languages  # and Chinese ones through the company key when it has them
    assert "company" in {d["key"] for d in modules["Leads"]["duplicates"]}


def test_age_buckets_count_modified_or_created_times_relative_to_now(lc_config, lc_sandbox):
    pulled(lc_config)
    bounds = [NOW - timedelta(days=b.max_days) for b in AGE_BUCKETS if b.max_days]

    def expected(field: str) -> list[int]:
        counts = [0] * len(AGE_BUCKETS)
        for r in in_use(lc_sandbox, "Deals"):
            t = datetime.fromisoformat(r[field])
            counts[sum(t < b for b in bounds)] += 1
        return counts

    with store_of(lc_config) as store:
        for stale_field, field in (("modified", "modified_at"), ("created", "created_at")):
            options = ReportOptions(module="Deals", stale_field=stale_field, now=NOW)
            (deals,) = build_report(store, options).modules
            assert [b.records for b in deals.stale.buckets] == expected(field)
            assert [b.value for b in deals.stale.buckets] == [b.label for b in AGE_BUCKETS]
            assert deals.stale.unknown == 0
        # a year later everything is older than a year
        later = build_report(store, ReportOptions(module="Deals", now=NOW + timedelta(days=800)))
        (deals,) = later.modules
        assert sum(b.records for b in deals.stale.buckets[:4]) == 0
        assert deals.stale.buckets[-1].records == deals.in_use


def test_missing_key_fields_count_absent_null_blank_and_empty_values(lc_config, lc_sandbox):
    ids = [r["id"] for r in in_use(lc_sandbox, "Leads")][:4]
    edit(lc_sandbox, "Leads", ids[0], email="")
    edit(lc_sandbox, "Leads", ids[1], email="  \u3000", phone=None)
    edit(lc_sandbox, "Leads", ids[2], company=[])
    pulled(lc_config)
    leads = modules_of(report_json(lc_config, "--key-fields", "email, phone,company,nickname"))
    missing = {f["field"]: f for f in leads["Leads"]["missing"]}
    assert list(missing) == ["email", "phone", "company", "nickname"]
    assert missing["email"]["records"] == 2
    assert missing["phone"]["records"] == 1
    assert missing["company"]["records"] == 1
    assert missing["nickname"]["records"] == leads["Leads"]["in_use"]
    assert missing["nickname"]["percent"] == 100.0
    default = modules_of(report_json(lc_config))
    assert {"email", "phone", "company"} <= {f["field"] for f in default["Leads"]["missing"]}
    assert "email" not in {f["field"] for f in default["Deals"]["missing"]}


def test_categories_count_scalars_per_value_and_tags_per_tag(lc_config, lc_sandbox):
    pulled(lc_config)
    doc = report_json(lc_config, "-m", "Leads", "--category-field", "lead_status",
                      "--category-field", "tags", "--top", "3")  # fmt: skip
    (leads,) = modules_of(doc).values()
    status, tags = leads["categories"]
    records = in_use(lc_sandbox, "Leads")
    truth = Counter(r["lead_status"] for r in records)
    assert [(v["value"], v["records"]) for v in status["values"]] == sorted(
        truth.items(), key=lambda kv: (-kv[1], kv[0])
    )[:3]
    assert sum(v["records"] for v in status["values"]) + status["other"] + status["none"] == len(
        records
    )
    assert status["distinct"] == len(truth)
    tag_truth = Counter(t for r in records for t in r["tags"])
    assert {v["value"]: v["records"] for v in tags["values"]}.items() <= tag_truth.items()
    assert sum(v["records"] for v in tags["values"]) + tags["other"] == tag_truth.total()
    assert tags["none"] == sum(1 for r in records if not r["tags"])
    defaults = modules_of(report_json(lc_config))
    assert [c["field"] for c in defaults["Leads"]["categories"]] == [
        "lead_status",
        "source",
        "tags",
    ]
    assert [c["field"] for c in defaults["Accounts"]["categories"]] == ["industry", "tags"]


def test_lookup_objects_count_by_name_blanks_as_none_and_other_statuses_apart(tmp_path):
    with open_store(tmp_path / "s.db") as store:
        run_id = store.start_run("pull", "z", "Leads")
        rows = [
            {"Owner": {"name": "Ann", "id": "1"}, "Tag": [{"name": "VIP"}, {"name": "新客户"}]},
            {"Owner": {"name": "Ann", "id": "1"}, "Tag": []},
            {"Owner": {"name": "Bob", "id": "2"}, "Tag": [{"name": "VIP"}]},
            {"Owner": " ", "Tag": None},
            {"Owner": {"name": "Cy"}, "Tag": [{"name": "VIP"}]},  # on hold: not in use
        ]
        records = [PulledRecord(str(i), row) for i, row in enumerate(rows)]
        records[-1] = PulledRecord("4", rows[-1], status="on_hold")
        store.commit_page("z", "Leads", run_id, records)
        options = ReportOptions(category_fields=("Owner", "Tag"), now=NOW)
        (leads,) = build_report(store, options).modules
    assert leads.status == {"active": 4, "archived": 0, "voided": 0, "purged": 0, "on_hold": 1}
    assert leads.records == 5 and leads.in_use == 4
    owner, tag = leads.categories
    assert [(v.value, v.records) for v in owner.values] == [("Ann", 2), ("Bob", 1)]
    assert owner.none == 1 and owner.distinct == 2
    assert [(v.value, v.records) for v in tag.values] == [("VIP", 2), ("新客户", 1)]
    assert tag.none == 2
    assert leads.stale.unknown == 4  # no modified time at all


# --------------------------------------------------------------------------- output


def test_json_document_has_the_documented_stable_keys(lc_config):
    pulled(lc_config)
    doc = report_json(lc_config)
    assert set(doc) == {
        "format", "generated_at", "stale_field", "age_buckets", "in_use_statuses",
        "connections", "totals",
    }  # fmt: skip
    assert doc["format"] == "crmsync-report/1"
    assert doc["generated_at"] == "2026-01-01T00:00:00Z"
    assert set(doc["totals"]) == {"modules", "records", "status", "deleted_in_crm", "in_use"}
    (connection,) = doc["connections"]
    assert set(connection) == {"connection", "modules"}
    leads = modules_of(doc)["Leads"]
    assert set(leads) == {
        "module", "records", "status", "deleted_in_crm", "in_use", "categories", "duplicates",
        "stale", "missing",
    }  # fmt: skip
    assert set(leads["categories"][0]) == {"field", "values", "other", "none", "distinct"}
    assert set(leads["categories"][0]["values"][0]) == {"value", "records"}
    assert set(leads["duplicates"][0]) == {
        "key", "field", "mode", "clusters", "records", "surplus", "largest",
    }  # fmt: skip
    assert set(leads["stale"]) == {"field", "buckets", "unknown"}
    assert set(leads["stale"]["buckets"][0]) == {"label", "records"}
    assert set(leads["missing"][0]) == {"field", "records", "percent"}


def test_terminal_tables_list_every_module(lc_config):
    pulled(lc_config)
    result = run(lc_config, "report")
    assert result.exit_code == 0, result.stderr
    for title in ("lifecycle status", "by age", "categories", "duplicate clusters", "missing"):
        assert title in result.stdout
    for module in ("Accounts", "Contacts", "Deals", "Leads"):
        assert f"sandbox/{module}\t" in result.stdout


def test_html_is_one_self_contained_utf8_page_with_svg_charts(lc_config, tmp_path):
    pulled(lc_config)
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    result = run(lc_config, "report", "--html", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"wrote {target}"
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert page.count("<svg") >= 4 * 3  # status, age and categories per module at least
    assert "重点客户" in page and "生命周期状态" in page  # Chinese, as text
    for external in ("<script", "<link", "src=", "href=", "url(", "@import", "http:", "https:"):
        assert external not in page, external
    assert os.listdir(target.parent) == ["report.html"]  # the temporary file was renamed


def test_html_and_terminal_escape_values_from_the_crm(lc_config, lc_sandbox, capsys, monkeypatch):
    lead = in_use(lc_sandbox, "Leads")[0]["id"]
    edit(lc_sandbox, "Leads", lead, lead_status="<script>alert(1)</script>",
         tags=['<img src=x onerror="alert(2)">', "[/red] [bold]x"])  # fmt: skip
    pulled(lc_config)
    with store_of(lc_config) as store:
        report = build_report(store, ReportOptions(module="Leads", top=50, now=NOW))
    page = render_html(report)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    values = {v.value for c in report.modules[0].categories for v in c.values}
    assert "[/red] [bold]x" in values
    # rich tables on a terminal: values are text, not markup (a stray "[/red]" would raise)
    monkeypatch.setattr("crmsync.ui.stdout_is_terminal", lambda: True)
    monkeypatch.setattr("crmsync.report.text.SHOWN_VALUES", 50)
    monkeypatch.setenv("COLUMNS", "2000")
    print_report(report)
    assert "[/red] [bold]x 1" in capsys.readouterr().out


def test_html_write_is_atomic_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "r.html"
    target.write_text("old page")
    write_atomic(target, "<p>新</p>")
    assert target.read_text(encoding="utf-8") == "<p>新</p>"

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ReportWriteError, match="No space left on device"):
        write_atomic(target, "<p>newer</p>")
    assert target.read_text(encoding="utf-8") == "<p>新</p>"
    assert os.listdir(tmp_path) == ["r.html"]


# --------------------------------------------------------------------------- bad input


def test_unknown_connection_module_or_unwritable_path_exit_2(lc_config, tmp_path):
    pulled(lc_config)
    cases = [
        (("--connection", "nope"), "no connection named 'nope' (known: sandbox)"),
        (("-m", "Tickets"), "no module 'Tickets' in the mirror (mirrored: Accounts, Contacts"),
        (("--html", str(tmp_path / "missing" / "r.html")), "does not exist"),
        (("--html", str(tmp_path)), "is a directory"),
        (("--now", "yesterday"), "not an ISO 8601 time"),
        (("--key-fields", " , "), "name at least one field"),
        (("--stale-field", "touched"), "Invalid value for '--stale-field'"),
    ]
    for args, message in cases:
        result = run(lc_config, "report", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output


def test_a_configured_connection_with_nothing_pulled_reports_empty(lc_config, tmp_path):
    result = run(lc_config, "report", "--connection", "sandbox")
    assert result.exit_code == 0, result.stderr
    assert "nothing mirrored yet for sandbox" in result.stdout
    doc = report_json(lc_config)
    assert doc["connections"] == [] and doc["totals"]["records"] == 0
    page = tmp_path / "empty.html"
    assert run(lc_config, "report", "--connection", "sandbox", "--html", str(page)).exit_code == 0
    assert "crmsync pull" in page.read_text(encoding="utf-8")
    assert as_document(build_report(store_of(lc_config), ReportOptions()))["connections"] == []
