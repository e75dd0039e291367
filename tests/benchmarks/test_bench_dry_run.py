"""Dry-run speed and memory, measured against polars on the same file.

Run: python -m pytest tests/benchmarks/test_bench_dry_run.py --benchmarks -s
Figures are ratios measured in the same run, printed and checked. Every
workload runs on the two shapes of datagen.PHONE_SHAPES (phone numbers that
repeat, and all distinct; e-mails are always distinct), and both must meet
the limit.

Workloads: ``normalise-phone.toml`` (no alias mapped in the sample pool), the
mapping a real user writes (``real-mapping.toml``: login, tenant, plan with
strip/lower/map, seats as Number, phone with e164, email with strip/lower and
email_verified, name) on a pool where email and phone are sign-in aliases,
and the same mapping on a pool where neither is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from migrate.pipeline import dry_run, prepare
from migrate.schema import PoolSchema, load_schema_file
from tests.benchmarks.datagen import PHONE_SHAPES, write_bench_csv
from tests.conftest import MAPPINGS, ROOT, SAMPLES

pytestmark = pytest.mark.benchmark

REAL_MAPPING = Path(__file__).with_name("real-mapping.toml")
ROWS = 1_000_000


def pool_schema(path: Path, aliases: list[str]) -> Path:
    """The sample pool, signing users in with ``aliases`` (AliasAttributes)."""
    described = json.loads((SAMPLES / "pool-schema.json").read_text())
    described.get("UserPool", described)["AliasAttributes"] = aliases
    path.write_text(json.dumps(described))
    return path


#: (name, mapping, aliases of the pool, limit): the issue's targets.
WORKLOADS = [
    ("normalise-phone", MAPPINGS / "normalise-phone.toml", ["email"], 4.0),
    ("real mapping, no alias", REAL_MAPPING, [], 4.0),
    (
        "real mapping, email and phone aliases",
        REAL_MAPPING,
        ["email", "phone_number"],
        5.0,
    ),
]


def _timed(
    data: Path, mapping: Path, schema: PoolSchema, out: Path
) -> dict[str, float]:
    """polars reading the CSV and writing Parquet, then our dry run: seconds."""
    start = time.perf_counter()
    pl.read_csv(data).write_parquet(out / "polars.parquet")
    polars_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = dry_run(prepare(data, mapping, schema), report_path=out / "report.csv")
    ours = time.perf_counter() - start
    assert result.summary.total == ROWS
    return {
        "ours_s": round(ours, 2),
        "polars_s": round(polars_seconds, 2),
        "ratio": round(ours / polars_seconds, 2),
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dry-run")
    return {
        shape: write_bench_csv(folder / f"{shape}.csv", ROWS, phones=shape)
        for shape in PHONE_SHAPES
    }


@pytest.mark.parametrize(
    ("name", "mapping", "aliases", "limit"), WORKLOADS, ids=[w[0] for w in WORKLOADS]
)
def test_dry_run_against_polars_read_and_write(
    tmp_path: Path,
    inputs: dict[str, Path],
    name: str,
    mapping: Path,
    aliases: list[str],
    limit: float,
) -> None:
    schema = load_schema_file(pool_schema(tmp_path / "pool.json", aliases))
    figures: dict[str, object] = {"workload": name, "rows": ROWS, "limit": limit}
    for shape, data in inputs.items():
        figures[f"{shape}_phones"] = _timed(data, mapping, schema, tmp_path)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print("\n" + json.dumps(figures))
    for shape in inputs:
        assert figures[f"{shape}_phones"]["ratio"] <= limit  # type: ignore[index]


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child
# of this (large) pytest process would report the parent's size.
_PEAK = """
import re, sys, time
from pathlib import Path
from migrate.pipeline import dry_run, prepare
from migrate.schema import load_schema_file
data, mapping, schema, report, snapshot = sys.argv[1:6]
start = time.perf_counter()
job = prepare(data, mapping, load_schema_file(schema))
if snapshot != "-":
    job = job.with_snapshot(snapshot)
dry_run(job, report_path=report)
seconds = time.perf_counter() - start
status = Path("/proc/self/status").read_text()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), round(seconds, 1))
"""


def peak(
    data: Path, mapping: Path, schema: Path, report: Path, snapshot: Path | None = None
) -> tuple[int, float]:
    """Peak memory (KiB) and seconds of a dry run in a process of its own."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK,
            *(str(data), str(mapping), str(schema), str(report)),
            str(snapshot) if snapshot is not None else "-",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    kib, seconds = out.stdout.strip().splitlines()[-1].split()
    return int(kib), float(seconds)


def write_snapshot(data: Path, path: Path) -> Path:
    """A snapshot of every user in ``data``: same e-mails, a tenant of its own
    for one user in ten (the diff then sends those), phones unknown."""
    users = pl.scan_csv(data, infer_schema=False).select(
        pl.col("username"),
        pl.lit("CONFIRMED").alias("status"),
        pl.lit("true").alias("enabled"),
        pl.col("email").str.strip_chars().str.to_lowercase(),
        pl.when(pl.int_range(pl.len()) % 10 == 0)
        .then(pl.lit("old"))
        .otherwise(pl.col("tenant"))
        .alias("custom:tenant_id"),
    )
    users.sink_parquet(path)
    return path


MEMORY_WORKLOADS = [
    ("normalise-phone", MAPPINGS / "normalise-phone.toml", ["email"], False),
    ("alias mapping", REAL_MAPPING, ["email", "phone_number"], False),
    ("alias mapping --diff", REAL_MAPPING, ["email", "phone_number"], True),
]


@pytest.mark.parametrize("shape", PHONE_SHAPES)
def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path, shape: str) -> None:
    small = write_bench_csv(tmp_path / "small.csv", 500_000, phones=shape, seed=1)
    large = write_bench_csv(tmp_path / "large.csv", 5_000_000, phones=shape, seed=100)
    snapshots = {
        data: write_snapshot(data, tmp_path / f"{data.stem}.snapshot.parquet")
        for data in (small, large)
    }
    failed = []
    for name, mapping, aliases, diff in MEMORY_WORKLOADS:
        schema = pool_schema(tmp_path / "pool.json", aliases)
        found = {}
        for data in (small, large):
            found[data.stem] = peak(
                data,
                mapping,
                schema,
                tmp_path / f"{data.stem}.report.csv",
                snapshots[data] if diff else None,
            )
        ratio = found["large"][0] / found["small"][0]
        print(
            "\n"
            + json.dumps(
                {
                    "workload": name,
                    "phones": shape,
                    "peak_rss_500k_mib": round(found["small"][0] / 1024),
                    "peak_rss_5m_mib": round(found["large"][0] / 1024),
                    "ratio": round(ratio, 2),
                    "seconds_500k": found["small"][1],
                    "seconds_5m": found["large"][1],
                    "load_average": round(os.getloadavg()[0], 2),
                    "limit": 1.5,
                }
            )
        )
        if ratio > 1.5:
            failed.append(name)
    assert not failed


@pytest.mark.parametrize("shape", PHONE_SHAPES)
def test_twenty_million_rows_complete(tmp_path: Path, shape: str) -> None:
    """The alias mapping and its --diff over 20,000,000 rows, on this machine."""
    data = write_bench_csv(tmp_path / "users.csv", 20_000_000, phones=shape, seed=7)
    snapshot = write_snapshot(data, tmp_path / "snapshot.parquet")
    schema = pool_schema(tmp_path / "pool.json", ["email", "phone_number"])
    for diff in (False, True):
        kib, seconds = peak(
            data,
            REAL_MAPPING,
            schema,
            tmp_path / "report.csv",
            snapshot if diff else None,
        )
        print(
            "\n"
            + json.dumps(
                {
                    "rows": 20_000_000,
                    "phones": shape,
                    "diff": diff,
                    "peak_rss_mib": round(kib / 1024),
                    "seconds": seconds,
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
        )
        (tmp_path / "report.csv").unlink()
