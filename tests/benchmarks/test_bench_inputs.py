"""Inputs as exports come: a .csv.gz and a folder of Parquet parts, measured.

Run: python -m pytest tests/benchmarks/test_bench_inputs.py --benchmarks -s
Each process is measured on its own (VmHWM of a fresh interpreter); the figures
are printed as JSON and the ratios checked.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.benchmarks.datagen import BENCH_COLUMNS, users_frame
from tests.conftest import MAPPINGS, SAMPLES

pytestmark = pytest.mark.benchmark

SMALL = 300_000
LARGE = 3_000_000
SLICE = 500_000

# What a run reads: the whole file once with every check (a real run's
# verify), then a dry run. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
# fork and exec, so a child of this (large) pytest process would report the
# parent's size.
_MEASURE = """
import json, re, sys, time
from pathlib import Path
from migrate.pipeline import dry_run, prepare
from migrate.schema import load_schema_file
from migrate.source import SourceOptions, open_source
start = time.perf_counter()
rows = open_source(sys.argv[1], SourceOptions(verify=True)).count_rows()
verify_s = time.perf_counter() - start
start = time.perf_counter()
job = prepare(sys.argv[1], sys.argv[2], load_schema_file(sys.argv[3]))
dry_run(job, report_path=sys.argv[4])
dry_run_s = time.perf_counter() - start
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(json.dumps({"rows": rows, "verify_s": round(verify_s, 2),
                  "dry_run_s": round(dry_run_s, 2), "peak_mib": round(peak / 1024)}))
"""


def measure(data: Path, report: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            str(data),
            str(MAPPINGS / "normalise-phone.toml"),
            str(SAMPLES / "pool-schema.json"),
            str(report),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def slices(rows: int) -> list[pl.DataFrame]:
    """``rows`` generated users in slices, unique across slices."""
    frames: list[pl.DataFrame] = []
    for part in range(max(1, rows // SLICE)):
        frame = users_frame(min(rows, SLICE), seed=100 + part).select(BENCH_COLUMNS)
        frames.append(
            frame.with_columns(
                pl.col("username") + f"-{part}", pl.col("email") + f".p{part}"
            )
        )
    return frames


def write_csv(path: Path, rows: int) -> Path:
    with path.open("wb") as handle:
        for index, frame in enumerate(slices(rows)):
            frame.write_csv(handle, include_header=index == 0)
    return path


def gzip_file(plain: Path) -> Path:
    packed = plain.with_name(plain.name + ".gz")
    with plain.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as out:
        shutil.copyfileobj(source, out, 8 << 20)
    return packed


def test_gzip_csv_memory_is_flat_and_time_close_to_plain(tmp_path: Path) -> None:
    small = gzip_file(write_csv(tmp_path / "small.csv", SMALL))
    plain = write_csv(tmp_path / "large.csv", LARGE)
    large = gzip_file(plain)
    figures: dict[str, dict[str, float]] = {
        "gz_small": measure(small, tmp_path / "r1.csv"),
        "gz_large": measure(large, tmp_path / "r2.csv"),
        "plain_large": measure(plain, tmp_path / "r3.csv"),
        "bytes": {
            "plain_large": plain.stat().st_size,
            "gz_large": large.stat().st_size,
        },
    }
    ratio = figures["gz_large"]["peak_mib"] / figures["gz_small"]["peak_mib"]
    slower = figures["gz_large"]["dry_run_s"] / figures["plain_large"]["dry_run_s"]
    print(
        "\n"
        + json.dumps(
            figures
            | {"peak_ratio": round(ratio, 2), "dry_run_vs_plain": round(slower, 2)}
        )
    )
    assert ratio <= 1.5
    assert slower <= 2


def test_parquet_folder_memory_is_flat(tmp_path: Path) -> None:
    def folder(name: str, rows: int) -> Path:
        path = tmp_path / name
        path.mkdir()
        for index, frame in enumerate(slices(rows)):
            frame.write_parquet(path / f"part-{index:05d}-x-c000.snappy.parquet")
        (path / "_SUCCESS").write_bytes(b"")
        return path

    small = folder("small", SMALL)
    large = folder("large", LARGE)
    single = tmp_path / "single.parquet"
    pl.concat(slices(LARGE)).write_parquet(single)
    figures = {
        "folder_small": measure(small, tmp_path / "r1.csv"),
        "folder_large": measure(large, tmp_path / "r2.csv"),
        "single_large": measure(single, tmp_path / "r3.csv"),
    }
    ratio = figures["folder_large"]["peak_mib"] / figures["folder_small"]["peak_mib"]
    print("\n" + json.dumps(figures | {"peak_ratio": round(ratio, 2)}))
    assert ratio <= 1.5
