"""`snapshot forget` decisions follow restic's `forget` policy (crmsync/snapshots/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crmsync.snapshots.retention import (
    Decision,
    Duration,
    KeepPolicy,
    SnapshotRef,
    apply_policy,
    parse_duration,
)

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def snap(when: str | datetime, *tags: str, group: tuple[object, ...] = ("crm", "leads")):
    time = when if isinstance(when, datetime) else datetime.fromisoformat(when).replace(tzinfo=UTC)
    return SnapshotRef(id=time.isoformat(), time=time, tags=tags, group=group)


def decide(snapshots, tz=UTC, **policy) -> list[Decision]:
    return apply_policy(snapshots, KeepPolicy(**policy), tz=tz)


def kept(decisions: list[Decision]) -> dict[str, tuple[str, ...]]:
    return {d.snapshot.id: d.reasons for d in decisions if d.keep}


def test_keep_daily_7_of_30_daily_snapshots_keeps_the_7_newest_days():
    snaps = [snap(T0 - timedelta(days=i)) for i in range(30)]
    decisions = decide(snaps, daily=7)
    assert [d.snapshot for d in decisions] == snaps  # every snapshot once, newest first
    assert kept(decisions) == {s.id: ("daily snapshot",) for s in snaps[:7]}


def test_daily_rule_keeps_only_the_newest_snapshot_of_a_day():
    snaps = [snap(f"2026-01-05T{h}:00") for h in ("08", "12", "18")] + [snap("2026-01-04T09:00")]
    assert kept(decide(snaps, daily=5)) == {
        "2026-01-05T18:00:00+00:00": ("daily snapshot",),
        "2026-01-04T09:00:00+00:00": ("daily snapshot",),
    }


def test_oldest_snapshot_is_kept_while_a_rule_has_counts_left():
    # restic >= 0.16 (PR #4366, reason wording PR #5039): "the oldest snapshot is kept
    # additionally and marked as oldest" (doc/060_forget.rst).
    snaps = [snap(f"2026-01-05T{h}:00") for h in ("08", "12", "18")]
    assert kept(decide(snaps, daily=7)) == {
        "2026-01-05T18:00:00+00:00": ("daily snapshot",),
        "2026-01-05T08:00:00+00:00": ("oldest daily snapshot",),
    }


def test_keep_last_and_keep_daily_overlap_reports_both_reasons():
    snaps = [snap(T0 - timedelta(days=i)) for i in range(3)]
    assert list(kept(decide(snaps, last=2, daily=1)).values()) == [
        ("last snapshot", "daily snapshot"),
        ("last snapshot",),
    ]


def test_weekly_buckets_are_iso_weeks_across_a_year_boundary():
    # 2025-12-29 (Mon) .. 2026-01-04 (Sun) is ISO week 2026-W01; 2025-12-28 (Sun) is 2025-W52.
    days = ("2025-12-27", "2025-12-28", "2025-12-29", "2026-01-01", "2026-01-04")
    snaps = [snap(f"{d}T10:00") for d in days]
    assert set(kept(decide(snaps, weekly=2))) == {
        "2026-01-04T10:00:00+00:00",
        "2025-12-28T10:00:00+00:00",
    }


def test_monthly_and_yearly_keep_the_newest_of_each_month_and_year():
    days = ("2024-11-15", "2024-12-10", "2024-12-20", "2025-01-05", "2025-01-25", "2025-02-14")
    snaps = [snap(f"{d}T10:00") for d in days]
    assert kept(decide(snaps, monthly=3, yearly=2)) == {
        "2025-02-14T10:00:00+00:00": ("monthly snapshot", "yearly snapshot"),
        "2025-01-25T10:00:00+00:00": ("monthly snapshot",),
        "2024-12-20T10:00:00+00:00": ("monthly snapshot", "yearly snapshot"),
    }


def test_keep_within_counts_back_from_the_newest_snapshot_with_go_month_arithmetic():
    # Like Go's AddDate (restic), 31 March - 1 month is "31 February" = 3 March, not 28 February.
    snaps = [snap(t) for t in ("2026-03-31T12:00", "2026-03-03T13:00", "2026-03-03T12:00")]
    snaps.append(snap("2026-03-01T12:00"))
    assert kept(decide(snaps, within="1m")) == {
        "2026-03-31T12:00:00+00:00": ("within 1m",),
        "2026-03-03T13:00:00+00:00": ("within 1m",),
    }
    assert Duration(months=1).before(snaps[0].time, UTC) == snaps[2].time


def test_keep_within_ignores_future_snapshots_when_finding_the_newest():
    snaps = [snap("2026-01-10T00:00"), snap("2026-01-05T12:00"), snap("2026-01-01T00:00")]
    decisions = apply_policy(
        snaps, KeepPolicy(within="2d"), tz=UTC, now=datetime(2026, 1, 6, tzinfo=UTC)
    )
    assert set(kept(decisions)) == {snaps[0].id, snaps[1].id}


def test_keep_tag_keeps_snapshots_carrying_a_taglist():
    snaps = [snap("2026-01-03", "pinned"), snap("2026-01-02", "a"), snap("2026-01-01", "a", "b")]
    snaps.append(snap("2025-12-31"))
    assert kept(decide(snaps, tags=("pinned", "a,b"))) == {
        snaps[0].id: ("has tags [pinned]",),
        snaps[2].id: ("has tags [a, b]",),
    }
    assert set(kept(decide(snaps, tags=("",)))) == {snaps[3].id}  # '' = untagged (restic)


def test_policy_that_would_forget_a_whole_group_is_refused():
    with pytest.raises(ValueError, match="refusing to forget every snapshot of group"):
        decide([snap("2026-01-01", "x")], tags=("pinned",))


def test_groups_are_decided_independently():
    a = [snap(T0 - timedelta(days=i), group=("crm", "leads")) for i in range(3)]
    b = [snap(T0 - timedelta(days=40 + i), group=("crm", "deals")) for i in range(3)]
    decisions = decide([a[2], b[0], a[0], b[2], a[1], b[1]], last=1, within="1d1h")
    assert [d.snapshot for d in decisions] == a + b
    assert set(kept(decisions)) == {a[0].id, a[1].id, b[0].id, b[1].id}


def test_minus_one_keeps_the_newest_of_every_bucket():
    snaps = [snap(T0 - timedelta(days=i)) for i in range(10)]
    early = snap(T0 - timedelta(days=4, hours=6))  # same day as snaps[4], earlier
    assert set(kept(decide([*snaps, early], daily=-1))) == {s.id for s in snaps}


@pytest.mark.parametrize("policy", [KeepPolicy(), KeepPolicy(daily=0, within="0d")])
def test_empty_policy_is_refused(policy):
    with pytest.raises(ValueError, match="no policy was specified"):
        apply_policy([snap(T0)], policy, tz=UTC)


@pytest.mark.parametrize("text", ["3x", "", "d3", "1d1d", "-1d", "1.5d", "3 d"])
def test_malformed_duration_is_refused_naming_the_option(text):
    with pytest.raises(ValueError, match=r"^--keep-within: .* is not a duration like 1y2m3d4h"):
        KeepPolicy(within=text)


def test_durations_parse_in_any_order_and_print_like_restic():
    assert parse_duration("4h1y3d2m") == Duration(years=1, months=2, days=3, hours=4)
    assert str(parse_duration("1y1d1m")) == "1y1m1d"


@pytest.mark.parametrize("field", ["last", "hourly", "daily", "weekly", "monthly", "yearly"])
def test_negative_count_other_than_minus_one_is_refused_naming_the_option(field):
    with pytest.raises(ValueError, match=f"^--keep-{field}: negative values other than -1"):
        KeepPolicy(**{field: -2})


def test_tz_moves_a_late_evening_snapshot_into_the_next_day():
    snaps = [snap("2026-01-06T08:00"), snap("2026-01-05T23:30"), snap("2026-01-05T12:00")]
    assert set(kept(decide(snaps, daily=2, tz=UTC))) == {snaps[0].id, snaps[1].id}
    paris_winter = timezone(timedelta(hours=1))  # 23:30 UTC is 00:30 on 6 January
    assert set(kept(decide(snaps, daily=2, tz=paris_winter))) == {snaps[0].id, snaps[2].id}


def test_restic_documentation_example_keep_daily_4_of_12_sundays():
    # restic doc/060_forget.rst, "Removing snapshots according to a policy": one backup every
    # Sunday for 12 weeks, `forget --keep-daily 4` keeps the last four Sundays.
    snaps = [snap(datetime(2019, 9, 1, 11, tzinfo=UTC) + timedelta(weeks=i)) for i in range(12)]
    assert [d.snapshot.time.date().isoformat() for d in decide(snaps, daily=4) if d.keep] == [
        "2019-11-17",
        "2019-11-10",
        "2019-11-03",
        "2019-10-27",
    ]


# restic internal/data/snapshot_policy_test.go, TestApplyPolicy's testExpireSnapshots (UTC).
_RESTIC_FIXTURE_TIMES = """
2014-09-01T10:20:30 2014-09-02T10:20:30 2014-09-05T10:20:30 2014-09-06T10:20:30
2014-09-08T10:20:30 2014-09-09T10:20:30 2014-09-10T10:20:30 2014-09-11T10:20:30
2014-09-20T10:20:30 2014-09-22T10:20:30 2014-08-08T10:20:30 2014-08-10T10:20:30
2014-08-12T10:20:30 2014-08-13T10:20:30 2014-08-13T10:20:30.1 2014-08-15T10:20:30
2014-08-18T10:20:30 2014-08-20T10:20:30 2014-08-21T10:20:30 2014-08-22T10:20:30
2014-10-01T10:20:30 2014-10-02T10:20:30 2014-10-05T10:20:30 2014-10-06T10:20:30
2014-10-08T10:20:30 2014-10-09T10:20:30 2014-10-10T10:20:30 2014-10-11T10:20:30
2014-10-20T10:20:30 2014-10-22T10:20:30 2014-11-08T10:20:30 2014-11-10T10:20:30
2014-11-12T10:20:30 2014-11-13T10:20:30 2014-11-13T10:20:30.1 2014-11-15T10:20:30
2014-11-18T10:20:30 2014-11-20T10:20:30 2014-11-21T10:20:30 2014-11-22T10:20:30
2015-09-01T10:20:30 2015-09-02T10:20:30 2015-09-05T10:20:30 2015-09-06T10:20:30
2015-09-08T10:20:30 2015-09-09T10:20:30 2015-09-10T10:20:30 2015-09-11T10:20:30
2015-09-20T10:20:30 2015-09-22T10:20:30 2015-08-08T10:20:30 2015-08-10T10:20:30
2015-08-12T10:20:30 2015-08-13T10:20:30 2015-08-13T10:20:30.1 2015-08-15T10:20:30
2015-08-18T10:20:30 2015-08-20T10:20:30 2015-08-21T10:20:30 2015-08-22T10:20:30
2015-10-01T10:20:30 2015-10-02T10:20:30 2015-10-05T10:20:30 2015-10-06T10:20:30
2015-10-08T10:20:30 2015-10-09T10:20:30 2015-10-10T10:20:30 2015-10-11T10:20:30
2015-10-20T10:20:30 2015-10-22T10:20:30 2015-10-22T10:20:30 2015-10-22T10:20:30
2015-10-22T10:20:30 2015-10-22T10:20:30 2015-11-08T10:20:30 2015-11-10T10:20:30
2015-11-12T10:20:30 2015-11-13T10:20:30 2015-11-13T10:20:30.1 2015-11-15T10:20:30
2015-11-18T10:20:30 2015-11-20T10:20:30 2015-11-21T10:20:30 2015-11-22T10:20:30
2016-01-01T01:02:03 2016-01-01T01:03:03 2016-01-01T07:08:03 2016-01-03T07:02:03
2016-01-04T10:23:03 2016-01-04T11:23:03 2016-01-04T12:23:03 2016-01-04T12:24:03
2016-01-04T12:28:03 2016-01-04T12:30:03 2016-01-04T16:23:03 2016-01-05T09:02:03
2016-01-06T08:02:03 2016-01-07T10:02:03 2016-01-08T20:02:03 2016-01-09T21:02:03
2016-01-12T21:02:03 2016-01-12T21:08:03 2016-01-18T12:02:03
"""
RESTIC_FIXTURE = _RESTIC_FIXTURE_TIMES.split()


@pytest.mark.parametrize(
    ("golden", "policy", "want"),
    [
        (
            "policy_keep_snapshots_15",
            KeepPolicy(daily=2, weekly=2, monthly=6),
            [
                ("2016-01-18T12:02:03", ("daily snapshot", "weekly snapshot", "monthly snapshot")),
                ("2016-01-12T21:08:03", ("daily snapshot", "weekly snapshot")),
                ("2015-11-22T10:20:30", ("monthly snapshot",)),
                ("2015-10-22T10:20:30", ("monthly snapshot",)),
                ("2015-09-22T10:20:30", ("monthly snapshot",)),
                ("2015-08-22T10:20:30", ("monthly snapshot",)),
                ("2014-11-22T10:20:30", ("monthly snapshot",)),
            ],
        ),
        (
            "policy_keep_snapshots_16",
            KeepPolicy(yearly=10),
            [
                ("2016-01-18T12:02:03", ("yearly snapshot",)),
                ("2015-11-22T10:20:30", ("yearly snapshot",)),
                ("2014-11-22T10:20:30", ("yearly snapshot",)),
                ("2014-08-08T10:20:30", ("oldest yearly snapshot",)),
            ],
        ),
        (
            "policy_keep_snapshots_24",
            KeepPolicy(within="1m"),
            [(t, ("within 1m",)) for t in sorted(RESTIC_FIXTURE, reverse=True) if t > "2015-12"],
        ),
    ],
)
def test_restic_golden_files(golden, policy, want):
    # Expected keeps and reasons from restic internal/data/testdata/<golden>.
    decisions = apply_policy([snap(t) for t in RESTIC_FIXTURE], policy, tz=UTC)
    assert len(decisions) == len(RESTIC_FIXTURE) == 103
    got = [(d.snapshot.time.strftime("%Y-%m-%dT%H:%M:%S"), d.reasons) for d in decisions if d.keep]
    assert got == want
