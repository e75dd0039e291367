"""Pools as the console, Amplify and older APIs make them, end to end.

Every common pool configuration (username pools, email or phone as the
username, email/phone/preferred_username aliases, case-sensitive and
case-insensitive usernames, a DescribeUserPool that lists only the custom
attributes) is run three ways through the real command line:

- ``run --sandbox``: the rehearsal seeds its own pool from the schema and input;
- a real run against the emulated pool on loopback (``--endpoint-url``);
- a real ``run --diff`` against it, then ``rollback``.

Each configuration's input writes keys the way exports do (another case,
surrounding spaces, an alias instead of the username), and the expected
outcome of every row is what Cognito does with that key: the run and the diff
must agree with each other and with the pool.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from migrate.sandbox import EmulatedPool, Quotas, Reply, Request
from tests.cli.helpers import SCHEMA, invoke, read_report, real_run_args
from tests.support.served import served_sandbox

NOT_FOUND = "UserNotFoundException"
#: The custom attribute every row sets; seeded users hold "old".
TENANT = "custom:tenant_id"


@dataclass(frozen=True)
class Row:
    """One input row: the key as written, and who Cognito finds by it."""

    key: str
    #: The seeded user (its ``label``) the key names, or None: no such user.
    user: str | None


@dataclass(frozen=True)
class Config:
    """A pool configuration, its users and an input keyed as users write it."""

    id: str
    #: UserPool keys to set over the sample schema's (None removes the key).
    pool: Mapping[str, Any]
    user_as: str
    #: Users to seed: label -> attributes. The label is the ``username`` a
    #: users file gives serve (an email or phone in UsernameAttributes pools).
    users: Mapping[str, Mapping[str, str]]
    rows: tuple[Row, ...]
    #: DescribeUserPool lists only the custom attributes (as moto's does).
    custom_only: bool = False
    note: str = field(default="", compare=False)

    def schema(self) -> dict[str, Any]:
        described = copy.deepcopy(SCHEMA)
        pool = described["UserPool"]
        for key, value in self.pool.items():
            if value is None:
                pool.pop(key, None)
            else:
                pool[key] = value
        if self.custom_only:
            pool["SchemaAttributes"] = [
                a for a in pool["SchemaAttributes"] if a["Name"].startswith("custom:")
            ]
        return described


NO_ALIASES = {"AliasAttributes": None, "UsernameAttributes": None}
CASE_SENSITIVE = {"UsernameConfiguration": {"CaseSensitive": True}}
CASE_BLIND = {"UsernameConfiguration": {"CaseSensitive": False}}

CONFIGS = [
    Config(
        "username-case-sensitive",
        {**NO_ALIASES, **CASE_SENSITIVE},
        "username",
        {"alice": {}, "bob": {}, "Dave": {}, "dave": {}},
        (
            Row("alice", "alice"),
            Row("  bob ", "bob"),
            Row("Alice", None),
            Row("Dave", "Dave"),
            Row("dave", "dave"),
            Row("nobody", None),
        ),
    ),
    Config(
        "username-case-insensitive",
        {**NO_ALIASES, **CASE_BLIND},
        "username",
        {"alice": {}, "bob": {}},
        (Row("ALICE", "alice"), Row(" Bob ", "bob"), Row("nobody", None)),
    ),
    Config(
        # Pools made before UsernameConfiguration existed, described by an
        # emulator that lists only custom attributes: case-sensitive.
        "username-legacy-custom-only",
        {**NO_ALIASES, "UsernameConfiguration": None},
        "username",
        {"alice": {}, "Dave": {}, "dave": {}},
        (
            Row("alice", "alice"),
            Row("ALICE", None),
            Row("Dave", "Dave"),
            Row("dave", "dave"),
        ),
        custom_only=True,
    ),
    Config(
        "email-alias",
        {**NO_ALIASES, "AliasAttributes": ["email"], **CASE_BLIND},
        "email",
        {
            "ann": {"email": "ann@example.com", "email_verified": "true"},
            "ben": {"email": "ben@example.com", "email_verified": "true"},
        },
        (
            Row("Ann@Example.COM", "ann"),
            Row(" ben@example.com ", "ben"),
            Row("nobody@example.com", None),
        ),
    ),
    Config(
        "email-alias-case-sensitive",
        {**NO_ALIASES, "AliasAttributes": ["email"], **CASE_SENSITIVE},
        "email",
        {
            "ann": {"email": "ann@example.com", "email_verified": "true"},
            "ben": {"email": "Ben@Example.com", "email_verified": "true"},
        },
        (
            Row("ann@example.com", "ann"),
            Row("Ann@example.com", None),
            Row("Ben@Example.com", "ben"),
        ),
    ),
    Config(
        "phone-alias",
        {**NO_ALIASES, "AliasAttributes": ["phone_number"], **CASE_BLIND},
        "phone_number",
        {
            "ann": {"phone_number": "+14325550101", "phone_number_verified": "true"},
            "ben": {"phone_number": "+14325550102", "phone_number_verified": "true"},
        },
        (
            Row("+14325550101", "ann"),
            Row(" +14325550102 ", "ben"),
            Row("+14325550199", None),
        ),
    ),
    Config(
        "preferred-username-alias",
        {**NO_ALIASES, "AliasAttributes": ["preferred_username"], **CASE_BLIND},
        "username",
        {"u-1": {"preferred_username": "Annie"}, "u-2": {}},
        (Row("annie", "u-1"), Row("U-2", "u-2"), Row("nobody", None)),
    ),
    Config(
        "email-alias-keyed-by-username",
        {**NO_ALIASES, "AliasAttributes": ["email"], **CASE_BLIND},
        "username",
        {
            "ann": {"email": "ann@example.com", "email_verified": "true"},
            "ben": {"email": "ben@example.com", "email_verified": "true"},
        },
        (Row("ann", "ann"), Row("Ben@example.com", "ben")),
        note="Cognito takes an alias wherever it takes a username",
    ),
    Config(
        # How the console and Amplify make most pools.
        "email-as-username",
        {**NO_ALIASES, "UsernameAttributes": ["email"], **CASE_BLIND},
        "email",
        {"person1@example.com": {}, "person2@example.com": {}},
        (
            Row("Person1@Example.com", "person1@example.com"),
            Row(" person2@example.com ", "person2@example.com"),
            Row("nobody@example.com", None),
        ),
    ),
    Config(
        "email-as-username-case-sensitive",
        {**NO_ALIASES, "UsernameAttributes": ["email"], **CASE_SENSITIVE},
        "email",
        {"person1@example.com": {}, "person2@example.com": {}},
        (
            Row("person1@example.com", "person1@example.com"),
            Row("Person2@Example.com", None),
        ),
    ),
    Config(
        "email-as-username-custom-only",
        {**NO_ALIASES, "UsernameAttributes": ["email"], **CASE_BLIND},
        "email",
        {"person1@example.com": {}, "person2@example.com": {}},
        (
            Row("PERSON1@example.com", "person1@example.com"),
            Row("person2@example.com", "person2@example.com"),
        ),
        custom_only=True,
    ),
    Config(
        "phone-as-username",
        {**NO_ALIASES, "UsernameAttributes": ["phone_number"], **CASE_BLIND},
        "phone_number",
        {"+14325550101": {}, "+14325550102": {}},
        (
            Row("+14325550101", "+14325550101"),
            Row(" +14325550102", "+14325550102"),
            Row("+14325550199", None),
        ),
    ),
    Config(
        "email-or-phone-as-username",
        {
            **NO_ALIASES,
            "UsernameAttributes": ["email", "phone_number"],
            **CASE_BLIND,
        },
        "phone_number",
        {
            "+14325550101": {},
            "person2@example.com": {"phone_number": "+14325550102"},
        },
        (
            Row("+14325550101", "+14325550101"),
            Row("+14325550102", "person2@example.com"),
        ),
    ),
]


# --- the pools --------------------------------------------------------------------


class CustomOnlyPool(EmulatedPool):
    """An emulated pool whose DescribeUserPool lists only custom attributes.

    That is moto's own DescribeUserPool for a pool created with custom
    attributes only; every pool still has the standard ones.
    """

    def perform(self, operation: str, request: Request) -> Reply | None:
        reply = super().perform(operation, request)
        if operation != "DescribeUserPool" or reply is None or reply.status != 200:
            return reply
        described = json.loads(reply.body)
        pool = described["UserPool"]
        pool["SchemaAttributes"] = [
            a
            for a in pool["SchemaAttributes"]
            if a["Name"].startswith(("custom:", "dev:"))
        ]
        return Reply.json(described)


def open_pool(config: Config) -> tuple[EmulatedPool, str]:
    """A pool seeded with the configuration's users, every user's tenant "old"."""
    kind = CustomOnlyPool if config.custom_only else EmulatedPool
    pool = kind(quotas=Quotas(user_update=None, user_list=None, user_read=None))
    pool_id = pool.seed(config.schema(), users_file_rows(config))
    return pool, pool_id


def users_file_rows(config: Config) -> list[dict[str, str]]:
    """The configuration's users as rows of a users file for ``serve``."""
    return [
        {"username": label, TENANT: "old", **attributes}
        for label, attributes in config.users.items()
    ]


def tenants(pool: EmulatedPool, pool_id: str, config: Config) -> dict[str, str]:
    """label -> the user's tenant now."""
    return {
        label: pool.user_attributes(pool_id, label).get(TENANT, "")
        for label in config.users
    }


def expected_tenants(config: Config) -> dict[str, str]:
    """label -> tenant after the run: each found user gets its row's tenant."""
    found = {row.user: f"t{n}" for n, row in enumerate(config.rows, 1) if row.user}
    return {label: found.get(label, "old") for label in config.users}


def expected_report(config: Config) -> list[tuple[str, str, str]]:
    """(user, status, error code) per row; the report gives the key stripped."""
    return [
        (row.key.strip(), "updated", "")
        if row.user
        else (row.key.strip(), "failed", NOT_FOUND)
        for row in config.rows
    ]


def write_job_files(config: Config, folder: Path) -> tuple[Path, Path, Path]:
    """(input, mapping, schema) in ``folder``; row n sets tenant "tn"."""
    data = folder / "in.csv"
    lines = ["key,tenant"]
    lines += [f'"{row.key}",t{n}' for n, row in enumerate(config.rows, 1)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = folder / "map.toml"
    mapping.write_text(
        f'[user]\ncolumn = "key"\nas = "{config.user_as}"\n\n'
        f'[attributes."{TENANT}"]\ncolumn = "tenant"\n',
        encoding="utf-8",
    )
    schema = folder / "pool.json"
    schema.write_text(json.dumps(config.schema()), encoding="utf-8")
    return data, mapping, schema


def report_rows(path: Path) -> list[tuple[str, str, str]]:
    return [(r["user"], r["status"], r["error_code"]) for r in read_report(path)]


def by_id(config: Config) -> str:
    return config.id


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Job and report files land in the test's own folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=CONFIGS, ids=by_id)
def config(request: pytest.FixtureRequest) -> Config:
    found: Config = request.param
    return found


@pytest.fixture
def seeded(config: Config) -> Iterator[tuple[EmulatedPool, str]]:
    pool, pool_id = open_pool(config)
    with pool:
        yield pool, pool_id


# --- the matrix: configuration x (sandbox run, run, --diff run + rollback) ---------


def test_sandbox_run(config: Config, tmp_path: Path) -> None:
    data, mapping, schema = write_job_files(config, tmp_path)
    result = invoke(
        "run", data, "-m", mapping, "--schema", schema, "--sandbox", "--quiet"
    )
    assert result.exit_code == 0, result.output
    # The rehearsal creates a user for every key, so every row finds one.
    assert report_rows(tmp_path / "in.map.sandbox.report.csv") == [
        (row.key.strip(), "updated", "") for row in config.rows
    ]


def test_run_through_the_endpoint(
    config: Config, seeded: tuple[EmulatedPool, str], tmp_path: Path
) -> None:
    pool, pool_id = seeded
    data, mapping, _schema = write_job_files(config, tmp_path)
    result = invoke(
        "run",
        data,
        "-m",
        mapping,
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
        "--quiet",
    )
    expected = expected_report(config)
    assert result.exit_code == (1 if any(not r.user for r in config.rows) else 0), (
        result.output
    )
    assert report_rows(tmp_path / "report.csv") == expected
    assert tenants(pool, pool_id, config) == expected_tenants(config)


def test_diff_run_and_rollback_through_the_endpoint(
    config: Config,
    seeded: tuple[EmulatedPool, str],
    tmp_path: Path,
) -> None:
    pool, pool_id = seeded
    data, mapping, _schema = write_job_files(config, tmp_path)
    result = invoke(
        "run",
        data,
        "-m",
        mapping,
        "--diff",
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
        "--quiet",
    )
    assert result.exit_code == (1 if any(not r.user for r in config.rows) else 0), (
        result.output
    )
    assert report_rows(tmp_path / "report.csv") == expected_report(config)
    assert tenants(pool, pool_id, config) == expected_tenants(config)

    result = invoke("rollback", "job.sqlite", "--yes", "--quiet")
    assert result.exit_code == 0, result.output
    assert tenants(pool, pool_id, config) == dict.fromkeys(config.users, "old")


# --- the emulated pool resolves reads exactly as writes --------------------------


def _client(pool: EmulatedPool) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=pool.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


def test_admin_get_user_finds_whom_the_writes_find(
    config: Config, seeded: tuple[EmulatedPool, str]
) -> None:
    # A run reads each user just before writing it, with the same Username.
    pool, pool_id = seeded
    client = _client(pool)
    for row in config.rows:
        key = row.key.strip()
        if row.user is None:
            with pytest.raises(client.exceptions.UserNotFoundException):
                client.admin_get_user(UserPoolId=pool_id, Username=key)
            with pytest.raises(client.exceptions.UserNotFoundException):
                client.admin_update_user_attributes(
                    UserPoolId=pool_id,
                    Username=key,
                    UserAttributes=[{"Name": TENANT, "Value": "x"}],
                )
            continue
        read = client.admin_get_user(UserPoolId=pool_id, Username=key)
        client.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username=key,
            UserAttributes=[{"Name": TENANT, "Value": f"via {key}"}],
        )
        attributes = {a["Name"]: a["Value"] for a in read["UserAttributes"]}
        written = pool.user_attributes(pool_id, row.user)
        assert attributes["sub"] == written["sub"]
        assert written[TENANT] == f"via {key}"
    client.close()
    found = sum(1 for row in config.rows if row.user)
    assert pool.counters()["reads"] == len(config.rows)
    assert sum(pool.counters()["writes"].values()) == found


def test_get_user_finds_the_tokens_user(
    config: Config, seeded: tuple[EmulatedPool, str]
) -> None:
    pool, pool_id = seeded
    client = _client(pool)
    for label in config.users:
        token = pool.issue_access_token(pool_id, label)
        got = client.get_user(AccessToken=token)
        client.update_user_attributes(
            AccessToken=token, UserAttributes=[{"Name": TENANT, "Value": label}]
        )
        attributes = {a["Name"]: a["Value"] for a in got["UserAttributes"]}
        assert attributes["sub"] == pool.user_attributes(pool_id, label)["sub"]
        assert pool.user_attributes(pool_id, label)[TENANT] == label
    client.close()
    assert pool.counters()["reads"] == len(config.users)


# --- through ``serve`` in a process of its own ------------------------------------


def test_email_as_username_through_serve(tmp_path: Path) -> None:
    config = next(c for c in CONFIGS if c.id == "email-as-username")
    data, mapping, schema = write_job_files(config, tmp_path)
    users = tmp_path / "users.csv"
    rows = users_file_rows(config)
    header = sorted({k for r in rows for k in r})
    users.write_text(
        ",".join(header)
        + "\n"
        + "".join(",".join(r.get(k, "") for k in header) + "\n" for r in rows)
    )
    with served_sandbox(users, latency=0.0, schema=schema) as (endpoint, pool_id):
        result = invoke(
            "run",
            data,
            "-m",
            mapping,
            "--diff",
            *real_run_args(endpoint, pool_id),
            "--yes",
            "--quiet",
        )
    assert result.exit_code == 1, result.output
    assert report_rows(tmp_path / "report.csv") == expected_report(config)


# --- variants: keys as exports write them ----------------------------------------


def config_named(name: str) -> Config:
    return next(c for c in CONFIGS if c.id == name)


@pytest.mark.parametrize(
    ("name", "keys", "statuses"),
    [
        ("username-case-insensitive", ["Alice", " alice"], ["invalid", "invalid"]),
        ("username-case-sensitive", ["Alice", " alice"], ["updated", "updated"]),
        ("username-legacy-custom-only", ["Alice", "alice"], ["updated", "updated"]),
        (
            "email-as-username",
            ["Ann@Example.com", "ann@example.com"],
            ["invalid", "invalid"],
        ),
        (
            "email-as-username-case-sensitive",
            ["Ann@Example.com", "ann@example.com"],
            ["updated", "updated"],
        ),
        ("email-alias", ["Ann@Example.com", "ann@example.com"], ["invalid", "invalid"]),
        (
            "phone-as-username",
            ["+14325550101", " +14325550101 "],
            ["invalid", "invalid"],
        ),
    ],
)
def test_sandbox_keys_differing_in_case_are_one_user_where_the_pool_folds_case(
    tmp_path: Path, name: str, keys: list[str], statuses: list[str]
) -> None:
    # The rehearsal seeds one user per key as the pool compares keys, so the
    # run reports duplicates instead of stopping at a user it cannot create.
    config = Config(name, config_named(name).pool, config_named(name).user_as, {}, ())
    config = replace(config, rows=tuple(Row(key, None) for key in keys))
    data, mapping, schema = write_job_files(config, tmp_path)
    result = invoke(
        "run", data, "-m", mapping, "--schema", schema, "--sandbox", "--quiet"
    )
    assert result.exit_code == (1 if "invalid" in statuses else 0), result.output
    rows = read_report(tmp_path / "in.map.sandbox.report.csv")
    assert [r["status"] for r in rows] == statuses
    if "invalid" in statuses:
        assert {r["error_code"] for r in rows} == {"duplicate_user"}


def test_sandbox_seeds_sign_in_emails_cognito_takes_and_skips_invalid_keys(
    tmp_path: Path,
) -> None:
    # Stopped the rehearsal before: "sandbox user ...: Username should be
    # either an email or a phone number" (moto's own, narrower, email pattern).
    config = replace(
        config_named("email-as-username"),
        rows=(
            Row("ann@example.com", None),
            Row("josé@exämple.de", None),
            Row("ops+cognito@example.co1", None),
            Row("not-an-email", None),
        ),
    )
    data, mapping, schema = write_job_files(config, tmp_path)
    result = invoke(
        "run", data, "-m", mapping, "--schema", schema, "--sandbox", "--quiet"
    )
    assert result.exit_code == 1, result.output
    rows = read_report(tmp_path / "in.map.sandbox.report.csv")
    assert [(r["user"], r["status"], r["error_code"]) for r in rows] == [
        ("ann@example.com", "updated", ""),
        ("josé@exämple.de", "updated", ""),
        ("ops+cognito@example.co1", "updated", ""),
        ("not-an-email", "invalid", "bad_user_key"),
    ]


def test_reads_count_the_user_reads_let_through_the_quota() -> None:
    pool = EmulatedPool(quotas=Quotas(user_update=None, user_read=2))
    with pool:
        pool_id = pool.seed(SCHEMA, [{"username": "alice"}])
        client = _client(pool)
        throttled = 0
        for key in ("alice", "nobody", "alice", "alice", "alice", "alice"):
            try:
                client.admin_get_user(UserPoolId=pool_id, Username=key)
            except client.exceptions.UserNotFoundException:
                pass
            except client.exceptions.TooManyRequestsException:
                throttled += 1
        client.close()
        counters = pool.counters()
    assert throttled > 0
    # A read that finds no user still spends the quota; a throttled one does not.
    assert (counters["reads"], counters["throttled"]) == (6 - throttled, throttled)
    assert counters["writes"] == {}
