"""The preflight block: what a run will do, said before its first write.

A real run reads the live pool first, so a wrong pool id or a saved schema the
pool no longer matches stops before a job file exists (nothing to resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from migrate.cognito import identity_of
from migrate.preflight import duration
from migrate.sandbox import EmulatedPool
from tests.cli.helpers import (
    BACKFILL,
    NORMALISE_PHONE,
    SCHEMA,
    SCHEMA_FILE,
    invoke,
    real_run_args,
    write,
)

POOL_ID = SCHEMA["UserPool"]["Id"]


def test_a_real_run_says_what_it_will_do_before_it_writes(pool: EmulatedPool) -> None:
    pool.seed(SCHEMA, [{"username": f"u{i}"} for i in range(1, 4)])
    write("in.csv", "username,phone\nu1,+14155550100\nu2,+14155550101\nu3,\n")
    result = invoke(
        "run",
        "in.csv",
        "-m",
        NORMALISE_PHONE,
        "--schema",
        SCHEMA_FILE,
        *real_run_args(pool.endpoint_url, POOL_ID),
        "--rate",
        "2",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    block = result.stderr.split("Job: job.sqlite\n")[0]
    assert block == (
        "Preflight:\n"
        "  credentials: not checked: --endpoint-url is not AWS\n"
        f"  user pool:   {POOL_ID} ({SCHEMA['UserPool']['Name']})\n"
        f"  region:      us-east-1, endpoint {pool.endpoint_url}\n"
        "  rows:        3 in the input\n"
        "  writes:      at most 3, at 2/s (the account's UserUpdate quota is 25/s, "
        "shared)\n"
        "  reads:       one per row to write, at 40/s (the UserRead quota, 120/s, "
        "apart from writes): before-values for rollback\n"
        "  duration:    2 s at most (invalid and unchanged rows are not sent)\n"
        "  email/phone: phone_number changed and marked verified in the same call\n"
    )


def test_a_wrong_pool_id_stops_before_a_job_exists(pool: EmulatedPool) -> None:
    pool.seed(SCHEMA, [{"username": "u1"}])
    write("in.csv", "username,tenant\nu1,acme\n")
    result = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        *real_run_args(pool.endpoint_url, "us-east-1_NOPE00000"),
    )
    assert result.exit_code == 3
    assert "user pool not found: check --user-pool-id and --region" in result.output
    assert "resume" not in result.output
    assert not Path("job.sqlite").exists()
    assert pool.writes == {}


def test_a_saved_schema_the_pool_no_longer_matches_stops_the_run(
    pool: EmulatedPool,
) -> None:
    pool.seed(SCHEMA, [{"username": "u1"}])
    saved = json.loads(json.dumps(SCHEMA))
    saved["UserPool"]["SchemaAttributes"].append(
        {"Name": "custom:region", "AttributeDataType": "String", "Mutable": True}
    )
    Path("saved.json").write_text(json.dumps(saved))
    write("in.csv", "username,region\nu1,eu\n")
    write(
        "m.toml",
        '[user]\ncolumn = "username"\n\n[attributes."custom:region"]\n'
        'column = "region"\n',
    )
    result = invoke(
        "run",
        "in.csv",
        "-m",
        "m.toml",
        "--schema",
        "saved.json",
        *real_run_args(pool.endpoint_url, POOL_ID),
    )
    assert result.exit_code == 2
    assert (
        f"user pool {POOL_ID} differs from saved.json: custom:region is not in the pool"
    ) in result.output
    assert not Path("job.sqlite").exists()


def test_a_dry_run_prints_the_block_from_what_it_knows() -> None:
    write("in.csv", "username,tenant\nu1,acme\nu2,globex\n")
    result = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
        "--rate",
        "20",
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "Preflight (dry run):\n"
        "  credentials: not checked: a dry run sends nothing\n"
        f"  user pool:   {POOL_ID}\n"
        "  region:      the default region, endpoint AWS\n"
        "  rows:        2 in the input\n"
        "  writes:      at most 2, at 20/s"
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "1 h"), (40_000, "11 h 7 min")],
)
def test_durations_read_as_people_say_them(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_identity_is_the_account_and_principal() -> None:
    sts = boto3.session.Session(region_name="us-east-1").client("sts")
    with Stubber(sts) as stub:
        stub.add_response(
            "get_caller_identity",
            {
                "Account": "123456789012",
                "Arn": "arn:aws:iam::123456789012:user/migrator",
                "UserId": "AIDAEXAMPLE",
            },
        )
        assert identity_of(sts) == (
            "123456789012 (arn:aws:iam::123456789012:user/migrator)"
        )
