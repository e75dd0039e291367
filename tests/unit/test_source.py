"""Tests for migrate.source: reading CSV/Parquet input as batches of text."""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from migrate.errors import ConfigError, SourceError
from migrate.records import ROW
from migrate.source import Source, SourceOptions, cell_problem_col, open_source

#: More rows than open_source checks with the csv module, so that problems
#: past that point are found when batches() reaches them (or by verify).
DEEP = 1200
UTF8_HINT = (
    "the file is not UTF-8: re-export it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def read_all(source: Source) -> pl.DataFrame:
    return pl.concat(list(source.batches()))


def deep_file(path: Path, bad_line: bytes, *, at: int = DEEP - 100) -> Path:
    """A 3-column CSV of DEEP rows whose data row ``at`` is ``bad_line``."""
    lines = [b"user,name,plan\n"]
    lines += [f'u{i},"Doe, Jane {i}",gold\n'.encode() for i in range(1, DEEP + 1)]
    lines[at] = bad_line
    return write(path, b"".join(lines))


def source_error(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value


# --- options ------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", ["", ";;", '"', "\n", "§"])
def test_options_reject_a_bad_delimiter(delimiter: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SourceOptions(delimiter=delimiter)
    assert str(caught.value) == (
        "the delimiter must be one ASCII character other than a double quote "
        f"or a line break, got {delimiter!r}"
    )


def test_options_reject_a_batch_size_below_one() -> None:
    with pytest.raises(ConfigError, match=r"^the batch size must be at least 1 row"):
        SourceOptions(batch_size=0)


def test_options_reject_an_unknown_format() -> None:
    with pytest.raises(ConfigError, match=r"^the format must be csv, parquet or"):
        SourceOptions(format="xlsx")  # type: ignore[arg-type]


# --- files that cannot be opened --------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    error = source_error(lambda: open_source(path))
    assert str(error) == f"{path}: file not found; check the path"
    assert (error.path, error.row, error.column) == (str(path), None, None)


def test_empty_directory(tmp_path: Path) -> None:
    # A folder is read as Parquet parts (see test_source_inputs.py).
    error = source_error(lambda: open_source(tmp_path))
    assert str(error) == (
        f"{tmp_path}: is an empty folder; give a CSV or Parquet file, or a folder "
        "of Parquet parts"
    )


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "locked.csv", "a,b\n1,2\n")
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    # chmod does not stop root, who may run the tests.
    monkeypatch.setattr(Path, "open", deny)
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: cannot be read (Permission denied); check the file's permissions"
    )


@pytest.mark.parametrize(
    "data", [b"", b"  \n\t\r\n  ", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n\n"]
)
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "empty.csv", data)
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the file is empty; expected a header row naming the columns"
    )


@pytest.mark.parametrize("data", ["user,plan\n", "user,plan", "user,plan\n\n\n"])
def test_header_only(tmp_path: Path, data: str) -> None:
    path = write(tmp_path / "header.csv", data)
    error = source_error(lambda: open_source(path))
    assert str(error) == f"{path}: has a header but no data rows; nothing to migrate"


def test_first_line_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "gap.csv", "\nuser,plan\nu1,gold\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the first line is empty; it must be the header row naming the columns"
    )


# --- the header -------------------------------------------------------------------


def test_duplicate_column_names(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "email,plan,email,plan\n1,2,3,4\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the header has duplicate column names: 'email' (columns 1, 3); "
        "'plan' (columns 2, 4); rename them so that every column name is unique"
    )


def test_empty_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.csv", "user,,plan\n1,2,3\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the header has an empty column name (column 2); "
        "give every column a name"
    )


def test_empty_column_names(tmp_path: Path) -> None:
    path = write(tmp_path / "blank.csv", "user,  ,plan,\n1,2,3,4\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the header has empty column names (columns 2, 4); "
        "give every column a name"
    )


def test_reserved_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "row.csv", f"{ROW},user\n1,u1\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the column name '__row' is reserved for row numbers; "
        "rename the column"
    )


@pytest.mark.parametrize(
    ("header", "delimiter", "advice"),
    [
        ("user;plan;tenant", ",", "';'-separated: pass --delimiter ';'"),
        ("user\tplan", ",", "tab-separated: pass --delimiter '\\t'"),
        ("user|plan", ",", "'|'-separated: pass --delimiter '|'"),
        ("user,plan", ";", "','-separated: pass --delimiter ','"),
    ],
)
def test_wrong_delimiter(
    tmp_path: Path, header: str, delimiter: str, advice: str
) -> None:
    row = header.replace("user", "u1").replace("plan", "gold")
    path = write(tmp_path / "users.csv", f"{header}\n{row}\n")
    error = source_error(lambda: open_source(path, SourceOptions(delimiter=delimiter)))
    assert str(error) == (
        f"{path}: the header has a single column {header!r}; the file looks {advice}"
    )


def test_single_column_file_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "users.csv", "username\nalice\n\nbob\n")
    out = read_all(open_source(path))
    assert out.rows() == [(1, "alice"), (2, ""), (3, "bob")]


def test_bom_is_removed_from_the_first_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbfuser,plan\nu1,gold\n")
    source = open_source(path)
    assert source.columns == ["user", "plan"]
    assert read_all(source).rows() == [(1, "u1", "gold")]


def test_header_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.csv", b"user,caf\xe9\nu1,x\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: the header row has the invalid byte 0xE9 in column 2; {UTF8_HINT}"
    )


# --- bad rows found up front (the first rows) ------------------------------------


def test_row_with_too_many_fields(tmp_path: Path) -> None:
    rows = "".join(f"u{i},a,b,c\n" for i in range(1, 17))
    path = write(tmp_path / "ragged.csv", f"user,x,y,z\n{rows}u17,a,b,c,d\nu18,a,b,c\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 17: has 5 fields but the header has 4; "
        "check the quoting or the delimiter"
    )
    assert (error.row, error.column) == (17, None)


def test_row_with_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "short.csv", "user,x,y\nu1,a,b\nu2\nu3,a,b\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 2: has 1 field but the header has 3; "
        "check the quoting or the delimiter"
    )


def test_empty_line_between_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "gap.csv", "user,plan\nu1,gold\n\nu2,gold\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 2: is an empty line but the header has 2 columns; delete the line"
    )


def test_empty_line_at_the_end(tmp_path: Path) -> None:
    path = write(tmp_path / "tail.csv", "user,plan\nu1,gold\n\n")
    error = source_error(lambda: open_source(path))
    assert error.row == 2
    assert str(error).endswith(
        "is an empty line but the header has 2 columns; delete the line"
    )


def test_not_utf8_names_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.csv", b"user,name\nu1,Ann\nu2,Ren\xe9e\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == f"{path}, row 2, column 'name': invalid byte 0xE9; {UTF8_HINT}"
    assert (error.row, error.column) == (2, "name")


def test_stray_quote_in_an_unquoted_field(tmp_path: Path) -> None:
    path = write(tmp_path / "quote.csv", 'user,name\nu1,O"Neil\nu2,Ann\n')
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 1, column 'name': has a stray double quote (\") in a field "
        "that is not quoted; enclose the field in double quotes and write the quote "
        'twice, e.g. "O""Neil" for O"Neil'
    )


def test_text_after_a_closing_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "quote.csv", 'user,name\nu1,"Ann"e\n')
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 1: has text after the closing quote of a field; "
        "quote the whole field and write any quote inside it twice"
    )


def test_quote_never_closed(tmp_path: Path) -> None:
    path = write(tmp_path / "quote.csv", 'user,name\nu1,Ann\nu2,"Bob\nu3,Cy\n')
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, row 2: opens a quoted field that is never closed; check the quoting"
    )


# --- bad rows found while streaming, or by verify ------------------------------


@pytest.mark.parametrize("verify", [False, True])
def test_deep_row_with_too_many_fields(tmp_path: Path, verify: bool) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u9,Ann,gold,extra\n")
    options = SourceOptions(batch_size=100, verify=verify)

    def run() -> None:
        read_all(open_source(path, options))

    error = source_error(run)
    assert str(error) == (
        f"{path}, row {DEEP - 100}: has 4 fields but the header has 3; "
        "check the quoting or the delimiter"
    )
    # The user sees our message, not a polars traceback.
    assert error.__cause__ is None
    assert error.__suppress_context__


@pytest.mark.parametrize("verify", [False, True])
def test_deep_row_with_too_few_fields(tmp_path: Path, verify: bool) -> None:
    # A quoted comma makes the raw line hold as many commas as a good row.
    path = deep_file(tmp_path / "deep.csv", b'u9,"Doe, Jane"\n')
    options = SourceOptions(batch_size=100, verify=verify)
    error = source_error(lambda: read_all(open_source(path, options)))
    assert str(error) == (
        f"{path}, row {DEEP - 100}: has 2 fields but the header has 3; "
        "check the quoting or the delimiter"
    )


def test_bad_row_is_raised_when_batches_reach_it(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u9,Ann\n")
    source = open_source(path, SourceOptions(batch_size=100))
    # Small pieces, so that the rows before the bad one come out first.
    with mock.patch("migrate.source._PIECE_BYTES", 1000):
        batches = source.batches()
        heights = [next(batches).height for _ in range(10)]
        assert heights == [100] * 10
        with pytest.raises(SourceError, match=rf", row {DEEP - 100}: has 2 fields"):
            list(batches)


def test_verify_raises_in_open_source(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u9,Ann\n")
    open_source(path)  # the first rows are fine
    with pytest.raises(SourceError, match=rf", row {DEEP - 100}: has 2 fields"):
        open_source(path, SourceOptions(verify=True))


@pytest.mark.parametrize("verify", [False, True])
def test_deep_row_not_utf8(tmp_path: Path, verify: bool) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u9,Ren\xe9e,gold\n")
    options = SourceOptions(batch_size=100, verify=verify)
    error = source_error(lambda: read_all(open_source(path, options)))
    assert str(error) == (
        f"{path}, row {DEEP - 100}, column 'name': invalid byte 0xE9; {UTF8_HINT}"
    )


def test_deep_empty_line(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b"\n")
    error = source_error(lambda: read_all(open_source(path)))
    assert str(error) == (
        f"{path}, row {DEEP - 100}: is an empty line but the header has 3 columns; "
        "delete the line"
    )


def test_deep_stray_quote(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b'u9,O"Neil,gold\n')
    error = source_error(lambda: read_all(open_source(path)))
    assert error.row == DEEP - 100
    assert error.column == "name"


def test_deep_problem_in_a_file_without_quotes(tmp_path: Path) -> None:
    lines = ["user,plan\n", *(f"u{i},gold\n" for i in range(1, DEEP + 1))]
    lines[DEEP - 5] = "u9\n"
    path = write(tmp_path / "plain.csv", "".join(lines))
    error = source_error(lambda: read_all(open_source(path)))
    assert error.row == DEEP - 5


def test_quote_never_closed_in_a_large_file(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b'u9,"Ann,gold\n')
    # No line end after the bad quote closes a record: pieces give up at the
    # maximum size and leave the verdict to polars and the csv module.
    with (
        mock.patch("migrate.source._PIECE_BYTES", 500),
        mock.patch("migrate.source._MAX_PIECE_BYTES", 4000),
    ):
        error = source_error(lambda: read_all(open_source(path)))
    assert str(error) == (
        f"{path}, row {DEEP - 100}: has text after the closing quote of a field; "
        "quote the whole field and write any quote inside it twice"
    )


def test_collect_turns_polars_errors_into_source_errors(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u9,Ren\xe9e,gold\n")
    source = open_source(path)
    error = source_error(lambda: source.collect(source.scan()))
    assert (error.row, error.column) == (DEEP - 100, "name")


# --- values and row numbers ---------------------------------------------------------


def test_embedded_newlines_and_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.csv",
        'user,note\nu1,"line1\nline2"\nu2,"say ""hi"""\nu3,"a, b"\nu4,plain\n',
    )
    out = read_all(open_source(path, SourceOptions(batch_size=2)))
    assert out.rows() == [
        (1, "u1", "line1\nline2"),
        (2, "u2", 'say "hi"'),
        (3, "u3", "a, b"),
        (4, "u4", "plain"),
    ]


def test_values_are_kept_exactly_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path / "v.csv",
        "id,spaced,phone,num,flag\n"
        "007,  spaced  ,+1 415,1e5,TRUE\n"
        '"00",  ," 1 ",-0,null\n',
    )
    out = read_all(open_source(path))
    assert out.drop(ROW).rows() == [
        ("007", "  spaced  ", "+1 415", "1e5", "TRUE"),
        ("00", "  ", " 1 ", "-0", "null"),
    ]


def test_blank_cells_are_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", 'user,a,b\nu1,,\nu2,"",x\n')
    out = read_all(open_source(path))
    assert out.rows() == [(1, "u1", "", ""), (2, "u2", "", "x")]


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semi.csv"), ("\t", "t.tsv")])
def test_custom_delimiter(tmp_path: Path, delimiter: str, name: str) -> None:
    d = delimiter
    path = write(
        tmp_path / name, f'user{d}note{d}plan\nu1{d}"a{d}b, c"{d}gold\nu2{d}x,y{d}\n'
    )
    source = open_source(path, SourceOptions(delimiter=delimiter))
    assert source.columns == ["user", "note", "plan"]
    assert read_all(source).drop(ROW).rows() == [
        ("u1", f"a{d}b, c", "gold"),
        ("u2", "x,y", ""),
    ]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "win.csv", b'user,note\r\nu1,"a\r\nb"\r\nu2,x\r\n')
    assert read_all(open_source(path)).rows() == [(1, "u1", "a\r\nb"), (2, "u2", "x")]


def test_row_numbers_across_batches(tmp_path: Path) -> None:
    rows = "".join(f'u{i},"n\n{i}"\n' for i in range(1, 11))
    path = write(tmp_path / "ten.csv", f"user,note\n{rows}")
    batches = list(open_source(path, SourceOptions(batch_size=3)).batches())
    assert [b.height for b in batches] == [3, 3, 3, 1]
    out = pl.concat(batches)
    assert out.schema == pl.Schema(
        {ROW: pl.Int64, "user": pl.String, "note": pl.String}
    )
    assert out[ROW].to_list() == list(range(1, 11))
    assert out["user"].to_list() == [f"u{i}" for i in range(1, 11)]


def test_pieces_are_cut_between_records(tmp_path: Path) -> None:
    rows = [
        ("u1", "a\nb, c"),
        ("u2", 'say "hi"\r\n'),
        ("\ufeffu3", "a record starting with a BOM character"),
        ("u4", ""),
        ("u5", "x" * 50),
    ]
    body = "".join(
        f'{user},"{note.replace(chr(34), chr(34) * 2)}"\r\n' for user, note in rows
    )
    path = write(tmp_path / "p.csv", f"user,note\r\n{body}")
    for size in (1, 5, 13, 1 << 20):
        with mock.patch("migrate.source._PIECE_BYTES", size):
            out = read_all(open_source(path, SourceOptions(batch_size=2)))
        assert out.rows() == [(i, *row) for i, row in enumerate(rows, start=1)]


def test_row_numbers_in_a_large_file(tmp_path: Path) -> None:
    lines = ["user,plan\n", *(f"u{i},gold\n" for i in range(1, DEEP + 1))]
    path = write(tmp_path / "big.csv", "".join(lines))
    source = open_source(path, SourceOptions(batch_size=500))
    out = read_all(source)
    assert out[ROW].to_list() == list(range(1, DEEP + 1))
    assert out["user"][-1] == f"u{DEEP}"
    assert source.count_rows() == DEEP


def test_count_rows_before_reading(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b'u0,"multi\nline",gold\n')
    assert open_source(path).count_rows() == DEEP


def test_stopping_early_is_fine(tmp_path: Path) -> None:
    path = deep_file(tmp_path / "deep.csv", b"u0,x,gold\n")
    source = open_source(path, SourceOptions(batch_size=10))
    for batch in source.batches():
        assert batch.height == 10
        break
    assert read_all(source).height == DEEP


def test_scan_projects_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "user,plan\nu1,gold\nu2,\n")
    source = open_source(path)
    assert source.scan().collect_schema() == pl.Schema(
        {ROW: pl.Int64, "user": pl.String, "plan": pl.String}
    )
    got = source.collect(source.scan().select(ROW, "plan"))
    assert got.rows() == [(1, "gold"), (2, "")]


def test_sample_users_csv_and_parquet_agree() -> None:
    from tests.conftest import SAMPLES

    csv = read_all(open_source(SAMPLES / "users.csv"))
    parquet = read_all(open_source(SAMPLES / "users.parquet"))
    assert csv.height == 300
    # Blank is "" in CSV and null in Parquet; both mean blank downstream.
    assert csv.equals(parquet.with_columns(pl.exclude(ROW).fill_null("")))


# --- Parquet and format detection --------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "user": ["u1", None, "u3"],
            "seats": [42, None, 7],
            "birthdate": [dt.date(1990, 1, 31), None, None],
            "seen": [dt.datetime(2024, 1, 31, 12, 0, 0, 500000), None, None],
            "ratio": [1.5, None, 2.0],
            "newsletter": [True, False, None],
        }
    )
    path = tmp_path / "users.parquet"
    frame.write_parquet(path)
    source = open_source(path, SourceOptions(batch_size=2))
    assert source.format == "parquet"
    assert source.columns == list(frame.columns)
    assert source.count_rows() == 3
    batches = list(source.batches())
    assert [b.height for b in batches] == [2, 1]
    out = pl.concat(batches)
    # The float column comes with its cell problems (none here).
    problems = cell_problem_col("ratio")
    assert dict(out.schema) == (
        {ROW: pl.Int64}
        | dict.fromkeys(frame.columns, pl.String)
        | {problems: pl.String}
    )
    assert out.drop(problems).rows() == [
        (1, "u1", "42", "1990-01-31", "2024-01-31T12:00:00.500", "1.5", "true"),
        (2, None, None, None, None, None, "false"),
        (3, "u3", "7", None, None, "2", None),
    ]
    assert out[problems].to_list() == [None, None, None]


def test_parquet_is_read_in_slices(tmp_path: Path) -> None:
    path = tmp_path / "seven.parquet"
    pl.DataFrame({"user": [f"u{i}" for i in range(1, 8)]}).write_parquet(path)
    with mock.patch("migrate.source._PARQUET_PIECE_ROWS", 2):
        batches = list(open_source(path, SourceOptions(batch_size=3)).batches())
    assert [b.height for b in batches] == [3, 3, 1]
    out = pl.concat(batches)
    assert out.rows() == [(i, f"u{i}") for i in range(1, 8)]


def test_parquet_scan(tmp_path: Path) -> None:
    path = tmp_path / "scan.parquet"
    pl.DataFrame({"user": ["u1", "u2"], "seats": [3, None]}).write_parquet(path)
    source = open_source(path)
    got = source.collect(source.scan().select(ROW, "seats"))
    assert got.schema == pl.Schema({ROW: pl.Int64, "seats": pl.String})
    assert got.rows() == [(1, "3"), (2, None)]


def test_parquet_nested_column(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pl.DataFrame({"user": ["u1"], "groups": [["a", "b"]]}).write_parquet(path)
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, column 'groups': is a nested column (List(String)); "
        "flatten it to text before migrating"
    )


def test_parquet_binary_column(tmp_path: Path) -> None:
    path = tmp_path / "bin.parquet"
    pl.DataFrame({"user": ["u1"], "blob": [b"\xff"]}).write_parquet(path)
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}, column 'blob': holds binary data; "
        "store it as a string (UTF-8 text) column"
    )


def test_parquet_without_rows(tmp_path: Path) -> None:
    path = tmp_path / "zero.parquet"
    pl.DataFrame({"user": pl.Series([], dtype=pl.String)}).write_parquet(path)
    error = source_error(lambda: open_source(path))
    assert str(error) == f"{path}: has columns but no rows; nothing to migrate"


def test_parquet_cut_short(tmp_path: Path) -> None:
    whole = tmp_path / "whole.parquet"
    pl.DataFrame({"user": ["u1", "u2"]}).write_parquet(whole)
    path = write(tmp_path / "cut.parquet", whole.read_bytes()[:-10])
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: is not a complete Parquet file (no PAR1 magic at the end); "
        "was it cut short? export it again"
    )


def test_parquet_name_on_a_csv_file(tmp_path: Path) -> None:
    path = write(tmp_path / "users.parquet", "user,plan\nu1,gold\n")
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: is not a Parquet file (no PAR1 magic); is it CSV? "
        "rename it to .csv or pass --format csv"
    )
    # --format csv overrides the extension.
    source = open_source(path, SourceOptions(format="csv"))
    assert read_all(source).rows() == [(1, "u1", "gold")]


def test_csv_name_on_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    pl.DataFrame({"user": ["u1"]}).write_parquet(path)
    error = source_error(lambda: open_source(path))
    assert str(error) == (
        f"{path}: looks like a Parquet file (it starts with PAR1), not CSV; "
        "rename it to .parquet or pass --format parquet"
    )
    assert open_source(path, SourceOptions(format="parquet")).format == "parquet"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("u.CSV", "csv"), ("u.tsv", "csv"), ("u.txt", "csv"), ("u.PQ", "parquet")],
)
def test_format_from_extension(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    frame = pl.DataFrame({"user": ["u1"]})
    if expected == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    assert open_source(path).format == expected


def test_format_sniffed_from_content(tmp_path: Path) -> None:
    frame = pl.DataFrame({"user": ["u1"], "plan": ["gold"]})
    frame.write_parquet(tmp_path / "export.dat")
    frame.write_csv(tmp_path / "export")
    as_parquet = open_source(tmp_path / "export.dat")
    as_csv = open_source(tmp_path / "export")
    assert (as_parquet.format, as_csv.format) == ("parquet", "csv")
    assert read_all(as_parquet).equals(read_all(as_csv))


# --- property: whatever polars writes, we read back --------------------------------

_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")
_CELLS = st.text(_TEXT, max_size=8) | st.sampled_from(
    ["", " ", "\n", "\r\n", '"', '""', ",", ";", "\t", "|", "007", "a\rb", "\ufeffx"]
)
_NAMES = st.text(_TEXT, min_size=1, max_size=6).filter(
    lambda s: bool(s.strip()) and not s.startswith("\ufeff") and s != ROW
)


_PIECE_SIZES = st.sampled_from([1, 16, 64, 1 << 20])


@st.composite
def _tables(draw: st.DrawFn) -> tuple[pl.DataFrame, str]:
    names = draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))
    height = draw(st.integers(min_value=1, max_value=12))
    columns = {
        name: draw(st.lists(_CELLS, min_size=height, max_size=height)) for name in names
    }
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    return pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String)), delimiter


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    _tables(),
    st.integers(min_value=1, max_value=5),
    st.booleans(),
    st.booleans(),
    _PIECE_SIZES,
)
def test_property_polars_csv_reads_back_identical(
    table: tuple[pl.DataFrame, str],
    batch_size: int,
    verify: bool,
    stream: bool,
    piece_bytes: int,
) -> None:
    frame, delimiter = table
    if frame.width == 1:
        # A one-column header holding a likely delimiter is read as a mistake.
        assume(not any(d in frame.columns[0] for d in ",;\t|"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        frame.write_csv(path, separator=delimiter)
        options = SourceOptions(
            delimiter=delimiter, batch_size=batch_size, verify=verify
        )
        # stream: check only the header up front, as for a large file, so that
        # the checks on pieces see these rows too; small pieces cut the file
        # between every few records.
        with (
            mock.patch("migrate.source._PREFIX_RECORDS", 0 if stream else 1000),
            mock.patch("migrate.source._PIECE_BYTES", piece_bytes),
        ):
            source = open_source(path, options)
            out = read_all(source)
        assert source.columns == frame.columns
        assert out[ROW].to_list() == list(range(1, frame.height + 1))
        assert out.drop(ROW).equals(frame)
        assert source.count_rows() == frame.height


@settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_tables(), st.data(), st.booleans(), st.booleans(), _PIECE_SIZES)
def test_property_a_row_with_a_field_missing_or_extra_is_named(
    table: tuple[pl.DataFrame, str],
    data: st.DataObject,
    extra: bool,
    stream: bool,
    piece_bytes: int,
) -> None:
    frame, delimiter = table
    assume(frame.width >= 2)
    bad = data.draw(st.integers(min_value=0, max_value=frame.height - 1))
    rows = [list(row) for row in frame.rows()]
    if extra:
        rows[bad].append("x")
    else:
        rows[bad].pop()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            # "\r\n" so that the writer also quotes values holding a \r.
            writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
            writer.writerow(frame.columns)
            writer.writerows(rows)
        options = SourceOptions(delimiter=delimiter, batch_size=2)
        with (
            mock.patch("migrate.source._PREFIX_RECORDS", 0 if stream else 1000),
            mock.patch("migrate.source._PIECE_BYTES", piece_bytes),
            pytest.raises(SourceError) as caught,
        ):
            read_all(open_source(path, options))
    fields = len(rows[bad])
    noun = "field" if fields == 1 else "fields"
    assert str(caught.value) == (
        f"{path}, row {bad + 1}: has {fields} {noun} but the header has "
        f"{frame.width}; check the quoting or the delimiter"
    )


# --- floats: whole numbers, and cells with no text ------------------------------------


def test_parquet_floats_read_as_numbers_people_write(tmp_path: Path) -> None:
    path = tmp_path / "floats.parquet"
    pl.DataFrame(
        {
            "user": ["a", "b", "c", "d", "e", "f", "g"],
            # pandas stores an integer column with a missing value as floats.
            "seats": [5.0, -3.0, 2.5, float("nan"), float("inf"), float("-inf"), None],
            "small": pl.Series([1.0, 0.5, 7.0, 0.0, 2.0, -0.0, None], dtype=pl.Float32),
        }
    ).write_parquet(path)
    source = open_source(path)
    out = read_all(source)
    assert out["seats"].to_list() == ["5", "-3", "2.5", None, None, None, None]
    assert out[cell_problem_col("seats")].to_list() == [
        None,
        None,
        None,
        "NaN (not a number)",
        "inf (infinity)",
        "-inf (minus infinity)",
        None,
    ]
    assert out["small"].to_list() == ["1", "0.5", "7", "0", "2", "0", None]
    # Whole-file passes see the same text.
    scanned = source.collect(source.scan().select(ROW, "seats"))
    assert scanned["seats"].to_list() == out["seats"].to_list()


def test_a_float_too_large_to_be_exact_keeps_its_float_form(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pl.DataFrame({"user": ["a"], "n": [1e20]}).write_parquet(path)
    assert read_all(open_source(path))["n"].to_list() == ["1e+20"]


def test_integer_and_text_columns_have_no_cell_problems(tmp_path: Path) -> None:
    path = tmp_path / "ints.parquet"
    pl.DataFrame({"user": ["a"], "n": [5]}).write_parquet(path)
    assert read_all(open_source(path)).columns == [ROW, "user", "n"]


# --- JSON lines ---------------------------------------------------------------


def test_jsonl_is_input(tmp_path: Path) -> None:
    path = write(
        tmp_path / "users.jsonl",
        b'\xef\xbb\xbf{"user": "a", "seats": 5, "ratio": 2.0, "news": true, '
        b'"x": null}\n'
        b'{"user": "b", "seats": 7, "ratio": 2.5, "news": false, "x": "t"}\n'
        b'{"user": "c", "ratio": 1}\n',
    )
    source = open_source(path, SourceOptions(batch_size=2))
    assert (source.format, source.columns) == (
        "jsonl",
        ["user", "seats", "ratio", "news", "x"],
    )
    out = read_all(source)
    assert out.select(ROW, *source.columns).rows() == [
        (1, "a", "5", "2", "true", None),
        (2, "b", "7", "2.5", "false", "t"),
        # A key a line leaves out is null (blank), like JSON null.
        (3, "c", None, "1", None, None),
    ]
    assert source.count_rows() == 3
    assert source.collect(source.scan().select(ROW, "user")).rows() == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
    ]


@pytest.mark.parametrize("name", ["u.jsonl", "u.ndjson", "u.json", "u.data"])
def test_jsonl_by_extension_or_content(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, '{"user": "a"}\n')
    assert open_source(path).format == "jsonl"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            '{"user": "a"}\n{"user": "b",}\n',
            "row 2: is not valid JSON (Expecting property name enclosed in double "
            "quotes at character 14); JSON lines input has one complete object per "
            "line",
        ),
        ('{"user": "a"}\n\n{"user": "b"}\n', "row 2: is an empty line; delete it"),
        (
            '{"user": "a"}\n["b"]\n',
            "row 2: is not a JSON object; JSON lines input has one object per line",
        ),
        (
            '{"user": "a", "tags": null}\n{"user": "b", "tags": ["x"]}\n',
            "row 2, column 'tags': holds a list or an object; only strings, numbers, "
            "true/false and null can be migrated",
        ),
        (
            '{"user": "a"}\n{"user": "b", "extra": 1}\n',
            "row 2, column 'extra': has the key 'extra', which the first line does "
            "not have; every line must have the first line's keys (null for none)",
        ),
        (
            '[{"user": "a"}]\n',
            "is one JSON array, not JSON lines (one object per line); convert it, "
            "e.g. jq -c '.[]' FILE > FILE.jsonl",
        ),
        (
            "\n{}\n",
            "the first line is empty; JSON lines input has one object per "
            "line, starting on the first line",
        ),
        ("{}\n", "the first object has no keys; nothing to migrate"),
        (
            '{"user": "a", "user": "b", "__row": 1}\n',
            "the column name '__row' is reserved for row numbers; rename the column",
        ),
    ],
    ids=[
        "bad-json",
        "empty-line",
        "not-an-object",
        "nested",
        "extra-key",
        "array",
        "empty-first-line",
        "no-keys",
        "reserved-name",
    ],
)
@pytest.mark.parametrize("verify", [False, True])
def test_jsonl_problems_name_the_row(
    tmp_path: Path, data: str, message: str, verify: bool
) -> None:
    path = write(tmp_path / "in.jsonl", data)

    def read() -> None:
        read_all(open_source(path, SourceOptions(verify=verify)))

    where = f"{path}, " if message.startswith("row ") else f"{path}: "
    assert str(source_error(read)) == where + message


def test_jsonl_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", '{"user": "a"}\n{"user": "b"}\n\n \n')
    assert read_all(open_source(path))["user"].to_list() == ["a", "b"]


def test_jsonl_a_deep_problem_is_found_by_verify(tmp_path: Path) -> None:
    lines = [f'{{"user": "u{i}"}}\n' for i in range(1, 5001)]
    lines[4000] = '{"user": "u4001", "nested": {"a": 1}}\n'
    path = write(tmp_path / "in.jsonl", "".join(lines))
    with mock.patch("migrate.source._PIECE_BYTES", 1000):
        error = source_error(lambda: open_source(path, SourceOptions(verify=True)))
    assert (error.row, error.column) == (4001, "nested")


# --- files that are not what they claim ---------------------------------------

TEXT_CSV = "username,tenant\nalice,acme\nbob,globex\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            TEXT_CSV.encode("utf-16"),
            "is UTF-16 (little-endian) text (it starts with a byte-order mark), not "
            "UTF-8: re-export it as UTF-8, or convert it: iconv -f UTF-16 -t UTF-8",
        ),
        (
            TEXT_CSV.encode("utf-16-be"),
            "looks like UTF-16 (big-endian) text (every other byte is text, the rest "
            "NUL), not UTF-8: re-export it as UTF-8, or convert it: iconv -f "
            "UTF-16BE -t UTF-8",
        ),
        (
            TEXT_CSV.encode("utf-16-le"),
            "looks like UTF-16 (little-endian) text (every other byte is text, the "
            "rest NUL), not UTF-8: re-export it as UTF-8, or convert it: iconv -f "
            "UTF-16LE -t UTF-8",
        ),
        (
            TEXT_CSV.encode("utf-32"),
            "is UTF-32 (little-endian) text (it starts with a byte-order mark), not "
            "UTF-8: re-export it as UTF-8, or convert it: iconv -f UTF-32 -t UTF-8",
        ),
        (
            TEXT_CSV.encode("utf-32-be"),
            "looks like UTF-32 (big-endian) text (every fourth byte is text, the "
            "rest NUL), not UTF-8: re-export it as UTF-8, or convert it: iconv -f "
            "UTF-32BE -t UTF-8",
        ),
        (
            TEXT_CSV.replace("\n", "\r").encode(),
            "has old Mac line endings (CR only, no line feeds), so it reads as one "
            "line; convert them, e.g. tr '\\r' '\\n' < FILE > FIXED.csv",
        ),
        (
            # gzip is read (see test_source_inputs.py); the others are named.
            b"BZh91AY&SY" + bytes(20),
            "is bzip2-compressed; decompress it first (bunzip2 -k FILE) and give "
            "the file inside",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100),
            "is an Excel 97-2003 workbook (.xls) or another old Office file: open it "
            "and save the sheet as CSV UTF-8 (or export it to Parquet)",
        ),
        (
            b"SQLite format 3\x00" + bytes(100),
            "is a SQLite database (a job file?), not an input file",
        ),
    ],
    ids=[
        "utf16-bom",
        "utf16be",
        "utf16le",
        "utf32-bom",
        "utf32be",
        "cr-only",
        "bzip2",
        "xls",
        "sqlite",
    ],
)
def test_what_a_file_really_is_is_named(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = write(tmp_path / "users.csv", data)
    assert str(source_error(lambda: open_source(path))) == f"{path}: {message}"


def _zip(path: Path, members: dict[str, str]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            {"[Content_Types].xml": "<x/>", "xl/workbook.xml": "<x/>"},
            "is an Excel workbook (.xlsx): open it and save the sheet as CSV UTF-8 "
            "(or export it to Parquet)",
        ),
        (
            {"mimetype": "application/vnd.oasis.opendocument.spreadsheet"},
            "is an OpenDocument spreadsheet (.ods): open it and save the sheet as "
            "CSV UTF-8 (or export it to Parquet)",
        ),
        (
            {"users.csv": TEXT_CSV},
            "is a ZIP archive; extract the file from it first (unzip FILE)",
        ),
    ],
    ids=["xlsx", "ods", "zip"],
)
@pytest.mark.parametrize("name", ["users.csv", "users.xlsx"])
def test_archives_and_workbooks_are_named(
    tmp_path: Path, members: dict[str, str], message: str, name: str
) -> None:
    path = _zip(tmp_path / name, members)
    assert str(source_error(lambda: open_source(path))) == f"{path}: {message}"


def test_a_workbook_named_parquet(tmp_path: Path) -> None:
    path = _zip(tmp_path / "users.parquet", {"xl/workbook.xml": "<x/>"})
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is not a Parquet file: it is an Excel workbook (.xlsx): open it and "
        "save the sheet as CSV UTF-8 (or export it to Parquet)"
    )


def test_a_few_nul_bytes_are_not_utf16(tmp_path: Path) -> None:
    # NUL in a value is the checks' business (control_character), not the reader's.
    path = write(tmp_path / "users.csv", "username,tenant\nal\x00ice,ac\x00me\n")
    assert read_all(open_source(path))["tenant"].to_list() == ["ac\x00me"]


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    import os
    import threading

    path = tmp_path / "users.csv"
    os.mkfifo(path)
    found: list[BaseException] = []

    def attempt() -> None:
        try:
            open_source(path)
        except BaseException as exc:  # handed to the test thread
            found.append(exc)

    # No writer: opening the pipe for reading would block forever.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        # Give the blocked open a writer, so the thread can end.
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("open_source blocked on a named pipe with no writer")
    (error,) = found
    assert isinstance(error, SourceError)
    assert str(error) == (
        f"{path}: is a named pipe (FIFO), not a regular file; the input is read "
        "more than once, so save it to a file first"
    )
