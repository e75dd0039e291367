"""Bounded memory: hash partitions on disk, groups merged piece by piece, row tables."""

from __future__ import annotations

import gc
from pathlib import Path

import polars as pl
import pytest

from migrate import spill
from migrate.records import ROW
from migrate.spill import (
    Partitioned,
    RowTable,
    RowTableBuilder,
    chunks,
    reduce_pieces,
)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions of 10 rows, written every 7, tables in files of 4 rows."""
    monkeypatch.setattr(spill, "PARTITION_ROWS", 10)
    monkeypatch.setattr(spill, "FLUSH_ROWS", 7)
    monkeypatch.setattr(spill, "CHUNK_ROWS", 3)
    monkeypatch.setattr(spill, "BUCKET_ROWS", 4)


def test_one_partition_stays_in_memory() -> None:
    split = Partitioned(["k"])
    split.add(pl.DataFrame({"k": ["a", "b"]}))
    (partition,) = split.partitions()
    assert not split.spilled
    assert split._spill._path is None
    assert pl.concat(partition.pieces())["k"].to_list() == ["a", "b"]


def write(split: Partitioned, keys: list[str], side: int = 0) -> None:
    for start in range(0, len(keys), 6):
        stop = min(start + 6, len(keys))
        split.add(
            pl.DataFrame({"n": range(start, stop), "k": keys[start:stop]}), side=side
        )


def test_equal_keys_share_a_partition_and_order_is_kept(tiny: None) -> None:
    split = Partitioned(["k"])
    write(split, [f"k{i % 5}" for i in range(40)])
    assert split.spilled
    seen: dict[str, int] = {}
    total = 0
    for number, partition in enumerate(split.partitions()):
        frame = pl.concat(partition.pieces())
        assert frame.height == partition.rows
        total += frame.height
        assert frame["n"].is_sorted()
        for key in frame["k"].unique():
            assert seen.setdefault(key, number) == number
    assert total == 40
    folder = split._spill._path
    assert folder is not None
    assert any(folder.iterdir())
    split.remove()
    assert not folder.exists()


def test_a_partition_larger_than_planned_is_split_again(
    monkeypatch: pytest.MonkeyPatch, tiny: None
) -> None:
    monkeypatch.setattr(spill, "SPILL_PARTS", 2)
    split = Partitioned(["k"])
    keys = [f"k{i}" for i in range(200)]
    write(split, keys)
    write(split, keys[::-1], side=0)
    partitions = list(split.partitions())
    # 400 rows in 2 partitions of about 200: each split again into 20 or so.
    assert len(partitions) > 10
    seen: set[str] = set()
    for partition in partitions:
        assert partition.rows <= 4 * spill.PARTITION_ROWS
        frame = pl.concat(partition.pieces())
        keys_here = set(frame["k"].to_list())
        assert not keys_here & seen
        seen |= keys_here
    assert seen == set(keys)
    split.remove()


def test_the_two_sides_of_a_join_are_partitioned_alike(tiny: None) -> None:
    split = Partitioned(["k"], sides=2)
    write(split, [f"k{i % 9}" for i in range(30)], side=0)
    write(split, [f"k{i % 11}" for i in range(30)], side=1)
    for partition in split.partitions():
        left = {k for piece in partition.pieces(0) for k in piece["k"].to_list()}
        right = {k for piece in partition.pieces(1) for k in piece["k"].to_list()}
        assert all(k in {f"k{i}" for i in range(9)} for k in left)
        for key in right & {f"k{i}" for i in range(9)}:
            assert key in left
    split.remove()


def test_spilled_files_go_with_their_owner(tiny: None) -> None:
    builder = RowTableBuilder({"v": pl.String()})
    builder.add(pl.DataFrame({ROW: range(1, 20), "v": [str(i) for i in range(1, 20)]}))
    table = builder.finish()
    assert table.spilled
    folder = table._spill._path if table._spill is not None else None
    assert folder is not None
    assert folder.is_dir()
    del table, builder
    gc.collect()
    assert not Path(folder).exists()


def test_reduce_pieces_merges_partials_in_order(tiny: None) -> None:
    pieces = [
        pl.DataFrame({"k": ["b", "a", "b"], "v": [1, 2, 3]}),
        pl.DataFrame({"k": ["a", "c"], "v": [4, 5]}),
        pl.DataFrame(
            {"k": ["c", "b", "d", "e", "f", "g", "h", "a"], "v": range(6, 14)}
        ),
    ]
    grouped = reduce_pieces(
        pieces,
        by=["k"],
        partial=[pl.len().cast(pl.Int64).alias("n"), pl.col("v").first()],
        merge=[pl.col("n").sum(), pl.col("v").first()],
    )
    assert grouped is not None
    assert grouped.rows() == [
        ("b", 3, 1),
        ("a", 3, 2),
        ("c", 2, 5),
        ("d", 1, 8),
        ("e", 1, 9),
        ("f", 1, 10),
        ("g", 1, 11),
        ("h", 1, 12),
    ]
    assert reduce_pieces([], by=["k"], partial=[], merge=[]) is None


@pytest.mark.parametrize("rows", [5, 50])
def test_row_table_lookup_in_any_window(tiny: None, rows: int) -> None:
    builder = RowTableBuilder({"v": pl.String()})
    held = [r for r in range(1, rows + 1) if r % 3]
    # Rows come in any order (from hash partitions).
    for start in range(0, len(held), 4):
        part = held[start : start + 4][::-1]
        builder.add(pl.DataFrame({ROW: part, "v": [f"r{r}" for r in part]}))
    table = builder.finish()
    assert table.spilled == (rows > spill.FLUSH_ROWS)
    assert len(table) == len(held)
    assert table.frame()[ROW].to_list() == held
    for first in range(1, rows + 1, 3):
        wanted = pl.Series(range(first, min(first + 9, rows + 1)))
        found = table.lookup(wanted)
        assert found[ROW].to_list() == wanted.to_list()
        assert found["v"].to_list() == [
            f"r{r}" if r % 3 else None for r in wanted.to_list()
        ]


def test_an_empty_row_table_looks_up_nulls_of_its_types() -> None:
    table = RowTable.empty({"v": pl.Int64()})
    found = table.lookup(pl.Series([3, 1]))
    assert found.schema == pl.Schema({ROW: pl.Int64, "v": pl.Int64})
    assert found["v"].to_list() == [None, None]


def test_chunks_keep_order_and_size() -> None:
    query = pl.LazyFrame({"a": range(10)})
    parts = list(chunks(query, rows=4))
    assert pl.concat(parts)["a"].to_list() == list(range(10))
    assert all(p.height <= 4 for p in parts)


def test_a_read_error_is_explained_by_collect(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b\n1,2\n3,4,5\n")
    query = pl.scan_csv(bad)

    class Explained(Exception):
        pass

    def collect(q: pl.LazyFrame) -> pl.DataFrame:
        raise Explained

    with pytest.raises(Explained):
        list(chunks(query, collect))
