"""crmsync.ratelimit.SlidingWindowLimiter on a fake clock: no window of ``period`` seconds ever
holds more than ``calls`` starts, and a call waits no longer than it must."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.http import HttpClient
from crmsync.ratelimit import SlidingWindowLimiter, Window
from tests.http_fakes import FakeServer, FakeSleep, Reply


class Clock:
    """A clock that ``sleep`` advances (the limiter's sleeps take no real time)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.t = now
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def limiter_on(clock: Clock, windows: dict[str, Window], **kw) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(windows, clock=clock.now, sleep=clock.sleep, **kw)


def assert_within(starts: list[float], calls: int, period: float) -> None:
    starts = sorted(starts)
    for i in range(len(starts) - calls):
        assert starts[i + calls] - starts[i] >= period, (i, starts[i : i + calls + 1], period)


def free_after(start: float, period: float) -> float:
    """The first moment ``start`` has left a ``period`` window (as the limiter rounds)."""
    t = start + period
    while t - start < period:
        t = math.nextafter(t, math.inf)
    return t


def earliest_fit(
    arrival: float, keys: tuple[str, ...], windows: dict[str, Window], past: dict[str, list]
) -> float:
    """Brute force: the first moment at or after ``arrival`` that fits every named window."""
    named = [k for k in dict.fromkeys(keys) if k in windows]
    candidates = {arrival}
    for key in named:
        candidates |= {free_after(s, windows[key][1]) for s in past[key]}

    def fits(t: float) -> bool:
        return all(sum(1 for s in past[k] if t - s < windows[k][1]) < windows[k][0] for k in named)

    return min(t for t in candidates if t >= arrival and fits(t))


window_sizes = st.tuples(
    st.integers(min_value=1, max_value=5),
    st.one_of(st.sampled_from([0.1, 0.25, 1.0, 20.0]), st.floats(min_value=0.01, max_value=30)),
)
arrivals = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(min_value=0, max_value=5)),  # gap since the last call
        st.lists(st.sampled_from(["a", "b", "global", "unlimited"]), min_size=1, max_size=3),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    windows=st.dictionaries(st.sampled_from(["a", "b", "global"]), window_sizes, min_size=1),
    calls=arrivals,
)
def test_no_window_ever_holds_more_than_its_calls_and_no_call_waits_longer_than_it_must(
    windows: dict[str, Window], calls: list[tuple[float, list[str]]]
) -> None:
    clock = Clock()
    limiter = limiter_on(clock, windows)
    past: dict[str, list[float]] = {key: [] for key in windows}
    total_wait = 0.0
    for gap, keys in calls:
        clock.t += gap
        arrival = clock.t
        expected = earliest_fit(arrival, tuple(keys), windows, past)
        waited = limiter.wait(*keys)
        start = clock.t
        assert start == expected  # a call that fits goes at once; one that does not, no later
        assert (waited > 0) == (start > arrival)
        total_wait += waited
        for key in dict.fromkeys(keys):
            if key in past:
                past[key].append(start)
    for key, (calls_allowed, period) in windows.items():
        assert_within(past[key], calls_allowed, period)
    assert limiter.waited == pytest.approx(total_wait)


def test_a_burst_goes_at_once_and_the_next_call_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = Clock()
    limiter = limiter_on(clock, {"list": (3, 1.0)})
    assert [limiter.wait("list") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("list") == 1.0 and clock.t == 1001.0
    clock.t += 5  # idle time (the mirror committing) is not lost: a full window goes at once
    assert [limiter.wait("list") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.delayed == 1 and limiter.waited == 1.0


def test_a_call_waits_for_the_fullest_of_the_windows_it_names() -> None:
    clock = Clock()
    limiter = limiter_on(clock, {"data/list": (5, 1.0), "global": (2, 1.0)})
    limiter.wait("data/create", "global")
    limiter.wait("data/create", "global")  # no window of its own: counts only in global
    assert limiter.wait("data/list", "global") == 1.0  # list has room, global does not


def test_a_default_window_gives_each_key_its_own_log() -> None:
    clock = Clock()
    limiter = limiter_on(clock, {}, default=(2, 20.0))
    limiter.wait("/object/query")
    limiter.wait("/object/query")
    assert limiter.wait("/object/update") == 0.0  # another endpoint, another window
    assert limiter.wait("/object/query") == 20.0
    assert limiter.window("/object/create") == (2, 20.0)


def test_keys_without_a_window_and_no_default_are_not_limited() -> None:
    clock = Clock()
    limiter = limiter_on(clock, {"a": (1, 1.0)})
    assert [limiter.wait("b") for _ in range(50)] == [0.0] * 50
    assert limiter.window("b") is None and clock.sleeps == []


def test_a_key_named_twice_counts_once() -> None:
    clock = Clock()
    limiter = limiter_on(clock, {"a": (2, 1.0)})
    assert limiter.wait("a", "a") == 0.0 and limiter.wait("a") == 0.0


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ((0, 1.0), "calls must be a whole number >= 1, got 0"),
        ((2.5, 1.0), "calls must be a whole number >= 1, got 2.5"),
        ((True, 1.0), "calls must be a whole number >= 1, got True"),
        ((3, 0), "period must be > 0 seconds, got 0"),
        ((3, -1.0), "period must be > 0 seconds, got -1.0"),
        ((3, math.nan), "period must be > 0 seconds, got nan"),
    ],
)
def test_a_bad_window_is_refused_naming_it(window: Window, words: str) -> None:
    with pytest.raises(ValueError, match="rate window 'data/list': " + words):
        SlidingWindowLimiter({"data/list": window})
    with pytest.raises(ValueError, match="rate window 'default': " + words):
        SlidingWindowLimiter(default=window)


def test_threads_reserve_distinct_slots_first_come_first_served() -> None:
    # The clock stands still and sleep only records: each thread's start is the slot it was
    # given. 200 calls in windows of 5 per second fill exactly 40 seconds, none twice.
    slept = FakeSleep()
    limiter = SlidingWindowLimiter({"x": (5, 1.0)}, clock=lambda: 0.0, sleep=slept)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            start = limiter.wait("x")
            with lock:
                starts.append(start)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(starts) == [float(i // 5) for i in range(200)]
    assert_within(starts, 5, 1.0)
    assert limiter.delayed == 195 and len(slept.waits) == 195


def test_a_sleep_that_wakes_early_is_followed_by_one_for_the_rest() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter({"a": (1, 1.0)}, clock=clock.now, sleep=clock.sleep)
    limiter.wait("a")
    woke_early = [0.001]  # a coarse timer returns 1 ms short, once

    def sleep(seconds: float) -> None:
        clock.sleep(seconds - (woke_early.pop() if woke_early else 0.0))

    limiter._sleep = sleep
    assert limiter.wait("a") == pytest.approx(1.001)
    assert clock.t == 1001.0  # never before the reserved start


@pytest.mark.parametrize(
    ("rate", "waits"),
    [(4, [0.25, 0.5, 0.75]), (0.5, [2.0, 4.0, 6.0]), (2.5, [0.4, 0.8, 1.2])],
)
def test_http_client_requests_per_second_spaces_starts_evenly_for_any_rate(
    rate: float, waits: list[float]
) -> None:
    sleep = FakeSleep()
    with FakeServer(lambda r: Reply(body={})) as srv:
        client = HttpClient(srv.url, requests_per_second=rate, sleep=sleep, clock=lambda: 0.0)
        for _ in range(4):
            client.request("GET", "x")
    assert sleep.waits == pytest.approx(waits)


@pytest.mark.parametrize("rate", [-1.0, math.inf])
def test_http_client_refuses_a_rate_that_is_not_a_positive_number(rate: float) -> None:
    with pytest.raises(ValueError, match="requests_per_second must be a positive number"):
        HttpClient("http://127.0.0.1:1/", requests_per_second=rate)
