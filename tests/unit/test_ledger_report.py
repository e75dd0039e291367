"""A report from the ledger alone, and a rollback's rows, read a window at a time.

Neither holds a row per job row in memory: the report joins each window of
expected rows with the outcomes stored for it, and the rollback's work items
are read from the ledger as they are consumed.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from migrate import pipeline, rollback
from migrate.checkpoint import Fingerprint, Ledger
from migrate.errors import ConfigError
from migrate.records import Outcome, Status, WorkItem

FP = Fingerprint(input_sha256="a", mapping_sha256="b", pool="p", options="{}")


def outcome(row: int, status: Status = Status.UPDATED, **fields: object) -> Outcome:
    return Outcome(
        row=row,
        user=f"key{row}",
        username=f"user{row}",
        status=status,
        changed=("custom:plan",) if status is Status.UPDATED else (),
        attempts=1,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_REPORT_WINDOW", 3)


def report(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def test_every_row_of_a_job_in_order_over_windows(
    tmp_path: Path, small_windows: None
) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        for row in (2, 3, 7, 11, 12):
            ledger.record(outcome(row))
        # A stored row past the job's count still shows.
        ledger.record(outcome(15, Status.FAILED))
        summary = pipeline.write_ledger_report(
            ledger, tmp_path / "r.csv", total_rows=12
        )
    frame = report(tmp_path / "r.csv")
    assert frame["row"].cast(pl.Int64).to_list() == [*range(1, 13), 15]
    statuses = dict(zip(frame["row"].cast(pl.Int64), frame["status"], strict=True))
    assert [r for r, s in statuses.items() if s == "updated"] == [2, 3, 7, 11, 12]
    assert statuses[1] == statuses[4] == "not_attempted"
    assert statuses[15] == "failed"
    assert summary.total == 13


def test_work_items_name_the_rows_not_yet_stored(
    tmp_path: Path, small_windows: None
) -> None:
    items = [
        WorkItem(row=row, user=f"user{row}", key=f"key{row}") for row in range(1, 9)
    ]
    with Ledger.create(tmp_path / "j", FP) as ledger:
        for row in (1, 4, 5):
            ledger.record(outcome(row))
        pipeline.write_ledger_report(
            ledger, tmp_path / "r.csv", rows=iter(items), only={"not_attempted"}
        )
    frame = report(tmp_path / "r.csv")
    assert frame["row"].cast(pl.Int64).to_list() == [2, 3, 6, 7, 8]
    assert frame["user"].to_list() == ["key2", "key3", "key6", "key7", "key8"]
    assert frame["username"].to_list() == ["user2", "user3", "user6", "user7", "user8"]


def test_rollback_items_stream_in_row_order(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        for row in (5, 1, 3):
            ledger.record(
                outcome(
                    row,
                    sent={"custom:plan": "new"},
                    before={"custom:plan": "old" if row != 3 else None},
                )
            )
        ledger.record(outcome(2, Status.FAILED))
        items = rollback.rollback_items(ledger)
        first = next(items)
        assert first.row == 1
        assert first.set_attributes == {"custom:plan": "old"}
        rest = list(items)
    assert [item.row for item in rest] == [3, 5]
    assert rest[0].delete_attributes == ("custom:plan",)
    assert rest[0].before == {"custom:plan": "new"}


def test_a_job_without_before_values_is_refused_before_any_item(
    tmp_path: Path,
) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(outcome(1))
        with pytest.raises(
            ConfigError, match="ran with --no-read-before-write and without --diff"
        ):
            rollback.rollback_items(ledger)


def test_a_job_with_nothing_updated_has_no_rollback_items(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(outcome(1, Status.FAILED))
        assert list(rollback.rollback_items(ledger)) == []
