"""`crmsync erase` end to end against the sandbox CRM: after an approved erasure the person's
e-mail and phone are nowhere — not in the CRM (its API), the mirror, the search index, any
snapshot (the raw repository bytes, every pack opened), or the SQLite files — while a record
under legal hold survives, restricted, with the reason audited. Plus the bad-input exits."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import zstandard
from click.testing import Result

from crmsync.compliance import holds
from crmsync.sandbox import SandboxCRM
from crmsync.snapshots import LocalBackend, Repository, crypto
from crmsync.snapshots import format as fmt
from crmsync.store import open_store
from tests.lifecycle_support import TOKEN, run, write_config

EMAIL = "li.na.erase@example.org"
SPELLINGS = [  # as the records hold them: the raw-byte checks look for each
    b"li.na.erase@example.org", b"LI.NA.ERASE@EXAMPLE.ORG", b"139 0000 4321",
    b"+86-139-0000-4321", b"13900004321",
]  # fmt: skip
PASS = "erasure e2e passphrase"


@pytest.fixture(autouse=True)
def _fast_kdf(monkeypatch):
    monkeypatch.setattr(crypto, "DEFAULT_N", crypto.MIN_N)


@pytest.fixture
def crm():
    sizes = {"Leads": 12, "Contacts": 12, "Deals": 6}
    with SandboxCRM(module_sizes=sizes, seed=9, token=TOKEN) as crm:
        crm.start()
        yield crm


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    return result


def fails(result: Result, code: int, phrase: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    assert phrase in result.stderr, result.stderr
    for spelling in SPELLINGS:  # the request's values are never echoed
        assert spelling.decode() not in result.output + result.stderr
    return result.stderr


def config_for(tmp_path: Path, crm: SandboxCRM, monkeypatch, encrypted: bool) -> Path:
    monkeypatch.setenv("LC_TOKEN", TOKEN)
    monkeypatch.setenv("SNAP_PASS", PASS)
    path = write_config(tmp_path, crm.api_url, policies=[])
    extra = '\n[snapshots]\ncache_dir = "cache"\n'
    if encrypted:
        extra += 'passphrase = "env:SNAP_PASS"\n'
    extra += '\n[erasure]\nmax_records = 5\ndefault_region = "CN"\n'
    path.write_text(path.read_text() + extra)
    return path


def person(crm: SandboxCRM) -> dict[str, str]:
    """The person: a lead and a contact (two spellings each), a contact that will exist only
    in an older snapshot, and a deal named by id that a legal hold covers."""
    lead, contact, old = crm.ids("Leads")[3], crm.ids("Contacts")[4], crm.ids("Contacts")[5]
    deal = crm.ids("Deals")[1]
    now = crm.clock.iso()
    crm.store.update("Leads", int(lead), {"email": EMAIL, "phone": "139 0000 4321"}, now)
    crm.store.update(
        "Contacts", int(contact),
        {"email": EMAIL.upper(), "phone": "+86-139-0000-4321"}, now,
    )  # fmt: skip
    crm.store.update("Contacts", int(old), {"email": EMAIL, "phone": "13900004321"}, now)
    return {"lead": lead, "contact": contact, "old": old, "deal": deal}


def repository_bytes(root: Path, passphrase: str | None) -> bytes:
    """Every file as stored, and every object opened (decrypted) and decompressed."""
    repo = Repository.open(LocalBackend(root), passphrase=passphrase, use_cache=False)
    kinds = {"packs": fmt.KIND_PACK, "index": fmt.KIND_INDEX, "snapshots": fmt.KIND_SNAPSHOT}
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out.append(data)
        top = path.relative_to(root).parts[0]
        if top in kinds:
            opened = repo.codec.open(data, kinds[top], path.name)
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(opened))
    return b"\n".join(out)


def store_bytes(tmp_path: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(tmp_path.glob("mirror.db*")))


def leaks(data: bytes) -> list[bytes]:
    low = data.lower()
    return [s for s in SPELLINGS if s.lower() in low]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_after_erase_the_person_is_nowhere_and_the_held_record_survives(
    tmp_path, crm, monkeypatch, encrypted
):
    cfg = config_for(tmp_path, crm, monkeypatch, encrypted)
    ids = person(crm)
    ok(run(cfg, "pull"))
    ok(run(cfg, "snapshot", "create"))
    # the old contact leaves the CRM and the mirror: only the first snapshot still holds it
    crm.delete_records("Contacts", [ids["old"]])
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        db.execute("DELETE FROM mirror WHERE record_id = ? AND module = 'Contacts'", (ids["old"],))
    crm.clock.advance(60)
    crm.store.update("Leads", int(ids["lead"]), {"city": "Hangzhou"}, crm.clock.iso())
    ok(run(cfg, "pull"))
    ok(run(cfg, "snapshot", "create"))  # the lead's second version
    hits = json.loads(ok(run(cfg, "search", "li.na.erase", "--json")).stdout)
    assert {h["record_id"] for h in hits} == {ids["lead"], ids["contact"]}
    with open_store(tmp_path / "mirror.db") as store:
        holds.add_hold(
            store, kind="records", reason="litigation 42", operator="legal",
            records=[("sandbox", "Deals", ids["deal"])],
        )  # fmt: skip
    passphrase = PASS if encrypted else None
    assert leaks(repository_bytes(tmp_path / "snapshots", passphrase))  # positive controls
    assert leaks(store_bytes(tmp_path))

    plan = json.loads(ok(run(
        cfg, "erase", "--email", EMAIL.title(), "--phone", "+86 139-0000-4321",
        "--record", f"sandbox:Deals:{ids['deal']}", "--basis", "GDPR-17-1-b",
        "--operator", "alice", "--json",
    )).stdout)  # fmt: skip
    parts = {p["part"]: {r["record_id"]: r for r in p["records"]} for p in plan["parts"]}
    assert set(parts["erase:sandbox/Leads"]) == {ids["lead"]}
    assert set(parts["erase:sandbox/Contacts"]) == {ids["contact"], ids["old"]}
    assert parts["erase:sandbox/Contacts"][ids["old"]]["found"] == ["snapshots"]
    assert parts["erase:sandbox/Leads"][ids["lead"]]["versions"] == 2
    assert parts["restrict:sandbox/Deals"][ids["deal"]]["block"]["kind"] == "hold"
    assert plan["request"] == {"emails": 1, "phones": 1, "records": 1}
    assert not leaks(store_bytes(tmp_path)[:0] + json.dumps(plan).encode())

    fails(run(cfg, "erase", "--apply", plan["id"], "--operator", "alice"), 3, "approval")
    assert crm.record("Leads", ids["lead"]) is not None  # nothing happened
    ok(run(cfg, "approve", plan["id"], "--operator", "bob"))
    done = json.loads(ok(run(cfg, "erase", "--apply", plan["id"], "--operator", "bob",
                             "--json")).stdout)  # fmt: skip
    assert done["erased"] == 3 and done["restricted"] == 1 and done["status"] == "applied"

    # the CRM (its API), the mirror, the search index
    assert crm.record("Leads", ids["lead"]) is None
    assert crm.record("Contacts", ids["contact"]) is None
    assert crm.record("Deals", ids["deal"])["status"] == "voided"  # held: restricted only
    assert json.loads(ok(run(cfg, "search", "li.na.erase", "--json",
                             "--all-snapshots")).stdout) == []  # fmt: skip
    assert json.loads(ok(run(cfg, "search", "13900004321", "--json")).stdout) == []
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        rows = db.execute(
            "SELECT module, record_id, restricted_reason FROM mirror WHERE record_id IN (?,?,?,?)",
            (ids["lead"], ids["contact"], ids["old"], ids["deal"]),
        ).fetchall()
        assert [(m, r) for m, r, _ in rows] == [("Deals", ids["deal"])]
        assert "hold" in rows[0][2]
        erased = db.execute(
            "SELECT record_id, record_ref, detail FROM audit_log WHERE action = 'erase'"
        ).fetchall()
        restrict = db.execute(
            "SELECT record_id, detail FROM audit_log WHERE action = 'restrict'"
        ).fetchall()
        named = db.execute(
            "SELECT count(*) FROM audit_log WHERE record_id IN (?, ?, ?)",
            (ids["lead"], ids["contact"], ids["old"]),
        ).fetchone()[0]
    refs = {hashlib.sha256(ids[k].encode()).hexdigest() for k in ("lead", "contact", "old")}
    assert {r for _, r, _ in erased} == refs and all(rid is None for rid, _, _ in erased)
    assert all(json.loads(d)["basis"] == "GDPR-17-1-b" for _, _, d in erased)
    assert named == 0  # earlier entries of the erased records are redacted too
    assert restrict[0][0] == ids["deal"] and json.loads(restrict[0][1])["block"] == "hold"

    # the raw bytes: every snapshot file (and pack opened), the database and its WAL
    assert leaks(repository_bytes(tmp_path / "snapshots", passphrase)) == []
    assert leaks(store_bytes(tmp_path)) == []
    repo = Repository.open(LocalBackend(tmp_path / "snapshots"), passphrase=passphrase,
                           use_cache=False)  # fmt: skip
    first = repo.list()[0].id
    assert repo.get(first, "Deals", ids["deal"]) is not None  # the held record survives
    assert repo.get(first, "Leads", ids["lead"]) is None
    ok(run(cfg, "snapshot", "prune"))  # the held record survives a prune too
    assert Repository.open(LocalBackend(tmp_path / "snapshots"), passphrase=passphrase,
                           use_cache=False).get(first, "Deals", ids["deal"])  # fmt: skip
    ok(run(cfg, "snapshot", "verify", "--read-data"))
    ok(run(cfg, "audit", "verify"))
    ok(run(cfg, "pull"))  # nothing comes back
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        assert (
            db.execute(
                "SELECT count(*) FROM mirror WHERE record_id IN (?, ?)",
                (ids["lead"], ids["contact"]),
            ).fetchone()[0]
            == 0
        )

    again = run(cfg, "erase", "--apply", plan["id"], "--operator", "bob")
    ok(again)  # re-running an applied plan changes nothing
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        assert (
            db.execute("SELECT count(*) FROM audit_log WHERE action = 'erase'").fetchone()[0] == 3
        )


def test_bad_requests_exit_with_clear_messages_and_change_nothing(tmp_path, crm, monkeypatch):
    cfg = config_for(tmp_path, crm, monkeypatch, encrypted=False)
    person(crm)
    ok(run(cfg, "pull"))
    base = ["--basis", "GDPR-17-1-b", "--no-pull"]
    fails(run(cfg, "erase", "--email", "nobody@nowhere.example", *base), 3, "nothing to erase")
    many = [f"sandbox:Leads:{i}" for i in crm.ids("Leads")[:6]]
    fails(run(cfg, "erase", *[a for r in many for a in ("--record", r)], *base), 3,
          "more than the limit of 5")  # fmt: skip
    fails(run(cfg, "erase", "--email", EMAIL, "--max", "1", *base), 3, "limit of 1")
    fails(run(cfg, "erase", "--email", EMAIL, "--connection", "nope", *base), 2, "nope")
    fails(run(cfg, "erase", "--record", "nope:Leads:1", *base), 2, "no connection named")
    fails(run(cfg, "erase", "--email", "not-an-address", *base), 2, "not an e-mail")
    fails(run(cfg, "erase", "--phone", "12", *base), 2, "not a phone number")
    fails(run(cfg, "erase", "--email", EMAIL, "--basis", "because"), 2, "legal-basis code")
    fails(run(cfg, "erase", "--apply", "no-such-plan"), 2, "no plan")
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        assert db.execute("SELECT count(*) FROM plans").fetchone()[0] == 0
    assert crm.record("Leads", crm.ids("Leads")[3]) is not None
    shown = ok(run(cfg, "erase", "--email", EMAIL.upper(), *base)).stdout  # the text view
    assert "erase: sandbox/Leads, 1 record" in shown and "crmsync approve" in shown
    assert "fields email" in shown and EMAIL not in shown.lower()


def test_an_interrupted_apply_finishes_when_run_again_and_a_late_hold_wins(
    tmp_path, crm, monkeypatch
):
    import crmsync.snapshots.erase as snapshot_erase

    cfg = config_for(tmp_path, crm, monkeypatch, encrypted=False)
    ids = person(crm)
    ok(run(cfg, "pull"))
    ok(run(cfg, "snapshot", "create"))
    other = crm.ids("Leads")[0]  # an old duplicate plan quoted the person in another's detail
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        db.execute(
            "INSERT INTO plan_items (plan_id, policy, connection, module, record_id,"
            " planned_hash, before_status, detail) VALUES ('old', 'dups', 'sandbox', 'Leads',"
            " ?, 'x', 'active', ?)",
            (other, json.dumps({"cluster": EMAIL.upper(), "survivor": ids["lead"]})),
        )
        # a legacy copy (store < 5) of a record nothing else holds any more
        legacy = {"id": "9999", "email": EMAIL, "name": "old copy"}
        db.execute("INSERT INTO snapshot_objects VALUES ('h9999', ?)", (json.dumps(legacy),))
        db.execute(
            "INSERT INTO snapshot_records VALUES ('legacy', 'sandbox', 'Leads', '9999',"
            " 'h9999', 'active')"
        )
    plan = json.loads(ok(run(cfg, "erase", "--email", EMAIL, "--basis", "PIPL-47-1-3",
                             "--operator", "alice", "--json")).stdout)  # fmt: skip
    assert {p["part"] for p in plan["parts"]} == {"erase:sandbox/Leads", "erase:sandbox/Contacts"}
    legacy_item = next(r for p in plan["parts"] for r in p["records"] if r["record_id"] == "9999")
    assert legacy_item["found"] == ["legacy copies"]
    ok(run(cfg, "approve", plan["id"], "--operator", "bob"))
    fails(run(cfg, "apply", plan["id"], "--operator", "bob"), 2, "crmsync erase --apply")
    with open_store(tmp_path / "mirror.db") as store:  # placed after the plan was approved
        holds.add_hold(
            store, kind="records", reason="audit 7", operator="legal",
            records=[("sandbox", "Contacts", ids["contact"])],
        )  # fmt: skip
    real = snapshot_erase.erase

    def stops(*args, **kwargs):
        raise OSError("the repository's disk went away")

    monkeypatch.setattr(snapshot_erase, "erase", stops)
    assert run(cfg, "erase", "--apply", plan["id"], "--operator", "bob").exit_code == 1
    assert crm.record("Leads", ids["lead"]) is None  # the CRM part was done
    monkeypatch.setattr(snapshot_erase, "erase", real)
    done = json.loads(ok(run(cfg, "erase", "--apply", plan["id"], "--operator", "bob",
                             "--json")).stdout)  # fmt: skip
    assert done["status"] == "applied" and done["erased"] == 3 and done["crm_deleted"] == 0
    assert crm.write_count("Leads", ids["lead"]) == 1  # deleted once, not again
    assert crm.record("Contacts", ids["contact"])["status"] == "voided"  # held: restricted
    assert crm.record("Contacts", ids["old"]) is None
    repo = Repository.open(LocalBackend(tmp_path / "snapshots"), use_cache=False)
    sid = repo.list()[0].id
    assert repo.get(sid, "Leads", ids["lead"]) is None
    assert repo.get(sid, "Contacts", ids["contact"])["email"] == EMAIL.upper()
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        states = dict(db.execute(
            "SELECT record_id, state FROM plan_items WHERE plan_id = ?", (plan["id"],)
        ).fetchall())  # fmt: skip
    assert states == {
        ids["lead"]: "done", ids["old"]: "done", ids["contact"]: "restricted", "9999": "done"
    }  # fmt: skip
    assert plan["id"] in ok(run(cfg, "plans")).stdout  # an erasure plan lists and shows
    assert "erase:sandbox/Leads" in ok(run(cfg, "plans", "show", plan["id"])).stdout
    with sqlite3.connect(tmp_path / "mirror.db") as db:
        assert db.execute("SELECT detail FROM plan_items WHERE plan_id = 'old'").fetchone() == (
            None,
        )
        assert db.execute("SELECT count(*) FROM snapshot_objects").fetchone() == (0,)


def test_a_statutory_minimum_turns_erasure_into_restriction(tmp_path, crm, monkeypatch):
    cfg = config_for(tmp_path, crm, monkeypatch, encrypted=False)
    cfg.write_text(
        cfg.read_text() + '\n[[retention.rules]]\nconnection = "sandbox"\nmodule = "Contacts"\n'
        'purge_voided_after = "180d"\nkeep_at_least = "10y"\nkeep_basis = "HGB-257"\n'
    )
    ids = person(crm)
    ok(run(cfg, "pull"))
    plan = json.loads(ok(run(cfg, "erase", "--phone", "13900004321", "--basis", "GDPR-17-1-a",
                             "--no-pull", "--json")).stdout)  # fmt: skip
    parts = {p["part"]: {r["record_id"]: r for r in p["records"]} for p in plan["parts"]}
    assert set(parts["erase:sandbox/Leads"]) == {ids["lead"]}
    blocked = parts["restrict:sandbox/Contacts"]
    assert set(blocked) == {ids["contact"], ids["old"]}
    assert {b["block"]["kind"] for b in blocked.values()} == {"statutory"}
    assert {b["block"]["basis"] for b in blocked.values()} == {"HGB-257"}
