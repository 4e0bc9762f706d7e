"""Snapshot repository core: round trip, dedup, atomic create, prune, locks, damage (issue 6)."""

from __future__ import annotations

import errno
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import zstandard

from crmsync.snapshots import (
    FormatVersionError,
    LocalBackend,
    Repository,
    RepositoryCorrupt,
    RepositoryLocked,
    RepositoryWriteError,
    SnapshotError,
    SnapshotNotFound,
    WrongPassphrase,
    record_version,
)
from crmsync.snapshots import format as fmt
from crmsync.snapshots.diff import MISSING, field_changes
from crmsync.snapshots.locks import RepositoryLock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Records = dict[tuple[str, str], dict]


def make_records(n: int, module: str = "Leads") -> Records:
    return {
        (module, f"r{i}"): {"id": f"r{i}", "name": f"客户 {i} — Ünïcode ✓", "n": i, "tags": ["a"]}
        for i in range(n)
    }


def create(repo: Repository, records: Records, day: int = 0, **kw):
    kw.setdefault("parent", "latest")
    return repo.create(
        [record_version(m, rid, data) for (m, rid), data in records.items()],
        connection="crm",
        modules=sorted({m for m, _ in records}) or ["Leads"],
        operator="tester",
        reason="test",
        time=T0 + timedelta(days=day),
        **kw,
    )


def open_fresh(tmp_path: Path, cache: str = "cache2", **kw) -> Repository:
    """Another process's view: nothing in memory, its own (empty) cache."""
    return Repository.open(LocalBackend(tmp_path / "repo"), cache_dir=tmp_path / cache, **kw)


def stored(repo: Repository, ref: str) -> Records:
    return {(r.module, r.record_id): r.data for r in repo.records(ref)}


def files(root: Path, sub: str) -> list[Path]:
    return sorted(p for p in (root / sub).rglob("*") if p.is_file())


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(
        LocalBackend(tmp_path / "repo"), pack_target=16 * 1024, cache_dir=tmp_path / "cache"
    )


def test_round_trip_create_list_show_records_get(repo: Repository, tmp_path: Path) -> None:
    records = make_records(300)
    records[("Contacts", "c1")] = {"名字": "张三", "emoji": "🙂", "nested": {"z": 1, "a": [1, 2]}}
    info = create(repo, records, tags=("daily", "daily"))
    assert info.records == 301 and info.tags == ("daily",) and info.parent is None
    assert info.summary["added"] == 301 and info.summary["new_blobs"] == 301

    fresh = open_fresh(tmp_path)
    assert [s.id for s in fresh.list()] == [info.id]
    assert fresh.show(info.id[:8]) == info
    assert stored(fresh, info.id) == records
    assert {r.record_id for r in fresh.records(info.id, module="Contacts")} == {"c1"}
    assert fresh.get("latest", "Contacts", "c1") == records[("Contacts", "c1")]
    assert fresh.get(info.id, "Contacts", "nope") is None
    assert fresh.verify(read_data=True).ok


def test_objects_are_named_by_their_hash_and_packs_are_jsonl(repo: Repository, tmp_path: Path):
    records = make_records(50)
    create(repo, records)
    root = tmp_path / "repo"
    for sub in ("packs", "index", "snapshots"):
        assert files(root, sub), sub
        for p in files(root, sub):
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    # readable without crmsync: zstd + JSON
    lines = b"".join(
        zstandard.ZstdDecompressor().decompress(p.read_bytes()) for p in files(root, "packs")
    ).splitlines()
    assert sorted(orjson.loads(line)["n"] for line in lines) == list(range(50))
    index = orjson.loads(
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(files(root, "index")[0].read_bytes())
    )
    assert sum(len(p["ids"]) for p in index["packs"]) == 50


def test_one_percent_changed_writes_one_percent_and_unchanged_costs_nothing(
    repo: Repository, tmp_path: Path
) -> None:
    records = make_records(2000)
    first = create(repo, records)
    for i in range(0, 2000, 100):
        records[("Leads", f"r{i}")] = {**records[("Leads", f"r{i}")], "n": -i - 1}
    del records[("Leads", "r7")]
    records[("Leads", "new")] = {"id": "new"}
    second = create(repo, records, day=1)
    assert second.parent == first.id
    assert second.summary == {
        **second.summary, "added": 1, "changed": 20, "removed": 1, "unchanged": 1979,
        "new_blobs": 21,
    }  # fmt: skip
    before = sum(p.stat().st_size for p in files(tmp_path / "repo", ""))
    third = create(repo, records, day=2)  # nothing changed: no pack, no index
    assert third.summary["new_blobs"] == 0 and third.summary["new_bytes"] == 0
    after = sum(p.stat().st_size for p in files(tmp_path / "repo", ""))
    assert after - before < 1000  # one small manifest of bitmaps
    fresh = open_fresh(tmp_path)
    assert stored(fresh, first.id) == {**make_records(2000)}
    assert stored(fresh, third.id) == records


def test_create_from_another_process_without_cache_matches(repo: Repository, tmp_path: Path):
    records = make_records(500)
    create(repo, records)
    records[("Leads", "r3")] = {"v": 3}
    other = open_fresh(tmp_path)  # no in-memory set, empty cache: re-reads the packs
    info = create(other, records, day=1)
    assert (info.summary["changed"], info.summary["unchanged"]) == (1, 499)
    nocache = Repository.open(LocalBackend(tmp_path / "repo"), use_cache=False)
    info = create(nocache, records, day=2)
    assert info.summary["new_blobs"] == 0


def test_diff_lists_added_changed_removed_and_field_changes(repo: Repository) -> None:
    records = make_records(50)
    a = create(repo, records)
    records[("Leads", "r5")] = {**records[("Leads", "r5")], "n": -5, "extra": True}
    del records[("Leads", "r7")]
    records[("Contacts", "c1")] = {"id": "c1"}
    b = create(repo, records, day=1, parent=None)  # modules differ: compare explicitly
    got = [(d.kind, d.module, d.record_id) for d in repo.diff(a.id, b.id)]
    assert got == [
        ("added", "Contacts", "c1"),
        ("changed", "Leads", "r5"),
        ("removed", "Leads", "r7"),
    ]
    changes = field_changes(repo.get(a.id, "Leads", "r5"), repo.get(b.id, "Leads", "r5"))
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("extra", MISSING, True),
        ("n", 5, -5),
    ]


def test_forget_and_prune_free_space_and_keep_snapshot_ids(repo: Repository, tmp_path: Path):
    records = make_records(400)
    a = create(repo, records)
    for i in range(300):  # 75% of day 0's versions replaced
        records[("Leads", f"r{i}")] = {"v": i}
    b = create(repo, records, day=1)
    before = sum(p.stat().st_size for p in files(tmp_path / "repo", "packs"))
    repo.forget([a.id])
    assert [s.id for s in repo.list()] == [b.id]
    dry = repo.prune(dry_run=True)
    assert sum(p.stat().st_size for p in files(tmp_path / "repo", "packs")) == before
    report = repo.prune()
    assert report.blobs_removed == dry.blobs_removed > 200  # packs >= half used are kept
    assert report.packs_rewritten + report.packs_deleted > 0
    after = sum(p.stat().st_size for p in files(tmp_path / "repo", "packs"))
    assert after < before
    fresh = open_fresh(tmp_path)
    assert [s.id for s in fresh.list()] == [b.id]  # the manifest did not change
    assert stored(fresh, b.id) == records
    assert fresh.verify(read_data=True).ok
    records[("Leads", "r399")] = {"v": "later"}
    c = create(fresh, records, day=2)  # creates keep working on a pruned repository
    assert c.summary["changed"] == 1 and stored(open_fresh(tmp_path, "c3"), c.id) == records


def test_prune_removes_leftovers_of_an_interrupted_create(repo: Repository, tmp_path: Path):
    create(repo, make_records(10))
    real_put = repo.backend.put

    def die_at_commit(name: str, data: bytes) -> None:
        if name.startswith("snapshots/"):
            raise KeyboardInterrupt
        real_put(name, data)

    repo.backend.put = die_at_commit  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        create(repo, make_records(30), day=1)
    repo.backend.put = real_put  # type: ignore[method-assign]
    assert len(files(tmp_path / "repo", "packs")) == 2
    report = repo.prune()
    assert report.packs_deleted == 1 and len(files(tmp_path / "repo", "packs")) == 1
    assert repo.verify(read_data=True).ok


def test_interrupted_create_leaves_nothing_visible(repo: Repository, tmp_path: Path) -> None:
    first = create(repo, make_records(100))
    real_put = repo.backend.put

    def failing_put(name: str, data: bytes) -> None:
        if name.startswith("snapshots/"):
            raise KeyboardInterrupt  # the process dies just before the commit point
        real_put(name, data)

    repo.backend.put = failing_put  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        create(repo, make_records(150), day=1)
    repo.backend.put = real_put  # type: ignore[method-assign]
    fresh = open_fresh(tmp_path)
    assert [s.id for s in fresh.list()] == [first.id]
    report = fresh.verify(read_data=True)
    assert report.ok, report.lines()
    assert not list((tmp_path / "repo").rglob(".tmp-*"))
    assert not files(tmp_path / "repo", "locks")


def test_disk_full_during_create_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    records = make_records(100)
    first = create(repo, records)
    real_put = repo.backend.put

    def full_disk(name: str, data: bytes) -> None:
        if name.startswith("locks/"):
            return real_put(name, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    repo.backend.put = full_disk  # type: ignore[method-assign]
    records[("Leads", "r1")] = {"changed": True}
    with pytest.raises(RepositoryWriteError, match=r"out of space.*no snapshot was created"):
        create(repo, records, day=1)
    repo.backend.put = real_put  # type: ignore[method-assign]
    fresh = open_fresh(tmp_path)
    assert [s.id for s in fresh.list()] == [first.id]
    assert len(stored(fresh, first.id)) == 100
    assert fresh.verify(read_data=True).ok
    assert create(repo, records, day=1).summary["changed"] == 1  # works once space is back


def test_corrupted_pack_is_named_with_its_snapshots_and_records(repo: Repository, tmp_path: Path):
    records = make_records(40)
    a = create(repo, records)
    b = create(repo, {**records, ("Leads", "extra"): {"x": 1}}, day=1)
    pack = max(files(tmp_path / "repo", "packs"), key=lambda p: p.stat().st_size)  # day 0's
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    assert repo.verify().ok  # structure only: the pack is present
    report = open_fresh(tmp_path).verify(read_data=True)
    assert not report.ok
    assert list(report.damaged_packs) == [pack.name]
    assert set(report.damaged_snapshots) == {a.id, b.id}
    lost = {(r.snapshot, r.module, r.record_id) for r in report.damaged_records}
    assert lost == {(s.id, "Leads", f"r{i}") for s in (a, b) for i in range(40)}
    assert any(pack.name in line for line in report.lines())
    with pytest.raises(RepositoryCorrupt, match=pack.name):
        open_fresh(tmp_path, "c3").get(a.id, "Leads", "r0")
    assert open_fresh(tmp_path, "c4").get(b.id, "Leads", "extra") == {"x": 1}  # intact pack


def test_truncated_index_is_named_and_its_snapshots_reported(repo: Repository, tmp_path: Path):
    a = create(repo, make_records(50))
    index = files(tmp_path / "repo", "index")[0]
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    fresh = open_fresh(tmp_path)
    with pytest.raises(RepositoryCorrupt, match=f"index/{index.name}"):
        fresh.get(a.id, "Leads", "r0")
    report = fresh.verify()
    assert f"index/{index.name}" in report.damaged_indexes
    assert a.id in report.damaged_snapshots and "no index lists" in report.damaged_snapshots[a.id]


def test_missing_pack_names_the_pack_and_records(repo: Repository, tmp_path: Path) -> None:
    a = create(repo, make_records(10))
    pack = files(tmp_path / "repo", "packs")[0]
    pack.unlink()
    report = open_fresh(tmp_path).verify()
    assert report.damaged_packs == {pack.name: "missing"}
    assert report.damaged_snapshots == {a.id: "10 records lost or damaged"}
    assert {r.problem for r in report.damaged_records} == {"missing"}


def test_manifest_from_newer_format_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    a = create(repo, make_records(5))
    raw = orjson.loads(repo.read_object(fmt.SNAPSHOTS + a.id, fmt.KIND_SNAPSHOT))
    data = fmt.compress(orjson.dumps({**raw, "version": fmt.FORMAT_VERSION + 1}))
    sid = hashlib.sha256(data).hexdigest()
    (tmp_path / "repo" / "snapshots" / sid).write_bytes(data)
    fresh = open_fresh(tmp_path)
    with pytest.raises(
        FormatVersionError, match=rf"{sid}.*version {fmt.FORMAT_VERSION + 1}.*upgrade"
    ):
        fresh.show(sid)
    assert len(stored(fresh, a.id)) == 5  # the others stay readable
    assert "upgrade crmsync" in fresh.verify().damaged_snapshots[sid]


def test_newer_repository_config_is_a_clear_error(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    cfg = orjson.loads(backend.get("config"))
    backend.put("config", orjson.dumps({**cfg, "version": 99}))
    with pytest.raises(FormatVersionError, match=r"config.*version 99"):
        Repository.open(backend)
    backend.put("config", b"{not json")
    with pytest.raises(RepositoryCorrupt, match="config: not valid JSON"):
        Repository.open(backend)


def test_damaged_manifest_is_named_and_others_stay_readable(repo: Repository, tmp_path: Path):
    records = make_records(20)
    a = create(repo, records)
    records[("Leads", "r1")] = {"v": 2}
    b = create(repo, records, day=1)
    path = tmp_path / "repo" / "snapshots" / a.id
    path.write_bytes(path.read_bytes() + b"junk")
    fresh = open_fresh(tmp_path)
    report = fresh.verify()
    assert list(report.damaged_snapshots) == [a.id]
    assert "does not match its name" in report.damaged_snapshots[a.id]
    assert stored(fresh, b.id) == records  # every manifest stands alone: no chain to break


def test_key_hash_does_not_depend_on_the_batch() -> None:
    from crmsync.snapshots.recordset import key_hashes

    alone = key_hashes(["Leads"], ["r3"])
    batched = key_hashes(["Leads", "Leads"], ["a-much-longer-record-id-than-r3", "r3"])
    assert (alone[0] == batched[1]).all()
    mixed = key_hashes(["Contacts", "Leads", "Leads"], ["r3", "r3", "r3\x01"])
    assert (mixed[1] == alone[0]).all()
    assert len({tuple(row) for row in mixed.tolist()}) == 3


def test_errors_for_unknown_ids_and_bad_input(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFound):
        repo.show("latest")
    with pytest.raises(SnapshotNotFound):
        repo.show("deadbeef")

    def make(rows, modules=("Leads",)):
        return repo.create(rows, connection="crm", modules=modules, operator="t", reason="r")

    with pytest.raises(ValueError, match="module 'Deals'"):
        make([record_version("Deals", "1", {})])
    with pytest.raises(ValueError, match="given twice"):
        make([record_version("Leads", "1", {}), record_version("Leads", "1", {"a": 1})])
    with pytest.raises(ValueError, match="non-empty line"):
        make([record_version("Leads", "a\nb", {})])
    bad = record_version("Leads", "1", {})._replace(blob_id="00" * 32)
    with pytest.raises(ValueError, match="not its SHA-256"):
        make([bad])
    with pytest.raises(ValueError, match="not a SHA-256"):
        make([bad._replace(blob_id="zz")])
    with pytest.raises(SnapshotError, match="already exists"):
        Repository.init(repo.backend)
    with pytest.raises(SnapshotError, match="no snapshot repository"):
        Repository.open(LocalBackend(tmp_path / "nothing"))
    assert repo.list() == []
    create(repo, make_records(3))
    with pytest.raises(ValueError, match="given twice"):  # duplicates found against the parent
        make([record_version("Leads", "r1", {}), record_version("Leads", "r1", {})])


def test_local_backend_put_is_atomic_and_lists_complete_objects(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path)
    b.put("a/b/c", b"x")
    (tmp_path / "a" / "b" / ".tmp-123").write_bytes(b"partial")
    assert list(b.list()) == ["a/b/c"] and b.get("a/b/c") == b"x" and b.size("a/b/c") == 1
    b.put("a/b/c", b"y")
    assert b.get("a/b/c") == b"y"
    b.delete("a/b/c")
    b.delete("a/b/c")
    assert not b.exists("a/b/c")
    with pytest.raises(ValueError):
        b.put("../escape", b"")


def test_trailing_bytes_after_a_frame_are_damage() -> None:
    data = fmt.compress(b'{"a":1}\n') + b"\x00"
    with pytest.raises(RepositoryCorrupt, match="trailing bytes"):
        fmt.decompress_full(data, "packs/xx/test")
    with pytest.raises(RepositoryCorrupt, match="truncated"):
        fmt.decompress_full(fmt.compress(b"x" * 1000)[:-5], "packs/xx/test")


def test_failed_create_does_not_reference_its_unindexed_packs(repo: Repository) -> None:
    real_put = repo.backend.put

    def no_index(name: str, data: bytes) -> None:
        if name.startswith("index/"):
            raise OSError(errno.EIO, "I/O error")
        real_put(name, data)

    repo.backend.put = no_index  # type: ignore[method-assign]
    with pytest.raises(RepositoryWriteError, match="index/"):
        create(repo, make_records(50))
    repo.backend.put = real_put  # type: ignore[method-assign]
    assert repo.list() == []
    info = create(repo, make_records(50))
    assert info.summary["new_blobs"] == 50
    report = repo.verify(read_data=True)
    assert report.ok and report.unreferenced_packs == []  # same bytes -> same pack names


def test_prune_refuses_while_a_create_holds_the_repository(repo: Repository) -> None:
    create(repo, make_records(5))
    with RepositoryLock(repo, exclusive=False):
        with pytest.raises(RepositoryLocked, match="in use by a snapshot create"):
            repo.prune()
        create(repo, make_records(6), day=1)  # creates share the repository
    assert repo.prune().packs_deleted == 0


def test_stale_lock_of_a_dead_process_is_taken_over(repo: Repository) -> None:
    import socket

    dead = {"exclusive": True, "host": socket.gethostname(), "pid": 2**22 + 12345,
            "time": datetime.now(UTC).isoformat()}  # fmt: skip
    repo.backend.put("locks/" + "ab" * 16, orjson.dumps(dead))
    create(repo, make_records(3))  # not blocked by the dead prune
    assert list(repo.backend.list("locks/")) == []


def test_encrypted_repository_round_trip_hides_content(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    repo = Repository.init(backend, passphrase="s3cret pass", kdf_n=2**10, cache_dir=tmp_path / "c")
    records = make_records(30)
    records[("Leads", "r1")]["email"] = "zhang.san@example.cn"
    a = create(repo, records)
    raw = b"".join(p.read_bytes() for p in files(tmp_path / "repo", ""))
    assert b"zhang.san" not in raw and "客户".encode() not in raw and b"s3cret" not in raw
    fresh = open_fresh(tmp_path, passphrase="s3cret pass")
    assert fresh.encrypted and stored(fresh, a.id) == records
    assert fresh.verify(read_data=True).ok
    with pytest.raises(WrongPassphrase) as err:
        open_fresh(tmp_path, passphrase="wrong")
    assert "wrong" not in str(err.value).replace("wrong passphrase", "")
    with pytest.raises(SnapshotError, match="encrypted; give its passphrase"):
        open_fresh(tmp_path)
    names = sorted(backend.list())
    with pytest.raises(WrongPassphrase):
        open_fresh(tmp_path, passphrase="nope")
    assert sorted(backend.list()) == names  # a wrong key writes nothing


def test_records_given_without_text_are_fetched_only_when_new_or_changed(repo: Repository):
    records = make_records(300)
    create(repo, records)
    records[("Leads", "r1")] = {"v": 1}
    records[("Leads", "new")] = {"v": "new"}
    asked: list[tuple[str, list[str]]] = []

    def load(module: str, ids: list[str]) -> dict[str, str]:
        asked.append((module, sorted(ids)))
        return {i: record_version(module, i, records[(module, i)]).text for i in ids}

    hashes_only = [record_version(m, r, d)._replace(text=None) for (m, r), d in records.items()]
    info = repo.create(hashes_only, connection="crm", modules=["Leads"], operator="t",
                       reason="r", load_texts=load)  # fmt: skip
    assert asked == [("Leads", ["new", "r1"])]
    assert (info.summary["changed"], info.summary["added"]) == (1, 1)
    assert stored(repo, info.id) == records

    records[("Leads", "r2")] = {"v": 2}
    changed = [record_version(m, r, d)._replace(text=None) for (m, r), d in records.items()]
    with pytest.raises(ValueError, match="Leads/r2 disappeared"):
        repo.create(changed, connection="crm", modules=["Leads"], operator="t", reason="r",
                    load_texts=lambda m, ids: {})  # fmt: skip
    with pytest.raises(ValueError, match="changed while the snapshot was taken"):
        repo.create(changed, connection="crm", modules=["Leads"], operator="t", reason="r",
                    load_texts=lambda m, ids: {i: '{"stale":1}' for i in ids})  # fmt: skip
    assert repo.list()[-1].id == info.id  # nothing committed by the failed creates
