"""The dry run maps the alias attributes once: the whole-file pass's columns
(aliases.WholeFile.mapped) are exactly what mapping each batch would give."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from migrate import spill
from migrate.pipeline import dry_run, prepare
from migrate.schema import load_schema_file
from migrate.source import SourceOptions
from tests.conftest import SAMPLES

MAPPING = """
[user]
column = "username"

[attributes.email]
column = "email"
transform = ["strip", "lower"]

[attributes.phone_number]
column = "phone"
transform = ["e164"]
region = "US"

[attributes."custom:tenant_id"]
column = "tenant"
transform = ["upper"]

[attributes.name]
template = "{first} {last}"
"""

ROWS: dict[str, list[str | None]] = {
    "username": ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy"],
    "email": [
        " Ann@X.com ",
        "ann@x.com",
        "",
        "=cmd@x.com",
        "b@x.com",
        "not an email",
        None,
        "C@x.com",
        "c@x.com",
    ],
    "phone": [
        "(415) 555-0100",
        "+1 415 555 0100",
        "12",
        "",
        "+44 20 7946 0123",
        "415.555.0101 x12",
        None,
        "4155550102",
        "+1 (415) 555-0102",
    ],
    "tenant": ["t1", "", "t2", None, "t3", "t1", "t2", "t3", "t1"],
    "first": ["Ann", "", "Cy", None, "Eve", "Fay", " ", "Hal", "Ivy"],
    "last": ["Lee", "Bo", "", None, "Ng", "Li", "", "Ho", "Yu"],
}


@pytest.fixture
def job_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    data = tmp_path / "in.csv"
    pl.DataFrame(ROWS, schema=dict.fromkeys(ROWS, pl.String)).write_csv(data)
    mapping = tmp_path / "m.toml"
    mapping.write_text(MAPPING)
    described = json.loads((SAMPLES / "pool-schema.json").read_text())
    described.get("UserPool", described)["AliasAttributes"] = ["email", "phone_number"]
    schema = tmp_path / "pool.json"
    schema.write_text(json.dumps(described))
    return data, mapping, schema


@pytest.mark.parametrize("spilled", [False, True])
def test_the_pass_maps_the_alias_columns_as_each_batch_would(
    job_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, spilled: bool
) -> None:
    if spilled:  # the mapped columns on disk, a few rows a file
        monkeypatch.setattr(spill, "FLUSH_ROWS", 2)
        monkeypatch.setattr(spill, "BUCKET_ROWS", 3)
        monkeypatch.setattr(spill, "CHUNK_ROWS", 4)
    data, mapping, schema = job_files
    job = prepare(
        data,
        mapping,
        load_schema_file(schema),
        source_options=SourceOptions(batch_size=4),
    )
    assert set(job.alias_attributes) == {"email", "phone_number"}
    table = job._whole_file().mapped
    assert table is not None
    assert len(table) == len(ROWS["username"])
    assert table.spilled is spilled
    for batch in job.source.batches():
        assert_frame_equal(job.mapped(batch), job.mapping.apply(batch))


def test_a_row_the_pass_did_not_map_is_mapped_with_its_batch(
    job_files: tuple[Path, Path, Path],
) -> None:
    data, mapping, schema = job_files
    job = prepare(data, mapping, load_schema_file(schema))
    batch = next(job.source.batches())
    unseen = batch.with_columns(pl.col("__row") + 100)
    assert_frame_equal(job.mapped(unseen), job.mapping.apply(unseen))


def test_the_report_is_the_same_with_the_columns_reused(
    job_files: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, mapping, schema = job_files
    reused = dry_run(
        prepare(data, mapping, load_schema_file(schema)),
        report_path=tmp_path / "reused.csv",
        now=lambda: "2026-01-01T00:00:00Z",
    )
    monkeypatch.setattr(
        "migrate.pipeline.Job.mapped",
        lambda self, batch: self.mapping.apply(batch),
    )
    mapped = dry_run(
        prepare(data, mapping, load_schema_file(schema)),
        report_path=tmp_path / "mapped.csv",
        now=lambda: "2026-01-01T00:00:00Z",
    )
    assert (tmp_path / "reused.csv").read_bytes() == (
        tmp_path / "mapped.csv"
    ).read_bytes()
    assert reused.summary.problems == mapped.summary.problems
