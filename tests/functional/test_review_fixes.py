"""Cases a hostile review found: files, locks, rollbacks and reports under stress.

Each test names the mechanism it holds: a sandbox run removes only its own
files and only once no process runs the job; a rollback undoes a partly
applied row and refuses a running job; a report never pairs outcomes with a
changed input; a stop while the report is written removes the older report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from migrate import pipeline, rollback
from migrate.checkpoint import Ledger, make_fingerprint
from migrate.execution import ExecutionStats
from migrate.records import Outcome, Status
from migrate.sandbox import EmulatedPool
from tests.cli.helpers import BACKFILL, SCHEMA, SCHEMA_FILE, invoke, read_report
from tests.support.served import subprocess_env

POOL_ID = SCHEMA["UserPool"]["Id"]


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _input(path: str, users: list[str]) -> Path:
    Path(path).write_text("username,tenant\n" + "".join(f"{u},t-{u}\n" for u in users))
    return Path(path)


def test_a_sandbox_run_never_removes_an_input_named_like_its_files() -> None:
    # --job reh makes the sandbox's own files reh, reh-wal, reh-shm and
    # reh.snapshot.parquet: here the last one is the input.
    pl.DataFrame({"username": ["u1"], "tenant": ["t"]}).write_parquet(
        "reh.snapshot.parquet"
    )
    before = Path("reh.snapshot.parquet").read_bytes()
    result = invoke(
        "run",
        "reh.snapshot.parquet",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--sandbox",
        "--job",
        "reh",
    )
    assert result.exit_code == 0, result.output
    assert Path("reh.snapshot.parquet").read_bytes() == before


def test_a_sandbox_run_does_not_start_over_a_job_that_is_running() -> None:
    data = _input("in.csv", ["u1", "u2"])
    result = invoke("run", data, "-m", BACKFILL, "--schema", SCHEMA_FILE, "--sandbox")
    assert result.exit_code == 0, result.output
    job = Path("in.backfill-tenant.sandbox.job.sqlite")
    before = job.read_bytes()
    with Ledger.open(job) as running:
        running.lock()
        result = invoke(
            "run", data, "-m", BACKFILL, "--schema", SCHEMA_FILE, "--sandbox"
        )
    assert result.exit_code == 2, result.output
    assert "is being run by" in result.output
    assert job.read_bytes() == before


def _diff_job(pool: EmulatedPool, users: list[str]) -> None:
    pool.seed(SCHEMA, [{"username": u, "custom:tenant_id": "orig"} for u in users])
    data = _input("in.csv", users)
    result = invoke(
        "run",
        data,
        "-m",
        BACKFILL,
        "--user-pool-id",
        POOL_ID,
        "--diff",
        "--endpoint-url",
        pool.endpoint_url,
        "--region",
        "us-east-1",
        "--job",
        "job.sqlite",
    )
    assert result.exit_code == 0, result.output


def test_a_rollback_of_a_running_job_is_refused() -> None:
    with EmulatedPool() as pool:
        _diff_job(pool, ["u1", "u2"])
        with Ledger.open(Path("job.sqlite")) as running:
            running.lock()
            result = invoke(
                "rollback",
                "job.sqlite",
                "--yes",
                "--endpoint-url",
                pool.endpoint_url,
            )
        assert result.exit_code == 2, result.output
        assert "is being run by" in result.output
        assert pool.user_attributes(POOL_ID, "u1")["custom:tenant_id"] == "t-u1"


def test_a_rollback_report_and_status_agree_with_the_rollback_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with EmulatedPool() as pool:
        _diff_job(pool, ["u1", "u2", "u3"])
        real = rollback.execute_items

        def stop_after_one(items, **kwargs):
            return real(list(items)[:1], **kwargs) and ExecutionStats(interrupted=True)

        monkeypatch.setattr("migrate.jobs.execute_items", stop_after_one)
        result = invoke(
            "rollback",
            "job.sqlite",
            "--yes",
            "--endpoint-url",
            pool.endpoint_url,
            "--job",
            "undo.sqlite",
            "--report",
            "undo.csv",
        )
    assert result.exit_code == 130, result.output
    # The hint names the rollback's own files, which are not the defaults.
    assert result.output.strip().splitlines()[-1] == (
        "Interrupted. Continue with: cognito-migrate rollback job.sqlite --yes "
        "--job undo.sqlite --report undo.csv"
    )
    ran = read_report("undo.csv")
    assert len(ran) == 3
    again = invoke("report", "undo.sqlite", "-o", "again.csv")
    assert again.exit_code == 0, again.output
    assert read_report("again.csv") == ran
    status = invoke("status", "undo.sqlite")
    assert "Rows with a status: 3 of 3" in status.output
    # It names the job it undoes, not an input it does not have.
    undone = str(Path("job.sqlite").resolve())
    assert status.output.splitlines()[:2] == ["Job: undo.sqlite", f"Undoes: {undone}"]
    shown = json.loads(invoke("status", "undo.sqlite", "--json").output)
    assert (shown["kind"], shown["input"], shown["undoes"]) == (
        "rollback",
        None,
        undone,
    )
    plain = json.loads(invoke("status", "job.sqlite", "--json").output)
    assert plain["undoes"] is None
    assert "Undoes:" not in invoke("status", "job.sqlite").output


def test_a_runs_own_report_does_not_pair_outcomes_with_a_changed_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _input("in.csv", ["u1", "u2"])
    real = pipeline.execute

    def change_the_input_meanwhile(job, **kwargs):
        stats = real(job, **kwargs)
        _input("in.csv", ["x9", "x8", "x7"])
        return stats

    monkeypatch.setattr(pipeline, "execute", change_the_input_meanwhile)
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}, {"username": "u2"}])
        result = invoke(
            "run",
            data,
            "-m",
            BACKFILL,
            "--user-pool-id",
            POOL_ID,
            "--endpoint-url",
            pool.endpoint_url,
            "--region",
            "us-east-1",
            "--job",
            "job.sqlite",
        )
    assert result.exit_code == 0, result.output
    assert "changed since the job ran" in result.output
    assert [(r["user"], r["status"]) for r in read_report("job.report.csv")] == [
        ("u1", "updated"),
        ("u2", "updated"),
    ]


def test_a_stop_while_the_report_is_written_removes_the_older_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _input("in.csv", ["u1"])
    Path("job.report.csv").write_text(
        "row,user,username,status,changed,deleted,"
        "error_code,error_message,attempts,finished_at,delivery\n1,u1,u1,failed"
        ",,,,,1,,\n"
    )

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_report", interrupted)
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}])
        result = invoke(
            "run",
            data,
            "-m",
            BACKFILL,
            "--user-pool-id",
            POOL_ID,
            "--endpoint-url",
            pool.endpoint_url,
            "--region",
            "us-east-1",
            "--job",
            "job.sqlite",
        )
    assert result.exit_code == 130
    assert "the older report job.report.csv was removed" in result.output
    assert "cognito-migrate report job.sqlite -o job.report.csv" in result.output
    assert not Path("job.report.csv").exists()


def test_a_report_to_a_full_standard_output_is_a_message(tmp_path: Path) -> None:
    data = _input("in.csv", ["u1"])
    assert (
        invoke(
            "run",
            data,
            "-m",
            BACKFILL,
            "--schema",
            SCHEMA_FILE,
            "--sandbox",
            "--job",
            "job.sqlite",
        ).exit_code
        == 0
    )
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "migrate", "report", "job.sqlite", "-o", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
    assert b"cannot write the report to standard output" in done.stderr


class _Quiet:
    def on_rows(self, count: int) -> None:
        pass


def test_a_row_not_tried_again_keeps_its_failure_and_attempts(tmp_path: Path) -> None:
    fingerprint = make_fingerprint(
        input_path=_input("in.csv", ["u1"]), mapping_path=BACKFILL, pool="p", options={}
    )
    with Ledger.create(tmp_path / "j", fingerprint) as ledger:
        failed = Outcome(
            row=1,
            user="u1",
            status=Status.FAILED_RETRYABLE,
            attempts=1,
            error_code="TooManyRequestsException",
            error_message="Rate exceeded",
        )
        ledger.record(failed)
        ledger.flush()
        # A resume that stopped before this row's turn hands back not_attempted.
        record = pipeline._recorder(ledger, _Quiet(), retry_failed=False)
        record(Outcome(row=1, user="u1", status=Status.NOT_ATTEMPTED))
        (stored,) = ledger.outcomes(first_row=1, last_row=1)
    assert (stored["status"], stored["attempts"], stored["error_code"]) == (
        "failed_retryable",
        1,
        "TooManyRequestsException",
    )
