"""The bounded worker pool that sends work items to Cognito.

One coordinator (the calling thread) pulls work items, keeps at most a bounded
number in flight, and receives every outcome; worker threads make the calls.
Every attempt, first or retry, takes a token from one shared, adaptive token
bucket, so the configured rate holds for the whole job and throttling slows it
down instead of failing rows.

Stopping: the first job-wide (fatal) error, an exception from the outcome
consumer, or Ctrl-C sets one stop flag. Nothing new is dispatched, calls already
on the wire finish and their outcomes are delivered, queued items come back as
``not_attempted``. Items never pulled from the iterator get no outcome here: the
caller knows them as not attempted.
"""

from __future__ import annotations

import math
import queue
import random as _random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from migrate import interrupts
from migrate.compare import FLAG_OF, conflict_message, conflicts, narrow
from migrate.errors import ConfigError, FatalError, RepeatedFailureError
from migrate.ratelimit import AdaptiveRate, Clock, SystemClock, TokenBucket
from migrate.records import CallError, CallResult, Outcome, Status, WorkItem, utc_now
from migrate.retry import RetryPolicy, call_with_retries

#: Default requests/s: well below the 25/s UserUpdate quota, which the account's
#: production traffic shares.
DEFAULT_RATE = 10.0
#: Above this, warn: little of the quota would be left for production.
RATE_WARNING = 20.0
#: The account-wide UserUpdate quota (requests/s, not adjustable).
USER_UPDATE_QUOTA = 25.0
#: Default reads/s (AdminGetUser/GetUser): a third of the UserRead quota, so
#: that production keeps the rest.
DEFAULT_READ_RATE = 40.0
#: Above this, warn: half the UserRead quota.
READ_RATE_WARNING = 60.0
#: The account-wide UserRead quota (requests/s, adjustable).
USER_READ_QUOTA = 120.0
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 8
#: Identical per-user errors in a row that mean "every row will fail": a broken
#: mapping or Lambda trigger. Stop instead of spending the quota on them.
DEFAULT_MAX_CONSECUTIVE_ERRORS = 50
#: Granularity of interruptible waits (seconds).
_TICK = 0.1


class UserPoolClient(Protocol):
    """What the executor needs from Cognito: a read and one call per change."""

    def read(self, item: WorkItem) -> CallResult:
        """The user's attributes now (``CallResult.attributes``)."""

    def update(self, item: WorkItem) -> CallResult:
        """Set ``item.set_attributes`` on the user."""

    def delete(self, item: WorkItem) -> CallResult:
        """Delete ``item.delete_attributes`` from the user."""


@dataclass(frozen=True, kw_only=True)
class ExecutionConfig:
    """How fast and how hard to try."""

    rate: float = DEFAULT_RATE
    burst: float = 1.0
    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS
    #: Read each user just before its write (see migrate.compare).
    read_before_write: bool = True
    read_rate: float = DEFAULT_READ_RATE
    #: A rollback's: restore even where the user changed since (no conflicts).
    force: bool = False
    #: False: read and compare, never write (a rollback's dry run).
    writes: bool = True

    def __post_init__(self) -> None:
        for option, rate in (("--rate", self.rate), ("--read-rate", self.read_rate)):
            if not math.isfinite(rate):
                raise ConfigError(
                    f"{option} must be a number of requests/s, not {rate}"
                )
            if not rate > 0:
                raise ConfigError(f"{option} must be above 0 requests/s, not {rate:g}")
        if not self.writes and not self.read_before_write:
            raise ConfigError("a run without writes must read (read_before_write)")
        if self.burst < 1:
            raise ConfigError(f"burst must be at least 1, not {self.burst}")
        if self.concurrency < 1:
            raise ConfigError(
                f"--concurrency must be at least 1, not {self.concurrency}"
            )
        if self.max_attempts < 1:
            raise ConfigError(
                f"--max-attempts must be at least 1, not {self.max_attempts}"
            )
        if self.max_consecutive_errors < 0:
            raise ConfigError("max consecutive errors must be 0 (off) or more")


@dataclass(kw_only=True)
class ExecutionStats:
    """Counters of one execution, read by progress displays while it runs."""

    #: Write calls (UserUpdate quota), each attempt counted.
    calls: int = 0
    throttled: int = 0
    retries: int = 0
    #: Read calls (UserRead quota), each attempt counted.
    reads: int = 0
    reads_throttled: int = 0
    statuses: Counter[Status] = field(default_factory=Counter)
    stopped_by: FatalError | None = None
    interrupted: bool = False

    @property
    def stopped(self) -> bool:
        """True when the run ended before every item was sent."""
        return self.stopped_by is not None or self.interrupted


_DIGITS = re.compile(r"\d+")


class Executor:
    """Sends work items through a bounded pool; see the module docstring."""

    def __init__(
        self,
        pool: UserPoolClient,
        config: ExecutionConfig,
        *,
        clock: Clock | None = None,
        random: Callable[[], float] = _random.random,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self._pool = pool
        self._config = config
        self._clock = clock or SystemClock()
        self._random = random
        self._now = now
        self._bucket = TokenBucket(config.rate, burst=config.burst, clock=self._clock)
        self.adaptive = AdaptiveRate(
            self._bucket, ceiling=config.rate, clock=self._clock
        )
        # Reads have a quota of their own: throttled reads slow only the reads.
        self._read_bucket = TokenBucket(config.read_rate, clock=self._clock)
        self.read_adaptive = AdaptiveRate(
            self._read_bucket, ceiling=config.read_rate, clock=self._clock
        )
        self._policy = RetryPolicy(max_attempts=config.max_attempts)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._streak: tuple[str, int] = ("", 0)
        self.stats = ExecutionStats()

    # --- coordinator (calling thread) -------------------------------------

    def run(
        self,
        items: Iterable[WorkItem],
        on_outcome: Callable[[Outcome], None],
        on_idle: Callable[[], None] = lambda: None,
    ) -> ExecutionStats:
        """Send every item; call ``on_outcome`` in this thread for each result.

        ``on_idle`` is called in this thread every tick (0.1 s) it waits for a
        result: at low rates the ledger commits its last outcomes from there
        instead of at the next one.

        Returns when all items are done or the run stopped (see ``stats``).
        A KeyboardInterrupt (here or raised by a call) stops the run cleanly:
        calls already made finish and every outcome is delivered, then it
        propagates. Any other exception stops the run the same way.
        """
        limit = self._config.concurrency * 2
        # Workers hand every result, or the exception that replaced it, to this
        # queue: whatever was submitted is delivered, even if the coordinator
        # was interrupted halfway through submit().
        results: queue.SimpleQueue[Outcome | BaseException] = queue.SimpleQueue()

        def task(item: WorkItem) -> None:
            try:
                results.put(self._process(item))
            except BaseException as exc:  # handed to the coordinator, never lost
                results.put(exc)

        executor = ThreadPoolExecutor(
            max_workers=self._config.concurrency, thread_name_prefix="migrate-worker"
        )
        submitted = delivered = 0
        failure: BaseException | None = None
        try:
            for item in items:
                if self._stop.is_set():
                    break
                while submitted - delivered >= limit:
                    self._deliver_next(results, on_idle, on_outcome)
                    delivered += 1
                executor.submit(task, item)
                submitted += 1
            while delivered < submitted:
                self._deliver_next(results, on_idle, on_outcome)
                delivered += 1
        except BaseException as exc:
            failure = exc
            if isinstance(exc, KeyboardInterrupt):
                self.stats.interrupted = True
            self._stop.set()
        finally:
            # Queued tasks see the stop flag and return at once; calls on the
            # wire finish.
            executor.shutdown(wait=True)
        if failure is not None:
            while True:
                try:
                    result = results.get_nowait()
                except queue.Empty:
                    break
                if isinstance(result, Outcome):
                    self._deliver(result, on_outcome)
            raise failure
        return self.stats

    def stop(self, error: FatalError | None = None) -> None:
        """Stop dispatching (thread-safe); ``error`` says why, first one wins."""
        with self._lock:
            if error is not None and self.stats.stopped_by is None:
                self.stats.stopped_by = error
        self._stop.set()

    def _deliver_next(
        self,
        results: queue.SimpleQueue[Outcome | BaseException],
        on_idle: Callable[[], None],
        on_outcome: Callable[[Outcome], None],
    ) -> None:
        """Deliver the next result; a worker's exception is raised here.

        A Ctrl-C is held from taking the result until it is delivered (see
        migrate.interrupts): raised in between, it lost a received outcome,
        and the resume found that user at the target with no before-values.
        While waiting it takes effect within a tick.
        """
        with interrupts.shielded():
            while True:
                try:
                    result = results.get(timeout=_TICK)
                except queue.Empty:
                    on_idle()
                    interrupts.check()
                    continue
                if isinstance(result, BaseException):
                    raise result
                self._deliver(result, on_outcome)
                return

    def _deliver(self, outcome: Outcome, on_outcome: Callable[[Outcome], None]) -> None:
        with self._lock:
            self.stats.statuses[outcome.status] += 1
        on_outcome(outcome)
        self._watch_streak(outcome)

    def _watch_streak(self, outcome: Outcome) -> None:
        limit = self._config.max_consecutive_errors
        if not limit:
            return
        if outcome.status not in (Status.FAILED, Status.FAILED_RETRYABLE):
            self._streak = ("", 0)
            return
        # Numbers in messages (row, ids) differ between users of one cause.
        key = f"{outcome.error_code}: {_DIGITS.sub('#', outcome.error_message or '')}"
        count = self._streak[1] + 1 if key == self._streak[0] else 1
        self._streak = (key, count)
        if count >= limit:
            self.stop(
                RepeatedFailureError(
                    f"the last {count} users all failed the same way "
                    f"({outcome.error_code}: {outcome.error_message}); the mapping, "
                    "the data or a Lambda trigger is probably wrong",
                    aws_error_code=outcome.error_code,
                )
            )

    # --- workers ------------------------------------------------------------

    def _process(self, item: WorkItem) -> Outcome:
        base = Outcome(
            row=item.row,
            user=item.key if item.key is not None else item.user,
            username=item.user,
            status=Status.NOT_ATTEMPTED,
        )
        if self._stop.is_set():
            return base
        if self._config.read_before_write:
            decided = self._read_first(item, base)
            if isinstance(decided, Outcome):
                return decided
            # The user as the read named it (see _read_first).
            item, base = decided, replace(base, username=decided.user)
        return self._write(item, base)

    def _read_first(self, item: WorkItem, base: Outcome) -> WorkItem | Outcome:
        """The item narrowed to what differs from the user now, or its outcome
        when the read decides the row (unchanged, conflict, failed, stopped)."""
        result, reads, stopped = self._call(self._pool.read, item, read=True)
        if stopped and not reads:
            return base
        error = result.error if result is not None else None
        if stopped or error is not None:
            return self._failed(
                base,
                error,
                attempts=reads,
                doing="reading the user before the write: ",
                stopped="the job stopped while this row's user was read",
            )
        assert result is not None
        assert result.attributes is not None
        current = result.attributes
        if result.username and result.username != item.user:
            # Keyed by an alias value (email, phone): the write, the ledger and
            # a rollback name the user as Cognito does, not by a value the
            # job itself may change.
            item = replace(item, user=result.username, key=item.key or item.user)
            base = replace(base, username=result.username)
        narrowed = narrow(item, current)
        nothing = not narrowed.set_attributes and not narrowed.delete_attributes
        # A user already as a rollback would leave it (restored by an earlier
        # run whose answer was lost) is done, not a conflict.
        clashes = {} if self._config.force or nothing else conflicts(item, current)
        if clashes:
            return replace(
                base,
                status=Status.CONFLICT,
                attempts=reads,
                before={name: now for name, (now, _) in clashes.items()},
                error_code="Conflict",
                error_message=conflict_message(item, clashes),
                finished_at=self._now(),
            )
        if nothing:
            return replace(
                base,
                status=Status.UNCHANGED,
                attempts=reads,
                error_code="unchanged",
                error_message=(
                    f"row {item.row}: the user already holds these values "
                    "(read before the write)"
                ),
                finished_at=self._now(),
            )
        if not self._config.writes:
            return replace(
                base,
                status=Status.WOULD_UPDATE,
                changed=tuple(narrowed.set_attributes),
                deleted=narrowed.delete_attributes,
                sent=dict(narrowed.set_attributes) or None,
                before=narrowed.before,
                attempts=reads,
                finished_at=self._now(),
            )
        return narrowed

    def _write(self, item: WorkItem, base: Outcome) -> Outcome:
        changed = tuple(item.set_attributes)
        deleted = item.delete_attributes
        calls: list[Callable[[WorkItem], CallResult]] = []
        if changed:
            calls.append(self._pool.update)
        if deleted:
            calls.append(self._pool.delete)
        attempts = 0
        delivery: str | None = None
        done: tuple[str, ...] = ()
        for call in calls:
            result, made, stopped = self._call(call, item)
            attempts += made
            if stopped and not attempts:
                return base
            error = result.error if result is not None else None
            if stopped or error is not None:
                # A call tried and not refused (a timeout, a lost answer, a
                # stop) may have been applied: what it sent is recorded with
                # its before-values beside what was surely set, so a resume
                # and a rollback know (a rollback's read tells which it was).
                maybe: tuple[str, ...] = ()
                if made and (error is None or error.kind != "user"):
                    maybe = changed if call == self._pool.update else deleted
                touched = (*done, *maybe)
                return replace(
                    self._failed(
                        base,
                        error,
                        attempts=attempts,
                        stopped="the job stopped before this row's calls were done",
                    ),
                    changed=done,
                    sent={
                        k: item.set_attributes[k]
                        for k in touched
                        if k in item.set_attributes
                    }
                    or None,
                    before=_before_of(item, touched),
                )
            assert result is not None
            if call == self._pool.update:
                done = changed
            delivery = result.delivery or delivery
        return replace(
            base,
            status=Status.UPDATED,
            changed=changed,
            sent=dict(item.set_attributes),
            before=item.before,
            deleted=deleted,
            attempts=attempts,
            finished_at=self._now(),
            delivery=delivery,
        )

    def _failed(
        self,
        base: Outcome,
        error: CallError | None,
        *,
        attempts: int,
        stopped: str,
        doing: str = "",
    ) -> Outcome:
        """A row tried and failed (``error``) or stopped (None) before it was done.

        A job-wide error stops the run; the row is ``failed`` for a per-user
        error, else ``failed_retryable`` (a resume takes it again), with the
        attempts it was given so far.
        """
        if error is not None and error.kind == "fatal":
            self.stop(FatalError(error.message, aws_error_code=error.code))
        return replace(
            base,
            status=(
                Status.FAILED
                if error is not None and error.kind == "user"
                else Status.FAILED_RETRYABLE
            ),
            attempts=attempts,
            error_code=error.code if error is not None else "Stopped",
            error_message=doing + error.message if error is not None else stopped,
            finished_at=self._now(),
        )

    def _call(
        self,
        call: Callable[[WorkItem], CallResult],
        item: WorkItem,
        *,
        read: bool = False,
    ) -> tuple[CallResult | None, int, bool]:
        """One call with retries: (last result, attempts, whether the run stopped).

        A read takes its tokens from the read bucket and counts as a read.
        """
        bucket, adaptive = (
            (self._read_bucket, self.read_adaptive)
            if read
            else (self._bucket, self.adaptive)
        )

        def observe(error: CallError | None) -> None:
            throttled = error is not None and error.throttled
            with self._lock:
                if read:
                    self.stats.reads += 1
                    self.stats.reads_throttled += throttled
                else:
                    self.stats.calls += 1
                    self.stats.throttled += throttled
            if error is None:
                adaptive.on_success()
            elif error.throttled:
                adaptive.on_throttle()

        def wait(seconds: float) -> bool:
            with self._lock:
                self.stats.retries += 1
            return self._pause(seconds)

        tried = call_with_retries(
            lambda: call(item),
            lambda result: result.error,
            policy=self._policy,
            random=self._random,
            wait=wait,
            before_attempt=lambda: bucket.acquire(cancelled=self._stop.is_set),
            observe=observe,
        )
        return tried.result, tried.attempts, tried.stopped

    def _pause(self, seconds: float) -> bool:
        """Sleep, waking early when the run stops; False if it stopped."""
        remaining = seconds
        while remaining > 0:
            if self._stop.is_set():
                return False
            step = min(remaining, _TICK)
            self._clock.sleep(step)
            remaining -= step
        return not self._stop.is_set()


def _before_of(
    item: WorkItem, touched: tuple[str, ...]
) -> dict[str, str | None] | None:
    """The before-values of the attributes a partly done row set or may have.

    Only those (and their verified flags, which Cognito resets with them): a
    rollback must not restore what the row never changed.
    """
    if not touched or item.before is None:
        return None
    kept = {*touched, *(FLAG_OF[name] for name in touched if name in FLAG_OF)}
    return {name: value for name, value in item.before.items() if name in kept}
