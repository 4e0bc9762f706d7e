"""Snapshot repository core: round trip, dedup, deltas, atomic create, corruption (issue 6)."""

from __future__ import annotations

import errno
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import zstandard

from crmsync.snapshots import (
    BlobNotFound,
    FormatVersionError,
    LocalBackend,
    Repository,
    RepositoryCorrupt,
    RepositoryWriteError,
    SnapshotNotFound,
)
from crmsync.snapshots import format as fmt
from crmsync.store.base import canonical_record

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_records(n: int, module: str = "Leads") -> dict[tuple[str, str], dict]:
    return {
        (module, f"r{i}"): {"id": f"r{i}", "name": f"客户 {i} — Ünïcode ✓", "n": i, "tags": ["a"]}
        for i in range(n)
    }


def rows(records: dict[tuple[str, str], dict], connection: str = "crm"):
    return [(connection, m, rid, data) for (m, rid), data in records.items()]


def create(repo: Repository, records, day: int = 0, **kw):
    kw.setdefault("parent", "latest")
    return repo.create(
        rows(records),
        connection="crm",
        modules=sorted({m for m, _ in records}) or ["Leads"],
        operator="tester",
        reason="test",
        time=T0 + timedelta(days=day),
        **kw,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalBackend(tmp_path / "repo"), pack_target=64 * 1024)


def test_round_trip_create_list_show_records_read(repo: Repository, tmp_path: Path) -> None:
    records = make_records(300)
    records[("Contacts", "c1")] = {"名字": "张三", "emoji": "🙂", "nested": {"z": 1, "a": [1, 2]}}
    info = create(repo, records, tags=("daily",))
    assert info.records == 301 and info.kind == "full" and info.tags == ("daily",)
    assert info.summary["added"] == 301 and info.summary["new_blobs"] == 301

    repo2 = Repository.open(LocalBackend(tmp_path / "repo"))  # fresh process view
    assert [s.id for s in repo2.list()] == [info.id]
    shown = repo2.show(info.id[:8])
    assert shown == info
    got = {(m, rid): blob for m, rid, blob in repo2.records(info.id)}
    assert set(got) == set(records)
    for key, data in records.items():
        assert got[key] == canonical_record(data)[1]
        assert repo2.read(got[key]) == data
    assert {rid for _, rid, _ in repo2.records(info.id, module="Contacts")} == {"c1"}
    assert (
        repo2.blob_of(info.id, "Contacts", "c1") == canonical_record(records[("Contacts", "c1")])[1]
    )
    assert repo2.verify(read_data=True).ok


def test_snapshot_objects_are_named_by_their_hash(repo: Repository, tmp_path: Path) -> None:
    create(repo, make_records(50))
    root = tmp_path / "repo"
    for sub in ("packs", "index", "snapshots"):
        files = [p for p in (root / sub).rglob("*") if p.is_file()]
        assert files, sub
        for p in files:
            assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    # a pack decompresses (plain zstd) to JSONL whose lines hash to the blob ids
    pack = next(p for p in (root / "packs").rglob("*") if p.is_file())
    raw = zstandard.ZstdDecompressor().decompress(pack.read_bytes())
    lines = raw.rstrip(b"\n").split(b"\n")
    assert {bytes.fromhex(hashlib.sha256(line).hexdigest()) for line in lines} <= set(
        repo.index.blobs
    )


def test_dedup_one_percent_changed_stores_one_percent_new_blobs(repo: Repository) -> None:
    records = make_records(2000)
    first = create(repo, records)
    assert repo.blob_count() == 2000
    for i in range(0, 2000, 100):  # 1% changed
        records[("Leads", f"r{i}")] = {**records[("Leads", f"r{i}")], "n": -i - 1}
    second = create(repo, records, day=1)
    assert second.parent == first.id and second.kind == "delta"
    assert second.summary["new_blobs"] == 20 and second.summary["changed"] == 20
    assert second.summary["unchanged"] == 1980
    assert repo.blob_count() == 2020
    third = create(repo, records, day=2)  # nothing changed: no new blobs, no new index
    assert third.summary["new_blobs"] == 0 and repo.blob_count() == 2020


def test_identical_records_share_one_blob(repo: Repository) -> None:
    same = {"status": "open"}
    info = create(repo, {("Leads", "a"): same, ("Leads", "b"): dict(same)})
    assert info.records == 2 and info.summary["new_blobs"] == 1


def test_delta_manifests_resolve_to_the_same_records_as_full(tmp_path: Path) -> None:
    deltas = Repository.init(LocalBackend(tmp_path / "d"), full_every=100)
    fulls = Repository.init(LocalBackend(tmp_path / "f"), full_every=1)
    records = make_records(500)
    ids_d, ids_f = [], []
    for day in range(6):
        if day:
            for i in range(day, 500, 97):
                records[("Leads", f"r{i}")] = {"id": f"r{i}", "v": day}
            records[("Leads", f"new{day}")] = {"id": f"new{day}"}
            records.pop(("Leads", f"r{day * 7}"), None)
        ids_d.append(create(deltas, records, day=day))
        ids_f.append(create(fulls, records, day=day))
    assert [s.kind for s in ids_d] == ["full"] + ["delta"] * 5
    assert [s.depth for s in ids_d] == [0, 1, 2, 3, 4, 5]
    assert all(s.kind == "full" for s in ids_f)
    assert ids_d[3].summary["removed"] == 1 and ids_d[3].summary["added"] == 1
    for d, f in zip(ids_d, ids_f, strict=True):
        assert sorted(deltas.records(d.id)) == sorted(fulls.records(f.id))
        assert d.records == f.records
    assert set(deltas.materialise(ids_d[-1].id)) == set(records)
    assert deltas.verify().ok


def test_full_manifest_every_n_and_when_deltas_grow_large(tmp_path: Path) -> None:
    repo = Repository.init(LocalBackend(tmp_path / "r"), full_every=3, full_fraction=0.5)
    records = make_records(100)
    kinds = [create(repo, records, day=d).kind for d in range(4)]
    assert kinds == ["full", "delta", "delta", "full"]  # every 3
    small = {**records, ("Leads", "r0"): {"n": -1}}  # 1 of 100 changed: a delta
    assert create(repo, small, day=4).kind == "delta"
    big = create(repo, {k: {**v, "n": -2} for k, v in records.items()}, day=5)
    assert big.kind == "full"  # 100% changed > 50%: a delta would not be smaller

    cum = Repository.init(LocalBackend(tmp_path / "c"), full_every=100, full_fraction=0.5)
    infos = [create(cum, records)]
    for day in range(1, 5):  # 20 of 100 records change a day: deltas of 20, 40, then 60 > 50
        for i in range(20):
            records[("Leads", f"r{(day * 20 + i) % 100}")] = {"day": day, "i": i}
        infos.append(create(cum, records, day=day))
    assert [(s.kind, s.depth) for s in infos] == [
        ("full", 0),
        ("delta", 1),
        ("delta", 2),
        ("full", 0),
        ("delta", 1),
    ]
    assert sorted(cum.records(infos[-1].id)) == sorted(
        (m, rid, canonical_record(d)[1]) for (m, rid), d in records.items()
    )


def test_interrupted_create_leaves_nothing_visible(repo: Repository, tmp_path: Path) -> None:
    first = create(repo, make_records(100))
    backend = repo.backend
    real_put = backend.put

    def failing_put(name: str, data: bytes) -> None:
        if name.startswith("snapshots/"):
            raise KeyboardInterrupt  # the process dies just before the commit point
        real_put(name, data)

    backend.put = failing_put  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        create(repo, make_records(150), day=1)
    backend.put = real_put  # type: ignore[method-assign]
    reopened = Repository.open(LocalBackend(tmp_path / "repo"))
    assert [s.id for s in reopened.list()] == [first.id]
    report = reopened.verify(read_data=True)
    assert report.ok, report.lines()
    assert not list((tmp_path / "repo").rglob(".tmp-*"))


def test_disk_full_during_create_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    records = make_records(100)
    first = create(repo, records)
    backend = repo.backend
    real_put = backend.put

    def full_disk(name: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    backend.put = full_disk  # type: ignore[method-assign]
    records[("Leads", "r1")] = {"changed": True}
    with pytest.raises(RepositoryWriteError, match=r"out of space.*no snapshot was created"):
        create(repo, records, day=1)
    backend.put = real_put  # type: ignore[method-assign]
    reopened = Repository.open(LocalBackend(tmp_path / "repo"))
    assert [s.id for s in reopened.list()] == [first.id]
    assert len(list(reopened.records(first.id))) == 100
    assert reopened.verify(read_data=True).ok
    # and the repository still accepts the snapshot once space is back
    assert create(reopened, records, day=1).summary["changed"] == 1


def _only_pack(tmp_path: Path) -> Path:
    packs = [p for p in (tmp_path / "repo" / "packs").rglob("*") if p.is_file()]
    assert len(packs) == 1
    return packs[0]


def test_corrupted_pack_named_with_snapshots_and_records(repo: Repository, tmp_path: Path) -> None:
    records = make_records(40)
    a = create(repo, records)
    b = create(repo, {**records, ("Leads", "extra"): {"x": 1}}, day=1)
    packs = sorted(
        (p for p in (tmp_path / "repo" / "packs").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    pack = packs[-1]  # day 0's pack: 40 records
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    assert repo.verify().ok  # structure only: the pack is present
    report = Repository.open(LocalBackend(tmp_path / "repo")).verify(read_data=True)
    assert not report.ok
    assert pack.name in report.damaged_packs
    assert set(report.damaged_snapshots) == {a.id, b.id}
    lost = {(r.snapshot, r.module, r.record_id) for r in report.damaged_records}
    assert lost == {(s.id, "Leads", f"r{i}") for s in (a, b) for i in range(40)}
    assert any(pack.name in line for line in report.lines())
    with pytest.raises(RepositoryCorrupt, match=pack.name):
        Repository.open(LocalBackend(tmp_path / "repo")).read(
            canonical_record(records[("Leads", "r0")])[1]
        )
    # the record in the intact pack is still readable
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    assert fresh.read(canonical_record({"x": 1})[1]) == {"x": 1}


def test_truncated_index_is_named(repo: Repository, tmp_path: Path) -> None:
    create(repo, make_records(50))
    index = next(p for p in (tmp_path / "repo" / "index").iterdir())
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(RepositoryCorrupt, match=f"index/{index.name}"):
        fresh.read(canonical_record(make_records(1)[("Leads", "r0")])[1])
    report = fresh.verify()
    assert f"index/{index.name}" in report.damaged_indexes
    assert len(report.damaged_records) == 50
    assert {r.problem for r in report.damaged_records} == {"missing"}


def test_truncated_index_with_valid_name_is_named(repo: Repository, tmp_path: Path) -> None:
    """A truncated object renamed to its new hash still fails: the zstd frame ends early."""
    create(repo, make_records(50))
    index = next(p for p in (tmp_path / "repo" / "index").iterdir())
    cut = index.read_bytes()[:-10]
    renamed = index.parent / hashlib.sha256(cut).hexdigest()
    index.unlink()
    renamed.write_bytes(cut)
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(RepositoryCorrupt, match=rf"index/{renamed.name}: (truncated|corrupt)"):
        fresh.blob_count()


def test_missing_blob_is_named(repo: Repository, tmp_path: Path) -> None:
    records = make_records(30)
    a = create(repo, records)
    # a manifest referring to a blob that no index has (e.g. lost index, damaged copy)
    ghost = hashlib.sha256(b"ghost").hexdigest()
    header = repo._header(a.id)
    body = b"".join(
        orjson.dumps(line) + b"\n"
        for line in [header, ["s", "Leads", "r0", ghost]]
    )  # fmt: skip
    data = zstandard.ZstdCompressor().compress(body)
    sid = hashlib.sha256(data).hexdigest()
    (tmp_path / "repo" / "snapshots" / sid).write_bytes(data)
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(BlobNotFound, match=ghost):
        fresh.read(ghost)
    report = fresh.verify()
    assert [(r.snapshot, r.record_id, r.blob_id, r.problem) for r in report.damaged_records] == [
        (sid, "r0", ghost, "missing")
    ]
    assert set(report.damaged_snapshots) == {sid}


def test_deleted_pack_names_the_pack(repo: Repository, tmp_path: Path) -> None:
    a = create(repo, make_records(10))
    pack = _only_pack(tmp_path)
    pack.unlink()
    report = Repository.open(LocalBackend(tmp_path / "repo")).verify()
    assert report.damaged_packs == {pack.name: "missing"}
    assert set(report.damaged_snapshots) == {a.id}


def test_manifest_from_newer_format_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    a = create(repo, make_records(5))
    header = {**repo._header(a.id), "version": fmt.FORMAT_VERSION + 1}
    data = zstandard.ZstdCompressor().compress(orjson.dumps(header) + b"\n")
    sid = hashlib.sha256(data).hexdigest()
    (tmp_path / "repo" / "snapshots" / sid).write_bytes(data)
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(
        FormatVersionError, match=rf"{sid}.*version {fmt.FORMAT_VERSION + 1}.*upgrade"
    ):
        fresh.show(sid)
    assert len(list(fresh.records(a.id))) == 5  # the others stay readable
    report = fresh.verify()
    assert "upgrade crmsync" in report.damaged_snapshots[sid]


def test_newer_repository_config_is_a_clear_error(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "repo")
    Repository.init(backend)
    cfg = orjson.loads(backend.get("config"))
    backend.put("config", orjson.dumps({**cfg, "version": 99}))
    with pytest.raises(FormatVersionError, match=r"config.*version 99"):
        Repository.open(backend)


def test_damaged_manifest_and_broken_chain(repo: Repository, tmp_path: Path) -> None:
    records = make_records(20)
    a = create(repo, records)
    records[("Leads", "r1")] = {"v": 2}
    b = create(repo, records, day=1)
    assert b.kind == "delta"
    (tmp_path / "repo" / "snapshots" / a.id).unlink()  # the full base is gone
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    with pytest.raises(RepositoryCorrupt, match=a.id):
        list(fresh.records(b.id))
    assert "missing" in fresh.verify().damaged_snapshots[b.id]


def test_errors_for_unknown_ids_and_bad_input(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFound):
        repo.show("latest")
    with pytest.raises(SnapshotNotFound):
        repo.show("deadbeef")
    with pytest.raises(BlobNotFound):
        repo.read("zz")
    with pytest.raises(ValueError, match="not 'crm'"):
        repo.create([("other", "Leads", "1", {})], connection="crm", modules=["Leads"],
                    operator="t", reason="r")  # fmt: skip
    with pytest.raises(ValueError, match="module 'Deals'"):
        repo.create([("crm", "Deals", "1", {})], connection="crm", modules=["Leads"],
                    operator="t", reason="r")  # fmt: skip
    with pytest.raises(Exception, match="already exists"):
        Repository.init(repo.backend)
    with pytest.raises(Exception, match="no snapshot repository"):
        Repository.open(LocalBackend(tmp_path / "nothing"))
    assert repo.list() == []


def test_local_backend_put_is_atomic_and_lists_complete_objects(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path)
    b.put("a/b/c", b"x")
    (tmp_path / "a" / "b" / ".tmp-123").write_bytes(b"partial")
    assert list(b.list()) == ["a/b/c"] and b.get("a/b/c") == b"x"
    b.put("a/b/c", b"y")
    assert b.get("a/b/c") == b"y"
    b.delete("a/b/c")
    b.delete("a/b/c")
    assert not b.exists("a/b/c")
    with pytest.raises(ValueError):
        b.put("../escape", b"")


def test_damaged_delta_manifest_names_it_and_its_descendants(
    repo: Repository, tmp_path: Path
) -> None:
    records = make_records(30)
    snaps = []
    for day in range(4):
        records[("Leads", f"r{day}")] = {"v": day}
        snaps.append(create(repo, records, day=day))
    assert [s.kind for s in snaps] == ["full", "delta", "delta", "delta"]
    path = tmp_path / "repo" / "snapshots" / snaps[2].id
    path.write_bytes(path.read_bytes() + b"junk")  # trailing garbage
    fresh = Repository.open(LocalBackend(tmp_path / "repo"))
    report = fresh.verify()
    assert set(report.damaged_snapshots) == {snaps[2].id, snaps[3].id}
    assert "does not match its name" in report.damaged_snapshots[snaps[2].id]
    assert len(list(fresh.records(snaps[1].id))) == 30  # older ones unaffected
    assert fresh.blob_of(snaps[1].id, "Leads", "nope") is None
    assert {rid for _, rid, _ in fresh.records(snaps[1].id, module="Leads")} == {
        f"r{i}" for i in range(30)
    }


def test_trailing_bytes_after_a_frame_are_damage(tmp_path: Path) -> None:
    data = fmt.compress(b'{"a":1}\n') + b"\x00"
    with pytest.raises(RepositoryCorrupt, match="trailing bytes"):
        fmt.decompress_full(data, "packs/xx/test")
    with pytest.raises(RepositoryCorrupt, match="trailing bytes"):
        list(fmt.iter_frame_lines(data, "snapshots/test"))


def test_failed_create_does_not_dedup_against_its_unindexed_packs(repo: Repository) -> None:
    backend = repo.backend
    real_put = backend.put

    def no_index(name: str, data: bytes) -> None:
        if name.startswith("index/"):
            raise OSError(errno.EIO, "I/O error")
        real_put(name, data)

    backend.put = no_index  # type: ignore[method-assign]
    with pytest.raises(RepositoryWriteError, match="index/"):
        create(repo, make_records(50))
    backend.put = real_put  # type: ignore[method-assign]
    assert repo.list() == [] and repo.blob_count() == 0
    info = create(repo, make_records(50))  # same Repository object: blobs written again
    assert info.summary["new_blobs"] == 50
    report = repo.verify(read_data=True)
    assert report.ok and report.unreferenced_packs == []  # same bytes -> same pack name
