"""The emulated pool, driven by a real boto3 client over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from migrate import sandbox
from migrate.errors import ConfigError
from migrate.sandbox import EmulatedPool, Faults

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "samples" / "pool-schema.json"

CUSTOM_ATTRIBUTES = {
    # name: (data type, mutable, developer only)
    "custom:tenant_id": ("String", True, False),
    "custom:plan": ("String", True, False),
    "custom:legacy_flag": ("String", True, False),
    "custom:newsletter": ("Boolean", True, False),
    "custom:seats": ("Number", True, False),
    "custom:employee_id": ("String", False, False),
    "dev:custom:internal_id": ("String", True, True),
}


def _inline_schema() -> dict[str, Any]:
    def string(name: str, low: int, high: int, **extra: Any) -> dict[str, Any]:
        constraints = {"MinLength": str(low), "MaxLength": str(high)}
        return {
            "Name": name,
            "AttributeDataType": "String",
            "DeveloperOnlyAttribute": False,
            "Mutable": True,
            "Required": False,
            "StringAttributeConstraints": constraints,
            **extra,
        }

    return {
        "UserPool": {
            "Id": "us-east-1_SAMPLE0001",
            "Name": "inline",
            "AliasAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            "UserAttributeUpdateSettings": {
                "AttributesRequireVerificationBeforeUpdate": []
            },
            "UsernameConfiguration": {"CaseSensitive": False},
            "SchemaAttributes": [
                string("sub", 1, 2048, Mutable=False, Required=True),
                string("email", 0, 2048, Required=True),
                {"Name": "email_verified", "AttributeDataType": "Boolean"},
                string("custom:tenant_id", 1, 64),
                string("custom:plan", 1, 32),
                string("custom:legacy_flag", 0, 16),
                {"Name": "custom:newsletter", "AttributeDataType": "Boolean"},
                {
                    "Name": "custom:seats",
                    "AttributeDataType": "Number",
                    "Mutable": True,
                    "NumberAttributeConstraints": {
                        "MinValue": "0",
                        "MaxValue": "100000",
                    },
                },
                string("custom:employee_id", 1, 32, Mutable=False),
                string("dev:custom:internal_id", 0, 64, DeveloperOnlyAttribute=True),
            ],
        }
    }


def _schema() -> dict[str, Any]:
    if SCHEMA_FILE.exists():
        loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
        return loaded
    return _inline_schema()


ALICE = {
    "username": "alice",
    "sub": "0b6c9a2e-0000-4000-8000-000000000001",
    "email": "alice@example.com",
    "email_verified": "true",
    "custom:tenant_id": "acme",
    "custom:plan": "gold",
    "custom:legacy_flag": "old",
}
BOB = {"username": "bob", "email": "bob@example.com", "custom:plan": "silver"}


def _client(pool: EmulatedPool) -> Any:
    return boto3.client(
        "cognito-idp",
        endpoint_url=pool.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(
            retries={"total_max_attempts": 1}, max_pool_connections=20
        ),
    )


def _open(faults: Faults | None = None) -> tuple[EmulatedPool, str, Any]:
    pool = EmulatedPool(faults=faults or Faults(quota=None))
    pool_id = pool.create_pool(_schema())
    pool.add_users(pool_id, [ALICE, BOB])
    return pool, pool_id, _client(pool)


@pytest.fixture
def emulated() -> Iterator[tuple[EmulatedPool, str, Any]]:
    pool, pool_id, client = _open()
    with pool:
        yield pool, pool_id, client
        client.close()


def _error(excinfo: pytest.ExceptionInfo[Any]) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def test_pool_has_the_schemas_custom_attributes_and_keeps_its_id(emulated):
    _pool, pool_id, client = emulated
    described = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    found = {
        a["Name"]: (a["AttributeDataType"], a["Mutable"], a["DeveloperOnlyAttribute"])
        for a in described["SchemaAttributes"]
    }
    assert pool_id == "us-east-1_SAMPLE0001"
    assert {n: found.get(n) for n in CUSTOM_ATTRIBUTES} == CUSTOM_ATTRIBUTES
    tenant = next(
        a for a in described["SchemaAttributes"] if a["Name"] == "custom:tenant_id"
    )
    assert tenant["StringAttributeConstraints"] == {"MinLength": "1", "MaxLength": "64"}
    assert described["AliasAttributes"] == ["email"]
    assert {"sub", "email", "birthdate"} <= set(found)


def test_admin_update_lands_blank_deletes_and_client_metadata_is_accepted(emulated):
    pool, pool_id, client = emulated
    client.admin_update_user_attributes(
        UserPoolId=pool_id,
        Username="alice",
        UserAttributes=[
            {"Name": "custom:tenant_id", "Value": "globex"},
            {"Name": "custom:legacy_flag", "Value": ""},
        ],
        ClientMetadata={"source": "crm-backfill"},
    )
    attributes = pool.user_attributes(pool_id, "alice")
    assert attributes["custom:tenant_id"] == "globex"
    assert "custom:legacy_flag" not in attributes
    got = client.admin_get_user(UserPoolId=pool_id, Username="alice")
    assert {"Name": "custom:tenant_id", "Value": "globex"} in got["UserAttributes"]
    assert pool.writes == {"alice": 1}


def test_admin_calls_accept_the_sub_a_verified_alias_and_any_case(emulated):
    _pool, pool_id, client = emulated
    for key in (ALICE["sub"], "ALICE@example.com", "Alice"):
        got = client.admin_get_user(UserPoolId=pool_id, Username=key)
        assert got["Username"] == "alice"
    # bob's email is not verified, so it is no alias yet
    with pytest.raises(client.exceptions.UserNotFoundException):
        client.admin_get_user(UserPoolId=pool_id, Username="bob@example.com")


def test_admin_delete_user_attributes(emulated):
    pool, pool_id, client = emulated
    client.admin_delete_user_attributes(
        UserPoolId=pool_id,
        Username="alice",
        UserAttributeNames=["custom:legacy_flag", "custom:seats"],
    )
    attributes = pool.user_attributes(pool_id, "alice")
    assert "custom:legacy_flag" not in attributes
    assert attributes["custom:plan"] == "gold"
    assert pool.writes == {"alice": 1}


def test_update_user_attributes_with_an_issued_token(emulated):
    pool, pool_id, client = emulated
    token = pool.issue_access_token(pool_id, "alice")
    response = client.update_user_attributes(
        AccessToken=token,
        UserAttributes=[{"Name": "custom:plan", "Value": "enterprise"}],
        ClientMetadata={"source": "self-service"},
    )
    assert "CodeDeliveryDetailsList" not in response
    assert pool.user_attributes(pool_id, "alice")["custom:plan"] == "enterprise"
    assert client.get_user(AccessToken=token)["Username"] == "alice"
    assert pool.writes == {"alice": 1}


def test_email_change_is_unverified_and_reports_the_code_delivery(emulated):
    pool, pool_id, client = emulated
    token = pool.issue_access_token(pool_id, "alice")
    response = client.update_user_attributes(
        AccessToken=token, UserAttributes=[{"Name": "email", "Value": "al@new.org"}]
    )
    assert response["CodeDeliveryDetailsList"] == [
        {
            "Destination": "a***@n***",
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }
    ]
    attributes = pool.user_attributes(pool_id, "alice")
    assert (attributes["email"], attributes["email_verified"]) == (
        "al@new.org",
        "false",
    )


def test_verified_email_moves_off_the_previous_owner_in_an_alias_pool(emulated):
    pool, pool_id, client = emulated
    client.admin_update_user_attributes(
        UserPoolId=pool_id,
        Username="bob",
        UserAttributes=[
            {"Name": "email", "Value": "alice@example.com"},
            {"Name": "email_verified", "Value": "true"},
        ],
    )
    assert pool.user_attributes(pool_id, "alice")["email_verified"] == "false"
    assert pool.user_attributes(pool_id, "alice@example.com")["sub"] != ALICE["sub"]


def test_a_registered_token_string_is_accepted_and_dev_attributes_are_refused(
    emulated,
):
    pool, pool_id, client = emulated
    pool.issue_access_token(pool_id, "bob", "tok-QfhmasZyYCQPz891dUqronjAd10bY5G")
    client.delete_user_attributes(
        AccessToken="tok-QfhmasZyYCQPz891dUqronjAd10bY5G",
        UserAttributeNames=["custom:plan"],
    )
    assert "custom:plan" not in pool.user_attributes(pool_id, "bob")
    with pytest.raises(client.exceptions.NotAuthorizedException) as excinfo:
        client.update_user_attributes(
            AccessToken="tok-QfhmasZyYCQPz891dUqronjAd10bY5G",
            UserAttributes=[{"Name": "dev:custom:internal_id", "Value": "x"}],
        )
    assert _error(excinfo) == (
        400,
        "NotAuthorizedException",
        "A client attempted to write unauthorized attribute",
    )
    with pytest.raises(client.exceptions.NotAuthorizedException):
        client.update_user_attributes(
            AccessToken="tok-unknown", UserAttributes=[{"Name": "name", "Value": "x"}]
        )


def test_unknown_user_is_user_not_found(emulated):
    pool, pool_id, client = emulated
    with pytest.raises(client.exceptions.UserNotFoundException) as excinfo:
        client.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username="nobody",
            UserAttributes=[{"Name": "custom:plan", "Value": "pro"}],
        )
    assert _error(excinfo) == (400, "UserNotFoundException", "User does not exist.")
    assert pool.writes == {}


def test_unknown_pool_is_resource_not_found(emulated):
    _pool, _pool_id, client = emulated
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.admin_update_user_attributes(
            UserPoolId="us-east-1_NOPE",
            Username="alice",
            UserAttributes=[{"Name": "custom:plan", "Value": "pro"}],
        )
    assert _error(excinfo)[2] == "User pool us-east-1_NOPE does not exist."


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            [
                {"Name": "custom:nope", "Value": "x"},
                {"Name": "custom:employee_id", "Value": "E1"},
            ],
            "user.custom:nope: Attribute does not exist in the schema.\n"
            "user.custom:employee_id: Attribute cannot be updated.\n",
        ),
        (
            [{"Name": "custom:seats", "Value": "-5"}],
            "user.custom:seats: Number must be between 0 and 100000.\n",
        ),
        (
            [{"Name": "custom:tenant_id", "Value": "t" * 65}],
            "user.custom:tenant_id: String length must be between 1 and 64 "
            "characters.\n",
        ),
        (
            [{"Name": "email", "Value": ""}],
            "user.email: Required attribute cannot be blank.\n",
        ),
        (
            [{"Name": "email", "Value": "bob@@example"}],
            "Invalid email address format.\n",
        ),
    ],
)
def test_schema_violations_are_invalid_parameter(emulated, attributes, message):
    pool, pool_id, client = emulated
    with pytest.raises(client.exceptions.InvalidParameterException) as excinfo:
        client.admin_update_user_attributes(
            UserPoolId=pool_id, Username="alice", UserAttributes=attributes
        )
    assert _error(excinfo) == (400, "InvalidParameterException", message)
    assert pool.user_attributes(pool_id, "alice")["custom:tenant_id"] == "acme"
    assert pool.writes == {}


def test_quota_throttles_concurrent_writes_like_cognito():
    pool, pool_id, client = _open(Faults(quota=10))
    successes: list[float] = []
    codes: list[tuple[int, str, str]] = []
    lock = threading.Lock()

    def write(n: int) -> None:
        try:
            client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username="alice",
                UserAttributes=[{"Name": "custom:plan", "Value": f"p{n}"}],
            )
        except client.exceptions.TooManyRequestsException as exc:
            with lock:
                codes.append(
                    (
                        exc.response["ResponseMetadata"]["HTTPStatusCode"],
                        exc.response["Error"]["Code"],
                        exc.response["Error"]["Message"],
                    )
                )
        else:
            with lock:
                successes.append(time.monotonic())

    with pool, ThreadPoolExecutor(8) as workers:
        list(workers.map(write, range(60)))
        client.close()
    assert codes
    assert set(codes) == {(400, "TooManyRequestsException", "Rate exceeded")}
    assert len(successes) + len(codes) == 60
    busiest = max(sum(1 for t in successes if s <= t < s + 1.0) for s in successes)
    assert busiest <= 10 + 10  # quota + one second's burst
    assert pool.throttled == len(codes)
    assert pool.writes == {"alice": len(successes)}
    assert pool.calls["AdminUpdateUserAttributes"] == 60


def test_quota_bucket_refills_at_the_quota_rate():
    now = [100.0]
    pool = EmulatedPool(faults=Faults(quota=2, read_quota=None), clock=lambda: now[0])
    with pool:
        pool_id = pool.create_pool(_schema())
        pool.add_users(pool_id, [ALICE])
        client = _client(pool)

        def allowed() -> bool:
            try:
                client.admin_delete_user_attributes(
                    UserPoolId=pool_id,
                    Username="alice",
                    UserAttributeNames=["custom:legacy_flag"],
                )
            except client.exceptions.TooManyRequestsException:
                return False
            return True

        burst = [allowed() for _ in range(3)]
        now[0] += 0.5  # half a second at 2/s: one more token
        refilled = [allowed() for _ in range(2)]
        for _ in range(5):  # reads have their own bucket (unlimited here)
            client.admin_get_user(UserPoolId=pool_id, Username="alice")
        client.close()
    assert (burst, refilled) == ([True, True, False], [True, False])
    assert pool.throttled == 2


def test_error_rate_answers_internal_error_before_writing():
    pool, pool_id, client = _open(Faults(quota=None, error_rate=1.0))
    with pool:
        with pytest.raises(client.exceptions.InternalErrorException) as excinfo:
            client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username="alice",
                UserAttributes=[{"Name": "custom:plan", "Value": "pro"}],
            )
        assert client.admin_get_user(UserPoolId=pool_id, Username="alice")
        client.close()
    assert _error(excinfo)[:2] == (500, "InternalErrorException")
    assert pool.user_attributes(pool_id, "alice")["custom:plan"] == "gold"
    assert (pool.injected_errors, pool.writes) == (1, {})


def test_drop_rate_closes_the_connection_half_before_half_after_the_write():
    pool, pool_id, client = _open(Faults(quota=None, drop_rate=1.0, seed=7))
    with pool:
        for n in range(12):
            with pytest.raises(botocore.exceptions.ConnectionClosedError):
                client.admin_update_user_attributes(
                    UserPoolId=pool_id,
                    Username="alice",
                    UserAttributes=[{"Name": "custom:seats", "Value": str(n)}],
                )
        client.close()
    assert pool.dropped == 12
    applied = pool.writes["alice"]
    assert 0 < applied < 12
    assert pool.stats()["writes_total"] == applied


def test_latency_is_added_to_every_request():
    pool, pool_id, client = _open(Faults(latency=0.2))
    with pool:
        started = time.monotonic()
        client.admin_get_user(UserPoolId=pool_id, Username="alice")
        elapsed = time.monotonic() - started
        client.close()
    assert elapsed >= 0.2


def test_sixteen_threads_write_concurrently_without_losing_a_write():
    pool = EmulatedPool(faults=Faults(quota=None))
    with pool:
        pool_id = pool.create_pool(_schema())
        users = [
            {"username": f"user{n:02d}", "email": f"u{n}@example.com"}
            for n in range(16)
        ]
        pool.add_users(pool_id, users)
        client = _client(pool)

        def write(n: int) -> None:
            for i in range(10):
                client.admin_update_user_attributes(
                    UserPoolId=pool_id,
                    Username=f"user{n:02d}",
                    UserAttributes=[{"Name": "custom:seats", "Value": str(i)}],
                )

        with ThreadPoolExecutor(16) as workers:
            list(workers.map(write, range(16)))
        client.close()
        assert pool.user_attributes(pool_id, "user07")["custom:seats"] == "9"
    assert pool.writes == {f"user{n:02d}": 10 for n in range(16)}


def test_stop_closes_kept_alive_connections_and_joins_every_thread():
    before = set(threading.enumerate())
    pool, pool_id, client = _open()
    client.admin_get_user(UserPoolId=pool_id, Username="alice")  # keeps a connection
    started = time.monotonic()
    pool.stop()
    pool.stop()  # idempotent
    assert time.monotonic() - started < 5.0  # without closing: until the client goes
    client.close()
    assert set(threading.enumerate()) <= before


def test_add_users_rejects_attributes_outside_the_schema():
    with EmulatedPool() as pool:
        pool_id = pool.create_pool(_schema())
        with pytest.raises(ConfigError) as excinfo:
            pool.add_users(pool_id, [{"username": "x", "tenant": "acme"}])
        assert str(excinfo.value) == "sandbox user 'x': not in the pool schema: tenant"
        pool.add_users(pool_id, [{"username": "x"}])
        with pytest.raises(ConfigError) as excinfo:
            pool.add_users(pool_id, [{"username": "X"}])
        assert str(excinfo.value) == "sandbox user 'X': User already exists"
        with pytest.raises(LookupError, match=r"^User does not exist\.$"):
            pool.user_attributes(pool_id, "nobody")
        with pytest.raises(LookupError, match=r"^User pool nope does not exist\.$"):
            pool.add_users("nope", [])


def test_seed_skips_keyless_and_repeated_rows_and_registers_tokens():
    rows = [
        {"username": "carol", "sub": "s-1", "email": "c@example.com", "plan": "x"},
        {"username": "", "email": "nobody@example.com"},
        {"username": "Carol", "email": "other@example.com"},
        {"username": "dave", "access_token": "tok-dave"},
    ]
    with EmulatedPool() as pool:
        pool_id = pool.seed(_schema(), rows)
        assert pool.user_attributes(pool_id, "s-1")["email"] == "c@example.com"
        assert pool.user_attributes(pool_id, "dave") == {
            "sub": pool.user_attributes(pool_id, "dave")["sub"]
        }
        client = _client(pool)
        assert client.get_user(AccessToken="tok-dave")["Username"] == "dave"
        users = client.list_users(UserPoolId=pool_id)["Users"]
        client.close()
    assert sorted(u["Username"] for u in users) == ["carol", "dave"]


def test_raw_protocol_errors_have_cognitos_json_shape():
    with EmulatedPool() as pool:

        def post(target: str, body: bytes) -> tuple[int, dict[str, Any]]:
            request = urllib.request.Request(
                pool.endpoint_url + "/",
                data=body,
                headers={
                    "X-Amz-Target": target,
                    "Content-Type": "application/x-amz-json-1.1",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                with error:
                    return error.code, json.load(error)

        unknown = post("AWSCognitoIdentityProviderService.Bogus", b"{}")
        malformed = post("AWSCognitoIdentityProviderService.ListUsers", b"{nope")
        missing = post("AWSCognitoIdentityProviderService.AdminGetUser", b"{}")
    assert unknown == (
        400,
        {
            "__type": "UnknownOperationException",
            "message": "Unknown operation AWSCognitoIdentityProviderService.Bogus",
        },
    )
    assert malformed == (
        400,
        {"__type": "SerializationException", "message": "Malformed JSON body"},
    )
    assert missing[0] == 400
    assert missing[1]["__type"] == "InvalidParameterException"


def test_username_attribute_pools_find_users_by_email_and_refuse_duplicates():
    schema = _inline_schema()
    schema["UserPool"].pop("AliasAttributes")
    schema["UserPool"]["UsernameAttributes"] = ["email"]
    with EmulatedPool(faults=Faults(quota=None)) as pool:
        pool_id = pool.create_pool(schema)
        pool.add_users(
            pool_id, [{"username": "a@example.com"}, {"username": "b@example.com"}]
        )
        client = _client(pool)
        got = client.admin_get_user(UserPoolId=pool_id, Username="a@example.com")
        with pytest.raises(client.exceptions.AliasExistsException) as excinfo:
            client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username="b@example.com",
                UserAttributes=[{"Name": "email", "Value": "a@example.com"}],
            )
        client.close()
    assert got["Username"] != "a@example.com"  # a generated UUID, the sub
    assert _error(excinfo) == (
        400,
        "AliasExistsException",
        "An account with the given email already exists.",
    )


def test_sample_users_seed_the_sample_pool():
    users_file = ROOT / "samples" / "users.csv"
    if not users_file.exists():
        pytest.skip("samples/users.csv is not there yet")
    rows = list(sandbox.read_users(users_file))
    with EmulatedPool() as pool:
        pool_id = pool.seed(_schema(), rows)
        by_sub = pool.user_attributes(pool_id, rows[0]["sub"])
        client = _client(pool)
        described = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
        client.close()
    assert by_sub["email"] == rows[0]["email"]
    # one row has no username, one repeats a user
    assert described["EstimatedNumberOfUsers"] == len(rows) - 2
    parquet = ROOT / "samples" / "users.parquet"
    if parquet.exists():
        from_parquet = list(sandbox.read_users(parquet))
        assert [{k: v for k, v in r.items() if v} for r in from_parquet] == [
            {k: v for k, v in r.items() if v} for r in rows
        ]


def test_faults_are_validated():
    with pytest.raises(
        ValueError, match=r"^drop_rate must be between 0 and 1, not 1.5$"
    ):
        Faults(drop_rate=1.5)
    with pytest.raises(ValueError, match=r"^quota must be > 0 or None, not 0$"):
        Faults(quota=0)


def test_missing_moto_is_a_config_error(monkeypatch):
    sandbox._moto.cache_clear()
    monkeypatch.setitem(sys.modules, "moto.cognitoidp.models", None)
    try:
        with pytest.raises(ConfigError) as excinfo:
            EmulatedPool()
    finally:
        sandbox._moto.cache_clear()
    assert str(excinfo.value) == (
        "--sandbox needs the emulated pool: pip install 'cognito-bulk-migrate[sandbox]'"
    )


def test_serve_subcommand_in_a_subprocess_reports_stats(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(_schema()), encoding="utf-8")
    users = tmp_path / "users.csv"
    users.write_text(
        "username,sub,email,tenant\nerin,s-9,erin@example.com,acme\n,s-0,x@y.z,\n",
        encoding="utf-8",
    )
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "migrate.sandbox",
        "serve",
        "--schema",
        str(schema),
    ]
    command += ["--users", str(users), "--port-file", str(port_file), "--quota", "none"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.05)
        endpoint_url, pool_id = port_file.read_text(encoding="utf-8").split()
        client = boto3.client(
            "cognito-idp",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        client.admin_update_user_attributes(
            UserPoolId=pool_id,
            Username="s-9",
            UserAttributes=[{"Name": "custom:tenant_id", "Value": "acme"}],
        )
        client.close()
        with urllib.request.urlopen(f"{endpoint_url}/__stats", timeout=5) as response:
            stats = json.load(response)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=10)
    assert pool_id == "us-east-1_SAMPLE0001"
    assert stats["writes"] == {"erin": 1}
    assert stats["calls"] == {"AdminUpdateUserAttributes": 1}
    assert (process.returncode, err) == (0, b"")
