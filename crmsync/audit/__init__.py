"""The tamper-evident audit log: entry format (model), chain verification, export/import.

The store keeps the entries (``Store.transaction().append_audit``); this package knows what an
entry is and how to check a chain, wherever the entries come from (the store or an export).
Nothing here imports the store at module level: the store imports the model.
"""

from crmsync.audit.model import (
    FIELDS,
    FORMAT_VERSION,
    GENESIS_HASH,
    RECORD_ACTIONS,
    AuditEntry,
    AuditQuery,
    AuditRecord,
    current_operator,
    parse_time,
    record_ref,
    seal,
)
from crmsync.audit.verify import MalformedEntry, Problem, VerifyResult, verify_chain, verify_store

__all__ = [
    "FIELDS",
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "RECORD_ACTIONS",
    "AuditEntry",
    "AuditQuery",
    "AuditRecord",
    "MalformedEntry",
    "Problem",
    "VerifyResult",
    "current_operator",
    "parse_time",
    "record_ref",
    "seal",
    "verify_chain",
    "verify_store",
]
