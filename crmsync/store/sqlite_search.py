"""Full-text search over the SQLite mirror (mixed into SQLiteStore; crmsync.search is the
caller).

**The index** is ``mirror_fts`` (store migration 7): a contentless FTS5 trigram index of each
record's text (:func:`crmsync.search.text.record_text`), keyed by the mirror's rowid. SQL
triggers queue every write of ``data`` in ``mirror_fts_pending`` (with the version the index
holds, which a contentless index needs to remove a record); :meth:`index_pending` indexes the
queue in Python — ``commit_page`` calls it inside each page's transaction, and a search calls
it first, so writes made outside crmsync (or before the upgrade) are indexed too. Extracting
the text in Python costs ~10 us a record; the same rules in SQL (json_tree) cost ~100.

**Matching.** A literal of 3 or more characters is an FTS5 phrase: with the trigram tokenizer
that is a case-insensitive substring match. A literal of 1-2 characters (张三, 金桥, Li) has no
trigram of its own: it becomes the OR of the indexed trigrams that start with it (read from
``mirror_fts_vocab``, a range scan of the index's terms). Every text ends in two newlines, so
every occurrence of a short literal starts some trigram and the expansion finds exactly the
records containing it.

**Ranking** is bm25 with a name match weighing 4x a match elsewhere. bm25 costs a few
microseconds per matching record, so a query is ranked among its ``request.window`` most
recently added matches (FTS5 walks the index newest first and stops there); fewer matches than
that are all ranked. Filters are applied to each match through the mirror's primary key,
before the window is counted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from crmsync.policy.filters import FieldSQL, time_key_sql
from crmsync.policy.model import FieldRef
from crmsync.policy.sql import field_sql
from crmsync.search.filters import CREATED_KEYS, TAG_KEYS, number_of
from crmsync.search.model import (
    MirrorHit,
    MirrorMatches,
    RecordState,
    SearchFilters,
    SearchRequest,
)
from crmsync.search.query import QuerySyntaxError, SearchQuery
from crmsync.search.text import record_text

NAME_WEIGHT = 4.0
MAX_EXPANSION = 1000  # trigrams a 1-2 character literal may stand for
PENDING_BATCH = 2000  # queued records indexed per round

STATUS_SQL = "CASE WHEN m.crm_deleted_at IS NOT NULL THEN 'purged' ELSE m.status END"
_HIT_COLUMNS = (
    f"m.connection, m.module, m.record_id, {STATUS_SQL}, m.modified_at, m.crm_deleted_at, m.data"
)


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _time_sql(time_field: str) -> str:
    if time_field == "created":
        values = [field_sql(FieldRef(path=(key,))).v for key in CREATED_KEYS]
        value = f"coalesce({', '.join(values)})"
    else:
        value = "m.modified_at"
    return time_key_sql(FieldSQL("NULL", value))


def filter_sql(filters: SearchFilters) -> tuple[str, list[Any]]:
    """A WHERE expression over the mirror (alias ``m``) and its parameters."""
    where: list[str] = []
    args: list[Any] = []
    if filters.connection is not None:
        where.append("m.connection = ?")
        args.append(filters.connection)
    if filters.modules:
        where.append(f"m.module IN ({', '.join('?' * len(filters.modules))})")
        args += filters.modules
    if filters.statuses:
        parts = []
        live = [s for s in filters.statuses if s != "purged"]
        if live:
            parts.append(
                f"(m.crm_deleted_at IS NULL AND m.status IN ({', '.join('?' * len(live))}))"
            )
            args += live
        if "purged" in filters.statuses:
            parts.append("(m.crm_deleted_at IS NOT NULL OR m.status = 'purged')")
        where.append("(" + " OR ".join(parts) + ")")
    for tag in filters.tags:
        element = "CASE t.type WHEN 'object' THEN json_extract(t.value, '$.name') ELSE t.value END"
        where.append(
            "("
            + " OR ".join(
                f"EXISTS (SELECT 1 FROM json_each(m.data, '$.{key}') AS t"
                f" WHERE {element} = ? COLLATE NOCASE)"
                for key in TAG_KEYS
            )
            + ")"
        )
        args += [tag] * len(TAG_KEYS)
    for key, value in filters.fields:
        where.append(
            "EXISTS (SELECT 1 FROM json_each(m.data) AS f WHERE f.key = ? AND ("
            "(f.type = 'text' AND f.value = ?) OR (f.type IN ('true', 'false') AND f.type = ?)"
            " OR (f.type IN ('integer', 'real') AND f.value = ?)"
            " OR (f.type = 'object' AND ? IN (json_extract(f.value, '$.name'),"
            " json_extract(f.value, '$.id')))))"
        )
        args += [key, value, value, number_of(value), value]
    if filters.since is not None or filters.until is not None:
        moment = _time_sql(filters.time_field)
        if filters.since is not None:
            where.append(f"{moment} >= ?")
            args.append(filters.since)
        if filters.until is not None:
            where.append(f"{moment} < ?")
            args.append(filters.until)
    return (" AND ".join(where) or "1"), args


def _hit(row: Sequence[Any], score: float | None) -> MirrorHit:
    return MirrorHit(*row[:6], data=orjson.loads(row[6]), score=score)


class SearchStoreMixin:
    """Search for SQLiteStore. Relies on its ``_db``."""

    _db: sqlite3.Connection
    _tx: Any

    # ------------------------------------------------------------------ the FTS5 query

    def _expand(self, literal: str) -> list[str]:
        """The indexed trigrams starting with a 1-2 character literal (case folded)."""
        folded = literal.lower()
        terms = [
            term
            for (term,) in self._db.execute(
                "SELECT term FROM mirror_fts_vocab WHERE term >= ? AND term <= ?",
                (folded, folded + "\U0010ffff"),
            )
        ]
        if len(terms) > MAX_EXPANSION:
            raise QuerySyntaxError(
                f"{literal!r} is too short to search for on its own here (it begins"
                f" {len(terms)} different 3-character sequences): add characters"
            )
        return terms

    def _literal_expression(self, literal: str) -> str | None:
        """FTS5 syntax for one literal; None when no record can contain it."""
        if len(literal) >= 3:
            return _phrase(literal)
        terms = self._expand(literal)
        if not terms:
            return None
        return "(" + " OR ".join(_phrase(t) for t in terms) + ")"

    def fts_expression(self, query: SearchQuery) -> str | None:
        """The FTS5 MATCH expression for ``query``; None when nothing can match it."""
        groups = []
        for group in query.groups:
            parts = [e for e in map(self._literal_expression, group) if e is not None]
            if not parts:
                return None
            groups.append("(" + " OR ".join(parts) + ")")
        expression = " AND ".join(groups)
        excluded = [e for e in map(self._literal_expression, query.excluded) if e is not None]
        if excluded:
            expression = f"({expression}) NOT ({' OR '.join(excluded)})"
        return expression

    # ------------------------------------------------------------------ search

    def search_mirror(self, request: SearchRequest) -> MirrorMatches:
        self.update_search_index()
        where, args = filter_sql(request.filters)
        if request.query is None:
            rows = self._db.execute(
                f"SELECT {_HIT_COLUMNS} FROM mirror AS m WHERE {where}"
                " ORDER BY m.modified_at DESC, m.rowid DESC LIMIT ?",
                (*args, request.limit),
            ).fetchall()
            return MirrorMatches([_hit(row, None) for row in rows])
        expression = self.fts_expression(request.query)
        if expression is None:
            return MirrorMatches([])
        try:
            window = self._db.execute(
                f"SELECT f.rowid, bm25(mirror_fts, {NAME_WEIGHT}, 1.0) FROM mirror_fts AS f"
                " JOIN mirror AS m ON m.rowid = f.rowid"
                f" WHERE mirror_fts MATCH ? AND {where} ORDER BY f.rowid DESC LIMIT ?",
                (expression, *args, request.window),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc):  # not expected: every literal is quoted
                raise QuerySyntaxError(str(exc)) from None
            raise
        best = sorted(window, key=lambda r: (r[1], -r[0]))[: request.limit]
        scores = {rowid: score for rowid, score in best}
        found: dict[int, MirrorHit] = {}
        if best:
            marks = ", ".join("?" * len(best))
            for row in self._db.execute(
                f"SELECT m.rowid, {_HIT_COLUMNS} FROM mirror AS m WHERE m.rowid IN ({marks})",
                list(scores),
            ):
                found[row[0]] = _hit(row[1:], scores[row[0]])
        return MirrorMatches(
            [found[rowid] for rowid, _ in best if rowid in found],
            window_full=len(window) >= request.window,
        )

    def record_states(
        self, connection: str, module: str, record_ids: Sequence[str]
    ) -> dict[str, RecordState]:
        out: dict[str, RecordState] = {}
        for start in range(0, len(record_ids), 500):  # SQLite's parameter limit
            chunk = list(record_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            for rid, digest, status in self._db.execute(
                f"SELECT m.record_id, m.content_hash, {STATUS_SQL} FROM mirror AS m"
                f" WHERE m.connection = ? AND m.module = ? AND m.record_id IN ({marks})",
                (connection, module, *chunk),
            ):
                out[rid] = RecordState(digest, status)
        return out

    # ------------------------------------------------------------------ keeping it in step

    @staticmethod
    def index_pending(db: sqlite3.Connection) -> int:
        """Index the queued writes, inside the caller's open write transaction: remove each
        record's indexed version, add its current one. Returns how many were indexed."""
        done = 0
        while True:
            rows = db.execute(
                "SELECT p.doc_id, p.old_data, m.data FROM mirror_fts_pending AS p"
                " LEFT JOIN mirror AS m ON m.rowid = p.doc_id ORDER BY p.doc_id LIMIT ?",
                (PENDING_BATCH,),
            ).fetchall()
            if not rows:
                return done
            db.executemany(
                "INSERT INTO mirror_fts (mirror_fts, rowid, name, body) VALUES ('delete', ?, ?, ?)",
                [(rid, *record_text(orjson.loads(old))) for rid, old, _ in rows if old is not None],
            )
            db.executemany(
                "INSERT INTO mirror_fts (rowid, name, body) VALUES (?, ?, ?)",
                [(rid, *record_text(orjson.loads(new))) for rid, _, new in rows if new is not None],
            )
            db.execute("DELETE FROM mirror_fts_pending WHERE doc_id <= ?", (rows[-1][0],))
            done += len(rows)

    def update_search_index(self) -> int:
        """Index what was written since the last time (nothing to do, no write lock taken)."""
        if self._db.execute("SELECT 1 FROM mirror_fts_pending LIMIT 1").fetchone() is None:
            return 0
        with self._tx() as db:
            return self.index_pending(db)

    def pending_search_index(self) -> int:
        """How many records wait to be indexed (after an upgrade: the whole mirror)."""
        return int(self._db.execute("SELECT count(*) FROM mirror_fts_pending").fetchone()[0])

    def rebuild_search_index(self) -> int:
        """Index the whole mirror again (never needed in normal use); returns how many."""
        with self._tx() as db:
            db.execute("INSERT INTO mirror_fts (mirror_fts) VALUES ('delete-all')")
            db.execute("DELETE FROM mirror_fts_pending")
            db.execute("INSERT INTO mirror_fts_pending (doc_id) SELECT rowid FROM mirror")
            return self.index_pending(db)
