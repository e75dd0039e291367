"""Client-side rate limiting: a token bucket and an AIMD rate on top of it.

Cognito's UserUpdate quota (AdminUpdateUserAttributes, AdminDeleteUserAttributes,
UpdateUserAttributes) is 25 requests/s per account and Region, shared with every
other caller, and not adjustable. Every attempt, retries included, takes a token
here first; botocore's own retries are off, so this is the only place that paces
calls to Cognito.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from migrate.errors import ConfigError

#: How often a waiting acquire() wakes up to check cancellation and re-read the
#: rate. Short enough that Ctrl-C or a fatal error stops a dozen waiting workers
#: at once, and that a rate raised by AdaptiveRate is noticed by threads that
#: went to sleep under the old one.
POLL_INTERVAL = 0.1

# Float refills can leave a bucket at 0.9999999999 tokens after sleeping exactly
# the computed wait; without a tolerance the loop would then ask for waits too
# small to move a clock. The bound stays rate*t + burst + 1e-9 grants.
_TOKEN_EPSILON = 1e-9
# A floor under each sleep, so a tiny remaining wait always advances time (a
# fake clock at t=1e6 cannot represent a step of 1e-15 s).
_MIN_SLEEP = 1e-6


class Clock(Protocol):
    """The time source: a monotonic clock and a way to wait on it."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: time.monotonic and time.sleep."""

    def monotonic(self) -> float:
        """Return the current monotonic time in seconds."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for `seconds`."""
        time.sleep(seconds)


class FakeClock:
    """Virtual time for tests: sleep() advances the clock at once (thread-safe)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Return the current virtual time."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance virtual time by `seconds` without blocking, and record it."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        with self._lock:
            self._now += seconds
            self._sleeps.append(seconds)

    def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass, as if other work had happened."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        with self._lock:
            self._now += seconds

    @property
    def sleeps(self) -> list[float]:
        """Every sleep() so far, in order (a copy)."""
        with self._lock:
            return list(self._sleeps)


def _never() -> bool:
    return False


def _require_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value:g}")


class TokenBucket:
    """Thread-safe token bucket: at most rate*t + burst grants in any window of t s.

    The bucket starts full. Waiting threads poll rather than queue, so there is no
    fairness between them; with a few workers sharing one quota that costs
    nothing, and it lets a rate change reach every waiter within POLL_INTERVAL.
    """

    def __init__(
        self, rate: float, *, burst: float = 1.0, clock: Clock | None = None
    ) -> None:
        # burst=1 by default: the quota is counted per second and shared with the
        # production app, so a configured --rate of r should never show up as r
        # plus a saved-up burst in one second.
        _require_positive("rate", rate)
        if not (math.isfinite(burst) and burst >= 1):
            raise ConfigError(f"burst must be at least 1, got {burst:g}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._last = self._clock.monotonic()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        with self._lock:
            return self._rate

    @property
    def burst(self) -> float:
        """Capacity: how many tokens can be saved up while idle."""
        return self._burst

    def set_rate(self, rate: float) -> None:
        """Change the refill rate; time already elapsed is credited at the old rate."""
        # Only code calls this (AdaptiveRate), so a bad value is a bug, not config.
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be positive, got {rate!r}")
        with self._lock:
            self._refill(self._clock.monotonic())
            self._rate = float(rate)

    def acquire(
        self,
        *,
        cancelled: Callable[[], bool] = _never,
        timeout: float | None = None,
    ) -> bool:
        """Take one token, waiting as long as needed.

        Returns False, without taking a token, if `cancelled()` is true (checked
        before each wait and at least every POLL_INTERVAL while waiting) or if
        no token became available within `timeout` seconds (0 = don't wait).
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be non-negative, got {timeout}")
        clock = self._clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            # A cancelled run must not spend quota, even if a token is ready.
            if cancelled():
                return False
            with self._lock:
                now = clock.monotonic()
                self._refill(now)
                if self._tokens >= 1.0 - _TOKEN_EPSILON:
                    self._tokens -= 1.0
                    return True
                wait = (1.0 - self._tokens) / self._rate
            if deadline is not None:
                remaining = deadline - now
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            # Sleep outside the lock: other threads can check in, set_rate() is
            # not blocked, and a fake clock can be advanced by another sleeper.
            clock.sleep(max(_MIN_SLEEP, min(wait, POLL_INTERVAL)))

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._last = now


# Defaults for AdaptiveRate. The ceiling is the configured --rate (default 10/s,
# well under the 25/s account-wide UserUpdate quota).
#: Cut by a fifth on throttling. Deeper cuts (halving) leave a sawtooth whose
#: average is far below the quota: measured against the emulated 25/s quota at
#: --rate 40, halving with +0.25/s regrowth achieved 0.87 of the quota; 0.8
#: with +0.5/s achieved the whole quota with 1.7% of calls throttled
#: (tests/benchmarks/test_bench_rate.py). Repeated throttles still cut again
#: after each cooldown, so a busy production app gets room within seconds.
DEFAULT_DECREASE = 0.8
#: Regrow +1 request/s every 2 s: a cut from 20/s to 16/s is back in 8 s.
DEFAULT_INCREASE_PER_SECOND = 0.5
#: botocore's adaptive mode uses the same minimum fill rate; lower than this
#: and the per-call retry backoff already dominates.
DEFAULT_FLOOR = 0.5
#: Throttles for calls sent before a cut keep arriving for about one quota
#: window (1 s) plus a round trip after it; 2 s folds them into one event while
#: a real, continuing overload still gets a second cut soon after.
DEFAULT_COOLDOWN = 2.0


class AdaptiveRate:
    """AIMD on a TokenBucket: cut multiplicatively on throttling, regrow additively.

    The rate starts at the ceiling and never exceeds it, nor drops below the floor
    (a floor above the ceiling is lowered to the ceiling). Regrowth is linear in
    the time since the last cut and is applied when a call succeeds, so a rate
    only grows back on evidence that calls get through.
    """

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        ceiling: float,
        floor: float = DEFAULT_FLOOR,
        decrease: float = DEFAULT_DECREASE,
        increase_per_second: float = DEFAULT_INCREASE_PER_SECOND,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Clock | None = None,
    ) -> None:
        _require_positive("ceiling", ceiling)
        _require_positive("floor", floor)
        if not 0 < decrease < 1:
            raise ConfigError(f"decrease must be between 0 and 1, got {decrease:g}")
        if not (math.isfinite(increase_per_second) and increase_per_second >= 0):
            raise ConfigError(
                f"increase_per_second must be non-negative, got {increase_per_second:g}"
            )
        if not (math.isfinite(cooldown) and cooldown >= 0):
            raise ConfigError(f"cooldown must be non-negative, got {cooldown:g}")
        self._bucket = bucket
        self._ceiling = float(ceiling)
        # A user who asks for 0.2 requests/s means it; never pace above that.
        self._floor = min(float(floor), self._ceiling)
        self._decrease = decrease
        self._increase = increase_per_second
        self._cooldown = cooldown
        self._clock: Clock = clock if clock is not None else SystemClock()
        # Lock order: self._lock, then the bucket's lock (the bucket never calls
        # back here), so the two cannot deadlock.
        self._lock = threading.Lock()
        self._current = self._ceiling
        self._cut_rate = self._ceiling
        self._last_cut: float | None = None
        self._events = 0
        bucket.set_rate(self._current)

    @property
    def current(self) -> float:
        """The rate the bucket is set to now."""
        with self._lock:
            return self._current

    @property
    def ceiling(self) -> float:
        """The configured rate; never exceeded."""
        return self._ceiling

    @property
    def throttle_events(self) -> int:
        """How many cuts were made (throttles inside a cooldown don't count)."""
        with self._lock:
            return self._events

    def on_throttle(self) -> None:
        """Record a throttled call: cut the rate, at most once per cooldown."""
        with self._lock:
            now = self._clock.monotonic()
            if self._last_cut is not None and now - self._last_cut < self._cooldown:
                return
            self._regrow(now)
            self._cut_rate = max(self._floor, self._current * self._decrease)
            self._last_cut = now
            self._events += 1
            self._set(self._cut_rate)

    def on_success(self) -> None:
        """Record a call that got through: regrow toward the ceiling."""
        with self._lock:
            if self._current < self._ceiling:
                self._regrow(self._clock.monotonic())

    def _regrow(self, now: float) -> None:
        if self._last_cut is None:
            return
        grown = self._cut_rate + self._increase * (now - self._last_cut)
        self._set(min(self._ceiling, grown))

    def _set(self, rate: float) -> None:
        if rate != self._current:
            self._current = rate
            self._bucket.set_rate(rate)
