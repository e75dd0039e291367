"""How often and how long to wait before retrying one user's call.

botocore's retries are off (total_max_attempts=1), so this is the only retry
layer: every attempt is visible, passes the rate limiter and is counted in the
report. The executor waits backoff() on its clock, then takes a token like any
other call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from migrate.errors import ConfigError
from migrate.records import CallError

# Defaults. Worst case, 7 retries wait 0.5+1+2+4+8+16+20 = 51.5 s (about half
# that on average with full jitter): long enough to ride out a busy minute of
# the production app on the shared 25/s quota, short enough that a row which
# still fails is handed to `resume --retry-failed` instead of holding a worker.
#: Total attempts per call, the first included (6-8 rides out a busy minute).
DEFAULT_MAX_ATTEMPTS = 8
#: First retry waits up to this many seconds.
DEFAULT_BASE = 0.5
#: No single wait longer than this; botocore's standard mode uses the same cap.
DEFAULT_CAP = 20.0

# 2.0 ** 1024 overflows; far earlier than that every wait is the cap anyway.
_MAX_EXPONENT = 1023


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Attempt limit and full-jitter exponential backoff for retryable errors."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(
                f"max attempts must be at least 1, got {self.max_attempts}"
            )
        # base = 0 is allowed: no waiting at all, handy for tests and emulators.
        if not (math.isfinite(self.base) and self.base >= 0):
            raise ConfigError(f"retry base must be non-negative, got {self.base:g}")
        if not (math.isfinite(self.cap) and self.cap >= self.base):
            raise ConfigError(
                f"retry cap must be at least the base ({self.base:g}), got {self.cap:g}"
            )

    def backoff(self, attempt: int, *, random: Callable[[], float]) -> float:
        """Seconds to wait after `attempt` failed attempts, before the next one.

        random() * min(cap, base * 2**(attempt-1)): full jitter (AWS Architecture
        Blog, "Exponential Backoff and Jitter"), so workers throttled by the same
        burst spread their retries out instead of coming back together. `random`
        returns a float in [0, 1] (random.random in production).
        """
        _check_attempt(attempt)
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return random() * min(self.cap, self.base * 2.0**exponent)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt is allowed after `attempt` attempts failed."""
        _check_attempt(attempt)
        return attempt < self.max_attempts


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")


R = TypeVar("R")


@dataclass(frozen=True)
class Tried(Generic[R]):
    """How a call with retries ended: its last result, attempts, and whether
    the run stopped before it was done (the result is then the last failure, or
    None when no attempt was made)."""

    result: R | None
    attempts: int
    stopped: bool


def _always() -> bool:
    return True


def _ignore(error: CallError | None) -> None:
    return None


def call_with_retries(
    call: Callable[[], R],
    error_of: Callable[[R], CallError | None],
    *,
    policy: RetryPolicy,
    random: Callable[[], float],
    wait: Callable[[float], bool],
    before_attempt: Callable[[], bool] = _always,
    observe: Callable[[CallError | None], None] = _ignore,
) -> Tried[R]:
    """Call until success, a non-retryable error, the attempt limit or a stop.

    The one retry loop of the package (writes, ListUsers pages, DescribeUserPool).
    ``before_attempt`` runs before every attempt (take a rate-limit token) and
    says False when the run has stopped; ``observe`` sees every attempt's error
    (None: success), for throttling and counters; ``wait`` sleeps the backoff
    and says False when the run stopped meanwhile.
    """
    attempt = 0
    result: R | None = None
    while True:
        if not before_attempt():
            return Tried(result, attempt, stopped=True)
        attempt += 1
        result = call()
        error = error_of(result)
        observe(error)
        if (
            error is None
            or error.kind != "retryable"
            or not policy.should_retry(attempt)
        ):
            return Tried(result, attempt, stopped=False)
        if not wait(policy.backoff(attempt, random=random)):
            return Tried(result, attempt, stopped=True)
