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
    # 2: the hash-chained audit log (crmsync.audit documents the entry format).
    # seq is assigned by crmsync inside BEGIN IMMEDIATE (head + 1), never by AUTOINCREMENT, so
    # concurrent writers cannot fork the chain. The hash covers record_ref (a digest of
    # record_id), not record_id itself: the id can be redacted later without breaking the
    # chain, and verify checks that a present record_id matches its record_ref.
    """
    CREATE TABLE audit_log (
        seq           INTEGER PRIMARY KEY,
        v             INTEGER NOT NULL,
        time          TEXT NOT NULL,
        operator      TEXT NOT NULL,
        action        TEXT NOT NULL,
        connection    TEXT,
        module        TEXT,
        record_id     TEXT,
        record_ref    TEXT,
        before_status TEXT,
        after_status  TEXT,
        plan_id       TEXT,
        run_id        INTEGER,
        snapshot_id   TEXT,
        policy        TEXT,
        outcome       TEXT NOT NULL,
        detail        TEXT NOT NULL,
        prev_hash     TEXT NOT NULL,
        hash          TEXT NOT NULL
    );

    CREATE INDEX audit_log_record ON audit_log (record_ref) WHERE record_ref IS NOT NULL;
    CREATE INDEX audit_log_plan ON audit_log (plan_id) WHERE plan_id IS NOT NULL;

    -- Append-only through crmsync: accidental edits fail loudly. Whoever holds the file can
    -- drop these triggers; `crmsync audit verify` is what detects that kind of edit.
    -- The one permitted update is redaction: record_id set to NULL, every other column kept.
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    WHEN NOT (
        NEW.record_id IS NULL AND OLD.record_id IS NOT NULL
        AND NEW.seq IS OLD.seq AND NEW.v IS OLD.v AND NEW.time IS OLD.time
        AND NEW.operator IS OLD.operator AND NEW.action IS OLD.action
        AND NEW.connection IS OLD.connection AND NEW.module IS OLD.module
        AND NEW.record_ref IS OLD.record_ref AND NEW.before_status IS OLD.before_status
        AND NEW.after_status IS OLD.after_status AND NEW.plan_id IS OLD.plan_id
        AND NEW.run_id IS OLD.run_id AND NEW.snapshot_id IS OLD.snapshot_id
        AND NEW.policy IS OLD.policy AND NEW.outcome IS OLD.outcome
        AND NEW.detail IS OLD.detail AND NEW.prev_hash IS OLD.prev_hash
        AND NEW.hash IS OLD.hash
    )
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only');
    END;

    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only');
    END;
    """,
    # 3: plans (items copied from the mirror at plan time; per-item state is the apply
    # checkpoint), approvals, and pre-change record copies (content-addressed objects).
    """
    CREATE TABLE plans (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL DEFAULT 'policy',
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        status      TEXT NOT NULL
    );
    CREATE TABLE plan_policies (
        plan_id          TEXT NOT NULL,
        policy           TEXT NOT NULL,
        connection       TEXT NOT NULL,
        module           TEXT NOT NULL,
        action           TEXT NOT NULL,
        params           TEXT NOT NULL,
        matched          INTEGER NOT NULL,
        module_total     INTEGER NOT NULL,
        max_records      INTEGER NOT NULL,
        max_percent      REAL NOT NULL,
        require_approval INTEGER NOT NULL,
        guard            TEXT,
        PRIMARY KEY (plan_id, policy)
    );
    CREATE TABLE plan_items (
        plan_id             TEXT NOT NULL,
        policy              TEXT NOT NULL,
        connection          TEXT NOT NULL,
        module              TEXT NOT NULL,
        record_id           TEXT NOT NULL,
        planned_modified_at TEXT,
        planned_hash        TEXT NOT NULL,
        before_status       TEXT NOT NULL,
        state               TEXT NOT NULL DEFAULT 'pending',
        error               TEXT,
        snapshot_id         TEXT,
        source_hash         TEXT,  -- restore plans: the copy to restore field values from
        PRIMARY KEY (plan_id, policy, record_id)
    );
    CREATE TABLE plan_approvals (
        plan_id     TEXT NOT NULL,
        approver    TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        PRIMARY KEY (plan_id, approver)
    );
    CREATE TABLE snapshot_objects (
        hash TEXT PRIMARY KEY,
        data TEXT NOT NULL
    );
    CREATE TABLE snapshots (
        id         TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        kind       TEXT NOT NULL,
        plan_id    TEXT,
        run_id     INTEGER,
        records    INTEGER NOT NULL
    );
    CREATE TABLE snapshot_records (
        snapshot_id TEXT NOT NULL,
        connection  TEXT NOT NULL,
        module      TEXT NOT NULL,
        record_id   TEXT NOT NULL,
        hash        TEXT NOT NULL,
        status      TEXT NOT NULL,
        PRIMARY KEY (snapshot_id, connection, module, record_id)
    );
""",
    # 4: live records per module, for module totals (`crmsync plan`'s "% of module") without
    # reading every row. Partial, on (connection, module) only: an index that also held
    # crm_deleted_at would look like a three-column equality to the query planner and win over
    # the primary key for keyset pages (iter_records) and over policy indexes.
    """
    CREATE INDEX mirror_live ON mirror (connection, module) WHERE crm_deleted_at IS NULL;
    """,
    # 5: pre-change copies move to the snapshot repository (crmsync.snapshots); the store keeps
    # which record versions each pre-change snapshot holds, and `restore --data` finds a copy
    # by its hash. snapshot_objects stays: copies taken before version 5 are read from it.
    """
    CREATE INDEX snapshot_records_hash ON snapshot_records (hash);
    """,
    # 6: per-record plan data (JSON; NULL for plans that change every record alike): the values
    # an update/classify policy computed for this record ({"fields": {...}, "before": {...}}),
    # or the duplicate cluster a voided record belongs to ({"cluster": key, "survivor": id}).
    """
    ALTER TABLE plan_items ADD COLUMN detail TEXT;
    """,
    # 7: full-text search over the mirror (crmsync.search). mirror_fts is an FTS5 trigram index
    # of each record's text (crmsync.search.text.record_text: its JSON string values, names
    # and companies in `name`, the rest in `body`), keyed by the mirror's rowid. Contentless:
    # the text is not stored a second time. The triggers queue every write of `data` in
    # mirror_fts_pending, keeping the version the index holds (the first one queued: a
    # contentless index removes a record by its indexed text), and crmsync indexes the queue
    # in Python in the same transaction (SQLiteStore.commit_page) or before a search. The
    # last statement queues the existing mirror: the first pull or search after upgrading
    # indexes it once.
    """
    CREATE VIRTUAL TABLE mirror_fts USING fts5(name, body, content = '', tokenize = 'trigram');
    CREATE VIRTUAL TABLE mirror_fts_vocab USING fts5vocab(mirror_fts, 'row');
    CREATE TABLE mirror_fts_pending (doc_id INTEGER PRIMARY KEY, old_data TEXT);

    CREATE TRIGGER mirror_fts_insert AFTER INSERT ON mirror BEGIN
        INSERT OR IGNORE INTO mirror_fts_pending (doc_id, old_data) VALUES (NEW.rowid, NULL);
    END;
    CREATE TRIGGER mirror_fts_update AFTER UPDATE OF data ON mirror
    WHEN OLD.data IS NOT NEW.data BEGIN
        INSERT OR IGNORE INTO mirror_fts_pending (doc_id, old_data) VALUES (OLD.rowid, OLD.data);
    END;
    CREATE TRIGGER mirror_fts_delete AFTER DELETE ON mirror BEGIN
        INSERT OR IGNORE INTO mirror_fts_pending (doc_id, old_data) VALUES (OLD.rowid, OLD.data);
    END;

    INSERT INTO mirror_fts_pending (doc_id, old_data) SELECT rowid, NULL FROM mirror;
    """,
    # 8: retention and legal hold (crmsync.compliance).
    # mirror.status_since: when the record entered its current status (the retention clock of
    # purge_voided_after / purge_archived_after). NULL means "since first_seen_at"; a trigger
    # sets it whenever status changes (pull, apply, restore alike). Existing rows get the time
    # of the audit log's last transition into their status, else updated_at (never earlier
    # than the real change: the clock can only start late, never early).
    # mirror.restricted_at / restricted_reason: deletion was due but blocked (legal hold,
    # statutory floor): the record is voided and left out of every ordinary policy until an
    # admin restores it (a trigger lifts the restriction when the status leaves 'voided') or a
    # purge runs once the block ends. The reason is a legal-basis code and a short text, no
    # field values. (Schema 8 is unreleased: this trigger was added to it in place.)
    # legal_holds: one row per hold; kind records | tag | filter | connection | snapshots;
    # connection/module narrow the scope (NULL: any); spec is JSON ({"tag": T},
    # {"filter": {...}}, {"snapshots": [ids]}, {} otherwise). legal_hold_records lists the
    # records of a `records` hold. A hold is active while released_at IS NULL and expires_at
    # is NULL or in the future.
    """
    ALTER TABLE mirror ADD COLUMN status_since TEXT;
    ALTER TABLE mirror ADD COLUMN restricted_at TEXT;
    ALTER TABLE mirror ADD COLUMN restricted_reason TEXT;

    UPDATE mirror SET status_since = t.since
    FROM (
        SELECT connection, module, record_id, after_status, max(time) AS since FROM audit_log
        WHERE record_id IS NOT NULL AND after_status IS NOT NULL AND outcome = 'ok'
        GROUP BY connection, module, record_id, after_status
    ) AS t
    WHERE t.connection = mirror.connection AND t.module = mirror.module
      AND t.record_id = mirror.record_id AND t.after_status = mirror.status;
    UPDATE mirror SET status_since = updated_at WHERE status_since IS NULL;

    CREATE TRIGGER mirror_status_since AFTER UPDATE OF status ON mirror
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE mirror SET status_since = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
        WHERE rowid = NEW.rowid;
    END;

    -- A restriction holds a voided record: restored (by an admin, or in the CRM) it is lifted.
    CREATE TRIGGER mirror_restriction_lifted AFTER UPDATE OF status ON mirror
    WHEN NEW.restricted_at IS NOT NULL AND NEW.status IS NOT 'voided' BEGIN
        UPDATE mirror SET restricted_at = NULL, restricted_reason = NULL WHERE rowid = NEW.rowid;
    END;

    CREATE INDEX mirror_restricted ON mirror (connection, module)
    WHERE restricted_at IS NOT NULL;

    CREATE TABLE legal_holds (
        id             TEXT PRIMARY KEY,
        kind           TEXT NOT NULL,
        connection     TEXT,
        module         TEXT,
        spec           TEXT NOT NULL DEFAULT '{}',
        reason         TEXT NOT NULL,
        created_by     TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        expires_at     TEXT,
        released_at    TEXT,
        released_by    TEXT,
        release_reason TEXT
    );
    CREATE TABLE legal_hold_records (
        hold_id    TEXT NOT NULL,
        connection TEXT NOT NULL,
        module     TEXT NOT NULL,
        record_id  TEXT NOT NULL,
        PRIMARY KEY (connection, module, record_id, hold_id)
    );
    """,
    # 9: what changed since a snapshot (crmsync.snapshots.source.snapshot_mirror), so an
    # incremental snapshot reads the changed rows only. mirror_generation.n is bumped when a
    # snapshot starts; a trigger stamps a row whose content, deletion or key changes with the
    # current generation (change_gen). Rows inserted since are those with a higher rowid
    # (the mark keeps max(rowid)), so inserts, a full pull's bulk of them, pay nothing.
    # snapshot_marks: per (connection, modules, repository) the snapshot the mirror was last
    # taken into, the generation and max rowid at its start, and the repository's index
    # objects then (a prune or erasure deletes those: the mark no longer applies). Deleting a
    # mirror row (erasure) drops the connection's marks: the next snapshot reads everything.
    """
    ALTER TABLE mirror ADD COLUMN change_gen INTEGER;
    CREATE INDEX mirror_changed ON mirror (connection, module, change_gen)
    WHERE change_gen IS NOT NULL;
    CREATE TABLE mirror_generation (n INTEGER NOT NULL);
    INSERT INTO mirror_generation (n) VALUES (0);
    CREATE TABLE snapshot_marks (
        connection  TEXT NOT NULL,
        modules     TEXT NOT NULL,
        repository  TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        indexes     TEXT NOT NULL,
        gen         INTEGER NOT NULL,
        max_rowid   INTEGER NOT NULL,
        PRIMARY KEY (connection, modules, repository)
    );

    CREATE TRIGGER mirror_change_gen
    AFTER UPDATE OF connection, module, record_id, content_hash, crm_deleted_at ON mirror
    WHEN OLD.content_hash IS NOT NEW.content_hash OR OLD.crm_deleted_at IS NOT NEW.crm_deleted_at
      OR OLD.connection IS NOT NEW.connection OR OLD.module IS NOT NEW.module
      OR OLD.record_id IS NOT NEW.record_id
    BEGIN
        UPDATE mirror SET change_gen = (SELECT n FROM mirror_generation) WHERE rowid = NEW.rowid;
        DELETE FROM snapshot_marks WHERE OLD.connection IS NOT NEW.connection
          OR OLD.module IS NOT NEW.module OR OLD.record_id IS NOT NEW.record_id;
    END;
    CREATE TRIGGER mirror_delete_unmarks AFTER DELETE ON mirror BEGIN
        DELETE FROM snapshot_marks WHERE connection = OLD.connection;
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
