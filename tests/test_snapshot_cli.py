"""`crmsync snapshot ...` against the sandbox CRM: create, list, show, diff, restore to a file,
forget, prune, verify (and damage), encryption and passphrase changes, [snapshots] config."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import requests
from click.testing import Result

from crmsync.config import parse_config
from crmsync.errors import ConfigError
from crmsync.snapshots import crypto
from crmsync.snapshots.source import mirror_versions
from crmsync.store import open_store
from tests.lifecycle_support import TOKEN, run

PASS = "correct horse battery staple 42"


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch):
    monkeypatch.setattr(crypto, "DEFAULT_N", crypto.MIN_N)  # scrypt at test cost


def with_snapshots(config: Path, table: str = "") -> Path:
    """Append a [snapshots] table (the blob-id cache stays inside the test's directory)."""
    text = config.read_text() + '\n[snapshots]\ncache_dir = "cache"\n' + table
    config.write_text(text)
    return config


@pytest.fixture
def cfg(lc_config: Path) -> Path:
    return with_snapshots(lc_config)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    return result


def jrun(config: Path, *args: str):
    return json.loads(ok(run(config, *args, "--json")).stdout)


def fails(result: Result, code: int, *phrases: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.startswith("error:") or result.stderr.startswith("Usage:")
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    return result.stderr


def mirror_rows(config: Path) -> dict[tuple[str, str], str]:
    db = sqlite3.connect(config.parent / "mirror.db")
    rows = db.execute(
        "SELECT module, record_id, data FROM mirror WHERE crm_deleted_at IS NULL"
    ).fetchall()
    db.close()
    return {(m, r): data for m, r, data in rows}


def patch(sandbox, module: str, record_id: str, fields: dict) -> None:
    requests.patch(
        f"{sandbox.api_url}{module}/{record_id}",
        json=fields,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).raise_for_status()


# ------------------------------------------------------------------------ the daily workflow


def test_create_diff_list_show_restore_round_trip(cfg, lc_sandbox, tmp_path):
    ok(run(cfg, "pull"))
    [a] = jrun(cfg, "snapshot", "create", "--tag", "daily")
    assert (tmp_path / "snapshots" / "config").is_file()  # beside the store, made on first use
    live = mirror_rows(cfg)
    assert a["records"] == len(live) == a["summary"]["added"]
    assert a["connection"] == "sandbox" and a["tags"] == ["daily"]
    assert a["modules"] == ["Accounts", "Contacts", "Deals", "Leads"]

    [same] = jrun(cfg, "snapshot", "create")
    assert same["parent"] == a["id"] and same["summary"]["new_blobs"] == 0
    assert same["summary"]["unchanged"] == a["records"]

    lead, contact = lc_sandbox.ids("Leads")[3], lc_sandbox.ids("Contacts")[5]
    old_company = lc_sandbox.record("Leads", lead)["company"]
    patch(lc_sandbox, "Leads", lead, {"company": "Changed & Co"})
    assert lc_sandbox.delete_records("Contacts", [contact]) == [contact]
    ok(run(cfg, "pull"))
    text = ok(run(cfg, "snapshot", "create")).stdout
    assert "1 changed, 1 removed" in text
    c = jrun(cfg, "snapshot", "show", "latest")
    assert c["records"] == a["records"] - 1
    assert sum(c["module_records"].values()) == c["records"]
    assert c["summary"]["changed"] == 1 and c["summary"]["new_blobs"] == 1

    diff = jrun(cfg, "snapshot", "diff", a["id"][:6], c["id"])
    assert diff["summary"] == {"added": 0, "changed": 1, "removed": 1}
    assert {(r["kind"], r["module"], r["record_id"]) for r in diff["records"]} == {
        ("changed", "Leads", lead),
        ("removed", "Contacts", contact),
    }
    plain = ok(run(cfg, "snapshot", "diff", a["id"], "latest")).stdout
    assert f"M  Leads/{lead}" in plain and f"-  Contacts/{contact}" in plain

    fields = jrun(cfg, "snapshot", "diff", a["id"], c["id"], "--record", f"Leads/{lead}")
    assert fields["kind"] == "changed"
    by_name = {f["field"]: f for f in fields["fields"]}
    assert by_name["company"] == {
        "field": "company",
        "before": old_company,
        "after": "Changed & Co",
    }
    shown = ok(run(cfg, "snapshot", "diff", a["id"], c["id"], "--record", f"Leads/{lead}")).stdout
    assert f'company: "{old_company}" -> "Changed & Co"' in shown
    gone = jrun(cfg, "snapshot", "diff", a["id"], c["id"], "--record", f"Contacts/{contact}")
    assert gone["kind"] == "removed" and all("after" not in f for f in gone["fields"])

    listed = jrun(cfg, "snapshot", "list")
    assert [s["id"] for s in listed] == [a["id"], same["id"], c["id"]]
    assert [s["id"] for s in jrun(cfg, "snapshot", "list", "--tag", "daily")] == [a["id"]]
    assert jrun(cfg, "snapshot", "list", "--connection", "other") == []
    table = ok(run(cfg, "snapshot", "list")).stdout
    assert a["id"][:8] in table and "daily" in table
    header = ok(run(cfg, "snapshot", "show", c["id"][:8])).stdout
    assert c["id"] in header and "connection: sandbox" in header and "Leads" in header

    # restore to a file: exactly the text the mirror stores, one record per line
    out = tmp_path / "restored.jsonl"
    ok(run(cfg, "snapshot", "restore", c["id"], "--to", str(out)))
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {line["connection"] for line in lines} == {"sandbox"}
    restored = {(x["module"], x["record_id"]): x["data"] for x in lines}
    live = mirror_rows(cfg)
    assert restored.keys() == live.keys()
    for key, data in restored.items():
        text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert text == live[key]
    assert out.stat().st_mode & 0o077 == 0  # records are personal data: owner only
    fails(run(cfg, "snapshot", "restore", a["id"], "--to", str(out)), 2, "--force")
    assert len(out.read_text().splitlines()) == len(lines)  # untouched

    ok(run(cfg, "snapshot", "restore", a["id"], "--record", f"Leads/{lead}", "--to", str(out),
           "--force"))  # fmt: skip
    [one] = [json.loads(line) for line in out.read_text().splitlines()]
    assert (one["module"], one["record_id"]) == ("Leads", lead)
    assert one["data"]["company"] == old_company
    ok(run(cfg, "snapshot", "restore", c["id"], "--module", "Deals", "--to", str(out), "--force"))
    assert {json.loads(x)["module"] for x in out.read_text().splitlines()} == {"Deals"}

    missing = tmp_path / "missing.jsonl"
    fails(
        run(cfg, "snapshot", "restore", c["id"], "--record", f"Contacts/{contact}",
            "--to", str(missing)),
        2, f"Contacts/{contact}", "nothing written",
    )  # fmt: skip
    assert not missing.exists() and not list(tmp_path.glob(".missing.jsonl*"))


def test_forget_prune_verify(cfg, lc_sandbox):
    ok(run(cfg, "pull"))
    a = jrun(cfg, "snapshot", "create")[0]
    lc_sandbox.advance(60)
    assert lc_sandbox.touch("Leads", ids=lc_sandbox.ids("Leads"))  # every lead changes
    ok(run(cfg, "pull"))
    b = jrun(cfg, "snapshot", "create")[0]
    assert b["summary"]["changed"] > 0

    dry = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--dry-run")
    decided = {s["id"]: (s["keep"], s["reasons"]) for s in dry["snapshots"]}
    assert decided == {a["id"]: (False, []), b["id"]: (True, ["last snapshot"])}
    assert len(jrun(cfg, "snapshot", "list")) == 2  # a dry run removes nothing

    text = ok(run(cfg, "snapshot", "forget", "--keep-last", "1")).stdout
    assert "removed 1 of 2 snapshots" in text and "last snapshot" in text
    assert [s["id"] for s in jrun(cfg, "snapshot", "list")] == [b["id"]]

    pruned = jrun(cfg, "snapshot", "prune")
    assert pruned["packs_deleted"] >= 1 and pruned["bytes_after"] < pruned["bytes_before"]
    assert jrun(cfg, "snapshot", "prune")["bytes_after"] == pruned["bytes_after"]  # nothing left
    report = jrun(cfg, "snapshot", "verify", "--read-data")
    assert report["ok"] and report["snapshots_checked"] == 1
    assert "no errors" in ok(run(cfg, "snapshot", "verify")).stdout

    # no --keep-* and no [snapshots.keep]: nothing is forgotten
    fails(run(cfg, "snapshot", "forget"), 2, "[snapshots.keep]")
    fails(run(cfg, "snapshot", "forget", "--keep-within", "3x"), 2, "--keep-within")


def test_forget_uses_the_configured_keep_policy_and_named_ids(lc_config, lc_sandbox):
    cfg = with_snapshots(lc_config, "[snapshots.keep]\nlast = 2\n")
    ok(run(cfg, "pull"))
    ids = [jrun(cfg, "snapshot", "create", "--tag", f"t{i}")[0]["id"] for i in range(3)]
    out = jrun(cfg, "snapshot", "forget", "--dry-run")
    assert [s["keep"] for s in out["snapshots"]] == [True, True, False]  # newest first
    ok(run(cfg, "snapshot", "forget", ids[1][:8], "--prune"))
    assert [s["id"] for s in jrun(cfg, "snapshot", "list")] == [ids[0], ids[2]]
    # a Leads-only snapshot is a group of its own: --keep-last 1 keeps it and the newest full one
    ok(run(cfg, "snapshot", "create", "--module", "Leads"))
    decided = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--dry-run")["snapshots"]
    assert sum(s["keep"] for s in decided) == 2
    decided = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--group-by", "", "--dry-run")
    assert sum(s["keep"] for s in decided["snapshots"]) == 1


def test_verify_names_damaged_snapshot_and_records(cfg, tmp_path):
    ok(run(cfg, "pull"))
    snap = jrun(cfg, "snapshot", "create")[0]
    packs = sorted((tmp_path / "snapshots" / "packs").rglob("*"))
    pack = next(p for p in packs if p.is_file())
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    result = run(cfg, "snapshot", "verify", "--read-data")
    assert result.exit_code == 1, result.output
    assert f"snapshot {snap['id']} record " in result.stdout and "DAMAGED" in result.stdout
    report = json.loads(run(cfg, "snapshot", "verify", "--read-data", "--json").stdout)
    assert not report["ok"] and snap["id"] in report["damaged_snapshots"]
    lost = {(r["snapshot"], r["module"]) for r in report["damaged_records"]}
    assert len(lost) == 1 and next(iter(lost))[0] == snap["id"]
    # reading a damaged record is an error naming the pack, never a traceback
    module = next(iter(lost))[1]
    out = tmp_path / "out.jsonl"
    fails(run(cfg, "snapshot", "restore", "latest", "--module", module, "--to", str(out)), 1)
    assert not out.exists()


# ------------------------------------------------------------------------ encryption


def test_encrypted_repository_wrong_passphrase_and_passwd(lc_config, monkeypatch, tmp_path):
    cfg = with_snapshots(lc_config, 'passphrase = "env:SNAP_PASS"\n')
    monkeypatch.setenv("SNAP_PASS", PASS)
    assert "encrypted" in ok(run(cfg, "snapshot", "init")).stderr
    fails(run(cfg, "snapshot", "init"), 2, "already exists")
    ok(run(cfg, "pull"))
    a = jrun(cfg, "snapshot", "create")[0]
    repo = tmp_path / "snapshots"
    assert "encryption" in json.loads((repo / "config").read_text())
    stored = b"".join(p.read_bytes() for p in repo.rglob("*") if p.is_file())
    assert PASS.encode() not in stored

    before = sorted(p for p in repo.rglob("*"))
    monkeypatch.setenv("SNAP_PASS", "not the passphrase")
    for args in (("create", "--pull"), ("list",), ("show", "latest"), ("verify",)):
        err = fails(run(cfg, "snapshot", *args), 2, "wrong passphrase")
        assert "not the passphrase" not in err and PASS not in err
    assert sorted(p for p in repo.rglob("*")) == before  # nothing written, not even a lock

    monkeypatch.delenv("SNAP_PASS")
    fails(run(cfg, "snapshot", "list"), 2, "snapshots.passphrase", "SNAP_PASS")
    plain = cfg.with_name("plain.toml")  # the same repository, no passphrase configured
    plain.write_text(cfg.read_text().replace('passphrase = "env:SNAP_PASS"\n', ""))
    fails(run(plain, "snapshot", "list"), 2, "encrypted; give its passphrase")

    monkeypatch.setenv("SNAP_PASS", PASS)
    monkeypatch.setenv("SNAP_NEW", "a brand new passphrase")
    result = ok(run(cfg, "snapshot", "passwd", "--new-passphrase", "env:SNAP_NEW"))
    assert "a brand new" not in result.output + result.stderr
    fails(run(cfg, "snapshot", "list"), 2, "wrong passphrase")  # the old one is gone
    monkeypatch.setenv("SNAP_PASS", "a brand new passphrase")
    assert [s["id"] for s in jrun(cfg, "snapshot", "list")] == [a["id"]]
    assert ok(run(cfg, "snapshot", "verify", "--read-data")).stdout.endswith("no errors\n")
    # prompted (hidden, asked twice)
    from click.testing import CliRunner

    from crmsync.cli import cli

    result = CliRunner().invoke(
        cli, ["-c", str(cfg), "snapshot", "passwd"], input="third one\nthird one\n"
    )
    assert result.exit_code == 0, result.output
    assert "third one" not in result.output
    monkeypatch.setenv("SNAP_PASS", "third one")
    assert len(jrun(cfg, "snapshot", "list")) == 1


def test_passwd_on_an_unencrypted_repository_is_refused(cfg):
    assert "unencrypted" in ok(run(cfg, "snapshot", "init")).stderr
    fails(run(cfg, "snapshot", "passwd", "--new-passphrase", "env:X"), 2, "not encrypted")


# ------------------------------------------------------------------------ errors and config


def test_clear_errors_for_bad_ids_options_and_a_missing_repository(cfg, tmp_path):
    fails(run(cfg, "snapshot", "list"), 2, "no snapshot repository", "crmsync snapshot init")
    fails(run(cfg, "snapshot", "create", "sandbox"), 1, "crmsync pull sandbox")
    ok(run(cfg, "pull", "sandbox", "--module", "Leads"))
    fails(run(cfg, "snapshot", "create", "--module", "Nope"), 2, "'Nope'")
    fails(run(cfg, "snapshot", "create", "--tag", "a,b"), 2, "comma")
    fails(run(cfg, "snapshot", "create", "nowhere"), 2, "no connection named 'nowhere'")
    [leads] = jrun(cfg, "snapshot", "create", "--module", "Leads")
    assert leads["modules"] == ["Leads"]
    fails(run(cfg, "snapshot", "show", "beefbeef"), 2, "no snapshot 'beefbeef'")
    fails(run(cfg, "snapshot", "diff", leads["id"], "nope"), 2, "no snapshot 'nope'")
    fails(run(cfg, "snapshot", "diff", "latest", "latest", "--record", "Leads"), 2, "MODULE/")
    fails(run(cfg, "snapshot", "diff", "latest", "latest", "--record", "Leads/0"), 2, "neither")
    fails(run(cfg, "snapshot", "restore", "latest"), 2, "--to")
    fails(run(cfg, "snapshot", "forget", "latest", "--keep-last", "1"), 2, "not both")
    fails(run(cfg, "snapshot", "forget", "--group-by", "host"), 2, "--group-by")


def test_create_with_pull_and_more_connections(cfg):
    created = jrun(cfg, "snapshot", "create", "--pull")  # empty mirror: --pull fills it first
    assert [c["connection"] for c in created] == ["sandbox"]
    assert created[0]["records"] == len(mirror_rows(cfg))


def test_mirror_versions_stream_the_stored_text_and_skip_records_gone_from_the_crm(cfg, lc_sandbox):
    ok(run(cfg, "pull"))
    gone = lc_sandbox.ids("Deals")[0]
    lc_sandbox.delete_records("Deals", [gone])
    ok(run(cfg, "pull"))
    live = mirror_rows(cfg)
    with open_store(cfg.parent / "mirror.db") as store:
        versions = list(mirror_versions(store, "sandbox", ["Leads", "Deals"]))
    keys = [(v.module, v.record_id) for v in versions]
    assert keys == sorted(k for k in live if k[0] in ("Leads", "Deals"))
    assert ("Deals", gone) not in keys
    for v in versions:
        assert v.text == live[(v.module, v.record_id)]
        assert v.blob_id == hashlib.sha256(v.text.encode()).hexdigest()


BASE = """
[connections.sales]
connector = "memory"
url = "http://example.invalid"
"""


@pytest.mark.parametrize(
    ("table", "path", "phrase"),
    [
        ("bogus = 1", "snapshots.bogus", "unknown key"),
        ('repository = ""', "snapshots.repository", ""),
        ("passphrase = 'hunter2-literal'", "snapshots.passphrase", "literal secret"),
        ("passphrase = 'env:'", "snapshots.passphrase", "malformed"),
        ("[snapshots.keep]\nlast = -2", "snapshots.keep.last", ""),
        ("[snapshots.keep]\ndaily = 'x'", "snapshots.keep.daily", "expected integer"),
        ("[snapshots.keep]\nwithin = '3x'", "snapshots.keep.within", "1y2m3d4h"),
        ("[snapshots.keep]\nwithin = '1d2d'", "snapshots.keep.within", "at most once"),
        ("[snapshots.keep]\nhourly_ = 1", "snapshots.keep.hourly_", "unknown key"),
    ],
)
def test_snapshots_config_errors_name_the_key(registry, table, path, phrase):
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + "[snapshots]\n" + table + "\n", registry)
    assert err.value.path == path and phrase in str(err.value)
    assert err.value.exit_code == 2
    assert "hunter2" not in str(err.value)


def test_snapshots_config_defaults_and_paths(registry, tmp_path):
    config = parse_config(BASE, registry, path=tmp_path / "crmsync.toml")
    s = config.snapshots
    assert s.repository == tmp_path / "snapshots" and s.passphrase is None
    assert s.cache_dir is None and s.keep == {}
    text = BASE + (
        '[store]\npath = "state/m.db"\n[snapshots]\nrepository = "/srv/snaps"\n'
        'cache_dir = "c"\npassphrase = "keyring:crmsync/snapshots"\n'
        "[snapshots.keep]\ndaily = 7\nwithin = '1y2m'\ntags = ['keep']\n"
    )
    s = parse_config(text, registry, path=tmp_path / "crmsync.toml").snapshots
    assert s.repository == Path("/srv/snaps") and s.cache_dir == tmp_path / "c"
    assert s.passphrase is not None and s.passphrase.key_path == "snapshots.passphrase"
    assert s.keep == {"daily": 7, "within": "1y2m", "tags": ["keep"]}
    text = text.replace('repository = "/srv/snaps"\n', "")
    default = parse_config(text, registry, path=tmp_path / "crmsync.toml")
    assert default.snapshots.repository == tmp_path / "state" / "snapshots"


def test_bad_snapshots_config_exits_2_from_the_cli(lc_config):
    cfg = with_snapshots(lc_config, "[snapshots.keep]\nlast = 'many'\n")
    fails(run(cfg, "snapshot", "list"), 2, "snapshots.keep.last")


def test_pre_change_copies_of_apply_are_listed_and_grouped_apart(cfg):
    from tests.lifecycle_support import make_plan

    whole = jrun(cfg, "snapshot", "create", "--pull")[0]
    plan = make_plan(cfg, "--policy", "stale-leads")
    ok(run(cfg, "apply", plan["id"]))
    listed = jrun(cfg, "snapshot", "list")
    assert len(listed) == 2 and listed[0]["id"] == whole["id"]
    copy = listed[1]
    assert copy["tags"] == ["pre-change"] and copy["modules"] == ["Leads"]
    assert [s["id"] for s in jrun(cfg, "snapshot", "list", "--tag", "pre-change")] == [copy["id"]]
    # a newer copy of a few records never counts as the "last" snapshot of whole modules
    decided = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--group-by", "connection",
                   "--dry-run")  # fmt: skip
    assert all(s["keep"] for s in decided["snapshots"])
    assert [s["reasons"] for s in decided["snapshots"] if s["id"] == copy["id"]] == [
        ["pre-change copy"]
    ]
    # kept from a keep policy unless asked: restore --data reads them
    ok(run(cfg, "snapshot", "create"))
    kept = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--dry-run")
    assert copy["id"] not in kept["removed"] and whole["id"] in kept["removed"]
    included = jrun(cfg, "snapshot", "forget", "--keep-last", "1", "--group-by", "connection",
                    "--include-pre-change", "--dry-run")  # fmt: skip
    decided = {s["id"]: s["reasons"] for s in included["snapshots"]}
    assert decided[copy["id"]] == ["last snapshot"]  # the policy decides: its own group's last
