"""Dry-run speed and memory, measured against polars on the same file.

Run: python -m pytest tests/benchmarks/test_bench_dry_run.py --benchmarks -s
Figures are ratios measured in the same run, printed and checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from migrate.pipeline import dry_run, prepare
from migrate.schema import load_schema_file
from tests.benchmarks.datagen import BENCH_COLUMNS, users_frame
from tests.conftest import MAPPINGS, SAMPLES

pytestmark = pytest.mark.benchmark


def write_input(path: Path, rows: int) -> Path:
    users_frame(rows, seed=1).select(BENCH_COLUMNS).write_csv(path)
    return path


def test_dry_run_within_5x_of_polars_read_and_write(tmp_path: Path) -> None:
    data = write_input(tmp_path / "users.csv", 1_000_000)
    schema = load_schema_file(SAMPLES / "pool-schema.json")
    mapping = MAPPINGS / "normalise-phone.toml"

    start = time.perf_counter()
    pl.read_csv(data).write_parquet(tmp_path / "polars.parquet")
    polars_seconds = time.perf_counter() - start

    start = time.perf_counter()
    job = prepare(data, mapping, schema)
    result = dry_run(job, report_path=tmp_path / "report.csv")
    ours = time.perf_counter() - start

    assert result.summary.total == 1_000_000
    ratio = ours / polars_seconds

    # The generated file repeats phone numbers (4,210 distinct), and e164 works
    # once per distinct value; a file where every number differs costs more.
    distinct = tmp_path / "distinct.csv"
    n = 1_000_000
    index = pl.int_range(0, n, eager=True)
    pl.read_csv(data, infer_schema=False).with_columns(
        pl.format(
            "({}) {}-{}",
            (index % 800 + 201).cast(pl.String),
            ((index // 800) % 800 + 200).cast(pl.String),
            (index % 10_000).cast(pl.String).str.zfill(4),
        ).alias("phone")
    ).write_csv(distinct)
    start = time.perf_counter()
    pl.read_csv(distinct).write_parquet(tmp_path / "polars2.parquet")
    polars_distinct = time.perf_counter() - start
    start = time.perf_counter()
    dry_run(prepare(distinct, mapping, schema), report_path=tmp_path / "r2.csv")
    ours_distinct = time.perf_counter() - start
    print(
        "\n"
        + json.dumps(
            {
                "rows": n,
                "ours_s": round(ours, 2),
                "polars_read_write_s": round(polars_seconds, 2),
                "ratio": round(ratio, 2),
                "distinct_phones_ours_s": round(ours_distinct, 2),
                "distinct_phones_polars_s": round(polars_distinct, 2),
                "distinct_phones_ratio": round(ours_distinct / polars_distinct, 2),
            }
        )
    )
    assert ratio <= 5


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child
# of this (large) pytest process would report the parent's size.
_PEAK = """
import re, sys
from pathlib import Path
from migrate.pipeline import dry_run, prepare
from migrate.schema import load_schema_file
job = prepare(sys.argv[1], sys.argv[2], load_schema_file(sys.argv[3]))
dry_run(job, report_path=sys.argv[4])
status = Path("/proc/self/status").read_text()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


def _peak_kib(data: Path, report: Path) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK,
            str(data),
            str(MAPPINGS / "normalise-phone.toml"),
            str(SAMPLES / "pool-schema.json"),
            str(report),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    small = write_input(tmp_path / "small.csv", 500_000)
    large = tmp_path / "large.csv"
    # 5,000,000 rows, written in slices so the generator itself stays small.
    with large.open("wb") as handle:
        for part in range(10):
            frame = users_frame(500_000, seed=100 + part).select(BENCH_COLUMNS)
            frame = frame.with_columns(
                pl.col("username") + f"-{part}", pl.col("email") + f".p{part}"
            )
            frame.write_csv(handle, include_header=part == 0)
    small_peak = _peak_kib(small, tmp_path / "small.report.csv")
    large_peak = _peak_kib(large, tmp_path / "large.report.csv")
    ratio = large_peak / small_peak
    print(
        "\n"
        + json.dumps(
            {
                "peak_rss_500k_mib": round(small_peak / 1024),
                "peak_rss_5m_mib": round(large_peak / 1024),
                "ratio": round(ratio, 2),
            }
        )
    )
    assert ratio <= 1.5
