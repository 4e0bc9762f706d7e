"""``crmsync erase`` at scale: finding a person in the mirror, and what erasing costs the store.

    python benches/erase.py                        # 100k sandbox records
    python benches/erase.py --records 1000000      # the issue's target size
    python benches/erase.py --db /tmp/e.db --rebuild --repeat 5 --snapshots

Workload: the bundled sandbox's seeded records (``RecordGenerator``: Leads, Contacts, Accounts,
Deals, about 60 % Chinese, e-mails and phones in several spellings) written straight into a
store at the current schema with its search index built (cached at ``--db``; ``--rebuild``
makes it again). The person is a real record's e-mail plus another record's phone.

- **find**: :func:`crmsync.compliance.erasure_store.find_in_mirror` (the SQL pre-filter
  function over each row's JSON bytes, candidates parsed and checked exactly), best of
  ``--repeat``; the **baseline** is what the pre-filter saves: every row parsed and its values
  keyed in Python (:meth:`Matcher.fields` on each record);
- **erase**: on a copy of the store, :func:`erase_local` of the records found (secure_delete,
  search index entries), then :func:`scrub` split into its parts: FTS5 'optimize', VACUUM,
  WAL checkpoint (TRUNCATE); file size before and after;
- ``--snapshots``: a whole snapshot of the mirror in a repository beside the store, then
  :func:`crmsync.snapshots.erase.scan` for the person (every pack read) and
  :func:`crmsync.snapshots.erase.erase` of the records found.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from crmsync.compliance.erasure_match import Matcher, parse_subject
from crmsync.compliance.erasure_store import erase_local, find_in_mirror
from crmsync.sandbox.data import RecordGenerator, split_sizes
from crmsync.store import open_store
from crmsync.store.base import canonical_record

CONNECTION = "sandbox"


def build(path: Path, n: int) -> None:
    tmp = path.with_suffix(".tmp")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    store = open_store(tmp)
    db: sqlite3.Connection = store._db  # type: ignore[attr-defined]  # the bench seeds SQLite directly
    db.execute("PRAGMA synchronous = OFF")
    started = time.perf_counter()
    rows = []
    for rec in RecordGenerator(seed=42, sizes=split_sizes(n)):
        text, digest = canonical_record(rec.data)
        rows.append((rec.module, rec.data["id"], rec.data["modified_at"], rec.data["status"],
                     text, digest))  # fmt: skip
        if len(rows) >= 20000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    print(f"  {n} records written in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    store.update_search_index()
    print(f"  search index built in {time.perf_counter() - started:.1f} s")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    tmp.rename(path)


def _insert(db: sqlite3.Connection, rows: list[tuple[str, ...]]) -> None:
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO mirror (connection, module, record_id, modified_at, status, data,"
        " content_hash, first_seen_at, updated_at) VALUES"
        f" ('{CONNECTION}', ?, ?, ?, ?, ?, ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        rows,
    )
    db.execute("COMMIT")


def the_person(db: sqlite3.Connection) -> tuple[str, str]:
    """A real e-mail and a real phone (of two records): what an erasure request names. Picked
    a third of the way into the matching records, so any mirror size has one."""

    def pick(module: str, field: str, like: str) -> str:
        where = f"FROM mirror WHERE module = '{module}' AND json_extract(data, '$.{field}') LIKE ?"
        (n,) = db.execute(f"SELECT count(*) {where}", (like,)).fetchone()
        if n == 0:
            raise SystemExit(f"no {module} record has a {field} like {like!r}: seed more records")
        row = db.execute(
            f"SELECT json_extract(data, '$.{field}') {where} LIMIT 1 OFFSET ?", (like, n // 3)
        ).fetchone()
        return row[0]

    return pick("Contacts", "email", "%@%"), pick("Leads", "phone", "+86%")


def best(repeat: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return min(times), out


def timed(label: str, fn) -> object:
    started = time.perf_counter()
    out = fn()
    print(f"  {label:<34} {time.perf_counter() - started:8.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--snapshots", action="store_true")
    args = ap.parse_args()
    base = args.db or Path(f"/tmp/crmsync-erase-bench-{args.records}.db")
    if args.rebuild or not base.exists():
        print(f"building {base} ({args.records} records)")
        build(base, args.records)
    work = base.with_name(base.stem + "-work.db")
    for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(base, work)
    store = open_store(work)
    db: sqlite3.Connection = store._db  # type: ignore[attr-defined]  # the bench seeds SQLite directly
    email, phone = the_person(db)
    subject = parse_subject([email], [phone], [], region="CN", connections=[CONNECTION])
    matcher = Matcher(subject)
    print(f"{args.records} mirror records; person: 1 e-mail, 1 phone")

    find_s, hits = best(args.repeat, lambda: list(find_in_mirror(store, matcher, [CONNECTION])))
    found = len(hits)  # type: ignore[arg-type]
    candidates = db.execute(
        "SELECT count(*) FROM mirror WHERE crmsync_erase_candidate(CAST(data AS BLOB))"
    ).fetchone()[0]

    def baseline() -> int:
        n = 0
        for (data,) in db.execute("SELECT data FROM mirror"):
            n += bool(matcher.fields(orjson.loads(data)))
        return n

    base_s, base_found = best(1, baseline)
    assert base_found == found, (base_found, found)
    print(f"  find (SQL pre-filter)              {find_s:8.2f} s  ({found} records,"
          f" {candidates} candidates parsed)")  # fmt: skip
    print(f"  baseline (parse every record)      {base_s:8.2f} s  ratio {base_s / find_s:.1f}x")

    refs = [(h.connection, h.module, h.record_id) for h in hits]  # type: ignore[union-attr]
    size_before = work.stat().st_size
    timed("erase_local (secure_delete, FTS)", lambda: erase_local(store, refs, "bench"))
    db.execute("PRAGMA secure_delete = ON")
    timed("FTS5 optimize", lambda: db.execute(
        "INSERT INTO mirror_fts (mirror_fts) VALUES ('optimize')"))  # fmt: skip
    timed("VACUUM", lambda: db.execute("VACUUM"))
    db.execute("PRAGMA secure_delete = OFF")
    timed("WAL checkpoint (TRUNCATE)", lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    print(f"  store file {size_before / 1e6:.0f} MB -> {work.stat().st_size / 1e6:.0f} MB")

    if args.snapshots:
        from crmsync.snapshots import LocalBackend, Repository
        from crmsync.snapshots.erase import erase, scan
        from crmsync.snapshots.source import mirror_versions

        root = work.with_name(work.stem + "-snapshots")
        shutil.rmtree(root, ignore_errors=True)
        repo = Repository.init(LocalBackend(root), cache_dir=root.with_suffix(".cache"))
        shutil.copyfile(base, work)  # the mirror before the erasure
        store.close()
        store = open_store(work)
        modules = ["Accounts", "Contacts", "Deals", "Leads"]
        timed("snapshot create (whole mirror)", lambda: repo.create(
            mirror_versions(store, CONNECTION, modules), connection=CONNECTION,
            modules=modules, operator="bench", reason="bench"))  # fmt: skip

        def line_match(line: bytes) -> bool:
            return matcher.candidate(line) and bool(matcher.fields(orjson.loads(line)))

        got = timed("snapshot scan (every pack)", lambda: set(scan(repo, line_match,
                                                                   [CONNECTION])))  # fmt: skip
        targets = {CONNECTION: {(m, r) for _c, m, r in got}}  # type: ignore[union-attr]
        report = timed("snapshot erase (rewrite packs)", lambda: erase(repo, targets))
        print(
            f"  {len(got)} records, {report.blobs_erased} versions erased,"  # type: ignore
            f" {report.packs_rewritten} packs rewritten"
        )  # type: ignore[union-attr]
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root.with_suffix(".cache"), ignore_errors=True)
    store.close()
    for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
