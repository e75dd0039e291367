"""The diff: its cost against a dry run, and the writes it saves.

Run: python -m pytest tests/benchmarks/test_bench_diff.py --benchmarks -s
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from migrate.cli import cli
from migrate.pipeline import dry_run, prepare
from migrate.records import Status
from migrate.schema import load_schema_file
from tests.benchmarks.datagen import BENCH_COLUMNS, users_frame
from tests.cli.helpers import real_run_args
from tests.conftest import MAPPINGS, SAMPLES
from tests.support.faults import Faults, FaultyPool

pytestmark = pytest.mark.benchmark

SCHEMA = load_schema_file(SAMPLES / "pool-schema.json")
SCHEMA_JSON = json.loads((SAMPLES / "pool-schema.json").read_text())


def _snapshot(users: pl.DataFrame, path: Path, *, unchanged: float) -> Path:
    """A snapshot where a share of the users already hold their new tenant."""
    n = users.height
    same = pl.int_range(0, n, eager=True) < int(n * unchanged)
    frame = users.select(
        pl.col("username"),
        pl.lit("CONFIRMED").alias("status"),
        pl.lit("true").alias("enabled"),
        pl.col("email"),
        pl.when(same)
        .then(pl.col("tenant"))
        .otherwise(pl.lit("old"))
        .alias("custom:tenant_id"),
    )
    columns = {name: pl.lit(None, dtype=pl.String) for name in SCHEMA.attributes}
    columns.pop("email")
    columns.pop("custom:tenant_id")
    frame.with_columns(**columns).write_parquet(path)
    return path


def test_diff_costs_at_most_3x_a_dry_run(tmp_path: Path) -> None:
    users = users_frame(1_000_000, seed=5).select(BENCH_COLUMNS)
    data = tmp_path / "users.csv"
    users.write_csv(data)
    snap = _snapshot(users, tmp_path / "snap.parquet", unchanged=0.8)
    mapping = MAPPINGS / "backfill-tenant.toml"

    start = time.perf_counter()
    plain = dry_run(prepare(data, mapping, SCHEMA), report_path=tmp_path / "a.csv")
    plain_seconds = time.perf_counter() - start

    start = time.perf_counter()
    job = prepare(data, mapping, SCHEMA).with_snapshot(snap)
    diffed = dry_run(job, report_path=tmp_path / "b.csv")
    diff_seconds = time.perf_counter() - start

    sends_plain = plain.summary.statuses[Status.WOULD_UPDATE]
    sends_diff = diffed.summary.statuses[Status.WOULD_UPDATE]
    figures = {
        "rows": 1_000_000,
        "dry_run_s": round(plain_seconds, 2),
        "diff_dry_run_s": round(diff_seconds, 2),
        "diff_over_dry_run": round(diff_seconds / plain_seconds, 2),
        "would_send_without_diff": sends_plain,
        "would_send_with_diff": sends_diff,
        "writes_ratio": round(sends_diff / sends_plain, 3),
    }
    print("\n" + json.dumps(figures))
    assert figures["diff_over_dry_run"] <= 3
    assert sends_diff == 200_000
    assert diffed.summary.statuses[Status.UNCHANGED] == 800_000


def test_80_percent_unchanged_sends_a_fifth_of_the_writes(tmp_path: Path) -> None:
    n = 1000
    rows = [
        {"username": f"u{i:04d}", "custom:tenant_id": f"t{i % 7}"} for i in range(n)
    ]
    data = tmp_path / "in.csv"
    data.write_text(
        "username,tenant\n"
        + "".join(
            f"u{i:04d},{f't{i % 7}' if i < 0.8 * n else 'moved'}\n" for i in range(n)
        )
    )
    writes: dict[bool, int] = {}
    for diff in (False, True):
        with FaultyPool(faults=Faults(quota=None, list_quota=None)) as pool:
            pool_id = pool.seed(SCHEMA_JSON, rows)
            folder = tmp_path / f"diff-{diff}"
            folder.mkdir()
            args = [
                "run",
                str(data),
                "-m",
                str(MAPPINGS / "backfill-tenant.toml"),
                *real_run_args(
                    pool.endpoint_url,
                    pool_id,
                    job=folder / "job.sqlite",
                    report=folder / "report.csv",
                ),
                "--rate",
                "1000",
                "--yes",
                "--quiet",
            ]
            if diff:
                args.append("--diff")
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            writes[diff] = sum(pool.writes.values())
    ratio = writes[True] / writes[False]
    print(
        "\n"
        + json.dumps(
            {
                "writes_without_diff": writes[False],
                "writes_with_diff": writes[True],
                "ratio": ratio,
            }
        )
    )
    assert ratio == pytest.approx(0.2)
