"""The executor with a thread-safe fake pool and a fake clock (no real waiting)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from migrate import interrupts
from migrate.errors import ConfigError
from migrate.execution import ExecutionConfig, Executor
from migrate.ratelimit import FakeClock
from migrate.records import CallError, CallResult, Outcome, Status, WorkItem

OK = CallResult()
THROTTLED = CallResult(
    error=CallError(
        code="TooManyRequestsException",
        message="Rate exceeded",
        kind="retryable",
        throttled=True,
    )
)
INTERNAL = CallResult(
    error=CallError(code="InternalErrorException", message="boom", kind="retryable")
)
NOT_FOUND = CallResult(
    error=CallError(
        code="UserNotFoundException", message="User does not exist.", kind="user"
    )
)
DENIED = CallResult(
    error=CallError(
        code="AccessDeniedException", message="not authorized", kind="fatal"
    )
)


class FakePool:
    """Answers from a per-user script (then OK); counts calls per user."""

    def __init__(self, script: dict[str, list[CallResult]] | None = None) -> None:
        self.script = {user: list(results) for user, results in (script or {}).items()}
        self.calls: Counter[str] = Counter()
        self.deletes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.concurrent = 0
        self.max_concurrent = 0

    def _answer(self, user: str) -> CallResult:
        with self.lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            results = self.script.get(user)
            answer = results.pop(0) if results else OK
            self.concurrent -= 1
        return answer

    def read(self, item: WorkItem) -> CallResult:
        """A user who has none of the attributes: every item is sent whole."""
        with self.lock:
            self.reads[item.user] += 1
        return CallResult(attributes={})

    def update(self, item: WorkItem) -> CallResult:
        with self.lock:
            self.calls[item.user] += 1
        return self._answer(item.user)

    def delete(self, item: WorkItem) -> CallResult:
        with self.lock:
            self.deletes[item.user] += 1
        return self._answer(item.user)


def items(n: int, *, deletes: tuple[str, ...] = ()) -> Iterator[WorkItem]:
    for row in range(1, n + 1):
        yield WorkItem(
            row=row,
            user=f"user{row}",
            set_attributes={"custom:plan": "pro"},
            delete_attributes=deletes,
        )


def execute(
    pool: FakePool, n: int, **config: int | float
) -> tuple[Executor, dict[int, Outcome]]:
    executor = Executor(
        pool,
        ExecutionConfig(**{"rate": 1000.0, "concurrency": 4, **config}),  # type: ignore[arg-type]
        clock=FakeClock(),
        random=lambda: 0.5,
        now=lambda: "2026-11-26T00:00:00Z",
    )
    outcomes: dict[int, Outcome] = {}

    def record(outcome: Outcome) -> None:
        assert outcome.row not in outcomes, "one outcome per row"
        outcomes[outcome.row] = outcome

    executor.run(items(n), record)
    return executor, outcomes


def test_every_item_is_updated_once() -> None:
    pool = FakePool()
    executor, outcomes = execute(pool, 50)
    assert sorted(outcomes) == list(range(1, 51))
    assert {o.status for o in outcomes.values()} == {Status.UPDATED}
    assert all(o.attempts == 1 for o in outcomes.values())
    assert all(o.changed == ("custom:plan",) for o in outcomes.values())
    assert pool.calls == Counter({f"user{i}": 1 for i in range(1, 51)})
    assert executor.stats.calls == 50
    assert not executor.stats.stopped


def test_deletes_are_a_second_call_and_both_are_counted() -> None:
    pool = FakePool()
    executor = Executor(
        pool,
        # Not read first: a read would find nothing to delete.
        ExecutionConfig(rate=1000.0, read_before_write=False),
        clock=FakeClock(),
        random=lambda: 0.0,
    )
    got: list[Outcome] = []
    executor.run(items(3, deletes=("custom:legacy_flag",)), got.append)
    assert [o.attempts for o in got] == [2, 2, 2]
    assert all(o.deleted == ("custom:legacy_flag",) for o in got)
    assert sum(pool.deletes.values()) == 3
    assert executor.stats.calls == 6


def test_throttling_is_absorbed_and_slows_the_rate() -> None:
    pool = FakePool({"user3": [THROTTLED, THROTTLED], "user7": [INTERNAL]})
    executor, outcomes = execute(pool, 10, rate=10.0)
    assert {o.status for o in outcomes.values()} == {Status.UPDATED}
    assert outcomes[3].attempts == 3
    assert outcomes[7].attempts == 2
    assert executor.stats.throttled == 2
    assert executor.stats.retries == 3
    assert executor.adaptive.throttle_events >= 1
    assert executor.adaptive.current < 10.0


def test_retryable_errors_give_up_after_max_attempts() -> None:
    pool = FakePool({"user2": [INTERNAL] * 10})
    _, outcomes = execute(pool, 3, max_attempts=4)
    assert outcomes[2].status is Status.FAILED_RETRYABLE
    assert outcomes[2].attempts == 4
    assert outcomes[2].error_code == "InternalErrorException"
    assert pool.calls["user2"] == 4
    assert outcomes[1].status is outcomes[3].status is Status.UPDATED


def test_a_user_error_fails_that_row_only_without_retry() -> None:
    pool = FakePool({"user5": [NOT_FOUND]})
    executor, outcomes = execute(pool, 10)
    assert outcomes[5].status is Status.FAILED
    assert outcomes[5].error_code == "UserNotFoundException"
    assert outcomes[5].attempts == 1
    assert pool.calls["user5"] == 1
    assert sum(o.status is Status.UPDATED for o in outcomes.values()) == 9
    assert not executor.stats.stopped


def test_a_fatal_error_stops_the_job_and_leaves_rows_not_attempted() -> None:
    pool = FakePool({"user20": [DENIED]})
    executor, outcomes = execute(pool, 500, concurrency=2)
    assert executor.stats.stopped_by is not None
    assert executor.stats.stopped_by.aws_error_code == "AccessDeniedException"
    # The row that met the job-wide error was tried: a resume takes it again,
    # and its attempt is counted, not hidden behind not_attempted.
    assert outcomes[20].status is Status.FAILED_RETRYABLE
    assert outcomes[20].error_code == "AccessDeniedException"
    assert outcomes[20].attempts == 1
    assert all(
        o.attempts == 0 for o in outcomes.values() if o.status is Status.NOT_ATTEMPTED
    )
    # Dispatch stopped promptly: at most the bounded queue went on after user20.
    assert len(outcomes) < 20 + 2 * 2 + 2
    sent = sum(pool.calls.values())
    assert sent < 30


def test_identical_user_errors_in_a_row_stop_the_job() -> None:
    pool = FakePool({f"user{i}": [NOT_FOUND] for i in range(1, 200)})
    executor, outcomes = execute(pool, 199, concurrency=1, max_consecutive_errors=25)
    assert executor.stats.stopped_by is not None
    assert "the last 25 users all failed the same way" in str(executor.stats.stopped_by)
    assert len(outcomes) < 30


def test_interrupt_in_the_consumer_drains_in_flight_calls() -> None:
    pool = FakePool()
    executor = Executor(
        pool, ExecutionConfig(rate=1000.0, concurrency=4), clock=FakeClock()
    )
    delivered: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        delivered.append(outcome)
        if len(delivered) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.run(items(1000), record)
    assert executor.stats.interrupted
    # Calls that were made all delivered an outcome: nothing done is lost.
    called = set(pool.calls)
    statuses = {o.user: o.status for o in delivered}
    assert called <= set(statuses)
    assert len(delivered) <= 10 + 8


def test_concurrency_is_bounded() -> None:
    pool = FakePool()
    execute(pool, 200, concurrency=3)
    assert pool.max_concurrent <= 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "--rate must be above 0 requests/s, not 0"),
        ({"concurrency": 0}, "--concurrency must be at least 1, not 0"),
        ({"max_attempts": 0}, "--max-attempts must be at least 1, not 0"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        ExecutionConfig(**kwargs)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_rate_is_respected_on_a_fake_clock() -> None:
    clock = FakeClock()
    times: dict[int, list[float]] = defaultdict(list)

    class TimedPool(FakePool):
        def update(self, item: WorkItem) -> CallResult:
            times[0].append(clock.monotonic())
            return OK

    executor = Executor(
        TimedPool(), ExecutionConfig(rate=5.0, concurrency=4), clock=clock
    )
    executor.run(items(51), lambda o: None)
    stamps = sorted(times[0])
    # 51 grants at 5/s with a burst of 1 need at least 10 s of virtual time.
    assert stamps[-1] - stamps[0] >= 10.0 - 1e-6


# --- the read before each write ----------------------------------------------------


class ReadingPool(FakePool):
    """A FakePool whose users hold attributes; reads answer from a script first."""

    def __init__(
        self,
        users: dict[str, dict[str, str]],
        reads: dict[str, list[CallResult]] | None = None,
    ) -> None:
        super().__init__()
        self.users = users
        self.read_script = {u: list(r) for u, r in (reads or {}).items()}

    def read(self, item: WorkItem) -> CallResult:
        with self.lock:
            self.reads[item.user] += 1
            scripted = self.read_script.get(item.user)
            if scripted:
                return scripted.pop(0)
        return CallResult(attributes=dict(self.users.get(item.user, {})))


def _run_reads(
    pool: ReadingPool, work: list[WorkItem], **config: object
) -> tuple[Executor, dict[int, Outcome]]:
    executor = Executor(
        pool,
        ExecutionConfig(**{"rate": 1000.0, "read_rate": 1000.0, **config}),  # type: ignore[arg-type]
        clock=FakeClock(),
        random=lambda: 0.5,
        now=lambda: "2026-11-26T00:00:00Z",
    )
    got: dict[int, Outcome] = {}
    executor.run(work, lambda o: got.__setitem__(o.row, o))
    return executor, got


def test_a_user_at_the_target_is_read_and_not_written() -> None:
    pool = ReadingPool({"user1": {"custom:plan": "pro"}, "user2": {"custom:plan": "x"}})
    executor, got = _run_reads(pool, list(items(2)))
    assert got[1].status is Status.UNCHANGED
    assert got[1].error_code == "unchanged"
    assert got[2].status is Status.UPDATED
    assert got[2].before == {"custom:plan": "x"}
    assert pool.calls == Counter({"user2": 1})
    assert (executor.stats.reads, executor.stats.calls) == (2, 1)


def test_a_user_the_read_does_not_find_fails_without_a_write() -> None:
    pool = ReadingPool({}, reads={"user1": [NOT_FOUND]})
    _, got = _run_reads(pool, list(items(1)))
    assert got[1].status is Status.FAILED
    assert got[1].error_code == "UserNotFoundException"
    assert got[1].error_message == (
        "reading the user before the write: User does not exist."
    )
    assert got[1].attempts == 1
    assert not pool.calls


def test_a_throttled_read_is_retried_and_slows_only_the_reads() -> None:
    pool = ReadingPool({}, reads={"user1": [THROTTLED, THROTTLED]})
    executor, got = _run_reads(pool, list(items(1)), read_rate=10.0)
    assert got[1].status is Status.UPDATED
    assert got[1].attempts == 1  # the write's
    assert executor.stats.reads == 3
    assert executor.stats.reads_throttled == 2
    assert executor.stats.throttled == 0
    assert executor.read_adaptive.throttle_events >= 1
    assert executor.adaptive.throttle_events == 0


def test_a_read_denied_stops_the_job() -> None:
    pool = ReadingPool({}, reads={"user1": [DENIED]})
    executor, got = _run_reads(pool, list(items(1)), concurrency=1)
    assert executor.stats.stopped_by is not None
    assert executor.stats.stopped_by.aws_error_code == "AccessDeniedException"
    assert got[1].status is Status.FAILED_RETRYABLE
    assert not pool.calls


def test_a_rollback_item_changed_since_is_a_conflict_unless_forced() -> None:
    item = WorkItem(
        row=1,
        user="user1",
        set_attributes={"custom:plan": "basic"},
        expect={"custom:plan": "pro"},
    )
    pool = ReadingPool({"user1": {"custom:plan": "enterprise"}})
    _, got = _run_reads(pool, [item])
    assert got[1].status is Status.CONFLICT
    assert got[1].before == {"custom:plan": "enterprise"}
    assert not pool.calls
    _, forced = _run_reads(pool, [item], force=True)
    assert forced[1].status is Status.UPDATED
    assert pool.calls == Counter({"user1": 1})


def test_without_writes_a_run_only_reads_and_compares() -> None:
    pool = ReadingPool({"user1": {"custom:plan": "pro"}})
    _, got = _run_reads(pool, list(items(2)), writes=False)
    assert [got[1].status, got[2].status] == [Status.UNCHANGED, Status.WOULD_UPDATE]
    assert got[2].sent == {"custom:plan": "pro"}
    assert not pool.calls


def test_a_stop_while_an_outcome_is_recorded_waits_until_it_is_recorded() -> None:
    """A Ctrl-C that arrives while the coordinator records an outcome (the
    signal handler calls interrupts.interrupt) is held until that outcome is
    recorded: every call made has its outcome, the one being recorded too."""
    pool = FakePool()
    executor = Executor(
        pool, ExecutionConfig(rate=1000.0, concurrency=4), clock=FakeClock()
    )
    recorded: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        if len(recorded) == 9:
            interrupts.interrupt()  # as the handler does, mid-record
        recorded.append(outcome)

    with pytest.raises(KeyboardInterrupt):
        executor.run(items(1000), record)
    assert executor.stats.interrupted
    assert len(recorded) >= 10
    assert set(pool.calls) <= {o.user for o in recorded}
    assert len({o.row for o in recorded}) == len(recorded)


def test_an_interrupt_outside_a_shield_is_at_once_and_inside_waits() -> None:
    steps: list[str] = []

    def held_to_the_end() -> None:
        with interrupts.shielded():
            interrupts.interrupt()
            steps.append("after")

    def raised_at_a_check() -> None:
        with interrupts.shielded():
            interrupts.interrupt()
            interrupts.check()
            steps.append("never")

    def failing_anyway() -> None:
        with interrupts.shielded():
            interrupts.interrupt()
            raise ValueError("the block's own failure")

    with pytest.raises(KeyboardInterrupt):
        interrupts.interrupt()
    with pytest.raises(KeyboardInterrupt):
        held_to_the_end()
    assert steps == ["after"]
    with pytest.raises(KeyboardInterrupt):
        raised_at_a_check()
    assert steps == ["after"]
    # A block that fails anyway leaves nothing held for the next one.
    with pytest.raises(ValueError, match="own failure"):
        failing_anyway()
    with interrupts.shielded():
        steps.append("clean")
    assert steps == ["after", "clean"]


def test_a_shield_off_the_main_thread_holds_nothing() -> None:
    raised: list[type[BaseException]] = []

    def other() -> None:
        try:
            with interrupts.shielded():
                interrupts.interrupt()
        except KeyboardInterrupt as exc:
            raised.append(type(exc))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert raised == [KeyboardInterrupt]
