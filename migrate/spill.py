"""Whole-file work in bounded memory: hash partitions and row tables spilled to disk.

Three checks need the whole input before the first row is decided (duplicate
users, two users given one alias, the diff's join with a snapshot), and each
ends in a value per input row. Held in memory, both sides grow with the file;
here they do not:

* ``chunks`` reads a query's result a bounded number of rows at a time.
* ``Partitioned`` splits rows by a hash of a key into partitions, each written
  to disk in pieces as the rows come (nothing is written when one partition
  of PARTITION_ROWS is enough). Equal keys always share a partition,
  so a partition can be worked on alone; the hash only chooses the partition,
  and every comparison within it is on the values themselves, so a collision
  costs a little work, never a wrong answer.
* ``reduce_pieces`` aggregates a partition one piece at a time with a partial
  and a merge step, so memory follows the partition's distinct keys, not its
  rows (one key repeated on every row of a file is one group).
* ``RowTable`` holds the per-row result, in memory when small, else in files
  of ``BUCKET_ROWS`` input rows each that are read back as a run asks for its
  rows, in order.

Spilled files hold user data: they go to a private (0700) directory under the
system's temporary directory (``TMPDIR``), removed when their owner is garbage
collected and, whatever happens, at exit (migrate.files).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

import polars as pl

from migrate.files import track_temporary, untrack_temporary
from migrate.records import ROW

Collect = Callable[[pl.LazyFrame], pl.DataFrame]

#: Rows per partition (on average): above this many rows a file is split into
#: partitions on disk. A partition's work holds at most about this many keys.
PARTITION_ROWS: Final = 1_000_000
#: Rows buffered before they are written out as pieces (partitions, buckets).
FLUSH_ROWS: Final = 500_000
#: Partitions rows are split into once they do not fit one: 16 keep up to 32
#: million rows within twice PARTITION_ROWS each without splitting again.
SPILL_PARTS: Final = 16
#: How many times a partition larger than planned is split again.
_MAX_SPLITS: Final = 3
#: Rows read from a query at a time.
CHUNK_ROWS: Final = 200_000
#: Input rows per file of a RowTable on disk; a lookup reads one or two.
BUCKET_ROWS: Final = 250_000
#: Buckets a RowTable keeps read: a dry run decides two batches at once.
CACHED_BUCKETS: Final = 3

#: Partition number column, while rows are split.
_PART: Final = "__part"
#: Bucket number column, while a RowTable is written.
_BUCKET: Final = "__bucket"


def key_hash(columns: Sequence[str], seed: int = 0) -> pl.Expr:
    """The hash that sends a key (one or several columns) to its partition.

    Only a choice of partition: tests replace it with a constant to prove
    that nothing depends on hashes being distinct.
    """
    if len(columns) == 1:
        return pl.col(columns[0]).hash(seed=seed)
    return pl.struct(list(columns)).hash(seed=seed)


def chunks(
    query: pl.LazyFrame, collect: Collect | None = None, rows: int | None = None
) -> Iterator[pl.DataFrame]:
    """The query's result in order, about ``rows`` rows at a time.

    Polars' streaming engine produces the chunks. A read error is passed to
    ``collect`` (Source.collect turns it into the SourceError that names the
    row), which runs the query once more to get it said properly.
    """
    rows = rows or CHUNK_ROWS
    batches = getattr(query, "collect_batches", None)
    if batches is None:  # polars without collect_batches: one frame, sliced
        whole = collect(query) if collect is not None else query.collect()
        for start in range(0, whole.height, rows):
            yield whole.slice(start, rows)
        return
    try:
        yield from batches(chunk_size=rows, maintain_order=True)
    except (pl.exceptions.PolarsError, OSError):
        if collect is not None:
            collect(query)  # raises the error as the source explains it
        raise


T = TypeVar("T")
R = TypeVar("R")

#: Threads of ``ordered_map``: polars releases the GIL, so two keep both cores
#: of a small machine busy.
MAP_THREADS: Final = 2


def ordered_map(
    work: Callable[[T], R], inputs: Iterable[T], threads: int = MAP_THREADS
) -> Iterator[R]:
    """``map(work, inputs)`` on a few threads, in order, a bounded step ahead."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="migrate") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in inputs:
                pending.append(pool.submit(work, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class Spill:
    """A private temporary directory, made on first use; see ``remove``."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._count = itertools.count()
        self._finalizer: weakref.finalize[[Path], Spill] | None = None

    def file(self, stem: str) -> Path:
        """A new file name in the directory."""
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="cognito-migrate-spill-"))
            track_temporary(self._path)
            # Removed with its owner: a long process (tests, a library user)
            # runs many jobs.
            self._finalizer = weakref.finalize(self, _remove_tree, self._path)
        return self._path / f"{stem}-{next(self._count)}.arrow"

    def remove(self) -> None:
        """Remove the directory and everything in it."""
        if self._finalizer is not None:
            self._finalizer()


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    untrack_temporary(path)


def _write(frame: pl.DataFrame, path: Path) -> None:
    # Uncompressed: the files are read back within seconds, from the page cache.
    frame.write_ipc(path, compression="uncompressed")


def _read(path: Path) -> pl.DataFrame:
    return pl.read_ipc(path)


class Partition:
    """One partition of a Partitioned: its rows, a piece at a time, per side."""

    def __init__(
        self, frames: list[list[pl.DataFrame]], files: list[list[Path]], rows: int
    ) -> None:
        self._frames = frames
        self._files = files
        #: Rows in the partition (every side).
        self.rows = rows

    def pieces(self, side: int = 0) -> Iterator[pl.DataFrame]:
        """One side's rows, a piece at a time, in the order they were added."""
        yield from self._frames[side]
        for path in self._files[side]:
            yield _read(path)


class Partitioned:
    """Rows split into partitions by a hash of the ``by`` columns.

    ``add`` frames of one schema per side (a join has two: each partition
    holds both sides' rows of its keys), then read ``partitions()`` (each as
    often as needed) and ``remove`` the files. Up to PARTITION_ROWS rows a
    side stay in memory as one partition. Past that, rows go to SPILL_PARTS partitions
    on disk, FLUSH_ROWS at a time: the number of rows is not known ahead (a
    CSV file is only counted by reading it), so a partition that turns out
    larger than twice PARTITION_ROWS is split again, by another hash, when
    it is read.
    """

    def __init__(self, by: Sequence[str], *, sides: int = 1, seed: int = 0) -> None:
        self.by = list(by)
        self._sides = sides
        self._seed = seed
        self._spill = Spill()
        self._buffer: list[list[pl.DataFrame]] = [[] for _ in range(sides)]
        self._buffered = 0
        self._parts = 0
        #: Per side, per partition: the files of its pieces.
        self._files: list[list[list[Path]]] = []
        self._sizes: list[int] = []
        #: Partitions split again (see _split_again), by number.
        self._children: dict[int, Partitioned] = {}
        #: Rows added.
        self.rows = 0

    @property
    def spilled(self) -> bool:
        """Whether the rows went to disk."""
        return self._parts > 0

    def add(self, frame: pl.DataFrame, side: int = 0) -> None:
        """Add rows; written out in pieces once they no longer fit one partition."""
        if frame.is_empty():
            return
        self._buffer[side].append(frame)
        self._buffered += frame.height
        self.rows += frame.height
        # Up to PARTITION_ROWS rows a side stay in memory: a million-row diff
        # joins in memory, as fast as before partitions.
        limit = FLUSH_ROWS if self._parts else PARTITION_ROWS * self._sides
        if self._buffered > limit:
            self._flush()

    def _start(self, parts: int) -> None:
        self._parts = parts
        self._files = [[[] for _ in range(parts)] for _ in range(self._sides)]
        self._sizes = [0] * parts

    def _flush(self) -> None:
        if not self._buffered:
            return
        if not self._parts:
            self._start(SPILL_PARTS)
        for side, frames in enumerate(self._buffer):
            if not frames:
                continue
            frame = pl.concat(frames, how="vertical", rechunk=False)
            split = frame.with_columns(
                (key_hash(self.by, self._seed) % self._parts)
                .cast(pl.Int64)
                .alias(_PART)
            ).partition_by(_PART, as_dict=True, include_key=False, maintain_order=True)
            for (part,), piece in split.items():
                index = int(part)
                path = self._spill.file(f"s{side}p{index}")
                _write(piece, path)
                self._files[side][index].append(path)
                self._sizes[index] += piece.height
        self._buffer = [[] for _ in range(self._sides)]
        self._buffered = 0

    def partitions(self) -> Iterator[Partition]:
        """Each partition in turn; equal keys are always in the same one."""
        if not self._parts:
            yield Partition(self._buffer, [[] for _ in self._buffer], self._buffered)
            return
        self._flush()
        for part, size in enumerate(self._sizes):
            child = self._children.get(part)
            if child is None and size > 2 * PARTITION_ROWS and self._seed < _MAX_SPLITS:
                child = self._split_again(part)
            if child is not None:
                yield from child.partitions()
            elif size:
                yield Partition(
                    [[] for _ in self._files],
                    [side[part] for side in self._files],
                    size,
                )

    def _split_again(self, part: int) -> Partitioned:
        """Partition ``part``, larger than planned, split by another hash.

        (One key on most rows stays one partition; grouping it is still
        bounded, see reduce_pieces.)
        """
        child = Partitioned(self.by, sides=self._sides, seed=self._seed + 1)
        child._start(max(2, math.ceil(self._sizes[part] / PARTITION_ROWS)))
        for side, files in enumerate(self._files):
            for path in files[part]:
                piece = _read(path)
                child._buffer[side].append(piece)
                child._buffered += piece.height
                if child._buffered > FLUSH_ROWS:
                    child._flush()
                path.unlink()
            files[part] = []
        child._flush()
        self._children[part] = child
        return child

    def remove(self) -> None:
        """Drop every piece (on disk and in memory)."""
        self._buffer = [[] for _ in range(self._sides)]
        self._buffered = 0
        self._files = []
        for child in self._children.values():
            child.remove()
        self._children = {}
        self._spill.remove()


def reduce_pieces(
    pieces: Iterable[pl.DataFrame],
    *,
    by: Sequence[str],
    partial: Sequence[pl.Expr],
    merge: Sequence[pl.Expr],
) -> pl.DataFrame | None:
    """Group ``pieces`` by ``by``: ``partial`` over rows, ``merge`` across partials.

    ``merge`` combines the columns ``partial`` made (a sum of counts, a max
    of maxima, a first of firsts). Pieces are grouped PARTITION_ROWS rows at
    a time, and the partials merged once they add up to as many, so memory
    follows the number of distinct keys, not rows. Order is kept: the first
    piece's groups come first. None when there are no rows.
    """
    keys = list(by)
    merged: pl.DataFrame | None = None
    rows: list[pl.DataFrame] = []
    waiting: list[pl.DataFrame] = []
    size = grouped = 0

    def fold() -> pl.DataFrame:
        frames = ([merged] if merged is not None else []) + waiting
        if len(frames) == 1:
            return frames[0]
        return (
            pl.concat(frames, how="vertical", rechunk=False)
            .group_by(keys, maintain_order=True)
            .agg(merge)
        )

    def group() -> None:
        nonlocal rows, size, grouped, merged, waiting
        frame = pl.concat(rows, how="vertical", rechunk=False)
        rows, size = [], 0
        waiting.append(frame.group_by(keys, maintain_order=True).agg(partial))
        grouped += waiting[-1].height
        if grouped >= PARTITION_ROWS:
            merged, waiting, grouped = fold(), [], 0

    for piece in pieces:
        if piece.is_empty():
            continue
        rows.append(piece)
        size += piece.height
        if size >= PARTITION_ROWS:
            group()
    if rows:
        group()
    if not waiting:
        return merged
    return fold()


class RowTable:
    """Values by input row (ROW plus ``schema``'s columns), for lookups.

    Build one with ``RowTableBuilder``. Rows the table does not hold look up
    as nulls, so a table keeps only the rows that have something to say.
    """

    def __init__(
        self,
        schema: dict[str, pl.DataType],
        *,
        frame: pl.DataFrame | None = None,
        buckets: dict[int, list[Path]] | None = None,
        spill: Spill | None = None,
        height: int = 0,
        bucket_rows: int = 0,
    ) -> None:
        self.schema = {ROW: pl.Int64(), **schema}
        self._bucket_rows = bucket_rows
        self._frame = frame
        self._buckets = buckets or {}
        self._spill = spill
        self._height = frame.height if frame is not None else height
        self._cache: OrderedDict[int, pl.DataFrame] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def empty(cls, schema: dict[str, pl.DataType]) -> RowTable:
        """A table holding no rows."""
        return cls(schema, frame=pl.DataFrame(schema={ROW: pl.Int64, **schema}))

    def __len__(self) -> int:
        """Rows held."""
        return self._height

    @property
    def spilled(self) -> bool:
        """Whether the rows are on disk."""
        return self._frame is None

    def frame(self) -> pl.DataFrame:
        """Every row held, sorted by ROW (for small tables and tests)."""
        if self._frame is not None:
            return self._frame
        parts = [self._bucket(b) for b in sorted(self._buckets)]
        if not parts:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(parts)

    def lookup(self, rows: pl.Series) -> pl.DataFrame:
        """One row per given row number, in order: ROW and the table's columns."""
        wanted = pl.DataFrame({ROW: rows.cast(pl.Int64)})
        window = self._window(rows)
        if window.is_empty():
            return wanted.with_columns(
                pl.lit(None, dtype=dtype).alias(name)
                for name, dtype in self.schema.items()
                if name != ROW
            )
        return wanted.join(window, on=ROW, how="left", maintain_order="left")

    def _window(self, rows: pl.Series) -> pl.DataFrame:
        """The rows held between the smallest and largest of ``rows``."""
        if rows.is_empty() or rows.null_count() == rows.len():
            return pl.DataFrame(schema=self.schema)
        first, last = int(rows.min()), int(rows.max())  # type: ignore[arg-type]
        if self._frame is not None:
            return _between(self._frame, first, last)
        parts = [
            _between(self._bucket(b), first, last)
            for b in range(
                (first - 1) // self._bucket_rows, (last - 1) // self._bucket_rows + 1
            )
            if b in self._buckets
        ]
        if not parts:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(parts)

    def _bucket(self, bucket: int) -> pl.DataFrame:
        # Batches come in row order (two at once in a dry run): keep the last
        # few buckets read.
        with self._lock:
            found = self._cache.get(bucket)
            if found is not None:
                self._cache.move_to_end(bucket)
                return found
            frame = pl.concat([_read(p) for p in self._buckets[bucket]]).sort(ROW)
            self._cache[bucket] = frame
            while len(self._cache) > CACHED_BUCKETS:
                self._cache.popitem(last=False)
            return frame

    def remove(self) -> None:
        """Drop the files (the table is empty afterwards)."""
        self._buckets = {}
        self._cache.clear()
        if self._spill is not None:
            self._spill.remove()


def _between(frame: pl.DataFrame, first: int, last: int) -> pl.DataFrame:
    """The rows of a frame sorted by ROW from ``first`` to ``last``."""
    rows = frame.get_column(ROW)
    start = rows.search_sorted(first, side="left")
    end = rows.search_sorted(last, side="right")
    return frame.slice(start, end - start)


class RowTableBuilder:
    """Collects a RowTable's rows, in any order; see ``finish``."""

    def __init__(
        self, schema: dict[str, pl.DataType], *, flush_rows: int | None = None
    ) -> None:
        self.schema = {ROW: pl.Int64(), **schema}
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._height = 0
        self._spill: Spill | None = None
        self._buckets: dict[int, list[Path]] = {}
        self._bucket_rows = BUCKET_ROWS
        # Rows held before they are written out (FLUSH_ROWS unless given).
        self._flush_rows = flush_rows or FLUSH_ROWS

    def add(self, frame: pl.DataFrame) -> None:
        """Add rows (ROW and the schema's columns); written out past flush_rows."""
        if frame.is_empty():
            return
        self._buffer.append(frame.select(list(self.schema)))
        self._buffered += frame.height
        self._height += frame.height
        if self._buffered >= self._flush_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._spill is None:
            self._spill = Spill()
        frame = pl.concat(self._buffer, how="vertical", rechunk=False)
        self._buffer, self._buffered = [], 0
        split = frame.with_columns(
            ((pl.col(ROW) - 1) // self._bucket_rows).alias(_BUCKET)
        ).partition_by(_BUCKET, as_dict=True, include_key=False)
        for (bucket,), piece in split.items():
            path = self._spill.file(f"b{bucket}")
            _write(piece, path)
            self._buckets.setdefault(int(bucket), []).append(path)

    def finish(self) -> RowTable:
        """The table: in memory if it never grew past flush_rows, else on disk."""
        columns = {k: v for k, v in self.schema.items() if k != ROW}
        if self._spill is None:
            frame = (
                pl.concat(self._buffer).sort(ROW)
                if self._buffer
                else pl.DataFrame(schema=self.schema)
            )
            self._buffer = []
            return RowTable(columns, frame=frame)
        self._flush()
        return RowTable(
            columns,
            buckets=self._buckets,
            spill=self._spill,
            height=self._height,
            bucket_rows=self._bucket_rows,
        )


@contextlib.contextmanager
def partitioned(by: Sequence[str], *, sides: int = 1) -> Iterator[Partitioned]:
    """A Partitioned whose files are removed when the block ends."""
    split = Partitioned(by, sides=sides)
    try:
        yield split
    finally:
        split.remove()
