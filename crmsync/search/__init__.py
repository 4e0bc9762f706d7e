"""Search the archive: ``crmsync search`` over the mirror's full-text index, and over snapshots.

- :mod:`crmsync.search.query` — the query language (words, "phrases", OR, -exclude);
- :mod:`crmsync.search.text` — a record's searchable text, display name and snippet;
- :mod:`crmsync.search.filters` — --tag, --field, --since/--until, read and applied;
- :mod:`crmsync.search.finder` — runs a search: the store's index (``Store.search_mirror``;
  SQLite: crmsync.store.sqlite_search), then snapshots (:mod:`crmsync.search.snapshot_scan`);
- :mod:`crmsync.search.cli` — the command.
"""

from crmsync.search.model import SearchFilters, SearchRequest
from crmsync.search.query import QuerySyntaxError, SearchQuery, parse_query

__all__ = ["QuerySyntaxError", "SearchFilters", "SearchQuery", "SearchRequest", "parse_query"]
