"""Undoing a job: the inverse work items read from its ledger, and sending them.

A rollback is a job of its own (its own ledger, resumable); its rows are the
original job's changed rows, in row order, streamed from that job's ledger.
Each user is read before it is restored (migrate.compare): where an attribute
no longer holds what the job left there, someone changed it since, and the row
is a ``conflict``, left alone unless ``--force``.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from migrate.checkpoint import Fingerprint, Ledger
from migrate.compare import left_by_writes
from migrate.errors import ConfigError
from migrate.execution import ExecutionConfig, ExecutionStats, Executor, UserPoolClient
from migrate.mapping import VERIFIED_FLAGS
from migrate.pipeline import (
    NullProgress,
    Progress,
    _recorder,
    _StartAware,
    write_ledger_report,
)
from migrate.records import JobSpec, WorkItem
from migrate.report import Summary


def rollback_items(original: Ledger) -> Iterator[WorkItem]:
    """The inverse of a job's writes: restore old values, delete new attributes.

    Only rows that changed a user are undone, so a job that was interrupted is
    rolled back exactly as far as it got. The items are read from the ledger
    as they are consumed (keep it open until then), in row order; nothing is
    held per row. Raises ConfigError at once when the job holds no
    before-values (it ran with --no-read-before-write and without --diff).
    """
    updated = original.updated_rows()
    first = next(updated, None)
    if first is None:
        return iter(())
    if first[4] is None:
        raise _no_before_values(original)
    return _inverse(original, itertools.chain([first], updated))


def _no_before_values(original: Ledger) -> ConfigError:
    return ConfigError(
        f"job {original.path} ran with --no-read-before-write and without "
        "--diff, so it did not record the values before its changes; it "
        "cannot be rolled back"
    )


def _inverse(
    original: Ledger,
    updated: Iterable[tuple[int, str, str, dict[str, str], Any]],
) -> Iterator[WorkItem]:
    for row, user, username, sent, before in updated:
        if before is None:
            raise _no_before_values(original)
        restore = {name: old for name, old in before.items() if old is not None}
        remove = tuple(name for name, old in before.items() if old is None)
        if not restore and not remove:
            continue
        # A flag Cognito reset is restored, but is not a condition.
        left = left_by_writes(before, sent)
        yield WorkItem(
            row=row,
            user=username,
            key=user if user != username else None,
            set_attributes=restore,
            delete_attributes=remove,
            expect=left,
            # Every flag as it was, whether or not its attribute changes back.
            free_flags=frozenset(VERIFIED_FLAGS),
            # Replaced by the values read before the restore.
            before=dict(left),
        )


def rollback_config(config: ExecutionConfig, *, force: bool) -> ExecutionConfig:
    """A rollback's settings: it always reads each user first (the conflict check)."""
    return replace(config, read_before_write=True, force=force)


def execute_items(
    items: Iterable[WorkItem],
    *,
    ledger: Ledger,
    pool: UserPoolClient,
    config: ExecutionConfig,
    retry_failed: bool = False,
    progress: Progress | None = None,
    executor_factory: Callable[..., Executor] = Executor,
) -> ExecutionStats:
    """Send prepared work items the ledger does not hold as done (e.g. a rollback).

    With ``config.force``, rows left as conflicts by an earlier run are sent.
    """
    progress = progress or NullProgress()
    done = set(
        ledger.done_rows(retry_failed=retry_failed, retry_conflicts=config.force)
    )
    executor = executor_factory(pool, config)
    if isinstance(progress, _StartAware):
        progress.on_start(executor.stats, None)

    on_outcome = _recorder(
        ledger, progress, retry_failed=retry_failed, retry_conflicts=config.force
    )
    try:
        return executor.run(
            (item for item in items if item.row not in done),
            on_outcome,
            on_idle=ledger.commit_due,
        )
    finally:
        ledger.flush()


def preview_items(
    items: Callable[[], Iterator[WorkItem]],
    report_path: str | Path,
    *,
    pool: UserPoolClient,
    config: ExecutionConfig,
    spec: JobSpec,
    progress: Progress | None = None,
) -> tuple[Summary, ExecutionStats]:
    """A dry run of prepared work items (e.g. a rollback): each user is read and
    compared, nothing is written; the report says what would be restored and
    which rows are conflicts.

    The outcomes go through a scratch ledger, so the report is written in row
    order a window at a time, as a real rollback's is.
    """
    with tempfile.TemporaryDirectory(prefix="cognito-migrate-preview-") as scratch:
        fingerprint = Fingerprint(
            input_sha256="", mapping_sha256="", pool=spec.pool_id, options="{}"
        )
        with Ledger.create(
            Path(scratch) / "preview.sqlite", fingerprint, spec
        ) as ledger:
            stats = execute_items(
                items(),
                ledger=ledger,
                pool=pool,
                config=replace(config, writes=False),
                progress=progress,
            )
            summary = write_ledger_report(ledger, report_path, rows=items())
    return summary, stats
