"""`cognito-migrate policy`: the least-privilege IAM policy, scoped to one pool."""

from __future__ import annotations

import json

import pytest

from migrate.cognito import FATAL_HINTS
from tests.cli.helpers import invoke

ARN = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf"


def test_the_policy_covers_every_command_on_one_pool_only() -> None:
    result = invoke(
        "policy", "--user-pool-id", "eu-west-1_AbCdEf", "--account", "123456789012"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadThePoolSchema",
                "Effect": "Allow",
                "Action": ["cognito-idp:DescribeUserPool"],
                "Resource": ARN,
            },
            {
                "Sid": "ListUsersForSnapshotAndDiff",
                "Effect": "Allow",
                "Action": ["cognito-idp:ListUsers"],
                "Resource": ARN,
            },
            {
                "Sid": "ReadEachUserBeforeItsWrite",
                "Effect": "Allow",
                "Action": ["cognito-idp:AdminGetUser"],
                "Resource": ARN,
            },
            {
                "Sid": "UpdateAndDeleteUserAttributes",
                "Effect": "Allow",
                "Action": [
                    "cognito-idp:AdminUpdateUserAttributes",
                    "cognito-idp:AdminDeleteUserAttributes",
                ],
                "Resource": ARN,
            },
        ],
    }


@pytest.mark.parametrize(
    ("command", "actions"),
    [
        ("validate", ["cognito-idp:DescribeUserPool"]),
        ("snapshot", ["cognito-idp:DescribeUserPool", "cognito-idp:ListUsers"]),
        (
            "rollback",
            [
                "cognito-idp:AdminGetUser",
                "cognito-idp:AdminUpdateUserAttributes",
                "cognito-idp:AdminDeleteUserAttributes",
            ],
        ),
    ],
)
def test_the_policy_of_one_command(command: str, actions: list[str]) -> None:
    result = invoke(
        "policy",
        "--user-pool-id",
        "us-east-1_X",
        "--region",
        "us-east-2",
        "--command",
        command,
    )
    assert result.exit_code == 0, result.output
    statements = json.loads(result.output)["Statement"]
    assert [a for s in statements for a in s["Action"]] == actions
    assert {s["Resource"] for s in statements} == {
        "arn:aws:cognito-idp:us-east-2:*:userpool/us-east-1_X"
    }


def test_access_denied_points_to_the_policy_command() -> None:
    assert (
        "cognito-migrate policy --user-pool-id" in FATAL_HINTS["AccessDeniedException"]
    )
