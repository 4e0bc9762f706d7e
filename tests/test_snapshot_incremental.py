"""Incremental snapshots from the mirror (store schema 9): only the rows changed since the
parent are read, and the snapshot is the one a read of the whole mirror makes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmsync.hookspecs import PulledRecord
from crmsync.snapshots import LocalBackend, Repository
from crmsync.snapshots.erase import erase
from crmsync.snapshots.source import mirror_texts, mirror_versions, snapshot_mirror
from crmsync.store import open_store
from crmsync.store.base import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONN = "crm"
MODULES = ["Contacts", "Leads"]


class Reads:
    """Counts how the snapshot read the mirror: whole modules or changed rows."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.whole = self.changed = 0
        whole, changed = store.iter_record_texts, store.iter_changed_record_texts

        def count_whole(*a, **kw):
            self.whole += 1
            return whole(*a, **kw)

        def count_changed(*a, **kw):
            self.changed += 1
            return changed(*a, **kw)

        monkeypatch.setattr(store, "iter_record_texts", count_whole)
        monkeypatch.setattr(store, "iter_changed_record_texts", count_changed)

    def take(self) -> str:
        out = "changes" if self.changed and not self.whole else "whole"
        self.whole = self.changed = 0
        return out


def new_repo(tmp_path: Path, name: str) -> Repository:
    return Repository.init(
        LocalBackend(tmp_path / name), cache_dir=tmp_path / f"{name}-cache", pack_target=1500
    )


def pull(store: Store, module: str, records: dict[str, dict], deleted: list[str] = ()) -> None:
    run = store.start_run("pull", CONN, module)
    store.commit_page(
        CONN, module, run, [PulledRecord(rid, data) for rid, data in records.items()], deleted
    )


def by_mirror(repo: Repository, store: Store, day: int):
    return snapshot_mirror(
        repo, store, CONN, MODULES, operator="t", reason="r", time=T0 + timedelta(days=day)
    )


def by_whole_read(repo: Repository, store: Store, day: int):
    """The reference: every record of the mirror, as before store schema 9."""
    return repo.create(
        mirror_versions(store, CONN, MODULES, with_text=True),
        load_texts=mirror_texts(store, CONN), connection=CONN, modules=MODULES,
        operator="t", reason="r", time=T0 + timedelta(days=day),
    )  # fmt: skip


def records(repo: Repository, sid: str) -> dict:
    return {(r.module, r.record_id): r.data for r in repo.records(sid)}


def seed(store: Store, n: int = 40) -> None:
    for module in MODULES:
        pull(store, module, {f"{module[0]}{i:03d}": {"n": i, "v": 0} for i in range(n)})


def test_snapshots_of_changes_equal_whole_reads_over_random_days(tmp_path, monkeypatch):
    store = open_store(tmp_path / "store.db")
    seed(store)
    ours, reference = new_repo(tmp_path, "ours"), new_repo(tmp_path, "ref")
    reads = Reads(store, monkeypatch)
    rnd = random.Random(6)
    for day in range(10):
        if day:
            for module in MODULES:
                ids = [f"{module[0]}{i:03d}" for i in range(60)]
                changed = {rid: {"n": rid, "v": rnd.randrange(3)} for rid in rnd.sample(ids, 8)}
                pull(store, module, changed, deleted=rnd.sample(ids, 3))
        reads.take()
        a = by_mirror(ours, store, day)
        assert reads.take() == ("whole" if day == 0 else "changes")
        b = by_whole_read(reference, store, day)
        assert a.summary == b.summary and a.records == b.records
        assert a.id == b.id  # same manifest bytes: same bitmaps, same packs, same parent
        assert records(ours, a.id) == records(reference, b.id)
    assert ours.verify(read_data=True).ok


@pytest.fixture
def marked(tmp_path, monkeypatch):
    """A store and a repository with two snapshots taken from the mirror (the second from
    changes), and a reference repository holding the same by whole reads."""
    store = open_store(tmp_path / "store.db")
    seed(store)
    ours, ref = new_repo(tmp_path, "ours"), new_repo(tmp_path, "ref")
    reads = Reads(store, monkeypatch)
    for day in (0, 1):
        pull(store, "Leads", {"L001": {"n": day, "v": 9}}, deleted=["L002"] if day else [])
        reads.take()
        by_mirror(ours, store, day)
        assert reads.take() == ("whole" if day == 0 else "changes")
        by_whole_read(ref, store, day)
    return store, ours, ref, reads


def next_day_matches(store, ours, ref, reads, day: int = 2) -> str:
    pull(store, "Contacts", {"C005": {"n": 5, "v": day}, "C100": {"new": day}})
    reads.take()
    a = by_mirror(ours, store, day)
    how = reads.take()
    b = by_whole_read(ref, store, day)
    assert records(ours, a.id) == records(ref, b.id) and a.summary == b.summary
    return how


def test_the_mark_carries_over_to_the_next_snapshot(marked):
    assert next_day_matches(*marked) == "changes"


def test_a_snapshot_taken_without_the_store_in_between_makes_a_whole_read(marked, tmp_path):
    store, ours, ref, reads = marked
    for repo in (ours, ref):
        by_whole_read(repo, store, 2)  # e.g. another mirror's crmsync
    assert next_day_matches(store, ours, ref, reads, day=3) == "whole"
    assert next_day_matches(store, ours, ref, reads, day=4) == "changes"


def test_after_an_erasure_of_the_repository_the_next_snapshot_reads_everything(marked):
    store, ours, ref, reads = marked
    # erased from the snapshots only (the mirror still holds it): the full read writes it again
    for repo in (ours, ref):
        assert erase(repo, {CONN: {("Leads", "L003")}}).blobs_erased
    assert next_day_matches(store, ours, ref, reads) == "whole"


def test_deleting_mirror_rows_drops_the_connections_marks(marked):
    store, ours, ref, reads = marked
    store._db.execute("DELETE FROM mirror WHERE record_id = 'L004'")  # as a store erasure does
    assert store.snapshot_mark(CONN, MODULES, str(ours.config["id"])) is None
    assert next_day_matches(store, ours, ref, reads) == "whole"


def test_after_a_prune_the_next_snapshot_reads_everything(marked):
    store, ours, ref, reads = marked
    pull(store, "Leads", {f"L{i:03d}": {"n": i, "v": "all new"} for i in range(40)})
    for repo in (ours, ref):
        by_mirror(repo, store, 2)
        before = repo.index_names()
        repo.forget([s.id for s in repo.list()[:2]])
        assert repo.prune().packs_deleted  # the old Leads packs: a new index replaces all
        assert not set(before) & set(repo.index_names())
    assert next_day_matches(store, ours, ref, reads, day=3) == "whole"


def test_another_repository_gets_no_mark_of_the_first(marked, tmp_path):
    store, _ours, ref, reads = marked
    other = new_repo(tmp_path, "other")
    by_whole_read(other, store, 1)  # it has a parent, but the store never marked it
    assert next_day_matches(store, other, ref, reads) == "whole"


def test_a_renamed_mirror_row_drops_the_marks(marked):
    store, ours, _ref, _reads = marked
    store._db.execute("UPDATE mirror SET record_id = 'L999' WHERE record_id = 'L005'")
    assert store.snapshot_mark(CONN, MODULES, str(ours.config["id"])) is None


def test_changes_given_to_a_selection_parent_are_refused(marked):
    _store, ours, _ref, _reads = marked
    sel = ours.create(
        [], connection=CONN, modules=MODULES, operator="t", reason="r", selection=True,
        time=T0 + timedelta(days=5),
    )  # fmt: skip
    with pytest.raises(Exception, match="not a whole snapshot"):
        ours.create_from_changes(
            [], connection=CONN, modules=MODULES, parent=sel.id, operator="t", reason="r"
        )


def test_scrubbing_the_store_drops_the_marks(marked):
    store, ours, ref, reads = marked
    store.scrub()  # VACUUM may renumber rowids, by which marks tell new rows
    assert store.snapshot_mark(CONN, MODULES, str(ours.config["id"])) is None
    assert next_day_matches(store, ours, ref, reads) == "whole"
