"""Which rows of a batch a resume still has to do (pipeline._not_done)."""

from __future__ import annotations

import polars as pl
import pytest

from migrate.pipeline import _not_done
from migrate.records import ROW


def batch(rows: list[int]) -> pl.DataFrame:
    return pl.DataFrame({ROW: rows, "v": [str(r) for r in rows]})


def done(rows: list[int]) -> pl.Series:
    return pl.Series("row", sorted(rows), dtype=pl.Int64)


@pytest.mark.parametrize(
    ("rows", "finished", "left"),
    [
        ([1, 2, 3, 4], [1, 2, 3, 4], []),  # the whole batch done
        ([5, 6, 7, 8], [1, 2, 3, 4, 9, 10], [5, 6, 7, 8]),  # none of it
        ([1, 2, 3, 4], [2, 4, 5], [1, 3]),
        ([1, 2, 3, 4], [], [1, 2, 3, 4]),
        # As many done rows in its range as the batch has rows, one of them
        # not the batch's: row 4 is still to do.
        ([1, 2, 4], [1, 2, 3], [4]),
        ([10, 12, 14], [10, 11, 12, 13, 14], []),
    ],
)
def test_not_done_keeps_exactly_the_rows_not_done(
    rows: list[int], finished: list[int], left: list[int]
) -> None:
    kept = _not_done(batch(rows), done(finished))
    assert kept.get_column(ROW).to_list() == left
    assert kept.columns == [ROW, "v"]
