"""Ctrl-C and SIGTERM stop a real run cleanly: all rows get a status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.cli.helpers import real_run_args
from tests.conftest import MAPPINGS
from tests.support.served import served_sandbox, subprocess_env

ROWS = 400


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    users = tmp_path / "users.csv"
    users.write_text(
        "username\n" + "".join(f"user{i:04d}\n" for i in range(1, ROWS + 1))
    )
    with served_sandbox(users, latency=0.02) as endpoint_and_pool:
        yield endpoint_and_pool


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_resume_finishes(
    served: tuple[str, str], tmp_path: Path, signum: int
) -> None:
    endpoint, pool_id = served
    data = tmp_path / "input.csv"
    data.write_text(
        "username,tenant\n" + "".join(f"user{i:04d},t{i}\n" for i in range(1, ROWS + 1))
    )
    job = tmp_path / "job.sqlite"
    report = tmp_path / "report.csv"
    command = [
        sys.executable,
        "-m",
        "migrate",
        "run",
        str(data),
        "-m",
        str(MAPPINGS / "backfill-tenant.toml"),
        *real_run_args(endpoint, pool_id, job=job, report=report),
        "--rate",
        "40",
        "--yes",
        "--quiet",
    ]
    process = subprocess.Popen(
        command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        # Wait until the job has really started sending.
        while not job.exists() or os.path.getsize(job) == 0:
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2.0)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode()
    assert process.returncode == 130, text
    assert "Traceback" not in text
    assert f"cognito-migrate resume {job}" in text

    first = pl.read_csv(report, infer_schema=False)
    assert first.height == ROWS
    counts = dict(first.group_by("status").len().iter_rows())
    assert set(counts) == {"updated", "not_attempted"}
    assert 0 < counts["updated"] < ROWS

    done = subprocess.run(
        [
            *(sys.executable, "-m", "migrate", "resume", str(job)),
            *("--report", str(report), "--rate", "200", "--quiet"),
        ],
        env=subprocess_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    final = pl.read_csv(report, infer_schema=False)
    assert final.height == ROWS
    assert set(final["status"]) == {"updated"}
