"""Real runs through boto3 against the emulated pool (moto behind a loopback server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from migrate.cli import cli
from migrate.sandbox import EmulatedPool
from tests.conftest import MAPPINGS, SAMPLES
from tests.support.fake_cognito import FakeCognito
from tests.support.faults import Faults, FaultyPool

SCHEMA = json.loads((SAMPLES / "pool-schema.json").read_text())


def users_csv(path: Path, n: int, *, extra: str = "") -> Path:
    lines = ["username,tenant,plan,phone,access_token"]
    for i in range(1, n + 1):
        lines.append(
            f"user{i:04d},tenant-{i % 7},Gold ,(415) 555-{i % 10000:04d},tok-{i:040d}"
        )
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def pool() -> Iterator[EmulatedPool]:
    with FaultyPool(faults=Faults(quota=None)) as emulated:
        yield emulated


def seed(pool: EmulatedPool, n: int, **attributes: str) -> str:
    rows = [{"username": f"user{i:04d}", **attributes} for i in range(1, n + 1)]
    return pool.seed(SCHEMA, rows)


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_args(pool: EmulatedPool, pool_id: str, tmp_path: Path) -> list[str | Path]:
    return [
        "--user-pool-id",
        pool_id,
        "--endpoint-url",
        pool.endpoint_url,
        "--region",
        "us-east-1",
        "--job",
        tmp_path / "job.sqlite",
        "--report",
        tmp_path / "report.csv",
        "--rate",
        "500",
        "--yes",
        "--quiet",
    ]


def read_report(tmp_path: Path) -> pl.DataFrame:
    return pl.read_csv(tmp_path / "report.csv", infer_schema=False)


def test_admin_updates_land_with_the_right_values(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed(pool, 40)
    data = users_csv(tmp_path / "in.csv", 40)
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 0, result.output
    report = read_report(tmp_path)
    assert report.height == 40
    assert set(report["status"]) == {"updated"}
    for i in (1, 17, 40):
        assert pool.user_attributes(pool_id, f"user{i:04d}")["custom:tenant_id"] == (
            f"tenant-{i % 7}"
        )
    assert sum(pool.writes.values()) == 40


def test_deletes_and_value_maps(pool: EmulatedPool, tmp_path: Path) -> None:
    pool_id = seed(pool, 10, **{"custom:legacy_flag": "yes"})
    data = users_csv(tmp_path / "in.csv", 10)
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "rename-plan.toml",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 0, result.output
    attrs = pool.user_attributes(pool_id, "user0003")
    assert attrs["custom:plan"] == "enterprise"
    assert "custom:legacy_flag" not in attrs
    report = read_report(tmp_path)
    assert set(report["deleted"]) == {"custom:legacy_flag"}


def test_token_api_updates_and_tokens_never_reach_disk(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed(pool, 12)
    data = users_csv(tmp_path / "in.csv", 12)
    for i in range(1, 13):
        pool.issue_access_token(pool_id, f"user{i:04d}", f"tok-{i:040d}")
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "token-self-service.toml",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 0, result.output
    # This mapping sends the cell as it is (no transforms).
    assert pool.user_attributes(pool_id, "user0005")["custom:plan"] == "Gold "
    tokens = [f"tok-{i:040d}".encode() for i in range(1, 13)]
    written = [p for p in tmp_path.iterdir() if p.name != "in.csv"]
    assert written
    for path in written:
        content = path.read_bytes()
        assert not any(token in content for token in tokens), path.name
    assert not any(token.decode() in result.output for token in tokens)


def test_unknown_users_fail_alone(pool: EmulatedPool, tmp_path: Path) -> None:
    pool_id = seed(pool, 20)
    data = users_csv(tmp_path / "in.csv", 25)
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 1, result.output
    report = read_report(tmp_path)
    counts = dict(report.group_by("status").len().iter_rows())
    assert counts == {"updated": 20, "failed": 5}
    failed = report.filter(pl.col("status") == "failed")
    assert set(failed["error_code"]) == {"UserNotFoundException"}


def test_throttling_is_absorbed(tmp_path: Path) -> None:
    with FaultyPool(faults=Faults(quota=20.0)) as pool:
        pool_id = seed(pool, 60)
        data = users_csv(tmp_path / "in.csv", 60)
        args = run_args(pool, pool_id, tmp_path)
        args[args.index("--rate") + 1] = "60"
        result = invoke("run", data, "-m", MAPPINGS / "backfill-tenant.toml", *args)
        assert result.exit_code == 0, result.output
        assert pool.throttled > 0
    report = read_report(tmp_path)
    assert set(report["status"]) == {"updated"}
    assert report["attempts"].cast(pl.Int64).max() > 1  # type: ignore[operator]


def test_injected_faults_lose_nothing(tmp_path: Path) -> None:
    faults = Faults(quota=None, error_rate=0.05, drop_rate=0.05, seed=7)
    with FaultyPool(faults=faults) as pool:
        pool_id = seed(pool, 200)
        data = users_csv(tmp_path / "in.csv", 200)
        result = invoke(
            "run",
            data,
            "-m",
            MAPPINGS / "backfill-tenant.toml",
            *run_args(pool, pool_id, tmp_path),
        )
        assert result.exit_code == 0, result.output
        assert pool.injected_errors > 0
        assert pool.dropped > 0
        for i in range(1, 201):
            attrs = pool.user_attributes(pool_id, f"user{i:04d}")
            assert attrs["custom:tenant_id"] == f"tenant-{i % 7}"
    report = read_report(tmp_path)
    assert report.height == 200
    assert set(report["status"]) == {"updated"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDeniedException", "AWS denied"),
        ("NotAuthorizedException", "NotAuthorizedException"),
        ("ExpiredTokenException", "expired"),
        ("UnrecognizedClientException", "UnrecognizedClientException"),
        ("ResourceNotFoundException", "user pool not found"),
        ("InvalidSmsRoleAccessPolicyException", "InvalidSmsRoleAccessPolicyException"),
        ("InvalidLambdaResponseException", "InvalidLambdaResponseException"),
    ],
)
def test_job_wide_errors_stop_the_job_with_exit_3(
    tmp_path: Path, code: str, expected: str
) -> None:
    # DescribeUserPool gets the samples' schema; every other call gets the error.
    with FakeCognito(
        body={"__type": code, "message": "denied"},
        replies={"DescribeUserPool": (200, SCHEMA)},
    ) as fake:
        data = users_csv(tmp_path / "in.csv", 300)
        result = CliRunner().invoke(
            cli,
            [
                "run",
                str(data),
                "-m",
                str(MAPPINGS / "backfill-tenant.toml"),
                "--user-pool-id",
                "us-east-1_SAMPLE0001",
                "--endpoint-url",
                fake.url,
                "--region",
                "us-east-1",
                "--job",
                str(tmp_path / "job.sqlite"),
                "--report",
                str(tmp_path / "report.csv"),
                "--rate",
                "1000",
                "--concurrency",
                "4",
                "--yes",
                "--quiet",
            ],
        )
    assert result.exit_code == 3, result.output
    assert expected in result.output
    assert "cognito-migrate resume" in result.output
    assert len(fake.requests_except("DescribeUserPool")) <= 4 * 2 + 1
    report = read_report(tmp_path)
    assert report.height == 300
    counts = dict(report.group_by("status").len().iter_rows())
    assert counts.get("not_attempted", 0) >= 300 - 9
    # Rows that met the job-wide error were tried: failed_retryable with its
    # code and their attempts; every other row was never sent.
    assert set(counts) <= {"not_attempted", "failed_retryable"}
    sent = len(fake.requests_except("DescribeUserPool"))
    tried = report.filter(pl.col("status") == "failed_retryable")
    assert set(tried.get_column("error_code")) <= {code}
    assert report.get_column("attempts").cast(pl.Int64).sum() == sent


def test_a_failures_report_is_valid_input_for_a_new_run(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed(pool, 20)
    data = users_csv(tmp_path / "in.csv", 25)
    mapping = MAPPINGS / "backfill-tenant.toml"
    result = invoke("run", data, "-m", mapping, *run_args(pool, pool_id, tmp_path))
    assert result.exit_code == 1, result.output
    failed = tmp_path / "failed.csv"
    result = invoke("report", tmp_path / "job.sqlite", "-o", failed, "--only", "failed")
    assert result.exit_code == 0, result.output
    assert pl.read_csv(failed, infer_schema=False).height == 5
    # The missing users now exist; the failures file is the input of a new job.
    pool.add_users(pool_id, [{"username": f"user{i:04d}"} for i in range(21, 26)])
    again = tmp_path / "again"
    again.mkdir()
    result = invoke("run", failed, "-m", mapping, *run_args(pool, pool_id, again))
    assert result.exit_code == 0, result.output
    report = read_report(again)
    assert report["user"].to_list() == [f"user{i:04d}" for i in range(21, 26)]
    assert set(report["status"]) == {"updated"}
    assert pool.user_attributes(pool_id, "user0023")["custom:tenant_id"] == "tenant-2"
