"""The diff: its cost against a dry run, the writes it saves, and a real run.

Run: python -m pytest tests/benchmarks/test_bench_diff.py --benchmarks -s
"""

from __future__ import annotations

import json
import os
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
from tests.support.served import served_sandbox

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
    """With or without --diff: the read before each write finds the unchanged
    users too; the diff spares their reads."""
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
    reads: dict[bool, int] = {}
    for diff in (False, True):
        unlimited = Faults(quota=None, list_quota=None, read_quota=None)
        with FaultyPool(faults=unlimited) as pool:
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
                "--read-rate",
                "1000",
                "--yes",
                "--quiet",
            ]
            if diff:
                args.append("--diff")
            result = CliRunner().invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            writes[diff] = sum(pool.writes.values())
            reads[diff] = pool.counters()["reads"]
    print(
        "\n"
        + json.dumps(
            {
                "rows": n,
                "writes_without_diff": writes[False],
                "writes_with_diff": writes[True],
                "reads_without_diff": reads[False],
                "reads_with_diff": reads[True],
                "writes_over_rows": writes[False] / n,
            }
        )
    )
    assert writes == {False: 200, True: 200}
    assert reads == {False: 1000, True: 200}


#: The two shapes of the tenant values: 12 tenants on a million rows, and
#: every row a tenant of its own.
TENANT_SHAPES = ("repeated", "distinct")


def cli_seconds(*args: str | Path) -> float:
    """Seconds a cognito-migrate command takes (in this process)."""
    start = time.perf_counter()
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output[-2000:]
    return seconds


def diff_inputs(
    folder: Path, shape: str, *, rows: int, changed: int
) -> tuple[pl.DataFrame, Path, Path]:
    """The users, their CSV file and a snapshot where all but ``changed``
    already hold their new tenant (tenants of one of TENANT_SHAPES)."""
    users = users_frame(rows, seed=6).select(BENCH_COLUMNS)
    if shape == "distinct":
        users = users.with_columns(
            pl.format("tenant-{}", pl.int_range(1, rows + 1)).alias("tenant")
        )
    data = folder / "users.csv"
    users.write_csv(data)
    snap = _snapshot(users, folder / "snap.parquet", unchanged=1 - changed / rows)
    return users, data, snap


@pytest.mark.parametrize("shape", TENANT_SHAPES)
def test_a_diff_run_of_990k_unchanged_rows_within_2x_its_dry_run(
    tmp_path: Path, shape: str
) -> None:
    """A --diff run of 1,000,000 rows, 990,000 of them unchanged, against the
    loopback endpoint (the emulated pool in a process of its own): the rows
    decided without a call go to the ledger, 10,000 are sent, the report
    comes from the ledger. Against the diff's dry run of the same file."""
    rows, changed = 1_000_000, 10_000
    users, data, snap = diff_inputs(tmp_path, shape, rows=rows, changed=changed)
    # The pool holds the users the run changes (the others get no call).
    seeded = tmp_path / "pool-users.csv"
    users.tail(changed).select("username").write_csv(seeded)
    mapping = MAPPINGS / "backfill-tenant.toml"
    schema = SAMPLES / "pool-schema.json"
    common: list[str | Path] = [data, "-m", mapping, "--snapshot", snap, "--quiet"]
    dry_seconds = cli_seconds(
        "run",
        *common,
        "--dry-run",
        "--schema",
        schema,
        "--report",
        tmp_path / "dry.csv",
    )
    with served_sandbox(seeded, latency=0.0) as (endpoint, pool_id):
        run_seconds = cli_seconds(
            "run",
            *common,
            "--diff",
            *real_run_args(
                endpoint,
                pool_id,
                job=tmp_path / "job.sqlite",
                report=tmp_path / "run.csv",
            ),
            "--rate",
            "100000",
            "--read-rate",
            "100000",
            "--concurrency",
            "16",
            "--yes",
        )
        # The same 10,000 calls alone: what the endpoint costs.
        calls_seconds = _calls_alone(tmp_path, seeded, endpoint, pool_id)
    report = pl.read_csv(tmp_path / "run.csv", columns=["status"])
    statuses = report["status"].value_counts().rows()
    assert dict(statuses) == {"unchanged": rows - changed, "updated": changed}
    ratio = run_seconds / dry_seconds
    print(
        "\n"
        + json.dumps(
            {
                "rows": rows,
                "unchanged": rows - changed,
                "tenants": shape,
                "diff_dry_run_s": round(dry_seconds, 2),
                "diff_run_s": round(run_seconds, 2),
                "ratio": round(ratio, 2),
                "the_10000_calls_alone_s": round(calls_seconds, 2),
                "ratio_without_the_calls": round(
                    (run_seconds - calls_seconds) / dry_seconds, 2
                ),
                "load_average": round(os.getloadavg()[0], 2),
                "limit": 2,
            }
        )
    )
    assert ratio <= 2


def _calls_alone(tmp_path: Path, seeded: Path, endpoint: str, pool_id: str) -> float:
    """Seconds of a run that sends the same calls and decides nothing else."""
    folder = tmp_path / "alone"
    folder.mkdir()
    alone = folder / "users.csv"
    pl.read_csv(seeded).with_columns(pl.lit("again").alias("tenant")).write_csv(alone)
    return cli_seconds(
        "run",
        alone,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        *real_run_args(
            endpoint, pool_id, job=folder / "job.sqlite", report=folder / "report.csv"
        ),
        "--rate",
        "100000",
        "--read-rate",
        "100000",
        "--concurrency",
        "16",
        "--yes",
        "--quiet",
    )
