"""A job's status, read from its job file while it runs or after.

`job_status` reads the ledger into a `JobStatus`; `render` shows it as text and
`JobStatus.as_json` as a documented, versioned JSON object (``status --json``):

    {
      "version": 1,
      "job": "users.backfill.job.sqlite",   the job file
      "kind": "real",                       real | sandbox | rollback
      "input": "/abs/users.csv",            null for a rollback
      "undoes": null,                       a rollback: the job file it undoes
      "pool_id": "us-east-1_XXXX",
      "running": true,                      a process holds the job now
      "holder": "process 4242",             null when not running
      "total_rows": 1000000,                null when unknown
      "statuses": {"updated": 10, ...},     every status, zero when none
      "remaining": 999990,                  rows without a final status; null
                                            when the total is unknown
      "skipped_by_reason": {"nothing_to_change": 3},
      "errors_by_code": {"UserNotFoundException": 2},
      "rate": 19.8,                         calls/s of the latest run, or null
      "eta_seconds": 50504.0,               remaining / rate while running
      "last_activity": "2026-12-06T21:00:00+00:00",
      "runs": 2,
      "last_run_result": "interrupted"      finished | aborted | interrupted |
                                            null (running or killed)
    }

Rows a stopped job never reached are not in its ledger; they count as
``not_attempted``, as the run's summary and report count them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrate.checkpoint import FINAL_STATUSES, Ledger
from migrate.records import OK_STATUSES, JobKind, Status

#: Version of the JSON shape; bumped when a field changes meaning or goes.
STATUS_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    """Everything `status` shows about a job."""

    job: Path
    kind: JobKind
    input: str | None
    #: The job file a rollback undoes (None for other jobs).
    undoes: str | None
    pool_id: str
    holder: str | None
    total_rows: int | None
    statuses: dict[str, int]
    remaining: int | None
    skipped_by_reason: dict[str, int]
    errors_by_code: dict[str, int]
    rate: float | None
    last_activity: float | None
    runs: int
    last_run_result: str | None
    now: float

    @property
    def running(self) -> bool:
        """Whether a process holds the job now."""
        return self.holder is not None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until the remaining rows are done at the latest rate."""
        if not self.running or not self.rate or self.remaining is None:
            return None
        return self.remaining / self.rate

    def as_json(self) -> dict[str, Any]:
        """The versioned JSON shape documented in the module docstring."""
        last = (
            datetime.fromtimestamp(self.last_activity, UTC).isoformat(
                timespec="seconds"
            )
            if self.last_activity is not None
            else None
        )
        return {
            "version": STATUS_VERSION,
            "job": str(self.job),
            "kind": self.kind,
            "input": self.input,
            "undoes": self.undoes,
            "pool_id": self.pool_id,
            "running": self.running,
            "holder": self.holder,
            "total_rows": self.total_rows,
            "statuses": self.statuses,
            "remaining": self.remaining,
            "skipped_by_reason": self.skipped_by_reason,
            "errors_by_code": self.errors_by_code,
            "rate": round(self.rate, 3) if self.rate is not None else None,
            "eta_seconds": (
                round(self.eta_seconds, 1) if self.eta_seconds is not None else None
            ),
            "last_activity": last,
            "runs": self.runs,
            "last_run_result": self.last_run_result,
        }


def job_status(ledger: Ledger, *, now: Callable[[], float] = time.time) -> JobStatus:
    """Read a job's status from its ledger (safe while a run writes it)."""
    spec = ledger.spec()
    counts = ledger.counts()
    total = spec.total_rows
    holder = ledger.holder()
    if total is not None and not holder:
        # A stopped job's rows that were never queued are not in the ledger;
        # the run's summary and report count them not_attempted, and so does this.
        others = sum(n for s, n in counts.items() if s != Status.NOT_ATTEMPTED)
        if total > others:
            counts[Status.NOT_ATTEMPTED.value] = total - others
    final = sum(n for s, n in counts.items() if s in FINAL_STATUSES)
    runs = ledger.runs()
    _, last, _ = ledger.activity()
    # The rate of the latest run: earlier runs, and the pauses between them,
    # say nothing about how fast this one goes.
    started = float(runs[-1]["started_at"]) if runs else None
    first, latest, sent = ledger.activity(since=started or 0.0)
    origin = started if started is not None else first
    rate = (
        sent / (latest - origin)
        if latest is not None and origin is not None and latest > origin
        else None
    )
    ok = [s.value for s in OK_STATUSES]
    return JobStatus(
        job=ledger.path,
        kind=spec.kind,
        input=spec.input_path,
        undoes=spec.rollback_of,
        pool_id=spec.pool_id,
        holder=holder,
        total_rows=total,
        statuses={status.value: counts.get(status.value, 0) for status in Status},
        remaining=max(total - final, 0) if total is not None else None,
        skipped_by_reason=ledger.error_counts(statuses=ok),
        errors_by_code=ledger.error_counts(
            statuses=[s.value for s in Status if s not in OK_STATUSES]
        ),
        rate=rate,
        last_activity=last,
        runs=len(runs),
        last_run_result=(runs[-1]["result"] if runs else None),
        now=now(),
    )


def render(status: JobStatus) -> str:
    """The status as text for a person."""
    lines = [
        f"Job: {status.job}",
        # A rollback has no input file: it undoes a job.
        f"Undoes: {status.undoes}"
        if status.undoes is not None
        else f"Input: {status.input or '?'}",
        f"Pool: {status.pool_id}",
        f"Running: {'yes, ' + status.holder if status.holder else 'no'}",
    ]
    decided = sum(status.statuses.values())
    of = f" of {status.total_rows:,}" if status.total_rows is not None else ""
    lines.append(f"Rows with a status: {decided:,}{of}")
    lines += [
        f"  {name:<18} {count:>10,}" for name, count in status.statuses.items() if count
    ]
    if status.remaining is not None:
        lines.append(f"Remaining: {status.remaining:,} rows")
    if status.skipped_by_reason:
        lines.append("Skipped by policy:")
        lines += [f"  {c:<30} {n:>10,}" for c, n in status.skipped_by_reason.items()]
    if status.errors_by_code:
        lines.append("Errors by code:")
        lines += [f"  {c:<30} {n:>10,}" for c, n in status.errors_by_code.items()]
    if status.last_activity is not None:
        when = datetime.fromtimestamp(status.last_activity, UTC)
        lines.append(
            f"Last activity: {when.isoformat(timespec='seconds')} "
            f"({status.now - status.last_activity:.0f}s ago)"
        )
    if status.rate is not None:
        lines.append(f"Achieved rate: {status.rate:.1f} users/s (latest run)")
    if status.eta_seconds is not None and status.remaining is not None:
        lines.append(
            f"ETA: {status.eta_seconds / 60:.0f} min for {status.remaining:,} rows"
        )
    if status.runs:
        last_run = status.last_run_result or "running or killed"
        lines.append(f"Runs: {status.runs} (last: {last_run})")
    return "\n".join(lines)
