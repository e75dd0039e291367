"""Outcomes decided without a call go to the ledger as frames, through the writer.

A --diff run decides most rows without a call (unchanged, invalid, skipped);
``Ledger.record_frame`` hands a batch of them to the ledger's writer thread,
which encodes the columns that vary as one JSON array (the others as
parameters) and stores them with one statement. What is read back must be
exactly what was recorded, whatever varies and whatever the text holds.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from migrate.checkpoint import LAST_ROW, Fingerprint, Ledger
from migrate.records import REPORT_COLUMNS, Outcome, Status

FP = Fingerprint(input_sha256="a", mapping_sha256="b", pool="p", options="{}")
NAMES = pl.List(pl.String)


def decided(rows: int, **columns: list[object]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "row": range(1, rows + 1),
            "user": [f"u{i}" for i in range(1, rows + 1)],
            "username": [f"u{i}" for i in range(1, rows + 1)],
            "status": ["unchanged"] * rows,
            "changed": [[]] * rows,
            "deleted": [[]] * rows,
            "error_code": ["unchanged"] * rows,
            "error_message": [f"row {i}: same" for i in range(1, rows + 1)],
            "attempts": [0] * rows,
            "finished_at": ["2026-12-01T00:00:00Z"] * rows,
            "delivery": [None] * rows,
        },
        schema={
            "row": pl.Int64,
            "user": pl.String,
            "username": pl.String,
            "status": pl.String,
            "changed": NAMES,
            "deleted": NAMES,
            "error_code": pl.String,
            "error_message": pl.String,
            "attempts": pl.Int64,
            "finished_at": pl.String,
            "delivery": pl.String,
        },
    )
    return frame.with_columns(
        pl.Series(name, values, dtype=frame.schema[name])
        for name, values in columns.items()
    )


def stored(path: Path) -> list[dict[str, object]]:
    with Ledger.open(path) as ledger:
        return [dict(row) for row in ledger.all_outcomes()]


def expected(frame: pl.DataFrame) -> list[dict[str, object]]:
    lists = frame.with_columns(
        pl.col(name).map_elements(
            lambda names: "[" + ",".join(f'"{n}"' for n in names) + "]",
            return_dtype=pl.String,
        )
        for name in ("changed", "deleted")
    )
    return lists.select(REPORT_COLUMNS).to_dicts()


@pytest.mark.parametrize(
    "columns",
    [
        {},
        {"status": ["invalid", "unchanged", "skipped"]},
        {"changed": [["email"], [], ["name", "email"]], "delivery": ["a", None, "b"]},
        {"error_message": ['quote " back \\ slash', "tab\tnew\nline", "é ☃"]},
        {"user": [None, "x", "y"], "attempts": [0, 2, 0]},
    ],
)
def test_a_frame_reads_back_exactly(
    tmp_path: Path, columns: dict[str, list[object]]
) -> None:
    frame = decided(3, **columns)
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record_frame(frame)
    assert stored(tmp_path / "j") == expected(frame)


def test_a_frame_of_one_row_is_all_parameters(tmp_path: Path) -> None:
    frame = decided(1, changed=[["a"]])
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record_frame(frame)
    assert stored(tmp_path / "j") == expected(frame)


def test_a_nul_from_the_input_is_kept(tmp_path: Path) -> None:
    # SQLite's JSON functions would cut the key at the NUL: the exact path.
    frame = decided(2, user=["a\x00b", "c"])
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record_frame(frame)
    rows = stored(tmp_path / "j")
    assert rows[0]["user"] == "a\x00b"
    assert rows == expected(frame)


def test_frames_and_sent_outcomes_keep_their_order(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(Outcome(row=1, user="u1", status=Status.FAILED_RETRYABLE))
        ledger.record_frame(decided(1))
        ledger.record(Outcome(row=2, user="u2", status=Status.UPDATED, attempts=1))
        assert ledger.counts() == {"unchanged": 1, "updated": 1}


def test_outcome_frame_reads_what_outcomes_reads(tmp_path: Path) -> None:
    """The report's bulk read (JSON lines from SQLite) against the row reads,
    on text that JSON escapes: quotes, a backslash, a NUL, control
    characters, lines, non-ASCII; and on the values of a sent row."""
    tricky: list[object] = [
        "a\x00b",
        'q"uote\\',
        "line\nbreak\tand\x01",
        "é漢🙂",
        "\\u0000",
    ]
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record_frame(
            decided(5, user=tricky, error_message=list(reversed(tricky)))
        )
        ledger.record(
            Outcome(
                row=6,
                user="u6",
                status=Status.UPDATED,
                changed=("custom:plan",),
                attempts=2,
                sent={"custom:plan": "pro\x00"},
                before={"custom:plan": None},
            )
        )
        read = [
            dict(row)
            for row in ledger.outcomes(first_row=1, last_row=LAST_ROW, values=True)
        ]
        assert ledger.outcome_frame(first_row=1, values=True).to_dicts() == read
        assert read[0]["user"] == "a\x00b"
        assert read[4]["user"] == "\\u0000"
        assert ledger.outcome_frame(first_row=2, last_row=3).to_dicts() == [
            {name: row[name] for name in REPORT_COLUMNS} for row in read[1:3]
        ]
        window = ledger.outcome_frame(first_row=3, limit=2)
        assert window["row"].to_list() == [3, 4]
        empty = ledger.outcome_frame(first_row=7)
        assert empty.is_empty()
        assert empty.columns == list(REPORT_COLUMNS)


def test_sent_outcomes_and_decided_frames_are_stored_alike(tmp_path: Path) -> None:
    """One write path: an outcome recorded one by one and the same outcome in
    a decided frame leave the same ledger row (but for ``recorded``)."""
    frame = decided(2, status=["invalid", "skipped"], error_code=["bad", None])
    with Ledger.create(tmp_path / "a", FP) as ledger:
        ledger.record_frame(frame)
    with Ledger.create(tmp_path / "b", FP) as ledger:
        for row in frame.to_dicts():
            ledger.record(
                Outcome(
                    **{
                        **row,
                        "status": Status(row["status"]),
                        "changed": tuple(row["changed"]),
                        "deleted": tuple(row["deleted"]),
                    }
                )
            )
    assert stored(tmp_path / "a") == stored(tmp_path / "b")
