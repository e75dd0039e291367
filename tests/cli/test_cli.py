"""The command line as a user meets it: help, samples, summaries, prompts, jobs.

Everything runs in-process through click's CliRunner (see helpers.invoke), in a
fresh working directory per test; real runs go to an emulated pool on loopback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import click
import click.testing
import pytest

from migrate import __version__
from migrate.cli import cli
from migrate.sandbox import EmulatedPool
from tests.cli.helpers import (
    BACKFILL,
    FAKE_AWS_ENV,
    NORMALISE_PHONE,
    NOT_OK,
    RENAME_PLAN,
    REPORT_HEADER,
    SCHEMA,
    SCHEMA_FILE,
    TIMESTAMP,
    invoke,
    mapping,
    mode,
    read_jsonl,
    read_report,
    real_run_args,
    without_preflight,
    write,
)
from tests.conftest import MAPPINGS, SAMPLES
from tests.support.faults import Faults, FaultyPool

# --- help and entry points ------------------------------------------------------------

EXIT_CODES_HELP = """\
  Exit codes:
    0    every row ended well (updated, unchanged, skipped, would update)
    1    the job finished but some rows are invalid or failed
    2    usage or configuration error (nothing was sent)
    3    aborted by a job-wide error (credentials, permissions, wrong pool);
         the job is resumable
    130  interrupted (resumable)
"""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_group_help_lists_commands_and_exit_codes(flag: str) -> None:
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.output.startswith(
        "Usage: cognito-migrate [OPTIONS] COMMAND [ARGS]...\n\n"
        "  Bulk-update attributes of existing Cognito users from CSV or Parquet.\n\n"
        + EXIT_CODES_HELP
    )
    commands = result.output.split("Commands:\n", 1)[1]
    listed = [line.split()[0] for line in commands.splitlines()]
    # In the order a user meets them, not alphabetical.
    assert listed == [
        "validate",
        "run",
        "status",
        "resume",
        "report",
        "snapshot",
        "rollback",
        "policy",
    ]


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_help_mentions_every_option(name: str) -> None:
    command = cli.commands[name]
    result = invoke(name, "--help")
    assert result.exit_code == 0
    usage = result.output.splitlines()[0]
    assert usage.startswith(f"Usage: cognito-migrate {name} [OPTIONS]")
    assert command.help is not None
    first_line = command.help.splitlines()[0]
    assert f"\n\n  {first_line}\n" in result.output
    options = result.output.split("\nOptions:\n", 1)[1]
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{param.name} has no help"
            for opt in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"(^|[ ,]){re.escape(opt)}\b", options, re.M), opt
        else:
            assert usage.endswith(f" {param.human_readable_name}")
    assert "-h, --help" in options


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("validate", "INPUT"),
        ("run", "INPUT"),
        ("resume", "JOB"),
        ("status", "JOB"),
        ("report", "JOB"),
    ],
)
def test_usage_names_arguments_as_the_help_text_does(name: str, argument: str) -> None:
    result = invoke(name, "--help")
    assert result.output.splitlines()[0] == (
        f"Usage: cognito-migrate {name} [OPTIONS] {argument}"
    )


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output == f"cognito-migrate, version {__version__}\n"


def test_python_dash_m_migrate_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "migrate", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: cognito-migrate [OPTIONS] COMMAND [ARGS]...")
    assert EXIT_CODES_HELP in done.stdout
    assert done.stderr == ""


def test_console_script_version() -> None:
    script = shutil.which("cognito-migrate")
    assert script is not None, "the cognito-migrate console script is not installed"
    done = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"cognito-migrate, version {__version__}\n"


# --- the samples ----------------------------------------------------------------------

ALL_MAPPINGS = sorted(MAPPINGS.glob("*.toml"))


def test_every_mapping_is_covered() -> None:
    assert [m.stem for m in ALL_MAPPINGS] == [
        "backfill-tenant",
        "normalise-phone",
        "profile",
        "rename-plan",
        "token-self-service",
    ]


def summary_counts(output: str) -> dict[str, int]:
    """Rows per status, from the first block of a printed summary."""
    block = output.split("\n\n", 1)[0].splitlines()[1:]
    return {name: int(count) for name, count in (line.split() for line in block)}


@pytest.mark.parametrize("path", ALL_MAPPINGS, ids=[m.stem for m in ALL_MAPPINGS])
def test_samples_validate_with_every_mapping(path: Path) -> None:
    result = invoke(
        "validate", SAMPLES / "users.csv", "-m", path, "--schema", SCHEMA_FILE
    )
    # The samples hold deliberately invalid rows.
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Rows: 300\n")
    assert "\n\nProblems by code:\n" in result.output
    assert "\n\nExample requests:\n" in result.output
    assert "Report:" not in result.output
    counts = summary_counts(result.output)
    assert sum(counts.values()) == 300
    assert counts["invalid"] > 0


@pytest.mark.parametrize("sample", ["users.csv", "users.parquet"])
@pytest.mark.parametrize("path", ALL_MAPPINGS, ids=[m.stem for m in ALL_MAPPINGS])
def test_samples_dry_run_reports_every_row_privately(path: Path, sample: str) -> None:
    result = invoke(
        "run",
        SAMPLES / sample,
        "-m",
        path,
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
        "--report",
        "dry.csv",
    )
    assert result.exit_code == 1, result.output
    assert result.output.endswith("\nReport: dry.csv\n")
    assert mode("dry.csv") == 0o600
    rows = read_report("dry.csv")
    assert [int(r["row"]) for r in rows] == list(range(1, 301))
    assert Counter(r["status"] for r in rows) == summary_counts(
        without_preflight(result.output)
    )
    header = list(rows[0])
    assert header[: len(REPORT_HEADER)] == REPORT_HEADER
    # Access tokens never reach a report, whatever the mapping.
    assert "access_token" not in header
    assert "tok-" not in Path("dry.csv").read_text(encoding="utf-8")
    assert "tok-" not in result.output


# --- an exact dry run -----------------------------------------------------------------

TINY = """\
username,plan,email
alice, Gold ,alice@example.com
bob,SILVER,bob@example.com
carol,,carol@example.com
dave,enterprise-plus-premium-unlimited,dave@example.com
erin,platinum,erin@example.com
"""


def test_dry_run_prints_the_exact_summary_and_report(tmp_path: Path) -> None:
    write("tiny.csv", TINY)
    result = invoke(
        "run",
        "tiny.csv",
        "-m",
        RENAME_PLAN,
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
        "--report",
        "tiny.report.csv",
    )
    assert result.exit_code == 1
    assert without_preflight(result.output) == (
        "Rows: 5\n"
        "  would_update  4\n"
        "  invalid       1\n"
        "\n"
        "Problems by code:\n"
        "  too_long  1\n"
        "\n"
        "Rows that did not end well, by code (the first few):\n"
        "  too_long  1\n"
        "    row 4, dave: column 'plan' -> custom:plan: "
        "'enterprise-plus-premium-unlimited' is too long: 33 characters, at most 32\n"
        "\n"
        "Attribute changes:\n"
        "  custom:legacy_flag  4 deleted\n"
        "  custom:plan         3 set\n"
        "\n"
        "Example requests:\n"
        "  alice: set custom:plan='enterprise'; delete custom:legacy_flag\n"
        "  bob: set custom:plan='pro'; delete custom:legacy_flag\n"
        "  carol: delete custom:legacy_flag\n"
        "\n"
        "Warnings:\n"
        "  - [delete] removes custom:legacy_flag from every user in the file\n"
        "Report: tiny.report.csv\n"
    )
    assert without_preflight(result.stderr) == ""
    rows = read_report("tiny.report.csv")
    for r in rows:
        assert re.fullmatch(TIMESTAMP, r.pop("finished_at")), r
    common = {"attempts": "0", "delivery": ""}
    assert rows == [
        {
            "row": "1",
            "user": "alice",
            "username": "alice",
            "status": "would_update",
            "changed": "custom:plan",
            "deleted": "custom:legacy_flag",
            "error_code": "",
            "error_message": "",
            **common,
            "input:username": "alice",
            "plan": " Gold ",
            "email": "alice@example.com",
        },
        {
            "row": "2",
            "user": "bob",
            "username": "bob",
            "status": "would_update",
            "changed": "custom:plan",
            "deleted": "custom:legacy_flag",
            "error_code": "",
            "error_message": "",
            **common,
            "input:username": "bob",
            "plan": "SILVER",
            "email": "bob@example.com",
        },
        {
            # A blank plan leaves the plan alone; the delete still applies.
            "row": "3",
            "user": "carol",
            "username": "carol",
            "status": "would_update",
            "changed": "",
            "deleted": "custom:legacy_flag",
            "error_code": "",
            "error_message": "",
            **common,
            "input:username": "carol",
            "plan": "",
            "email": "carol@example.com",
        },
        {
            "row": "4",
            "user": "dave",
            "username": "dave",
            "status": "invalid",
            "changed": "",
            "deleted": "",
            "error_code": "too_long",
            "error_message": "row 4, column 'plan' -> custom:plan: "
            "'enterprise-plus-premium-unlimited' is too long: 33 characters, "
            "at most 32",
            **common,
            "input:username": "dave",
            "plan": "enterprise-plus-premium-unlimited",
            "email": "dave@example.com",
        },
        {
            # Values the map does not list are sent as transformed.
            "row": "5",
            "user": "erin",
            "username": "erin",
            "status": "would_update",
            "changed": "custom:plan",
            "deleted": "custom:legacy_flag",
            "error_code": "",
            "error_message": "",
            **common,
            "input:username": "erin",
            "plan": "platinum",
            "email": "erin@example.com",
        },
    ]
    # A dry run leaves no job file behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny.csv",
        "tiny.report.csv",
    ]


def test_dry_run_default_report_name() -> None:
    write("tiny.csv", TINY)
    result = invoke(
        "run", "tiny.csv", "-m", RENAME_PLAN, "--schema", SCHEMA_FILE, "--dry-run"
    )
    assert result.exit_code == 1
    assert result.output.endswith("\nReport: tiny.rename-plan.dry-run.report.csv\n")
    assert len(read_report("tiny.rename-plan.dry-run.report.csv")) == 5


# --- confirmation before risky real runs ----------------------------------------------

PHONES = "username,phone\nu1,(415) 555-0100\nu2,415.555.0101\n"

PHONE_PLAN = (
    "This run will:\n"
    "  - change phone_number, marked verified in the same call (no message)\n"
    '  - phone_number is set with phone_number_verified = "true": Cognito changes '
    "it at once, keeps it verified and sends no message\n"
)


def phone_run(pool: EmulatedPool) -> str:
    """Write phones.csv and seed its users with another number; the pool id."""
    write("phones.csv", PHONES)
    pool_id = pool.seed(
        SCHEMA, [{"username": u, "phone_number": "+14155550199"} for u in ("u1", "u2")]
    )
    return pool_id


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """CliRunner's streams claim to be a terminal, so that the CLI may ask.

    The CLI asks only on a terminal; CliRunner's stdin is a plain pipe-like
    stream, so its (private) wrapper class is told to say otherwise.
    """
    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True)


def test_risky_run_without_a_terminal_refuses(pool: EmulatedPool) -> None:
    pool_id = phone_run(pool)
    result = invoke(
        "run",
        "phones.csv",
        "-m",
        NORMALISE_PHONE,
        *real_run_args(pool.endpoint_url, pool_id),
        input="y\n",
    )
    assert result.exit_code == 2
    assert without_preflight(result.output) == PHONE_PLAN + (
        "Error: this run changes email/phone numbers or deletes attributes; "
        "re-run with --yes to confirm (no terminal to ask on)\n"
    )
    assert result.stdout == ""
    assert "AdminUpdateUserAttributes" not in pool.calls
    assert sum(pool.writes.values()) == 0
    assert not Path("job.sqlite").exists()
    assert not Path("report.csv").exists()


@pytest.mark.usefixtures("terminal")
def test_risky_run_answered_no_sends_nothing(pool: EmulatedPool) -> None:
    pool_id = phone_run(pool)
    result = invoke(
        "run",
        "phones.csv",
        "-m",
        NORMALISE_PHONE,
        *real_run_args(pool.endpoint_url, pool_id),
        "--quiet",
        input="n\n",
    )
    assert result.exit_code == 2
    assert without_preflight(result.output) == PHONE_PLAN + (
        "Continue? [y/N]: n\nError: cancelled; nothing was sent\n"
    )
    assert "AdminUpdateUserAttributes" not in pool.calls
    assert sum(pool.writes.values()) == 0
    assert pool.user_attributes(pool_id, "u1")["phone_number"] == "+14155550199"
    assert not Path("job.sqlite").exists()


@pytest.mark.usefixtures("terminal")
def test_risky_run_answered_yes_runs(pool: EmulatedPool) -> None:
    pool_id = phone_run(pool)
    result = invoke(
        "run",
        "phones.csv",
        "-m",
        NORMALISE_PHONE,
        *real_run_args(pool.endpoint_url, pool_id),
        "--quiet",
        input="y\n",
    )
    assert result.exit_code == 0, result.output
    assert without_preflight(result.output).startswith(
        PHONE_PLAN + "Continue? [y/N]: y\nJob: job.sqlite\n"
    )
    assert pool.writes == {"u1": 1, "u2": 1}
    assert pool.user_attributes(pool_id, "u2")["phone_number"] == "+14155550101"


def test_yes_runs_without_asking(pool: EmulatedPool) -> None:
    pool_id = phone_run(pool)
    result = invoke(
        "run",
        "phones.csv",
        "-m",
        NORMALISE_PHONE,
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert without_preflight(result.output) == (
        "Job: job.sqlite\n"
        "Rows: 2\n"
        "  updated  2\n"
        "\n"
        "Attribute changes:\n"
        "  phone_number           2 set\n"
        "  phone_number_verified  2 set\n"
        "\n"
        "Warnings:\n"
        '  - phone_number is set with phone_number_verified = "true": Cognito '
        "changes it at once, keeps it verified and sends no message\n"
        "Report: report.csv\n"
        "Calls: 2 reads (0 throttled), 2 writes (0 throttled)\n"
    )
    assert without_preflight(result.stderr) == (
        "Job: job.sqlite\nCalls: 2 reads (0 throttled), 2 writes (0 throttled)\n"
    )
    assert pool.writes == {"u1": 1, "u2": 1}
    attrs = pool.user_attributes(pool_id, "u1")
    assert attrs["phone_number"] == "+14155550100"
    assert attrs["phone_number_verified"] == "true"
    assert [r["status"] for r in read_report("report.csv")] == ["updated", "updated"]
    assert mode("report.csv") == 0o600
    assert mode("job.sqlite") == 0o600


def test_prompt_does_not_promise_messages_a_verified_change_never_sends(
    pool: EmulatedPool,
) -> None:
    pool_id = phone_run(pool)
    result = invoke(
        "run",
        "phones.csv",
        "-m",
        NORMALISE_PHONE,
        *real_run_args(pool.endpoint_url, pool_id),
    )
    assert result.exit_code == 2
    assert without_preflight(result.output).startswith(
        "This run will:\n  - change phone_number"
    )
    assert "verification messages" not in result.output
    assert "unverified aliases" not in result.output


def test_real_run_with_yes_still_shows_the_warnings(pool: EmulatedPool) -> None:
    pool_id = pool.seed(SCHEMA, [{"username": "u1"}])
    write("in.csv", "username,email\nu1,new@example.com\n")
    mapping("email.toml", '[attributes.email]\ncolumn = "email"\n')
    result = invoke(
        "run",
        "in.csv",
        "-m",
        "email.toml",
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
    )
    assert result.exit_code == 0, result.output
    assert (
        "email is set: Cognito writes the new email address at once, unverified"
        in result.output
    )


# --- rate options ---------------------------------------------------------------------

RATE_WARNING = (
    "Warning: --rate 30 is close to or above the 25/s UserUpdate quota, which is "
    "shared by every app in this account and region: production profile updates "
    "may be throttled while this runs\n"
)


def tenants(pool: EmulatedPool, n: int = 3) -> str:
    users = [f"u{i}" for i in range(1, n + 1)]
    write("in.csv", "username,tenant\n" + "".join(f"{u},acme\n" for u in users))
    return pool.seed(SCHEMA, [{"username": u} for u in users])


def test_rate_near_the_quota_warns_on_stderr(pool: EmulatedPool) -> None:
    pool_id = tenants(pool)
    result = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        *real_run_args(pool.endpoint_url, pool_id),
        "--rate",
        "30",
    )
    assert result.exit_code == 0, result.output
    assert without_preflight(result.stderr) == (
        RATE_WARNING
        + "Job: job.sqlite\nCalls: 3 reads (0 throttled), 3 writes (0 throttled)\n"
    )
    assert "Warning" not in result.stdout
    assert sum(pool.writes.values()) == 3


def test_default_rate_does_not_warn(pool: EmulatedPool) -> None:
    pool_id = tenants(pool)
    result = invoke(
        "run", "in.csv", "-m", BACKFILL, *real_run_args(pool.endpoint_url, pool_id)
    )
    assert result.exit_code == 0, result.output
    assert without_preflight(result.stderr) == (
        "Job: job.sqlite\nCalls: 3 reads (0 throttled), 3 writes (0 throttled)\n"
    )


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
@pytest.mark.parametrize("rate", ["0", "-1"])
def test_rate_must_be_positive(pool: EmulatedPool, rate: str, dry_run: bool) -> None:
    pool_id = tenants(pool)
    mode_args = ["--dry-run", "--schema", str(SCHEMA_FILE)] if dry_run else []
    result = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        *real_run_args(pool.endpoint_url, pool_id),
        *mode_args,
        "--rate",
        rate,
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: --rate must be above 0 requests/s, not ")
    assert len(result.output.splitlines()) == 1
    assert dict(pool.calls) == {}
    assert not Path("job.sqlite").exists()
    assert not Path("report.csv").exists()


def test_rate_error_echoes_the_value_as_typed() -> None:
    write("in.csv", "username,tenant\nu1,acme\n")
    result = invoke(
        "run", "in.csv", "-m", BACKFILL, "--user-pool-id", "x", "--rate", "0"
    )
    assert result.output == "Error: --rate must be above 0 requests/s, not 0\n"


def test_infinite_rate_is_rejected_before_anything_happens(pool: EmulatedPool) -> None:
    pool_id = tenants(pool)
    result = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        *real_run_args(pool.endpoint_url, pool_id),
        "--rate",
        "inf",
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: --rate must be ")
    assert len(result.output.splitlines()) == 1
    assert not Path("job.sqlite").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--concurrency", "Error: --concurrency must be at least 1, not 0\n"),
        ("--max-attempts", "Error: --max-attempts must be at least 1, not 0\n"),
    ],
)
def test_other_rate_options_must_be_positive(option: str, message: str) -> None:
    write("in.csv", "username,tenant\nu1,acme\n")
    result = invoke("run", "in.csv", "-m", BACKFILL, "--user-pool-id", "x", option, "0")
    assert result.exit_code == 2
    assert result.output == message


# --- status and report after a run ----------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished job, shared by tests that only read it: its job file.

    2 rows updated, 2 invalid (too long) and 1 failed (no such user).
    """
    directory = tmp_path_factory.mktemp("finished")
    long = "x" * 65
    with (
        pytest.MonkeyPatch.context() as patch,
        FaultyPool(faults=Faults(quota=None)) as pool,
    ):
        # Module scope runs before the function-scoped autouse fixtures.
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.chdir(directory)
        write(
            "in.csv",
            f"username,tenant\nu1,acme\nu2,{long}\nu3,globex\nghost,acme\nu4,{long}\n",
        )
        pool_id = pool.seed(SCHEMA, [{"username": f"u{i}"} for i in range(1, 5)])
        result = invoke(
            "run", "in.csv", "-m", BACKFILL, *real_run_args(pool.endpoint_url, pool_id)
        )
        assert result.exit_code == 1, result.output
    return directory / "job.sqlite"


def test_status_after_a_run(finished: Path) -> None:
    result = invoke("status", finished)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:12] == [
        f"Job: {finished}",
        f"Input: {(finished.parent / 'in.csv').resolve()}",
        "Pool: us-east-1_SAMPLE0001",
        "Running: no",
        "Rows with a status: 5 of 5",
        "  updated                     2",
        "  invalid                     2",
        "  failed                      1",
        "Remaining: 0 rows",
        "Errors by code:",
        "  too_long                                2",
        "  UserNotFoundException                   1",
    ]
    assert re.fullmatch(
        r"Last activity: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(\d+s ago\)", lines[12]
    )
    assert re.fullmatch(r"Achieved rate: \d+\.\d users/s \(latest run\)", lines[13])
    assert lines[14:] == ["Runs: 1 (last: finished)"]


def test_status_as_json_for_scripts(finished: Path) -> None:
    result = invoke("status", finished, "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", shown.pop("last_activity")
    )
    assert isinstance(shown.pop("rate"), float)
    assert shown == {
        "version": 1,
        "job": str(finished),
        "kind": "real",
        "input": str((finished.parent / "in.csv").resolve()),
        "undoes": None,
        "pool_id": "us-east-1_SAMPLE0001",
        "running": False,
        "holder": None,
        "total_rows": 5,
        "statuses": {
            "updated": 2,
            "unchanged": 0,
            "skipped": 0,
            "would_update": 0,
            "invalid": 2,
            "failed": 1,
            "failed_retryable": 0,
            "not_attempted": 0,
            "conflict": 0,
        },
        "remaining": 0,
        "skipped_by_reason": {},
        "errors_by_code": {"too_long": 2, "UserNotFoundException": 1},
        "eta_seconds": None,
        "runs": 1,
        "last_run_result": "finished",
    }


def test_status_watch_ends_when_the_job_is_not_running(finished: Path) -> None:
    result = invoke("status", finished, "--watch", "--interval", "0.5")
    assert result.exit_code == 0, result.output
    assert result.output.count("Running: no") == 1


def test_status_of_a_missing_job() -> None:
    result = invoke("status", "nope.sqlite")
    assert result.exit_code == 2
    assert result.output == (
        "Error: job file nope.sqlite not found; `cognito-migrate run` prints the "
        "job file it creates\n"
    )


def test_status_of_a_file_that_is_not_a_job() -> None:
    write("in.csv", "username,tenant\nu1,acme\n")
    result = invoke("status", "in.csv")
    assert result.exit_code == 2
    assert result.output == (
        "Error: in.csv is not a cognito-migrate job file, or it is corrupt "
        "(it is not a SQLite database; it was left as it was)\n"
    )


def test_report_only_failed_as_json_lines(finished: Path) -> None:
    result = invoke("report", finished, "-o", "failed.jsonl", "--only", "failed")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\nReport: failed.jsonl\n")
    assert mode("failed.jsonl") == 0o600
    rows = read_jsonl("failed.jsonl")
    assert [(r["row"], r["user"], r["status"], r["error_code"]) for r in rows] == [
        (2, "u2", "invalid", "too_long"),
        (4, "ghost", "failed", "UserNotFoundException"),
        (5, "u4", "invalid", "too_long"),
    ]
    assert {r["status"] for r in rows} <= NOT_OK
    assert rows[0]["error_message"] == (
        "row 2, column 'tenant' -> custom:tenant_id: "
        "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' is too long: 65 characters, "
        "at most 64"
    )
    # Every input column travels along, so this file can feed a new run.
    assert rows[1]["input:username"] == "ghost"
    assert rows[1]["tenant"] == "acme"


@pytest.mark.parametrize("only", ["ok", "updated"])
def test_report_only_ok_statuses(finished: Path, only: str) -> None:
    result = invoke("report", finished, "-o", "ok.csv", "--only", only)
    assert result.exit_code == 0, result.output
    rows = read_report("ok.csv")
    assert [(r["user"], r["status"]) for r in rows] == [
        ("u1", "updated"),
        ("u3", "updated"),
    ]


def test_report_with_an_unknown_extension(finished: Path) -> None:
    result = invoke("report", finished, "-o", "out.txt")
    assert result.exit_code == 2
    assert result.output == (
        "Error: report file 'out.txt': unknown extension; use .csv, .parquet "
        "(.pq) or .jsonl (.ndjson, JSON lines)\n"
    )
    assert not Path("out.txt").exists()


def test_report_with_an_unknown_status() -> None:
    result = invoke("report", "job.sqlite", "-o", "x.csv", "--only", "broken")
    assert result.exit_code == 2
    assert "Error: Invalid value for '--only': 'broken' is not one of" in (
        result.output
    )


@pytest.mark.parametrize("report", ["out.txt", "missing-dir/out.csv"])
def test_real_run_rejects_a_bad_report_path_before_sending(
    pool: EmulatedPool, report: str
) -> None:
    pool_id = tenants(pool)
    args = real_run_args(pool.endpoint_url, pool_id)
    args[args.index("--report") + 1] = report
    result = invoke("run", "in.csv", "-m", BACKFILL, *args)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: report file '{report}': ")
    assert sum(pool.writes.values()) == 0


@pytest.mark.parametrize("command", ["validate", "dry-run"])
def test_report_never_overwrites_the_input(command: str) -> None:
    original = "username,tenant\nu1,acme\n"
    write("in.csv", original)
    args = ["in.csv", "-m", str(BACKFILL), "--schema", str(SCHEMA_FILE)]
    if command == "validate":
        result = invoke("validate", *args, "--report", "in.csv")
    else:
        result = invoke("run", *args, "--dry-run", "--report", "in.csv")
    assert result.exit_code == 2
    assert result.output.startswith("Error: report file 'in.csv'")
    assert Path("in.csv").read_text() == original
