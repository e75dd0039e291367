from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from migrate import report
from migrate.errors import ConfigError
from migrate.records import REPORT_COLUMNS, ROW, Outcome, Status
from migrate.report import (
    REPORT_SCHEMA,
    ReportWriter,
    Summary,
    csv_safe,
    empty_report_frame,
    outcomes_to_frame,
    report_format,
    report_input_names,
    report_schema,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

OUTCOMES = [
    Outcome(
        row=1,
        user="jdoe42",
        username="jdoe42",
        status=Status.UPDATED,
        changed=("custom:plan", "custom:tenant_id"),
        deleted=("custom:legacy_flag",),
        attempts=1,
        finished_at="2024-06-11T10:00:00Z",
    ),
    Outcome(
        row=2,
        user="asmith7",
        status=Status.INVALID,
        error_code="invalid_phone",
        error_message="row 2, column 'phone' -> phone_number: '555-01' is not valid",
    ),
    Outcome(
        row=3,
        user="bob",
        username="b0b",
        status=Status.FAILED,
        error_code="UserNotFoundException",
        error_message="User does not exist.",
        attempts=1,
        finished_at="2024-06-11T10:00:01Z",
        delivery="b***@e***",
    ),
]

INPUTS = pl.DataFrame(
    {
        ROW: [3, 2, 1],
        "username": ["bob", "asmith7", "jdoe42"],
        "phone": ["+1 415-555-0100", "555-01", "=cmd"],
        "access_token": ["tok-3", "tok-2", "tok-1"],
    },
    schema_overrides={ROW: pl.Int64},
)
INPUT_COLUMNS = ["username", "phone"]


@pytest.fixture
def frame() -> pl.DataFrame:
    return outcomes_to_frame(OUTCOMES, INPUTS, input_columns=INPUT_COLUMNS)


def write_report(path: Path, *frames: pl.DataFrame) -> None:
    with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
        for batch in frames:
            writer.write(batch)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would make new files world-readable (and writable)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- formats -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("out.csv", "csv"),
        ("out.CSV", "csv"),
        ("out.parquet", "parquet"),
        ("out.pq", "parquet"),
        ("out.jsonl", "jsonl"),
        ("out.ndjson", "jsonl"),
    ],
)
def test_report_format_by_extension(name: str, expected: str) -> None:
    assert report_format(Path("dir") / name) == expected


@pytest.mark.parametrize("name", ["x.txt", "x", "x.csv.gz", "x.json"])
def test_report_format_rejects_unknown_extension(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        report_format(name)
    assert str(info.value) == (
        f"report file '{name}': unknown extension; use .csv, .parquet (.pq) or "
        ".jsonl (.ndjson, JSON lines)"
    )


def test_report_schema_matches_report_columns() -> None:
    assert tuple(REPORT_SCHEMA) == REPORT_COLUMNS
    assert list(report_schema(["a"])) == [*REPORT_COLUMNS, "a"]


# --- frames ------------------------------------------------------------------


def test_outcomes_to_frame_joins_inputs_by_row(frame: pl.DataFrame) -> None:
    assert frame.schema == report_schema(INPUT_COLUMNS)
    assert frame["row"].to_list() == [1, 2, 3]
    assert frame["username"].to_list() == ["jdoe42", None, "b0b"]
    assert frame["changed"].to_list() == [["custom:plan", "custom:tenant_id"], [], []]
    assert frame["status"].to_list() == ["updated", "invalid", "failed"]
    # The input column "username" collides with the report's own "username".
    assert frame["input:username"].to_list() == ["jdoe42", "asmith7", "bob"]
    assert frame["phone"].to_list() == ["=cmd", "555-01", "+1 415-555-0100"]
    assert "access_token" not in frame.columns


def test_outcomes_to_frame_carries_all_input_columns_by_default() -> None:
    frame = outcomes_to_frame(OUTCOMES[:1], INPUTS.drop("access_token"))
    assert frame.columns[len(REPORT_COLUMNS) :] == ["input:username", "phone"]


def test_outcomes_to_frame_without_inputs_has_null_input_columns() -> None:
    frame = outcomes_to_frame(OUTCOMES, input_columns=["tenant"])
    assert frame["tenant"].to_list() == [None, None, None]
    assert outcomes_to_frame([]).equals(empty_report_frame())


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        pytest.param(["tenant", "plan"], ["tenant", "plan"], id="no-collision"),
        pytest.param(["user", "status"], ["input:user", "input:status"], id="report"),
        pytest.param(
            ["user", "input:user"],
            ["input:input:user", "input:user"],
            id="prefixed-name-taken",
        ),
    ],
)
def test_report_input_names(columns: list[str], expected: list[str]) -> None:
    assert report_input_names(columns) == expected


def test_report_input_names_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicate input column names"):
        report_input_names(["a", "a"])


# --- round trips -------------------------------------------------------------


def test_csv_round_trip(tmp_path: Path, frame: pl.DataFrame) -> None:
    path = tmp_path / "report.csv"
    write_report(path, frame[:2], frame[2:])
    text = path.read_text()
    assert text.count("row,user,username,status") == 1
    back = pl.read_csv(path, infer_schema=False)
    assert back.columns == list(report_schema(INPUT_COLUMNS))
    # Empty lists are written as "" (quoted): no attributes, as opposed to unknown.
    assert back["changed"].to_list() == ["custom:plan;custom:tenant_id", "", ""]
    assert back["deleted"].to_list() == ["custom:legacy_flag", "", ""]
    assert back["row"].to_list() == ["1", "2", "3"]
    assert back["delivery"].to_list() == [None, None, "b***@e***"]
    assert back["phone"].to_list() == ["'=cmd", "555-01", "+1 415-555-0100"]


def test_parquet_round_trip_keeps_lists_and_types(
    tmp_path: Path, frame: pl.DataFrame
) -> None:
    path = tmp_path / "report.parquet"
    write_report(path, frame[:1], frame[1:2], frame[2:])
    back = pl.read_parquet(path)
    assert back.equals(frame)
    assert back.schema == report_schema(INPUT_COLUMNS)


def test_parquet_parts_are_concatenated_in_order(
    tmp_path: Path, frame: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "_PART_ROWS", 2)
    path = tmp_path / "report.pq"
    batches = [frame, frame.with_columns(pl.col("row") + 3)]
    write_report(path, *batches, frame[:0], frame[:1].with_columns(row=pl.lit(7)))
    assert pl.read_parquet(path)["row"].to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert os.listdir(tmp_path) == ["report.pq"]


def test_jsonl_round_trip_keeps_lists_and_raw_values(
    tmp_path: Path, frame: pl.DataFrame
) -> None:
    path = tmp_path / "report.jsonl"
    write_report(path, frame[:2], frame[2:])
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["changed"] == ["custom:plan", "custom:tenant_id"]
    assert first["phone"] == "=cmd"
    back = pl.read_ndjson(path, schema=report_schema(INPUT_COLUMNS))
    assert back.equals(frame)


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet", "empty.jsonl"])
def test_empty_report_is_a_valid_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with ReportWriter(path, input_columns=["tenant"]) as writer:
        assert writer.rows == 0
    schema = report_schema(["tenant"])
    if name.endswith(".csv"):
        assert path.read_text() == ",".join(schema) + "\n"
    elif name.endswith(".parquet"):
        assert pl.read_parquet(path).equals(empty_report_frame(["tenant"]))
    else:
        assert path.read_bytes() == b""
        assert pl.read_ndjson(path, schema=schema).is_empty()


# --- file safety -------------------------------------------------------------


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("name", ["r.csv", "r.parquet", "r.jsonl"])
def test_report_is_owner_only_from_the_start(
    tmp_path: Path, frame: pl.DataFrame, name: str
) -> None:
    path = tmp_path / name
    with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
        writer.write(frame)
        created = list(tmp_path.iterdir())
        assert created, "the writer works in a temporary file next to the report"
        for entry in created:
            assert mode(entry) == (0o700 if entry.is_dir() else 0o600), entry
    assert mode(path) == 0o600


@pytest.mark.parametrize("name", ["r.csv", "r.parquet", "r.jsonl"])
def test_existing_report_is_replaced_atomically(
    tmp_path: Path, frame: pl.DataFrame, name: str
) -> None:
    path = tmp_path / name
    path.write_text("old report\n")
    path.chmod(0o644)
    with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
        writer.write(frame)
        assert path.read_text() == "old report\n"
    assert path.read_bytes() != b"old report\n"
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", ["r.csv", "r.parquet", "r.jsonl"])
def test_failure_inside_with_keeps_the_old_report(
    tmp_path: Path, frame: pl.DataFrame, name: str
) -> None:
    path = tmp_path / name
    path.write_text("old report\n")

    def crash_while_writing() -> None:
        with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
            writer.write(frame)
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        crash_while_writing()
    assert path.read_text() == "old report\n"
    assert os.listdir(tmp_path) == [name]


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "r.csv"
    with pytest.raises(ConfigError) as info:
        ReportWriter(path)
    assert str(info.value) == (
        f"report file '{path}': cannot write in '{path.parent}': "
        "No such file or directory"
    )


def test_directory_as_report_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "dir.csv"
    path.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        ReportWriter(path)


def test_write_checks_columns_and_state(tmp_path: Path, frame: pl.DataFrame) -> None:
    writer = ReportWriter(tmp_path / "r.csv", input_columns=[*INPUT_COLUMNS, "x"])
    with pytest.raises(ValueError, match=r"report frame lacks columns: \['x'\]"):
        writer.write(frame)
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="report writer is closed"):
        writer.write(frame)


def test_report_never_contains_columns_not_declared(
    tmp_path: Path, frame: pl.DataFrame
) -> None:
    path = tmp_path / "r.csv"
    with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
        writer.write(frame.with_columns(access_token=pl.lit("tok-secret")))
    assert "tok-secret" not in path.read_text()


# --- CSV formula injection ---------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        pytest.param("=1+2", "'=1+2", id="equals"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("+SUM(A1)", "'+SUM(A1)", id="plus-formula"),
        pytest.param("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0", id="dde"),
        pytest.param("\t=x", "'\t=x", id="tab"),
        pytest.param("\r=x", "'\r=x", id="carriage-return"),
        pytest.param("-5+A1", "'-5+A1", id="arithmetic-with-ref"),
        pytest.param("+1 415-555-0100", "+1 415-555-0100", id="phone"),
        pytest.param("+1 (415) 555.0100", "+1 (415) 555.0100", id="phone-dots"),
        pytest.param("-5", "-5", id="negative"),
        pytest.param("-", "-", id="dash"),
        pytest.param("a=1", "a=1", id="equals-inside"),
        pytest.param("'=x", "''=x", id="already-quoted"),
        pytest.param("'hello", "'hello", id="quote-alone"),
        pytest.param("", "", id="empty"),
        pytest.param(None, None, id="null"),
    ],
)
def test_csv_formula_cells_are_escaped(cell: str | None, written: str | None) -> None:
    frame = pl.DataFrame({"a": [cell]}, schema={"a": pl.String})
    assert csv_safe(frame)["a"].to_list() == [written]


def test_formula_escaping_applies_to_every_string_column_in_csv_only(
    tmp_path: Path,
) -> None:
    outcome = Outcome(
        row=1,
        user="=user",
        status=Status.FAILED,
        error_message="@boom",
        changed=("=a",),
    )
    frame = outcomes_to_frame([outcome], input_columns=[])
    write_report_plain = {
        "csv": tmp_path / "r.csv",
        "parquet": tmp_path / "r.parquet",
        "jsonl": tmp_path / "r.jsonl",
    }
    for path in write_report_plain.values():
        with ReportWriter(path) as writer:
            writer.write(frame)
    back = pl.read_csv(write_report_plain["csv"], infer_schema=False)
    assert back.select("user", "changed", "error_message").row(0) == (
        "'=user",
        "'=a",
        "'@boom",
    )
    assert pl.read_parquet(write_report_plain["parquet"]).equals(frame)
    raw = json.loads(write_report_plain["jsonl"].read_text())
    assert (raw["user"], raw["changed"], raw["error_message"]) == (
        "=user",
        ["=a"],
        "@boom",
    )


# --- a failures-only report is input for a new run --------------------------


def test_failures_only_csv_report_is_valid_input(tmp_path: Path) -> None:
    source = pl.read_csv(SAMPLES / "users.csv", infer_schema=False)
    inputs = source.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(int))
    columns = [c for c in source.columns if c != "access_token"]
    bad = {17, 34, 52, 88, 105, 173, 190, 207, 224, 241, 258}
    outcomes = [
        Outcome(
            row=row,
            user=user or "",
            status=Status.INVALID if row in bad else Status.UPDATED,
            error_code="bad" if row in bad else None,
        )
        for row, user in inputs.select(ROW, "username").iter_rows()
    ]
    frame = outcomes_to_frame(outcomes, inputs, input_columns=columns)
    path = tmp_path / "failures.csv"
    with ReportWriter(path, input_columns=columns) as writer:
        for batch in frame.iter_slices(100):
            writer.write(batch.filter(pl.col("status") != "updated"))

    back = pl.read_csv(path, infer_schema=False)
    assert back["row"].cast(int).to_list() == sorted(bad)
    # "username" is also a report column: the input cell is under "input:username".
    again = back.select(pl.col("input:username").alias("username"), *columns[1:])
    expected = source.select(columns)[[row - 1 for row in sorted(bad)]]
    hyperlink = '=HYPERLINK("http://evil.example/","click me")'
    assert expected.filter(pl.col("tenant") == hyperlink).height == 1
    expected = expected.with_columns(
        tenant=pl.when(pl.col("tenant") == hyperlink)
        .then(pl.lit("'" + hyperlink))
        .otherwise(pl.col("tenant"))
    )
    assert again.equals(expected)
    assert "+1" in "".join(again["phone"].drop_nulls()), "phones kept unescaped"
    assert "access_token" not in back.columns


# --- summary -----------------------------------------------------------------


def test_summary_render_exact() -> None:
    batch = outcomes_to_frame(OUTCOMES)
    more = outcomes_to_frame(
        [
            Outcome(
                row=i,
                user=f"u{i}",
                status=Status.UPDATED,
                changed=("custom:plan",),
                deleted=("custom:legacy_flag",),
            )
            for i in range(4, 1504)
        ]
    )
    summary = Summary(
        problems={"invalid_phone": 1, "too_long": 3, "unused": 0},
        examples=[
            ("jdoe42", {"custom:plan": "enterprise", "name": "J O'Doe"}, []),
            ("asmith7", {}, ["custom:legacy_flag"]),
            ("bob", {"custom:note": "x" * 80}, ["custom:legacy_flag"]),
            ("carol", {}, []),
        ],
        warnings=["--rate 24 is close to the UserUpdate quota (25/s)"],
    )
    summary.add(batch)
    summary.add(more)
    summary.add_problems({"invalid_phone": 2})
    assert summary.render() == "\n".join(
        [
            "Rows: 1,503",
            "  updated  1,501",
            "  invalid      1",
            "  failed       1",
            "",
            "Problems by code:",
            "  invalid_phone  3",
            "  too_long       3",
            "",
            "Rows that did not end well, by code (the first few):",
            "  UserNotFoundException  1",
            "    row 3, bob: User does not exist.",
            "  invalid_phone          1",
            "    row 2, asmith7: column 'phone' -> phone_number: '555-01' is not valid",
            "",
            "Attribute changes:",
            "  custom:legacy_flag  1,501 deleted",
            "  custom:plan         1,501 set",
            "  custom:tenant_id        1 set",
            "",
            "Example requests:",
            "  jdoe42: set custom:plan='enterprise', name=\"J O'Doe\"",
            "  asmith7: delete custom:legacy_flag",
            "  bob: set custom:note='" + "x" * 57 + "...'; delete custom:legacy_flag",
            "  carol: no change",
            "",
            "Warnings:",
            "  - --rate 24 is close to the UserUpdate quota (25/s)",
        ]
    )
    assert summary.total == 1503
    assert summary.status_counts[Status.UNCHANGED] == 0
    assert list(summary.status_counts) == list(Status)
    assert not summary.all_ok


def test_summary_of_nothing() -> None:
    summary = Summary()
    assert summary.render() == "Rows: 0"
    assert summary.all_ok


def test_summarize_accumulates_batches() -> None:
    frames = [outcomes_to_frame(OUTCOMES[:1]), outcomes_to_frame(OUTCOMES[:1])]
    summary = Summary(warnings=["careful"])
    for frame in frames:
        summary.add(frame)
    assert summary.render() == "\n".join(
        [
            "Rows: 2",
            "  updated  2",
            "",
            "Attribute changes:",
            "  custom:legacy_flag  2 deleted",
            "  custom:plan         2 set",
            "  custom:tenant_id    2 set",
            "",
            "Warnings:",
            "  - careful",
        ]
    )
    assert summary.all_ok


def test_summary_rejects_unknown_status() -> None:
    frame = outcomes_to_frame(OUTCOMES[:1]).with_columns(status=pl.lit("weird"))
    with pytest.raises(ValueError, match="'weird' is not a valid Status"):
        Summary().add(frame)


def test_summary_counts_each_name_of_every_list() -> None:
    """Counted per distinct list: lists in any order and combination, empty and
    null lists, and a name twice in one list all count as exploding them does."""
    lists = [
        ["a", "b"],
        ["b", "a"],
        [],
        None,
        ["a"],
        ["c", "c"],
        ["a", "b"],
    ]
    frame = outcomes_to_frame(OUTCOMES[:1])
    batch = pl.concat([frame] * len(lists)).with_columns(
        changed=pl.Series(lists, dtype=pl.List(pl.String)),
        deleted=pl.Series([[]] * len(lists), dtype=pl.List(pl.String)),
    )
    summary = Summary()
    summary.add(batch)
    summary.add(batch.head(1))
    assert dict(summary.changed) == {"a": 5, "b": 4, "c": 2}
    assert not summary.deleted
