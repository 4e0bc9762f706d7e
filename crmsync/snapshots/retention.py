"""Which snapshots `crmsync snapshot forget` keeps: restic's `forget` policy, decisions only.

A port of restic's ``ApplyPolicy`` (current ``internal/data/snapshot_policy.go``) and the
checks ``restic forget`` makes around it (``cmd/restic/cmd_forget.go``):

* the policy applies to each group on its own, newest snapshot first;
* ``last``/``hourly``/``daily``/``weekly``/``monthly``/``yearly`` keep the newest snapshot of each
  of their N most recent buckets (-1: every bucket). Buckets are calendar units in ``tz`` (ISO
  weeks); while a rule has counts left, the group's oldest snapshot is kept too
  ("oldest daily snapshot"), as restic has done since 0.16;
* ``within`` keeps what is newer than the duration before the group's newest snapshot that is not
  in the future; years/months/days move the calendar like Go's ``AddDate`` (31 March - 1m is
  3 March, not 28 February), hours are elapsed time;
* each ``tags`` entry is a restic taglist: comma-separated tags a snapshot must all carry
  ('' matches untagged snapshots);
* an empty policy is refused, and so is a policy that would forget every snapshot of a group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# (KeepPolicy field, restic's reason, bucket of a snapshot: its local time and its rank in group)
_RULES: tuple[tuple[str, str, Callable[[datetime, int], object]], ...] = (
    ("last", "last snapshot", lambda t, nr: nr),
    ("hourly", "hourly snapshot", lambda t, nr: (t.year, t.month, t.day, t.hour)),
    ("daily", "daily snapshot", lambda t, nr: (t.year, t.month, t.day)),
    ("weekly", "weekly snapshot", lambda t, nr: tuple(t.isocalendar())[:2]),
    ("monthly", "monthly snapshot", lambda t, nr: (t.year, t.month)),
    ("yearly", "yearly snapshot", lambda t, nr: t.year),
)
_DURATION = re.compile(r"(?:[0-9]+[ymdh])+")
_DURATION_PART = re.compile(r"([0-9]+)([ymdh])")


@dataclass(frozen=True)
class Duration:
    """A ``--keep-within`` duration such as ``1y2m3d4h``."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def __str__(self) -> str:
        parts = ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
        return "".join(f"{n}{unit}" for n, unit in parts if n)

    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, t: datetime, tz: tzinfo | None = None) -> datetime | None:
        """The instant this long before ``t`` (calendar in ``tz``); None if before year 1."""
        wall = t.astimezone(tz).replace(tzinfo=None)
        month0 = wall.month - 1 - self.months
        try:
            year = wall.year - self.years + month0 // 12
            first = wall.replace(year=year, month=month0 % 12 + 1, day=1)
            shifted = first + timedelta(days=wall.day - 1 - self.days)  # Go's AddDate rollover
            aware = shifted.astimezone() if tz is None else shifted.replace(tzinfo=tz)
            return aware.astimezone(UTC) - timedelta(hours=self.hours)
        except (OverflowError, ValueError):
            return None


def parse_duration(text: str, option: str = "--keep-within") -> Duration:
    """Parse ``1y2m3d4h`` (units y, m, d, h in any order, each at most once)."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    units = [unit for _, unit in parts]
    if not _DURATION.fullmatch(text) or len(set(units)) != len(units):
        raise ValueError(f"{option}: {text!r} is not a duration like 1y2m3d4h")
    fields = {"y": "years", "m": "months", "d": "days", "h": "hours"}
    return Duration(**{fields[unit]: int(n) for n, unit in parts})


@dataclass(frozen=True)
class KeepPolicy:
    """The ``--keep-*`` options. Counts: 0 = off, -1 = unlimited."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, _, _ in _RULES:
            count = getattr(self, name)
            if count < -1:
                raise ValueError(
                    f"--keep-{name}: negative values other than -1 (unlimited) are not allowed,"
                    f" got {count}"
                )
        self.within_duration()

    def within_duration(self) -> Duration | None:
        """The parsed ``within``; None when it is absent or zero."""
        if self.within is None:
            return None
        duration = parse_duration(self.within)
        return None if duration.zero() else duration

    def empty(self) -> bool:
        return (
            not self.tags
            and self.within_duration() is None
            and all(getattr(self, name) == 0 for name, _, _ in _RULES)
        )


@dataclass(frozen=True)
class SnapshotRef:
    id: str
    time: datetime  # timezone-aware
    tags: tuple[str, ...] = ()
    group: tuple[object, ...] = ()  # e.g. (connection, modules): the --group-by key

    def __post_init__(self) -> None:
        if self.time.utcoffset() is None:
            raise ValueError(f"snapshot {self.id}: time {self.time} has no timezone")


@dataclass(frozen=True)
class Decision:
    snapshot: SnapshotRef
    keep: bool
    reasons: tuple[str, ...]  # restic's wording, e.g. ("last snapshot", "daily snapshot")


def apply_policy(
    snapshots: Iterable[SnapshotRef],
    policy: KeepPolicy,
    *,
    tz: tzinfo | None = None,
    now: datetime | None = None,
) -> list[Decision]:
    """One decision per snapshot: groups in order of first appearance, newest first in each.

    ``tz``: calendar for the buckets and ``within`` (default: this machine's local time).
    ``now``: snapshots after it are ignored when finding a group's newest (default: the clock).
    """
    if policy.empty():
        raise ValueError(
            "no policy was specified, no snapshots will be removed: give at least one --keep-*"
        )
    groups: dict[tuple[object, ...], list[SnapshotRef]] = {}
    for snapshot in snapshots:
        groups.setdefault(snapshot.group, []).append(snapshot)
    decisions: list[Decision] = []
    for key, members in groups.items():
        newest_first = sorted(members, key=lambda s: s.time, reverse=True)  # stable, as restic
        group = _decide(newest_first, policy, tz, now or datetime.now(UTC))
        if not any(d.keep for d in group):
            raise ValueError(f"refusing to forget every snapshot of group {key!r}")
        decisions += group
    return decisions


def _decide(
    group: list[SnapshotRef], policy: KeepPolicy, tz: tzinfo | None, now: datetime
) -> list[Decision]:
    taglists = [tuple(t.strip() for t in entry.split(",")) for entry in policy.tags]
    within = policy.within_duration()
    past = [s.time for s in group if s.time < now]
    cutoff = within.before(max(past), tz) if within is not None and past else None
    counts = [getattr(policy, name) for name, _, _ in _RULES]
    previous: list[object] = [None] * len(_RULES)
    oldest = len(group) - 1
    decisions = []
    for nr, snapshot in enumerate(group):
        reasons = [f"has tags [{', '.join(t)}]" for t in taglists if _has_tags(snapshot, t)]
        if within is not None and (cutoff is None or snapshot.time > cutoff):
            reasons.append(f"within {within}")
        local = snapshot.time.astimezone(tz)
        for i, (_, reason, bucket) in enumerate(_RULES):
            if counts[i] == 0:
                continue
            value = bucket(local, nr)
            if value != previous[i] or nr == oldest:
                reasons.append(reason if value != previous[i] else f"oldest {reason}")
                previous[i] = value
                if counts[i] > 0:
                    counts[i] -= 1
        decisions.append(Decision(snapshot, bool(reasons), tuple(reasons)))
    return decisions


def _has_tags(snapshot: SnapshotRef, taglist: tuple[str, ...]) -> bool:
    """restic's Snapshot.HasTags: carries all of ``taglist``; '' matches an untagged snapshot."""
    for tag in taglist:
        if tag == "" and not snapshot.tags:
            return True
        if tag not in snapshot.tags:
            return False
    return True
