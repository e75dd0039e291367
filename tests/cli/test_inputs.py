"""Inputs as users have them: ``.csv.gz`` files and folders of Parquet parts.

Each goes through the command line as a user types it (a dry run against the
samples' saved schema, or a real run against an emulated pool), and must give
the same report as the plain file; each broken one is one "Error: ..." line
naming the file (and the row and column where there is one), exit 2.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

from migrate.sandbox import EmulatedPool
from tests.cli.helpers import (
    BACKFILL,
    NORMALISE_PHONE,
    SCHEMA,
    SCHEMA_FILE,
    invoke,
    read_report,
    real_run_args,
    write,
)
from tests.conftest import SAMPLES

UTF8_HINT = (
    "the file is not UTF-8: re-export it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
)
#: Report columns that differ between two runs of the same rows.
VOLATILE = ("finished_at",)


def gz(path: str | Path, data: bytes | str) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    return write(path, gzip.compress(raw, mtime=0))


def spark_folder(folder: str | Path, frames: list[pl.DataFrame]) -> Path:
    """A folder as Spark writes it: part files, .crc files, _SUCCESS."""
    folder = Path(folder)
    folder.mkdir()
    for index, frame in enumerate(frames):
        name = f"part-{index:05d}-0b1c-c000.snappy.parquet"
        frame.write_parquet(folder / name)
        write(folder / f".{name}.crc", b"crc")
    write(folder / "_SUCCESS", b"")
    write(folder / "._SUCCESS.crc", b"crc")
    pl.DataFrame({"other": [1]}).write_parquet(folder / "_metadata")
    return folder


def dry_run(input_path: str | Path, mapping: Path, report: str) -> list[dict[str, str]]:
    """A dry run against the samples' schema; the rows of its report."""
    result = invoke(
        "run",
        input_path,
        "-m",
        mapping,
        "--dry-run",
        "--schema",
        SCHEMA_FILE,
        "--report",
        report,
    )
    # The samples hold deliberately bad rows: exit 1, never an error.
    assert result.exit_code == 1, result.output
    return [
        {k: v for k, v in row.items() if k not in VOLATILE}
        for row in read_report(report)
    ]


def input_error(input_path: str | Path, *extra: str) -> str:
    """A dry run that must stop on its input: the one line it prints."""
    result = invoke(
        "run",
        input_path,
        "-m",
        BACKFILL,
        "--dry-run",
        "--schema",
        SCHEMA_FILE,
        "--report",
        "dry.csv",
        *extra,
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.output.splitlines()) == 1, result.output
    assert not Path("dry.csv").exists()
    return result.output


# --- gzip ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["users.csv.gz", "export.gz"])
def test_dry_run_of_a_gzip_csv_reports_as_the_plain_file(name: str) -> None:
    gz(name, (SAMPLES / "users.csv").read_bytes())
    plain = dry_run(SAMPLES / "users.csv", NORMALISE_PHONE, "plain.csv")
    packed = dry_run(name, NORMALISE_PHONE, "packed.csv")
    assert len(packed) == 300
    assert packed == plain


def test_gzip_with_latin1_bytes_names_row_and_column() -> None:
    gz("users.csv.gz", "username,tenant\nu1,acme\nu2,caf\xe9\n".encode("latin-1"))
    assert input_error("users.csv.gz") == (
        f"Error: users.csv.gz, row 2, column 'tenant': invalid byte 0xE9; {UTF8_HINT}\n"
    )


def test_truncated_gzip() -> None:
    whole = gzip.compress(b"username,tenant\nu1,acme\nu2,globex\n")
    write("users.csv.gz", whole[:-12])
    assert input_error("users.csv.gz") == (
        "Error: users.csv.gz: is gzip-compressed but ends too early (truncated): "
        "was the download or copy cut short? get the file again (gzip -t FILE "
        "tests a copy)\n"
    )


def test_gzip_of_a_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("users.csv", "username,tenant\nu1,acme\n")
    gz("users.csv.gz", buffer.getvalue())
    assert input_error("users.csv.gz") == (
        "Error: users.csv.gz: is gzip-compressed, and the file inside is a ZIP "
        "archive; extract the file from it first (unzip FILE)\n"
    )


def test_real_run_of_a_gzip_csv_and_its_rerun(pool: EmulatedPool) -> None:
    rows = [{"username": f"u{i}", "tenant": f"t{i}"} for i in range(1, 4)]
    gz(
        "users.csv.gz",
        "username,tenant\n" + "".join(f"u{i},t{i}\n" for i in range(1, 4)),
    )
    pool_id = pool.seed(SCHEMA, [{"username": r["username"]} for r in rows])
    args: list[str | Path] = [
        "run",
        "users.csv.gz",
        "-m",
        BACKFILL,
        *real_run_args(pool.endpoint_url, pool_id),
    ]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert pool.user_attributes(pool_id, "u2")["custom:tenant_id"] == "t2"
    assert [r["status"] for r in read_report("report.csv")] == ["updated"] * 3
    # The same command again continues the job: the fingerprint matched.
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert pool.writes == {"u1": 1, "u2": 1, "u3": 1}


# --- folders of Parquet parts -------------------------------------------------------


def test_dry_run_of_a_spark_folder_reports_as_the_single_file() -> None:
    whole = pl.read_parquet(SAMPLES / "users.parquet")
    spark_folder("users", [whole.slice(0, 100), whole.slice(100, 0), whole.slice(100)])
    single = dry_run(SAMPLES / "users.parquet", NORMALISE_PHONE, "single.csv")
    parts = dry_run("users", NORMALISE_PHONE, "parts.csv")
    assert [int(r["row"]) for r in parts] == list(range(1, 301))
    assert parts == single


def test_validate_a_spark_folder() -> None:
    frame = pl.DataFrame({"username": ["u1", "u2", "u3"], "tenant": ["a", "b", ""]})
    spark_folder("users", [frame.head(2), frame.tail(1)])
    result = invoke("validate", "users", "-m", BACKFILL, "--schema", SCHEMA_FILE)
    assert result.exit_code == 0, result.output


def test_empty_folder() -> None:
    Path("adir").mkdir()
    assert input_error("adir") == (
        "Error: adir: is an empty folder; give a CSV or Parquet file, or a folder "
        "of Parquet parts\n"
    )


def test_folder_mixing_csv_and_parquet() -> None:
    spark_folder("users", [pl.DataFrame({"username": ["u1"], "tenant": ["a"]})])
    write("users/part-00001.csv", "username,tenant\nu2,b\n")
    assert input_error("users") == (
        "Error: users/part-00001.csv: is not a Parquet file, in a folder of "
        "Parquet parts; a folder must hold only Parquet parts (and _SUCCESS, "
        "_metadata or .crc files): move it out of the folder\n"
    )


def test_folder_whose_parts_differ() -> None:
    first = pl.DataFrame({"username": ["u1"], "tenant": ["a"]})
    spark_folder("users", [first, first.rename({"tenant": "tenant_id"})])
    assert input_error("users") == (
        "Error: users/part-00001-0b1c-c000.snappy.parquet: has other columns than "
        "part-00000-0b1c-c000.snappy.parquet (missing 'tenant'; extra "
        "'tenant_id'); every part must have the same columns: are two exports "
        "mixed in one folder?\n"
    )


def test_folder_with_format_csv() -> None:
    spark_folder("users", [pl.DataFrame({"username": ["u1"], "tenant": ["a"]})])
    assert input_error("users", "--format", "csv") == (
        "Error: users: is a folder; a folder is read only as Parquet parts, not "
        "with --format csv\n"
    )


def test_real_run_of_a_spark_folder_and_its_rerun(pool: EmulatedPool) -> None:
    frame = pl.DataFrame({"username": ["u1", "u2", "u3"], "tenant": ["t1", "t2", "t3"]})
    spark_folder("users", [frame.head(2), frame.tail(1)])
    pool_id = pool.seed(SCHEMA, [{"username": u} for u in frame["username"]])
    args: list[str | Path] = [
        "run",
        "users",
        "-m",
        BACKFILL,
        *real_run_args(pool.endpoint_url, pool_id),
    ]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert pool.user_attributes(pool_id, "u3")["custom:tenant_id"] == "t3"
    # Rebuilt from the input (its columns are there): the job knows the
    # folder it was made from has not changed.
    rows = read_report("report.csv")
    assert [(r["row"], r["user"], r["tenant"]) for r in rows] == [
        ("1", "u1", "t1"),
        ("2", "u2", "t2"),
        ("3", "u3", "t3"),
    ]
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert pool.writes == {"u1": 1, "u2": 1, "u3": 1}
    later = invoke("report", "job.sqlite", "-o", "later.csv")
    assert later.exit_code == 0, later.output
    assert read_report("later.csv") == read_report("report.csv")
