"""The input file (CSV or Parquet), read in batches of text with row numbers kept.

Every batch holds ``ROW`` (the 1-based data row number, Int64) followed by every
input column as ``pl.String``, values exactly as written.

CSV files are cut into pieces of a few MiB, only between records (at a line end
with an even number of quotes before it), and polars parses each piece. Memory
stays flat however big the file, and every piece can be checked on its own:

- polars raises on a row with too many fields, bad UTF-8 or broken quoting;
- polars pads a row with too few fields with "" silently. Such a row ends in an
  empty last field, so only pieces holding one are checked, by arithmetic: a
  piece whose records all have n fields holds exactly n - 1 separating
  delimiters per record, plus the delimiters inside values.

When a piece fails, Python's csv module re-reads just that piece to name the
row and column at fault. The csv module also checks the header and the first
rows in open_source, so most mistakes are reported before any batch is read.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import polars as pl

from migrate.errors import ConfigError, SourceError
from migrate.records import REPORT_COLUMNS, REPORT_INPUT_PREFIX, ROW

Format = Literal["csv", "parquet"]
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

_CSV_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
_PARQUET_MAGIC: Final = b"PAR1"
_BOM: Final = b"\xef\xbb\xbf"
_QUOTE: Final = '"'
# Delimiters worth suggesting when the header comes out as one column.
_LIKELY_DELIMITERS: Final = (",", ";", "\t", "|")
# Records open_source checks with the csv module before any batch is read.
_PREFIX_RECORDS: Final = 1000
# Bytes polars parses at a time; a piece holds whole records, so it can be longer.
_PIECE_BYTES: Final = 8 << 20
# A piece this long with no line end outside quotes has an unbalanced quote.
_MAX_PIECE_BYTES: Final = 256 << 20
# Rows of a Parquet file read at a time.
_PARQUET_PIECE_ROWS: Final = 100_000
_READ_CHUNK: Final = 1 << 20
_LONE_CR: Final = re.compile(r"\r(?!\n)")
# Stands in for a lone \r while the csv module reads a line: decoding with
# surrogateescape only ever yields \udc80-\udcff, so it cannot clash with data.
_CR_MASK: Final = "\udc0d"
_UTF8_HINT: Final = (
    "the file is not UTF-8: re-export it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
)
_QUOTING_HINT: Final = (
    "enclose the field in double quotes and write the quote twice, "
    'e.g. "O""Neil" for O"Neil'
)


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """How to read the input file."""

    #: One ASCII character separating CSV fields.
    delimiter: str = ","
    #: Rows per batch yielded by Source.batches().
    batch_size: int = 50_000
    #: None: from the extension (.csv/.tsv/.txt, .parquet/.pq), else by content.
    format: Format | None = None
    #: Parse the whole CSV file once in open_source, so that a bad row anywhere
    #: in it is reported there rather than when batches() reaches it.
    verify: bool = False

    def __post_init__(self) -> None:
        delimiter = self.delimiter
        if (
            not isinstance(delimiter, str)
            or len(delimiter) != 1
            or not delimiter.isascii()
            or delimiter in '"\r\n'
        ):
            raise ConfigError(
                "the delimiter must be one ASCII character other than a double "
                f"quote or a line break, got {delimiter!r}"
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(
                f"the batch size must be an integer, got {self.batch_size!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(
                f"the batch size must be at least 1 row, got {self.batch_size}"
            )
        if self.format not in (None, "csv", "parquet"):
            raise ConfigError(f"the format must be csv or parquet, got {self.format!r}")


class Source:
    """An opened input file: its columns, and its rows as batches of text.

    Build it with open_source(), which has already checked what is cheap to
    check. Every problem the file can cause is raised as SourceError.
    """

    path: Path
    format: Format
    columns: list[str]

    def __init__(
        self,
        *,
        path: Path,
        shown: str,
        format: Format,
        columns: list[str],
        options: SourceOptions,
        parquet_schema: dict[str, pl.DataType] | None = None,
        row_count: int | None = None,
    ) -> None:
        self.path = path
        self.format = format
        self.columns = columns
        # The columns as they are in the file (columns may be a projection).
        self._file_columns = list(columns)
        self.options = options
        self._shown = shown
        self._parquet_schema = parquet_schema
        self._row_count = row_count
        self._projection: dict[str, str] | None = None

    def project(self, names: Mapping[str, str]) -> None:
        """From now on, yield only these columns, renamed (file name -> name)."""
        self._projection = dict(names)
        self.columns = list(names.values())

    def _projected(self, frame: FrameT) -> FrameT:
        if self._projection is None:
            return frame
        return frame.select(
            pl.col(ROW), *(pl.col(a).alias(b) for a, b in self._projection.items())
        )

    def __repr__(self) -> str:
        return (
            f"Source({self._shown!r}, format={self.format!r}, columns={self.columns!r})"
        )

    def batches(self) -> Iterator[pl.DataFrame]:
        """Yield the rows in order, batch_size at a time, as ROW + text columns.

        A bad row deep in a CSV file raises SourceError when its piece of the
        file is reached (unless open_source verified the whole file).
        """
        frames = (
            self._parquet_frames() if self.format == "parquet" else self._csv_frames()
        )
        return (self._projected(b) for b in _rebatch(frames, self.options.batch_size))

    def scan(self) -> pl.LazyFrame:
        """The whole file as a LazyFrame with the schema of batches().

        For whole-file passes over a few columns (projection pushdown). Collect
        it with collect() so that read errors become SourceError. Polars does
        not check fields it is not asked for: batches() is what checks rows.
        """
        return self._projected(self._scan())

    def _scan(self) -> pl.LazyFrame:
        if self.format == "parquet":
            schema = self._parquet_schema or {}
            return pl.scan_parquet(
                self.path,
                row_index_name=ROW,
                row_index_offset=1,
                glob=False,
                hive_partitioning=False,
            ).select(
                pl.col(ROW).cast(pl.Int64),
                *(_as_text(name, dtype) for name, dtype in schema.items()),
            )
        return pl.scan_csv(
            self.path,
            # We parsed the header ourselves (BOM, duplicates); polars skips it,
            # honouring quotes, and takes our names by position.
            has_header=False,
            skip_rows=1,
            schema=self._csv_schema(),
            separator=self.options.delimiter,
            quote_char=_QUOTE,
            empty_string_is_null=False,
            row_index_name=ROW,
            row_index_offset=1,
            raise_if_empty=False,
            glob=False,
        ).with_columns(pl.col(ROW).cast(pl.Int64))

    def collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        """Collect a query built on scan(), turning read errors into SourceError."""
        try:
            return query.collect(engine="streaming")
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self._explain(exc) from None

    def count_rows(self) -> int:
        """Number of data rows.

        Parquet: from the file's metadata. CSV: known once the whole file has
        been read (small files at open, verify, or a full batches() pass), else
        counted by a fast polars pass that splits records without parsing
        fields (about 0.05 s per million rows).
        """
        if self._row_count is None:
            counted = self.collect(self.scan().select(pl.len()))
            self._row_count = int(counted.item())
        return self._row_count

    # --- CSV ------------------------------------------------------------------

    def _csv_schema(self) -> dict[str, pl.DataType]:
        return dict.fromkeys(self._file_columns, pl.String())

    def _csv_frames(self) -> Iterator[pl.DataFrame]:
        """Parse the file piece by piece; check each piece; number the rows."""
        delimiter = self.options.delimiter
        width = len(self._file_columns)
        last = self._file_columns[-1]
        schema = self._csv_schema()
        # Delimiters in the header, which shares the first piece with data rows.
        header_delimiters = (
            width - 1 + sum(name.count(delimiter) for name in self._file_columns)
        )
        first_row = 1
        for piece, quoted, first in _pieces(self.path, self._shown):
            try:
                frame = pl.read_csv(
                    piece,
                    has_header=False,
                    skip_rows=1 if first else 0,
                    schema=schema,
                    separator=delimiter,
                    quote_char=_QUOTE,
                    empty_string_is_null=False,
                    raise_if_empty=False,
                )
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise self._locate(piece, first, first_row, exc) from None
            rows = frame.height
            # Polars pads a short row with "", so only a piece with an empty
            # last field can hide one: then the delimiters must add up.
            if width > 1 and rows and (frame[last].str.len_bytes() == 0).any():
                inner = _delimiters_in(frame, delimiter) if quoted else 0
                expected = rows * (width - 1) + inner
                expected += header_delimiters if first else 0
                if piece.count(delimiter.encode()) != expected:
                    raise self._locate(piece, first, first_row, None)
            frame.insert_column(0, _row_numbers(first_row, rows))
            first_row += rows
            yield frame
        self._row_count = first_row - 1

    def _verify(self) -> None:
        """Parse and check the whole CSV file once, without keeping any of it."""
        for _ in self._csv_frames():
            pass

    def _locate(
        self, piece: bytes, first: bool, first_row: int, exc: BaseException | None
    ) -> SourceError:
        """The SourceError for a piece that failed: its bad row if we can find it."""
        inspector = _Inspector(self._shown, self.options.delimiter, self._file_columns)
        with _text(io.BytesIO(piece)) as text:
            records = _Records(text, self.options.delimiter)
            if first:
                records.next()  # the header, checked at open
            result = inspector.rows(records, first_row=first_row, at_open=False)
        if result.problem is not None:
            return result.problem
        cause = _first_line(exc) if exc is not None else "a row has too few fields"
        end = first_row + max(result.rows, 1) - 1
        return SourceError(
            f"could not be read as CSV ({cause}) in rows {first_row} to {end}; "
            "check the quoting and the delimiter",
            path=self._shown,
        )

    def _explain(self, exc: BaseException) -> SourceError:
        """The SourceError for a failed scan() query."""
        cause = _first_line(exc)
        if self.format == "parquet" or isinstance(exc, OSError):
            what = "as Parquet" if self.format == "parquet" else "as CSV"
            return SourceError(f"could not be read {what} ({cause})", path=self._shown)
        try:
            self._verify()  # finds the row at fault, if we can
        except SourceError as found:
            return found
        return SourceError(
            f"could not be read as CSV ({cause}); check the quoting and the delimiter",
            path=self._shown,
        )

    # --- Parquet --------------------------------------------------------------

    def _parquet_frames(self) -> Iterator[pl.DataFrame]:
        """Read the file a slice at a time, as text, with row numbers.

        One slice at a time keeps memory flat: polars' own streaming decodes
        ahead of a slow reader without bound. Slices decode only the pages
        they need, even within one big row group.
        """
        schema = self._parquet_schema or {}
        total = self.count_rows()
        for start in range(0, total, _PARQUET_PIECE_ROWS):
            query = (
                pl.scan_parquet(self.path, glob=False, hive_partitioning=False)
                .slice(start, _PARQUET_PIECE_ROWS)
                .select(_as_text(name, dtype) for name, dtype in schema.items())
            )
            try:
                frame = query.collect()
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise self._explain(exc) from None
            frame.insert_column(0, _row_numbers(start + 1, frame.height))
            yield frame


def open_source(path: str | Path, options: SourceOptions | None = None) -> Source:
    """Open the input file, checking up front everything that is cheap to check."""
    options = options or SourceOptions()
    shown = str(path)
    file = Path(path)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise SourceError("file not found; check the path", path=shown) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if file.is_dir():
        raise SourceError(
            "is a directory; give the path of a CSV or Parquet file", path=shown
        )
    try:
        with file.open("rb") as handle:
            head = handle.read(len(_PARQUET_MAGIC))
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror}); check the file's permissions",
            path=shown,
        ) from None
    if size == 0:
        raise SourceError(
            "the file is empty; expected a header row naming the columns", path=shown
        )
    if _resolve_format(file, head, options) == "parquet":
        return _as_input(_open_parquet(file, shown, options))
    if head == _PARQUET_MAGIC:
        raise SourceError(
            "looks like a Parquet file (it starts with PAR1), not CSV; "
            "rename it to .parquet or pass --format parquet",
            path=shown,
        )
    return _as_input(_open_csv(file, shown, options))


def _as_input(source: Source) -> Source:
    """Read a report of ours as the input it was made from.

    A per-user report carries the input's columns after its own, with those
    whose names clash with a report column written as "input:<name>". Such a
    file (typically a failures-only report) is read as those input columns,
    under their original names, so it is valid input for the same mapping.
    """
    if not set(REPORT_COLUMNS) <= set(source.columns):
        return source
    names: dict[str, str] = {}
    for column in source.columns[len(REPORT_COLUMNS) :]:
        original = column.removeprefix(REPORT_INPUT_PREFIX)
        names[column] = original
    if len(set(names.values())) != len(names):
        return source
    source.project(names)
    return source


# --- opening ------------------------------------------------------------------


def _resolve_format(file: Path, head: bytes, options: SourceOptions) -> Format:
    if options.format is not None:
        return options.format
    suffix = file.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    return "parquet" if head == _PARQUET_MAGIC else "csv"


def _open_csv(file: Path, shown: str, options: SourceOptions) -> Source:
    if _is_blank(file, shown):
        raise SourceError(
            "the file is empty; expected a header row naming the columns", path=shown
        )
    inspector = _Inspector(shown, options.delimiter)
    try:
        with _text(file.open("rb"), bom=True) as text:
            records = _Records(text, options.delimiter)
            problem = inspector.header(records)
            if problem is not None:
                raise problem
            result = inspector.rows(
                records, first_row=1, limit=_PREFIX_RECORDS, at_open=True
            )
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if result.problem is not None:
        raise result.problem
    source = Source(
        path=file,
        shown=shown,
        format="csv",
        columns=inspector.columns,
        options=options,
        row_count=result.rows if result.complete else None,
    )
    if options.verify:
        source._verify()
    return source


def _open_parquet(file: Path, shown: str, options: SourceOptions) -> Source:
    try:
        with file.open("rb") as handle:
            head = handle.read(len(_PARQUET_MAGIC))
            handle.seek(-min(len(_PARQUET_MAGIC), file.stat().st_size), io.SEEK_END)
            tail = handle.read()
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if head != _PARQUET_MAGIC:
        raise SourceError(
            "is not a Parquet file (no PAR1 magic); is it CSV? "
            "rename it to .csv or pass --format csv",
            path=shown,
        )
    if tail != _PARQUET_MAGIC:
        raise SourceError(
            "is not a complete Parquet file (no PAR1 magic at the end); "
            "was it cut short? export it again",
            path=shown,
        )
    try:
        schema = dict(pl.read_parquet_schema(file))
        rows = int(
            pl.scan_parquet(file, glob=False, hive_partitioning=False)
            .select(pl.len())
            .collect()
            .item()
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(
            f"could not be read as Parquet ({_first_line(exc)}); is the file complete?",
            path=shown,
        ) from None
    if not schema:
        raise SourceError("has no columns; nothing to migrate", path=shown)
    problem = _name_problem(list(schema), shown)
    if problem is not None:
        raise problem
    for name, dtype in schema.items():
        reason = _unreadable_type(dtype)
        if reason is not None:
            raise SourceError(reason, path=shown, column=name)
    if rows == 0:
        raise SourceError("has columns but no rows; nothing to migrate", path=shown)
    return Source(
        path=file,
        shown=shown,
        format="parquet",
        columns=list(schema),
        options=options,
        parquet_schema=schema,
        row_count=rows,
    )


def _unreadable_type(dtype: pl.DataType) -> str | None:
    """Why a Parquet column cannot be turned into text, or None if it can."""
    if dtype.is_nested():
        return f"is a nested column ({dtype}); flatten it to text before migrating"
    if dtype == pl.Binary:
        return "holds binary data; store it as a string (UTF-8 text) column"
    if dtype == pl.Object or isinstance(dtype, pl.Duration):
        return f"has type {dtype}, which has no text form; store it as a string column"
    return None


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` as text: numbers as polars prints them, times as ISO 8601."""
    column = pl.col(name)
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.Datetime):
        zone = "%:z" if dtype.time_zone else ""
        return column.dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}")
    if dtype == pl.Time:
        # A plain cast drops the fraction of a second.
        return column.dt.to_string("%H:%M:%S%.f")
    return column.cast(pl.String)


def _name_problem(names: list[str], shown: str) -> SourceError | None:
    """What is wrong with these column names: empty, repeated, clashing; or None."""
    empty = [str(i) for i, name in enumerate(names, start=1) if not name.strip()]
    if empty:
        which = (
            f"column {empty[0]}" if len(empty) == 1 else f"columns {', '.join(empty)}"
        )
        plural = "an empty column name" if len(empty) == 1 else "empty column names"
        return SourceError(
            f"the header has {plural} ({which}); give every column a name",
            path=shown,
        )
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(i)
    repeated = [
        f"{name!r} (columns {', '.join(map(str, where))})"
        for name, where in positions.items()
        if len(where) > 1
    ]
    if repeated:
        return SourceError(
            f"the header has duplicate column names: {'; '.join(repeated)}; "
            "rename them so that every column name is unique",
            path=shown,
        )
    if ROW in positions:
        return SourceError(
            f"the column name {ROW!r} is reserved for row numbers; rename the column",
            path=shown,
        )
    return None


# --- cutting a CSV file into pieces -------------------------------------------


def _pieces(file: Path, shown: str) -> Iterator[tuple[bytes, bool, bool]]:
    """(piece, holds a quote, is the first) for runs of whole CSV records.

    The first piece starts with the header. A piece never starts with a BOM:
    polars would drop it from the value.
    """
    first = True
    pending = b""
    try:
        with file.open("rb") as handle:
            while data := handle.read(_PIECE_BYTES):
                buffer = pending + data if pending else data
                cut, quotes = _last_record_end(buffer)
                if cut == 0 and len(buffer) < _MAX_PIECE_BYTES:
                    pending = buffer  # a record longer than a piece
                    continue
                if cut == 0:
                    cut = len(buffer)  # no line end outside quotes: let polars say
                yield buffer[:cut], quotes > 0, first
                first = False
                pending = buffer[cut:]
    except OSError as exc:
        raise SourceError(f"could not be read ({exc.strerror})", path=shown) from None
    if pending:
        yield pending, _QUOTE.encode() in pending, first


def _last_record_end(buffer: bytes) -> tuple[int, int]:
    """(offset just past the last record end, quotes before it); (0, n) if none.

    A line end ends a record when an even number of quotes come before it. The
    bytes after the cut must be in the buffer, to see that they are not a BOM.
    """
    quote = _QUOTE.encode()
    total = buffer.count(quote)
    end = len(buffer) - len(_BOM)
    while (end := buffer.rfind(b"\n", 0, end)) != -1:
        before = total - buffer.count(quote, end)
        if before % 2 == 0 and not buffer.startswith(_BOM, end + 1):
            return end + 1, before
    return 0, total


def _rebatch(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Regroup frames into batches of exactly ``size`` rows (the last may be short)."""
    held: list[pl.DataFrame] = []
    count = 0
    for frame in frames:
        start = 0
        while start < frame.height:
            take = min(size - count, frame.height - start)
            held.append(frame.slice(start, take))
            count += take
            start += take
            if count == size:
                yield held[0] if len(held) == 1 else pl.concat(held)
                held = []
                count = 0
    if held:
        yield held[0] if len(held) == 1 else pl.concat(held)


def _row_numbers(first: int, count: int) -> pl.Series:
    return pl.int_range(first, first + count, dtype=pl.Int64, eager=True).alias(ROW)


def _delimiters_in(frame: pl.DataFrame, delimiter: str) -> int:
    """How many delimiters the values of a frame hold."""
    total = frame.select(
        pl.sum_horizontal(
            pl.all().str.count_matches(delimiter, literal=True).cast(pl.Int64)
        ).sum()
    ).item()
    return int(total or 0)


# --- the csv module side ------------------------------------------------------


def _text(
    handle: io.BufferedReader | io.BytesIO, *, bom: bool = False
) -> io.TextIOWrapper:
    """Text for the csv module: bad bytes kept (as surrogates), lines split at \\n."""
    return io.TextIOWrapper(
        handle,
        encoding="utf-8-sig" if bom else "utf-8",
        errors="surrogateescape",
        newline="\n",
    )


class _Records:
    """CSV records as the csv module reads them, split where polars splits them."""

    def __init__(self, text: io.TextIOWrapper, delimiter: str) -> None:
        self._raw: list[str] = []
        self._masked = False
        self._reader = csv.reader(
            self._lines(text),
            delimiter=delimiter,
            quotechar=_QUOTE,
            doublequote=True,
            strict=True,
        )

    def _lines(self, text: io.TextIOWrapper) -> Iterator[str]:
        for line in text:
            self._raw.append(line)
            if "\r" in line:
                # Polars ends a record only at \n and keeps a lone \r as data; the
                # csv module would end the record there, so it must not see one.
                masked = _LONE_CR.sub(_CR_MASK, line)
                self._masked = self._masked or masked != line
                line = masked
            yield line

    def next(self) -> tuple[list[str], str] | None:
        """The next record and its raw text, None at the end; may raise csv.Error."""
        self._raw.clear()
        self._masked = False
        try:
            fields = next(self._reader)
        except StopIteration:
            return None
        if self._masked:
            fields = [field.replace(_CR_MASK, "\r") for field in fields]
        return fields, "".join(self._raw)


@dataclass(frozen=True, kw_only=True)
class _Rows:
    """What a csv-module pass over data records found."""

    problem: SourceError | None
    #: Records read (empty lines included).
    rows: int
    #: True if the pass reached the end of the text.
    complete: bool


class _Inspector:
    """Checks CSV records read by the csv module, naming the row at fault."""

    def __init__(
        self, shown: str, delimiter: str, columns: list[str] | None = None
    ) -> None:
        self._shown = shown
        self._delimiter = delimiter
        self.columns = columns or []

    def _error(
        self, message: str, row: int | None = None, column: str | None = None
    ) -> SourceError:
        return SourceError(message, path=self._shown, row=row, column=column)

    def header(self, records: _Records) -> SourceError | None:
        """Read and check the header; on success it becomes ``columns``."""
        try:
            record = records.next()
        except csv.Error as exc:
            return self._error(
                f"the header row is not valid CSV ({exc}); check the quoting"
            )
        if record is None:
            return self._error(
                "the file is empty; expected a header row naming the columns"
            )
        fields, raw = record
        if not fields:
            return self._error(
                "the first line is empty; it must be the header row naming the columns"
            )
        for position, name in enumerate(fields, start=1):
            byte = _invalid_byte(name)
            if byte is not None:
                return self._error(
                    f"the header row has the invalid byte {byte} in column {position}; "
                    + _UTF8_HINT
                )
        if raw.count(_QUOTE) % 2:
            return self._error(
                f'the header row has a stray double quote ("); {_QUOTING_HINT}'
            )
        if len(fields) == 1:
            guess = _guess_delimiter(fields[0], self._delimiter)
            if guess is not None:
                label, how = guess
                return self._error(
                    f"the header has a single column {fields[0]!r}; the file looks "
                    f"{label}-separated: pass --delimiter {how}"
                )
        problem = _name_problem(fields, self._shown)
        if problem is None:
            self.columns = fields
        return problem

    def rows(
        self,
        records: _Records,
        *,
        first_row: int,
        limit: int | None = None,
        at_open: bool,
    ) -> _Rows:
        """Check up to ``limit`` data records; the first problem found.

        ``at_open``: the start of the file, checked before polars reads it. A
        header followed only by empty lines has "no data rows" then; and a
        field over the csv module's size limit just ends the check (polars reads
        such fields; only a hunt for a known error should blame them).
        """
        width = len(self.columns)
        rows = 0
        has_data = False
        # An empty line is reported once a real row follows it, or at the end.
        empty: SourceError | None = None
        while limit is None or rows < limit:
            row = first_row + rows
            try:
                record = records.next()
            except csv.Error as exc:
                if at_open and "field limit" in str(exc):
                    return _Rows(problem=empty, rows=rows, complete=False)
                broken = empty or self._bad_csv(exc, row)
                return _Rows(problem=broken, rows=rows, complete=False)
            if record is None:
                break
            rows += 1
            fields, raw = record
            if not fields:
                if width > 1 and empty is None:
                    empty = self._error(
                        f"is an empty line but the header has {width} columns; "
                        "delete the line",
                        row,
                    )
                continue
            problem = empty or self._check(fields, raw, row)
            if problem is not None:
                return _Rows(problem=problem, rows=rows, complete=False)
            has_data = True
        else:
            return _Rows(problem=None, rows=rows, complete=False)
        if at_open and not has_data:
            empty = self._error("has a header but no data rows; nothing to migrate")
        return _Rows(problem=empty, rows=rows, complete=True)

    def _check(self, fields: list[str], raw: str, row: int) -> SourceError | None:
        width = len(self.columns)
        if len(fields) != width:
            noun = "field" if len(fields) == 1 else "fields"
            return self._error(
                f"has {len(fields)} {noun} but the header has {width}; "
                "check the quoting or the delimiter",
                row,
            )
        if not raw.isascii():
            for name, value in zip(self.columns, fields, strict=True):
                byte = _invalid_byte(value)
                if byte is not None:
                    return self._error(f"invalid byte {byte}; {_UTF8_HINT}", row, name)
        if raw.count(_QUOTE) % 2:
            column = next(
                (
                    name
                    for name, value in zip(self.columns, fields, strict=True)
                    if _QUOTE in value and _quoted(value) not in raw
                ),
                None,
            )
            return self._error(
                f'has a stray double quote (") in a field that is not quoted; '
                f"{_QUOTING_HINT}",
                row,
                column,
            )
        return None

    def _bad_csv(self, exc: csv.Error, row: int) -> SourceError:
        text = str(exc)
        if "unexpected end of data" in text:
            message = "opens a quoted field that is never closed; check the quoting"
        elif "expected after" in text:
            message = (
                "has text after the closing quote of a field; "
                "quote the whole field and write any quote inside it twice"
            )
        elif "field limit" in text:
            message = (
                f"has a field longer than {csv.field_size_limit()} characters; "
                "is a quote never closed?"
            )
        else:
            message = f"is not valid CSV ({text}); check the quoting"
        return self._error(message, row)


# --- small helpers ------------------------------------------------------------


def _guess_delimiter(name: str, delimiter: str) -> tuple[str, str] | None:
    """(label, how to pass it) of the delimiter a one-column header seems to use."""
    counts = {d: name.count(d) for d in _LIKELY_DELIMITERS if d != delimiter}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        return None
    if best == "\t":
        return "tab", "'\\t'"
    return f"'{best}'", f"'{best}'"


def _invalid_byte(value: str) -> str | None:
    """The first byte that was not UTF-8 (decoded with surrogateescape), as 0xAB."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"0x{ord(value[exc.start]) - 0xDC00:02X}"
    return None


def _quoted(value: str) -> str:
    return _QUOTE + value.replace(_QUOTE, _QUOTE * 2) + _QUOTE


def _is_blank(file: Path, shown: str) -> bool:
    """True if the file holds nothing but whitespace (and maybe a BOM)."""
    try:
        with file.open("rb") as handle:
            chunk = handle.read(_READ_CHUNK).removeprefix(_BOM)
            while chunk:
                if chunk.strip():
                    return False
                chunk = handle.read(_READ_CHUNK)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
