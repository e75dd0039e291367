"""Per-user report files (CSV, Parquet, JSON lines) and the run summary.

The report has one row per input row: the columns in ``REPORT_COLUMNS``, then the
input columns the caller names (never the token column), so that a report
filtered to failures is valid input for a new run with the same mapping.

Reports hold personal data, so every file is created readable by its owner only
(mode 0o600) and reaches its final name by an atomic ``os.replace``: a crash
never leaves a half-written report there, nor destroys the previous one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

import polars as pl

from migrate.errors import ConfigError
from migrate.files import AtomicFile, read_head, track_temporary, untrack_temporary
from migrate.records import (
    OK_STATUSES,
    OUTCOME_COLUMNS,
    REPORT_COLUMNS,
    REPORT_INPUT_PREFIX,
    ROW,
    ColumnKind,
    Outcome,
    Status,
)

ReportFormat = Literal["csv", "parquet", "jsonl"]

_EXTENSIONS: dict[str, ReportFormat] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

#: The polars type of each kind of outcome column (records.OUTCOME_COLUMNS).
POLARS_TYPES: dict[ColumnKind, pl.DataType] = {
    "int": pl.Int64(),
    "text": pl.String(),
    "names": pl.List(pl.String()),
    "real": pl.Float64(),
    "json": pl.String(),
}

#: Types of the report's own columns; input columns are all ``pl.String``.
REPORT_SCHEMA: dict[str, pl.DataType] = {
    name: POLARS_TYPES[kind] for name, kind in OUTCOME_COLUMNS.items()
}

#: Separator of the ``changed`` and ``deleted`` attribute names in a CSV report.
CSV_LIST_SEPARATOR = ";"

#: Prefix given to an input column whose name is also a report column's name.
INPUT_PREFIX = REPORT_INPUT_PREFIX

#: A job's report: each changed attribute's value before and after the job
#: (structs in Parquet/JSON lines; ``before:NAME`` and ``after:NAME`` in CSV).
VALUE_COLUMNS: tuple[str, ...] = ("before", "after")

# A spreadsheet runs a cell starting with one of these as a formula (CSV
# injection, OWASP). Cells made only of digits, spaces and ()+-. cannot call
# anything, and phone numbers and negative numbers must round-trip unchanged.
_FORMULA_START = r"^[=+\-@\t\r]"
_HARMLESS = r"^[+-]?[0-9 ().+-]*$"

# Parquet cannot be appended to, so batches go to part files; buffering small
# batches up to this many rows keeps the part count (and memory) bounded.
_PART_ROWS = 100_000


def report_format(path: str | Path) -> ReportFormat:
    """The report format chosen by the file extension of ``path``."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        # .json is refused: a file of JSON lines is not the JSON document
        # that name promises, and a .json next to a job is often its schema.
        raise ConfigError(
            f"report file {str(path)!r}: unknown extension; use .csv, .parquet "
            "(.pq) or .jsonl (.ndjson, JSON lines)"
        ) from None


def is_report_file(path: Path) -> bool:
    """Whether ``path`` holds a report this tool wrote (by its leading columns)."""
    head = read_head(path)
    columns: list[str] = []
    if head.startswith(b"PAR1"):
        try:
            columns = list(pl.read_parquet_schema(path))
        except (OSError, pl.exceptions.PolarsError):
            return False
    elif head.startswith(b"{"):
        line = head.split(b"\n", 1)[0]
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            columns = list(record) if isinstance(record, dict) else []
    else:
        line = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0]
        columns = line.decode("utf-8", "replace").rstrip("\r").split(",")
    return tuple(columns[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS


def report_input_names(input_columns: Sequence[str]) -> list[str]:
    """Report column names of the input columns, in order.

    An input column keeps its name unless that name is already taken by a report
    column (or by an earlier input column): then it is written as
    ``"input:<name>"`` (prefixed again until unique). Such a column does not keep
    its original name in the report, so a failures-only report is not valid
    input for the same mapping if the mapping reads that column.
    """
    if len(set(input_columns)) != len(input_columns):
        raise ValueError(f"duplicate input column names: {list(input_columns)}")
    own = {*REPORT_COLUMNS, *VALUE_COLUMNS}
    # A CSV report's value columns (``before:NAME``), when a report is the input.
    values = tuple(f"{name}:" for name in VALUE_COLUMNS)
    taken = own | set(input_columns)
    names: list[str] = []
    for column in input_columns:
        name = column
        if name in own or name.startswith(values):
            name = INPUT_PREFIX + name
            while name in taken:
                name = INPUT_PREFIX + name
            taken.add(name)
        names.append(name)
    return names


def report_schema(
    input_columns: Sequence[str] = (), value_attributes: Sequence[str] = ()
) -> pl.Schema:
    """Column names and types of a report carrying ``input_columns``, and the
    before and after values of ``value_attributes`` (when there are any)."""
    schema: dict[str, pl.DataType] = dict(REPORT_SCHEMA)
    if value_attributes:
        values = values_type(value_attributes)
        schema.update(dict.fromkeys(VALUE_COLUMNS, values))
    for name in report_input_names(input_columns):
        schema[name] = pl.String()
    return pl.Schema(schema)


def values_type(attributes: Sequence[str]) -> pl.Struct:
    """The type of a report's ``before`` and ``after``: a text field per attribute."""
    return pl.Struct({name: pl.String() for name in attributes})


def empty_report_frame(input_columns: Sequence[str] = ()) -> pl.DataFrame:
    """A report frame with no rows and the full schema."""
    return pl.DataFrame(schema=report_schema(input_columns))


def outcomes_to_frame(
    outcomes: Sequence[Outcome],
    inputs: pl.DataFrame | None = None,
    *,
    input_columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """A report frame from outcomes, with the input cells of the same rows.

    ``inputs`` is a source batch (``ROW`` plus the input columns); its cells are
    matched to outcomes by row number, and outcomes keep their order. Without
    ``input_columns`` every column of ``inputs`` but ``ROW`` is carried: leave the
    token column out of ``inputs`` or of ``input_columns``.
    """
    if input_columns is None:
        input_columns = (
            [] if inputs is None else [c for c in inputs.columns if c != ROW]
        )
    frame = pl.DataFrame(
        {
            name: [_cell(getattr(o, name), kind) for o in outcomes]
            for name, kind in OUTCOME_COLUMNS.items()
        },
        schema=REPORT_SCHEMA,
    )
    names = report_input_names(input_columns)
    if inputs is None:
        return frame.with_columns(
            pl.lit(None, dtype=pl.String).alias(name) for name in names
        )
    right = inputs.select(
        pl.col(ROW).cast(pl.Int64).alias("row"),
        *(
            pl.col(column).cast(pl.String).alias(name)
            for column, name in zip(input_columns, names, strict=True)
        ),
    )
    return frame.join(
        right, on="row", how="left", validate="m:1", maintain_order="left"
    )


def _cell(value: object, kind: ColumnKind) -> object:
    """An Outcome field as a report cell: names as a list, a status as text."""
    if kind == "names":
        return list(value)  # type: ignore[call-overload]
    return value.value if isinstance(value, Status) else value


def _escape_formula(expr: pl.Expr) -> pl.Expr:
    """Prefix cells a spreadsheet would run as a formula with a single quote.

    Leading quotes are looked through, so "'=x" gets one as well as "=x": then
    reading the report back (migrate.source) removes one quote exactly where
    this added one, and every value comes back as it was, a formula included
    (which the checks then refuse).
    """
    bare = expr.str.strip_chars_start("'")
    dangerous = bare.str.contains(_FORMULA_START) & ~bare.str.contains(_HARMLESS)
    return pl.when(dangerous).then(pl.lit("'") + expr).otherwise(expr)


#: Report columns this package fills with its own text (statuses, codes,
#: timestamps), which never starts like a formula.
_OWN_TEXT = frozenset({"status", "error_code", "finished_at"})


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame as written to CSV: lists joined with ";", a struct's fields as
    columns of their own (``before:NAME``), formula cells escaped."""
    frame = frame.with_columns(
        pl.col(name).list.join(CSV_LIST_SEPARATOR)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.List)
    )
    if any(isinstance(dtype, pl.Struct) for dtype in frame.schema.values()):
        frame = frame.select(
            column
            for name, dtype in frame.schema.items()
            for column in (
                [
                    pl.col(name).struct.field(item.name).alias(f"{name}:{item.name}")
                    for item in dtype.fields
                ]
                if isinstance(dtype, pl.Struct)
                else [pl.col(name)]
            )
        )
    strings = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.String and name not in _OWN_TEXT
    ]
    # Most columns hold no cell that even starts like a formula (or a quote,
    # which may hide one); skipping them halves the cost of writing a CSV report.
    starts = frame.select(pl.col(strings).str.contains(r"^[=+\-@\t\r']").any())
    risky = [name for name in strings if starts[name].item()]
    return frame.with_columns(
        _escape_formula(pl.col(name)).alias(name) for name in risky
    )


class ReportWriter:
    """Writes report frames batch by batch to a CSV, Parquet or JSON lines file.

    The format comes from the extension (see ``report_format``). In CSV the
    ``changed`` and ``deleted`` lists are joined with ";" and cells that would
    run as spreadsheet formulas get a leading "'"; Parquet and JSON lines keep
    lists and raw values. Memory does not grow with the rows written.

    Nothing appears under ``path`` until ``close``; leaving the ``with`` block by
    an exception discards the file and keeps any previous report.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        input_columns: Sequence[str] = (),
        value_attributes: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.format: ReportFormat = report_format(self.path)
        self.schema = report_schema(input_columns, value_attributes)
        if self.path.is_dir():
            raise ConfigError(f"report file {str(path)!r}: is a directory")
        directory = self.path.parent
        self._target = AtomicFile(self.path, what="report file")
        self._file: IO[bytes] | None = self._target.handle
        self._rows = 0
        self._batches = 0
        self._parts_dir: Path | None = None
        self._parts: list[Path] = []
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        if self.format == "parquet":
            try:
                # mkdtemp makes the directory 0o700: part files stay private.
                self._parts_dir = Path(
                    tempfile.mkdtemp(
                        dir=directory, prefix=f".{self.path.name}.", suffix=".parts"
                    )
                )
                track_temporary(self._parts_dir)
            except OSError:
                self.abort()
                raise

    @property
    def rows(self) -> int:
        """Number of rows written so far."""
        return self._rows

    def write(self, frame: pl.DataFrame) -> None:
        """Append one batch of report rows (REPORT_COLUMNS + input columns)."""
        if self._file is None:
            raise ValueError("report writer is closed")
        missing = [name for name in self.schema if name not in frame.columns]
        if missing:
            raise ValueError(f"report frame lacks columns: {missing}")
        frame = frame.select(
            pl.col(name).cast(dtype) for name, dtype in self.schema.items()
        )
        if self.format == "csv":
            csv_safe(frame).write_csv(self._file, include_header=self._batches == 0)
        elif self.format == "jsonl":
            frame.write_ndjson(self._file)
        else:
            self._buffer.append(frame)
            self._buffered += frame.height
            if self._buffered >= _PART_ROWS:
                self._flush_part()
        self._batches += 1
        self._rows += frame.height

    def _flush_part(self) -> None:
        if not self._buffer:
            return
        assert self._parts_dir is not None
        part = self._parts_dir / f"{len(self._parts):06d}.parquet"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            pl.concat(self._buffer, how="vertical").write_parquet(handle)
        self._parts.append(part)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> None:
        """Finish the file and move it to its final name (replacing any old one)."""
        if self._file is None:
            return
        try:
            if self.format == "csv" and self._batches == 0:
                empty = csv_safe(pl.DataFrame(schema=self.schema))
                empty.write_csv(self._file)
            elif self.format == "parquet":
                self._flush_part()
                if self._parts:
                    pl.scan_parquet(self._parts).sink_parquet(self._file)
                else:
                    pl.DataFrame(schema=self.schema).write_parquet(self._file)
            self._file = None
            self._target.commit()
        except BaseException:
            self.abort()
            raise
        self._remove_parts()

    def abort(self) -> None:
        """Discard the file being written; any previous report stays as it was."""
        self._file = None
        self._target.discard()
        self._buffer.clear()
        self._remove_parts()

    def _remove_parts(self) -> None:
        if self._parts_dir is not None:
            shutil.rmtree(self._parts_dir, ignore_errors=True)
            untrack_temporary(self._parts_dir)
            self._parts_dir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- the run summary ---------------------------------------------------------

#: One example request: the user, the attributes to set, the attributes to
#: delete, and (with a diff) the values before, shown as before -> after.
Example = (
    tuple[str, Mapping[str, str], Sequence[str]]
    | tuple[str, Mapping[str, str], Sequence[str], Mapping[str, str | None]]
)

_MAX_EXAMPLE_VALUE = 60
#: Rows shown per error code in the summary, and their message's length.
FAILURE_ROWS_SHOWN = 3
_MAX_MESSAGE = 120


def _count_names(lists: pl.Series, counter: Counter[str]) -> None:
    """Add how many times each name appears in the lists.

    Counted per distinct list: a batch holds a few combinations of attribute
    names, and exploding a million lists of several names first costs four
    times as much.
    """
    if not lists.list.len().sum():
        return
    for names, count in lists.drop_nulls().value_counts().iter_rows():
        for name in names:
            counter[name] += count


class Summary:
    """Run totals, accumulated one report batch at a time; ``render`` prints them."""

    def __init__(
        self,
        *,
        problems: Mapping[str, int] | None = None,
        examples: Sequence[Example] = (),
        warnings: Sequence[str] = (),
    ) -> None:
        self.statuses: Counter[Status] = Counter()
        self.changed: Counter[str] = Counter()
        self.deleted: Counter[str] = Counter()
        self.problems: Counter[str] = Counter(problems or {})
        self.examples: list[Example] = list(examples)
        self.warnings: list[str] = list(warnings)
        #: Rows that did not end well, by error code ...
        self.failures: Counter[str] = Counter()
        #: ... and the first few of each: (row, user, message).
        self.failure_rows: dict[str, list[tuple[int, str | None, str | None]]] = {}

    def add(self, frame: pl.DataFrame) -> None:
        """Count the statuses and attribute changes of one report batch."""
        for status, count in frame["status"].value_counts().iter_rows():
            self.statuses[Status(status)] += count
        failed = frame.filter(
            ~pl.col("status").is_in([s.value for s in OK_STATUSES])
            & pl.col("error_code").is_not_null()
        )
        for code, count in failed["error_code"].value_counts().iter_rows():
            self.failures[code] += count
            shown = self.failure_rows.setdefault(code, [])
            if len(shown) < FAILURE_ROWS_SHOWN:
                rows = failed.filter(pl.col("error_code") == code).head(
                    FAILURE_ROWS_SHOWN - len(shown)
                )
                shown += rows.select("row", "user", "error_message").iter_rows()
        for column, counter in (("changed", self.changed), ("deleted", self.deleted)):
            _count_names(frame.get_column(column), counter)

    def add_problems(self, counts: Mapping[str, int]) -> None:
        """Add problem counts by code (e.g. from the validator)."""
        self.problems.update(counts)

    @property
    def total(self) -> int:
        """Number of rows counted."""
        return sum(self.statuses.values())

    @property
    def status_counts(self) -> dict[Status, int]:
        """Rows per status, every status present (zero when none)."""
        return {status: self.statuses[status] for status in Status}

    @property
    def all_ok(self) -> bool:
        """True when every row ended well (see ``OK_STATUSES``)."""
        return all(s in OK_STATUSES for s, n in self.statuses.items() if n)

    def render(self) -> str:
        """The plain-text summary, without a trailing newline.

        Statuses with no rows and empty sections are left out. Counts use
        thousands separators; problems and attributes are ordered by count
        (largest first), then by name.
        """
        lines = [f"Rows: {self.total:,}"]
        lines += _table(
            (status.value, self.statuses[status])
            for status in Status
            if self.statuses[status]
        )
        if problems := [(code, n) for code, n in self.problems.items() if n]:
            lines += ["", "Problems by code:"]
            lines += _table(sorted(problems, key=lambda item: (-item[1], item[0])))
        if self.failures:
            lines += ["", "Rows that did not end well, by code (the first few):"]
            failures = sorted(self.failures.items(), key=lambda i: (-i[1], i[0]))
            for (code, _), line in zip(failures, _table(failures), strict=True):
                lines.append(line)
                lines += [
                    f"    row {row}, {user or '(no user)'}: "
                    # A row's own problems already start with "row N, ".
                    + _one_line((message or "").removeprefix(f"row {row}, "))
                    for row, user, message in self.failure_rows.get(code, [])
                ]
        changes = [(name, n, "set") for name, n in self.changed.items()]
        changes += [(name, n, "deleted") for name, n in self.deleted.items()]
        if changes:
            changes.sort(key=lambda item: (-item[1], item[0], item[2]))
            lines += ["", "Attribute changes:"]
            lines += _table(
                ((name, n) for name, n, _ in changes),
                suffixes=[f" {kind}" for _, _, kind in changes],
            )
        if self.examples:
            lines += ["", "Example requests:"]
            lines += [f"  {_render_example(example)}" for example in self.examples]
        if self.warnings:
            lines += ["", "Warnings:"]
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _table(
    rows: Iterable[tuple[str, int]], *, suffixes: Sequence[str] = ()
) -> list[str]:
    """Indented "label  count" lines, labels left- and counts right-aligned."""
    pairs = [(label, f"{count:,}") for label, count in rows]
    if not pairs:
        return []
    width = max(len(label) for label, _ in pairs)
    digits = max(len(count) for _, count in pairs)
    tails = list(suffixes) or [""] * len(pairs)
    return [
        f"  {label:<{width}}  {count:>{digits}}{tail}"
        for (label, count), tail in zip(pairs, tails, strict=True)
    ]


def _render_example(example: Example) -> str:
    user, attributes, deletes = example[0], example[1], example[2]
    before = example[3] if len(example) == 4 else None
    parts: list[str] = []
    if attributes and before is not None:
        parts.append(
            "set "
            + ", ".join(
                f"{name}: {_was(before.get(name))} -> {_short(value)}"
                for name, value in attributes.items()
            )
        )
    elif attributes:
        parts.append(
            "set "
            + ", ".join(f"{name}={_short(value)}" for name, value in attributes.items())
        )
    if deletes and before is not None:
        parts.append(
            "delete "
            + ", ".join(f"{name} (was {_was(before.get(name))})" for name in deletes)
        )
    elif deletes:
        parts.append("delete " + ", ".join(deletes))
    return f"{user}: {'; '.join(parts) if parts else 'no change'}"


def _was(value: str | None) -> str:
    return "(none)" if value is None else _short(value)


def _one_line(message: str | None) -> str:
    """A message on one short line: white space folded, long ones cut."""
    text = " ".join((message or "").split())
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text


def _short(value: str) -> str:
    if len(value) > _MAX_EXAMPLE_VALUE:
        value = value[: _MAX_EXAMPLE_VALUE - 3] + "..."
    return repr(value)
