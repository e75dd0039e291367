"""Tests for migrate.source: gzip-compressed text and folders of Parquet parts.

Users export ``.csv.gz`` files and Spark/pandas/polars write Parquet as a folder
of ``part-*.parquet`` files; both must read with the guarantees of a plain file:
values exactly as written, row numbers, problems named by file, row and column.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import polars as pl
import pytest

from migrate.errors import SourceError
from migrate.records import ROW
from migrate.source import (
    Source,
    SourceOptions,
    cell_problem_col,
    input_fingerprint,
    open_source,
)
from tests.conftest import SAMPLES

#: More rows than open_source checks with the csv module (1000), so that a
#: problem there is found only when the reader reaches it.
DEEP = 1500
UTF8_HINT = (
    "the file is not UTF-8: re-export it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
)
GZIP_TEST_HINT = "get the file again (gzip -t FILE tests a copy)"
#: A CSV with what plain CSV reading must keep: a BOM, quoted delimiters, quotes
#: and line breaks, leading zeros, blank cells, CRLF and a lone CR in a value.
TRICKY = (
    b"\xef\xbb\xbfuser,note,code\r\n"
    b'u1,"Doe, Jane",007\r\n'
    b'u2,"say ""hi""\nthen go",\r\n'
    b"u3,a\rb,0042\r\n"
    b"u4,,\r\n"
    b'u5,"caf\xc3\xa9 \xe2\x82\xac",x\r\n'
)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def gz(path: Path, data: bytes | str) -> Path:
    """``data`` gzip-compressed at ``path``, as the gzip tool would write it."""
    raw = data.encode() if isinstance(data, str) else data
    return write(path, gzip.compress(raw, mtime=0))


def read_all(source: Source) -> pl.DataFrame:
    return pl.concat(list(source.batches()))


def source_error(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value


def deep_csv(bad_line: bytes | None = None, *, at: int = DEEP - 100) -> bytes:
    """A 3-column CSV of DEEP rows whose data row ``at`` is ``bad_line``."""
    lines = [b"user,name,plan\n"]
    lines += [f'u{i},"Doe, Jane {i}",gold\n'.encode() for i in range(1, DEEP + 1)]
    if bad_line is not None:
        lines[at] = bad_line
    return b"".join(lines)


# --- gzip: read like the plain file --------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["users.csv.gz", "USERS.CSV.GZ", "users.gz", "users.csv", "users.txt.gz", "users"],
)
def test_gzip_csv_reads_exactly_like_the_plain_file(tmp_path: Path, name: str) -> None:
    plain = open_source(write(tmp_path / "plain.csv", TRICKY))
    packed = open_source(gz(tmp_path / name, TRICKY))
    assert (packed.format, packed.columns) == ("csv", ["user", "note", "code"])
    assert packed.compressed
    assert not plain.compressed
    assert read_all(packed).equals(read_all(plain))
    assert read_all(packed).drop(ROW).rows() == [
        ("u1", "Doe, Jane", "007"),
        ("u2", 'say "hi"\nthen go', ""),
        ("u3", "a\rb", "0042"),
        ("u4", "", ""),
        ("u5", "café €", "x"),
    ]


def test_gzip_tsv_with_its_delimiter(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.tsv.gz", "user\tnote\nu1\ta,b\nu2\t\n")
    source = open_source(path, SourceOptions(delimiter="\t"))
    assert read_all(source).rows() == [(1, "u1", "a,b"), (2, "u2", "")]


def test_gzip_tsv_without_its_delimiter_says_which_to_pass(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.tsv.gz", "user\tnote\nu1\tx\n")
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: the header has a single column 'user\\tnote'; the file looks "
        "tab-separated: pass --delimiter '\\t'"
    )


@pytest.mark.parametrize("piece_bytes", [7, 100, 1 << 20])
def test_gzip_pieces_row_numbers_batches_scan_and_count(
    tmp_path: Path, piece_bytes: int
) -> None:
    path = gz(tmp_path / "deep.csv.gz", deep_csv(b'u0,"multi\nline, x",gold\n'))
    with mock.patch("migrate.source._PIECE_BYTES", piece_bytes):
        source = open_source(path, SourceOptions(batch_size=400))
        out = read_all(source)
        assert [b.height for b in source.batches()] == [400, 400, 400, 300]
        assert out[ROW].to_list() == list(range(1, DEEP + 1))
        assert out["name"][DEEP - 101] == "multi\nline, x"
        assert out["name"][-1] == f"Doe, Jane {DEEP}"
        assert open_source(path).count_rows() == DEEP
        scanned = source.collect(source.scan().select(ROW, "user"))
    assert scanned.schema == pl.Schema({ROW: pl.Int64, "user": pl.String})
    assert scanned.equals(out.select(ROW, "user"))


def test_gzip_with_several_members_reads_them_all(tmp_path: Path) -> None:
    # `cat a.gz b.gz > c.gz` is a valid gzip file holding both.
    data = gzip.compress(b"user,plan\nu1,gold\n") + gzip.compress(b"u2,silver\n")
    source = open_source(write(tmp_path / "cat.csv.gz", data))
    assert read_all(source).rows() == [(1, "u1", "gold"), (2, "u2", "silver")]


def test_gzip_jsonl(tmp_path: Path) -> None:
    lines = '{"user": "u1", "seats": 5.0}\n{"user": "u2", "seats": null}\n'
    for name in ("users.jsonl.gz", "users.gz"):
        source = open_source(gz(tmp_path / name, lines))
        assert source.format == "jsonl"
        out = read_all(source)
        assert out.select(ROW, "user", "seats").rows() == [
            (1, "u1", "5"),
            (2, "u2", None),
        ]


def test_gzip_fingerprint_is_the_hash_of_the_compressed_file(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", TRICKY)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert open_source(path).fingerprint() == expected
    assert input_fingerprint(path) == expected
    plain = write(tmp_path / "plain.csv", TRICKY)
    assert open_source(plain).fingerprint() == hashlib.sha256(TRICKY).hexdigest()


# --- gzip: problems named as in a plain file -----------------------------------------


def test_gzip_latin1_header(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", "user,caf\xe9\nu1,x\n".encode("latin-1"))
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: the header row has the invalid byte 0xE9 in column 2; {UTF8_HINT}"
    )


@pytest.mark.parametrize("verify", [False, True])
def test_gzip_latin1_row_names_row_and_column(tmp_path: Path, verify: bool) -> None:
    early = gz(tmp_path / "early.csv.gz", "user,name\nu1,Ren\xe9\n".encode("latin-1"))
    assert str(source_error(lambda: open_source(early))) == (
        f"{early}, row 1, column 'name': invalid byte 0xE9; {UTF8_HINT}"
    )
    bad = "u9,Ren\xe9,gold\n".encode("latin-1")
    deep = gz(tmp_path / "deep.csv.gz", deep_csv(bad))
    options = SourceOptions(verify=verify)
    call = (
        (lambda: open_source(deep, options))
        if verify
        else (lambda: read_all(open_source(deep, options)))
    )
    error = source_error(call)
    assert (error.path, error.row, error.column) == (str(deep), DEEP - 100, "name")
    assert str(error).endswith(f"invalid byte 0xE9; {UTF8_HINT}")


def test_gzip_deep_row_with_too_few_fields(tmp_path: Path) -> None:
    path = gz(tmp_path / "deep.csv.gz", deep_csv(b"u9,gold\n"))
    error = source_error(lambda: open_source(path, SourceOptions(verify=True)))
    assert str(error) == (
        f"{path}, row {DEEP - 100}: has 2 fields but the header has 3; "
        "check the quoting or the delimiter"
    )


def test_gzip_truncated_early(tmp_path: Path) -> None:
    whole = gzip.compress(b"user,plan\nu1,gold\nu2,silver\n")
    path = write(tmp_path / "cut.csv.gz", whole[: len(whole) // 2])
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is gzip-compressed but ends too early (truncated): was the "
        f"download or copy cut short? {GZIP_TEST_HINT}"
    )


def _incompressible_csv(rows: int) -> bytes:
    """A CSV that gzip cannot shrink much, so that a cut lands in the data."""
    import random

    rng = random.Random(7)
    lines = [b"user,token\n"]
    lines += [f"u{i},{rng.getrandbits(128):032x}\n".encode() for i in range(rows)]
    return b"".join(lines)


@pytest.mark.parametrize("verify", [False, True])
def test_gzip_truncated_deep_is_found_before_use(tmp_path: Path, verify: bool) -> None:
    # Bigger than what open_source reads (the emptiness check reads 1 MiB).
    whole = gzip.compress(_incompressible_csv(100_000))
    path = write(tmp_path / "cut.csv.gz", whole[: len(whole) - 5000])
    message = (
        f"{path}: is gzip-compressed but ends too early (truncated): was the "
        f"download or copy cut short? {GZIP_TEST_HINT}"
    )
    if verify:
        assert (
            str(source_error(lambda: open_source(path, SourceOptions(verify=True))))
            == message
        )
        return
    source = open_source(path)  # the head decompresses fine
    assert str(source_error(lambda: read_all(source))) == message
    assert str(source_error(source.count_rows)) == message


def test_gzip_damaged_data(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(_incompressible_csv(2000), mtime=0))
    data[len(data) // 2] ^= 0xFF
    path = write(tmp_path / "bad.csv.gz", bytes(data))
    error = source_error(lambda: open_source(path, SourceOptions(verify=True)))
    assert str(error).startswith(f"{path}: is gzip-compressed but damaged (")
    assert str(error).endswith(f"); {GZIP_TEST_HINT}")


def test_gzip_header_without_data(tmp_path: Path) -> None:
    # A gzip header and a stored block whose lengths do not match.
    path = write(tmp_path / "users.csv", b"\x1f\x8b\x08\x00" + bytes(20))
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is gzip-compressed but damaged (Error -3 while decompressing "
        f"data: invalid stored block lengths); {GZIP_TEST_HINT}"
    )


def test_gzip_of_an_empty_file(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", b"")
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: the file is empty once decompressed; expected a header row "
        "naming the columns"
    )


def test_gzip_of_a_zip(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("users.csv", "user\nu1\n")
    path = gz(tmp_path / "users.csv.gz", buffer.getvalue())
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is gzip-compressed, and the file inside is a ZIP archive; "
        "extract the file from it first (unzip FILE)"
    )


def test_gzip_of_a_gzip(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", gzip.compress(b"user\nu1\n"))
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is gzip-compressed, and the file inside is gzip-compressed "
        "again; decompress it twice (gunzip -c FILE | gunzip -c > FILE.csv)"
    )


def test_gzip_of_utf16(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", "user,plan\nu1,gold\n".encode("utf-16"))
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is gzip-compressed, and the file inside is UTF-16 "
        "(little-endian) text (it starts with a byte-order mark), not UTF-8: "
        "re-export it as UTF-8, or convert it: iconv -f UTF-16 -t UTF-8"
    )


@pytest.mark.parametrize("name", ["users.parquet.gz", "users.gz", "users.csv.gz"])
def test_gzip_of_parquet(tmp_path: Path, name: str) -> None:
    buffer = io.BytesIO()
    pl.DataFrame({"user": ["u1"]}).write_parquet(buffer)
    path = gz(tmp_path / name, buffer.getvalue())
    assert str(source_error(lambda: open_source(path))) == (
        f"{path}: is a gzip-compressed Parquet file; Parquet compresses its own "
        "data and is read only as it is: decompress it (gunzip -k FILE) and give "
        "the .parquet file"
    )


def test_gzip_given_as_parquet(tmp_path: Path) -> None:
    path = gz(tmp_path / "users.csv.gz", "user\nu1\n")
    error = source_error(lambda: open_source(path, SourceOptions(format="parquet")))
    assert str(error) == (
        f"{path}: is not a Parquet file: it is gzip-compressed; decompress it "
        "first (gunzip -k FILE) and give the file inside"
    )


# --- folders of Parquet parts ---------------------------------------------------------

UUID = "1f2e3d4c-0000-4000-8000-000000000000"


def spark_part(index: int) -> str:
    return f"part-{index:05d}-{UUID}-c000.snappy.parquet"


def spark_folder(folder: Path, frames: list[pl.DataFrame]) -> Path:
    """A folder as Spark writes it: parts, .crc files, _SUCCESS and metadata."""
    folder.mkdir()
    for index, frame in enumerate(frames):
        frame.write_parquet(folder / spark_part(index))
        write(folder / f".{spark_part(index)}.crc", b"crc\x00\x01")
    write(folder / "_SUCCESS", b"")
    write(folder / "._SUCCESS.crc", b"crc")
    # Real Parquet files with other columns: read as parts, they would clash.
    pl.DataFrame({"other": [1]}).write_parquet(folder / "_metadata")
    pl.DataFrame({"other": [1]}).write_parquet(folder / "_common_metadata")
    write(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    return folder


def users(start: int, stop: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user": [f"u{i}" for i in range(start, stop)],
            "seats": [i for i in range(start, stop)],
        }
    )


def test_spark_folder_reads_parts_in_order_with_running_row_numbers(
    tmp_path: Path,
) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 4), users(4, 4), users(4, 9)])
    source = open_source(folder, SourceOptions(batch_size=3))
    assert (source.format, source.columns, source.path) == (
        "parquet",
        ["user", "seats"],
        folder,
    )
    assert source.count_rows() == 8
    batches = list(source.batches())
    assert [b.height for b in batches] == [3, 3, 2]
    out = pl.concat(batches)
    assert out.rows() == [(i, f"u{i}", str(i)) for i in range(1, 9)]
    scanned = source.collect(source.scan().select(ROW, "user"))
    assert scanned.schema == pl.Schema({ROW: pl.Int64, "user": pl.String})
    assert scanned.equals(out.select(ROW, "user"))


def test_parts_are_read_in_name_order_numbers_as_numbers(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    # Written out of order, and named without zero padding (pyarrow, dask).
    for index in (10, 2, 1, 0):
        frame = pl.DataFrame({"user": [f"u{index}a", f"u{index}b"]})
        frame.write_parquet(folder / f"part.{index}.parquet")
    out = read_all(open_source(folder))
    assert out["user"].to_list() == [
        f"u{i}{x}" for i in (0, 1, 2, 10) for x in ("a", "b")
    ]
    assert out[ROW].to_list() == list(range(1, 9))


def test_parts_are_read_in_slices(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 6), users(6, 9)])
    with mock.patch("migrate.source._PARQUET_PIECE_ROWS", 2):
        out = read_all(open_source(folder, SourceOptions(batch_size=4)))
    assert out.rows() == [(i, f"u{i}", str(i)) for i in range(1, 9)]


def test_parts_with_other_types_and_column_order_read_as_the_same_text(
    tmp_path: Path,
) -> None:
    # pandas writes an integer column with a missing value as float64, so
    # parts of one export can differ in type, and in column order.
    first = pl.DataFrame({"user": ["u1"], "seats": [5]})
    second = pl.DataFrame(
        {"seats": [6.0, None, float("nan")], "user": ["u2", "u3", "u4"]}
    )
    folder = spark_folder(tmp_path / "users", [first, second])
    source = open_source(folder)
    assert source.columns == ["user", "seats"]
    out = read_all(source)
    problems = cell_problem_col("seats")
    assert out.rows() == [
        (1, "u1", "5", None),
        (2, "u2", "6", None),
        (3, "u3", None, None),
        (4, "u4", None, "NaN (not a number)"),
    ]
    assert out.columns == [ROW, "user", "seats", problems]
    scanned = source.collect(source.scan())
    assert scanned.equals(out)


def test_a_folder_of_our_parquet_reports(tmp_path: Path) -> None:
    # A failures report written as Parquet and split by another tool is still
    # read as the input it came from (its own columns left out).
    from migrate.records import REPORT_COLUMNS

    report: dict[str, list[object]] = {name: [None] for name in REPORT_COLUMNS}
    report.update({"row": [1], "user": ["u1"], "status": ["failed"]})
    frame = pl.DataFrame(report).with_columns(
        pl.lit(None, dtype=pl.List(pl.String)).alias("changed"),
        pl.lit(None, dtype=pl.List(pl.String)).alias("deleted"),
        pl.lit("u1").alias("username_in"),
        pl.lit("acme").alias("input:status"),
    )
    folder = spark_folder(tmp_path / "failed", [frame, frame])
    source = open_source(folder)
    assert source.columns == ["username_in", "status"]
    assert read_all(source).rows() == [(1, "u1", "acme"), (2, "u1", "acme")]


def test_folder_fingerprint_is_stable_and_follows_the_parts(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "a", [users(1, 4), users(4, 9)])
    one = open_source(folder).fingerprint()
    assert len(one) == 64
    assert one == input_fingerprint(folder)
    # A copy elsewhere, with new times and without the side files: same data.
    copy = tmp_path / "b"
    copy.mkdir()
    for part in (spark_part(1), spark_part(0)):
        shutil.copyfile(folder / part, copy / part)
    assert input_fingerprint(copy) == one
    # Side files do not count; parts, their names and their bytes do.
    write(folder / "_SUCCESS", b"again")
    assert input_fingerprint(folder) == one
    (copy / spark_part(1)).rename(copy / spark_part(2))
    assert input_fingerprint(copy) != one
    users(1, 5).write_parquet(folder / spark_part(0))
    assert input_fingerprint(folder) != one
    assert input_fingerprint(folder) == open_source(folder).fingerprint()


# --- folders: problems ----------------------------------------------------------------


def test_empty_folder(tmp_path: Path) -> None:
    assert str(source_error(lambda: open_source(tmp_path))) == (
        f"{tmp_path}: is an empty folder; give a CSV or Parquet file, or a folder "
        "of Parquet parts"
    )


def test_folder_with_only_side_files(tmp_path: Path) -> None:
    write(tmp_path / "_SUCCESS", b"")
    write(tmp_path / "._SUCCESS.crc", b"crc")
    assert str(source_error(lambda: open_source(tmp_path))) == (
        f"{tmp_path}: holds no Parquet part, only ._SUCCESS.crc and _SUCCESS; "
        "expected Parquet files such as part-00000.parquet beside them"
    )


def test_folder_of_csv_parts(tmp_path: Path) -> None:
    write(tmp_path / "part-00000.csv", "user\nu1\n")
    write(tmp_path / "part-00001.csv", "user\nu2\n")
    write(tmp_path / "_SUCCESS", b"")
    assert str(source_error(lambda: open_source(tmp_path))) == (
        f"{tmp_path}: holds no Parquet part, only other files such as "
        "part-00000.csv; a folder is read only as Parquet parts: join the "
        "parts into one file (CSV: with one header row) and give that"
    )


def test_an_empty_part_is_named(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 4)])
    write(folder / spark_part(1), b"")
    assert str(source_error(lambda: open_source(folder))) == (
        f"{folder / spark_part(1)}: is empty (0 bytes), not a Parquet file; was it "
        "cut short? export it again"
    )


def test_folder_mixing_csv_and_parquet(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 3), users(3, 5)])
    write(folder / "part-00001.csv", "user,seats\nu9,9\n")
    error = source_error(lambda: open_source(folder))
    assert error.path == str(folder / "part-00001.csv")
    assert str(error) == (
        f"{folder / 'part-00001.csv'}: is not a Parquet file, in a folder of "
        "Parquet parts; a folder must hold only Parquet parts (and _SUCCESS, "
        "_metadata or .crc files): move it out of the folder"
    )


def test_parts_with_other_columns_name_the_first_that_differs(tmp_path: Path) -> None:
    renamed = users(4, 6).rename({"seats": "seat_count"})
    wider = users(6, 8).with_columns(pl.lit("x").alias("extra"))
    folder = spark_folder(tmp_path / "users", [users(1, 4), renamed, wider])
    error = source_error(lambda: open_source(folder))
    assert error.path == str(folder / spark_part(1))
    assert str(error) == (
        f"{folder / spark_part(1)}: has other columns than {spark_part(0)} "
        "(missing 'seats'; extra 'seat_count'); every part must have the same "
        "columns: are two exports mixed in one folder?"
    )


def test_a_part_that_is_cut_short_is_named(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 4), users(4, 9)])
    part = folder / spark_part(1)
    write(part, part.read_bytes()[:-10])
    assert str(source_error(lambda: open_source(folder))) == (
        f"{part}: is not a complete Parquet file (no PAR1 magic at the end); "
        "was it cut short? export it again"
    )


def test_a_part_with_a_nested_column_is_named(tmp_path: Path) -> None:
    nested = users(4, 5).with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("g"))
    folder = spark_folder(
        tmp_path / "users", [users(1, 4).with_columns(pl.lit("a").alias("g")), nested]
    )
    error = source_error(lambda: open_source(folder))
    assert (error.path, error.column) == (str(folder / spark_part(1)), "g")


def test_parts_without_rows(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 1), users(1, 1)])
    assert str(source_error(lambda: open_source(folder))) == (
        f"{folder}: has columns but no rows; nothing to migrate"
    )


def test_partitioned_output_is_refused(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 3)])
    (folder / "country=US").mkdir()
    users(3, 5).write_parquet(folder / "country=US" / spark_part(1))
    assert str(source_error(lambda: open_source(folder))) == (
        f"{folder}: holds the folder 'country=US': partitioned output (one "
        "folder per column=value) is not read, its column would be lost; "
        "write the export without partitioning"
    )


def test_a_write_in_progress_is_refused(tmp_path: Path) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 3)])
    (folder / "_temporary" / "0").mkdir(parents=True)
    assert str(source_error(lambda: open_source(folder))) == (
        f"{folder}: holds _temporary: the job writing it has not finished, or "
        "failed; wait for it or write the export again"
    )


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_a_folder_is_not_csv_or_jsonl(tmp_path: Path, format: str) -> None:
    folder = spark_folder(tmp_path / "users", [users(1, 3)])
    options = SourceOptions(format=format)  # type: ignore[arg-type]
    assert str(source_error(lambda: open_source(folder, options))) == (
        f"{folder}: is a folder; a folder is read only as Parquet parts, not "
        f"with --format {format}"
    )


def test_sample_parquet_split_into_parts_reads_as_the_file(tmp_path: Path) -> None:
    whole = pl.read_parquet(SAMPLES / "users.parquet")
    parts = [whole.slice(0, 120), whole.slice(120, 100), whole.slice(220)]
    folder = spark_folder(tmp_path / "users", parts)
    expected = read_all(open_source(SAMPLES / "users.parquet"))
    assert read_all(open_source(folder)).equals(expected)
