"""Snapshot, diff, lookup, guardrails and rollback against the emulated pool."""

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
from tests.support.faults import Faults, FaultyPool

SCHEMA = json.loads((SAMPLES / "pool-schema.json").read_text())
WRITES = ("AdminUpdateUserAttributes", "AdminDeleteUserAttributes")


@pytest.fixture
def pool() -> Iterator[EmulatedPool]:
    with FaultyPool(faults=Faults(quota=None, list_quota=None)) as emulated:
        yield emulated


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def aws(pool: EmulatedPool, pool_id: str) -> list[str]:
    return [
        "--user-pool-id",
        pool_id,
        "--endpoint-url",
        pool.endpoint_url,
        "--region",
        "us-east-1",
    ]


def run_args(pool: EmulatedPool, pool_id: str, folder: Path) -> list[str | Path]:
    return [
        *aws(pool, pool_id),
        "--job",
        folder / "job.sqlite",
        "--report",
        folder / "report.csv",
        "--rate",
        "500",
        "--yes",
        "--quiet",
    ]


def writes(pool: EmulatedPool) -> int:
    return sum(pool.calls[name] for name in WRITES)


def snapshot_frame(pool: EmulatedPool, pool_id: str, path: Path) -> pl.DataFrame:
    result = invoke("snapshot", *aws(pool, pool_id), "-o", path, "--quiet")
    assert result.exit_code == 0, result.output
    return pl.read_parquet(path).sort("username")


def seed_tenants(pool: EmulatedPool, n: int) -> str:
    return pool.seed(
        SCHEMA,
        [
            {
                "username": f"user{i:03d}",
                "email": f"user{i:03d}@example.com",
                "email_verified": "true",
                "custom:tenant_id": f"t-{i % 5}",
                "custom:legacy_flag": "old",
            }
            for i in range(1, n + 1)
        ],
    )


def write_input(path: Path, rows: dict[str, str]) -> Path:
    path.write_text(
        "username,tenant,plan\n"
        + "".join(f"{user},{tenant},Gold\n" for user, tenant in rows.items())
    )
    return path


def test_a_snapshot_of_several_pages_equals_the_pool(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed_tenants(pool, 130)
    frame = snapshot_frame(pool, pool_id, tmp_path / "snap.parquet")
    assert frame.height == 130
    assert pool.calls["ListUsers"] >= 3
    for rec in frame.iter_rows(named=True):
        attrs = pool.user_attributes(pool_id, rec["username"])
        assert rec["custom:tenant_id"] == attrs["custom:tenant_id"]
        assert rec["email"] == attrs["email"]
        assert rec["sub"] == attrs["sub"]


def test_diff_sends_only_what_changes(pool: EmulatedPool, tmp_path: Path) -> None:
    pool_id = seed_tenants(pool, 50)
    rows = {f"user{i:03d}": f"t-{i % 5}" for i in range(1, 51)}
    for i in range(1, 11):  # 10 users get a new tenant; 40 already hold theirs
        rows[f"user{i:03d}"] = "moved"
    rows["ghost1"] = "t-1"
    rows["ghost2"] = "t-2"
    data = write_input(tmp_path / "in.csv", rows)
    before = writes(pool)
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        "--diff",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 1, result.output  # the two ghosts failed
    assert writes(pool) - before == 10
    report = pl.read_csv(tmp_path / "report.csv", infer_schema=False)
    counts = dict(report.group_by("status").len().iter_rows())
    assert counts == {"updated": 10, "unchanged": 40, "failed": 2}
    ghosts = report.filter(pl.col("status") == "failed")
    assert set(ghosts["error_code"]) == {"UserNotFoundException"}
    assert set(report.filter(pl.col("status") == "updated")["changed"]) == {
        "custom:tenant_id"
    }


def test_a_dry_run_diff_shows_before_and_after(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed_tenants(pool, 5)
    snap = tmp_path / "snap.parquet"
    snapshot_frame(pool, pool_id, snap)
    data = write_input(
        tmp_path / "in.csv", {f"user{i:03d}": "new" for i in range(1, 6)}
    )
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        "--schema",
        SAMPLES / "pool-schema.json",
        "--dry-run",
        "--snapshot",
        snap,
        "--report",
        tmp_path / "dry.csv",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert "user001: set custom:tenant_id: 't-1' -> 'new'" in result.output
    assert "custom:tenant_id  5 set" in result.output


def email_mapping(tmp_path: Path, key: str) -> Path:
    mapping = tmp_path / f"by-{key}.toml"
    mapping.write_text(
        f'[user]\ncolumn = "key"\nas = "{key}"\n\n'
        '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'
    )
    return mapping


def test_lookup_by_email_and_by_sub(pool: EmulatedPool, tmp_path: Path) -> None:
    pool_id = pool.seed(
        SCHEMA,
        [
            {"username": "ann", "email": "ann@example.com", "email_verified": "true"},
            {"username": "bob", "email": "bob@example.com", "email_verified": "true"},
            {"username": "cy1", "email": "shared@example.com"},
            {"username": "cy2", "email": "shared@example.com"},
        ],
    )
    snap = tmp_path / "snap.parquet"
    frame = snapshot_frame(pool, pool_id, snap)
    subs = dict(zip(frame["username"], frame["sub"], strict=True))

    by_email = tmp_path / "email.csv"
    by_email.write_text(
        "key,tenant\nANN@example.com,a\nnobody@example.com,n\nshared@example.com,s\n"
    )
    folder = tmp_path / "email"
    folder.mkdir()
    result = invoke(
        "run",
        by_email,
        "-m",
        email_mapping(tmp_path, "email"),
        "--snapshot",
        snap,
        *run_args(pool, pool_id, folder),
    )
    assert result.exit_code == 1, result.output
    report = pl.read_csv(folder / "report.csv", infer_schema=False)
    assert report.select("user", "username", "status", "error_code").rows() == [
        ("ANN@example.com", "ann", "updated", None),
        ("nobody@example.com", None, "failed", "UserNotFoundException"),
        ("shared@example.com", None, "failed", "AmbiguousUser"),
    ]
    assert pool.user_attributes(pool_id, "ann")["custom:tenant_id"] == "a"

    by_sub = tmp_path / "sub.csv"
    by_sub.write_text(f"key,tenant\n{subs['bob'].upper()},b\n")
    folder = tmp_path / "sub"
    folder.mkdir()
    result = invoke(
        "run",
        by_sub,
        "-m",
        email_mapping(tmp_path, "sub"),
        "--snapshot",
        snap,
        *run_args(pool, pool_id, folder),
    )
    assert result.exit_code == 0, result.output
    report = pl.read_csv(folder / "report.csv", infer_schema=False)
    assert report["username"].to_list() == ["bob"]
    assert pool.user_attributes(pool_id, "bob")["custom:tenant_id"] == "b"


def test_duplicate_verified_emails_are_caught_before_any_write(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed_tenants(pool, 6)
    mapping = tmp_path / "email.toml"
    mapping.write_text(
        '[user]\ncolumn = "username"\n\n'
        '[attributes.email]\ncolumn = "email"\n\n'
        '[attributes.email_verified]\nvalue = "true"\n'
    )
    data = tmp_path / "in.csv"
    data.write_text(
        "username,email\n"
        "user001,same@example.com\n"  # the same new email for two users
        "user002,SAME@example.com\n"
        "user003,user004@example.com\n"  # already user004's email in the pool
        "user005,fresh5@example.com\n"
    )
    before = writes(pool)
    result = invoke(
        "run",
        data,
        "-m",
        mapping,
        "--diff",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 1, result.output
    report = pl.read_csv(tmp_path / "report.csv", infer_schema=False)
    assert report.select("user", "status", "error_code").rows() == [
        ("user001", "invalid", "duplicate_value"),
        ("user002", "invalid", "duplicate_value"),
        ("user003", "invalid", "alias_taken"),
        ("user005", "updated", None),
    ]
    assert writes(pool) - before == 1
    assert pool.user_attributes(pool_id, "user004")["email"] == "user004@example.com"


def test_run_then_rollback_leaves_every_user_as_before(
    pool: EmulatedPool, tmp_path: Path
) -> None:
    pool_id = seed_tenants(pool, 30)
    before = snapshot_frame(pool, pool_id, tmp_path / "before.parquet")
    data = write_input(
        tmp_path / "in.csv", {f"user{i:03d}": f"new-{i}" for i in range(1, 31)}
    )
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "rename-plan.toml",  # sets custom:plan, deletes custom:legacy_flag
        "--diff",
        *run_args(pool, pool_id, tmp_path),
    )
    assert result.exit_code == 0, result.output
    changed = snapshot_frame(pool, pool_id, tmp_path / "changed.parquet")
    assert set(changed["custom:plan"]) == {"enterprise"}
    assert changed["custom:legacy_flag"].null_count() == 30

    preview = invoke("rollback", tmp_path / "job.sqlite", "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "would_update  30" in preview.output
    assert writes(pool) == 60  # nothing sent by the preview

    result = invoke("rollback", tmp_path / "job.sqlite", "--yes", "--quiet")
    assert result.exit_code == 0, result.output
    after = snapshot_frame(pool, pool_id, tmp_path / "after.parquet")
    assert after.equals(before)


def test_rollback_of_a_partial_job_restores_only_what_was_written(
    tmp_path: Path,
) -> None:
    faults = Faults(quota=None, list_quota=None, error_rate=0.5, seed=3)
    with FaultyPool(faults=faults) as pool:
        pool_id = seed_tenants(pool, 40)
        before = snapshot_frame(pool, pool_id, tmp_path / "before.parquet")
        data = write_input(
            tmp_path / "in.csv", {f"user{i:03d}": "moved" for i in range(1, 41)}
        )
        result = invoke(
            "run",
            data,
            "-m",
            MAPPINGS / "backfill-tenant.toml",
            "--diff",
            "--max-attempts",
            "1",
            *run_args(pool, pool_id, tmp_path),
        )
        assert result.exit_code == 1, result.output
        report = pl.read_csv(tmp_path / "report.csv", infer_schema=False)
        updated = report.filter(pl.col("status") == "updated")["user"].to_list()
        assert 0 < len(updated) < 40
        applied = sum(pool.writes.values())
        assert applied == len(updated)
        pool_without_faults = Faults(quota=None, list_quota=None)
        object.__setattr__(pool, "faults", pool_without_faults)
        result = invoke("rollback", tmp_path / "job.sqlite", "--yes", "--quiet")
        assert result.exit_code == 0, result.output
        assert sum(pool.writes.values()) == 2 * len(updated)
        after = snapshot_frame(pool, pool_id, tmp_path / "after.parquet")
        assert after.equals(before)
