"""Walk a hash chain of audit entries and name the first thing wrong with it.

The walk is one pass in seq order keeping only the previous entry, so memory stays bounded
whatever the log's size; entries come from the store (``Store.iter_audit``) or an export file.
Only when an entry's hash is wrong does a second pass look for where it really belongs, to
tell an edited entry from a moved one.

What a chain can and cannot prove: the hash has no secret, so whoever can write the store can
rewrite every entry after the one they change and recompute the hashes; and deleting entries
from the tail leaves a shorter, valid chain. Both are caught only by comparing with a head hash
recorded somewhere else earlier (``expect_heads``, ``crmsync audit verify --expect-head``):
that entry must still be in the chain, and everything after it must link back to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmsync.audit.model import FORMAT_VERSION, GENESIS_HASH, AuditRecord, record_ref

if TYPE_CHECKING:
    from crmsync.store.base import Store


class MalformedEntry(Exception):
    """An export line/row that is not an audit entry. ``where`` locates it (line N)."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Problem:
    """The first break in the chain.

    kind: ``edited`` (contents do not match the entry's hash), ``deleted`` (a seq gap),
    ``reordered`` (an intact entry stored at another seq), ``broken_link`` (an intact entry
    whose prev_hash does not match the entry before it: that one was rewritten with a
    recomputed hash, or this one forged), ``bad_genesis``, ``unsupported`` (format version),
    ``malformed`` (an export line that is not an entry), ``head_missing`` (an expected head
    hash is not in the chain: the tail was truncated or the chain rewritten).
    """

    kind: str
    seq: int | None
    message: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    problem: Problem | None = None
    # expected head hash -> the seq where it was found
    heads_found: tuple[tuple[str, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problem": None if self.problem is None else vars(self.problem),
            "expected_heads_found": dict(self.heads_found),
        }


RecordSource = Callable[[], Iterable[AuditRecord]]


def verify_chain(source: RecordSource, expect_heads: Sequence[str] = ()) -> VerifyResult:
    """Check the entries ``source()`` yields (in seq order). ``source`` is called again only
    to diagnose a hash mismatch."""
    wanted = {h.strip().lower() for h in expect_heads}
    found: dict[str, int] = {}
    prev: AuditRecord | None = None
    count = 0

    def result(problem: Problem | None) -> VerifyResult:
        return VerifyResult(
            ok=problem is None,
            entries=count,
            head_seq=prev.seq if prev else None,
            head_hash=prev.hash if prev else None,
            problem=problem,
            heads_found=tuple(sorted(found.items(), key=lambda kv: kv[1])),
        )

    try:
        for row in source():
            problem = _check(row, prev, source)
            if problem is not None:
                return result(problem)
            count += 1
            if row.hash in wanted:
                found[row.hash] = row.seq
            prev = row
    except MalformedEntry as exc:
        after = f" (after seq {prev.seq})" if prev else ""
        return result(Problem("malformed", None, f"{exc}{after}"))

    missing = sorted(wanted - set(found))
    if missing:
        end = f"seq {prev.seq}" if prev else "an empty log"
        return result(
            Problem(
                "head_missing",
                None,
                f"no entry has the expected head hash {missing[0]}: entries were removed from "
                f"the tail or the chain was rewritten (the chain itself is intact up to {end})",
            )
        )
    return result(None)


def _check(row: AuditRecord, prev: AuditRecord | None, source: RecordSource) -> Problem | None:
    expected_seq = 1 if prev is None else prev.seq + 1
    if row.seq > expected_seq:
        last = row.seq - 1
        span = f"entry {last} is" if last == expected_seq else f"entries {expected_seq}..{last} are"
        after = f"after seq {prev.seq}" if prev else "at the start of the log"
        return Problem("deleted", expected_seq, f"{span} missing {after} (deleted)")
    if row.seq < expected_seq:
        return Problem(
            "reordered", row.seq, f"entry seq {row.seq} comes after seq {expected_seq - 1}"
        )
    if row.v != FORMAT_VERSION:
        return Problem("unsupported", row.seq, f"entry {row.seq} has unknown format v{row.v}")
    if row.computed_hash() != row.hash:
        return _diagnose_mismatch(row, source)
    if row.record_id is not None and record_ref(row.record_id) != row.record_ref:
        return Problem(
            "edited", row.seq, f"entry {row.seq} was edited: its record_id does not match"
        )
    expected_prev = GENESIS_HASH if prev is None else prev.hash
    if row.prev_hash != expected_prev:
        if prev is None:
            return Problem("bad_genesis", row.seq, "entry 1 does not start the chain")
        return Problem(
            "broken_link",
            row.seq,
            f"entry {row.seq} does not link to entry {prev.seq}: entry {prev.seq} was replaced "
            f"(its hash recomputed) or entry {row.seq} was forged",
        )
    return None


def _diagnose_mismatch(row: AuditRecord, source: RecordSource) -> Problem:
    """Moved or edited? Find the entry this one claims to follow; if the contents hash right at
    the seq after it, the entry is intact but was moved to ``row.seq``."""
    if row.prev_hash == GENESIS_HASH:
        origin: int | None = 0
    else:
        origin = next((r.seq for r in _quiet(source) if r.hash == row.prev_hash), None)
    if origin is not None and origin + 1 != row.seq and row.computed_hash(origin + 1) == row.hash:
        return Problem(
            "reordered",
            row.seq,
            f"entry stored at seq {row.seq} is entry {origin + 1}, moved (the log was reordered)",
        )
    return Problem(
        "edited", row.seq, f"entry {row.seq} was edited: its contents do not match its hash"
    )


def _quiet(source: RecordSource) -> Iterator[AuditRecord]:
    try:
        yield from source()
    except MalformedEntry:
        return


def verify_store(store: Store, expect_heads: Sequence[str] = (), batch: int = 1000) -> VerifyResult:
    return verify_chain(lambda: store.iter_audit(batch=batch), expect_heads)
