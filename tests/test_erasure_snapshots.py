"""Erasure in the snapshot repository (crmsync.snapshots.erase): packs rewritten without the
erased versions, tombstones in the index, snapshot ids unchanged, verify clean, old readers
refused clearly, prune and re-runs keep it that way; plain and encrypted repositories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from crmsync.snapshots import LocalBackend, Repository, crypto, record_version
from crmsync.snapshots import format as fmt
from crmsync.snapshots.erase import erase, scan, versions
from crmsync.snapshots.errors import FormatVersionError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "erase.me@example.org"
PASS = "erasure test passphrase"


def records(n: int, *, with_secret: bool, name: str = "A") -> dict[tuple[str, str], dict]:
    out = {
        ("Leads", f"r{i}"): {"id": f"r{i}", "name": f"{name} {i}", "email": f"p{i}@x.org"}
        for i in range(n)
    }
    if with_secret:
        out[("Leads", "r7")]["email"] = SECRET
    return out


def create(repo: Repository, recs: dict, day: int) -> str:
    return repo.create(
        [record_version(m, rid, data) for (m, rid), data in recs.items()],
        connection="crm", modules=["Leads"], operator="t", reason="test",
        time=T0 + timedelta(days=day),
    ).id  # fmt: skip


def raw_bytes(root: Path, repo: Repository) -> bytes:
    """Every file of the repository as stored, plus every object opened and decompressed."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out.append(data)
        rel = path.relative_to(root).as_posix()
        kind = {"packs": fmt.KIND_PACK, "index": fmt.KIND_INDEX, "snapshots": fmt.KIND_SNAPSHOT}
        top = rel.split("/", 1)[0]
        if top in kind:
            opened = repo.codec.open(data, kind[top], rel)
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(opened))
    return b"\n".join(out)


@pytest.mark.parametrize("passphrase", [None, PASS])
def test_erase_rewrites_packs_keeps_snapshot_ids_and_verifies(tmp_path, monkeypatch, passphrase):
    monkeypatch.setattr(crypto, "DEFAULT_N", crypto.MIN_N)
    root = tmp_path / "repo"
    repo = Repository.init(
        LocalBackend(root), passphrase=passphrase, pack_target=2048,
        cache_dir=tmp_path / "cache", kdf_n=crypto.MIN_N,
    )  # fmt: skip
    first = create(repo, records(40, with_secret=True), 0)
    changed = records(40, with_secret=True, name="B")  # r7 changed: a second version
    second = create(repo, changed, 1)
    assert SECRET.encode() in raw_bytes(root, repo)  # positive control
    before = [s.id for s in repo.list()]

    found = set(scan(repo, lambda line: SECRET.encode() in line, ["crm"]))
    assert found == {("crm", "Leads", "r7")}
    where = versions(repo, {"crm": {("Leads", "r7")}})
    assert where[("crm", "Leads", "r7")].blobs == 2
    assert where[("crm", "Leads", "r7")].snapshots == {first, second}

    report = erase(repo, {"crm": {("Leads", "r7")}})
    assert report.blobs_erased == 2 and report.snapshots_affected == {first, second}
    assert report.per_record == {("crm", "Leads", "r7"): 2}

    fresh = Repository.open(LocalBackend(root), passphrase=passphrase, cache_dir=tmp_path / "c2")
    assert [s.id for s in fresh.list()] == before  # manifests untouched
    assert SECRET.encode() not in raw_bytes(root, fresh)
    assert b'"r7"' not in raw_bytes(root, fresh)  # the id left the index too (a ref remains)
    assert fresh.get(first, "Leads", "r7") is None
    assert fresh.get(second, "Leads", "r8") == changed[("Leads", "r8")]
    assert len(list(fresh.records(second))) == 39
    check = fresh.verify(read_data=True)
    assert check.ok and check.erased_versions == 2, check.lines()
    assert fresh.config["version"] == fmt.ERASED_VERSION

    # again: nothing left to do; a later snapshot, forget and prune keep the tombstones valid
    assert erase(fresh, {"crm": {("Leads", "r7")}}).blobs_erased == 0
    third = create(fresh, records(40, with_secret=False, name="C"), 2)
    fresh.forget([first])
    fresh.prune()
    assert fresh.verify(read_data=True).ok
    assert fresh.get(third, "Leads", "r7") == {"id": "r7", "name": "C 7", "email": "p7@x.org"}
    assert fresh.get(second, "Leads", "r7") is None


def test_an_older_reader_refuses_an_erased_repository_and_reads_an_unerased_one(
    tmp_path, monkeypatch
):
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root), pack_target=2048, cache_dir=tmp_path / "cache")
    sid = create(repo, records(20, with_secret=True), 0)
    assert repo.config["version"] == fmt.BASE_VERSION  # nothing erased: still version 1
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 1)  # a crmsync that knows version 1 only
    old = Repository.open(LocalBackend(root), cache_dir=tmp_path / "c2")
    assert old.get(sid, "Leads", "r7")["email"] == SECRET
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 2)
    erase(repo, {"crm": {("Leads", "r7")}})
    monkeypatch.setattr(fmt, "FORMAT_VERSION", 1)
    with pytest.raises(FormatVersionError, match="upgrade crmsync"):
        Repository.open(LocalBackend(root), cache_dir=tmp_path / "c3")


def test_an_interrupted_erasure_is_finished_by_running_it_again(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root), pack_target=2048, cache_dir=tmp_path / "cache")
    sid = create(repo, records(40, with_secret=True), 0)
    deleted = []

    def fail_on_pack_delete(name: str) -> None:
        if name.startswith(fmt.PACKS):
            raise OSError("stopped")
        deleted.append(name)
        LocalBackend.delete(repo.backend, name)

    monkeypatch.setattr(repo.backend, "delete", fail_on_pack_delete)
    with pytest.raises(OSError):
        erase(repo, {"crm": {("Leads", "r7")}})
    monkeypatch.undo()
    again = Repository.open(LocalBackend(root), cache_dir=tmp_path / "c2")
    erase(again, {"crm": {("Leads", "r7")}})
    assert SECRET.encode() not in raw_bytes(root, again)
    assert again.verify(read_data=True).ok
    assert again.get(sid, "Leads", "r6") is not None


def test_versions_a_held_snapshot_uses_are_kept(tmp_path):
    root = tmp_path / "repo"
    repo = Repository.init(LocalBackend(root), pack_target=2048, cache_dir=tmp_path / "cache")
    held = create(repo, records(30, with_secret=True), 0)
    later = create(repo, records(30, with_secret=True, name="B"), 1)  # r7's second version
    assert versions(repo, {"crm": {("Leads", "r7")}}, [held[:8]])[("crm", "Leads", "r7")].kept == 1
    report = erase(repo, {"crm": {("Leads", "r7")}}, keep=[held[:8]])
    assert (report.blobs_erased, report.blobs_kept) == (1, 1)
    assert repo.get(held, "Leads", "r7")["email"] == SECRET  # the hold ranks first
    assert repo.get(later, "Leads", "r7") is None
    assert repo.verify(read_data=True).ok
