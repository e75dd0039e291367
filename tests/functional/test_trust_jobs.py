"""What a job says is true: reports match the ledger, outcomes reach disk promptly.

- A report of a job whose input changed since comes from the job file alone and
  says so, instead of pinning outcomes on the wrong users.
- At a low rate, an outcome is committed while the run waits for the next call,
  not when the next outcome arrives (a kill -9 in between lost an applied write).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from migrate import jobs, pipeline
from migrate.checkpoint import Ledger, make_fingerprint
from migrate.cli import cli
from migrate.execution import ExecutionConfig
from migrate.records import CallResult, JobSpec, WorkItem
from migrate.report import Summary
from migrate.sandbox import EmulatedPool
from migrate.schema import load_schema_file
from tests.cli.helpers import BACKFILL, SCHEMA, SCHEMA_FILE, invoke, read_report
from tests.conftest import MAPPINGS
from tests.support.fake_cognito import FakeCognito

POOL_ID = SCHEMA["UserPool"]["Id"]


def _counts(summary: Summary) -> dict[str, int]:
    return {str(s): n for s, n in summary.status_counts.items() if n}


def _input(path: Path, users: list[str]) -> Path:
    path.write_text("username,tenant\n" + "".join(f"{u},t-{u}\n" for u in users))
    return path


def test_a_report_after_the_input_changed_comes_from_the_ledger_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    users = [f"u{i:02d}" for i in range(1, 21)]
    data = _input(tmp_path / "in.csv", users)
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": u} for u in users[:15]])
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
            "--report",
            "run.csv",
        )
    assert result.exit_code == 1, result.output
    # The file is edited after the job: fewer rows, another order.
    _input(data, list(reversed(users[:5])))
    result = invoke("report", "job.sqlite", "-o", "again.csv")
    assert result.exit_code == 0, result.output
    assert f"the input file {data} changed since the job ran" in result.output
    assert "comes from the job file alone" in result.output
    rows = read_report("again.csv")
    assert len(rows) == 20
    ran = read_report("run.csv")
    keep = ("row", "user", "status", "error_code")
    assert [{k: r[k] for k in keep} for r in rows] == [
        {k: r[k] for k in keep} for r in ran
    ]


def test_a_report_after_the_input_is_gone_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", ["u1", "u2"])
    result = invoke(
        "run",
        data,
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--sandbox",
        "--job",
        "job.sqlite",
        "--report",
        "run.csv",
    )
    assert result.exit_code == 0, result.output
    data.unlink()
    result = invoke("report", "job.sqlite", "-o", "again.csv")
    assert result.exit_code == 0, result.output
    assert f"the input file {data} is gone" in result.output
    assert [r["status"] for r in read_report("again.csv")] == ["updated", "updated"]


@dataclass
class _SlowSecondCall:
    """Answers the first call at once and holds the second until released."""

    release: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def read(self, item: WorkItem) -> CallResult:
        return CallResult(attributes={})

    def update(self, item: WorkItem) -> CallResult:
        self.calls += 1
        if self.calls > 1:
            self.release.wait(30)
        return CallResult()

    def delete(self, item: WorkItem) -> CallResult:
        raise AssertionError("nothing to delete")


def test_an_outcome_is_committed_while_the_run_waits_for_the_next(
    tmp_path: Path,
) -> None:
    data = _input(tmp_path / "in.csv", ["u1", "u2"])
    job = pipeline.prepare(data, BACKFILL, load_schema_file(SCHEMA_FILE))
    fingerprint = make_fingerprint(
        input_path=data, mapping_path=BACKFILL, pool="p", options={}
    )
    path = tmp_path / "job.sqlite"
    fake = _SlowSecondCall()
    with Ledger.create(path, fingerprint, JobSpec(kind="real", pool_id="p")) as ledger:
        run = threading.Thread(
            target=pipeline.execute,
            kwargs={
                "job": job,
                "ledger": ledger,
                "pool": fake,
                "config": ExecutionConfig(rate=100.0, concurrency=1),
            },
        )
        run.start()
        try:
            found = False
            deadline = time.monotonic() + 10
            while not found and time.monotonic() < deadline:
                reader = sqlite3.connect(path)
                found = bool(
                    reader.execute("SELECT 1 FROM outcomes WHERE row = 1").fetchall()
                )
                reader.close()
                time.sleep(0.05)
            # Row 1 reached disk while row 2's call was still on the wire.
            assert found
            assert run.is_alive()
        finally:
            fake.release.set()
            run.join(30)


def test_a_real_run_refuses_to_continue_a_sandbox_jobs_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", ["u1"])
    result = invoke(
        "run",
        data,
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--sandbox",
        "--job",
        "job.sqlite",
    )
    assert result.exit_code == 0, result.output
    before = (tmp_path / "job.sqlite").read_bytes()
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
            "--yes",
        )
        assert pool.writes == {}
    assert result.exit_code == 2
    assert "refused, it is a sandbox job's file" in result.output
    assert (tmp_path / "job.sqlite").read_bytes() == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--user-pool-id", "us-east-1_Other"], "--user-pool-id"),
        (["--snapshot", "snap.parquet"], "--snapshot"),
    ],
)
def test_a_sandbox_run_refuses_options_it_would_ignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"username": ["u1"]}).write_parquet("snap.parquet")
    data = _input(tmp_path / "in.csv", ["u1"])
    result = invoke(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        "--schema",
        SCHEMA_FILE,
        "--sandbox",
        *extra,
    )
    assert result.exit_code == 2
    assert named in result.output
    assert "--sandbox builds its own pool" in result.output
    assert not list(tmp_path.glob("*.sqlite"))


def test_snapshot_refuses_a_rate_of_zero(tmp_path: Path) -> None:
    result = invoke(
        "snapshot",
        "--user-pool-id",
        POOL_ID,
        "-o",
        tmp_path / "s.parquet",
        "--rate",
        "0",
        "--endpoint-url",
        "http://127.0.0.1:9",
    )
    assert result.exit_code == 2
    assert result.output == "Error: --rate must be above 0 requests/s, not 0\n"


def test_the_library_runs_a_job_without_the_cli(tmp_path: Path) -> None:
    """Resume and report are library calls; the CLI is not needed to test them."""
    data = _input(tmp_path / "in.csv", ["u1", "u2", "u3"])
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}, {"username": "u2"}])
        request = jobs.JobRequest(
            input_path=data,
            mapping_path=BACKFILL,
            pool_id=POOL_ID,
            aws=jobs.AwsOptions(
                region="us-east-1",
                endpoint_url=pool.endpoint_url,
                credentials=("x", "x"),
            ),
            job_path=tmp_path / "job.sqlite",
            report_path=tmp_path / "report.csv",
        )
        first = jobs.prepare_run(request, jobs.QuietReporter()).execute()
        assert first.exit_code == 1
        assert _counts(first.summary) == {"updated": 2, "failed": 1}
        pool.add_users(POOL_ID, [{"username": "u3"}])
        again = jobs.prepare_resume(
            tmp_path / "job.sqlite",
            jobs.QuietReporter(),
            aws=jobs.AwsOptions(credentials=("x", "x")),
            retry_failed=True,
        ).execute()
        assert again.exit_code == 0
        assert pool.user_attributes(POOL_ID, "u3")["custom:tenant_id"] == "t-u3"
    summary = jobs.write_report(tmp_path / "job.sqlite", tmp_path / "final.jsonl")
    assert _counts(summary) == {"updated": 3}


def test_each_job_has_one_report_named_after_its_job_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", ["u1", "u2"])
    result = invoke("run", data, "-m", BACKFILL, "--schema", SCHEMA_FILE, "--sandbox")
    assert result.exit_code == 0, result.output
    assert "Report: in.backfill-tenant.sandbox.report.csv" in result.output
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}, {"username": "u2"}])
        connection = ["--endpoint-url", pool.endpoint_url, "--region", "us-east-1"]
        real = ["--user-pool-id", POOL_ID, *connection]
        result = invoke("run", data, "-m", BACKFILL, *real)
        assert result.exit_code == 0, result.output
        assert "Report: in.backfill-tenant.report.csv" in result.output
        result = invoke("run", data, "-m", BACKFILL, *real, "--job", "other.sqlite")
        assert result.exit_code == 0, result.output
        assert "Report: other.report.csv" in result.output
        result = invoke("resume", "other.sqlite", *connection)
        assert result.exit_code == 0, result.output
        assert "Report: other.report.csv" in result.output
    assert sorted(p.name for p in tmp_path.glob("*.report.csv")) == [
        "in.backfill-tenant.report.csv",
        "in.backfill-tenant.sandbox.report.csv",
        "other.report.csv",
    ]


def test_a_rerun_with_other_options_says_which_option_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", ["u1"])
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}])
        args = [
            data,
            "-m",
            BACKFILL,
            "--user-pool-id",
            POOL_ID,
            "--endpoint-url",
            pool.endpoint_url,
            "--region",
            "us-east-1",
        ]
        assert invoke("run", *args).exit_code == 0
        result = invoke("run", *args, "--diff")
    assert result.exit_code == 2
    assert (
        "the options that change what is sent (diff: false, now true) changed since"
    ) in result.output


def test_scripting_resume_takes_yes_and_the_recorded_rate_and_report_goes_to_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", ["u1", "u2"])
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": "u1"}])
        connection = ["--endpoint-url", pool.endpoint_url, "--region", "us-east-1"]
        result = invoke(
            "run",
            data,
            "-m",
            BACKFILL,
            "--user-pool-id",
            POOL_ID,
            *connection,
            "--job",
            "job.sqlite",
            "--rate",
            "23",
            "--concurrency",
            "3",
        )
        assert result.exit_code == 1, result.output
        # The recorded rate (23/s, above the warning threshold) is the resume's.
        result = invoke("resume", "job.sqlite", *connection, "--yes")
    assert result.exit_code == 1, result.output
    assert "Warning: --rate 23 is close to or above" in result.output
    with Ledger.open(tmp_path / "job.sqlite") as ledger:
        spec = ledger.spec()
    assert (spec.rate, spec.concurrency) == (23.0, 3)
    result = CliRunner().invoke(cli, ["report", "job.sqlite", "-o", "-"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("row,user,username,status,")
    assert [line.split(",")[3] for line in lines[1:]] == ["updated", "failed"]
    assert result.stderr.startswith("Rows: 2\n")
    assert not (tmp_path / "-").exists()


def test_a_diff_run_works_where_describe_user_pool_leaves_standard_attributes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_mapping = tmp_path / "emails.toml"
    write_mapping.write_text(
        '[user]\ncolumn = "username"\n\n[attributes.email]\ncolumn = "email"\n\n'
        '[attributes.email_verified]\nvalue = "true"\n'
    )
    data = tmp_path / "in.csv"
    data.write_text("username,email\nu1,same@example.com\nu2,new@example.com\n")
    with EmulatedPool() as pool:
        pool.seed(
            SCHEMA,
            [
                {
                    "username": "u1",
                    "email": "same@example.com",
                    "email_verified": "true",
                },
                {
                    "username": "u2",
                    "email": "old@example.com",
                    "email_verified": "true",
                },
            ],
        )
        result = invoke(
            "run",
            data,
            "-m",
            write_mapping,
            "--user-pool-id",
            POOL_ID,
            "--diff",
            "--endpoint-url",
            pool.endpoint_url,
            "--region",
            "us-east-1",
            "--yes",
        )
        assert result.exit_code == 0, result.output
        assert pool.user_attributes(POOL_ID, "u2")["email"] == "new@example.com"
    assert [r["status"] for r in read_report("in.emails.report.csv")] == [
        "unchanged",
        "updated",
    ]


def test_every_hint_after_a_stop_is_a_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = _input(tmp_path / "in.csv", [f"u{i:02d}" for i in range(1, 61)])
    # Every write fails the same way: the job stops after 50 in a row, and the
    # rows that failed are only retaken with --retry-failed.
    with FakeCognito(
        body={"__type": "UserNotFoundException", "message": "User does not exist."},
        replies={"DescribeUserPool": (200, SCHEMA)},
    ) as fake:
        result = invoke(
            "run",
            data,
            "-m",
            BACKFILL,
            "--user-pool-id",
            POOL_ID,
            "--endpoint-url",
            fake.url,
            "--region",
            "us-east-1",
            "--rate",
            "1000",
            "--job",
            "job.sqlite",
            "--concurrency",
            "1",
        )
    assert result.exit_code == 3, result.output
    hint = result.output.strip().splitlines()[-1]
    assert hint == (
        "Fix the cause, then: cognito-migrate resume job.sqlite --retry-failed "
        "(when the cause was outside the job, e.g. a Lambda trigger); after fixing "
        "the mapping or the data: cognito-migrate report job.sqlite -o failed.csv "
        "--only failed, then run failed.csv as a new job"
    )
    # Both commands of the hint work in this state.
    result = invoke("report", "job.sqlite", "-o", "failed.csv", "--only", "failed")
    assert result.exit_code == 0, result.output
    assert len(read_report("failed.csv")) == 60
    with EmulatedPool() as pool:
        pool.seed(SCHEMA, [{"username": f"u{i:02d}"} for i in range(1, 61)])
        result = invoke(
            "resume",
            "job.sqlite",
            "--retry-failed",
            "--endpoint-url",
            pool.endpoint_url,
        )
        assert result.exit_code == 0, result.output
        assert len(pool.writes) == 60


def test_a_sandbox_rehearses_a_pool_that_signs_in_with_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How the console and Amplify make most pools: email is the username.
    monkeypatch.chdir(tmp_path)
    schema = json.loads(SCHEMA_FILE.read_text())
    schema["UserPool"]["UsernameAttributes"] = ["email"]
    schema["UserPool"].pop("AliasAttributes", None)
    (tmp_path / "pool.json").write_text(json.dumps(schema))
    (tmp_path / "by-email.toml").write_text(
        '[user]\ncolumn = "email"\nas = "email"\n\n'
        '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'
    )
    (tmp_path / "in.csv").write_text(
        "email,tenant\nann@example.com,acme\nbob@example.com,globex\n"
    )
    result = invoke(
        "run", "in.csv", "-m", "by-email.toml", "--schema", "pool.json", "--sandbox"
    )
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in read_report("in.by-email.sandbox.report.csv")] == [
        "updated",
        "updated",
    ]
    (tmp_path / "by-name.toml").write_text(
        '[user]\ncolumn = "email"\n\n[attributes."custom:tenant_id"]\n'
        'column = "tenant"\n'
    )
    result = invoke(
        "run", "in.csv", "-m", "by-name.toml", "--schema", "pool.json", "--sandbox"
    )
    assert result.exit_code == 2
    assert 'key the mapping by email (as = "email")' in result.output
