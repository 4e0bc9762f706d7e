"""``crmsync report``: data quality per connection and module, from the mirror alone.

Gathering (:mod:`~crmsync.report.gather`, over the store's aggregate queries) is separate from
rendering: :mod:`~crmsync.report.text` (tables), :mod:`~crmsync.report.document` (JSON) and
:mod:`~crmsync.report.html` (one self-contained page with SVG charts). The choices — which
records count, age buckets, default fields, duplicate keys — are all in
:mod:`~crmsync.report.model`.

**Which records.** ``records`` and ``status`` count every mirrored record of a module, whatever
its status, including those deleted in the CRM (``deleted_in_crm`` says how many; a record
deleted there keeps its lifecycle status). The quality sections — categories, duplicates,
stale, missing — count the records *in use*: not deleted in the CRM, status active or archived
(``in_use``).

**JSON document** (``--json``; keys are stable: keys may be added, never renamed or removed)::

    {
      "format": "crmsync-report/1",
      "generated_at": "2026-01-01T00:00:00Z",   # the report's "now", UTC
      "stale_field": "modified",                # or "created": the time ages are read from
      "age_buckets": [{"label": "<30d", "max_days": 30}, ..., {"label": ">2y", "max_days": null}],
      "in_use_statuses": ["active", "archived"],
      "connections": [{
        "connection": "sales",
        "modules": [{
          "module": "Leads",
          "records": 120,                       # = sum of status
          "status": {"active": 106, "archived": 12, "voided": 2, "purged": 0},
          "deleted_in_crm": 0,
          "in_use": 118,
          "categories": [{
            "field": "tags",
            "values": [{"value": "VIP", "records": 8}, ...],   # most first, at most --top
            "other": 3,         # records (array fields: elements) beyond the values listed
            "none": 77,         # records with no value (missing, null, blank, [] or {})
            "distinct": 10      # distinct values (none not counted)
          }],
          "duplicates": [{
            "key": "email", "field": "email", "mode": "email",   # crmsync_dupkey mode
            "clusters": 5,      # groups of 2+ records in use sharing the normalised key
            "records": 10,      # records in those groups
            "surplus": 5,       # records - clusters: what keeping one per group would void
            "largest": [{"key": "ann@x.com", "records": 2}, ...]  # normalised keys, at most --top
          }],
          "stale": {
            "field": "modified",
            "buckets": [{"label": "<30d", "records": 8}, ...],   # one per age bucket, in order
            "unknown": 0        # records with no readable time
          },
          "missing": [{"field": "email", "records": 3, "percent": 2.5}]   # percent of in_use
        }]
      }],
      "totals": {"modules": 4, "records": 300, "status": {...}, "deleted_in_crm": 0,
                 "in_use": 292}
    }

For scalar fields a category's ``values`` + ``other`` + ``none`` add up to ``in_use``; array
fields (tags) count each element, so they may add up to more. A configured connection with
nothing mirrored yet appears with ``"modules": []``. An object value (a lookup such as
``{"name": "Ann", "id": "1"}``) counts by its ``name``.
"""
