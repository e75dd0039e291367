"""Undoing a job: the inverse work items read from its ledger, and sending them.

A rollback is a job of its own (its own ledger, resumable); its rows are the
original job's changed rows, in row order, streamed from that job's ledger.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from migrate.checkpoint import Ledger
from migrate.errors import ConfigError
from migrate.execution import ExecutionConfig, ExecutionStats, Executor, UserPoolClient
from migrate.pipeline import (
    EXAMPLE_COUNT,
    NullProgress,
    Progress,
    _recorder,
    _StartAware,
)
from migrate.records import Outcome, Status, WorkItem, utc_now
from migrate.report import ReportWriter, Summary, outcomes_to_frame


def rollback_items(original: Ledger) -> Iterator[WorkItem]:
    """The inverse of a job's writes: restore old values, delete new attributes.

    Only rows that were updated are undone, so a job that was interrupted is
    rolled back exactly as far as it got. The items are read from the ledger
    as they are consumed (keep it open until then), in row order; nothing is
    held per row. Raises ConfigError at once when the job holds no
    before-values (it ran without a snapshot).
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
        f"job {original.path} was run without --diff or --snapshot, so it "
        "did not record the values before its changes; it cannot be "
        "rolled back"
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
        yield WorkItem(
            row=row,
            user=username,
            key=user if user != username else None,
            set_attributes=restore,
            delete_attributes=remove,
            # The values this rollback replaces: a rollback can be rolled back.
            before={name: sent.get(name) for name in before},
        )


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
    """Send prepared work items the ledger does not hold as done (e.g. a rollback)."""
    progress = progress or NullProgress()
    done = set(ledger.done_rows(retry_failed=retry_failed))
    executor = executor_factory(pool, config)
    if isinstance(progress, _StartAware):
        progress.on_start(executor.stats, None)

    on_outcome = _recorder(ledger, progress, retry_failed=retry_failed)
    try:
        return executor.run(
            (item for item in items if item.row not in done),
            on_outcome,
            on_idle=ledger.commit_due,
        )
    finally:
        ledger.flush()


def preview_items(items: Sequence[WorkItem], report_path: str | Path) -> Summary:
    """A dry run of prepared work items (e.g. a rollback): report and summary."""
    stamp = utc_now()
    outcomes = [
        Outcome(
            row=item.row,
            user=item.key or item.user,
            username=item.user,
            status=Status.WOULD_UPDATE,
            changed=tuple(item.set_attributes),
            deleted=item.delete_attributes,
            finished_at=stamp,
        )
        for item in items
    ]
    frame = outcomes_to_frame(outcomes)
    summary = Summary(warnings=[])
    summary.add(frame)
    summary.examples = [
        (
            item.user,
            dict(item.set_attributes),
            list(item.delete_attributes),
            item.before or {},
        )
        for item in items[:EXAMPLE_COUNT]
    ]
    with ReportWriter(report_path) as writer:
        writer.write(frame)
    return summary
