"""Crash safety: SIGKILL a real run at random moments, resume, and lose nothing.

The emulated pool runs in its own process (``python -m tests.support.endpoint serve``)
and counts the writes it applied per user; each run is a real
``cognito-migrate`` process killed with SIGKILL, then resumed.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
from botocore.config import Config

from tests.cli.helpers import real_run_args
from tests.conftest import MAPPINGS
from tests.support.served import served_sandbox, subprocess_env

ROWS = 1000
KILLS = 20
SEED = 20261126


@pytest.fixture
def served_pool(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    users = tmp_path / "users.csv"
    users.write_text(
        "username,tenant\n"
        + "".join(f"user{i:05d},tenant-{i % 13}\n" for i in range(1, ROWS + 1))
    )
    with served_sandbox(users, latency=0.005) as (endpoint, pool_id):
        yield endpoint, pool_id, users


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "migrate", *args]


def test_sigkill_at_random_moments_then_resume_loses_nothing(
    served_pool: tuple[str, str, Path], tmp_path: Path
) -> None:
    endpoint, pool_id, _ = served_pool
    job = tmp_path / "job.sqlite"
    report = tmp_path / "report.csv"
    data = tmp_path / "input.csv"
    data.write_text(
        "username,tenant\n"
        + "".join(f"user{i:05d},new-{i % 17}\n" for i in range(1, ROWS + 1))
    )
    first = _cli(
        "run",
        str(data),
        "-m",
        str(MAPPINGS / "backfill-tenant.toml"),
        *real_run_args(endpoint, pool_id, job=job, report=report),
        "--rate",
        "60",
        "--concurrency",
        "4",
        "--yes",
        "--quiet",
    )
    again = _cli("resume", str(job), "--report", str(report), "--rate", "60", "--quiet")
    # Kills alternate between `run` (which continues an existing job file) and
    # `resume`; a kill can land before the job file exists, so `run` goes first.
    rng = random.Random(SEED)
    kills = 0
    finished = False
    log = tmp_path / "stderr.log"
    for attempt in range(KILLS):
        with log.open("wb") as err:
            process = subprocess.Popen(
                first if attempt % 2 == 0 or not job.exists() else again,
                env=subprocess_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        time.sleep(rng.uniform(0.4, 2.0))
        if process.poll() is not None:
            assert process.returncode == 0, log.read_text()
            finished = True
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    if not finished:
        done = subprocess.run(
            again, env=subprocess_env(), capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stderr.decode()
    assert kills == KILLS, "the run finished before every kill: slow it down"

    # Every input row has exactly one final outcome.
    outcome = pl.read_csv(report, infer_schema=False)
    assert outcome.height == ROWS
    assert outcome["row"].cast(pl.Int64).to_list() == list(range(1, ROWS + 1))
    # A row written just before a kill, its outcome not yet committed, is
    # read again by the resume and found holding its value: unchanged.
    assert set(outcome["status"]) <= {"updated", "unchanged"}

    # The pool holds the expected values.
    client = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    values: dict[str, str] = {}
    for page in client.get_paginator("list_users").paginate(UserPoolId=pool_id):
        for user in page["Users"]:
            attrs = {a["Name"]: a["Value"] for a in user["Attributes"]}
            values[user["Username"]] = attrs.get("custom:tenant_id", "")
    assert values == {f"user{i:05d}": f"new-{i % 17}" for i in range(1, ROWS + 1)}

    # No user written more often than once plus the kills it was in flight for.
    with urllib.request.urlopen(f"{endpoint}/__stats", timeout=10) as response:
        stats = json.load(response)
    writes: dict[str, int] = stats["writes"]
    assert set(writes) == set(values)
    assert min(writes.values()) >= 1
    assert max(writes.values()) <= 1 + kills
    rewritten = sum(n - 1 for n in writes.values())
    # In flight at a kill: at most the executor's bounded queue (2 x concurrency)
    # plus the outcomes not yet committed (0.5 s at 60/s).
    assert rewritten <= kills * (2 * 4 + 30)
    # The read before each write keeps a resume from writing a row again
    # unless the kill came between that row's read and its outcome's commit.
    unchanged = int((outcome["status"] == "unchanged").sum())
    assert unchanged <= kills * (2 * 4 + 30)
