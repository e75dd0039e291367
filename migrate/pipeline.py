"""The job, stage by stage: read -> map -> validate -> plan -> (execute) -> report.

This is the library entry point the CLI calls. It owns no policy of its own: each
stage lives in its module; this one wires them together in batches so memory
stays flat however large the input file is.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import polars as pl

from migrate.aliases import KNOWN, WholeFile, whole_file
from migrate.background import Background
from migrate.checkpoint import Ledger
from migrate.compare import left_by_writes
from migrate.execution import ExecutionConfig, ExecutionStats, Executor, UserPoolClient
from migrate.mapping import VERIFIED_FLAGS, Mapping, load_mapping
from migrate.planning import ALIAS_ATTRIBUTES, CurrentValues, Planner, report_frame
from migrate.records import (
    ROW,
    Outcome,
    Status,
    WorkItem,
    utc_now,
)
from migrate.report import (
    REPORT_SCHEMA,
    VALUE_COLUMNS,
    ReportWriter,
    Summary,
    report_input_names,
    values_type,
)
from migrate.schema import PoolSchema
from migrate.source import Source, SourceOptions, open_source
from migrate.spill import ordered_map
from migrate.validation import DuplicateIndex, Validator, check_mapping

#: Input columns never copied into reports: their names say they hold secrets.
SECRET_COLUMN = re.compile(r"token|secret|password|passwd|credential", re.IGNORECASE)

#: How many example requests a dry run shows.
EXAMPLE_COUNT = 3


class Progress(Protocol):
    """Receives progress as rows are decided; the CLI renders it."""

    def on_rows(self, count: int) -> None:
        """``count`` more input rows have a final status."""


class NullProgress:
    """Progress that goes nowhere (library use, --quiet)."""

    def on_rows(self, count: int) -> None:
        """Ignore progress."""


@dataclass(frozen=True, kw_only=True)
class Job:
    """Everything checked before the first row is processed."""

    source: Source
    source_options: SourceOptions
    mapping: Mapping
    schema: PoolSchema
    warnings: tuple[str, ...]
    #: The users' current values (a snapshot): turns on the diff and lookup.
    current: CurrentValues | None = None

    def planner(self) -> Planner:
        """The planner of this job (with the diff when current values are known)."""
        return Planner(
            mapping=self.mapping,
            current=self.current,
            alias_duplicates=self.alias_duplicates(),
        )

    def with_snapshot(self, path: str | Path) -> Job:
        """This job, diffed against (and keyed through) a snapshot file.

        The snapshot is joined to every input row once, before the run, in
        bounded memory (see planning.Aligner), by the same pass over the
        input that finds duplicate users and alias values (aliases.whole_file).
        """
        from migrate.snapshot import read_snapshot

        current = CurrentValues.from_snapshot(
            read_snapshot(path),
            mapping=self.mapping,
            case_sensitive=self.schema.case_sensitive,
            source=str(path),
            alias_attributes=self.alias_attributes,
            collect=self.source.collect,
            signs_in_with=[
                *((name, False) for name in self.schema.username_attributes),
                *(
                    # A verified email or phone alias; preferred_username always.
                    (name, name != "preferred_username")
                    for name in self.schema.alias_attributes
                ),
            ],
        )
        aligner = current.aligner()
        self._whole_file(also=aligner.add)
        return replace(self, current=aligner.finish())

    @property
    def alias_attributes(self) -> tuple[str, ...]:
        """Mapped attributes users sign in with: two users must not share a value."""
        signs_in = {*self.schema.alias_attributes, *self.schema.username_attributes}
        return tuple(
            name
            for name in ALIAS_ATTRIBUTES
            if name in self.mapping.attributes and name in signs_in
        )

    def alias_duplicates(self) -> dict[str, DuplicateIndex]:
        """Rows that would give two users one alias value (exact, bounded memory).

        Found by the one pass over the input that also finds duplicate users
        (aliases.whole_file), mapping only the alias attributes.
        """
        if not self.alias_attributes:
            return {}
        return dict(self._whole_file().aliases)

    def mapped(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch mapped (Mapping.apply), reusing the alias attributes'
        columns the whole-file pass mapped already (e164 is the costly part)."""
        table = self._whole_file().mapped if self.alias_attributes else None
        known = None if table is None else table.lookup(batch.get_column(ROW))
        if known is not None and known.get_column(KNOWN).null_count():
            known = None  # a row the pass did not see: map it all here
        return self.mapping.apply(batch, known=known)

    def _whole_file(
        self, also: Callable[[pl.DataFrame], None] | None = None
    ) -> WholeFile:
        return whole_file(
            self.source,
            self.mapping,
            self.alias_attributes,
            case_sensitive=self.schema.case_sensitive,
            also=also,
        )

    @property
    def report_input_columns(self) -> list[str]:
        """Input columns copied into the report: all but secrets.

        The mapping's token column never leaves memory; nor does any column
        whose name says it holds a secret, even when this mapping ignores it.
        """
        return [
            c
            for c in self.source.columns
            if c != self.mapping.token_column and not SECRET_COLUMN.search(c)
        ]

    def report_inputs(self) -> list[pl.Expr]:
        """Expressions selecting a batch's input columns under their report names."""
        columns = self.report_input_columns
        return [
            pl.col(c).alias(n)
            for c, n in zip(columns, report_input_names(columns), strict=True)
        ]


def prepare(
    input_path: str | Path,
    mapping_path: str | Path,
    schema: PoolSchema,
    *,
    source_options: SourceOptions | None = None,
) -> Job:
    """Load and cross-check input, mapping and schema; raises ConfigError subclasses."""
    source_options = source_options or SourceOptions()
    mapping = load_mapping(mapping_path)
    source = open_source(input_path, source_options)
    mapping.check_columns(source.columns, source=str(source.path))
    warnings = check_mapping(mapping, schema)
    return Job(
        source=source,
        source_options=source_options,
        mapping=mapping,
        schema=schema,
        warnings=tuple(warnings),
    )


@dataclass(kw_only=True)
class DryRunResult:
    """What a dry run or validation found."""

    summary: Summary
    examples: list[WorkItem] = field(default_factory=list)
    report_path: Path | None = None

    @property
    def exit_code(self) -> int:
        """0 when every row ended well, 1 when some are invalid."""
        return 0 if self.summary.all_ok else 1


def dry_run(
    job: Job,
    *,
    report_path: str | Path | None,
    progress: Progress | None = None,
    now: Callable[[], str] = utc_now,
) -> DryRunResult:
    """Everything but the writes: every row gets would_update, skipped or invalid."""
    progress = progress or NullProgress()
    validator = _validator(job)
    planner = job.planner()
    summary = Summary(warnings=list(job.warnings))
    examples: list[WorkItem] = []
    writer = (
        _BackgroundWriter(
            ReportWriter(report_path, input_columns=job.report_input_columns)
        )
        if report_path is not None
        else None
    )
    lock = threading.Lock()
    stamp = now()

    def decide(batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        mapped = job.mapped(batch)
        with lock:  # the validator counts problems as it goes
            validated = validator.validate(mapped)
        return batch, planner.plan(validated, dry_run=True)

    try:
        for batch, planned in _in_parallel(decide, job.source.batches()):
            if len(examples) < EXAMPLE_COUNT:
                examples += planner.examples(planned, EXAMPLE_COUNT - len(examples))
            frame = report_frame(
                planned,
                finished_at=stamp,
                username_is_key=job.mapping.user_as == "username",
                inputs=batch.select(job.report_inputs()),
            )
            summary.add(frame)
            if writer is not None:
                writer.write(frame)
            progress.on_rows(frame.height)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    summary.problems.update(validator.counts)
    summary.warnings += _withheld_flag_warnings(planner)
    summary.examples = [
        (
            (item.user, dict(item.set_attributes), list(item.delete_attributes))
            if item.before is None
            else (
                item.user,
                dict(item.set_attributes),
                list(item.delete_attributes),
                item.before,
            )
        )
        for item in examples
    ]
    return DryRunResult(
        summary=summary,
        examples=examples,
        report_path=Path(report_path) if report_path is not None else None,
    )


def _withheld_flag_warnings(planner: Planner) -> list[str]:
    """Say where a verified flag was left out (its attribute was not set)."""
    return [
        f"{flag} left out of {rows:,} rows whose request does not set "
        f"{VERIFIED_FLAGS[flag]} (blank, deleted or unchanged); "
        'add when = "always" to send it anyway'
        for flag, rows in planner.withheld_flags().items()
    ]


class _BackgroundWriter:
    """Writes report batches on a thread of its own, a bounded step behind.

    Formatting and writing a CSV report costs as much as deciding the rows;
    polars releases the GIL while it writes, so the two overlap on two cores.
    """

    def __init__(self, writer: ReportWriter) -> None:
        self._writer = writer
        self._thread = Background(writer.write, name="migrate-report", queued=2)

    def write(self, frame: pl.DataFrame) -> None:
        """Queue a batch; raises a failure of an earlier write."""
        self._thread.put(frame)

    def close(self) -> None:
        """Write what is queued and move the report into place."""
        try:
            self._thread.wait()
        except BaseException:
            self.abort()
            raise
        self._thread.close()
        self._writer.close()

    def abort(self) -> None:
        """Discard the report (the previous one stays)."""
        self._thread.close()
        self._writer.abort()


#: Batches decided at once by a dry run: polars releases the GIL, so several
#: threads keep both cores of a small machine busy (measured: one thread used
#: about one core; on 2 cores and 1,000,000 rows of the real mapping, three
#: took 2.20 s where two took 2.42 s, as a third fills the moments the others
#: hold the GIL; four gained nothing more within the noise). Each holds one
#: batch, so memory does not grow with the file.
DRY_RUN_THREADS = 3

T = TypeVar("T")
R = TypeVar("R")


def _in_parallel(work: Callable[[T], R], inputs: Iterable[T]) -> Iterator[R]:
    """``map(work, inputs)`` on a few threads, in order, a bounded step ahead."""
    return ordered_map(work, inputs, DRY_RUN_THREADS)


def _validator(job: Job) -> Validator:
    """A validator primed with the whole file's duplicate users (one pass)."""
    return Validator(
        job.mapping,
        job.schema,
        duplicates=job._whole_file().users,
        source_name=str(job.source.path),
    )


def execute(
    job: Job,
    *,
    ledger: Ledger,
    pool: UserPoolClient,
    config: ExecutionConfig,
    retry_failed: bool = False,
    progress: Progress | None = None,
    now: Callable[[], str] = utc_now,
    executor_factory: Callable[..., Executor] = Executor,
) -> ExecutionStats:
    """Send every row the ledger does not already hold as done.

    Rows decided without a call (invalid, skipped, unchanged) are recorded as
    they are planned, a batch at a time; sent rows are recorded as their
    outcomes arrive. Only this thread records; the ledger's writer thread
    encodes and commits.
    """
    progress = progress or NullProgress()
    # Sorted, so that each batch looks only at its own rows' slice.
    done = ledger.done_rows(retry_failed=retry_failed)
    validator = _validator(job)
    planner = job.planner()
    username_is_key = job.mapping.user_as == "username"
    executor = executor_factory(pool, config)
    if isinstance(progress, _StartAware):
        progress.on_start(executor.stats, job.source.count_rows())
    if done.len():
        progress.on_rows(done.len())

    def items() -> Iterator[WorkItem]:
        for batch in job.source.batches():
            todo = _not_done(batch, done)
            if todo.is_empty():
                continue
            planned = planner.plan(validator.validate(job.mapped(todo)), dry_run=False)
            decided = report_frame(
                planned, finished_at=now(), username_is_key=username_is_key
            )
            if decided.height:
                # One batch, encoded and committed by the ledger's writer thread.
                ledger.record_frame(decided)
                progress.on_rows(decided.height)
            yield from planner.work_items(planned)

    on_outcome = _recorder(ledger, progress, retry_failed=retry_failed)
    try:
        stats = executor.run(items(), on_outcome, on_idle=ledger.commit_due)
    finally:
        ledger.flush()
    return stats


def _not_done(batch: pl.DataFrame, done: pl.Series) -> pl.DataFrame:
    """The rows of a batch (in row order) that are not among ``done`` (sorted)."""
    if done.is_empty() or batch.is_empty():
        return batch
    rows = batch.get_column(ROW)
    first, last = int(rows.min()), int(rows.max())  # type: ignore[arg-type]
    start = done.search_sorted(first, side="left")
    end = done.search_sorted(last, side="right")
    if start == end:
        return batch
    if end - start == batch.height == last - first + 1:
        # Every row of the batch is done (its rows are first..last, each
        # once): most batches of a resume, skipped without a filter.
        return batch.clear()
    return batch.filter(~pl.col(ROW).is_in(done.slice(start, end - start).implode()))


def _recorder(
    ledger: Ledger,
    progress: Progress,
    *,
    retry_failed: bool,
    retry_conflicts: bool = False,
) -> Callable[[Outcome], None]:
    """Records each outcome, with what earlier runs did to its row: their
    attempts, and the changes an earlier try made or may have made."""
    prior = ledger.prior_attempts(
        retry_failed=retry_failed, retry_conflicts=retry_conflicts
    )
    values = ledger.earlier_values(
        retry_failed=retry_failed, retry_conflicts=retry_conflicts
    )

    def on_outcome(outcome: Outcome) -> None:
        earlier = prior.get(outcome.row)
        if earlier:
            if outcome.status is Status.NOT_ATTEMPTED and not outcome.attempts:
                # Not tried this time: the row keeps what it has (a
                # failed_retryable with its last error), not a blank.
                progress.on_rows(1)
                return
            outcome = replace(outcome, attempts=outcome.attempts + earlier)
        done_before = values.get(outcome.row)
        if done_before is not None:
            outcome = with_earlier_changes(outcome, done_before)
        ledger.record(outcome)
        progress.on_rows(1)

    return on_outcome


def with_earlier_changes(outcome: Outcome, earlier: Outcome) -> Outcome:
    """``outcome`` of a row tried again, keeping what an earlier try changed.

    The earliest before-value of each attribute wins (a later read sees the
    earlier try's values). A row now found unchanged or updated had its
    earlier writes applied: they count as this row's changes, so the report
    says ``updated`` and a rollback undoes them.
    """
    before = {**(outcome.before or {}), **(earlier.before or {})}
    sent = {**(earlier.sent or {}), **(outcome.sent or {})}
    if outcome.status not in (Status.UPDATED, Status.UNCHANGED):
        return replace(outcome, before=before, sent=sent or None)
    changed = tuple(dict.fromkeys([*earlier.changed, *sent, *outcome.changed]))
    tried_deletes = [
        name
        for name, left in left_by_writes(earlier.before or {}, sent).items()
        if left is None
    ]
    deleted = tuple(dict.fromkeys([*earlier.deleted, *tried_deletes, *outcome.deleted]))
    if not changed and not deleted and not before:
        return outcome
    return replace(
        outcome,
        status=Status.UPDATED,
        changed=changed,
        deleted=deleted,
        sent=sent or None,
        before=before,
        error_code=None,
        error_message=None,
    )


@runtime_checkable
class _StartAware(Protocol):
    def on_start(self, stats: ExecutionStats, total: int | None) -> None: ...


def write_report(
    job: Job,
    ledger: Ledger,
    report_path: str | Path,
    *,
    only: Collection[str] | None = None,
    progress: Progress | None = None,
) -> Summary:
    """The per-user report of a job: every input row, with its ledger outcome.

    Rows the ledger does not hold (the job stopped first) are ``not_attempted``.
    ``only`` keeps just the rows whose status is in it.

    Three steps overlap, as in a dry run: a thread reads the next batch and
    its outcomes from the ledger (SQLite and polars, both without the GIL),
    this one joins them, and the report is written a step behind.
    """
    progress = progress or NullProgress()
    summary = Summary(problems=ledger.problem_counts(), warnings=list(job.warnings))
    columns = job.report_input_columns
    values = ledger.value_attributes()
    # Settled here, in the thread that records: the reads below run beside.
    ledger.flush()

    def with_outcomes(batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        rows = batch.get_column(ROW)
        first, last = int(rows.min()), int(rows.max())  # type: ignore[arg-type]
        stored = ledger.outcome_frame(
            first_row=first, last_row=last, values=bool(values)
        )
        return batch, _ledger_frame(stored, values)

    writer = _BackgroundWriter(
        ReportWriter(report_path, input_columns=columns, value_attributes=values)
    )
    try:
        for batch, stored in ordered_map(with_outcomes, job.source.batches(), 1):
            frame = _merge(batch, stored, job, values)
            summary.add(frame)
            if only is not None:
                frame = frame.filter(pl.col("status").is_in(list(only)))
            writer.write(frame)
            progress.on_rows(batch.height)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return summary


def _ledger_frame(frame: pl.DataFrame, values: Sequence[str] = ()) -> pl.DataFrame:
    """Stored outcomes (Ledger.outcome_frame) as report columns; with
    ``values``, ``before`` and ``after`` (the values sent; an attribute
    deleted or not set has none)."""
    as_list = pl.List(pl.String)
    decoded = [
        pl.col("changed").str.json_decode(as_list),
        pl.col("deleted").str.json_decode(as_list),
    ]
    if values:
        fields = values_type(values)
        decoded += [
            pl.col("before").str.json_decode(fields),
            pl.col("sent").str.json_decode(fields).alias("after"),
        ]
    return frame.with_columns(decoded).drop("sent", strict=False)


def _merge(
    batch: pl.DataFrame, stored: pl.DataFrame, job: Job, values: Sequence[str] = ()
) -> pl.DataFrame:
    key = job.mapping.user_column
    base = batch.select(
        pl.col(ROW).alias("row"),
        pl.col(key).str.strip_chars().replace("", None).alias("__key"),
        *job.report_inputs(),
    )
    merged = base.join(stored, on="row", how="left")
    return merged.select(
        *_report_columns(pl.col("username"), values),
        *report_input_names(job.report_input_columns),
    )


def _report_columns(username: pl.Expr, values: Sequence[str] = ()) -> list[pl.Expr]:
    """The report's columns of stored outcomes joined to the rows expected.

    A row the ledger does not hold is ``not_attempted``, with the key as given
    (``__key``) as its user; ``username`` says where the username comes from.
    With ``values``, the ``before`` and ``after`` columns follow.
    """
    fills: dict[str, pl.Expr] = {
        "user": pl.coalesce("user", "__key").alias("user"),
        "username": username.alias("username"),
        "status": pl.col("status").fill_null(Status.NOT_ATTEMPTED.value),
        "attempts": pl.col("attempts").fill_null(0),
    }
    names = pl.List(pl.String)
    empty = pl.lit([], dtype=names)
    lists = [name for name, dtype in REPORT_SCHEMA.items() if dtype == names]
    fills.update({name: pl.col(name).fill_null(empty) for name in lists})
    columns = [fills.get(name, pl.col(name)) for name in REPORT_SCHEMA]
    if values:
        columns += [pl.col(name) for name in VALUE_COLUMNS]
    return columns


def write_ledger_report(
    ledger: Ledger,
    report_path: str | Path,
    *,
    only: Collection[str] | None = None,
    rows: Iterable[WorkItem] = (),
    total_rows: int | None = None,
    warnings: Sequence[str] = (),
) -> Summary:
    """A report from a ledger alone (a rollback job has no input file).

    ``rows`` are the work items of the job, in row order, or ``total_rows``
    its row count: rows the ledger does not hold yet are reported
    ``not_attempted``. Read and written a window of rows at a time, so memory
    does not grow with the job.
    """
    summary = Summary(warnings=list(warnings))
    values = ledger.value_attributes()
    with ReportWriter(report_path, value_attributes=values) as writer:
        for frame in _ledger_report(ledger, rows, total_rows, values):
            summary.add(frame)
            if only is not None:
                frame = frame.filter(pl.col("status").is_in(list(only)))
            writer.write(frame)
    return summary


#: Rows of a report from the ledger alone read at a time.
_REPORT_WINDOW = 50_000


def _ledger_report(
    ledger: Ledger,
    rows: Iterable[WorkItem],
    total_rows: int | None,
    values: Sequence[str] = (),
) -> Iterator[pl.DataFrame]:
    """The report's rows, window by window: every expected row (an item, or
    one of total_rows) and every stored outcome, in row order."""
    done = 0
    for expected in _expected_windows(rows, total_rows):
        last = int(expected["row"].max())  # type: ignore[arg-type]
        stored = _ledger_frame(
            ledger.outcome_frame(
                first_row=done + 1, last_row=last, values=bool(values)
            ),
            values,
        )
        yield _ledger_rows(expected, stored, values)
        done = last
    # Outcomes beyond the rows expected (a job's rows the caller did not list).
    empty = pl.DataFrame(
        schema={"row": pl.Int64, "__key": pl.String, "__name": pl.String}
    )
    while not (
        window := ledger.outcome_frame(
            first_row=done + 1, values=bool(values), limit=_REPORT_WINDOW
        )
    ).is_empty():
        yield _ledger_rows(empty, _ledger_frame(window, values), values)
        done = int(window["row"].max())  # type: ignore[arg-type]


def _expected_windows(
    rows: Iterable[WorkItem], total_rows: int | None
) -> Iterator[pl.DataFrame]:
    """The rows a report from the ledger must hold, a window at a time."""
    schema = {"row": pl.Int64, "__key": pl.String, "__name": pl.String}
    if total_rows is not None:
        for first in range(1, total_rows + 1, _REPORT_WINDOW):
            last = min(first + _REPORT_WINDOW - 1, total_rows)
            yield pl.DataFrame(
                {"row": pl.int_range(first, last + 1, eager=True)}
            ).with_columns(
                pl.lit(None, pl.String).alias("__key"),
                pl.lit(None, pl.String).alias("__name"),
            )
        return
    items = iter(rows)
    while window := list(itertools.islice(items, _REPORT_WINDOW)):
        yield pl.DataFrame(
            {
                "row": [item.row for item in window],
                "__key": [item.key or item.user for item in window],
                "__name": [item.user for item in window],
            },
            schema=schema,
        )


def _ledger_rows(
    expected: pl.DataFrame, stored: pl.DataFrame, values: Sequence[str] = ()
) -> pl.DataFrame:
    return (
        expected.join(stored, on="row", how="full", coalesce=True)
        .sort("row")
        .select(_report_columns(pl.coalesce("username", "__name"), values))
    )
