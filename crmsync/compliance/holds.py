"""Legal holds: records kept no matter what (litigation, audits), until released.

A hold names its scope one way: ``records`` (CONN:MODULE:ID each, in ``legal_hold_records``),
``tag`` (records whose ``tags``/``Tag`` list has it, ignoring ASCII case), ``filter`` (the
policy filter language over one connection/module), ``connection`` (a whole connection, or one
module of it), or ``snapshots`` (snapshot ids that ``snapshot forget`` must keep). It has a
reason, an operator, and optionally an expiry; release keeps the row (who, when, why).

Held records may be archived or voided but never purged or erased: :func:`held_sql` is the
one SQL predicate that says "held" (purge plans compile it in), :func:`held_ids` the same for
a list of ids (apply re-checks with it). Holds are few, so they are read whole; the records
they cover are found in SQL, never loaded.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crmsync.audit.model import AuditEntry
from crmsync.compliance.hold_model import KINDS, TAG_KEYS, Hold, stamp  # also imported from here
from crmsync.errors import ConfigError, GuardError
from crmsync.policy.model import Filter
from crmsync.policy.sql import compile_filter
from crmsync.policy.validate import check_policies
from crmsync.store import Store


def list_holds(store: Store, *, include_released: bool = False) -> list[Hold]:
    return store.list_holds(include_released=include_released)


def get_hold(store: Store, hold_id: str) -> Hold | None:
    return store.get_hold(hold_id)


def active_holds(store: Store, now: datetime) -> list[Hold]:
    return [h for h in list_holds(store) if h.active(now)]


# --------------------------------------------------------------------------- scope parsing


def parse_record_ref(text: str) -> tuple[str, str, str]:
    """``CONN:MODULE:ID`` -> its parts (the id may contain ':'); ConfigError otherwise."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"expected CONNECTION:MODULE:ID, got {text!r}", path="--record")
    return parts[0], parts[1], parts[2]


def parse_filter(node: Any, connection: str, module: str) -> Filter:
    """A filter in the policy language (as a dict), checked like a policy's; ConfigError
    naming the key under ``--filter`` otherwise."""
    table = {
        "name": "hold",
        "connection": connection,
        "module": module,
        "action": "archive",
        "filter": node,
    }
    policies, problems = check_policies([table])
    if problems:
        first = problems[0]
        path = first.path.replace("policies.hold.filter", "--filter", 1)
        raise ConfigError(first.message, path=path)
    return policies[0].filter


def filter_of(hold: Hold) -> Filter:
    assert hold.connection and hold.module
    return parse_filter(hold.spec["filter"], hold.connection, hold.module)


# --------------------------------------------------------------------------- add / release


def new_hold_id(now: datetime) -> str:
    return f"hold-{now.astimezone(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def add_hold(
    store: Store,
    *,
    kind: str,
    reason: str,
    operator: str,
    connection: str | None = None,
    module: str | None = None,
    spec: Mapping[str, Any] | None = None,
    records: Iterable[tuple[str, str, str]] = (),
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Hold:
    """Store a hold and audit it (``hold.add``), in one transaction. The caller has checked
    the scope (:func:`parse_filter`, :func:`parse_record_ref`)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown hold kind {kind!r} (kinds: {', '.join(KINDS)})")
    if not reason.strip():
        raise ConfigError("a hold needs a reason", path="--reason")
    now = now or datetime.now(UTC)
    hold_id = new_hold_id(now)
    rows = sorted(set(records))
    if kind == "records" and not rows:
        raise ConfigError("a records hold needs at least one --record", path="--record")
    if kind == "records" and len({(c, m) for c, m, _ in rows}) == 1:
        connection, module = rows[0][0], rows[0][1]
    expires = stamp(expires_at) if expires_at else None
    new = Hold(hold_id, kind, reason, operator, stamp(now), connection, module,
               dict(spec or {}), expires)  # fmt: skip
    with store.transaction() as tx:
        tx.add_hold(new, rows)
        tx.append_audit(
            [
                AuditEntry(
                    "hold.add",
                    operator,
                    connection=connection,
                    module=module,
                    detail={
                        "hold": hold_id,
                        "kind": kind,
                        "records": len(rows),
                        # a tag or snapshot id is not personal data; a filter may hold values,
                        # and the audit log keeps none: the hold row keeps the filter
                        **({"tag": spec["tag"]} if spec and "tag" in spec else {}),
                        **(
                            {"snapshots": list(spec["snapshots"])}
                            if spec and "snapshots" in spec
                            else {}
                        ),
                        "expires_at": expires,
                    },
                )
            ]
        )
    hold = get_hold(store, hold_id)
    assert hold is not None
    return hold


def release_hold(
    store: Store, hold_id: str, *, reason: str, operator: str, now: datetime | None = None
) -> Hold:
    """Release a hold (kept, with who/when/why) and audit it (``hold.release``)."""
    hold = get_hold(store, hold_id)
    if hold is None:
        raise ConfigError(f"no hold {hold_id!r}; `crmsync hold list` shows them", path="HOLD_ID")
    if hold.released_at is not None:
        raise GuardError(
            f"hold {hold_id} was already released at {hold.released_at} by {hold.released_by}"
        )
    if not reason.strip():
        raise ConfigError("releasing a hold needs a reason", path="--reason")
    now = now or datetime.now(UTC)
    with store.transaction() as tx:
        tx.release_hold(hold_id, released_at=stamp(now), operator=operator, reason=reason)
        tx.append_audit(
            [
                AuditEntry(
                    "hold.release",
                    operator,
                    connection=hold.connection,
                    module=hold.module,
                    detail={"hold": hold_id, "kind": hold.kind, "reason_given": True},
                )
            ]
        )
    released = get_hold(store, hold_id)
    assert released is not None
    return released


# --------------------------------------------------------------------------- which records


def _applies(hold: Hold, connection: str, module: str) -> bool:
    return (hold.connection in (None, connection)) and (hold.module in (None, module))


def held_sql(
    holds: Sequence[Hold], connection: str, module: str, now: datetime, alias: str = ""
) -> tuple[str, list[Any]]:
    """A SQL expression over a mirror row (``alias``: its table alias, or none), true when
    one of ``holds`` that is active at ``now`` covers the record of ``connection/module``."""
    a = f"{alias or 'mirror'}."  # qualified: the sub-queries have record_id columns too
    parts: list[str] = []
    params: list[Any] = []
    record_holds = []
    for hold in holds:
        if (
            hold.kind == "snapshots"
            or not hold.active(now)
            or not _applies(hold, connection, module)
        ):
            continue
        if hold.kind == "connection":
            return "1", []  # the whole module is held
        if hold.kind == "records":
            record_holds.append(hold.id)
        elif hold.kind == "tag":
            element = (
                "CASE t.type WHEN 'object' THEN json_extract(t.value, '$.name') ELSE t.value END"
            )
            for key in TAG_KEYS:
                parts.append(
                    f"EXISTS (SELECT 1 FROM json_each({a}data, '$.{key}') AS t"
                    f" WHERE {element} = ? COLLATE NOCASE)"
                )
                params.append(hold.spec["tag"])
        elif hold.kind == "filter":
            sql, sub = compile_filter(filter_of(hold), now)
            if alias:
                # compile_filter names the row's columns bare: evaluate it on the row itself
                sql = f"EXISTS (SELECT 1 FROM mirror WHERE mirror.rowid = {a}rowid AND {sql})"
            parts.append(sql)
            params += sub
    if record_holds:
        marks = ", ".join("?" * len(record_holds))
        parts.append(
            "EXISTS (SELECT 1 FROM legal_hold_records r WHERE r.connection = ?"
            f" AND r.module = ? AND r.record_id = {a}record_id AND r.hold_id IN ({marks}))"
        )
        params += [connection, module, *record_holds]
    if not parts:
        return "0", []
    return "(" + " OR ".join(parts) + ")", params


def holding_sql(
    holds: Sequence[Hold], connection: str, module: str, now: datetime
) -> tuple[str, list[Any]]:
    """A SQL expression over a ``mirror`` row: the JSON array (text) of the ids of ``holds``
    active at ``now`` that cover it (``[]`` for none). Each hold's own test of :func:`held_sql`,
    so it costs a few times that per row: evaluate it only on rows already known to be held."""
    selects: list[str] = []
    params: list[Any] = []
    record_holds: list[str] = []
    for hold in holds:
        if (
            hold.kind == "snapshots"
            or not hold.active(now)
            or not _applies(hold, connection, module)
        ):
            continue
        if hold.kind == "records":
            record_holds.append(hold.id)
            continue
        sql, sub = held_sql([hold], connection, module, now)
        selects.append(f"SELECT ? AS id WHERE {sql}")  # correlated: the outer mirror row
        params += [hold.id, *sub]
    if record_holds:
        marks = ", ".join("?" * len(record_holds))
        selects.append(
            "SELECT r.hold_id AS id FROM legal_hold_records r WHERE r.connection = ?"
            f" AND r.module = ? AND r.record_id = mirror.record_id AND r.hold_id IN ({marks})"
        )
        params += [connection, module, *record_holds]
    if not selects:
        return "'[]'", []
    return f"(SELECT json_group_array(id) FROM ({' UNION ALL '.join(selects)}))", params


def held_ids(
    store: Store,
    connection: str,
    module: str,
    record_ids: Sequence[str],
    now: datetime,
    holds: Sequence[Hold] | None = None,
) -> dict[str, Hold]:
    """Which of ``record_ids`` an active hold covers, and the first hold that does."""
    holds = active_holds(store, now) if holds is None else holds
    out: dict[str, Hold] = {}
    for hold in holds:
        if hold.kind == "snapshots" or not _applies(hold, connection, module):
            continue
        todo = [r for r in record_ids if r not in out]
        if not todo:
            break
        if hold.kind == "connection":
            found = set(todo)
        elif hold.kind == "records":
            # held by id: held even where the mirror no longer has the record
            found = store.hold_record_ids(hold.id, connection, module, todo)
        else:
            found = store.mirror_ids_where(
                connection, module, todo, held_sql([hold], connection, module, now)
            )
        for rid in found:
            out.setdefault(rid, hold)
    return out


def covered_now(store: Store, hold: Hold, now: datetime) -> int:
    """How many mirrored records ``hold`` covers at ``now`` (0 for a snapshots hold)."""
    total = 0
    if hold.kind == "snapshots":
        return total
    for counted in store.module_counts(hold.connection):
        c, m = counted.connection, counted.module
        if _applies(hold, c, m):
            sql, params = held_sql([hold], c, m, now)
            if sql != "0":
                total += store.mirror_condition_counts(c, m, [(sql, params)])[0]
    return total


def held_snapshots(store: Store, now: datetime) -> dict[str, Hold]:
    """Snapshot ids (as written in the hold) that an active hold keeps from ``forget``."""
    out: dict[str, Hold] = {}
    for hold in active_holds(store, now):
        if hold.kind == "snapshots":
            for sid in hold.spec.get("snapshots", []):
                out.setdefault(str(sid), hold)
    return out
