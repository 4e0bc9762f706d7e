"""Compliance: retention periods, legal holds, the precedence between them, restriction and purge
(issue 9). Erasure requests (``erasure*.py``) build on the same blocks.

- :mod:`.retention`: the ``[retention]`` config table (how long voided/archived records and
  snapshots are kept; statutory floors).
- :mod:`.holds`: legal holds (store schema 8, ``legal_holds``; the :class:`~.hold_model.Hold`
  the store returns), and the SQL condition that says which records are held.
- :mod:`.blocks`: :func:`~.blocks.deletion_blocks`, the one answer to "may this record be
  deleted now?" (hold, statutory floor).
- :mod:`.precedence`: hold > statutory minimum > erasure request / maximum retention > policy,
  as a pure function.
- :mod:`.purge` / :mod:`.purge_apply`: purge plans and their apply path (verified snapshot
  first, then ``ConnectorSession.delete``).

None of them touches the store's database: they call :class:`~crmsync.store.Store` methods
(SQLite: ``crmsync/store/sqlite_holds.py``, ``sqlite_purge.py``, ``sqlite_erasure.py``), handing
it compiled conditions where a query depends on rules, holds or filters.
"""
