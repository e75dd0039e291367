"""Signals as a terminal and `timeout` deliver them: every stop ends cleanly.

- Two SIGINTs at once (a terminal or `timeout -s INT` signal the process and
  its group) are one stop: the run still ends with its summary and a report
  that matches the job file.
- A second interrupt later stops at once; an older report at the report path
  would now be untrue, so it is removed and the message says so.
- A dry run stopped by SIGINT exits 130; by SIGTERM, it leaves no temporary
  file behind; an interrupt while the program is still loading exits 130
  without a traceback.
"""

from __future__ import annotations

import importlib.abc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from migrate.__main__ import main as entry_point
from tests.cli.helpers import REPORT_HEADER, SCHEMA_FILE, real_run_args
from tests.conftest import MAPPINGS
from tests.support.served import served_sandbox, subprocess_env

BACKFILL = MAPPINGS / "backfill-tenant.toml"


def _users(path: Path, n: int) -> Path:
    path.write_text(
        "username,tenant\n" + "".join(f"user{i:04d},t{i}\n" for i in range(1, n + 1))
    )
    return path


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "migrate", *args],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for(
    condition: object, process: subprocess.Popen[bytes], seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            raise AssertionError(process.communicate()[0].decode())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _finish(process: subprocess.Popen[bytes]) -> str:
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return output.decode()


def test_two_interrupts_at_once_are_one_stop_with_summary_and_report(
    tmp_path: Path,
) -> None:
    n = 400
    data = _users(tmp_path / "in.csv", n)
    job, report = tmp_path / "job.sqlite", tmp_path / "report.csv"
    with served_sandbox(data, latency=0.02) as (endpoint, pool_id):
        process = _start(
            [
                "run",
                str(data),
                "-m",
                str(BACKFILL),
                *real_run_args(endpoint, pool_id, job=job, report=report),
                "--rate",
                "40",
                "--yes",
                "--quiet",
            ]
        )
        _wait_for(lambda: job.exists() and job.stat().st_size > 0, process, 60)
        time.sleep(1.0)
        # What `timeout -s INT` and a terminal's Ctrl-C do: the process and
        # its group, a moment apart.
        os.kill(process.pid, signal.SIGINT)
        os.killpg(process.pid, signal.SIGINT)
        text = _finish(process)
    assert process.returncode == 130, text
    assert "Traceback" not in text
    assert "Stopped at once" not in text
    assert "Rows: 400" in text
    assert f"Report: {report}" in text
    written = pl.read_csv(report, infer_schema=False)
    assert written.height == n
    again = tmp_path / "again.csv"
    done = subprocess.run(
        [sys.executable, "-m", "migrate", "report", str(job), "-o", str(again)],
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    keep = ["row", "user", "status", "attempts"]
    assert written.select(keep).equals(
        pl.read_csv(again, infer_schema=False).select(keep)
    )


def test_a_later_second_interrupt_stops_at_once_and_removes_the_stale_report(
    tmp_path: Path,
) -> None:
    n = 40
    data = _users(tmp_path / "in.csv", n)
    job, report = tmp_path / "job.sqlite", tmp_path / "report.csv"
    # A report of an earlier run there: it says rows were updated.
    report.write_text(
        ",".join(REPORT_HEADER) + "\n1,user0001,user0001,updated" + "," * 7 + "\n"
    )
    # Slow calls: the first stop waits for them, long enough for a second one.
    with served_sandbox(data, latency=2.5) as (endpoint, pool_id):
        process = _start(
            [
                "run",
                str(data),
                "-m",
                str(BACKFILL),
                *real_run_args(endpoint, pool_id, job=job, report=report),
                "--rate",
                "100",
                "--yes",
                "--quiet",
            ]
        )
        _wait_for(lambda: job.exists() and job.stat().st_size > 0, process, 60)
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGINT)
        time.sleep(1.2)
        os.kill(process.pid, signal.SIGINT)
        text = _finish(process)
    assert process.returncode == 130, text
    assert (
        "Stopped at once; rows in flight will be resent; "
        f"the old report {report} was removed"
    ) in text
    assert not report.exists()


@pytest.fixture
def big_input(tmp_path: Path) -> Path:
    rows = 600_000
    path = tmp_path / "big.csv"
    pl.DataFrame(
        {
            "username": [f"user{i:07d}" for i in range(rows)],
            "tenant": [f"t{i % 97}" for i in range(rows)],
        }
    ).write_csv(path)
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_dry_run_exits_130_and_leaves_no_temporary_file(
    big_input: Path, tmp_path: Path, signum: int
) -> None:
    report = tmp_path / "dry.csv"
    process = _start(
        [
            "run",
            str(big_input),
            "-m",
            str(BACKFILL),
            "--schema",
            str(SCHEMA_FILE),
            "--dry-run",
            "--report",
            str(report),
        ]
    )
    _wait_for(lambda: list(tmp_path.glob(".dry.csv.*.tmp")), process, 60)
    process.send_signal(signum)
    text = _finish(process)
    assert process.returncode == 130, text
    assert "Traceback" not in text
    assert "Aborted!" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


class _InterruptedImport(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when migrate.cli is imported: a Ctrl-C that
    lands while the program is still loading its modules (polars takes a
    moment)."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "migrate.cli":
            raise KeyboardInterrupt


def test_an_interrupt_while_loading_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "migrate.cli")
    monkeypatch.setattr(sys, "meta_path", [_InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as stopped:
        entry_point()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "\ninterrupted\n"
