"""The ``cognito-migrate`` command line: parse, call the library, print, exit.

Exit codes: 0 every row ended well; 1 the job finished but some rows are invalid
or failed; 2 usage or configuration error; 3 aborted by a job-wide error
(resumable); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from migrate import __version__, pipeline
from migrate.checkpoint import Fingerprint, Ledger, make_fingerprint
from migrate.errors import ConfigError, FatalError, MigrateError
from migrate.execution import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RATE,
    RATE_WARNING,
    USER_UPDATE_QUOTA,
    ExecutionConfig,
    ExecutionStats,
)
from migrate.pipeline import DryRunResult, Job, prepare
from migrate.records import OK_STATUSES, Status, WorkItem
from migrate.report import Summary, report_format
from migrate.schema import PoolSchema, load_schema_file, schema_from_describe
from migrate.source import SourceOptions

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_INTERRUPTED = 130

#: Seconds between plain progress lines when output is not a terminal.
PROGRESS_INTERVAL = 10.0

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A library error shown as one line, with the exit code its kind deserves."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code a class variable; this error sets its own.
        setattr(self, "exit_code", exit_code)  # noqa: B010


def fail(error: MigrateError) -> NoReturn:
    """Turn a library error into a message and an exit code."""
    code = EXIT_ABORTED if isinstance(error, FatalError) else EXIT_USAGE
    raise CommandError(str(error), code) from None


# --- option groups ---------------------------------------------------------------


def input_options(func: F) -> F:
    """INPUT, --mapping and the options that say how to read INPUT."""
    for decorator in reversed(
        [
            click.argument(
                "input_path", metavar="INPUT", type=click.Path(path_type=Path)
            ),
            click.option(
                "-m",
                "--mapping",
                "mapping_path",
                required=True,
                type=click.Path(dir_okay=False, path_type=Path),
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
                type=click.Choice(["csv", "parquet"]),
                default=None,
                help="Input format (default: from the file extension).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def aws_options(func: F) -> F:
    """Where Cognito is and who we are (AWS conventions)."""
    for decorator in reversed(
        [
            click.option("--user-pool-id", help="The user pool to update."),
            click.option("--profile", help="AWS profile (default: the usual chain)."),
            click.option("--region", help="AWS region (default: profile/env)."),
            click.option(
                "--endpoint-url", help="Cognito endpoint, e.g. a local emulator."
            ),
        ]
    ):
        func = decorator(func)
    return func


def rate_options(func: F) -> F:
    """How fast to send."""
    for decorator in reversed(
        [
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
                "-q", "--quiet", is_flag=True, help="No progress, only the summary."
            ),
        ]
    ):
        func = decorator(func)
    return func


# --- helpers -----------------------------------------------------------------------


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


def _client_config(
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Any:
    from migrate.cognito import ClientConfig

    return ClientConfig(
        profile=profile,
        region=region,
        endpoint_url=endpoint_url,
        max_pool_connections=max(10, concurrency + 2),
    )


def _describe(client: Any, pool_id: str) -> tuple[PoolSchema, dict[str, Any]]:
    from migrate.cognito import describe_user_pool

    raw = describe_user_pool(client, pool_id)
    return schema_from_describe(raw, source=f"user pool {pool_id}"), raw


def _schema_file(path: Path) -> tuple[PoolSchema, dict[str, Any]]:
    schema = load_schema_file(path)
    # load_schema_file has vetted the JSON; keep it to store in the job file.
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema, raw


def _check_report_path(path: Path, *, protect: tuple[Path | None, ...]) -> None:
    """Refuse a report path that can't be written, before anything is sent."""
    report_format(path)
    if not path.parent.resolve().is_dir():
        raise ConfigError(
            f"report file {str(path)!r}: the directory {str(path.parent)!r} does "
            "not exist"
        )
    for other in protect:
        if other is not None and path.resolve() == other.resolve():
            raise ConfigError(
                f"report file {str(path)!r}: that is the input or job file; choose "
                "another --report path"
            )


def _default_name(input_path: Path, mapping_path: Path, suffix: str) -> Path:
    return Path(f"{input_path.stem}.{mapping_path.stem}.{suffix}")


def _execution_config(
    rate: float, concurrency: int, max_attempts: int
) -> ExecutionConfig:
    return ExecutionConfig(
        rate=rate, concurrency=concurrency, max_attempts=max_attempts
    )


def _warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


def _rate_warning(rate: float) -> None:
    if rate > RATE_WARNING:
        _warn(
            f"--rate {rate:g} is close to or above the {USER_UPDATE_QUOTA:g}/s "
            "UserUpdate quota, which is shared by every app in this account and "
            "region: production profile updates may be throttled while this runs"
        )


def _print_summary(result: DryRunResult | pipeline.RunResult) -> None:
    click.echo(result.summary.render())
    if result.report_path is not None:
        click.echo(f"Report: {result.report_path}")


class _Progress:
    """Progress for the library: a tqdm bar on a terminal, plain lines elsewhere."""

    def __init__(self, *, quiet: bool, label: str) -> None:
        self._quiet = quiet
        self._label = label
        self._bar: Any = None
        self._stats: ExecutionStats | None = None
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()
        self._last_line = self._started

    def on_start(self, stats: ExecutionStats, total: int | None) -> None:
        self._stats = stats
        self._total = total
        if self._quiet or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="row", desc=self._label, file=sys.stderr)

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
            click.echo(
                f"{self._label}: {self._done:,}{total} rows, {self._postfix()}, "
                f"{now - self._started:.0f}s",
                err=True,
            )

    def _postfix(self) -> str:
        stats = self._stats
        if stats is None:
            return ""
        failed = sum(n for s, n in stats.statuses.items() if s not in OK_STATUSES)
        return (
            f"updated={stats.statuses[Status.UPDATED]} failed={failed} "
            f"throttled={stats.throttled}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def _interrupts() -> Iterator[None]:
    """SIGTERM stops a run like Ctrl-C; a second Ctrl-C stops at once."""
    presses = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            click.echo("\nStopped at once; rows in flight will be resent.", err=True)
            os._exit(EXIT_INTERRUPTED)
        click.echo(
            "\nStopping: letting calls in flight finish (Ctrl-C again to stop now)",
            err=True,
        )
        raise KeyboardInterrupt

    previous = {
        sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _confirm(job: Job, *, yes: bool, what: str) -> None:
    """Ask before changes with side effects; refuse without a terminal."""
    risky = [w for w in job.warnings]
    touches = {"email", "phone_number"} & set(job.mapping.attributes)
    deletes = bool(job.mapping.delete) or job.mapping.blank == "delete"
    if not (touches or deletes):
        return
    if yes:
        return  # the warnings close the run's summary
    click.echo(f"This {what} will:", err=True)
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
    for warning in risky:
        click.echo(f"  - {warning}", err=True)
    if not sys.stdin.isatty():
        raise CommandError(
            "this run changes email/phone numbers or deletes attributes; "
            "re-run with --yes to confirm (no terminal to ask on)",
            EXIT_USAGE,
        )
    if not click.confirm("Continue?", default=False, err=True):
        raise CommandError("cancelled; nothing was sent", EXIT_USAGE)


# --- commands ------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Saved DescribeUserPool output (JSON); needs no AWS access.",
)
@aws_options
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
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
    try:
        if report_path is not None:
            _check_report_path(report_path, protect=(input_path, mapping_path))
        schema, _ = _schema(schema_path, user_pool_id, profile, region, endpoint_url)
        job = prepare(
            input_path,
            mapping_path,
            schema,
            source_options=_source_options(delimiter, input_format),
        )
        result = pipeline.dry_run(job, report_path=report_path)
    except MigrateError as error:
        fail(error)
    _print_summary(result)
    sys.exit(result.exit_code)


def _schema(
    schema_path: Path | None,
    user_pool_id: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
) -> tuple[PoolSchema, dict[str, Any]]:
    if schema_path is not None:
        return _schema_file(schema_path)
    if user_pool_id is None:
        raise click.UsageError(
            "give --schema FILE (saved DescribeUserPool output) or --user-pool-id ID"
        )
    from migrate.cognito import make_client

    client = make_client(_client_config(profile, region, endpoint_url))
    return _describe(client, user_pool_id)


@cli.command()
@input_options
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Saved DescribeUserPool output (JSON). With --dry-run it needs no AWS "
    "access; --sandbox builds its emulated pool from it.",
)
@aws_options
@click.option("--dry-run", is_flag=True, help="Everything but the writes; no job file.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run for real against an embedded, emulated pool built from --schema "
    "and seeded with the users in INPUT (no AWS account needed).",
)
@click.option(
    "--job",
    "job_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Job file (SQLite ledger). Default: INPUT-STEM.MAPPING-STEM.job.sqlite. "
    "An existing job file is resumed.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Per-user report (.csv, .parquet or .jsonl). "
    "Default: INPUT-STEM.MAPPING-STEM.report.csv.",
)
@rate_options
@click.option(
    "--diff",
    is_flag=True,
    help="Compare with the users' current attributes first and send only what "
    "changes (a fresh snapshot of the pool, unless --snapshot). Also resolves "
    "email/phone/sub keys to usernames and records before-values for rollback.",
)
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Diff against this snapshot (from `cognito-migrate snapshot`); implies "
    "--diff.",
)
@click.option(
    "-y", "--yes", is_flag=True, help="Don't ask before email/phone changes or deletes."
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
    quiet: bool,
    diff: bool,
    snapshot_path: Path | None,
    yes: bool,
) -> None:
    """Run the migration: validate, plan, send with checkpoints, report.

    Every row of INPUT ends up in the report with a status. The job file records
    each row's outcome as it happens: run the same command again, or
    `cognito-migrate resume JOB`, to continue after a stop.
    """
    if dry_run and sandbox:
        raise click.UsageError("choose --dry-run or --sandbox, not both")
    # A real run reads the whole file once before sending anything, so a bad
    # row deep in the file cannot stop the job halfway.
    options = _source_options(delimiter, input_format, verify=not dry_run)
    report_path = report_path or _default_name(
        input_path, mapping_path, "dry-run.report.csv" if dry_run else "report.csv"
    )
    diff = diff or snapshot_path is not None
    try:
        config = _execution_config(rate, concurrency, max_attempts)
        _check_report_path(report_path, protect=(input_path, mapping_path, job_path))
        if dry_run:
            schema, _ = _schema(
                schema_path, user_pool_id, profile, region, endpoint_url
            )
            job = prepare(input_path, mapping_path, schema, source_options=options)
            if diff:
                if snapshot_path is None:
                    if user_pool_id is None:
                        raise click.UsageError(
                            "--diff in a dry run needs --snapshot FILE or "
                            "--user-pool-id (to take a snapshot)"
                        )
                    from migrate.cognito import make_client

                    snapshot_path = _take_snapshot(
                        make_client(_client_config(profile, region, endpoint_url)),
                        user_pool_id,
                        schema,
                        _default_name(input_path, mapping_path, "snapshot.parquet"),
                        quiet=quiet,
                    )
                job = job.with_snapshot(snapshot_path)
            progress = _Progress(quiet=quiet, label="dry run")
            try:
                result = pipeline.dry_run(
                    job, report_path=report_path, progress=progress
                )
            finally:
                progress.close()
            _print_summary(result)
            sys.exit(result.exit_code)
        _rate_warning(rate)
        if sandbox:
            exit_code = _run_sandbox(
                input_path,
                mapping_path,
                schema_path,
                options,
                config=config,
                job_path=job_path,
                report_path=report_path,
                quiet=quiet,
                diff=diff,
            )
            sys.exit(exit_code)
        if user_pool_id is None:
            raise click.UsageError(
                "--user-pool-id is required for a real run (or use --dry-run / "
                "--sandbox)"
            )
        from migrate.cognito import make_client

        client = make_client(
            _client_config(profile, region, endpoint_url, config.concurrency)
        )
        schema, raw_schema = (
            _schema_file(schema_path)
            if schema_path is not None
            else _describe(client, user_pool_id)
        )
        job = prepare(input_path, mapping_path, schema, source_options=options)
        _confirm(job, yes=yes, what="run")
        exit_code = _execute(
            job,
            client=client,
            pool_id=user_pool_id,
            config=config,
            job_path=job_path or _default_name(input_path, mapping_path, "job.sqlite"),
            report_path=report_path,
            quiet=quiet,
            diff=diff,
            snapshot_path=snapshot_path,
            info={
                "schema": json.dumps(raw_schema, default=str),
                "region": region or "",
                "profile": profile or "",
                "endpoint_url": endpoint_url or "",
            },
        )
    except MigrateError as error:
        fail(error)
    sys.exit(exit_code)


def _fingerprint_options(job: Job, *, diff: bool) -> dict[str, Any]:
    return {
        "delimiter": job.source_options.delimiter,
        "format": job.source.format,
        "diff": diff,
    }


def _take_snapshot(
    client: Any,
    pool_id: str,
    schema: PoolSchema,
    path: Path,
    *,
    quiet: bool,
    rate: float | None = None,
) -> Path:
    """Export the pool's users (ListUsers) to ``path`` for a diff."""
    from migrate.cognito import UserPool
    from migrate.snapshot import DEFAULT_LIST_RATE, take_snapshot

    bar: Any = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="user", desc="snapshot", file=sys.stderr)
    elif not quiet:
        click.echo(f"Snapshot: reading the pool's users into {path}", err=True)

    def progress(users: int) -> None:
        if bar is not None:
            bar.update(users - bar.n)

    try:
        result = take_snapshot(
            UserPool(client, pool_id=pool_id, api="admin"),
            path,
            attributes=list(schema.attributes),
            rate=rate or DEFAULT_LIST_RATE,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        resumed = " (continued an interrupted snapshot)" if result.resumed else ""
        click.echo(
            f"Snapshot: {result.users:,} users in {result.pages:,} pages{resumed}",
            err=True,
        )
    if result.restarted:
        _warn(f"the snapshot started over: {result.restarted}")
    if result.unknown_attributes:
        names = ", ".join(sorted(result.unknown_attributes))
        _warn(f"attributes outside the pool schema were left out: {names}")
    return path


def _execute(
    job: Job,
    *,
    client: Any,
    pool_id: str,
    config: ExecutionConfig,
    job_path: Path,
    report_path: Path,
    quiet: bool,
    info: dict[str, str],
    retry_failed: bool = False,
    fresh: bool = False,
    diff: bool = False,
    snapshot_path: Path | None = None,
) -> int:
    """Run (or continue) a durable job and write its report; returns the exit code.

    A continued job keeps the snapshot it started with: its before-values must
    be those from before the job, not a fresh read of what it already changed.
    """
    from migrate.cognito import UserPool

    if job_path.exists() and not fresh:
        with Ledger.open(job_path) as previous:
            stored = previous.info()
        diff = diff or stored.get("diff") == "true"
    fingerprint = make_fingerprint(
        input_path=job.source.path,
        mapping_path=Path(job.mapping.path),
        pool=pool_id,
        options=_fingerprint_options(job, diff=diff),
    )
    if fresh:
        from migrate.snapshot import parts_directory

        for suffix in ("", "-wal", "-shm", ".snapshot.parquet"):
            Path(f"{job_path}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(
            parts_directory(f"{job_path}.snapshot.parquet"), ignore_errors=True
        )
    if job_path.exists():
        ledger = Ledger.open(job_path)
        try:
            ledger.check_fingerprint(fingerprint)
            if ledger.info().get("snapshot"):
                job = job.with_snapshot(ledger.info()["snapshot"])
        except MigrateError:
            ledger.close()
            raise
        click.echo(f"Job: {job_path} (continuing)", err=True)
    else:
        if diff:
            snapshot_path = snapshot_path or _take_snapshot(
                client,
                pool_id,
                job.schema,
                job_path.with_name(job_path.name + ".snapshot.parquet"),
                quiet=quiet,
            )
            job = job.with_snapshot(snapshot_path)
            info = {
                **info,
                "diff": "true",
                "snapshot": str(Path(snapshot_path).resolve()),
            }
        ledger = Ledger.create(
            job_path,
            fingerprint,
            input_path=str(job.source.path.resolve()),
            mapping_path=str(Path(job.mapping.path).resolve()),
            pool_id=pool_id,
            delimiter=job.source_options.delimiter,
            format=job.source.format,
            total_rows=str(job.source.count_rows() or ""),
            **info,
        )
        click.echo(f"Job: {job_path}", err=True)
    with ledger:
        ledger.lock()
        ledger.start_run(" ".join(sys.argv[1:]) or "run")
        pool = UserPool(
            client,
            pool_id=pool_id,
            api=job.mapping.api,
            client_metadata=job.mapping.client_metadata,
        )
        stats = _drive(
            ledger,
            "run",
            quiet,
            lambda progress: pipeline.execute(
                job,
                ledger=ledger,
                pool=pool,
                config=config,
                retry_failed=retry_failed,
                progress=progress,
            ),
        )
        summary = pipeline.write_report(job, ledger, report_path)
    return _conclude(stats, summary, report_path, f"cognito-migrate resume {job_path}")


def _drive(
    ledger: Ledger,
    label: str,
    quiet: bool,
    work: Callable[[_Progress], ExecutionStats],
) -> ExecutionStats:
    """Run ``work`` under progress and signal handling; record how it ended."""
    progress = _Progress(quiet=quiet, label=label)
    stats: ExecutionStats | None = None
    try:
        with _interrupts():
            stats = work(progress)
    except KeyboardInterrupt:
        stats = ExecutionStats(interrupted=True)
    finally:
        progress.close()
        ledger.end_run(
            "interrupted"
            if stats is None or stats.interrupted
            else ("aborted" if stats.stopped_by else "finished")
        )
    return stats


def _conclude(
    stats: ExecutionStats, summary: Summary, report_path: Path, again: str
) -> int:
    """Print the summary and what to do next; the exit code."""
    result = pipeline.RunResult(stats=stats, summary=summary, report_path=report_path)
    _print_summary(result)
    if stats.stopped_by is not None:
        click.secho(f"Aborted: {stats.stopped_by}", fg="red", err=True)
        click.echo(f"Fix the cause, then: {again}", err=True)
    elif stats.interrupted:
        click.echo(f"Interrupted. Continue with: {again}", err=True)
    return result.exit_code


def _run_sandbox(
    input_path: Path,
    mapping_path: Path,
    schema_path: Path | None,
    options: SourceOptions,
    *,
    config: ExecutionConfig,
    job_path: Path | None,
    report_path: Path,
    quiet: bool,
    diff: bool = False,
) -> int:
    """A full run against an embedded emulated pool built from the schema."""
    if schema_path is None:
        raise click.UsageError("--sandbox needs --schema FILE to build its pool")
    from migrate.cognito import ClientConfig, make_client
    from migrate.sandbox import EmulatedPool

    schema, raw_schema = _schema_file(schema_path)
    job = prepare(input_path, mapping_path, schema, source_options=options)
    users = pipeline.sandbox_users(job)
    with EmulatedPool() as sandbox:
        pool_id = sandbox.seed(raw_schema, users)
        client = make_client(
            ClientConfig(
                region="us-east-1",
                endpoint_url=sandbox.endpoint_url,
                credentials=("sandbox", "sandbox"),
                max_pool_connections=max(10, config.concurrency + 2),
            )
        )
        click.echo(
            f"Sandbox: emulated pool {pool_id} at {sandbox.endpoint_url} with "
            f"{len(users):,} users, throttled like Cognito",
            err=True,
        )
        return _execute(
            job,
            client=client,
            pool_id=pool_id,
            config=config,
            job_path=job_path
            or _default_name(input_path, mapping_path, "sandbox.job.sqlite"),
            report_path=report_path,
            quiet=quiet,
            info={"sandbox": "true", "schema": json.dumps(raw_schema)},
            fresh=True,
            diff=diff,
        )


def _job_from_ledger(ledger: Ledger, *, verify: bool = False) -> Job:
    """Rebuild a job from what its ledger recorded (for resume and report)."""
    info = ledger.info()
    schema = schema_from_describe(json.loads(info["schema"]), source=str(ledger.path))
    return prepare(
        info["input_path"],
        info["mapping_path"],
        schema,
        source_options=SourceOptions(
            delimiter=info.get("delimiter", ","),
            format=info.get("format") or None,  # type: ignore[arg-type]
            verify=verify,
        ),
    )


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also send rows that failed permanently last time (after a fix).",
)
@click.option("--profile", help="AWS profile (default: as recorded, then the chain).")
@click.option("--region", help="AWS region (default: as recorded).")
@click.option("--endpoint-url", help="Cognito endpoint (default: as recorded).")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Per-user report (default: JOB with .report.csv).",
)
@rate_options
def resume(
    job_path: Path,
    retry_failed: bool,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    report_path: Path | None,
    rate: float,
    concurrency: int,
    max_attempts: int,
    quiet: bool,
) -> None:
    """Continue an interrupted or aborted job from its job file.

    Rows already done are skipped before they take a rate-limit token; rows in
    flight when the job stopped, not attempted, or failed_retryable are sent.
    """
    _rate_warning(rate)
    try:
        with Ledger.open(job_path) as ledger:
            info = ledger.info()
            if info.get("rollback_of"):
                raise ConfigError(
                    "this is a rollback job: continue it with `cognito-migrate "
                    f"rollback {info['rollback_of']} --yes`"
                )
            job = _job_from_ledger(ledger, verify=True)
        if info.get("sandbox"):
            raise ConfigError(
                "this is a sandbox job: its emulated pool is gone; run "
                "`cognito-migrate run ... --sandbox` again instead"
            )
        config = _execution_config(rate, concurrency, max_attempts)
        report_path = report_path or Path(f"{job_path}.report.csv")
        _check_report_path(report_path, protect=(job_path, Path(info["input_path"])))
        from migrate.cognito import make_client

        client = make_client(
            _client_config(
                profile or info.get("profile") or None,
                region or info.get("region") or None,
                endpoint_url or info.get("endpoint_url") or None,
                config.concurrency,
            )
        )
        exit_code = _execute(
            job,
            client=client,
            pool_id=info["pool_id"],
            config=config,
            job_path=job_path,
            report_path=report_path,
            quiet=quiet,
            info={},
            retry_failed=retry_failed,
        )
    except MigrateError as error:
        fail(error)
    sys.exit(exit_code)


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
def status(job_path: Path) -> None:
    """Progress of a running or stopped job (safe to run while it runs)."""
    try:
        with Ledger.open(job_path) as ledger:
            click.echo(pipeline.describe_status(ledger))
    except MigrateError as error:
        fail(error)


_STATUS_GROUPS = {
    "failed": [s.value for s in Status if s not in OK_STATUSES],
    "ok": [s.value for s in OK_STATUSES],
}


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report file: .csv, .parquet or .jsonl.",
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
    try:
        with Ledger.open(job_path) as ledger:
            if ledger.info().get("rollback_of"):
                summary = pipeline.write_ledger_report(ledger, output_path, only=keep)
            else:
                job = _job_from_ledger(ledger)
                summary = pipeline.write_report(job, ledger, output_path, only=keep)
    except MigrateError as error:
        fail(error)
    click.echo(summary.render())
    click.echo(f"Report: {output_path}")


@cli.command()
@click.option("--user-pool-id", required=True, help="The pool to export.")
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Snapshot file: .parquet (recommended) or .csv.",
)
@click.option("--profile", help="AWS profile (default: the usual chain).")
@click.option("--region", help="AWS region (default: profile/env).")
@click.option("--endpoint-url", help="Cognito endpoint, e.g. a local emulator.")
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Saved DescribeUserPool output (default: read from the pool).",
)
@click.option(
    "--rate",
    type=float,
    default=20.0,
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
    again to continue an interrupted snapshot. An existing FILE is replaced.
    """
    try:
        from migrate.cognito import make_client

        client = make_client(_client_config(profile, region, endpoint_url))
        schema = (
            _schema_file(schema_path)[0]
            if schema_path is not None
            else _describe(client, user_pool_id)[0]
        )
        with _interrupts():
            _take_snapshot(
                client, user_pool_id, schema, output_path, quiet=quiet, rate=rate
            )
    except KeyboardInterrupt:
        raise CommandError(
            "interrupted; run the same command again to continue the snapshot",
            EXIT_INTERRUPTED,
        ) from None
    except MigrateError as error:
        fail(error)
    click.echo(f"Snapshot: {output_path}")


@cli.command()
@click.argument(
    "job_path", metavar="JOB", type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--dry-run", is_flag=True, help="Show what would be restored.")
@click.option(
    "--job",
    "rollback_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Job file of the rollback (default: JOB.rollback.sqlite).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Per-user report of the rollback (default: JOB.rollback.report.csv).",
)
@click.option("--profile", help="AWS profile (default: as recorded).")
@click.option("--region", help="AWS region (default: as recorded).")
@click.option("--endpoint-url", help="Cognito endpoint (default: as recorded).")
@rate_options
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
    quiet: bool,
    yes: bool,
) -> None:
    """Undo a job from the before-values it recorded (jobs run with --diff).

    Restores the old value of every attribute the job set and deletes the
    attributes it created, for the rows it updated (an interrupted job is
    undone exactly as far as it got). Runs as a new durable job with its own
    job file and report; `resume` continues it.
    """
    rollback_path = rollback_path or Path(f"{job_path}.rollback.sqlite")
    report_path = report_path or Path(
        f"{job_path}.rollback.{'dry-run.' if dry_run else ''}report.csv"
    )
    try:
        with Ledger.open(job_path) as original:
            info = original.info()
            items = list(pipeline.rollback_items(original))
        if dry_run:
            summary = pipeline.preview_items(items, report_path)
            click.echo(summary.render())
            click.echo(f"Report: {report_path}")
            return
        if not yes and items:
            _ask(
                f"Roll back {len(items):,} users of {job_path} in pool "
                f"{info.get('pool_id')}?"
            )
        exit_code = _run_rollback(
            job_path,
            info,
            items,
            rollback_path=rollback_path,
            report_path=report_path,
            config=_execution_config(rate, concurrency, max_attempts),
            profile=profile,
            region=region,
            endpoint_url=endpoint_url,
            quiet=quiet,
        )
    except MigrateError as error:
        fail(error)
    sys.exit(exit_code)


def _ask(question: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError(
            "no terminal to ask on: re-run with --yes to confirm", EXIT_USAGE
        )
    if not click.confirm(question, default=False, err=True):
        raise CommandError("cancelled; nothing was sent", EXIT_USAGE)


def _run_rollback(
    job_path: Path,
    info: dict[str, str],
    items: list[WorkItem],
    *,
    rollback_path: Path,
    report_path: Path,
    config: ExecutionConfig,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    quiet: bool,
) -> int:
    """The rollback as a durable job: its own ledger, lock, report."""
    from migrate.cognito import UserPool, make_client

    if info.get("sandbox"):
        raise ConfigError(
            "this is a sandbox job: its emulated pool is gone, there is nothing "
            "to roll back"
        )
    pool_id = info["pool_id"]
    fingerprint = Fingerprint(
        input_sha256=info.get("input_sha256", ""),
        mapping_sha256=info.get("mapping_sha256", ""),
        pool=pool_id,
        options=json.dumps({"rollback_of": str(job_path.resolve())}),
    )
    if rollback_path.exists():
        ledger = Ledger.open(rollback_path)
        try:
            ledger.check_fingerprint(fingerprint)
        except MigrateError:
            ledger.close()
            raise
    else:
        ledger = Ledger.create(
            rollback_path,
            fingerprint,
            rollback_of=str(job_path.resolve()),
            pool_id=pool_id,
            region=info.get("region", ""),
            profile=info.get("profile", ""),
            endpoint_url=info.get("endpoint_url", ""),
        )
    click.echo(f"Rollback job: {rollback_path}", err=True)
    client = make_client(
        _client_config(
            profile or info.get("profile") or None,
            region or info.get("region") or None,
            endpoint_url or info.get("endpoint_url") or None,
            config.concurrency,
        )
    )
    with ledger:
        ledger.lock()
        ledger.start_run("rollback")
        pool = UserPool(client, pool_id=pool_id, api="admin")
        stats = _drive(
            ledger,
            "rollback",
            quiet,
            lambda progress: pipeline.execute_items(
                items, ledger=ledger, pool=pool, config=config, progress=progress
            ),
        )
        summary = pipeline.write_ledger_report(ledger, report_path, rows=items)
    return _conclude(
        stats, summary, report_path, f"cognito-migrate rollback {job_path} --yes"
    )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cognito-migrate")
