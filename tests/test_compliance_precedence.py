"""Precedence: legal hold > statutory minimum > erasure request / maximum retention > policy,
over every combination of the facts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.compliance.precedence import (
    BASIS_ERASURE,
    BASIS_HOLD,
    BASIS_MAXIMUM,
    BASIS_RETENTION,
    Facts,
    decide,
)

HOLD = "legal hold hold-1 (case; by legal)"
FLOOR = "2030-01-01T00:00:00Z"


def facts(held, floor, erasure, maximum, policy):
    return Facts(
        held=HOLD if held else None,
        floor_until=FLOOR if floor else None,
        floor_basis="HGB-257" if floor else None,
        erasure_requested=erasure,
        maximum_passed=maximum,
        policy_purge=policy,
    )


def expected(held, floor, erasure, maximum, policy):
    due = erasure or maximum or policy
    if held:
        return ("restrict" if due else "keep", BASIS_HOLD)
    if floor:
        return ("restrict" if due else "keep", "HGB-257")
    if erasure:
        return ("purge", BASIS_ERASURE)
    if maximum:
        return ("purge", BASIS_MAXIMUM)
    if policy:
        return ("purge", BASIS_RETENTION)
    return ("none", None)


@pytest.mark.parametrize("combo", list(itertools.product([False, True], repeat=5)))
def test_every_combination_follows_the_precedence(combo):
    decision = decide(facts(*combo))
    assert (decision.verdict, decision.basis) == expected(*combo)


@pytest.mark.parametrize(
    ("combo", "verdict", "reason"),
    [
        ((True, True, True, True, True), "restrict", "under legal hold hold-1"),
        ((False, True, True, False, False), "restrict", "statutory minimum (HGB-257) until 2030"),
        ((False, False, True, True, True), "purge", "erasure requested"),
        ((False, False, False, True, True), "purge", "maximum retention passed"),
        ((False, False, False, False, True), "purge", "past its retention period"),
        ((True, False, False, False, False), "keep", "kept by legal hold"),
        ((False, False, False, False, False), "none", "no retention rule"),
    ],
)
def test_the_reason_names_what_decided(combo, verdict, reason):
    decision = decide(facts(*combo))
    assert decision.verdict == verdict and reason in decision.reason


@given(st.tuples(*[st.booleans()] * 5))
def test_a_held_record_is_never_purged(combo):
    held = (True, *combo[1:])
    assert decide(facts(*held)).verdict in ("restrict", "keep")


@given(st.tuples(*[st.booleans()] * 5))
def test_a_blocked_record_is_purged_only_once_the_block_ends(combo):
    _, _, erasure, maximum, policy = combo
    blocked = decide(facts(False, True, erasure, maximum, policy))
    freed = decide(facts(False, False, erasure, maximum, policy))
    assert blocked.verdict != "purge"
    assert (blocked.verdict == "restrict") == (freed.verdict == "purge")
