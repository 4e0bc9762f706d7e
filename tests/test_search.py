"""`crmsync search` against the sandbox CRM: Chinese substrings and 2-character names, English
in any case, filters, ranking, snippets, JSON/CSV, the index following pulls, snapshots, the
store migration, and bad input (exit 2, no traceback)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import Result

from crmsync.hookspecs import PulledRecord
from crmsync.sandbox import SandboxCRM
from crmsync.sandbox.data import CN_TRADE_NAMES, EN_COMPANY_WORDS, MODULES
from crmsync.search import parse_query
from crmsync.search.query import QuerySyntaxError, SearchQuery
from crmsync.search.text import record_text
from crmsync.store import open_store
from crmsync.store.migrations import SCHEMA_VERSION
from tests.lifecycle_support import TOKEN, run, write_config
from tests.test_store_migrations import make_store_at

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Path, SandboxCRM]]:
    """One pulled sandbox for the tests that only read (each test that changes data makes
    its own with lc_sandbox/lc_config)."""
    with pytest.MonkeyPatch.context() as mp, SandboxCRM(records=300, seed=11, token=TOKEN) as crm:
        mp.setenv("LC_TOKEN", TOKEN)
        crm.start()
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), crm.api_url)
            assert run(config, "pull").exit_code == 0
            yield config, crm


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    return result


def search(config: Path, *args: str) -> list[dict]:
    return json.loads(ok(run(config, "search", *args, "--json", "--limit", "1000")).stdout)


def ids(rows: list[dict]) -> set[str]:
    return {r["record_id"] for r in rows}


def records(crm: SandboxCRM) -> Iterator[tuple[str, dict]]:
    for module in MODULES:
        for rid in crm.ids(module):
            yield module, crm.record(module, rid)


def containing(crm: SandboxCRM, text: str) -> set[str]:
    """Records with ``text`` in a string value but the owner's (case-insensitively): the
    reference."""
    folded = text.lower()
    return {
        rec["id"]
        for _, rec in records(crm)
        if any(
            isinstance(v, str) and folded in v.lower()
            for v in (*(v for k, v in rec.items() if k != "owner"), *rec.get("tags", []))
        )
    }


def fails(result: Result, *phrases: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    return result.stderr


def edit(crm: SandboxCRM, module: str, record_id: str, **changes: object) -> None:
    assert crm.store.update(module, int(record_id), changes, crm.advance(60)) is not None


# --------------------------------------------------------------------------- the query language


def test_query_language_reads_words_phrases_or_and_exclusions():
    assert parse_query('acme "north wind" OR globex -test NOT "old co"') == SearchQuery(
        groups=(("acme",), ("north wind", "globex")), excluded=("test", "old co")
    )
    assert parse_query("a1 AND b2 or c3") == SearchQuery((("a1",), ("b2",), ("or",), ("c3",)))
    assert parse_query("  ") is None
    assert parse_query("e-mail (415) x:y*").groups == (("e-mail",), ("(415)",), ("x:y*",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"acme', "unbalanced quote"),
        ("OR acme", "OR needs a search term before it"),
        ("acme OR", "OR at the end"),
        ("acme OR OR globex", "two operators"),
        ("acme -", "'-' must be followed"),
        ("-acme", "only excluded terms"),
        ("acme OR -globex", "OR cannot join an excluded"),
        ('acme ""', "empty phrase"),
        ("x", "too short"),
    ],
)
def test_unreadable_queries_are_refused_with_a_reason(text, message):
    with pytest.raises(QuerySyntaxError, match=message) as info:
        parse_query(text)
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------- matching


def test_chinese_matches_substrings_of_names_and_companies(shared):
    config, crm = shared
    trade = next(t for t, _ in CN_TRADE_NAMES if len(containing(crm, t)) >= 2)  # 2 characters
    rows = search(config, trade)
    assert ids(rows) == containing(crm, trade)
    assert all(f"[{trade}]" in r["snippet"] for r in rows)
    value = next(
        v for _, rec in records(crm) for v in rec.values()
        if isinstance(v, str) and trade in v and len(v) >= 6
    )  # fmt: skip
    middle = value[1:-2]  # neither the start nor the end of the value
    assert ids(search(config, middle)) == containing(crm, middle)


def test_two_character_chinese_names_and_single_characters_match(shared):
    config, crm = shared
    person = next(
        rec["full_name"]
        for _, rec in records(crm)
        if len(rec.get("full_name", "")) == 2 and not rec["full_name"].isascii()
    )
    rows = search(config, person)
    assert ids(rows) == containing(crm, person)
    assert rows[0]["name"].replace(" ", "") == person
    assert ids(search(config, person[0])) == containing(crm, person[0])


def test_english_matches_in_any_case_and_inside_words(shared):
    config, crm = shared
    word = next(w for w in EN_COMPANY_WORDS if len(containing(crm, w)) >= 2)
    expected = containing(crm, word)
    assert ids(search(config, word.upper())) == expected
    assert ids(search(config, word.lower()[1:])) == containing(crm, word[1:])
    phrase = search(config, f'"{word} "')
    assert ids(phrase) == containing(crm, f"{word} ") and ids(phrase) <= expected


def test_or_and_exclusions_combine_like_the_reference(shared):
    config, crm = shared
    a, b = [w for w in EN_COMPANY_WORDS if containing(crm, w)][:2]
    assert ids(search(config, f"{a} OR {b}")) == containing(crm, a) | containing(crm, b)
    both = containing(crm, a) | containing(crm, b)
    minus = next(s for s in ("Ltd", "Inc", "LLC", "Corp", "Group") if containing(crm, s) & both)
    assert ids(search(config, f"{a} OR {b} -{minus}")) == both - containing(crm, minus)
    assert search(config, "zzqqxx-nothing-like-it") == []


def test_the_index_holds_each_records_text(shared):
    config, _ = shared
    assert_index_in_step(config.parent / "mirror.db")


def test_text_rules_skip_dates_ids_and_system_keys_and_rank_name_keys():
    name, body = record_text(
        {
            "$state": "hidden",
            "Account_Name": {"id": "7", "name": "Acme"},
            "Owner": {"id": "8", "name": "Bob"},
            "created_at": "2024-01-01T00:00:00Z",
            "id": "123",
            "tags": ["VIP", ""],
        }
    )
    assert (name, body) == ("7\nAcme\n\n", "VIP\n\n")


def test_better_matches_rank_first_and_carry_a_snippet(lc_sandbox, lc_config):
    leads = lc_sandbox.ids("Leads")
    edit(lc_sandbox, "Leads", leads[0], source="Quuxbridge referral")
    edit(lc_sandbox, "Leads", leads[1], company="Quuxbridge Holdings")
    ok(run(lc_config, "pull"))
    rows = search(lc_config, "quuxbridge")
    assert [r["record_id"] for r in rows] == [leads[1], leads[0]]
    assert rows[0]["snippet"] == "[Quuxbridge] Holdings"
    assert rows[0]["score"] < rows[1]["score"]


# --------------------------------------------------------------------------- filters


def test_status_module_tag_and_field_filters(shared):
    config, crm = shared
    everyone = {rec["id"]: (module, rec) for module, rec in records(crm)}
    archived = search(config, "--status", "archived")
    assert ids(archived) == {i for i, (_, r) in everyone.items() if r["status"] == "archived"}
    assert {r["status"] for r in archived} == {"archived"}
    two = search(config, "--status", "archived", "--status", "voided")
    assert ids(two) == {i for i, (_, r) in everyone.items() if r["status"] != "active"}
    assert len(search(config, "--status", "any")) == len(everyone)
    tagged = search(config, "--tag", "vip", "--module", "Leads")
    assert ids(tagged) == {
        i for i, (m, r) in everyone.items() if m == "Leads" and "VIP" in r["tags"]
    }
    field = search(config, "--field", "lead_status=Lost")
    assert ids(field) == {i for i, (_, r) in everyone.items() if r.get("lead_status") == "Lost"}
    owner = next(r["owner"] for _, r in everyone.values())
    assert ids(search(config, "--field", f"owner={owner}")) == {
        i for i, (_, r) in everyone.items() if r["owner"] == owner
    }
    amount = next(r["amount"] for _, r in everyone.values() if r.get("amount"))
    assert ids(search(config, "--field", f"amount={int(amount)}")) == {
        i for i, (_, r) in everyone.items() if r.get("amount") == amount
    }


def test_since_and_until_read_modified_or_created_times(shared):
    config, crm = shared
    everyone = [rec for _, rec in records(crm)]
    got = search(config, "--since", "2025-01-01", "--until", "2025-06-30")
    assert ids(got) == {
        r["id"] for r in everyone if "2025-01-01" <= r["modified_at"][:10] <= "2025-06-30"
    }
    created = search(config, "--time-field", "created", "--until", "2023-12-31T12:00:00Z")
    assert ids(created) == {r["id"] for r in everyone if r["created_at"] < "2023-12-31T12:00:00Z"}
    assert created and all(r["created_at"] < "2023-12-31T12:00:00Z" for r in created)


# --------------------------------------------------------------------------- output


def test_json_and_csv_output(shared):
    config, crm = shared
    word = next(w for w in EN_COMPANY_WORDS if containing(crm, w))
    rows = json.loads(ok(run(config, "search", word, "--json", "--limit", "3")).stdout)
    assert 0 < len(rows) <= 3
    assert {"source", "record_id", "module", "status", "name", "snippet", "score", "data"} <= set(
        rows[0]
    )
    assert rows[0]["source"] == "mirror"
    text = ok(run(config, "search", word, "--csv", "--limit", "3")).stdout
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["record_id"] for r in table] == [r["record_id"] for r in rows]
    assert table[0]["snippet"] == rows[0]["snippet"]
    plain = ok(run(config, "search", word, "--limit", "3")).stdout.splitlines()
    assert plain[0].split("\t")[:3] == ["module", "record", "status"]
    assert len(plain) == len(rows) + 1


# --------------------------------------------------------------------------- the index follows


def test_index_follows_edits_and_deletions_pulled_from_the_crm(lc_sandbox, lc_config):
    ok(run(lc_config, "pull"))
    leads = lc_sandbox.ids("Leads")
    edited, gone = leads[3], leads[4]
    old = lc_sandbox.record("Leads", edited)["company"]
    assert edited in ids(search(lc_config, f'"{old}"'))
    edit(lc_sandbox, "Leads", edited, company="Vortexia 星河数据有限公司")
    lc_sandbox.delete_records("Leads", [gone])
    ok(run(lc_config, "pull"))
    assert ids(search(lc_config, "vortexia")) == {edited}
    assert ids(search(lc_config, "星河")) == {edited}
    assert edited not in ids(search(lc_config, f'"{old}"'))
    purged = search(lc_config, "--status", "purged")  # gone from the CRM, kept in the mirror
    assert ids(purged) == {gone} and purged[0]["status"] == "purged"
    assert purged[0]["deleted_in_crm_at"]
    assert gone not in ids(search(lc_config, "--status", "active"))
    assert_index_in_step(lc_config.parent / "mirror.db")


def assert_index_in_step(path: Path) -> None:
    """The index holds exactly what indexing the mirror now would: every (trigram, record,
    column, offset) of every record's text, and nothing waits in the queue."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM mirror_fts_pending").fetchone() == (0,)
        db.executescript(
            """
            CREATE VIRTUAL TABLE temp.fresh USING fts5(name, body, tokenize = 'trigram');
            CREATE VIRTUAL TABLE temp.fresh_terms USING fts5vocab(temp, fresh, 'instance');
            CREATE VIRTUAL TABLE temp.live_terms USING fts5vocab(main, mirror_fts, 'instance');
            """
        )
        db.executemany(
            "INSERT INTO temp.fresh (rowid, name, body) VALUES (?, ?, ?)",
            [
                (rowid, *record_text(orjson.loads(data)))
                for rowid, data in db.execute("SELECT rowid, data FROM mirror")
            ],
        )
        live = db.execute("SELECT * FROM temp.live_terms").fetchall()
        fresh = db.execute("SELECT * FROM temp.fresh_terms").fetchall()
    finally:
        db.close()
    assert live and sorted(live) == sorted(fresh)


def test_older_stores_are_searchable_after_migration(tmp_path):
    rows = [
        ("Accounts", "1", "active", {"id": "1", "name": "南京金桥管理咨询有限公司"}),
        ("Leads", "2", "archived", {"id": "2", "full_name": "张三"}),
    ]
    for version in (5, 6):  # the versions before search (7)
        path = tmp_path / f"v{version}.db"
        make_store_at(path, version)
        db = sqlite3.connect(path, isolation_level=None)
        db.executemany(
            "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
            " content_hash, first_seen_at, updated_at, seen_run)"
            " VALUES ('s', ?, ?, '2024-01-01T00:00:00Z', ?, ?, 'h', 'x', 'x', 1)",
            [(m, rid, status, json.dumps(data)) for m, rid, status, data in rows],
        )
        db.close()
        with open_store(path) as store:
            assert store.schema_version() == SCHEMA_VERSION
            from crmsync.search import SearchRequest
            from crmsync.search.finder import find

            def found(text: str, store=store) -> list[str]:
                return [r.record_id for r in find(store, SearchRequest(parse_query(text))).rows]

            assert found("金桥") == ["1"]
            assert found("张三") == ["2"]
            run_id = store.start_run("pull", "s", "Leads")
            store.commit_page("s", "Leads", run_id, [PulledRecord("2", {"full_name": "李四"})])
            assert found("张三") == [] and found("李四") == ["2"]


# --------------------------------------------------------------------------- snapshots


def test_include_snapshots_finds_older_versions_and_records_gone_from_the_mirror(
    lc_sandbox, lc_config
):
    ok(run(lc_config, "pull"))
    ok(run(lc_config, "snapshot", "create"))
    leads = lc_sandbox.ids("Leads")
    changed, erased = leads[5], leads[6]
    old = lc_sandbox.record("Leads", changed)["company"]
    edit(lc_sandbox, "Leads", changed, company="Renamed Widgets Ltd")
    ok(run(lc_config, "pull"))
    db = sqlite3.connect(lc_config.parent / "mirror.db")
    try:  # as an erasure would: the record leaves the mirror, the snapshot keeps it
        erased_name = json.loads(
            db.execute("SELECT data FROM mirror WHERE record_id = ?", (erased,)).fetchone()[0]
        )["full_name"]
        with db:
            db.execute("DELETE FROM mirror WHERE record_id = ?", (erased,))
    finally:
        db.close()
    assert changed not in ids(search(lc_config, f'"{old}"'))
    rows = search(lc_config, f'"{old}"', "--include-snapshots")
    snap = [r for r in rows if r["record_id"] == changed]
    assert len(snap) == 1 and snap[0]["source"].startswith("snapshot ")
    assert snap[0]["snapshot_id"].startswith(snap[0]["source"].split()[1])
    assert snap[0]["status"] == lc_sandbox.record("Leads", changed)["status"]
    assert f"[{old}]" in snap[0]["snippet"]
    gone = search(lc_config, f'"{erased_name}"', "--include-snapshots", "--status", "purged")
    assert [(r["record_id"], r["status"]) for r in gone] == [(erased, "purged")]
    unchanged = search(lc_config, "--include-snapshots", "--module", "Accounts")
    assert all(r["source"] == "mirror" for r in unchanged)  # same versions: reported once
    table = ok(run(lc_config, "search", f'"{old}"', "--all-snapshots")).stdout
    assert table.splitlines()[0].startswith("source\t")
    assert_index_in_step(lc_config.parent / "mirror.db")  # the erased record left the index


def test_include_snapshots_without_a_repository_exits_2(shared):
    config, _ = shared
    fails(run(config, "search", "acme", "--include-snapshots"), "no snapshot repository")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (['"unbalanced'], "bad search query: unbalanced quote"),
        (["acme OR"], "bad search query: OR at the end"),
        (["OR"], "bad search query"),
        (["-"], "'-' must be followed"),
        (["a"], "too short"),
        (["acme", "--since", "last tuesday"], "bad time"),
        (["acme", "--until", "2025-13-40"], "bad time"),
        (["acme", "--field", "industry"], "expected KEY=VALUE"),
        (["acme", "--field", "=x"], "expected KEY=VALUE"),
        (["acme", "--status", "gone"], "--status"),
        (["acme", "--json", "--csv"], "exclude each other"),
        (["zzqqxx", "--connection", "nope"], "no connection named 'nope'"),
        (["zzqqxx", "--module", "Nope"], "no module 'Nope'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(shared, args, message):
    config, _ = shared
    fails(run(config, "search", *args), message)
