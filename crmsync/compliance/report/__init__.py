"""``crmsync compliance report``: what an admin hands an auditor or DPO (issue 9): what is held,
what is past retention, what was purged or erased when and by whom, which snapshots are older
than policy, and what needs action, with the audit chain's verification in the header.

Gathering (:mod:`.gather`, over the store's aggregate queries in
:mod:`crmsync.store.sqlite_compliance`) is separate from rendering: :mod:`.text` (tables),
:mod:`.document` (JSON) and :mod:`.html` (one self-contained page). Retention figures use the
purge planner's own conditions, so the report says what ``crmsync purge`` would do now.

**No personal data.** Records appear only as counts; erased records as ``record_ref`` (the
sha256 of the CRM id, what the audit log keeps once the id is redacted); a filter hold by the
fields it reads, never its values. Hold and release reasons and operator names are shown as
the admins wrote them (they are the audit trail).

**Period.** ``--since``/``--until`` (default: the 90 days before now) select the audit log's
purge, erasure and restriction entries and the holds released or expired; holds, retention
and snapshots are as of now.

**JSON document** (``--json``; keys are stable: keys may be added, never renamed or removed)::

    {
      "format": "crmsync-compliance-report/1",
      "generated_at": "2026-11-25T12:00:00Z",          # the report's "now", UTC
      "period": {"since": "...Z", "until": "...Z"},     # [since, until)
      "connection": null,                                # or the --connection asked for
      "limit": 50,                                       # rows per list; counts are complete
      "nearing_days": 30,
      "audit_chain": {"ok": true, "entries": 812, "head_seq": 812, "head_hash": "ab..",
                      "problem": null},                  # crmsync.audit.verify, whole chain
      "holds": {
        "active": [{"id": "hold-20261101-a1b2c3", "kind": "records",  # records|tag|filter|
                    "scope": "3 record(s) in sales/Leads",              # connection|snapshots
                    "reason": "case 42", "created_by": "legal", "created_at": "...Z",
                    "expires_at": null, "records": 3,   # live mirrored records covered now
                    "snapshots": [],                    # a snapshots hold: its ids (records null)
                    "released_at": null, "released_by": null, "release_reason": null}],
        "released": [...]       # same keys: released or expired in the period
      },
      "retention": [{           # one per mirrored module (rule null: no rule covers it)
        "connection": "sales", "module": "Leads", "rule": "sales/Leads",
        "purge_voided_after": "180d", "purge_archived_after": "3y", "keep_at_least": null,
        "keep_basis": null, "purge_basis": "PIPL-47-1-2",
        "live": 1200,                  # records still in the CRM
        "voided": 340,
        "purgeable": 312,              # voided past retention, not blocked: purge deletes them
        "blocked": 20,                 # voided past retention but held / inside the floor
        "blocked_unrestricted": 2,     # ... of which not yet restricted
        "archived_past_maximum": 0,    # archived past purge_archived_after: to be voided
        "nearing": 14,                 # voided, past retention within nearing_days
        "restricted": 18,
        "restricted_reasons": [{"reason": "GDPR-17-3-e: hold hold-..", "records": 18,
                                "since": "...Z", "until": null}]   # null: until released
      }],
      "activity": {
        "plans": 2,                    # plans with entries in the period (entries: <= limit)
        "entries": [{"plan_id": "..", "kind": "purge",   # purge | erasure | other
                     "action": "purge",                  # purge | erase | restrict
                     "connection": "sales", "module": "Leads", "basis": "PIPL-47-1-2",
                     "done": 312, "failed": 0, "skipped": 1, "first": "...Z", "last": "...Z",
                     "applied_by": ["alice"], "planned_by": "alice", "approved_by": ["carol"]}],
        "erased": {"records": 3,       # erasure proofs in the period
                   "record_refs": [{"time": "...Z", "plan_id": "..", "connection": "sales",
                                    "module": "Contacts", "record_ref": "sha256 hex"}]}
      },
      "open_plans": {           # purge / erasure plans not carried out (as of now)
        "total": 1,             # all of them; "plans" lists at most limit, oldest first
        "plans": [{"id": "..", "kind": "erasure", "status": "planned",   # or applying
                   "created_by": "alice", "created_at": "...Z", "expires_at": "...Z",
                   "approved_by": [], "records": 3, "expired": false}]
      },
      "snapshots": {
        "repository": "/path", "available": true, "problem": null,
        "max_age": "400d", "keep": {"daily": 7},        # [retention] / [snapshots.keep]
        "total": 40, "overdue": 3, "held": 1,
        "listed": [{"id": "..", "time": "..", "connection": "sales", "modules": ["Leads"],
                    "scope": "all", "state": "overdue",  # overdue | held (never both)
                    "reason": "older than snapshots_max_age 400d"}]
      },
      "findings": [{"code": "purge-due", "message": "312 voided sales/Leads record(s) ...",
                    "count": 312, "connection": "sales", "module": "Leads", "ref": null}]
    }

Finding codes: ``audit-chain-broken``, ``purge-due``, ``restrict-due``, ``maximum-exceeded``,
``hold-expiring`` (within nearing_days), ``purge-failed`` / ``erase-failed`` /
``restrict-failed`` (in the period), ``purge-open`` / ``erasure-open`` (a plan waiting for
approval, approved but not applied, left part-way, or an erasure plan that expired unapplied),
``snapshots-overdue``, ``snapshots-unreadable``.
"""
