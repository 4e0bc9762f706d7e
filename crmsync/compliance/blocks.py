"""What stops a record from being deleted now: the one answer purge and erasure both use.

Two things block deletion (precedence, :mod:`crmsync.compliance.precedence`: hold >
statutory minimum > erasure request / maximum retention > policy):

- an active **legal hold** covering the record (:mod:`crmsync.compliance.holds`): blocks until
  it is released or expires;
- a **statutory floor** (``keep_at_least`` of the record's ``[[retention.rules]]``): blocks
  until the floor's clock plus the period has passed.

A record with no entry in the result may be deleted as far as these blocks go; whether it
*should* be is the caller's business (retention, an erasure request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from crmsync.compliance import holds
from crmsync.compliance.retention import RetentionRule, floor_clock_sql, retention_of
from crmsync.store import Store

BlockKind = Literal["hold", "statutory"]


@dataclass(frozen=True)
class Block:
    """Why a record may not be deleted now.

    ``kind``: "hold" (a legal hold) or "statutory" (a retention floor). ``reason``: a short
    text naming the hold id and its reason, or the floor's legal-basis code and period (no
    field values). ``until``: when the block ends on its own (ISO-8601 UTC), or None for a
    hold without expiry (it ends when released).
    """

    kind: BlockKind
    reason: str
    until: str | None = None
    code: str | None = None  # the legal-basis code (floor) or the hold id


def hold_block(hold: holds.Hold) -> Block:
    return Block(
        "hold",
        f"legal hold {hold.id} ({hold.reason}; by {hold.created_by})",
        hold.expires_at,
        hold.id,
    )


def deletion_blocks(
    store: Store,
    config: Any,
    connection: str,
    module: str,
    record_ids: Sequence[str],
    now: datetime | None = None,
) -> dict[str, Block]:
    """``{record_id: Block}`` for each of ``record_ids`` (of ``connection/module``) that may
    not be deleted at ``now``; a record under both a hold and a floor gets the hold (it
    ranks first). ``config``: the loaded :class:`~crmsync.config.Config`. Records the mirror
    does not have can only be held by id (their floor's clock is unknown)."""
    now = now or datetime.now(UTC)
    ids = list(dict.fromkeys(record_ids))
    out: dict[str, Block] = {
        rid: hold_block(hold)
        for rid, hold in holds.held_ids(store, connection, module, ids, now).items()
    }
    rule = retention_of(config).rule_for(connection, module)
    todo = [rid for rid in ids if rid not in out]
    if rule is not None and rule.keep_at_least is not None and todo:
        out.update(statutory_blocks(store, rule, connection, module, todo, now))
    return out


def statutory_blocks(
    store: Store,
    rule: RetentionRule,
    connection: str,
    module: str,
    record_ids: Sequence[str],
    now: datetime,
) -> dict[str, Block]:
    """The records whose statutory floor (``rule.keep_at_least``) has not passed at ``now``."""
    assert rule.keep_at_least is not None
    days = rule.keep_at_least.total_seconds() / 86400
    clock = floor_clock_sql(rule.keep_from)
    until = f"strftime('%Y-%m-%dT%H:%M:%SZ', {clock}, '+{days!r} days')"
    out: dict[str, Block] = {}
    ends_of = store.mirror_values(connection, module, record_ids, [until])
    for rid, (ends,) in ends_of.items():
        if ends is None or ends > now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
            out[rid] = Block(
                "statutory",
                f"statutory minimum {rule.text('keep_at_least')} from {rule.keep_from}"
                f" ({rule.keep_basis})",
                ends,
                rule.keep_basis,
            )
    return out
