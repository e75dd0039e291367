"""Jobs: the lifecycle of every command that runs or reads one.

A job is an input file, a mapping and a pool, made durable by a job file (the
ledger). This module decides everything about a job's life: where its files go
and which paths it refuses (`migrate.files.check_output`, one guard for every
command), how it is created or continued (fingerprint, snapshot, lock), how a
run ends (finished, aborted, interrupted) and what to do next, and how resume,
rollback, report and status read it back (a `JobSpec`, never loose keys).

The CLI only parses options, asks questions, shows progress and turns errors
into exit codes; it talks to this module through typed requests and a
`Reporter` for messages and progress.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from migrate import pipeline
from migrate.checkpoint import (
    Fingerprint,
    Ledger,
    file_sha256,
    is_job_file,
    make_fingerprint,
)
from migrate.errors import (
    CheckpointError,
    ConfigError,
    MigrateError,
    OptionsError,
    RepeatedFailureError,
    StoppedError,
)
from migrate.execution import (
    DEFAULT_CONCURRENCY,
    ExecutionConfig,
    ExecutionStats,
    UserPoolClient,
)
from migrate.files import check_output, same_file
from migrate.pipeline import DryRunResult, Job, prepare
from migrate.preflight import Preflight, verification_lines
from migrate.records import JobKind, JobSpec, WorkItem
from migrate.report import Summary, is_report_file
from migrate.rollback import (
    execute_items,
    preview_items,
    rollback_config,
    rollback_items,
)
from migrate.schema import (
    PoolSchema,
    load_schema_file,
    schema_differences,
    schema_from_describe,
)
from migrate.snapshot import DEFAULT_LIST_RATE, is_snapshot_file
from migrate.source import SourceOptions, input_fingerprint
from migrate.status import JobStatus, job_status

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

# --- how the library talks to the person running a job -----------------------------


class Progress(Protocol):
    """Progress of one stage (a run, a snapshot); the CLI renders it."""

    def on_start(self, stats: ExecutionStats | None, total: int | None) -> None:
        """The stage starts; ``stats`` (a run's) is updated live."""

    def on_rows(self, count: int) -> None:
        """``count`` more rows (or users) are done."""

    def close(self) -> None:
        """The stage ended."""


class Reporter(Protocol):
    """Messages and progress of a job, for a person (the CLI) or nobody."""

    def say(self, text: str) -> None:
        """A line about what the job is doing (job file, snapshot, sandbox)."""

    def warn(self, text: str) -> None:
        """Something the person should know and may want to act on."""

    def progress(self, label: str) -> Progress:
        """A progress display for one stage, e.g. "run" or "snapshot"."""


class _NullProgress:
    def on_start(self, stats: ExecutionStats | None, total: int | None) -> None:
        """Ignore."""

    def on_rows(self, count: int) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


class QuietReporter:
    """A reporter that says nothing (library use, tests)."""

    def say(self, text: str) -> None:
        """Ignore."""

    def warn(self, text: str) -> None:
        """Ignore."""

    def progress(self, label: str) -> Progress:
        """No display."""
        return _NullProgress()


# --- requests and results ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AwsOptions:
    """Where Cognito is and who we are (AWS conventions)."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    #: Access key and secret for emulators (the sandbox); None: the usual chain.
    credentials: tuple[str, str] | None = None

    def client(
        self, concurrency: int = DEFAULT_CONCURRENCY
    ) -> CognitoIdentityProviderClient:
        """A Cognito client with enough connections for ``concurrency`` calls."""
        from migrate.cognito import ClientConfig, make_client

        return make_client(
            ClientConfig(
                profile=self.profile,
                region=self.region,
                endpoint_url=self.endpoint_url,
                credentials=self.credentials,
                max_pool_connections=max(10, concurrency + 2),
            )
        )

    def overridden(self, other: AwsOptions) -> AwsOptions:
        """These options, with every one ``other`` gives taking precedence."""
        return AwsOptions(
            profile=other.profile or self.profile,
            region=other.region or self.region,
            endpoint_url=other.endpoint_url or self.endpoint_url,
            credentials=other.credentials or self.credentials,
        )


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """A run, dry run or validation as asked for: files, pool and options."""

    input_path: Path
    mapping_path: Path
    source_options: SourceOptions = field(default_factory=SourceOptions)
    schema_path: Path | None = None
    pool_id: str | None = None
    aws: AwsOptions = field(default_factory=AwsOptions)
    job_path: Path | None = None
    report_path: Path | None = None
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    diff: bool = False
    snapshot_path: Path | None = None

    def inputs(self) -> list[tuple[str, Path | None]]:
        """Every file the job reads, with its role: never an output."""
        return [
            ("the input file", self.input_path),
            ("the mapping", self.mapping_path),
            ("the schema", self.schema_path),
            ("the snapshot", self.snapshot_path),
        ]

    def default_path(self, suffix: str) -> Path:
        """INPUT-STEM.MAPPING-STEM.<suffix>, in the current directory.

        The stem of ``users.csv.gz`` is ``users``; of a folder, its own name.
        """
        name = (
            self.input_path.resolve().name
            if self.input_path.is_dir()
            else self.input_path.name
        )
        if name.lower().endswith(".gz"):
            name = name[: -len(".gz")]
        return Path(f"{Path(name).stem}.{self.mapping_path.stem}.{suffix}")


@dataclass(frozen=True, kw_only=True)
class RateOverrides:
    """Rate settings given for a resume; None: what the job recorded."""

    rate: float | None = None
    concurrency: int | None = None
    max_attempts: int | None = None
    read_rate: float | None = None

    def resolve(self, spec: JobSpec) -> ExecutionConfig:
        """The settings of this resume: given, else recorded, else the defaults."""
        default = ExecutionConfig()

        def pick(given: Any, recorded: Any, fallback: Any) -> Any:
            return next(v for v in (given, recorded, fallback) if v is not None)

        return ExecutionConfig(
            rate=pick(self.rate, spec.rate, default.rate),
            concurrency=pick(self.concurrency, spec.concurrency, default.concurrency),
            max_attempts=pick(
                self.max_attempts, spec.max_attempts, default.max_attempts
            ),
            read_rate=pick(self.read_rate, spec.read_rate, default.read_rate),
            read_before_write=spec.read_before_write,
        )


@dataclass(kw_only=True)
class JobResult:
    """How a run, resume or rollback ended, and what to do next."""

    stats: ExecutionStats
    summary: Summary
    report_path: Path
    #: A command that works in this state, when the job is not done.
    next_step: str | None = None

    @property
    def exit_code(self) -> int:
        """3 aborted, 130 interrupted, else 0 or 1 by the rows' statuses."""
        if self.stats.stopped_by is not None:
            return 3
        if self.stats.interrupted:
            return 130
        return 0 if self.summary.all_ok else 1


def _read_rate(execution: ExecutionConfig) -> float | None:
    """The preflight's reads/s: None when users are not read before writes."""
    return execution.read_rate if execution.read_before_write else None


# --- outputs -----------------------------------------------------------------------


def check_report_path(path: Path, inputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse a report path that is an input or a file that is not a report."""
    from migrate.report import report_format

    report_format(path)
    check_output(path, what="report file", recognise=is_report_file, protected=inputs)


def check_snapshot_path(path: Path, inputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse a snapshot path that is an input or a file that is not a snapshot."""
    from migrate.snapshot import snapshot_format

    snapshot_format(path)
    check_output(
        path, what="snapshot file", recognise=is_snapshot_file, protected=inputs
    )


def check_job_path(path: Path, inputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse a job-file path that is an input or a file that is not a job file."""
    check_output(path, what="job file", recognise=is_job_file, protected=inputs)


def report_path_for(job_path: Path) -> Path:
    """A job's report, named after its job file: ``X.job.sqlite`` -> ``X.report.csv``.

    Every command that writes a job's report by default (run, sandbox run,
    resume, rollback) writes this one file, so two jobs never share a report.
    """
    name = job_path.name
    for suffix in (".job.sqlite", ".sqlite", ".db"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return job_path.with_name(f"{name}.report.csv")


# --- schema ------------------------------------------------------------------------


def load_schema(
    schema_path: Path | None,
    pool_id: str | None,
    aws: AwsOptions,
    client: CognitoIdentityProviderClient | None = None,
) -> tuple[PoolSchema, dict[str, Any]]:
    """The pool schema from a saved file or DescribeUserPool, and its raw JSON."""
    if schema_path is not None:
        schema = load_schema_file(schema_path)
        # load_schema_file has vetted the JSON; the raw form goes in the job file.
        raw: dict[str, Any] = json.loads(schema_path.read_text(encoding="utf-8"))
        return schema, raw
    if pool_id is None:
        raise OptionsError(
            "give --schema FILE (saved DescribeUserPool output) or --user-pool-id ID"
        )
    from migrate.cognito import describe_user_pool

    raw = describe_user_pool(client or aws.client(), pool_id)
    return schema_from_describe(raw, source=f"user pool {pool_id}"), raw


# --- validate and dry run ----------------------------------------------------------


def validate(request: JobRequest) -> DryRunResult:
    """Check mapping, input and every row against the pool schema; send nothing."""
    if request.report_path is not None:
        check_report_path(request.report_path, request.inputs())
    return pipeline.dry_run(_offline_job(request), report_path=request.report_path)


def _offline_job(request: JobRequest) -> Job:
    """The job checked against a saved schema or DescribeUserPool, nothing sent."""
    schema, _ = load_schema(request.schema_path, request.pool_id, request.aws)
    return prepare(
        request.input_path,
        request.mapping_path,
        schema,
        source_options=request.source_options,
    )


def dry_run(request: JobRequest, reporter: Reporter) -> DryRunResult:
    """Everything but the writes, with the report of what a run would do."""
    report_path = request.report_path or request.default_path("dry-run.report.csv")
    check_report_path(report_path, request.inputs())
    job = _offline_job(request)
    schema = job.schema
    if request.diff:
        snapshot_path = request.snapshot_path
        if snapshot_path is None:
            if request.pool_id is None:
                raise OptionsError(
                    "--diff in a dry run needs --snapshot FILE or --user-pool-id "
                    "(to take a snapshot)"
                )
            snapshot_path = request.default_path("snapshot.parquet")
            check_snapshot_path(snapshot_path, request.inputs())
            take_snapshot(
                request.aws.client(), request.pool_id, schema, snapshot_path, reporter
            )
        job = job.with_snapshot(snapshot_path)
    reporter.say(
        Preflight(
            account=None,
            account_note="not checked: a dry run sends nothing",
            pool_id=request.pool_id or job.schema.pool_id,
            region=request.aws.region,
            endpoint=request.aws.endpoint_url,
            rows=job.source.count_rows(),
            rate=request.execution.rate,
            read_rate=_read_rate(request.execution),
            verification=verification_lines(job.mapping),
            mode="dry run",
        ).render()
    )
    progress = reporter.progress("dry run")
    try:
        return pipeline.dry_run(job, report_path=report_path, progress=progress)
    finally:
        progress.close()


# --- snapshot ----------------------------------------------------------------------


def take_snapshot(
    client: CognitoIdentityProviderClient,
    pool_id: str,
    schema: PoolSchema,
    path: Path,
    reporter: Reporter,
    *,
    rate: float | None = None,
) -> Path:
    """Export the pool's users (ListUsers) to ``path``; continues a stopped one."""
    from migrate.cognito import UserPool
    from migrate.snapshot import take_snapshot as export

    progress = reporter.progress("snapshot")
    progress.on_start(None, None)
    seen = 0

    def on_users(users: int) -> None:
        nonlocal seen
        progress.on_rows(users - seen)
        seen = users

    try:
        result = export(
            UserPool(client, pool_id=pool_id, api="admin"),
            path,
            attributes=list(schema.attributes),
            rate=rate or DEFAULT_LIST_RATE,
            progress=on_users,
        )
    finally:
        progress.close()
    resumed = " (continued an interrupted snapshot)" if result.resumed else ""
    reporter.say(f"Snapshot: {result.users:,} users in {result.pages:,} pages{resumed}")
    if result.restarted:
        reporter.warn(f"the snapshot started over: {result.restarted}")
    if result.unknown_attributes:
        names = ", ".join(sorted(result.unknown_attributes))
        reporter.warn(f"attributes outside the pool schema were left out: {names}")
    return path


def snapshot(
    pool_id: str,
    output_path: Path,
    aws: AwsOptions,
    reporter: Reporter,
    *,
    schema_path: Path | None = None,
    rate: float = DEFAULT_LIST_RATE,
) -> Path:
    """The `snapshot` command: the pool's users and attributes into a file."""
    if not rate > 0:
        raise ConfigError(f"--rate must be above 0 requests/s, not {rate:g}")
    check_snapshot_path(output_path, [("the schema", schema_path)])
    client = aws.client()
    schema, _ = load_schema(schema_path, pool_id, aws, client)
    return take_snapshot(client, pool_id, schema, output_path, reporter, rate=rate)


# --- runs --------------------------------------------------------------------------


@dataclass(kw_only=True)
class PreparedRun:
    """A run checked and ready to send: confirm with the person, then `execute`."""

    job: Job
    spec: JobSpec
    job_path: Path
    report_path: Path
    execution: ExecutionConfig
    client: CognitoIdentityProviderClient
    reporter: Reporter
    snapshot_path: Path | None = None
    #: Replace an existing job file of the same kind instead of continuing it.
    fresh: bool = False
    #: The files the job reads, never removed or replaced.
    inputs: list[tuple[str, Path | None]] = field(default_factory=list)
    retry_failed: bool = False

    def execute(self) -> JobResult:
        """Create or continue the job, send, and write its report."""
        return _execute(self)


def _fingerprint(job: Job, pool_id: str, *, diff: bool) -> Fingerprint:
    return make_fingerprint(
        input_path=job.source.path,
        input_sha256=job.source.fingerprint(),
        mapping_path=Path(job.mapping.path),
        pool=pool_id,
        options={
            "delimiter": job.source_options.delimiter,
            "format": job.source.format,
            "diff": diff,
        },
    )


def _spec_for(
    job: Job,
    *,
    kind: JobKind,
    pool_id: str,
    aws: AwsOptions,
    raw_schema: dict[str, Any],
    execution: ExecutionConfig,
    diff: bool,
) -> JobSpec:
    return JobSpec(
        kind=kind,
        pool_id=pool_id,
        region=aws.region,
        profile=aws.profile,
        endpoint_url=aws.endpoint_url,
        input_path=str(job.source.path.resolve()),
        mapping_path=str(Path(job.mapping.path).resolve()),
        delimiter=job.source_options.delimiter,
        format=job.source.format,
        schema=raw_schema,
        diff=diff,
        rate=execution.rate,
        concurrency=execution.concurrency,
        max_attempts=execution.max_attempts,
        read_rate=execution.read_rate,
        read_before_write=execution.read_before_write,
    )


def _run_outputs(request: JobRequest, default_job: str) -> tuple[Path, Path]:
    """A run's job file and report, both past the output guard."""
    job_path = request.job_path or request.default_path(default_job)
    report_path = request.report_path or report_path_for(job_path)
    inputs = request.inputs()
    check_job_path(job_path, inputs)
    own_snapshot = job_path.with_name(f"{job_path.name}.snapshot.parquet")
    check_report_path(
        report_path,
        [*inputs, ("the job file", job_path), ("the job's snapshot", own_snapshot)],
    )
    return job_path, report_path


def prepare_run(request: JobRequest, reporter: Reporter) -> PreparedRun:
    """Check a real run's options, files and pool; nothing is sent or created."""
    if request.pool_id is None:
        raise OptionsError(
            "--user-pool-id is required for a real run (or use --dry-run / --sandbox)"
        )
    job_path, report_path = _run_outputs(request, "job.sqlite")
    client = request.aws.client(request.execution.concurrency)
    # Always read the live pool before a job is made: a wrong pool id or
    # credentials that cannot read it stop here, with nothing to resume.
    live_raw = load_schema(None, request.pool_id, request.aws, client)[1]
    live = schema_from_describe(live_raw, source=f"user pool {request.pool_id}")
    schema, raw_schema = live, live_raw
    if request.schema_path is not None:
        schema, raw_schema = load_schema(request.schema_path, None, request.aws)
    job = prepare(
        request.input_path,
        request.mapping_path,
        schema,
        source_options=request.source_options,
    )
    notes: list[str] = []
    if request.schema_path is not None:
        blocking, notes = schema_differences(
            schema, live, [*job.mapping.attributes, *job.mapping.delete]
        )
        if blocking:
            raise ConfigError(
                f"user pool {request.pool_id} differs from {request.schema_path}: "
                + "; ".join(blocking)
                + ". Save the schema again (aws cognito-idp describe-user-pool) "
                "or check --user-pool-id"
            )
    diff = request.diff or request.snapshot_path is not None
    done = 0
    if job_path.exists():
        # A continued job keeps how it was made: its diff, its snapshot.
        with Ledger.open(job_path) as previous:
            stored = previous.spec()
            done = len(previous.done_rows())
        if stored.kind != "real":
            raise ConfigError(
                f"job file {str(job_path)!r}: refused, it is a {stored.kind} job's "
                "file; choose another --job path"
            )
        diff = diff or stored.diff
    from migrate.cognito import ClientConfig, caller_identity

    account, account_note = caller_identity(
        ClientConfig(
            profile=request.aws.profile,
            region=request.aws.region,
            endpoint_url=request.aws.endpoint_url,
        )
    )
    reporter.say(
        Preflight(
            account=account,
            account_note=account_note,
            pool_id=request.pool_id,
            pool_name=str(live_raw["UserPool"].get("Name") or "") or None,
            region=request.aws.region or client.meta.region_name,
            endpoint=request.aws.endpoint_url,
            rows=job.source.count_rows(),
            done=done,
            rate=request.execution.rate,
            read_rate=_read_rate(request.execution),
            verification=verification_lines(job.mapping),
            schema_notes=tuple(notes),
        ).render()
    )
    return PreparedRun(
        job=job,
        spec=_spec_for(
            job,
            kind="real",
            pool_id=request.pool_id,
            aws=request.aws,
            raw_schema=raw_schema,
            execution=request.execution,
            diff=diff,
        ),
        job_path=job_path,
        report_path=report_path,
        execution=request.execution,
        client=client,
        reporter=reporter,
        snapshot_path=request.snapshot_path,
    )


@contextlib.contextmanager
def sandbox_run(request: JobRequest, reporter: Reporter) -> Iterator[PreparedRun]:
    """A run against an embedded emulated pool built from ``--schema``.

    The pool lives as long as the ``with`` block. A sandbox job always starts
    over (its pool is new), so an earlier sandbox job file at the same path is
    replaced; any other file there is refused.
    """
    if request.schema_path is None:
        raise OptionsError("--sandbox needs --schema FILE to build its pool")
    if request.pool_id is not None or request.snapshot_path is not None:
        raise OptionsError(
            "--sandbox builds its own pool from --schema and the input: drop "
            "--user-pool-id and --snapshot (use --diff to diff against it)"
        )
    from migrate.sandbox import EmulatedPool, sandbox_users

    job_path, report_path = _run_outputs(request, "sandbox.job.sqlite")
    if job_path.exists() and job_path.stat().st_size:
        with Ledger.open(job_path) as previous:
            kind = previous.spec().kind
        if kind != "sandbox":
            raise ConfigError(
                f"job file {str(job_path)!r}: refused, it is a {kind} job's file "
                "and a sandbox run starts over; choose another --job path"
            )
    schema, raw_schema = load_schema(request.schema_path, None, request.aws)
    job = prepare(
        request.input_path,
        request.mapping_path,
        schema,
        source_options=request.source_options,
    )
    users = sandbox_users(job)
    with EmulatedPool() as sandbox:
        pool_id = sandbox.seed(raw_schema, users)
        aws = AwsOptions(
            region="us-east-1",
            endpoint_url=sandbox.endpoint_url,
            credentials=("sandbox", "sandbox"),
        )
        reporter.say(
            f"Sandbox: emulated pool {pool_id} at {sandbox.endpoint_url} with "
            f"{len(users):,} users, throttled like Cognito"
        )
        reporter.say(
            Preflight(
                account=None,
                account_note="the sandbox's own (no AWS account)",
                pool_id=pool_id,
                region=aws.region,
                endpoint=sandbox.endpoint_url,
                rows=job.source.count_rows(),
                rate=request.execution.rate,
                read_rate=_read_rate(request.execution),
                verification=verification_lines(job.mapping),
                mode="sandbox",
            ).render()
        )
        yield PreparedRun(
            job=job,
            spec=_spec_for(
                job,
                kind="sandbox",
                pool_id=pool_id,
                aws=aws,
                raw_schema=raw_schema,
                execution=request.execution,
                diff=request.diff,
            ),
            job_path=job_path,
            report_path=report_path,
            execution=request.execution,
            client=aws.client(request.execution.concurrency),
            reporter=reporter,
            fresh=True,
            inputs=request.inputs(),
        )


def _start_over(job_path: Path, inputs: Sequence[tuple[str, Path | None]]) -> None:
    """Remove an earlier sandbox job's files before a sandbox run starts over.

    Only once no process runs that job (its lock is held meanwhile), and only
    files this tool wrote: never one of the job's inputs, whatever its name.
    """
    from migrate.snapshot import parts_directory

    protected = [path for _, path in inputs if path is not None]

    def remove(path: Path) -> None:
        if not any(same_file(path, other) for other in protected):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    snapshot = Path(f"{job_path}.snapshot.parquet")
    with contextlib.ExitStack() as held:
        if job_path.exists() and job_path.stat().st_size:
            held.enter_context(Ledger.open(job_path)).lock()
        for suffix in ("", "-wal", "-shm"):
            remove(Path(f"{job_path}{suffix}"))
        if snapshot.exists() and is_snapshot_file(snapshot):
            remove(snapshot)
        if parts_directory(snapshot).exists():
            remove(parts_directory(snapshot))


def _next_step(spec: JobSpec, job_path: Path, stats: ExecutionStats) -> str | None:
    """A command that works after this stop, or None when there is nothing to do."""
    if not stats.stopped:
        return None
    if spec.kind == "sandbox":
        return (
            "run the same `cognito-migrate run ... --sandbox` command again (a "
            "sandbox job starts over with a new emulated pool)"
        )
    if isinstance(stats.stopped_by, RepeatedFailureError):
        # A fixed mapping or input is a new job (the job file refuses it).
        return (
            f"cognito-migrate resume {job_path} --retry-failed (when the cause "
            "was outside the job, e.g. a Lambda trigger); after fixing the "
            f"mapping or the data: cognito-migrate report {job_path} -o "
            "failed.csv --only failed, then run failed.csv as a new job"
        )
    return f"cognito-migrate resume {job_path}"


def _execute(run: PreparedRun) -> JobResult:
    """Create or continue the durable job, send, write the report."""
    from migrate.cognito import UserPool

    job, spec = run.job, run.spec
    if run.fresh:
        _start_over(run.job_path, run.inputs)
    fingerprint = _fingerprint(job, spec.pool_id, diff=spec.diff)
    if run.job_path.exists():
        ledger = Ledger.open(run.job_path)
        try:
            ledger.check_fingerprint(fingerprint)
            stored = ledger.spec()
            if stored.snapshot:
                job = job.with_snapshot(stored.snapshot)
        except MigrateError:
            ledger.close()
            raise
        run.reporter.say(f"Job: {run.job_path} (continuing)")
    else:
        if spec.diff:
            snapshot_path = run.snapshot_path
            if snapshot_path is None:
                snapshot_path = run.job_path.with_name(
                    run.job_path.name + ".snapshot.parquet"
                )
                check_snapshot_path(snapshot_path, [("the job file", run.job_path)])
                take_snapshot(
                    run.client, spec.pool_id, job.schema, snapshot_path, run.reporter
                )
            job = job.with_snapshot(snapshot_path)
            spec = replace(spec, snapshot=str(Path(snapshot_path).resolve()))
        spec = replace(spec, total_rows=job.source.count_rows())
        ledger = Ledger.create(run.job_path, fingerprint, spec)
        run.reporter.say(f"Job: {run.job_path}")
    with ledger:
        ledger.lock()
        ledger.start_run(command_line())
        pool = UserPool(
            run.client,
            pool_id=spec.pool_id,
            api=job.mapping.api,
            client_metadata=job.mapping.client_metadata,
        )
        stats = _drive(
            ledger,
            run.reporter.progress("run"),
            lambda progress: pipeline.execute(
                job,
                ledger=ledger,
                pool=pool,
                config=run.execution,
                retry_failed=run.retry_failed,
                progress=progress,
            ),
        )
        try:
            summary = _job_report(ledger, spec, run.job_path, run.report_path, job=job)
        except KeyboardInterrupt:
            raise _report_stopped(run.job_path, run.report_path) from None
    return JobResult(
        stats=stats,
        summary=summary,
        report_path=run.report_path,
        next_step=_next_step(spec, run.job_path, stats),
    )


def _drive(
    ledger: Ledger,
    progress: Progress,
    work: Callable[[Progress], ExecutionStats],
) -> ExecutionStats:
    """Run ``work`` with ``progress``; record in the ledger how the run ended.

    An interrupted run returns the counters its executor kept until then
    (seen through the progress it started), so its summary counts its calls.
    """
    stats: ExecutionStats | None = None
    watched = _Watched(progress)
    try:
        stats = work(watched)
    except KeyboardInterrupt:
        stats = watched.stats or ExecutionStats()
        stats.interrupted = True
    finally:
        progress.close()
        ledger.end_run(
            "interrupted"
            if stats is None or stats.interrupted
            else ("aborted" if stats.stopped_by else "finished")
        )
    return stats


class _Watched:
    """A progress that also keeps the executor's counters it is shown."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self.stats: ExecutionStats | None = None

    def on_start(self, stats: ExecutionStats | None, total: int | None) -> None:
        self.stats = stats
        self._progress.on_start(stats, total)

    def on_rows(self, count: int) -> None:
        self._progress.on_rows(count)

    def close(self) -> None:
        self._progress.close()


# --- resume ------------------------------------------------------------------------


def _job_from_spec(spec: JobSpec, source: Path, *, verify: bool = False) -> Job:
    """Rebuild a job from what its job file recorded."""
    if spec.input_path is None or spec.mapping_path is None or spec.schema is None:
        raise CheckpointError(
            f"{source}: the job description in it names no input, mapping or schema"
        )
    schema = schema_from_describe(spec.schema, source=str(source))
    return prepare(
        spec.input_path,
        spec.mapping_path,
        schema,
        source_options=SourceOptions(
            delimiter=spec.delimiter,
            format=spec.format,  # type: ignore[arg-type]
            verify=verify,
        ),
    )


def _spec_inputs(spec: JobSpec, job_path: Path) -> list[tuple[str, Path | None]]:
    """The files a recorded job reads, with their roles: never an output."""

    def path(text: str | None) -> Path | None:
        return Path(text) if text else None

    return [
        ("the job file", job_path),
        ("the input file", path(spec.input_path)),
        ("the mapping", path(spec.mapping_path)),
        ("the snapshot", path(spec.snapshot)),
    ]


def _recorded_aws(spec: JobSpec) -> AwsOptions:
    """The connection a job recorded: the default of commands that continue it."""
    return AwsOptions(
        profile=spec.profile, region=spec.region, endpoint_url=spec.endpoint_url
    )


def prepare_resume(
    job_path: Path,
    reporter: Reporter,
    *,
    aws: AwsOptions = AwsOptions(),
    report_path: Path | None = None,
    rates: RateOverrides = RateOverrides(),
    retry_failed: bool = False,
) -> PreparedRun:
    """Continue an interrupted or aborted job from its job file.

    The connection and the rate settings default to what the job recorded.
    """
    with Ledger.open(job_path) as ledger:
        spec = ledger.spec()
    if spec.kind == "rollback":
        raise ConfigError(
            "this is a rollback job: continue it with `cognito-migrate rollback "
            f"{spec.rollback_of} --yes`"
        )
    if spec.kind == "sandbox":
        raise ConfigError(
            "this is a sandbox job: its emulated pool is gone; run "
            "`cognito-migrate run ... --sandbox` again instead"
        )
    job = _job_from_spec(spec, job_path, verify=True)
    execution = rates.resolve(spec)
    report_path = report_path or report_path_for(job_path)
    check_report_path(report_path, _spec_inputs(spec, job_path))
    return PreparedRun(
        job=job,
        spec=spec,
        job_path=job_path,
        report_path=report_path,
        execution=execution,
        client=_recorded_aws(spec).overridden(aws).client(execution.concurrency),
        reporter=reporter,
        retry_failed=retry_failed,
    )


# --- status and report -------------------------------------------------------------


def status(job_path: Path) -> JobStatus:
    """The status of a job, read from its job file (safe while it runs)."""
    with Ledger.open(job_path) as ledger:
        return job_status(ledger)


def write_report(
    job_path: Path, output_path: Path, *, only: Collection[str] | None = None
) -> Summary:
    """The per-user report of a job, at any time."""
    with Ledger.open(job_path) as ledger:
        spec = ledger.spec()
        check_report_path(output_path, _spec_inputs(spec, job_path))
        if spec.kind == "rollback":
            # The rollback's rows are the original job's changed rows.
            # The rollback's rows are the original job's changed rows,
            # streamed from its ledger (a report of a rollback whose job file
            # is gone holds the outcomes alone).
            with contextlib.ExitStack() as held:
                items: Iterator[WorkItem] = iter(())
                if spec.rollback_of and Path(spec.rollback_of).is_file():
                    original = held.enter_context(Ledger.open(Path(spec.rollback_of)))
                    items = rollback_items(original)
                return pipeline.write_ledger_report(
                    ledger, output_path, only=only, rows=items
                )
        return _job_report(ledger, spec, job_path, output_path, only=only)


def _job_report(
    ledger: Ledger,
    spec: JobSpec,
    job_path: Path,
    output_path: Path,
    *,
    job: Job | None = None,
    only: Collection[str] | None = None,
) -> Summary:
    """A job's report: from the ledger and the input, or the ledger alone when
    the input or mapping changed since the job was made (rows rebuilt from a
    changed file would name the wrong users)."""
    changed = _changed_inputs(spec, ledger.info())
    if changed:
        return pipeline.write_ledger_report(
            ledger,
            output_path,
            only=only,
            total_rows=spec.total_rows,
            warnings=[
                f"{changed} since the job ran: this report comes from the "
                "job file alone, without input columns; rows the job never "
                "recorded are not_attempted, with no user"
            ],
        )
    job = job or _job_from_spec(spec, job_path)
    return pipeline.write_report(job, ledger, output_path, only=only)


def _report_stopped(job_path: Path, report_path: Path) -> StoppedError:
    """A stop while the report was written: an older report there is untrue now."""
    removed = ""
    if report_path.exists():
        with contextlib.suppress(OSError):
            report_path.unlink()
            removed = f"; the older report {report_path} was removed"
    return StoppedError(
        f"interrupted while writing the report{removed}. Every outcome is in "
        f"the job file: `cognito-migrate report {job_path} -o {report_path}` "
        "writes the report"
    )


def _changed_inputs(spec: JobSpec, stored: dict[str, str]) -> str | None:
    """What changed of the files a job was made from, or None when nothing did."""
    digests: tuple[tuple[str, str | None, str, Callable[[str], str]], ...] = (
        # The input may be a folder of Parquet parts: hashed as Source does.
        ("the input file", spec.input_path, "input_sha256", input_fingerprint),
        ("the mapping", spec.mapping_path, "mapping_sha256", file_sha256),
    )
    for role, path, key, digest in digests:
        if path is None or not (Path(path).is_file() or Path(path).is_dir()):
            return f"{role} {path} is gone"
        if digest(path) != stored.get(key):
            return f"{role} {path} changed"
    return None


# --- rollback ----------------------------------------------------------------------


@dataclass(kw_only=True)
class PreparedRollback:
    """A rollback checked and ready: ``items`` to send; confirm, then `execute`."""

    job_path: Path
    rollback_path: Path
    report_path: Path
    spec: JobSpec
    #: What the rollback's own job file is made for: this job's undo.
    fingerprint: Fingerprint
    #: Users the job changed: the rows of the rollback.
    count: int
    aws: AwsOptions
    execution: ExecutionConfig
    reporter: Reporter

    def items(self) -> Iterator[WorkItem]:
        """The rollback's work items, streamed from the job's ledger in row order."""
        with Ledger.open(self.job_path) as original:
            yield from rollback_items(original)

    def execute(self) -> JobResult:
        """The rollback as a durable job: its own job file, lock and report."""
        return _execute_rollback(self)


def rollback_paths(job_path: Path, *, dry_run: bool) -> tuple[Path, Path]:
    """Default (job file, report) of a rollback of ``job_path``."""
    rollback = Path(f"{job_path}.rollback.sqlite")
    if dry_run:
        return rollback, Path(f"{job_path}.rollback.dry-run.report.csv")
    return rollback, report_path_for(rollback)


def prepare_rollback(
    job_path: Path,
    reporter: Reporter,
    *,
    rollback_path: Path | None = None,
    report_path: Path | None = None,
    aws: AwsOptions = AwsOptions(),
    execution: ExecutionConfig | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> PreparedRollback:
    """Check that the job can be undone and where; nothing is sent.

    Each user is read before it is restored; with ``force`` a user changed
    since the job is restored anyway (else it is a conflict, left alone).
    """
    default_job, default_report = rollback_paths(job_path, dry_run=dry_run)
    rollback_path = rollback_path or default_job
    report_path = report_path or default_report
    with Ledger.open(job_path) as original:
        spec = original.spec()
        holder = original.holder()
        if holder and not dry_run:
            raise ConfigError(
                f"job {job_path} is being run by {holder}: wait for it to finish "
                "or stop it, then roll it back (a rollback now would miss the "
                "rows it still writes)"
            )
        inputs = _spec_inputs(spec, job_path)
        if not dry_run:
            check_job_path(rollback_path, inputs)
        check_report_path(
            report_path, [*inputs, ("the rollback's job file", rollback_path)]
        )
        if spec.kind == "sandbox" and not dry_run:
            raise ConfigError(
                "this is a sandbox job: its emulated pool is gone, there is "
                "nothing to roll back"
            )
        # Refused here, before any question, when there are no before-values.
        rollback_items(original)  # reads its first row only
        count = original.updated_count()
        stored = original.info()
    fingerprint = Fingerprint(
        input_sha256=stored.get("input_sha256", ""),
        mapping_sha256=stored.get("mapping_sha256", ""),
        pool=spec.pool_id,
        options=json.dumps({"rollback_of": str(job_path.resolve())}),
    )
    return PreparedRollback(
        job_path=job_path,
        rollback_path=rollback_path,
        report_path=report_path,
        spec=spec,
        fingerprint=fingerprint,
        count=count,
        aws=_recorded_aws(spec).overridden(aws),
        execution=rollback_config(execution or ExecutionConfig(), force=force),
        reporter=reporter,
    )


def preview_rollback(rollback: PreparedRollback) -> Summary:
    """What a rollback would restore, and its conflicts: each user is read,
    nothing is written; report and summary."""
    from migrate.cognito import UserPool

    if rollback.spec.kind == "sandbox":
        raise ConfigError(
            "this is a sandbox job: its emulated pool is gone, there is "
            "nothing to roll back"
        )
    client = rollback.aws.client(rollback.execution.concurrency)
    summary, _ = preview_items(
        rollback.items,
        rollback.report_path,
        pool=UserPool(client, pool_id=rollback.spec.pool_id, api="admin"),
        config=rollback.execution,
        spec=_rollback_spec(rollback),
        progress=rollback.reporter.progress("rollback (dry run)"),
    )
    return summary


def _rollback_spec(rollback: PreparedRollback) -> JobSpec:
    spec = rollback.spec
    return JobSpec(
        kind="rollback",
        pool_id=spec.pool_id,
        region=spec.region,
        profile=spec.profile,
        endpoint_url=spec.endpoint_url,
        rollback_of=str(rollback.job_path.resolve()),
        total_rows=rollback.count,
        rate=rollback.execution.rate,
        concurrency=rollback.execution.concurrency,
        max_attempts=rollback.execution.max_attempts,
        read_rate=rollback.execution.read_rate,
    )


def _execute_rollback(rollback: PreparedRollback) -> JobResult:
    from migrate.cognito import UserPool

    spec = rollback.spec
    fingerprint = rollback.fingerprint
    rollback_spec = _rollback_spec(rollback)
    if rollback.rollback_path.exists():
        ledger = Ledger.open(rollback.rollback_path)
        try:
            ledger.check_fingerprint(fingerprint)
        except MigrateError:
            ledger.close()
            raise
    else:
        ledger = Ledger.create(rollback.rollback_path, fingerprint, rollback_spec)
    rollback.reporter.say(f"Rollback job: {rollback.rollback_path}")
    client = rollback.aws.client(rollback.execution.concurrency)
    pool: UserPoolClient = UserPool(client, pool_id=spec.pool_id, api="admin")
    with ledger:
        ledger.lock()
        ledger.start_run("rollback")
        stats = _drive(
            ledger,
            rollback.reporter.progress("rollback"),
            lambda progress: execute_items(
                rollback.items(),
                ledger=ledger,
                pool=pool,
                config=rollback.execution,
                progress=progress,
            ),
        )
        summary = pipeline.write_ledger_report(
            ledger, rollback.report_path, rows=rollback.items()
        )
    return JobResult(
        stats=stats,
        summary=summary,
        report_path=rollback.report_path,
        # Naming the rollback's own files: the defaults may not be these.
        next_step=(
            f"cognito-migrate rollback {rollback.job_path} --yes --job "
            f"{rollback.rollback_path} --report {rollback.report_path}"
            + (" --force" if rollback.execution.force else "")
            if stats.stopped
            else None
        ),
    )


def command_line() -> str:
    """The command that started this process, as recorded in a job's runs."""
    return " ".join(sys.argv[1:]) or "run"
