"""RetryPolicy: attempt limit and full-jitter backoff, with an injected random."""

from __future__ import annotations

import random as stdlib_random
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.errors import ConfigError
from migrate.records import CallError
from migrate.retry import RetryPolicy, Tried, call_with_retries


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base, policy.cap) == (8, 0.5, 20.0)


def test_full_backoff_doubles_from_base_until_the_cap() -> None:
    policy = RetryPolicy()
    waits = [policy.backoff(attempt, random=lambda: 1.0) for attempt in range(1, 9)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_zero_jitter_means_no_wait() -> None:
    policy = RetryPolicy()
    assert [policy.backoff(a, random=lambda: 0.0) for a in (1, 5, 50)] == [0, 0, 0]


def test_half_jitter_is_half_the_bound() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0)
    waits = [policy.backoff(a, random=lambda: 0.5) for a in (1, 2, 3, 4, 5)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    policy = RetryPolicy(base=0.5, cap=20.0)
    assert policy.backoff(5000, random=lambda: 1.0) == 20.0


@given(
    attempt=st.integers(min_value=1, max_value=2000),
    jitter=st.floats(min_value=0, max_value=1),
    base=st.floats(min_value=0, max_value=10),
    extra=st.floats(min_value=0, max_value=100),
)
def test_backoff_is_within_zero_and_the_capped_bound(
    attempt: int, jitter: float, base: float, extra: float
) -> None:
    policy = RetryPolicy(base=base, cap=base + extra)
    wait = policy.backoff(attempt, random=lambda: jitter)
    assert 0 <= wait <= policy.cap
    # Compared exactly in integers/fractions: base * 2**1999 overflows a float.
    assert Fraction(wait) <= Fraction(base) * 2 ** (attempt - 1)


def test_backoff_uses_the_injected_random_once_per_call() -> None:
    rng = stdlib_random.Random(7)
    expected = stdlib_random.Random(7)
    policy = RetryPolicy()
    for attempt in (1, 2, 3):
        bound = min(20.0, 0.5 * 2 ** (attempt - 1))
        assert policy.backoff(attempt, random=rng.random) == expected.random() * bound


def test_should_retry_boundary() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(1)
    assert policy.should_retry(2)
    assert not policy.should_retry(3)
    assert not policy.should_retry(4)


def test_one_attempt_means_never_retry() -> None:
    assert not RetryPolicy(max_attempts=1).should_retry(1)


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    policy = RetryPolicy()
    with pytest.raises(ValueError, match=f"attempt counts from 1, got {attempt}"):
        policy.should_retry(attempt)
    with pytest.raises(ValueError, match=f"attempt counts from 1, got {attempt}"):
        policy.backoff(attempt, random=lambda: 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max attempts must be at least 1, got 0"),
        ({"max_attempts": -3}, "max attempts must be at least 1, got -3"),
        ({"base": -0.1}, "retry base must be non-negative, got -0.1"),
        ({"base": float("inf")}, "retry base must be non-negative, got inf"),
        ({"base": 2.0, "cap": 1.0}, "retry cap must be at least the base (2), got 1"),
        ({"cap": float("nan")}, "retry cap must be at least the base (0.5), got nan"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_zero_base_disables_waiting() -> None:
    policy = RetryPolicy(base=0.0, cap=0.0)
    assert policy.backoff(3, random=lambda: 1.0) == 0.0


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]


def _error(kind: str) -> CallError:
    return CallError(code="X", message="x", kind=kind)  # type: ignore[arg-type]


def _run(
    answers: Sequence[CallError | None], **kwargs: object
) -> tuple[Tried[int], list[float]]:
    calls = iter(range(len(answers)))
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return True

    options: dict[str, object] = {
        "policy": RetryPolicy(max_attempts=3, base=1.0),
        "random": lambda: 1.0,
        "wait": wait,
        **kwargs,
    }
    tried = call_with_retries(
        lambda: next(calls),
        lambda i: answers[i],
        **options,  # type: ignore[arg-type]
    )
    return tried, waits


def test_the_retry_loop_stops_at_success_a_permanent_error_or_the_limit() -> None:
    assert _run([_error("retryable"), None]) == (Tried(1, 2, stopped=False), [1.0])
    assert _run([_error("user"), None]) == (Tried(0, 1, stopped=False), [])
    assert _run([_error("fatal")]) == (Tried(0, 1, stopped=False), [])
    retryable = [_error("retryable")] * 5
    assert _run(retryable) == (Tried(2, 3, stopped=False), [1.0, 2.0])


def test_the_retry_loop_reports_a_stop_with_the_last_failure() -> None:
    assert _run([None], before_attempt=lambda: False) == (
        Tried(None, 0, stopped=True),
        [],
    )
    tried, _ = _run([_error("retryable")] * 3, wait=lambda seconds: False)
    assert tried == Tried(0, 1, stopped=True)
    seen: list[CallError | None] = []
    _run([_error("retryable"), None], observe=seen.append)
    assert [e.kind if e else None for e in seen] == ["retryable", None]
