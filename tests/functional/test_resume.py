"""Stopping and resuming jobs: Ctrl-C, fatal stops, --retry-failed, live status.

The property test drives ``pipeline.execute`` with a fake client and virtual
time; the others run the real CLI against the emulated pool (in process, or as
a ``python -m tests.support.endpoint serve`` subprocess when a real run process is
needed).
"""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from migrate import pipeline
from migrate.checkpoint import Fingerprint, Ledger
from migrate.cli import cli
from migrate.execution import ExecutionConfig, Executor, UserPoolClient
from migrate.ratelimit import FakeClock
from migrate.records import (
    CallError,
    CallResult,
    ErrorKind,
    Outcome,
    Status,
    WorkItem,
)
from migrate.sandbox import EmulatedPool
from migrate.schema import load_schema_file
from migrate.source import SourceOptions
from tests.conftest import MAPPINGS, SAMPLES, BeforeBatchWrites
from tests.support.fake_cognito import FakeCognito
from tests.support.faults import Faults, FaultyPool
from tests.support.served import served_sandbox, stop, subprocess_env

SCHEMA_FILE = SAMPLES / "pool-schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
POOL_ID = "us-east-1_SAMPLE0001"
MAPPING = MAPPINGS / "backfill-tenant.toml"
#: Ignored when comparing reports: they differ between any two runs.
VOLATILE = ["finished_at", "attempts"]


# --- a fake Cognito for pipeline.execute ---------------------------------------


@dataclass
class FakePool:
    """A thread-safe UserPoolClient that records calls per user.

    ``permanent`` users fail with a per-user error, ``flaky`` ones fail
    retryably that many times (counted over the fake's whole life, so across an
    interruption and its resume) and then succeed, ``broken`` ones always fail
    retryably. ``interrupt_at`` (1-based call number) raises KeyboardInterrupt
    from that call instead of answering it: an exception escaping the client in
    a worker thread, which must stop the run like a Ctrl-C does.
    """

    permanent: frozenset[str] = frozenset()
    flaky: dict[str, int] = field(default_factory=dict)
    broken: frozenset[str] = frozenset()
    interrupt_at: int | None = None
    calls: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, item: WorkItem) -> CallResult:
        """Users hold none of the attributes: every row is written."""
        return CallResult(attributes={})

    def update(self, item: WorkItem) -> CallResult:
        with self._lock:
            self.calls.append(item.user)
            if len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
            if item.user in self.permanent:
                return _error("UserNotFoundException", "User does not exist.", "user")
            if item.user in self.broken or self.flaky.get(item.user, 0) > 0:
                if item.user in self.flaky:
                    self.flaky[item.user] -= 1
                return _error("InternalErrorException", "try again", "retryable")
            self.applied.append(item.user)
            return CallResult()

    def delete(self, item: WorkItem) -> CallResult:
        raise AssertionError("backfill-tenant deletes nothing")


def _error(code: str, message: str, kind: ErrorKind) -> CallResult:
    return CallResult(error=CallError(code=code, message=message, kind=kind))


class InterruptingProgress:
    """Progress whose ``at``-th on_rows call raises KeyboardInterrupt.

    It runs in the coordinator (the main thread), where a real Ctrl-C lands:
    while planning a batch or while recording an outcome.
    """

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.seen = 0

    def on_rows(self, count: int) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def _instant(pool: UserPoolClient, config: ExecutionConfig) -> Executor:
    return Executor(pool, config, clock=FakeClock())


#: Few attempts, so that "always retryable" users give up fast (virtual time).
CONFIG = ExecutionConfig(rate=1000.0, concurrency=4, max_attempts=3)


def _write_input(path: Path, users: int) -> Path:
    """``users`` rows plus a duplicate, an invalid value and a blank (skipped) cell."""
    lines = ["username,tenant"]
    lines += [f"user{i:03d},tenant-{i % 5}" for i in range(users)]
    lines.append("user001,tenant-again")  # duplicate of row 2: both invalid
    lines.append(f"user{users:03d},{'t' * 65}")  # custom:tenant_id is 1..64
    lines.append(f"user{users + 1:03d},")  # blank = skip: nothing to change
    path.write_text("\n".join(lines) + "\n")
    return path


@functools.cache
def _blank_ledger() -> bytes:
    """An empty job file's bytes: creating one costs a few fsyncs, copying none."""
    fingerprint = Fingerprint(
        input_sha256="in", mapping_sha256="map", pool=POOL_ID, options="{}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blank.sqlite"
        Ledger.create(path, fingerprint).close()
        return path.read_bytes()


def _new_ledger(path: Path) -> Ledger:
    path.write_bytes(_blank_ledger())
    return Ledger.open(path)


def _report(job: pipeline.Job, ledger: Ledger, path: Path) -> pl.DataFrame:
    pipeline.write_report(job, ledger, path)
    return pl.read_csv(path, infer_schema=False).drop(VOLATILE)


def _updated(ledger: Ledger) -> set[str]:
    return {
        str(row[1])
        for row in ledger.outcomes(first_row=1, last_row=1 << 40)
        if row[3] == Status.UPDATED.value
    }


@dataclass(frozen=True)
class Stop:
    """One interruption: where it comes from and at which call or progress step."""

    where: str  # "client": inside a call (worker); "progress": in the coordinator
    at: int


_STOPS = st.builds(
    Stop,
    where=st.sampled_from(["client", "progress"]),
    at=st.integers(min_value=1, max_value=45),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    users=st.integers(min_value=17, max_value=57),
    batch_size=st.integers(min_value=4, max_value=64),
    concurrency=st.integers(min_value=1, max_value=6),
    stops=st.lists(_STOPS, min_size=1, max_size=3),
    fates=st.data(),
)
def test_property_interrupt_then_resume_ends_like_one_clean_run(
    users: int,
    batch_size: int,
    concurrency: int,
    stops: list[Stop],
    fates: st.DataObject,
) -> None:
    # user001 has a duplicate row: both are invalid, never sent.
    names = [f"user{i:03d}" for i in range(users) if i != 1]
    some = st.lists(st.sampled_from(names), max_size=6, unique=True)
    permanent = frozenset(fates.draw(some, label="permanent"))
    broken = frozenset(fates.draw(some, label="broken")) - permanent
    flaky = {
        user: fates.draw(st.integers(1, 2), label=f"flaky {user}")
        for user in fates.draw(some, label="flaky")
        if user not in permanent | broken
    }
    schema = load_schema_file(SCHEMA_FILE)
    config = ExecutionConfig(
        rate=CONFIG.rate, concurrency=concurrency, max_attempts=CONFIG.max_attempts
    )

    def fake() -> FakePool:
        return FakePool(permanent=permanent, flaky=dict(flaky), broken=broken)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = _write_input(root / "in.csv", users)
        job = pipeline.prepare(
            data, MAPPING, schema, source_options=SourceOptions(batch_size=batch_size)
        )

        with _new_ledger(root / "clean.sqlite") as ledger:
            pipeline.execute(
                job,
                ledger=ledger,
                pool=fake(),
                config=config,
                executor_factory=_instant,
            )
            clean = _report(job, ledger, root / "clean.csv")

        client = fake()
        stopped: list[tuple[set[str], int]] = []
        with _new_ledger(root / "job.sqlite") as ledger:
            for stop in [*stops, None]:
                client.interrupt_at = None
                progress = InterruptingProgress(None)
                if stop is not None and stop.where == "client":
                    client.interrupt_at = len(client.calls) + stop.at
                elif stop is not None:
                    progress = InterruptingProgress(stop.at)
                applied_before = len(client.applied)
                try:
                    pipeline.execute(
                        job,
                        ledger=ledger,
                        pool=client,
                        config=config,
                        progress=progress,
                        executor_factory=_instant,
                    )
                except KeyboardInterrupt:
                    assert stop is not None
                else:
                    break
                done = _updated(ledger)
                stopped.append((done, len(client.calls)))
                if stop.where == "progress":
                    # Ctrl-C in the coordinator: every call that succeeded
                    # before the stop made it into the ledger.
                    assert set(client.applied[applied_before:]) <= done
            resumed = _report(job, ledger, root / "resumed.csv")
    event(f"interrupted {len(stopped)} time(s)")

    # What the ledger held as updated at a stop was never sent again.
    for done, mark in stopped:
        assert not done & set(client.calls[mark:])
    assert resumed.to_dicts() == clean.to_dicts()
    statuses = Counter(clean["status"])
    assert statuses["invalid"] == 3
    assert statuses["skipped"] == 1
    assert statuses["failed"] == len(permanent)
    assert statuses["failed_retryable"] == len(broken)


# --- Ctrl-C landing at awkward moments (real signals arrive in the main thread) --


def test_ctrl_c_while_the_ledger_commits_loses_no_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the explicit flush below hands outcomes to the writer.
    monkeypatch.setattr("migrate.checkpoint.COMMIT_INTERVAL", 3600.0)
    path = tmp_path / "job.sqlite"
    ledger = _new_ledger(path)
    # The writer waits inside its insert until released: Ctrl-C lands while
    # the recording thread waits in flush, where a run spends most of its stop.
    writing = threading.Event()
    release = threading.Event()

    def hold() -> None:
        writing.set()
        assert release.wait(10)

    held = BeforeBatchWrites(ledger._db, hold)
    ledger._db = held  # type: ignore[assignment]
    main = threading.main_thread().ident
    assert main is not None

    def ctrl_c_once_the_writer_writes() -> None:
        assert writing.wait(10)
        signal.pthread_kill(main, signal.SIGINT)

    sender = threading.Thread(target=ctrl_c_once_the_writer_writes)
    sender.start()
    try:
        for row in range(1, 6):
            ledger.record(
                Outcome(row=row, user=f"user{row:03d}", status=Status.UPDATED)
            )
        with pytest.raises(KeyboardInterrupt):
            ledger.flush()
    finally:
        sender.join()
        release.set()
        # What the CLI does on its way out: close, which waits for the writer.
        ledger._db = held.real
        ledger.close()
    with Ledger.open(path) as reopened:
        assert sorted(reopened.done_rows()) == [1, 2, 3, 4, 5]


class _SlowStartPool(FakePool):
    """Signals when a call has started, so a test can time a Ctrl-C after it."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def update(self, item: WorkItem) -> CallResult:
        self.started.set()
        return super().update(item)


def test_ctrl_c_while_a_call_is_queued_loses_no_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _SlowStartPool()

    class InterruptedSubmit(ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            future = super().submit(fn, *args, **kwargs)
            type(self).submitted += 1
            if type(self).submitted == 1:
                # The signal arrives after the item is queued and its worker
                # took it, before submit returns the future to the executor.
                assert client.started.wait(10)
                raise KeyboardInterrupt
            return future

    monkeypatch.setattr("migrate.execution.ThreadPoolExecutor", InterruptedSubmit)
    schema = load_schema_file(SCHEMA_FILE)
    job = pipeline.prepare(_write_input(tmp_path / "in.csv", 20), MAPPING, schema)
    with _new_ledger(tmp_path / "job.sqlite") as ledger:
        with pytest.raises(KeyboardInterrupt):
            pipeline.execute(
                job,
                ledger=ledger,
                pool=client,
                config=CONFIG,
                executor_factory=_instant,
            )
        assert client.applied == ["user000"]
        assert _updated(ledger) == {"user000"}


class _HeldPool(FakePool):
    """user000's call takes a while; user002's raises KeyboardInterrupt at once."""

    def update(self, item: WorkItem) -> CallResult:
        if item.user == "user000":
            time.sleep(0.3)
        if item.user == "user002":
            raise KeyboardInterrupt
        return super().update(item)


def test_a_call_that_raises_keyboard_interrupt_still_lets_the_others_land(
    tmp_path: Path,
) -> None:
    client = _HeldPool()
    schema = load_schema_file(SCHEMA_FILE)
    job = pipeline.prepare(_write_input(tmp_path / "in.csv", 3), MAPPING, schema)
    # user001 is invalid (a duplicate): user000 and user002 are in flight together.
    config = ExecutionConfig(rate=1000.0, concurrency=2, max_attempts=1)
    with _new_ledger(tmp_path / "job.sqlite") as ledger:
        with pytest.raises(KeyboardInterrupt):
            pipeline.execute(
                job,
                ledger=ledger,
                pool=client,
                config=config,
                executor_factory=_instant,
            )
        # The executor's contract: calls in flight finish and are delivered.
        assert client.applied == ["user000"]
        assert _updated(ledger) == {"user000"}


# --- the CLI against the emulated pool -------------------------------------------


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def users_csv(path: Path, n: int, *, tenant: str = "tenant") -> Path:
    lines = ["username,tenant"]
    lines += [f"user{i:04d},{tenant}-{i % 7}" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_args(endpoint: str, tmp_path: Path) -> list[str | Path]:
    return [
        "-m",
        MAPPING,
        "--user-pool-id",
        POOL_ID,
        "--endpoint-url",
        endpoint,
        "--region",
        "us-east-1",
        "--job",
        tmp_path / "job.sqlite",
        "--report",
        tmp_path / "report.csv",
        "--rate",
        "1000",
        "--concurrency",
        "4",
        "--yes",
        "--quiet",
    ]


def statuses(path: Path) -> dict[str, int]:
    report = pl.read_csv(path, infer_schema=False)
    return dict(report.group_by("status").len().iter_rows())


@pytest.fixture
def pool() -> Iterator[EmulatedPool]:
    with FaultyPool(faults=Faults(quota=None)) as emulated:
        yield emulated


def test_a_fatal_stop_resumes_against_a_working_endpoint(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    n = 60
    data = users_csv(tmp_path / "in.csv", n)
    # DescribeUserPool answers with the samples' schema; every write is denied.
    with FakeCognito(
        body={"__type": "AccessDeniedException", "message": "denied"},
        replies={"DescribeUserPool": (200, SCHEMA)},
    ) as denied:
        result = invoke("run", data, *run_args(denied.url, tmp_path))
    assert result.exit_code == 3, result.output
    assert f"cognito-migrate resume {tmp_path / 'job.sqlite'}" in result.output
    tried = len(denied.requests_except("DescribeUserPool"))
    assert 1 <= tried <= 4 * 2 + 1
    # The rows that met the denial were tried; the rest never left.
    assert statuses(tmp_path / "report.csv") == {
        "failed_retryable": tried,
        "not_attempted": n - tried,
    }

    seeded = pool.seed(SCHEMA, [{"username": f"user{i:04d}"} for i in range(1, n + 1)])
    assert seeded == POOL_ID
    result = invoke(
        "resume",
        tmp_path / "job.sqlite",
        "--endpoint-url",
        pool.endpoint_url,
        "--report",
        tmp_path / "resumed.csv",
        "--rate",
        "1000",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert statuses(tmp_path / "resumed.csv") == {"updated": n}
    # Every call either server saw is counted once in the report: the attempts
    # of the stopped run are carried into the resumed rows.
    resumed = pl.read_csv(tmp_path / "resumed.csv")
    assert resumed.get_column("attempts").sum() == n + tried
    for i in (1, 30, n):
        attributes = pool.user_attributes(POOL_ID, f"user{i:04d}")
        assert attributes["custom:tenant_id"] == f"tenant-{i % 7}"
    assert len(pool.writes) == n
    assert max(pool.writes.values()) == 1


def test_retry_failed_retakes_failed_rows_once_the_cause_is_fixed(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool.seed(SCHEMA, [{"username": f"user{i:04d}"} for i in range(1, 21)])
    data = users_csv(tmp_path / "in.csv", 25)
    job = tmp_path / "job.sqlite"
    result = invoke("run", data, *run_args(pool.endpoint_url, tmp_path))
    assert result.exit_code == 1, result.output
    assert statuses(tmp_path / "report.csv") == {"updated": 20, "failed": 5}
    missing = [f"user{i:04d}" for i in range(21, 26)]
    pool.add_users(POOL_ID, [{"username": name} for name in missing])
    common: list[str | Path] = [
        "--report",
        tmp_path / "resumed.csv",
        "--rate",
        "1000",
        "--quiet",
    ]

    # Without the flag, failed rows are final: nothing is sent.
    result = invoke("resume", job, *common)
    assert result.exit_code == 1, result.output
    assert statuses(tmp_path / "resumed.csv") == {"updated": 20, "failed": 5}
    assert not set(missing) & set(pool.writes)

    result = invoke("resume", job, "--retry-failed", *common)
    assert result.exit_code == 0, result.output
    assert statuses(tmp_path / "resumed.csv") == {"updated": 25}
    assert pool.user_attributes(POOL_ID, "user0023")["custom:tenant_id"] == "tenant-2"
    assert len(pool.writes) == 25
    assert max(pool.writes.values()) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("input", "the input file's content"),
        ("mapping", "the mapping file's content"),
    ],
)
def test_run_refuses_a_job_file_made_for_other_files(
    pool: EmulatedPool, tmp_path: Path, change: str, named: str
) -> None:
    pool.seed(SCHEMA, [{"username": f"user{i:04d}"} for i in range(1, 11)])
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING.read_text())
    data = users_csv(tmp_path / "in.csv", 10)
    args = run_args(pool.endpoint_url, tmp_path)
    args[args.index("-m") + 1] = mapping
    assert invoke("run", data, *args).exit_code == 0
    writes = dict(pool.writes)

    if change == "input":
        users_csv(data, 10, tenant="renamed")
    else:
        mapping.write_text(MAPPING.read_text() + "\n# edited\n")
    result = invoke("run", data, *args)
    assert result.exit_code == 2, result.output
    job = tmp_path / "job.sqlite"
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(
        re.escape(f"Error: job file {job} was made for a different job: {named} ")
        + r"\(sha256 [0-9a-f]{12}, now [0-9a-f]{12}\)"
        + re.escape(
            " changed since. Resume with the same files and options, or start a "
            "new job with another --job file"
        ),
        last,
    ), last
    assert pool.writes == writes
    assert statuses(tmp_path / "report.csv") == {"updated": 10}


# --- `status` while a real run process works ---------------------------------------


def _wait_for(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _decided(text: str) -> int:
    found = re.search(r"^Rows with a status: ([\d,]+) of 400$", text, re.MULTILINE)
    assert found, text
    return int(found.group(1).replace(",", ""))


def test_status_shows_a_running_job_move(tmp_path: Path) -> None:
    n = 400
    data = users_csv(tmp_path / "in.csv", n)
    run: subprocess.Popen[bytes] | None = None
    with served_sandbox(data, latency=0.01) as (endpoint, pool_id):
        try:
            job = tmp_path / "job.sqlite"
            args = [str(a) for a in run_args(endpoint, tmp_path)]
            args[args.index("--rate") + 1] = "50"
            run = subprocess.Popen(
                [sys.executable, "-m", "migrate", "run", str(data), *args],
                env=subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )

            def status() -> str:
                result = invoke("status", job)
                assert result.exit_code == 0, result.output
                return result.output

            def recording() -> bool:
                if run.poll() is not None or not job.exists():
                    return run.poll() is not None
                text = status()
                return "Running: yes" in text and _decided(text) > 0

            _wait_for(recording, "the run to record rows", 60)
            first = status()
            time.sleep(1.0)
            second = status()
            assert run.poll() is None, "the run ended before status could watch it"
            assert f"Pool: {pool_id}" in first
            assert re.search(r"^Running: yes, process \d+$", first, re.MULTILINE), first
            assert re.search(r"^Running: yes, process \d+$", second, re.MULTILINE)
            # 1 s at 50 requests/s: about 50 more rows, at least some.
            assert _decided(first) < _decided(second) < n
            # Stopping it (SIGTERM acts as Ctrl-C) ends the run and frees the job.
            run.send_signal(signal.SIGTERM)
            output, _ = run.communicate(timeout=30)
            assert run.returncode == 130, output.decode()
            last = status()
            assert re.search(r"^Running: no$", last, re.MULTILINE), last
            assert "Runs: 1 (last: interrupted)" in last
            # Stopped, every row has a status, and status agrees with the
            # run's own summary on how many were never sent.
            assert _decided(last) == n
            pattern = r"^\s+not_attempted\s+([\d,]+)$"
            summary = re.search(pattern, output.decode(), re.MULTILINE)
            shown = re.search(pattern, last, re.MULTILINE)
            assert summary, output.decode()
            assert shown, last
            assert shown.group(1) == summary.group(1)
        finally:
            if run is not None:
                stop(run)
