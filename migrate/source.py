"""The input (CSV, Parquet or JSON lines), read in batches of text with row numbers.

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

JSON lines files (one object per line; the first line's keys are the columns)
are read in pieces of whole lines the same way. Parquet and JSON numbers become
text here: a float that is a whole number as the whole number (5.0 -> "5"); a
NaN or infinite float has no text, so its cell is null and a companion column
(``cell_problem_col``) says why, which makes the row invalid.

A report of ours given as input (a failures report) is read as the input it
was made from: its input columns under their original names, and in CSV
without the quote the writer put before cells a spreadsheet would run.

Inputs as exports come:

- gzip-compressed CSV or JSON lines (``.csv.gz``, or gzip by its magic bytes
  whatever the name) is decompressed as a stream into the same piece splitter,
  so every check, message and row number is the plain file's and memory stays
  flat; whole-file passes (scan()) read it through the same pieces.
- a folder of Parquet parts (Spark, pandas, polars, dask output) is read part
  after part in name order, numbers in names compared as numbers (part-2
  before part-10), row numbers running across parts. Side files (_SUCCESS,
  _metadata, _common_metadata, .crc, hidden files) are left out; anything else
  that is not Parquet, a subfolder, or parts with other columns is refused.

fingerprint() identifies the input's content for a job file: a file's SHA-256
as given (the compressed bytes of a .gz), a folder's over its parts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar

import polars as pl
from polars.io.plugins import register_io_source

from migrate.errors import ConfigError, SourceError
from migrate.records import REPORT_COLUMNS, REPORT_INPUT_PREFIX, ROW

# The CSV report writer's formula guard, which reading a report undoes: one
# definition of what it escapes.
from migrate.report import _FORMULA_START, _HARMLESS

Format = Literal["csv", "parquet", "jsonl"]
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

_CSV_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
# .json too: the report writer writes JSON lines under that name.
_JSONL_SUFFIXES: Final = frozenset({".jsonl", ".ndjson", ".json"})
_PARQUET_MAGIC: Final = b"PAR1"
_GZIP_MAGIC: Final = b"\x1f\x8b"
# What reading a damaged gzip stream raises (BadGzipFile is also an OSError,
# so these are caught before OSError).
_GZIP_ERRORS: Final = (EOFError, zlib.error, gzip.BadGzipFile)
_GZIP_HINT: Final = "get the file again (gzip -t FILE tests a copy)"
# Files a Parquet writer puts beside its parts: _SUCCESS, _metadata,
# _common_metadata (a Parquet footer with no rows), checksums, hidden files.
_SIDE_FILE_PREFIXES: Final = (".", "_")
_SIDE_FILE_SUFFIXES: Final = (".crc",)
# Spark's folder for a write in progress (or one that failed half-way).
_SPARK_TEMPORARY: Final = "_temporary"
_DIGIT_RUNS: Final = re.compile(r"([0-9]+)")
_HASH_CHUNK: Final = 1 << 20
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
# Bytes read at open to recognise what a file really is.
_SNIFF_BYTES: Final = 64 << 10
# Of those, bytes whose NUL pattern tells UTF-16/32 without a byte-order mark.
_NUL_SAMPLE: Final = 4096
#: Prefix of the companion column a batch carries for a column whose cells may
#: have no text form (floats of Parquet and JSON lines).
CELL_PROBLEM_PREFIX: Final = "__cell_problem:"
# Floats up to this size are exact integers when they have no fraction.
_EXACT_FLOAT_INTEGERS: Final = float(2**53)
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


def cell_problem_col(column: str) -> str:
    """Batch column holding, per row, why ``column``'s cell has no text (or null)."""
    return CELL_PROBLEM_PREFIX + column


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """How to read the input file; ``check`` says what no file can be read with."""

    #: One ASCII character separating CSV fields.
    delimiter: str = ","
    #: Rows per batch yielded by Source.batches().
    batch_size: int = 50_000
    #: None: from the extension (.csv/.tsv/.txt, .parquet/.pq, .jsonl/.ndjson/
    #: .json, each also with .gz), else by content; a folder is Parquet parts.
    format: Format | None = None
    #: Parse the whole CSV file once in open_source, so that a bad row anywhere
    #: in it is reported there rather than when batches() reaches it.
    verify: bool = False

    def __post_init__(self) -> None:
        # Options no file can be read with cannot be built: every command
        # builds them before touching the pool, so each one reports a bad
        # --delimiter the same way (ConfigError, exit 2) and sends nothing.
        self.check()

    def check(self) -> None:
        """Raise ConfigError for options no file can be read with."""
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
        if self.format not in (None, "csv", "parquet", "jsonl"):
            raise ConfigError(
                f"the format must be csv, parquet or jsonl, got {self.format!r}"
            )


@dataclass(frozen=True, kw_only=True)
class _Part:
    """One Parquet file of the input: the file itself, or one part of a folder."""

    path: Path
    #: How messages name it (the folder as given, then the part's name).
    shown: str
    #: The columns read from it, with their types in this part.
    schema: dict[str, pl.DataType]
    rows: int


class Source:
    """An opened input: its columns, and its rows as batches of text.

    Build it with open_source(), which has already checked what is cheap to
    check. Every problem the input can cause is raised as SourceError.
    """

    #: The file, or the folder of Parquet parts, as given.
    path: Path
    format: Format
    columns: list[str]
    #: True for a gzip-compressed file (decompressed as it is read).
    compressed: bool

    def __init__(
        self,
        *,
        path: Path,
        shown: str,
        format: Format,
        columns: list[str],
        options: SourceOptions,
        parts: Sequence[_Part] = (),
        row_count: int | None = None,
        compressed: bool = False,
    ) -> None:
        self.path = path
        self.format = format
        self.columns = columns
        self.compressed = compressed
        # The columns as they are in the file (columns may be a projection).
        self._file_columns = list(columns)
        self.options = options
        self._shown = shown
        self._parts = list(parts)
        # A column that is a float in any part has a cell-problem column in
        # every batch, so that batches of all parts have one schema.
        self._floats = frozenset(
            name
            for part in self._parts
            for name, dtype in part.schema.items()
            if dtype.is_float()
        )
        self._row_count = row_count
        self._projection: dict[str, str] | None = None
        self._unquote = False

    def fingerprint(self) -> str:
        """SHA-256 of the input's content, for the job fingerprint.

        The same as input_fingerprint(path): see there.
        """
        return input_fingerprint(self.path)

    def project(self, names: Mapping[str, str], *, unquote: bool = False) -> None:
        """From now on, yield only these columns, renamed (file name -> name).

        ``unquote``: remove one leading "'" from every value, undoing the CSV
        report writer's formula guard (see migrate.report.csv_safe).
        """
        self._projection = dict(names)
        self._unquote = unquote
        self.columns = list(names.values())

    def _projected(self, frame: FrameT) -> FrameT:
        if self._projection is None:
            return frame
        present = set(frame.collect_schema().names())
        columns: list[pl.Expr] = [pl.col(ROW)]
        for old, new in self._projection.items():
            value = _unquoted(pl.col(old)) if self._unquote else pl.col(old)
            columns.append(value.alias(new))
            if cell_problem_col(old) in present:
                columns.append(
                    pl.col(cell_problem_col(old)).alias(cell_problem_col(new))
                )
        return frame.select(columns)

    def __repr__(self) -> str:
        return (
            f"Source({self._shown!r}, format={self.format!r}, columns={self.columns!r})"
        )

    def batches(self) -> Iterator[pl.DataFrame]:
        """Yield the rows in order, batch_size at a time, as ROW + text columns.

        Float columns of Parquet (and every column of JSON lines) come with
        their ``cell_problem_col``. A bad row deep in a CSV or JSON lines file
        raises SourceError when its piece of the file is reached (unless
        open_source verified the whole file).
        """
        return (
            self._projected(b)
            for b in _rebatch(self._frames(), self.options.batch_size)
        )

    def _frames(self) -> Iterator[pl.DataFrame]:
        if self.format == "parquet":
            return self._parquet_frames()
        if self.format == "jsonl":
            return self._jsonl_frames()
        return self._csv_frames()

    def scan(self) -> pl.LazyFrame:
        """The whole file as a LazyFrame with the schema of batches().

        For whole-file passes over a few columns (projection pushdown). Collect
        it with collect() so that read errors become SourceError. Polars does
        not check fields it is not asked for: batches() is what checks rows.
        """
        return self._projected(self._scan())

    def _scan(self) -> pl.LazyFrame:
        if self.format == "parquet":
            return self._scan_parquet()
        if self.format == "jsonl":
            return _streamed(self._jsonl_frames, self._jsonl_schema())
        if self.compressed:
            # polars' own scan_csv decompresses a whole gzip file in memory
            # in some versions; the pieces are read as a stream in all.
            schema: dict[str, pl.DataType] = {ROW: pl.Int64()}
            return _streamed(self._csv_frames, schema | self._csv_schema())
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
        except SourceError:
            raise
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
        for piece, quoted, first in _pieces(self.path, self._shown, self.compressed):
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
        """Parse and check the whole file once, without keeping any of it."""
        for _ in self._frames():
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

    def _explain(self, exc: BaseException, shown: str | None = None) -> SourceError:
        """The SourceError for a failed scan() query (``shown``: the part at fault)."""
        cause = _first_line(exc)
        if self.format != "parquet" and not isinstance(exc, OSError):
            try:
                self._verify()  # finds the row at fault, if we can
            except SourceError as found:
                return found
        if self.format != "csv" or isinstance(exc, OSError):
            what = {"csv": "CSV", "parquet": "Parquet", "jsonl": "JSON lines"}
            return SourceError(
                f"could not be read as {what[self.format]} ({cause})",
                path=shown or self._shown,
            )
        return SourceError(
            f"could not be read as CSV ({cause}); check the quoting and the delimiter",
            path=self._shown,
        )

    # --- Parquet --------------------------------------------------------------

    def _parquet_frames(self) -> Iterator[pl.DataFrame]:
        """Read each part a slice at a time, as text, with row numbers.

        One slice at a time keeps memory flat: polars' own streaming decodes
        ahead of a slow reader without bound. Slices decode only the pages
        they need, even within one big row group.
        """
        before = 0  # rows of the parts before this one
        for part in self._parts:
            for start in range(0, part.rows, _PARQUET_PIECE_ROWS):
                query = (
                    pl.scan_parquet(part.path, glob=False, hive_partitioning=False)
                    .slice(start, _PARQUET_PIECE_ROWS)
                    .select(self._part_columns(part))
                )
                try:
                    frame = query.collect()
                except (pl.exceptions.PolarsError, OSError) as exc:
                    raise self._explain(exc, part.shown) from None
                frame.insert_column(0, _row_numbers(before + start + 1, frame.height))
                yield frame
            before += part.rows

    def _scan_parquet(self) -> pl.LazyFrame:
        """Every part as text, one after the other, rows numbered across them."""
        scans: list[pl.LazyFrame] = []
        before = 0
        for part in self._parts:
            scans.append(
                pl.scan_parquet(
                    part.path,
                    row_index_name=ROW,
                    row_index_offset=before + 1,
                    glob=False,
                    hive_partitioning=False,
                ).select(pl.col(ROW).cast(pl.Int64), *self._part_columns(part))
            )
            before += part.rows
        return scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")

    def _part_columns(self, part: _Part) -> list[pl.Expr]:
        """A part's columns as text, in the input's order, with the float
        columns' cell problems (null where this part's column is no float).

        Parts of one export may differ in type (pandas writes an integer
        column with a missing value as float64) and in column order; as text
        they line up.
        """
        columns: list[pl.Expr] = []
        for name, dtype in part.schema.items():
            columns.append(_as_text(name, dtype))
            if name in self._floats:
                problem = (
                    _float_problem(pl.col(name))
                    if dtype.is_float()
                    else pl.lit(None, dtype=pl.String)
                )
                columns.append(problem.alias(cell_problem_col(name)))
        return columns

    # --- JSON lines -----------------------------------------------------------

    def _jsonl_read(self) -> list[str]:
        """The keys turned into columns: a report's own columns are not."""
        if self._projection is not None:
            return list(self._projection)
        return self._file_columns

    def _jsonl_schema(self) -> dict[str, pl.DataType]:
        schema: dict[str, pl.DataType] = {ROW: pl.Int64()}
        schema.update(dict.fromkeys(self._jsonl_read(), pl.String()))
        for name in self._jsonl_read():
            schema[cell_problem_col(name)] = pl.String()
        return schema

    def _jsonl_frames(self) -> Iterator[pl.DataFrame]:
        """Parse the file a piece of whole lines at a time; check; number rows."""
        header = self._file_columns
        read = self._jsonl_read()
        first_row = 1
        for piece, first in _line_pieces(self.path, self._shown, self.compressed):
            if first:
                piece = piece.removeprefix(_BOM)
            if not piece:
                continue
            lines = piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
            # Polars skips empty lines, which would shift every row number.
            if _has_empty_line(piece):
                raise self._locate_json(piece, first_row, None)
            try:
                frame = pl.read_ndjson(io.BytesIO(piece), infer_schema_length=None)
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise self._locate_json(piece, first_row, exc) from None
            if frame.height != lines:
                raise self._locate_json(piece, first_row, None)
            extra = [name for name in frame.columns if name not in header]
            if extra:
                raise self._locate_key(piece, first_row, extra[0])
            columns: list[pl.Expr] = []
            for name in read:
                dtype = frame.schema.get(name)
                if dtype is None or dtype == pl.Null:
                    columns.append(pl.lit(None, dtype=pl.String).alias(name))
                    columns.append(
                        pl.lit(None, dtype=pl.String).alias(cell_problem_col(name))
                    )
                    continue
                if dtype.is_nested():
                    at = int(frame.get_column(name).is_not_null().arg_true()[0])
                    raise SourceError(
                        "holds a list or an object; only strings, numbers, "
                        "true/false and null can be migrated",
                        path=self._shown,
                        row=first_row + at,
                        column=name,
                    )
                columns += _text_columns({name: dtype})
                if not dtype.is_float():
                    columns.append(
                        pl.lit(None, dtype=pl.String).alias(cell_problem_col(name))
                    )
            frame = frame.select(columns)
            frame.insert_column(0, _row_numbers(first_row, frame.height))
            first_row += frame.height
            yield frame
        self._row_count = first_row - 1

    def _locate_json(
        self, piece: bytes, first_row: int, exc: BaseException | None
    ) -> SourceError:
        """The SourceError for a JSON lines piece polars could not read."""
        ends = piece.count(b"\n")
        for offset, line in enumerate(piece.split(b"\n")):
            if offset == ends and not line.strip():
                break  # after the last line end
            row = first_row + offset
            if not line.strip():
                return SourceError(
                    "is an empty line; delete it", path=self._shown, row=row
                )
            problem = _json_line_problem(line)
            if problem is not None:
                return SourceError(problem, path=self._shown, row=row)
        cause = _first_line(exc) if exc is not None else "lines were skipped"
        return SourceError(
            f"could not be read as JSON lines ({cause}) from row {first_row}",
            path=self._shown,
        )

    def _locate_key(self, piece: bytes, first_row: int, key: str) -> SourceError:
        for offset, line in enumerate(piece.split(b"\n")):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and key in record:
                return SourceError(
                    f"has the key {key!r}, which the first line does not have; "
                    "every line must have the first line's keys (null for none)",
                    path=self._shown,
                    row=first_row + offset,
                    column=key,
                )
        return SourceError(
            f"has the key {key!r}, which the first line does not have",
            path=self._shown,
        )


def open_source(path: str | Path, options: SourceOptions | None = None) -> Source:
    """Open the input file or folder, checking up front what is cheap to check."""
    options = options or SourceOptions()
    shown = str(path)
    file = Path(path)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise SourceError("file not found; check the path", path=shown) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if stat.S_ISDIR(info.st_mode):
        return _open_folder(file, shown, options)
    if not stat.S_ISREG(info.st_mode):
        # Opening a named pipe with no writer would block forever, and the
        # input is read more than once (checks, then batches).
        raise SourceError(
            f"is {_special_kind(info.st_mode)}, not a regular file; the input is "
            "read more than once, so save it to a file first",
            path=shown,
        )
    try:
        with file.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror}); check the file's permissions",
            path=shown,
        ) from None
    if info.st_size == 0:
        raise SourceError(
            "the file is empty; expected a header row naming the columns", path=shown
        )
    # A file named or said to be Parquet is not looked into: Parquet cannot be
    # read compressed, and _open_parquet names what the file is instead.
    compressed = (
        head.startswith(_GZIP_MAGIC)
        and options.format != "parquet"
        and file.suffix.lower() not in _PARQUET_SUFFIXES
    )
    if compressed:
        # Every check below is of the text inside, as for a plain file.
        head = _gunzipped_head(file, shown)
    format = _resolve_format(file, head, options, compressed=compressed)
    if compressed and head.startswith(_PARQUET_MAGIC):
        raise SourceError(
            "is a gzip-compressed Parquet file; Parquet compresses its own data "
            "and is read only as it is: decompress it (gunzip -k FILE) and give "
            "the .parquet file",
            path=shown,
        )
    if format == "parquet":
        return _open_parquet(file, shown, options)
    if compressed and not head:
        raise SourceError(
            "the file is empty once decompressed; expected a header row naming "
            "the columns",
            path=shown,
        )
    if head.startswith(_PARQUET_MAGIC):
        raise SourceError(
            "looks like a Parquet file (it starts with PAR1), not "
            f"{'JSON lines' if format == 'jsonl' else 'CSV'}; "
            "rename it to .parquet or pass --format parquet",
            path=shown,
        )
    problem = _inner_problem(head) if compressed else _not_text(file, head)
    if problem is not None:
        raise SourceError(problem, path=shown)
    if format == "jsonl":
        return _open_jsonl(file, shown, options, compressed=compressed)
    if b"\r" in head and b"\n" not in head:
        raise SourceError(
            "has old Mac line endings (CR only, no line feeds), so it reads as "
            "one line; convert them, e.g. tr '\\r' '\\n' < FILE > FIXED.csv",
            path=shown,
        )
    return _open_csv(file, shown, options, compressed=compressed)


def input_fingerprint(path: str | Path) -> str:
    """SHA-256 identifying the content of an input, for a job's fingerprint.

    A file: the SHA-256 of its bytes as given (for a .csv.gz, the compressed
    bytes), which is what job files have always recorded, so they still match.
    A folder: the SHA-256 of its data files' names and SHA-256s, in the order
    they are read. Side files (_SUCCESS, .crc, hidden files) do not count:
    a copy of the parts made without them is the same input. Raises OSError
    when a file cannot be read.
    """
    target = Path(path)
    if not target.is_dir():
        return _file_sha256(target)
    digest = hashlib.sha256(b"cognito-migrate folder of parts v1\n")
    for part in _list_folder(target).files:
        # A name cannot hold NUL, and the hex digest has a fixed length: the
        # sequence of (name, digest) pairs is read back unambiguously.
        name = part.name.encode("utf-8", "surrogateescape")
        digest.update(name + b"\0" + _file_sha256(part).encode() + b"\n")
    return digest.hexdigest()


def _file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _gunzipped_head(file: Path, shown: str) -> bytes:
    """The first bytes of what a gzip file holds."""
    try:
        with gzip.open(file, "rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None


def _gzip_error(exc: BaseException, shown: str) -> SourceError:
    """The SourceError for a gzip stream that cannot be decompressed."""
    if isinstance(exc, EOFError):
        what = "ends too early (truncated): was the download or copy cut short?"
    else:
        what = f"damaged ({_first_line(exc)});"
    return SourceError(f"is gzip-compressed but {what} {_GZIP_HINT}", path=shown)


def _inner_problem(head: bytes) -> str | None:
    """Why what a gzip file holds is not UTF-8 text, or None."""
    if head.startswith(_GZIP_MAGIC):
        return (
            "is gzip-compressed, and the file inside is gzip-compressed again; "
            "decompress it twice (gunzip -c FILE | gunzip -c > FILE.csv)"
        )
    problem = _not_text(None, head)
    if problem is None:
        return None
    return f"is gzip-compressed, and the file inside {problem}"


def _open_bytes(file: Path, compressed: bool) -> gzip.GzipFile | io.BufferedReader:
    """The bytes of the file, decompressed as they are read if it is gzip."""
    return gzip.open(file, "rb") if compressed else file.open("rb")


def _streamed(
    frames: Callable[[], Iterator[pl.DataFrame]], schema: dict[str, pl.DataType]
) -> pl.LazyFrame:
    """Frames made by Python as a LazyFrame, made again for each query.

    For what polars cannot scan itself as we read it: JSON lines, and gzip
    CSV as a stream. SourceError raised while making frames reaches collect().
    """

    def source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        left = n_rows
        for frame in frames():
            if with_columns is not None:
                frame = frame.select(with_columns)
            if predicate is not None:
                frame = frame.filter(predicate)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame
            if left is not None and left <= 0:
                return

    return register_io_source(source, schema=schema)


def _report_columns(columns: list[str]) -> dict[str, str] | None:
    """For a report of ours: its input columns (report name -> original name).

    A per-user report starts with REPORT_COLUMNS, then carries the input's
    columns, those whose names clash with a report column written as
    "input:<name>". None when ``columns`` are not a report's.
    """
    count = len(REPORT_COLUMNS)
    if tuple(columns[:count]) != REPORT_COLUMNS:
        return None
    names = {
        column: column.removeprefix(REPORT_INPUT_PREFIX) for column in columns[count:]
    }
    if len(set(names.values())) != len(names):
        return None
    return names


# --- opening ------------------------------------------------------------------


def _resolve_format(
    file: Path, head: bytes, options: SourceOptions, *, compressed: bool
) -> Format:
    """The format given, else from the extension (through a .gz), else by content.

    ``head`` is the start of the text inside when ``compressed``.
    """
    if options.format is not None:
        return options.format
    suffix = file.suffix.lower()
    if suffix == ".gz":
        suffix = Path(file.stem).suffix.lower()
    if suffix in _CSV_SUFFIXES:
        return "csv"
    # Compressed, a .parquet name says nothing: the content decides.
    if suffix in _PARQUET_SUFFIXES and not compressed:
        return "parquet"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    return "jsonl" if head.removeprefix(_BOM).lstrip().startswith(b"{") else "csv"


def _open_csv(
    file: Path, shown: str, options: SourceOptions, *, compressed: bool = False
) -> Source:
    if _is_blank(file, shown, compressed):
        raise SourceError(
            "the file is empty; expected a header row naming the columns", path=shown
        )
    inspector = _Inspector(shown, options.delimiter)
    try:
        with _text(_open_bytes(file, compressed), bom=True) as text:
            records = _Records(text, options.delimiter)
            problem = inspector.header(records)
            if problem is not None:
                raise problem
            result = inspector.rows(
                records, first_row=1, limit=_PREFIX_RECORDS, at_open=True
            )
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
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
        compressed=compressed,
    )
    report = _report_columns(source.columns)
    if report is not None:
        source.project(report, unquote=True)
    if options.verify:
        source._verify()
    return source


def _open_parquet(file: Path, shown: str, options: SourceOptions) -> Source:
    return _parquet_source(file, shown, [_inspect_parquet(file, shown)], options)


def _inspect_parquet(file: Path, shown: str) -> _Part:
    """Check that a file is whole Parquet with columns; read its schema and size."""
    try:
        with file.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            handle.seek(-min(len(_PARQUET_MAGIC), file.stat().st_size), io.SEEK_END)
            tail = handle.read()
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if not head:
        # Only a part can be empty here (open_source refuses an empty file).
        raise SourceError(
            "is empty (0 bytes), not a Parquet file; was it cut short? export it again",
            path=shown,
        )
    if not head.startswith(_PARQUET_MAGIC):
        kind = _binary_kind(file, head)
        raise SourceError(
            f"is not a Parquet file: it {kind}"
            if kind is not None
            else "is not a Parquet file (no PAR1 magic); is it CSV? "
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
    return _Part(path=file, shown=shown, schema=schema, rows=rows)


def _parquet_source(
    path: Path, shown: str, parts: list[_Part], options: SourceOptions
) -> Source:
    """The Source of one Parquet file or of a folder's parts (same columns)."""
    columns = list(parts[0].schema)
    report = _report_columns(columns)
    # Only a report's input columns are read: its own list columns (changed,
    # deleted) have no text form.
    names = list(report) if report is not None else columns
    # Every part's columns in the first part's order, so that their frames
    # can follow one another.
    parts = [
        _Part(
            path=part.path,
            shown=part.shown,
            schema={name: part.schema[name] for name in names},
            rows=part.rows,
        )
        for part in parts
    ]
    for part in parts:
        for name, dtype in part.schema.items():
            reason = _unreadable_type(dtype)
            if reason is not None:
                raise SourceError(reason, path=part.shown, column=name)
    rows = sum(part.rows for part in parts)
    if rows == 0:
        raise SourceError("has columns but no rows; nothing to migrate", path=shown)
    source = Source(
        path=path,
        shown=shown,
        format="parquet",
        columns=names,
        options=options,
        parts=parts,
        row_count=rows,
    )
    if report is not None:
        source.project(report)
    return source


# --- a folder of Parquet parts --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Listing:
    """What a folder holds, side files apart."""

    #: Files that are not side files, in reading order.
    files: list[Path]
    #: Subfolders that are not side files, in name order.
    folders: list[str]
    #: Side files and folders (_SUCCESS, _metadata, .crc, hidden), in name order.
    side: list[str]


def _list_folder(folder: Path) -> _Listing:
    """The entries of a folder, sorted for reading; OSError as raised."""
    files: list[Path] = []
    folders: list[str] = []
    side: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(_SIDE_FILE_PREFIXES) or name.lower().endswith(
                _SIDE_FILE_SUFFIXES
            ):
                side.append(name)
            elif entry.is_dir():
                folders.append(name)
            else:
                files.append(Path(entry.path))
    files.sort(key=lambda file: _reading_order(file.name))
    return _Listing(
        files=files, folders=sorted(folders), side=sorted(side, key=_reading_order)
    )


def _reading_order(name: str) -> tuple[tuple[tuple[int, str], ...], str]:
    """Sort key of part names: by name, numbers in them compared as numbers.

    Writers that do not pad numbers (pyarrow's part-{i}, dask's part.{i}) then
    read in the order they wrote, part-2 before part-10; padded names (Spark's
    part-00002) sort as plain text would. The name itself breaks ties.
    """
    pieces = _DIGIT_RUNS.split(name)
    # split() with a group puts the digit runs at the odd positions.
    key = tuple(
        (int(piece), "") if index % 2 else (-1, piece)
        for index, piece in enumerate(pieces)
    )
    return key, name


def _open_folder(folder: Path, shown: str, options: SourceOptions) -> Source:
    """Open a folder of Parquet parts as one input (see the module docstring)."""
    if options.format not in (None, "parquet"):
        raise SourceError(
            "is a folder; a folder is read only as Parquet parts, not with "
            f"--format {options.format}",
            path=shown,
        )
    try:
        listing = _list_folder(folder)
    except OSError as exc:
        raise SourceError(
            f"cannot be read ({exc.strerror}); check the folder's permissions",
            path=shown,
        ) from None
    if _SPARK_TEMPORARY in listing.side and (folder / _SPARK_TEMPORARY).is_dir():
        raise SourceError(
            f"holds {_SPARK_TEMPORARY}: the job writing it has not finished, or "
            "failed; wait for it or write the export again",
            path=shown,
        )
    if listing.folders:
        name = listing.folders[0]
        raise SourceError(
            f"holds the folder {name!r}: partitioned output (one folder per "
            "column=value) is not read, its column would be lost; write the "
            "export without partitioning"
            if "=" in name
            else f"holds the folder {name!r}; a folder must hold only Parquet "
            "parts (and _SUCCESS, _metadata or .crc files)",
            path=shown,
        )
    parts: list[tuple[Path, str]] = []
    others: list[tuple[Path, str]] = []
    for file in listing.files:
        part_shown = os.path.join(shown, file.name)
        (parts if _is_parquet_part(file, part_shown) else others).append(
            (file, part_shown)
        )
    if not parts:
        if others:
            raise SourceError(
                "holds no Parquet part, only other files such as "
                f"{others[0][0].name}; a folder is read only as Parquet parts: "
                "join the parts into one file (CSV: with one header row) and "
                "give that",
                path=shown,
            )
        if listing.side:
            raise SourceError(
                f"holds no Parquet part, only {_and(listing.side)}; expected "
                "Parquet files such as part-00000.parquet beside them",
                path=shown,
            )
        raise SourceError(
            "is an empty folder; give a CSV or Parquet file, or a folder of "
            "Parquet parts",
            path=shown,
        )
    if others:
        raise SourceError(
            "is not a Parquet file, in a folder of Parquet parts; a folder must "
            "hold only Parquet parts (and _SUCCESS, _metadata or .crc files): "
            "move it out of the folder",
            path=others[0][1],
        )
    inspected = [_inspect_parquet(file, part_shown) for file, part_shown in parts]
    first = inspected[0]
    for part in inspected[1:]:
        if set(part.schema) != set(first.schema):
            missing = [name for name in first.schema if name not in part.schema]
            extra = [name for name in part.schema if name not in first.schema]
            differences = [
                f"{what} {', '.join(map(repr, names))}"
                for what, names in (("missing", missing), ("extra", extra))
                if names
            ]
            raise SourceError(
                f"has other columns than {first.path.name} "
                f"({'; '.join(differences)}); every part must have the same "
                "columns: are two exports mixed in one folder?",
                path=part.shown,
            )
    return _parquet_source(folder, shown, inspected, options)


def _is_parquet_part(file: Path, shown: str) -> bool:
    """True for a Parquet file by its extension or, without one, its magic."""
    try:
        info = file.stat()
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(
            f"is {_special_kind(info.st_mode)}, not a regular file; a folder "
            "must hold only Parquet parts",
            path=shown,
        )
    if file.suffix.lower() in _PARQUET_SUFFIXES:
        return True  # if it is not Parquet, _inspect_parquet says what it is
    try:
        with file.open("rb") as handle:
            return handle.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None


def _and(names: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _open_jsonl(
    file: Path, shown: str, options: SourceOptions, *, compressed: bool = False
) -> Source:
    """Open JSON lines: the first line's keys are the columns, in order."""
    try:
        with _open_bytes(file, compressed) as handle:
            first = handle.readline(_MAX_PIECE_BYTES).removeprefix(_BOM)
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    if not first.strip():
        raise SourceError(
            "the first line is empty; JSON lines input has one object per line, "
            "starting on the first line",
            path=shown,
        )
    if first.lstrip().startswith(b"["):
        raise SourceError(
            "is one JSON array, not JSON lines (one object per line); convert it, "
            "e.g. jq -c '.[]' FILE > FILE.jsonl",
            path=shown,
        )
    problem = _json_line_problem(first)
    if problem is not None:
        if first.strip() == b"{":
            problem += "; is it pretty-printed JSON? write one object per line"
        raise SourceError(problem, path=shown, row=1)
    columns = list(json.loads(first))
    if not columns:
        raise SourceError(
            "the first object has no keys; nothing to migrate", path=shown
        )
    named = _name_problem(columns, shown)
    if named is not None:
        raise named
    source = Source(
        path=file,
        shown=shown,
        format="jsonl",
        columns=columns,
        options=options,
        compressed=compressed,
    )
    report = _report_columns(columns)
    if report is not None:
        source.project(report)
    if options.verify:
        source._verify()
    return source


def _unreadable_type(dtype: pl.DataType) -> str | None:
    """Why a Parquet column cannot be turned into text, or None if it can."""
    if dtype.is_nested():
        return f"is a nested column ({dtype}); flatten it to text before migrating"
    if dtype == pl.Binary:
        return "holds binary data; store it as a string (UTF-8 text) column"
    if dtype == pl.Object or isinstance(dtype, pl.Duration):
        return f"has type {dtype}, which has no text form; store it as a string column"
    return None


def _text_columns(schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Each column as text, plus a ``cell_problem_col`` for each float column."""
    columns: list[pl.Expr] = []
    for name, dtype in schema.items():
        columns.append(_as_text(name, dtype))
        if dtype.is_float():
            columns.append(_float_problem(pl.col(name)).alias(cell_problem_col(name)))
    return columns


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` as text: numbers as polars prints them, times as ISO 8601.

    A float with no fraction is the whole number it holds: a float column is
    often an integer column that had a missing value on its way through
    pandas, and 5.0 there means 5. NaN and infinity have no text (null).
    """
    column = pl.col(name)
    if dtype == pl.String:
        return column
    if dtype.is_float():
        finite = column.is_finite()
        whole = (
            finite & (column == column.floor()) & (column.abs() < _EXACT_FLOAT_INTEGERS)
        )
        return (
            pl.when(whole)
            .then(column.cast(pl.Int64).cast(pl.String))
            .when(finite)
            .then(column.cast(pl.String))
            .alias(name)
        )
    if isinstance(dtype, pl.Datetime):
        zone = "%:z" if dtype.time_zone else ""
        return column.dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}")
    if dtype == pl.Time:
        # A plain cast drops the fraction of a second.
        return column.dt.to_string("%H:%M:%S%.f")
    return column.cast(pl.String)


def _float_problem(column: pl.Expr) -> pl.Expr:
    """Why a float cell has no text: NaN or infinity; null for every other."""
    return (
        pl.when(column.is_nan())
        .then(pl.lit("NaN (not a number)"))
        .when(column.is_infinite() & (column > 0))
        .then(pl.lit("inf (infinity)"))
        .when(column.is_infinite())
        .then(pl.lit("-inf (minus infinity)"))
    )


def _unquoted(value: pl.Expr) -> pl.Expr:
    """A CSV report cell as it was before the writer's formula guard.

    migrate.report puts "'" before a cell that, after its own leading quotes,
    starts like a formula; so one "'" comes off exactly such cells.
    """
    bare = value.str.strip_chars_start("'")
    guarded = (
        value.str.starts_with("'")
        & bare.str.contains(_FORMULA_START)
        & ~bare.str.contains(_HARMLESS)
    )
    return pl.when(guarded).then(value.str.slice(1)).otherwise(value)


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


def _pieces(
    file: Path, shown: str, compressed: bool = False
) -> Iterator[tuple[bytes, bool, bool]]:
    """(piece, holds a quote, is the first) for runs of whole CSV records.

    The first piece starts with the header. A piece never starts with a BOM:
    polars would drop it from the value. A gzip file is decompressed as it is
    read, so only a piece or two of it is ever in memory.
    """
    first = True
    pending = b""
    try:
        with _open_bytes(file, compressed) as handle:
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
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
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


def _line_pieces(
    file: Path, shown: str, compressed: bool = False
) -> Iterator[tuple[bytes, bool]]:
    """(piece, is the first) for runs of whole lines (JSON lines files).

    A JSON string cannot hold a raw line break, so every "\n" ends a record.
    Blank lines at the very end of the file are dropped; others are kept (and
    refused by the reader, as they would shift the row numbers).
    """
    held: bytes | None = None
    first = True
    pending = b""
    try:
        with _open_bytes(file, compressed) as handle:
            while data := handle.read(_PIECE_BYTES):
                buffer = pending + data if pending else data
                cut = buffer.rfind(b"\n") + 1
                if cut == 0 and len(buffer) < _MAX_PIECE_BYTES:
                    pending = buffer  # a line longer than a piece
                    continue
                cut = cut or len(buffer)
                if held is not None:
                    yield held, first
                    first = False
                held = buffer[:cut]
                pending = buffer[cut:]
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
    except OSError as exc:
        raise SourceError(f"could not be read ({exc.strerror})", path=shown) from None
    last = (held or b"") + pending
    stripped = last.rstrip(b" \t\r\n")
    yield (stripped + b"\n" if stripped else b""), first


def _has_empty_line(piece: bytes) -> bool:
    """True if a line of ``piece`` (before its last line end) is empty."""
    return piece.startswith((b"\n", b"\r\n")) or b"\n\n" in piece or b"\n\r\n" in piece


def _json_line_problem(line: bytes) -> str | None:
    """Why one line of a JSON lines file is not a JSON object, or None."""
    try:
        record = json.loads(line)
    except UnicodeDecodeError as exc:
        return f"has the invalid byte 0x{line[exc.start]:02X}; {_UTF8_HINT}"
    except json.JSONDecodeError as exc:
        return (
            f"is not valid JSON ({exc.msg} at character {exc.pos + 1}); "
            "JSON lines input has one complete object per line"
        )
    except ValueError as exc:
        return f"is not valid JSON ({exc})"
    if not isinstance(record, dict):
        return "is not a JSON object; JSON lines input has one object per line"
    return None


# --- what a file really is ----------------------------------------------------

_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Compressed formats: magic bytes, name, how to decompress.
_COMPRESSED: Final = (
    (b"\x1f\x8b", "gzip", "gunzip -k FILE"),
    (b"BZh", "bzip2", "bunzip2 -k FILE"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k FILE"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd FILE"),
)
# Byte-order marks, longest first (UTF-32 LE starts like UTF-16 LE).
_BOMS: Final = (
    (b"\xff\xfe\x00\x00", "UTF-32LE", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32BE", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16LE", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16BE", "UTF-16 (big-endian)"),
)
# Which byte of every 4 is NUL in ASCII text, per encoding without a BOM.
_NUL_PATTERNS: Final = (
    ((False, True, True, True), "UTF-32LE", "UTF-32 (little-endian)"),
    ((True, True, True, False), "UTF-32BE", "UTF-32 (big-endian)"),
    ((False, True, False, True), "UTF-16LE", "UTF-16 (little-endian)"),
    ((True, False, True, False), "UTF-16BE", "UTF-16 (big-endian)"),
)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _not_text(file: Path | None, head: bytes) -> str | None:
    """Why a file given as CSV or JSON lines is not UTF-8 text, or None.

    Named by its magic bytes or its encoding, so that the advice fits: an Excel
    workbook needs exporting, UTF-16 converting, gzip decompressing; none of
    them is helped by the generic "not UTF-8" hint a later check would give.
    ``file`` is None when ``head`` is the start of what a gzip file holds.
    """
    kind = _binary_kind(file, head)
    if kind is not None:
        return kind
    for bom, code, label in _BOMS:
        if head.startswith(bom):
            return (
                f"is {label} text (it starts with a byte-order mark), not UTF-8: "
                f"re-export it as UTF-8, or convert it: iconv -f {code[:6]} -t UTF-8"
            )
    sample = head[:_NUL_SAMPLE]
    sample = sample[: len(sample) - len(sample) % 4]
    if len(sample) < 8 or sample.count(0) * 4 < len(sample):
        return None
    # ASCII text in UTF-16/32 is mostly NUL bytes at fixed places of each unit.
    quarter = len(sample) // 4
    zeros = [sample[i::4].count(0) / quarter for i in range(4)]
    for pattern, code, label in _NUL_PATTERNS:
        if all(
            (share > 0.7) if nul else (share < 0.1)
            for share, nul in zip(zeros, pattern, strict=True)
        ):
            return (
                f"looks like {label} text (every "
                f"{'other' if code.startswith('UTF-16') else 'fourth'} byte is "
                f"text, the rest NUL), not UTF-8: re-export it as UTF-8, or "
                f"convert it: iconv -f {code} -t UTF-8"
            )
    return None


def _binary_kind(file: Path | None, head: bytes) -> str | None:
    """What a binary file is, from its magic bytes, as advice; None if unknown.

    ``file`` is read again to tell a workbook from a ZIP archive; None when the
    bytes are not a file's own (inside a gzip file).
    """
    for magic, name, command in _COMPRESSED:
        if head.startswith(magic):
            return (
                f"is {name}-compressed; decompress it first ({command}) and give "
                "the file inside"
            )
    if head.startswith(_ZIP_MAGIC):
        if file is None:
            return "is a ZIP archive; extract the file from it first (unzip FILE)"
        return _zip_kind(file)
    if head.startswith(_OLE2_MAGIC):
        return (
            "is an Excel 97-2003 workbook (.xls) or another old Office file: open "
            "it and save the sheet as CSV UTF-8 (or export it to Parquet)"
        )
    if head.startswith(b"SQLite format 3\x00"):
        return "is a SQLite database (a job file?), not an input file"
    if head.startswith(b"%PDF-"):
        return "is a PDF document, not a table of users"
    return None


def _zip_kind(file: Path) -> str:
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
            mimetype = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, KeyError):
        names, mimetype = [], b""
    if any(name.startswith("xl/") for name in names):
        return (
            "is an Excel workbook (.xlsx): open it and save the sheet as CSV "
            "UTF-8 (or export it to Parquet)"
        )
    if b"opendocument.spreadsheet" in mimetype:
        return (
            "is an OpenDocument spreadsheet (.ods): open it and save the sheet as "
            "CSV UTF-8 (or export it to Parquet)"
        )
    return "is a ZIP archive; extract the file from it first (unzip FILE)"


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
    handle: gzip.GzipFile | io.BufferedReader | io.BytesIO, *, bom: bool = False
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


def _is_blank(file: Path, shown: str, compressed: bool = False) -> bool:
    """True if the file holds nothing but whitespace (and maybe a BOM)."""
    try:
        with _open_bytes(file, compressed) as handle:
            chunk = handle.read(_READ_CHUNK).removeprefix(_BOM)
            while chunk:
                if chunk.strip():
                    return False
                chunk = handle.read(_READ_CHUNK)
    except _GZIP_ERRORS as exc:
        raise _gzip_error(exc, shown) from None
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", path=shown) from None
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
