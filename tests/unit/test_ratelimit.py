"""TokenBucket and AdaptiveRate, on virtual time (FakeClock): nothing really sleeps."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.errors import ConfigError
from migrate.ratelimit import (
    POLL_INTERVAL,
    AdaptiveRate,
    FakeClock,
    SystemClock,
    TokenBucket,
)

# Slack for float arithmetic when checking the rate*t + burst bound.
TOLERANCE = 1e-6


def max_excess(grants: Sequence[float], rate: float) -> float:
    """Largest (count - rate*length) over windows [g_i, g_j] of sorted grant times.

    The bucket is within its bound iff this is <= burst: grants j-i+1 in a window
    of length g_j-g_i. With h_k = k - rate*g_k that is max(h_j - h_i) + 1 over
    i <= j, one pass with a running minimum instead of all O(n^2) windows.
    """
    best = 0.0
    lowest = float("inf")
    for k, t in enumerate(grants):
        h = k - rate * t
        lowest = min(lowest, h)
        best = max(best, h - lowest + 1)
    return best


def test_max_excess_detects_a_violation() -> None:
    # The checker itself must be able to fail: 3 grants within 1 s at rate 1.
    assert max_excess([0.0, 0.5, 1.0], rate=1.0) == pytest.approx(2.0)
    assert max_excess([0.0, 1.0, 2.0], rate=1.0) == pytest.approx(1.0)


# --- FakeClock / SystemClock ------------------------------------------------


def test_fake_clock_advances_on_sleep_and_records_it() -> None:
    clock = FakeClock(start=5.0)
    clock.sleep(1.5)
    clock.advance(2.0)
    clock.sleep(0.0)
    assert clock.monotonic() == 8.5
    assert clock.sleeps == [1.5, 0.0]


def test_fake_clock_rejects_going_backwards() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="sleep length must be non-negative"):
        clock.sleep(-1)
    with pytest.raises(ValueError, match="time cannot go backwards"):
        clock.advance(-1)


def test_fake_clock_is_thread_safe() -> None:
    clock = FakeClock()

    def work() -> None:
        for _ in range(1000):
            clock.sleep(0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert clock.monotonic() == 4000.0
    assert len(clock.sleeps) == 8000


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    clock.sleep(0)
    assert clock.monotonic() >= first


# --- TokenBucket: the bound, property-based ----------------------------------


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.floats(min_value=1, max_value=10),
    schedule=st.lists(
        st.tuples(
            # idle time before the call, in units of the token interval 1/rate
            st.one_of(st.just(0.0), st.floats(min_value=0, max_value=4)),
            # None = wait as long as needed; else a timeout in token intervals
            st.one_of(st.none(), st.floats(min_value=0, max_value=2)),
        ),
        max_size=150,
    ),
)
def test_grants_never_exceed_rate_times_window_plus_burst(
    rate: float, burst: float, schedule: list[tuple[float, float | None]]
) -> None:
    clock = FakeClock(start=1000.0)
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    grants: list[float] = []
    for idle, timeout in schedule:
        clock.advance(idle / rate)
        limit = None if timeout is None else timeout / rate
        if bucket.acquire(timeout=limit):
            grants.append(clock.monotonic())
    assert max_excess(grants, rate) <= burst + TOLERANCE


@settings(max_examples=20, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.floats(min_value=1, max_value=10),
)
def test_back_to_back_acquires_reach_the_rate(rate: float, burst: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    grants = 1500
    for _ in range(grants):
        assert bucket.acquire()
    elapsed = clock.monotonic()
    # The bucket starts full, so `burst` grants are free; the rest come at `rate`.
    assert (grants - burst) / elapsed == pytest.approx(rate, rel=1e-6)
    assert grants / elapsed == pytest.approx(rate, rel=0.01)


def test_first_grants_use_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=3, clock=clock)
    times = []
    for _ in range(5):
        assert bucket.acquire()
        times.append(clock.monotonic())
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=2, clock=clock)
    assert bucket.acquire(timeout=0)
    assert bucket.acquire(timeout=0)
    assert not bucket.acquire(timeout=0)
    clock.advance(60)
    assert bucket.acquire(timeout=0)
    assert bucket.acquire(timeout=0)
    assert not bucket.acquire(timeout=0)


def test_waits_are_sliced_so_cancellation_is_checked_often() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.acquire()
    assert bucket.acquire()
    assert clock.monotonic() == pytest.approx(2.0)
    assert len(clock.sleeps) == 20
    assert max(clock.sleeps) <= POLL_INTERVAL


# --- TokenBucket: many threads -----------------------------------------------


class GrantTimeClock(FakeClock):
    """Remembers, per thread, the last time read.

    TokenBucket.acquire() reads the clock under its lock just before granting, so
    after a True return this is the exact virtual time of that grant, even if
    other threads have advanced the clock since.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def monotonic(self) -> float:
        now = super().monotonic()
        self.local.last = now
        return now


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads far more often, to shake out races."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fast_thread_switching")
def test_concurrent_acquires_stay_within_the_bound() -> None:
    rate, burst, workers, each = 20.0, 4.0, 8, 60
    clock = GrantTimeClock()
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    grants: list[float] = []
    grants_lock = threading.Lock()
    start = threading.Barrier(workers)

    def work() -> None:
        start.wait(timeout=10)
        for _ in range(each):
            assert bucket.acquire()
            with grants_lock:
                grants.append(clock.local.last)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "deadlock: workers still waiting"
    assert len(grants) == workers * each
    grants.sort()
    assert max_excess(grants, rate) <= burst + TOLERANCE
    # Every sleeper advances the shared virtual clock, so time runs up to
    # `workers` times faster than one thread would see; beyond that the bucket
    # would be wasting quota.
    elapsed = clock.monotonic()
    assert elapsed >= (workers * each - burst) / rate - TOLERANCE
    assert elapsed <= workers * (workers * each) / rate


# --- TokenBucket: cancellation, timeout, rate changes ------------------------


def test_cancelled_while_waiting_returns_false_promptly() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)  # one token every 2 s
    assert bucket.acquire()

    def cancelled() -> bool:
        return clock.monotonic() >= 0.35

    assert not bucket.acquire(cancelled=cancelled)
    assert 0.35 <= clock.monotonic() <= 0.35 + POLL_INTERVAL + 1e-9


def test_cancelled_acquire_takes_no_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert not bucket.acquire(cancelled=lambda: True)
    assert clock.sleeps == []
    # The token is still there for the next caller, at once.
    assert bucket.acquire(timeout=0)


def test_timeout_returns_false_after_exactly_the_timeout() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.acquire()
    assert not bucket.acquire(timeout=0.25)
    assert clock.monotonic() == pytest.approx(0.25)
    assert not bucket.acquire(timeout=0)
    assert clock.monotonic() == pytest.approx(0.25)
    # The wait so far counts: the token arrives 0.75 s later.
    assert bucket.acquire(timeout=0.75)
    assert clock.monotonic() == pytest.approx(1.0)


def test_negative_timeout_is_rejected() -> None:
    bucket = TokenBucket(1.0, clock=FakeClock())
    with pytest.raises(ValueError, match="timeout must be non-negative, got -1"):
        bucket.acquire(timeout=-1)


def test_set_rate_takes_effect_and_credits_elapsed_time_at_the_old_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.acquire()
    clock.advance(0.5)  # half a token at 1/s
    bucket.set_rate(0.25)
    assert bucket.rate == 0.25
    # The missing half token now takes 2 s at 0.25/s.
    assert bucket.acquire()
    assert clock.monotonic() == pytest.approx(2.5)
    bucket.set_rate(4.0)
    assert bucket.acquire()
    assert clock.monotonic() == pytest.approx(2.75)


def test_waiters_notice_a_raised_rate_within_one_poll() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.acquire()
    polls = 0

    def raise_rate_after_first_poll() -> bool:
        nonlocal polls
        polls += 1
        if polls == 2:
            bucket.set_rate(10.0)
        return False

    assert bucket.acquire(cancelled=raise_rate_after_first_poll)
    # 0.1 s at 0.5/s gives 0.05 tokens; the other 0.95 come at 10/s.
    assert clock.monotonic() == pytest.approx(0.1 + 0.095)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a positive number, got 0"),
        ({"rate": -2.5}, "rate must be a positive number, got -2.5"),
        ({"rate": float("inf")}, "rate must be a positive number, got inf"),
        ({"rate": 1, "burst": 0.5}, "burst must be at least 1, got 0.5"),
    ],
)
def test_bad_bucket_config_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TokenBucket(clock=FakeClock(), **kwargs)
    assert str(info.value) == message


def test_set_rate_rejects_non_positive_rates() -> None:
    bucket = TokenBucket(1.0, clock=FakeClock())
    with pytest.raises(ValueError, match="rate must be positive, got 0"):
        bucket.set_rate(0)
    assert bucket.rate == 1.0


# --- AdaptiveRate ------------------------------------------------------------


def make_adaptive(
    ceiling: float = 10.0, **kwargs: float
) -> tuple[FakeClock, TokenBucket, AdaptiveRate]:
    """An AdaptiveRate with pinned parameters (halve, +0.25/s) unless overridden."""
    clock = FakeClock()
    bucket = TokenBucket(ceiling, clock=clock)
    params: dict[str, float] = {"decrease": 0.5, "increase_per_second": 0.25}
    params.update(kwargs)
    adaptive = AdaptiveRate(bucket, ceiling=ceiling, clock=clock, **params)
    return clock, bucket, adaptive


def test_defaults_match_the_documented_regrowth() -> None:
    clock = FakeClock()
    bucket = TokenBucket(20.0, clock=clock)
    adaptive = AdaptiveRate(bucket, ceiling=20.0, clock=clock)
    adaptive.on_throttle()
    assert adaptive.current == 16.0
    # +1 request/s every 2 s: back at the ceiling 8 s after the cut.
    clock.advance(2.0)
    adaptive.on_success()
    assert adaptive.current == 17.0
    clock.advance(6.0)
    adaptive.on_success()
    assert adaptive.current == 20.0
    assert bucket.rate == 20.0


def test_a_burst_of_throttles_is_one_cut() -> None:
    clock, bucket, adaptive = make_adaptive(10.0, cooldown=2.0)
    for _ in range(10):
        adaptive.on_throttle()
    assert adaptive.current == 5.0
    assert bucket.rate == 5.0
    assert adaptive.throttle_events == 1
    clock.advance(1.999)
    adaptive.on_throttle()
    assert adaptive.throttle_events == 1
    clock.advance(0.001)
    adaptive.on_throttle()
    assert adaptive.throttle_events == 2


def test_concurrent_throttles_cut_once() -> None:
    _, bucket, adaptive = make_adaptive(10.0)
    start = threading.Barrier(10)

    def throttled() -> None:
        start.wait(timeout=10)
        adaptive.on_throttle()

    threads = [threading.Thread(target=throttled) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert adaptive.throttle_events == 1
    assert adaptive.current == 5.0
    assert bucket.rate == 5.0


def test_exact_sequence_of_cuts_and_additive_regrowth() -> None:
    clock, bucket, adaptive = make_adaptive(
        8.0, decrease=0.5, increase_per_second=0.5, cooldown=1.0
    )
    seen = []

    def step(advance: float, event: str) -> None:
        clock.advance(advance)
        getattr(adaptive, f"on_{event}")()
        seen.append(adaptive.current)

    step(0.0, "success")  # nothing was cut: stays at the ceiling
    step(0.0, "throttle")  # t=0: 8 -> 4
    step(0.5, "throttle")  # t=0.5: inside the cooldown, ignored
    step(0.5, "success")  # t=1: 4 + 0.5*1
    step(1.0, "success")  # t=2: 4 + 0.5*2
    step(0.0, "throttle")  # t=2: regrown 5, cut to 2.5
    step(2.0, "success")  # t=4: 2.5 + 0.5*2
    step(20.0, "success")  # t=24: capped at the ceiling
    step(100.0, "success")  # t=124: still the ceiling
    assert seen == [8.0, 4.0, 4.0, 4.5, 5.0, 2.5, 3.5, 8.0, 8.0]
    assert adaptive.throttle_events == 2
    assert bucket.rate == 8.0


def test_cuts_stop_at_the_floor() -> None:
    clock, bucket, adaptive = make_adaptive(
        10.0, floor=1.0, increase_per_second=0.0, cooldown=1.0
    )
    seen = []
    for _ in range(6):
        adaptive.on_throttle()
        seen.append(adaptive.current)
        clock.advance(1.0)
    assert seen == [5.0, 2.5, 1.25, 1.0, 1.0, 1.0]
    assert adaptive.throttle_events == 6
    assert bucket.rate == 1.0


def test_a_ceiling_below_the_floor_lowers_the_floor() -> None:
    clock, bucket, adaptive = make_adaptive(0.2)  # default floor is 0.5
    assert adaptive.current == 0.2
    adaptive.on_throttle()
    assert adaptive.current == 0.2
    clock.advance(100.0)
    adaptive.on_success()
    assert adaptive.current == 0.2
    assert bucket.rate == 0.2


def test_adaptive_rate_takes_over_the_bucket_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3.0, clock=clock)
    adaptive = AdaptiveRate(bucket, ceiling=7.0, clock=clock)
    assert bucket.rate == 7.0
    assert adaptive.ceiling == 7.0
    assert adaptive.throttle_events == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ceiling": 0}, "ceiling must be a positive number, got 0"),
        ({"floor": 0}, "floor must be a positive number, got 0"),
        ({"decrease": 1}, "decrease must be between 0 and 1, got 1"),
        ({"decrease": 0}, "decrease must be between 0 and 1, got 0"),
        (
            {"increase_per_second": -1},
            "increase_per_second must be non-negative, got -1",
        ),
        ({"cooldown": float("nan")}, "cooldown must be non-negative, got nan"),
    ],
)
def test_bad_adaptive_config_is_rejected(
    kwargs: dict[str, float], message: str
) -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, clock=clock)
    arguments: dict[str, float] = {"ceiling": 10.0, **kwargs}
    with pytest.raises(ConfigError) as info:
        AdaptiveRate(bucket, clock=clock, **arguments)
    assert str(info.value) == message
