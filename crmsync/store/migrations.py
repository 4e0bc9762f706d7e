"""Schema migrations for the SQLite store, applied in order; ``PRAGMA user_version`` records
the last one applied. Never edit a released migration: add a new one (and a test that opens a
store of the previous version)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: mirror, cursors, runs
    """
    CREATE TABLE mirror (
        connection     TEXT NOT NULL,
        module         TEXT NOT NULL,
        record_id      TEXT NOT NULL,
        modified_at    TEXT,
        status         TEXT NOT NULL DEFAULT 'active',
        data           TEXT NOT NULL,
        content_hash   TEXT NOT NULL,
        first_seen_at  TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        seen_run       INTEGER,
        crm_deleted_at TEXT,
        PRIMARY KEY (connection, module, record_id)
    );

    CREATE TABLE sync_cursors (
        connection        TEXT NOT NULL,
        module            TEXT NOT NULL,
        cursor            TEXT,
        updated_at        TEXT,
        last_full_pull_at TEXT,
        PRIMARY KEY (connection, module)
    );

    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        connection  TEXT,
        module      TEXT,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT NOT NULL,
        summary     TEXT NOT NULL DEFAULT '{}',
        error       TEXT
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
