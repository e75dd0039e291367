"""The ``cognito-migrate`` command line: parse, call the library, print, exit.

Every command builds a typed request, calls `migrate.jobs`, and prints what it
returns. Errors from the library reach one handler (`_Group.invoke`): a
configuration or input problem is exit 2, a job-wide stop exit 3, an interrupt
130. Exit codes: 0 every row ended well; 1 the job finished but some rows are
invalid or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from migrate import __version__, interrupts, jobs
from migrate.errors import FatalError, MigrateError, OptionsError, StoppedError
from migrate.execution import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RATE,
    DEFAULT_READ_RATE,
    RATE_WARNING,
    READ_RATE_WARNING,
    USER_READ_QUOTA,
    USER_UPDATE_QUOTA,
    ExecutionConfig,
    ExecutionStats,
)
from migrate.files import remove_temporaries
from migrate.jobs import AwsOptions, JobRequest, JobResult
from migrate.pipeline import DryRunResult, Job
from migrate.policy import COMMAND_ACTIONS, policy_json
from migrate.records import OK_STATUSES, Status
from migrate.snapshot import DEFAULT_LIST_RATE
from migrate.source import SourceOptions
from migrate.status import render as render_status

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130

#: Seconds between refreshes of `status --watch`.
STATUS_INTERVAL = 5.0
#: Seconds between plain progress lines when output is not a terminal.
PROGRESS_INTERVAL = 10.0
#: Interrupts closer together than this are one stop: `timeout -s INT` and a
#: terminal both deliver SIGINT to the process and to its group.
SAME_STOP_SECONDS = 1.0

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A library error shown as one line, with the exit code its kind deserves."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code a class variable; this error sets its own.
        setattr(self, "exit_code", exit_code)  # noqa: B010


class _Group(click.Group):
    """The command group: commands in the order a user meets them, one handler."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OptionsError as error:
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            usage = (
                click.Context(command, info_name=name, parent=ctx) if command else ctx
            )
            raise click.UsageError(str(error), usage) from None
        except StoppedError as error:
            raise CommandError(str(error), EXIT_INTERRUPTED) from None
        except MigrateError as error:
            code = EXIT_ABORTED if isinstance(error, FatalError) else EXIT_USAGE
            raise CommandError(str(error), code) from None
        except KeyboardInterrupt:
            raise CommandError("interrupted", EXIT_INTERRUPTED) from None


# --- option groups ---------------------------------------------------------------


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def _path_option(*names: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(
        *names, type=click.Path(dir_okay=False, path_type=Path), help=help, **kwargs
    )


input_options = _options(
    click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
    _path_option(
        "-m",
        "--mapping",
        "mapping_path",
        required=True,
        help="TOML mapping file: which columns go to which attributes.",
    ),
    click.option(
        "--delimiter",
        default=",",
        show_default=True,
        help="CSV field delimiter, e.g. ';' or 'tab'.",
    ),
    click.option(
        "--format",
        "input_format",
        type=click.Choice(["csv", "parquet", "jsonl"]),
        default=None,
        help="Input format (default: from the extension: .csv/.tsv/.txt, "
        ".parquet/.pq, .jsonl/.ndjson/.json, each also as .gz; gzip is read "
        "whatever the name; a folder is read as Parquet parts).",
    ),
)

connection_options = _options(
    click.option("--profile", help="AWS profile (default: the usual chain)."),
    click.option("--region", help="AWS region (default: profile/env)."),
    click.option("--endpoint-url", help="Cognito endpoint, e.g. a local emulator."),
)

aws_options = _options(
    click.option("--user-pool-id", help="The user pool to update."),
    connection_options,
)

#: For commands on an existing job: the connection it recorded is the default.
recorded_connection_options = _options(
    click.option("--profile", help="AWS profile (default: as recorded)."),
    click.option("--region", help="AWS region (default: as recorded)."),
    click.option("--endpoint-url", help="Cognito endpoint (default: as recorded)."),
)

rate_options = _options(
    click.option(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        show_default=True,
        help="Requests per second. The account-wide UserUpdate quota is "
        f"{USER_UPDATE_QUOTA:g}/s and production shares it.",
    ),
    click.option(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        help="Calls in flight at once.",
    ),
    click.option(
        "--max-attempts",
        type=int,
        default=DEFAULT_MAX_ATTEMPTS,
        show_default=True,
        help="Attempts per call before a row is failed_retryable.",
    ),
    click.option(
        "--read-rate",
        type=float,
        default=DEFAULT_READ_RATE,
        show_default=True,
        help="Reads per second (AdminGetUser, one per user just before its "
        f"write): the UserRead quota, {USER_READ_QUOTA:g}/s, apart from the "
        "writes'.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress, only the summary."),
)

#: For `resume`: the settings the job recorded are the defaults.
recorded_rate_options = _options(
    click.option(
        "--rate",
        type=float,
        help="Requests per second (default: as the job recorded).",
    ),
    click.option(
        "--concurrency", type=int, help="Calls in flight (default: as recorded)."
    ),
    click.option(
        "--max-attempts",
        type=int,
        help="Attempts per call (default: as recorded).",
    ),
    click.option(
        "--read-rate", type=float, help="Reads per second (default: as recorded)."
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress, only the summary."),
    click.option(
        "-y",
        "--yes",
        is_flag=True,
        help="Accepted for scripts; a resume asks nothing.",
    ),
)

schema_option = _path_option(
    "--schema",
    "schema_path",
    help="Saved DescribeUserPool output (JSON). With --dry-run it needs no AWS "
    "access; --sandbox builds its emulated pool from it.",
)

report_option = _path_option(
    "--report",
    "report_path",
    help="Per-user report (.csv, .parquet or .jsonl).",
)


def _source_options(
    delimiter: str, input_format: str | None, *, verify: bool = False
) -> SourceOptions:
    """How to read INPUT; ``verify`` checks every row before anything is sent."""
    if delimiter in ("\\t", "tab", "TAB"):
        delimiter = "\t"
    return SourceOptions(
        delimiter=delimiter,
        format=input_format,  # type: ignore[arg-type]
        verify=verify,
    )


# --- talking to the person ---------------------------------------------------------


def _warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


def _rate_warning(execution: ExecutionConfig) -> None:
    if execution.rate > RATE_WARNING:
        _warn(
            f"--rate {execution.rate:g} is close to or above the "
            f"{USER_UPDATE_QUOTA:g}/s UserUpdate quota, which is shared by every "
            "app in this account and region: production profile updates may be "
            "throttled while this runs"
        )
    if execution.read_before_write and execution.read_rate > READ_RATE_WARNING:
        _warn(
            f"--read-rate {execution.read_rate:g} is more than half the "
            f"{USER_READ_QUOTA:g}/s UserRead quota, which sign-ins and "
            "production reads of users share"
        )


class _Progress:
    """A tqdm bar on a terminal, plain lines elsewhere, nothing when quiet."""

    def __init__(self, *, quiet: bool, label: str) -> None:
        self._quiet = quiet
        self._label = label
        self._bar: Any = None
        self._stats: ExecutionStats | None = None
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()
        self._last_line = self._started

    def on_start(self, stats: ExecutionStats | None, total: int | None) -> None:
        self._stats = stats
        self._total = total
        if self._quiet or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        unit = "user" if stats is None else "row"
        self._bar = tqdm(total=total, unit=unit, desc=self._label, file=sys.stderr)

    def on_rows(self, count: int) -> None:
        self._done += count
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.update(count)
            if self._stats is not None:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            return
        now = time.monotonic()
        if now - self._last_line >= PROGRESS_INTERVAL:
            self._last_line = now
            total = f"/{self._total:,}" if self._total else ""
            postfix = f", {self._postfix()}" if self._stats is not None else ""
            click.echo(
                f"{self._label}: {self._done:,}{total}{postfix}, "
                f"{now - self._started:.0f}s",
                err=True,
            )

    def _postfix(self) -> str:
        stats = self._stats
        if stats is None:
            return ""
        # Rows that were queued when a stop came are not failures.
        failed = sum(
            n
            for s, n in stats.statuses.items()
            if s not in OK_STATUSES and s is not Status.NOT_ATTEMPTED
        )
        return (
            f"updated={stats.statuses[Status.UPDATED]} failed={failed} "
            f"reads={stats.reads} writes={stats.calls} "
            f"throttled={stats.throttled + stats.reads_throttled}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Console:
    """The CLI's `jobs.Reporter`: messages on standard error, progress displays."""

    def __init__(self, *, quiet: bool = False) -> None:
        self._quiet = quiet

    def say(self, text: str) -> None:
        click.echo(text, err=True)

    def warn(self, text: str) -> None:
        _warn(text)

    def progress(self, label: str) -> jobs.Progress:
        return _Progress(quiet=self._quiet, label=label)


def _print_summary(result: DryRunResult | JobResult) -> None:
    click.echo(result.summary.render())
    if result.report_path is not None:
        click.echo(f"Report: {result.report_path}")


def _conclude(result: JobResult) -> NoReturn:
    """Print the summary and a next step that works; exit with the job's code."""
    _print_summary(result)
    stats = result.stats
    click.echo(
        f"Calls: {stats.reads:,} reads ({stats.reads_throttled:,} throttled), "
        f"{stats.calls:,} writes ({stats.throttled:,} throttled)",
        err=True,
    )
    if stats.stopped_by is not None:
        click.secho(f"Aborted: {stats.stopped_by}", fg="red", err=True)
        click.echo(f"Fix the cause, then: {result.next_step}", err=True)
    elif stats.interrupted:
        click.echo(f"Interrupted. Continue with: {result.next_step}", err=True)
    sys.exit(result.exit_code)


@contextlib.contextmanager
def _interrupts(report_path: Path | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM stop the work cleanly; a later second one stops at once.

    Signals within SAME_STOP_SECONDS of the first are the same stop. Stopping at
    once skips the report, so a report of an earlier run there would now be
    untrue: it is removed, and the message says so.
    """
    first: float | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal first
        now = time.monotonic()
        if first is not None:
            if now - first < SAME_STOP_SECONDS:
                return
            removed = ""
            if report_path is not None and report_path.exists():
                with contextlib.suppress(OSError):
                    report_path.unlink()
                    removed = f"; the old report {report_path} was removed"
            click.echo(
                "\nStopped at once; rows in flight will be resent" + removed,
                err=True,
            )
            remove_temporaries()
            os._exit(EXIT_INTERRUPTED)
        first = now
        click.echo(
            "\nStopping: letting calls in flight finish (Ctrl-C again to stop now)",
            err=True,
        )
        # KeyboardInterrupt, held while a received outcome is being recorded.
        interrupts.interrupt()

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _ask(question: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError(
            "no terminal to ask on: re-run with --yes to confirm", EXIT_USAGE
        )
    if not click.confirm(question, default=False, err=True):
        raise CommandError("cancelled; nothing was sent", EXIT_USAGE)


def _confirm(job: Job, *, yes: bool, what: str, undoable: bool = True) -> None:
    """Ask before changes with side effects; refuse without a terminal."""
    touches = {"email", "phone_number"} & set(job.mapping.attributes)
    deletes = bool(job.mapping.delete) or job.mapping.blank == "delete"
    if not (touches or deletes or not undoable) or yes:
        return  # with --yes, the warnings close the run's summary
    click.echo(f"This {what} will:", err=True)
    if not undoable:
        click.echo(
            "  - record no before-values (--no-read-before-write without --diff): "
            "it cannot be rolled back",
            err=True,
        )
    for name in sorted(touches):
        flag = job.mapping.attributes.get(f"{name}_verified")
        if flag is not None and (flag.value or "").lower() == "true":
            click.echo(
                f"  - change {name}, marked verified in the same call (no message)",
                err=True,
            )
        else:
            click.echo(
                f"  - change {name} (verification messages, unverified aliases: "
                "see below)",
                err=True,
            )
    if deletes:
        click.echo("  - delete attributes from users", err=True)
    for warning in job.warnings:
        click.echo(f"  - {warning}", err=True)
    if not sys.stdin.isatty():
        why = (
            "changes email/phone numbers or deletes attributes"
            if touches or deletes
            else "cannot be rolled back"
        )
        raise CommandError(
            f"this run {why}; re-run with --yes to confirm (no terminal to ask on)",
            EXIT_USAGE,
        )
    if not click.confirm("Continue?", default=False, err=True):
        raise CommandError("cancelled; nothing was sent", EXIT_USAGE)


# --- commands ------------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cognito-migrate")
def cli() -> None:
    """Bulk-update attributes of existing Cognito users from CSV or Parquet.

    \b
    Exit codes:
      0    every row ended well (updated, unchanged, skipped, would update)
      1    the job finished but some rows are invalid or failed
      2    usage or configuration error (nothing was sent)
      3    aborted by a job-wide error (credentials, permissions, wrong pool);
           the job is resumable
      130  interrupted (resumable)
    """


@cli.command()
@input_options
@_path_option(
    "--schema",
    "schema_path",
    help="Saved DescribeUserPool output (JSON); needs no AWS access.",
)
@aws_options
@_path_option(
    "--report",
    "report_path",
    help="Also write the per-row result (.csv, .parquet or .jsonl).",
)
def validate(
    input_path: Path,
    mapping_path: Path,
    delimiter: str,
    input_format: str | None,
    schema_path: Path | None,
    user_pool_id: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    report_path: Path | None,
) -> None:
    """Check the mapping, INPUT and every row against the pool schema.

    Sends nothing. Exits 1 when some rows are invalid.
    """
    with _interrupts():
        result = jobs.validate(
            JobRequest(
                input_path=input_path,
                mapping_path=mapping_path,
                source_options=_source_options(delimiter, input_format),
                schema_path=schema_path,
                pool_id=user_pool_id,
                aws=AwsOptions(
                    profile=profile, region=region, endpoint_url=endpoint_url
                ),
                report_path=report_path,
            )
        )
    _print_summary(result)
    sys.exit(result.exit_code)


@cli.command()
@input_options
@schema_option
@aws_options
@click.option("--dry-run", is_flag=True, help="Everything but the writes; no job file.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run for real against an embedded, emulated pool built from --schema "
    "and seeded with the users in INPUT (no AWS account needed).",
)
@_path_option(
    "--job",
    "job_path",
    help="Job file (SQLite ledger). Default: INPUT-STEM.MAPPING-STEM.job.sqlite. "
    "An existing job file is resumed.",
)
@_path_option(
    "--report",
    "report_path",
    help="Per-user report (.csv, .parquet or .jsonl). "
    "Default: named after the job file (X.job.sqlite -> X.report.csv).",
)
@rate_options
@click.option(
    "--diff",
    is_flag=True,
    help="Compare with the users' current attributes first and send only what "
    "changes (a fresh snapshot of the pool, unless --snapshot). Also resolves "
    "email/phone/sub keys to usernames and records before-values for rollback.",
)
@_path_option(
    "--snapshot",
    "snapshot_path",
    help="Diff against this snapshot (from `cognito-migrate snapshot`); implies "
    "--diff.",
)
@click.option(
    "--no-read-before-write",
    is_flag=True,
    help="Don't read each user just before its write: no exact before-values, "
    "so the job cannot be rolled back (unless --diff gave a snapshot's).",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Don't ask before email/phone changes, deletes or a job that cannot "
    "be undone.",
)
def run(
    input_path: Path,
    mapping_path: Path,
    delimiter: str,
    input_format: str | None,
    schema_path: Path | None,
    user_pool_id: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    dry_run: bool,
    sandbox: bool,
    job_path: Path | None,
    report_path: Path | None,
    rate: float,
    concurrency: int,
    max_attempts: int,
    read_rate: float,
    quiet: bool,
    diff: bool,
    snapshot_path: Path | None,
    no_read_before_write: bool,
    yes: bool,
) -> None:
    """Run the migration: validate, plan, send with checkpoints, report.

    Every row of INPUT ends up in the report with a status. The job file records
    each row's outcome as it happens: run the same command again, or
    `cognito-migrate resume JOB`, to continue after a stop.
    """
    if dry_run and sandbox:
        raise click.UsageError("choose --dry-run or --sandbox, not both")
    request = JobRequest(
        input_path=input_path,
        mapping_path=mapping_path,
        # A real run reads the whole file once before sending anything, so a
        # bad row deep in the file cannot stop the job halfway.
        source_options=_source_options(delimiter, input_format, verify=not dry_run),
        schema_path=schema_path,
        pool_id=user_pool_id,
        aws=AwsOptions(profile=profile, region=region, endpoint_url=endpoint_url),
        job_path=job_path,
        report_path=report_path,
        execution=ExecutionConfig(
            rate=rate,
            concurrency=concurrency,
            max_attempts=max_attempts,
            read_rate=read_rate,
            read_before_write=not no_read_before_write,
        ),
        diff=diff or snapshot_path is not None,
        snapshot_path=snapshot_path,
    )
    console = _Console(quiet=quiet)
    if dry_run:
        with _interrupts():
            result = jobs.dry_run(request, console)
        _print_summary(result)
        sys.exit(result.exit_code)
    _rate_warning(request.execution)
    if sandbox:
        with (
            jobs.sandbox_run(request, console) as prepared,
            _interrupts(prepared.report_path),
        ):
            outcome = prepared.execute()
        _conclude(outcome)
    prepared = jobs.prepare_run(request, console)
    _confirm(
        prepared.job,
        yes=yes,
        what="run",
        undoable=request.execution.read_before_write or prepared.spec.diff,
    )
    with _interrupts(prepared.report_path):
        outcome = prepared.execute()
    _conclude(outcome)


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object (versioned; shape in the README) instead of text.",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Show the status again every few seconds until the job stops running.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=STATUS_INTERVAL,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
def status(job_path: Path, as_json: bool, watch: bool, interval: float) -> None:
    """Progress of a running or stopped job (safe to run while it runs).

    Rows by status, remaining rows, skipped rows by reason, errors by code, the
    latest run's rate and the time to finish.
    """
    while True:
        current = jobs.status(job_path)
        if as_json:
            click.echo(json.dumps(current.as_json(), sort_keys=False))
        else:
            click.echo(render_status(current))
        if not watch or not current.running:
            return
        time.sleep(interval)
        if not as_json:
            click.echo("")


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also send rows that failed permanently last time (after a fix).",
)
@recorded_connection_options
@_path_option(
    "--report",
    "report_path",
    help="Per-user report (default: named after JOB, X.job.sqlite -> X.report.csv).",
)
@recorded_rate_options
def resume(
    job_path: Path,
    retry_failed: bool,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    report_path: Path | None,
    rate: float | None,
    concurrency: int | None,
    max_attempts: int | None,
    read_rate: float | None,
    quiet: bool,
    yes: bool,
) -> None:
    """Continue an interrupted or aborted job from its job file.

    Rows already done are skipped before they take a rate-limit token; rows in
    flight when the job stopped, not attempted, or failed_retryable are sent.
    The connection and rate settings default to what the job recorded.
    """
    prepared = jobs.prepare_resume(
        job_path,
        _Console(quiet=quiet),
        aws=AwsOptions(profile=profile, region=region, endpoint_url=endpoint_url),
        report_path=report_path,
        rates=jobs.RateOverrides(
            rate=rate,
            concurrency=concurrency,
            max_attempts=max_attempts,
            read_rate=read_rate,
        ),
        retry_failed=retry_failed,
    )
    _rate_warning(prepared.execution)
    with _interrupts(prepared.report_path):
        outcome = prepared.execute()
    _conclude(outcome)


_STATUS_GROUPS = {
    "failed": [s.value for s in Status if s not in OK_STATUSES],
    "ok": [s.value for s in OK_STATUSES],
}


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@_path_option(
    "-o",
    "--output",
    "output_path",
    required=True,
    help="Report file: .csv, .parquet or .jsonl; - writes CSV to standard output.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice([*_STATUS_GROUPS, *(s.value for s in Status)]),
    help="Keep only these statuses; 'failed' = every status that did not end "
    "well (a valid input for a new run with the same mapping).",
)
def report(job_path: Path, output_path: Path, only: tuple[str, ...]) -> None:
    """Write the per-user report of a job, at any time."""
    keep: set[str] | None = None
    if only:
        keep = set()
        for name in only:
            keep.update(_STATUS_GROUPS.get(name, [name]))
    if str(output_path) == "-":
        # CSV on standard output (for pipes); the summary goes to standard error.
        with tempfile.TemporaryDirectory() as scratch, _interrupts():
            written = Path(scratch) / "report.csv"
            summary = jobs.write_report(job_path, written, only=keep)
            try:
                sys.stdout.flush()
                with open(written, "rb") as handle:
                    shutil.copyfileobj(handle, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            except (OSError, ValueError) as error:  # a full disk, a closed pipe
                raise CommandError(
                    f"cannot write the report to standard output: {error}",
                    EXIT_USAGE,
                ) from None
        click.echo(summary.render(), err=True)
        return
    with _interrupts():
        summary = jobs.write_report(job_path, output_path, only=keep)
    click.echo(summary.render())
    click.echo(f"Report: {output_path}")


@cli.command()
@click.option("--user-pool-id", required=True, help="The pool to export.")
@_path_option(
    "-o",
    "--output",
    "output_path",
    required=True,
    help="Snapshot file: .parquet (recommended) or .csv.",
)
@connection_options
@_path_option(
    "--schema",
    "schema_path",
    help="Saved DescribeUserPool output (default: read from the pool).",
)
@click.option(
    "--rate",
    type=float,
    default=DEFAULT_LIST_RATE,
    show_default=True,
    help="ListUsers requests/s (the UserList quota is 30/s per account and "
    "region, shared).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress, only the result line.")
def snapshot(
    user_pool_id: str,
    output_path: Path,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    schema_path: Path | None,
    rate: float,
    quiet: bool,
) -> None:
    """Export the pool's users and attributes (ListUsers) to a file.

    Pages of 60 users under a rate limit below the 30/s UserList quota. Progress
    is kept in .FILE.snapshot-parts/ next to the file: run the same command
    again to continue an interrupted snapshot. An existing snapshot FILE is
    replaced; any other file there is refused.
    """
    try:
        with _interrupts():
            jobs.snapshot(
                user_pool_id,
                output_path,
                AwsOptions(profile=profile, region=region, endpoint_url=endpoint_url),
                _Console(quiet=quiet),
                schema_path=schema_path,
                rate=rate,
            )
    except KeyboardInterrupt:
        raise CommandError(
            "interrupted; run the same command again to continue the snapshot",
            EXIT_INTERRUPTED,
        ) from None
    click.echo(f"Snapshot: {output_path}")


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Show what would be restored.")
@_path_option(
    "--job",
    "rollback_path",
    help="Job file of the rollback (default: JOB.rollback.sqlite).",
)
@_path_option(
    "--report",
    "report_path",
    help="Per-user report of the rollback (default: JOB.rollback.report.csv).",
)
@recorded_connection_options
@rate_options
@click.option(
    "--force",
    is_flag=True,
    help="Restore users changed since the job too (else: conflict, left alone).",
)
@click.option("-y", "--yes", is_flag=True, help="Don't ask before writing.")
def rollback(
    job_path: Path,
    dry_run: bool,
    rollback_path: Path | None,
    report_path: Path | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    rate: float,
    concurrency: int,
    max_attempts: int,
    read_rate: float,
    quiet: bool,
    force: bool,
    yes: bool,
) -> None:
    """Undo a job from the before-values it recorded.

    Restores the old value of every attribute the job set, sets back what it
    deleted and deletes what it created, for the rows it changed (an
    interrupted job is undone exactly as far as it got). Each user is read
    first: where an attribute no longer holds what the job left, someone
    changed it since, and the row is a conflict, left alone (--force restores
    it anyway). Runs as a new durable job with its own job file and report;
    run the same command again to continue it.
    """
    prepared = jobs.prepare_rollback(
        job_path,
        _Console(quiet=quiet),
        rollback_path=rollback_path,
        report_path=report_path,
        aws=AwsOptions(profile=profile, region=region, endpoint_url=endpoint_url),
        execution=ExecutionConfig(
            rate=rate,
            concurrency=concurrency,
            max_attempts=max_attempts,
            read_rate=read_rate,
        ),
        dry_run=dry_run,
        force=force,
    )
    if dry_run:
        summary = jobs.preview_rollback(prepared)
        click.echo(summary.render())
        click.echo(f"Report: {prepared.report_path}")
        return
    if not yes and prepared.count:
        _ask(
            f"Roll back {prepared.count:,} users of {job_path} in pool "
            f"{prepared.spec.pool_id}?"
        )
    with _interrupts(prepared.report_path):
        outcome = prepared.execute()
    _conclude(outcome)


@cli.command()
@click.option("--user-pool-id", required=True, help="The pool the policy is for.")
@click.option("--region", help="The pool's region (default: from the pool id).")
@click.option("--account", help="The AWS account id (default: any, '*').")
@click.option(
    "--command",
    "commands",
    multiple=True,
    type=click.Choice(list(COMMAND_ACTIONS)),
    help="Only what these commands need (default: every command).",
)
def policy(
    user_pool_id: str,
    region: str | None,
    account: str | None,
    commands: tuple[str, ...],
) -> None:
    """Print the least-privilege IAM policy the commands need on one pool.

    \b
    validate    DescribeUserPool
    run/resume  DescribeUserPool, AdminGetUser, AdminUpdateUserAttributes,
                AdminDeleteUserAttributes (+ ListUsers with --diff)
    snapshot    DescribeUserPool, ListUsers
    rollback    AdminGetUser, AdminUpdateUserAttributes,
                AdminDeleteUserAttributes
    """
    click.echo(
        policy_json(
            user_pool_id,
            region=region,
            account=account,
            commands=commands or COMMAND_ACTIONS,
        )
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    interrupts.interrupt()


def main() -> None:
    """Console-script entry point."""
    # SIGTERM stops like Ctrl-C in every phase, so temporary files are removed
    # (a run installs its own handlers for the stop that lets calls finish).
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="cognito-migrate")
