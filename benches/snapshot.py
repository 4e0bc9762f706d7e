"""Benchmark: snapshot repository size, time and memory over simulated daily snapshots,
side by side with restic backing up the same day's JSONL export.

    python benches/snapshot.py                                   # 100k records, 5 days
    python benches/snapshot.py --records 1000000 --days 30       # the issue's workload
    python benches/snapshot.py --no-restic --keep /tmp/snapbench # keep both repositories

Workload. Day 0 is the bundled sandbox's seeded records (``RecordGenerator``, all four
modules). Each later day changes 1% of the records (modified_at to that day, often the owner,
the lead status / deal stage, sometimes a phone, a tag, a title or an amount), deletes 0.1% and
adds 0.2% new ones (a random existing record's shape with a new id, name, email and phone).
Rows are picked with a seeded RNG, so a run is repeatable. The current day's records live in a
temporary SQLite table (module, record_id, canonical text, sha256), not in Python objects, so
the bench's own memory does not hide the repository's.

Each day, outside any timing: mutate the table, write the day's JSONL export (one canonical
record per line, ordered by module, record id; always the same path). Then, timed:

- ours: ``Repository.create(..., parent="latest")`` fed by streaming the table
  ``ORDER BY module, record_id`` (the SQLite read is inside the timed call; the same read
  alone, after the create, is printed as "sqlite"). Each create runs in a fresh child process
  (this script with a hidden ``--create-day``), so its peak RSS (the child's ``ru_maxrss``,
  from ``wait4``) is the create's plus the interpreter and imports ("idle" = the child's RSS
  just before create).
- restic: ``restic backup day.jsonl`` into its own repository (format v2: zstd, compression
  auto; multi-threaded, ours is one thread), with a cache dir next to it.

Printed: a per-day table (records, added/changed/removed, our create seconds, new blobs, peak
RSS, repository MB; restic seconds, peak RSS and repository MB), then a summary against the
issue's targets:

- zstd export of day 0: the day-0 JSONL compressed as one zstd stream at level 3 (baseline);
- our repository size after all days (packs / index / snapshots / config+locks), and its
  ratio to that baseline (target <= 1.5x);
- restic's repository size and ours / restic (target <= 0.05);
- mean incremental create seconds / first (full) create seconds (target <= 0.20);
- max peak RSS of a create (target <= 256 MB);
- ``verify(read_data=True)``: seconds, peak RSS (also in a child) and whether it was ok.

Sizes are bytes of the files on disk (st_size), MB = 10^6 bytes. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import zstandard

from crmsync.sandbox.data import (
    DEAL_STAGES,
    DEFAULT_CLOCK_START,
    LEAD_STATUSES,
    OWNERS,
    TAGS,
    TITLES_CN,
    TITLES_EN,
    RecordGenerator,
    iso,
    split_sizes,
)
from crmsync.store.base import canonical_record

CHANGE, DELETE, ADD = 0.01, 0.001, 0.002
EXPORT_LEVEL = 3
CONNECTION = "bench"
RESTIC_PASSWORD = "bench"
DAY = 86400
# Fields a new record takes from a freshly generated one of its module (the rest: the shape
# of a random existing record).
FRESH_FIELDS = {
    "Leads": ("first_name", "last_name", "full_name", "email", "phone", "company"),
    "Contacts": ("first_name", "last_name", "full_name", "email", "phone"),
    "Accounts": ("name", "website", "phone"),
    "Deals": ("amount",),
}


# --------------------------------------------------------------------------- layout


class Layout:
    def __init__(self, work: Path):
        self.work = work
        self.db = work / "records.sqlite"
        self.ours = work / "ours"
        self.cache = work / "ours-cache"
        self.export = work / "export" / "day.jsonl"
        self.baseline = work / "day0.jsonl.zst"
        self.restic = work / "restic"
        self.restic_cache = work / "restic-cache"


def dir_bytes(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, bytes, int]:
    """Run a process to completion: (exit code, its stdout, its own peak RSS in KB, from
    ``wait4``: not the bench's, nor an earlier child's)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode("utf-8", "replace")[-4000:])
    return proc.returncode, out, usage.ru_maxrss


# --------------------------------------------------------------------------- workload


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(
        "CREATE TABLE IF NOT EXISTS records (module TEXT NOT NULL, record_id TEXT NOT NULL,"
        " text TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (module, record_id))"
        " WITHOUT ROWID"
    )
    return db


def load_day0(db: sqlite3.Connection, records: int, seed: int) -> None:
    gen = RecordGenerator(seed=seed, sizes=split_sizes(records))

    def rows() -> Iterator[tuple[str, str, str, str]]:
        for rec in gen:  # Accounts, Contacts, Deals, Leads, each in id order: the key order
            text, digest = canonical_record(rec.data)
            yield rec.module, str(rec.data["id"]), text, digest

    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", rows())
    db.commit()


def day_epoch(day: int) -> int:
    return int(DEFAULT_CLOCK_START.timestamp()) + day * DAY


def change_record(rng: random.Random, module: str, rec: dict[str, Any], day: int) -> None:
    """What a day's edit of a CRM record looks like: always modified_at, often the owner and
    the pipeline field, sometimes a phone, a tag, a title, an amount or the status."""
    rec["modified_at"] = iso(day_epoch(day) - 1 - int(rng.random() * DAY))
    if rng.random() < 0.4:
        rec["owner"] = OWNERS[int(rng.random() * len(OWNERS))]
    if module == "Leads" and rng.random() < 0.5:
        rec["lead_status"] = LEAD_STATUSES[int(rng.random() * len(LEAD_STATUSES))]
    elif module == "Deals":
        if rng.random() < 0.5:
            rec["stage"] = DEAL_STAGES[int(rng.random() * len(DEAL_STAGES))]
        if rng.random() < 0.2 and isinstance(rec.get("amount"), int | float):
            rec["amount"] = round(rec["amount"] * (0.8 + 0.4 * rng.random()), -2)
    elif module == "Contacts" and rng.random() < 0.1:
        titles = TITLES_CN if rng.random() < 0.5 else TITLES_EN
        rec["title"] = titles[int(rng.random() * len(titles))]
    phone = rec.get("phone")
    if isinstance(phone, str) and len(phone) > 4 and rng.random() < 0.1:
        rec["phone"] = phone[:-4] + f"{int(rng.random() * 10000):04d}"
    if rng.random() < 0.1:
        tags = list(rec.get("tags") or [])
        tag = TAGS[int(rng.random() * len(TAGS))]
        tags = [t for t in tags if t != tag] if tag in tags else [*tags, tag]
        rec["tags"] = tags
    if rng.random() < 0.02:
        rec["status"] = "archived" if rec.get("status") == "active" else "active"


def mutate_day(db: sqlite3.Connection, day: int, seed: int) -> dict[str, int]:
    """Change 1%, delete 0.1%, add 0.2% of the table (counts of the day before)."""
    rng = random.Random(f"crmsync-bench-snapshot/{seed}/{day}")
    n = db.execute("SELECT count(*) FROM records").fetchone()[0]
    k_change, k_delete, k_add = round(n * CHANGE), round(n * DELETE), round(n * ADD)
    picked = rng.sample(range(n), k_change + k_delete + k_add)  # random order: split by role
    role = dict.fromkeys(picked[:k_change], "change")
    role.update(dict.fromkeys(picked[k_change : k_change + k_delete], "delete"))
    role.update(dict.fromkeys(picked[k_change + k_delete :], "shape"))
    chosen: dict[str, list[tuple[str, str, str]]] = {"change": [], "delete": [], "shape": []}
    cursor = db.execute("SELECT module, record_id, text FROM records ORDER BY module, record_id")
    for pos, row in enumerate(cursor):
        r = role.get(pos)
        if r is not None:
            chosen[r].append(row)
    rng.shuffle(chosen["shape"])  # the scan returned them in key order: mix the modules

    updates = []
    for module, rid, text in chosen["change"]:
        rec = orjson.loads(text)
        change_record(rng, module, rec, day)
        new_text, digest = canonical_record(rec)
        updates.append((new_text, digest, module, rid))
    db.executemany("UPDATE records SET text = ?, hash = ? WHERE module = ? AND record_id = ?",
                   updates)  # fmt: skip
    db.executemany(
        "DELETE FROM records WHERE module = ? AND record_id = ?",
        [(m, rid) for m, rid, _ in chosen["delete"]],
    )

    # New records: ids after the module's highest (ids grow with creation time), the shape of a
    # random existing record, fresh names/emails/phones from a generator seeded for this day.
    next_id = {
        m: int(v)
        for m, v in db.execute("SELECT module, max(record_id) FROM records GROUP BY module")
    }
    donors_gen = RecordGenerator(
        seed=seed * 100_003 + day, sizes=dict.fromkeys(FRESH_FIELDS, max(k_add, 1))
    )
    donors = {m: donors_gen.module(m) for m in FRESH_FIELDS}
    inserts = []
    for module, _rid, text in chosen["shape"]:
        rec = orjson.loads(text)
        donor = next(donors[module]).data
        next_id[module] += 1 + int(rng.random() * 3)
        rec["id"] = str(next_id[module])
        rec["created_at"] = rec["modified_at"] = iso(day_epoch(day) - 1 - int(rng.random() * DAY))
        for name in FRESH_FIELDS[module]:
            if name in donor:
                rec[name] = donor[name]
        if module == "Deals":  # "<account> - <product>": keep the account, take a product
            account = str(rec.get("name", "")).split(" - ", 1)[0]
            rec["name"] = f"{account} - {str(donor['name']).split(' - ', 1)[-1]}"
        rec["status"] = "active"
        new_text, digest = canonical_record(rec)
        inserts.append((module, rec["id"], new_text, digest))
    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", inserts)
    db.commit()
    return {"changed": k_change, "deleted": k_delete, "added": k_add}


def write_export(db: sqlite3.Connection, layout: Layout, baseline: bool) -> int:
    """The day's JSONL export (one canonical record a line, key order); on day 0 also the
    zstd baseline (one stream, level 3). Returns the export's size in bytes."""
    layout.export.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        out = stack.enter_context(open(layout.export, "wb"))
        zout = None
        if baseline:
            zraw = stack.enter_context(open(layout.baseline, "wb"))
            cctx = zstandard.ZstdCompressor(level=EXPORT_LEVEL)
            zout = stack.enter_context(cctx.stream_writer(zraw))
        rows = db.execute("SELECT text FROM records ORDER BY module, record_id")
        while True:
            batch = rows.fetchmany(4096)
            if not batch:
                break
            chunk = b"".join(text.encode("utf-8") + b"\n" for (text,) in batch)
            out.write(chunk)
            if zout is not None:
                zout.write(chunk)
    return layout.export.stat().st_size


# --------------------------------------------------------------------------- child modes


def stream_day(db_path: Path, with_text: bool = True) -> Iterator[Any]:
    """The day's records as `crmsync snapshot create` reads the mirror: with their text for a
    first snapshot, ids and hashes only after it (texts of new/changed ones via load_texts)."""
    from crmsync.snapshots import RecordVersion

    text = "text" if with_text else "NULL"
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for row in db.execute(
            f"SELECT module, record_id, {text}, hash FROM records ORDER BY module, record_id"
        ):
            yield RecordVersion(*row)
    finally:
        db.close()


def text_loader(db_path: Path) -> Any:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)

    def load(module: str, ids: list[str]) -> dict[str, str]:
        out = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(db.execute(
                f"SELECT record_id, text FROM records WHERE module = ? AND record_id IN ({marks})",
                (module, *chunk),
            ).fetchall())  # fmt: skip
        return out

    return load


def child_create(layout: Layout, day: int) -> dict[str, Any]:
    from datetime import timedelta

    from crmsync.snapshots import LocalBackend, Repository

    modules = sorted(FRESH_FIELDS)
    repo = Repository.open(LocalBackend(layout.ours), cache_dir=layout.cache)
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # interpreter + imports
    first = repo.latest(CONNECTION, modules) is None
    start = time.perf_counter()
    info = repo.create(
        stream_day(layout.db, with_text=first), connection=CONNECTION, modules=modules,
        parent="latest", operator="bench", reason=f"day {day}",
        time=DEFAULT_CLOCK_START + timedelta(days=day), load_texts=text_loader(layout.db),
    )  # fmt: skip
    secs = time.perf_counter() - start
    # The same stream read alone, after the create (so it adds nothing to the idle figure):
    # how much of the create's seconds is the bench's SQLite read.
    start = time.perf_counter()
    n = sum(1 for _ in stream_day(layout.db, with_text=first))
    sqlite_secs = time.perf_counter() - start
    return {
        "seconds": secs, "sqlite_seconds": sqlite_secs, "streamed": n, "records": info.records,
        "summary": dict(info.summary), "idle_rss_kb": idle, "parent": info.parent,
    }  # fmt: skip


def child_verify(layout: Layout) -> dict[str, Any]:
    from crmsync.snapshots import LocalBackend, Repository

    repo = Repository.open(LocalBackend(layout.ours), cache_dir=layout.cache)
    start = time.perf_counter()
    report = repo.verify(read_data=True)
    secs = time.perf_counter() - start
    return {"seconds": secs, "ok": bool(report.ok), "lines": report.lines()[:20]}


def in_child(mode: list[str], layout: Layout) -> tuple[dict[str, Any], int]:
    argv = [sys.executable, os.path.abspath(__file__), "--work", str(layout.work), *mode]
    code, out, rss_kb = run_child(argv)
    if code != 0:
        raise SystemExit(f"child {' '.join(mode)} failed with exit code {code}")
    return json.loads(out.decode().strip().splitlines()[-1]), rss_kb


# --------------------------------------------------------------------------- restic


class Restic:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.env = {**os.environ, "RESTIC_PASSWORD": RESTIC_PASSWORD}
        self.version = ""
        self.repo_version = "?"

    @staticmethod
    def ensure() -> str | None:
        """The restic binary, installing the Debian package if needed; None and a printed
        reason if it cannot be had."""
        found = shutil.which("restic")
        if found:
            return found
        print("restic: not on PATH, trying apt-get install -y restic ...", flush=True)
        try:
            res = subprocess.run(["apt-get", "install", "-y", "restic"], capture_output=True,
                                 text=True, timeout=600)  # fmt: skip
            if res.returncode != 0:
                subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
                res = subprocess.run(["apt-get", "install", "-y", "restic"], capture_output=True,
                                     text=True, timeout=600)  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"restic: not available ({exc})")
            return None
        found = shutil.which("restic")
        if not found:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            print(f"restic: not available (apt-get install failed: {tail[0]})")
        return found

    def run(self, *args: str) -> tuple[int, bytes, int]:
        return run_child(["restic", "--repo", str(self.layout.restic), *args], env=self.env)

    def init(self) -> bool:
        res = subprocess.run(["restic", "version"], capture_output=True, text=True)
        self.version = res.stdout.strip()
        code, _, _ = self.run("init", "--repository-version", "2")
        if code != 0:
            print("restic: not available (restic init failed)")
            return False
        code, out, _ = self.run("cat", "config")
        if code == 0:
            self.repo_version = str(json.loads(out).get("version", "?"))
        return True

    def backup(self) -> tuple[float, int]:
        start = time.perf_counter()
        code, _, rss_kb = run_child(
            ["restic", "--repo", str(self.layout.restic), "--cache-dir",
             str(self.layout.restic_cache), "backup", "--host", "bench", "--tag", "crmsync-bench",
             "--quiet", str(self.layout.export)],
            env=self.env,
        )  # fmt: skip
        secs = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"restic backup failed with exit code {code}")
        return secs, rss_kb


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000, help="day-0 records (all modules)")
    ap.add_argument("--days", type=int, default=5, help="incremental days after day 0")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-restic", action="store_true", help="skip the restic comparison")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR (new or empty) and keep it")
    ap.add_argument("--work", help=argparse.SUPPRESS)  # child modes
    ap.add_argument("--create-day", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--verify-repo", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.work is not None:  # a child: one create or the verify, result as JSON on stdout
        layout = Layout(Path(args.work))
        result = child_verify(layout) if args.verify_repo else child_create(layout, args.create_day)
        print(json.dumps(result))
        return 0

    if args.keep:
        work = Path(args.keep)
        if work.exists() and any(work.iterdir()):
            ap.error(f"--keep {work}: not empty")
        work.mkdir(parents=True, exist_ok=True)
        return bench(args, Layout(work.resolve()))
    with tempfile.TemporaryDirectory(prefix="snapbench-") as tmp:
        return bench(args, Layout(Path(tmp)))


def bench(args: argparse.Namespace, layout: Layout) -> int:
    from crmsync.snapshots import LocalBackend, Repository

    restic: Restic | None = None
    if not args.no_restic and Restic.ensure():
        restic = Restic(layout)
        if not restic.init():
            restic = None
    Repository.init(LocalBackend(layout.ours), cache_dir=layout.cache)

    print(f"workload: {args.records} records on day 0 (sandbox seed {args.seed}), {args.days} "
          f"days of +{ADD:.1%} / ~{CHANGE:.0%} / -{DELETE:.1%}; work dir {layout.work}",
          flush=True)  # fmt: skip
    print("generating day 0 into SQLite ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    db = open_db(layout.db)
    load_day0(db, args.records, args.seed)
    gen_secs = time.perf_counter() - start

    head = (f"{'day':>3} {'records':>8} {'+add':>5} {'~chg':>6} {'-del':>5} | {'ours s':>7} "
            f"{'sqlite':>6} {'new blobs':>9} {'RSS MB':>6} {'repo MB':>8}")  # fmt: skip
    if restic:
        head += f" | {'restic s':>8} {'RSS MB':>6} {'repo MB':>8}"
    print(head, flush=True)
    rows: list[dict[str, Any]] = []
    export_bytes = 0
    for day in range(args.days + 1):
        mutation = mutate_day(db, day, args.seed) if day else {}
        size = write_export(db, layout, baseline=day == 0)
        export_bytes = export_bytes or size
        res, rss_kb = in_child(["--create-day", str(day)], layout)
        row = {"day": day, **res, "rss_kb": rss_kb, "repo": dir_bytes(layout.ours), **mutation}
        s = res["summary"]
        line = (f"{day:>3} {res['records']:>8} {s['added']:>5} {s['changed']:>6} "
                f"{s['removed']:>5} | {res['seconds']:>7.2f} {res['sqlite_seconds']:>6.2f} "
                f"{s['new_blobs']:>9} {rss_kb / 1024:>6.0f} {mb(row['repo']):>8}")  # fmt: skip
        if restic:
            secs, r_rss = restic.backup()
            row.update(
                restic_seconds=secs, restic_rss_kb=r_rss, restic_repo=dir_bytes(layout.restic)
            )
            line += f" | {secs:>8.2f} {r_rss / 1024:>6.0f} {mb(row['restic_repo']):>8}"
        print(line, flush=True)
        rows.append(row)
    db.close()

    verify, verify_rss = in_child(["--verify-repo"], layout)
    summary(args, layout, rows, export_bytes, gen_secs, verify, verify_rss, restic)
    return 0


def summary(
    args: argparse.Namespace, layout: Layout, rows: list[dict[str, Any]], export_bytes: int,
    gen_secs: float, verify: dict[str, Any], verify_rss: int, restic: Restic | None,
) -> None:  # fmt: skip
    baseline = layout.baseline.stat().st_size
    ours = dir_bytes(layout.ours)
    parts = {d: dir_bytes(layout.ours / d) for d in ("packs", "index", "snapshots")}
    parts["other"] = ours - sum(parts.values())
    first = rows[0]["seconds"]
    incr = [r["seconds"] for r in rows[1:]]
    mean_incr = sum(incr) / len(incr) if incr else float("nan")
    max_rss = max(r["rss_kb"] for r in rows) / 1024
    idle = max(r["idle_rss_kb"] for r in rows) / 1024
    sql = [r["sqlite_seconds"] for r in rows]

    def target(ok: bool) -> str:
        return "meets target" if ok else "MISSES target"

    print()
    print(f"== summary: {args.records} records, day 0 + {args.days} days ==")
    print(f"day-0 generation into SQLite (untimed set-up): {gen_secs:.1f} s; "
          f"day-0 JSONL export {mb(export_bytes)} MB")  # fmt: skip
    print(f"zstd export of day 0 (one stream, level {EXPORT_LEVEL}): {mb(baseline)} MB")
    print(f"our repository: {mb(ours)} MB  (" + ", ".join(f"{k} {mb(v)}" for k, v in parts.items())
          + f"); hash cache (outside the repo) {mb(dir_bytes(layout.cache))} MB")  # fmt: skip
    ratio = ours / baseline
    print(f"ratio ours / zstd export: {ratio:.3f}x  (target <= 1.5: {target(ratio <= 1.5)})")
    if restic:
        r_size = rows[-1]["restic_repo"]
        r_first = rows[0]["restic_seconds"]
        r_incr = [r["restic_seconds"] for r in rows[1:]]
        r_mean = sum(r_incr) / len(r_incr) if r_incr else float("nan")
        print(f"restic: {restic.version}; repository format v{restic.repo_version}, "
              f"compression auto (zstd), multi-threaded")  # fmt: skip
        print(f"restic repository: {mb(r_size)} MB; first backup {r_first:.2f} s, mean "
              f"incremental {r_mean:.2f} s; max peak RSS "
              f"{max(r['restic_rss_kb'] for r in rows) / 1024:.0f} MB; cache "
              f"{mb(dir_bytes(layout.restic_cache))} MB")  # fmt: skip
        rr = ours / r_size
        print(f"ratio ours / restic: {rr:.4f}  (1/{r_size / ours:.1f}; target <= 0.05: "
              f"{target(rr <= 0.05)})")  # fmt: skip
    else:
        print("restic: skipped")
    tr = mean_incr / first
    print(f"create seconds (each streams the day from SQLite inside the timing, "
          f"{min(sql):.2f}-{max(sql):.2f} s of it): first {first:.2f} s, mean incremental "
          f"{mean_incr:.2f} s")  # fmt: skip
    print(f"ratio mean incremental / first create: {tr:.3f}  (target <= 0.20: {target(tr <= 0.2)})")
    print(f"max peak RSS of a create (child process, idle before create {idle:.0f} MB): "
          f"{max_rss:.0f} MB  (target <= 256: {target(max_rss <= 256)})")  # fmt: skip
    print(f"verify --read-data: {verify['seconds']:.2f} s, peak RSS {verify_rss / 1024:.0f} MB, "
          f"ok={verify['ok']}")  # fmt: skip
    if not verify["ok"]:
        for line in verify["lines"]:
            print(f"  {line}")
    if args.keep:
        print(f"kept: {layout.work}")


if __name__ == "__main__":
    sys.exit(main())
