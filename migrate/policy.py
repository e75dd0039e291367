"""The IAM permissions each command needs, as a least-privilege policy.

Every call this tool makes with IAM credentials is on one user pool, so each
statement is scoped to that pool's ARN. The token API (``api = "token"``:
UpdateUserAttributes with each user's access token) needs no IAM permission
for its writes; its runs still read the pool's schema and each user
(AdminGetUser).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

#: cognito-idp actions by command; "run" covers `run`, `resume` and the
#: sandbox-free dry run with --user-pool-id.
COMMAND_ACTIONS: dict[str, tuple[str, ...]] = {
    "validate": ("cognito-idp:DescribeUserPool",),
    "run": (
        "cognito-idp:DescribeUserPool",
        "cognito-idp:AdminGetUser",
        "cognito-idp:AdminUpdateUserAttributes",
        "cognito-idp:AdminDeleteUserAttributes",
    ),
    "run --diff": ("cognito-idp:ListUsers",),
    "snapshot": ("cognito-idp:DescribeUserPool", "cognito-idp:ListUsers"),
    "rollback": (
        "cognito-idp:AdminGetUser",
        "cognito-idp:AdminUpdateUserAttributes",
        "cognito-idp:AdminDeleteUserAttributes",
    ),
}

#: Why each action is needed, for the statement ids.
_STATEMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ReadThePoolSchema", ("cognito-idp:DescribeUserPool",)),
    ("ListUsersForSnapshotAndDiff", ("cognito-idp:ListUsers",)),
    ("ReadEachUserBeforeItsWrite", ("cognito-idp:AdminGetUser",)),
    (
        "UpdateAndDeleteUserAttributes",
        (
            "cognito-idp:AdminUpdateUserAttributes",
            "cognito-idp:AdminDeleteUserAttributes",
        ),
    ),
)


def pool_arn(pool_id: str, *, region: str | None, account: str | None) -> str:
    """The user pool's ARN; the region is the pool id's prefix unless given."""
    region = region or pool_id.split("_", 1)[0]
    return f"arn:aws:cognito-idp:{region}:{account or '*'}:userpool/{pool_id}"


def policy(
    pool_id: str,
    *,
    region: str | None = None,
    account: str | None = None,
    commands: Iterable[str] = COMMAND_ACTIONS,
) -> dict[str, Any]:
    """An IAM policy allowing exactly what ``commands`` need on this pool."""
    wanted = {action for command in commands for action in COMMAND_ACTIONS[command]}
    arn = pool_arn(pool_id, region=region, account=account)
    statements = [
        {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": arn}
        for sid, actions in _STATEMENTS
        if wanted & set(actions)
    ]
    for statement in statements:
        statement["Action"] = [a for a in statement["Action"] if a in wanted]
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(
    pool_id: str,
    *,
    region: str | None = None,
    account: str | None = None,
    commands: Iterable[str] = COMMAND_ACTIONS,
) -> str:
    """The policy as indented JSON, ready for `aws iam put-user-policy`."""
    return json.dumps(
        policy(pool_id, region=region, account=account, commands=commands), indent=2
    )
