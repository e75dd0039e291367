"""The emulated pool, driven by a real boto3 client over loopback HTTP."""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
import pytest

from migrate import sandbox
from migrate.errors import ConfigError
from migrate.sandbox import EmulatedPool, Quotas
from tests.support import moto_keys
from tests.support.faults import Faults, FaultyPool

ROOT = Path(__file__).resolve().parents[2]
SERVE = (sys.executable, "-m", "migrate.sandbox", "serve")
_P = TypeVar("_P", bound=EmulatedPool)
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


def _open(quotas: Quotas | None = None) -> tuple[EmulatedPool, str, Any]:
    return _opened(EmulatedPool(quotas=quotas or Quotas(user_update=None)))


def _open_faulty(faults: Faults) -> tuple[FaultyPool, str, Any]:
    return _opened(FaultyPool(faults=faults))


def _opened(pool: _P) -> tuple[_P, str, Any]:
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
    pool, pool_id, client = _open(Quotas(user_update=10))
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
    pool = EmulatedPool(
        quotas=Quotas(user_update=2, user_read=None), clock=lambda: now[0]
    )
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
    pool, pool_id, client = _open_faulty(Faults(quota=None, error_rate=1.0))
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
    pool, pool_id, client = _open_faulty(Faults(quota=None, drop_rate=1.0, seed=7))
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
    pool, pool_id, client = _open_faulty(Faults(latency=0.2))
    with pool:
        started = time.monotonic()
        client.admin_get_user(UserPoolId=pool_id, Username="alice")
        elapsed = time.monotonic() - started
        client.close()
    assert elapsed >= 0.2


def test_sixteen_threads_write_concurrently_without_losing_a_write():
    pool = EmulatedPool(quotas=Quotas(user_update=None))
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
    with EmulatedPool(quotas=Quotas(user_update=None)) as pool:
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


def test_test_endpoint_serves_faults_and_stats_in_a_subprocess(tmp_path):
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
        "tests.support.endpoint",
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


# --- python -m migrate.sandbox serve: what users rehearse against ----------------


def _serve_files(tmp_path: Path) -> tuple[Path, Path]:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(_schema()), encoding="utf-8")
    users = tmp_path / "users.csv"
    users.write_text(
        "username,tenant\n" + "".join(f"user{i:04d},t{i}\n" for i in range(1, 6)),
        encoding="utf-8",
    )
    return schema, users


def _banner(endpoint: str, pool_id: str) -> list[str]:
    return [
        f"endpoint: {endpoint}",
        f"user pool: {pool_id}",
        "example: AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox "
        f"cognito-migrate run INPUT -m MAPPING --endpoint-url {endpoint} "
        f"--user-pool-id {pool_id} --region us-east-1",
        "Serving until Ctrl-C or SIGTERM; any credentials are accepted.",
    ]


def _no_aws_env(tmp_path: Path) -> dict[str, str]:
    """A process environment with no AWS configuration or credentials at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_serve_prints_where_it_serves_and_a_run_with_the_printed_command_works(
    tmp_path,
):
    schema, users = _serve_files(tmp_path)
    data = tmp_path / "in.csv"
    data.write_text("username,tenant\nuser0001,acme\nuser0002,globex\n")
    env = _no_aws_env(tmp_path)
    process = subprocess.Popen(
        [*SERVE, "--schema", str(schema), "--users", str(users)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(4)]
        endpoint = lines[0].removeprefix("endpoint: ")
        pool_id = lines[1].removeprefix("user pool: ")
        assert lines == _banner(endpoint, pool_id)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint), endpoint
        # The example's command, as printed: its own credentials, nothing else.
        words = shlex.split(lines[2].removeprefix("example: "))
        credentials = dict(word.split("=", 1) for word in words[:2])
        run = [sys.executable, "-m", "migrate", *words[3:]]
        run[run.index("INPUT")] = str(data)
        run[run.index("MAPPING")] = str(ROOT / "mappings" / "backfill-tenant.toml")
        run += ["--job", str(tmp_path / "job.sqlite"), "--yes", "--quiet"]
        run += ["--report", str(tmp_path / "report.csv")]
        done = subprocess.run(
            run, env={**env, **credentials}, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # No credentials at all: an unsigned client is answered too.
        unsigned = boto3.client(
            "cognito-idp",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            config=botocore.config.Config(
                signature_version=botocore.UNSIGNED,
                retries={"total_max_attempts": 1},
            ),
        )
        got = unsigned.admin_get_user(UserPoolId=pool_id, Username="user0002")
        unsigned.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert {a["Name"]: a["Value"] for a in got["UserAttributes"]}[
        "custom:tenant_id"
    ] == "globex"
    assert (process.returncode, out, err) == (0, "", "")


@contextlib.contextmanager
def _serve_in_thread(argv: list[str]) -> Iterator[list[str]]:
    """The first lines ``serve`` printed, while it serves in a thread."""
    command = sandbox.ServeCommand()
    args = command.parser().parse_args(argv)
    stop = threading.Event()
    out = io.StringIO()
    thread = threading.Thread(target=command.serve, args=(args, stop, out))
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while out.getvalue().count("\n") < 4:
            assert thread.is_alive(), "serve ended"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.02)
        yield out.getvalue().splitlines()
    finally:
        stop.set()
        thread.join(10)


def test_serve_port_and_port_file(tmp_path):
    schema, _users = _serve_files(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    port_file = tmp_path / "endpoint"
    argv = ["serve", "--schema", str(schema), "--port", str(port)]
    argv += ["--port-file", str(port_file), "--region", "eu-west-1"]
    with _serve_in_thread(argv) as lines:
        endpoint = f"http://127.0.0.1:{port}"
        assert lines[:2] == [f"endpoint: {endpoint}", "user pool: us-east-1_SAMPLE0001"]
        assert lines[2].endswith("--region eu-west-1")
        assert port_file.read_text() == f"{endpoint} us-east-1_SAMPLE0001\n"
        client = boto3.client(
            "cognito-idp",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        assert client.list_users(UserPoolId="us-east-1_SAMPLE0001")["Users"] == []
        client.close()
    assert not port_file.with_name("endpoint.tmp").exists()


def test_serve_binds_the_loopback_interface_only(tmp_path):
    schema, _users = _serve_files(tmp_path)
    with _serve_in_thread(["serve", "--schema", str(schema)]) as lines:
        port = int(lines[0].rsplit(":", 1)[1])
        listening = [
            line.split()
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        ]
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex.
    assert [entry[1] for entry in listening] == [f"0100007F:{port:04X}"]


def test_serve_has_no_test_only_fault_flags_or_stats(tmp_path, capsys):
    schema, _users = _serve_files(tmp_path)
    with pytest.raises(SystemExit) as excinfo:
        sandbox.main(["serve", "--schema", str(schema), "--error-rate", "0.5"])
    assert excinfo.value.code == 2
    assert "unrecognized arguments: --error-rate 0.5" in capsys.readouterr().err
    with _serve_in_thread(["serve", "--schema", str(schema)]) as lines:
        endpoint = lines[0].removeprefix("endpoint: ")
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(f"{endpoint}/__stats", timeout=5)
        http.value.close()
    assert http.value.code == 404


def _latin1_users(tmp_path: Path) -> Path:
    users = tmp_path / "users.csv"
    users.write_bytes("username,name\nzoe,Zoë\n".encode("latin-1"))
    return users


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "latin-1 users",
            "{users}: not UTF-8 text (line 2: byte 0xeb); save it as UTF-8",
        ),
        ("missing users", "{users}: No such file or directory"),
        (
            "port-file folder missing",
            "--port-file {tmp}/nope/endpoint: folder {tmp}/nope does not exist",
        ),
        (
            "port in use",
            "port {port} on 127.0.0.1 is in use: choose another --port, or leave "
            "--port out to take a free one",
        ),
        (
            "schema missing",
            "{tmp}/missing.json: no such file; save the pool schema with `aws "
            "cognito-idp describe-user-pool --user-pool-id ID > {tmp}/missing.json`",
        ),
        (
            "schema not JSON",
            "{schema}: not JSON (Expecting value: line 1 column 1 (char 0))",
        ),
        ("schema not a pool", "{schema}: not DescribeUserPool output"),
        ("unknown region", "unknown AWS region 'moon-1'"),
    ],
)
def test_serve_errors_are_one_line_and_exit_2(tmp_path, capsys, case, message):
    schema, users = _serve_files(tmp_path)
    argv = ["serve", "--schema", str(schema), "--users", str(users)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        if case == "latin-1 users":
            _latin1_users(tmp_path)
        elif case == "missing users":
            users.unlink()
        elif case == "port-file folder missing":
            argv += ["--port-file", str(tmp_path / "nope" / "endpoint")]
        elif case == "port in use":
            argv += ["--port", str(port)]
        elif case == "schema missing":
            argv[2] = str(tmp_path / "missing.json")
        elif case == "schema not JSON":
            schema.write_text("<UserPool/>")
        elif case == "schema not a pool":
            schema.write_text("[]")
        elif case == "unknown region":
            argv += ["--region", "moon-1"]
        status = sandbox.main(argv)
    out, err = capsys.readouterr()
    expected = message.format(tmp=tmp_path, users=users, schema=schema, port=port)
    assert (status, out, err) == (2, "", f"error: {expected}\n")


def test_serve_error_in_a_process_exits_2_without_a_traceback(tmp_path):
    schema, _users = _serve_files(tmp_path)
    users = _latin1_users(tmp_path)
    done = subprocess.run(
        [*SERVE, "--schema", str(schema), "--users", str(users)],
        env=_no_aws_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: {users}: not UTF-8 text (line 2: byte 0xeb); save it as UTF-8\n"
    )


def test_quotas_are_validated():
    with pytest.raises(ValueError, match=r"^user_read must be > 0 or None, not 0$"):
        Quotas(user_read=0)
    assert Quotas().per_category() == {
        "UserUpdate": 25.0,
        "UserList": 30.0,
        "UserRead": 120.0,
        "UserPoolRead": 15.0,
    }


# --- moto: the public surface, and each internal in one test ---------------------


def test_each_emulated_pool_has_a_moto_account_of_its_own():
    with EmulatedPool() as first, EmulatedPool() as second:
        one = first.seed(_schema(), [ALICE])
        two = second.seed(_schema(), [BOB])
        clients = _client(first), _client(second)
        assert one == two == "us-east-1_SAMPLE0001"
        names = [
            [u["Username"] for u in c.list_users(UserPoolId=one)["Users"]]
            for c in clients
        ]
        token = first.issue_access_token(one, "alice")
        assert clients[0].get_user(AccessToken=token)["Username"] == "alice"
        # A token is its own pool's: read and written through that pool only.
        with pytest.raises(clients[1].exceptions.NotAuthorizedException):
            clients[1].get_user(AccessToken=token)
        with pytest.raises(clients[1].exceptions.NotAuthorizedException):
            clients[1].update_user_attributes(
                AccessToken=token, UserAttributes=[{"Name": "name", "Value": "x"}]
            )
        for client in clients:
            client.close()
    assert names == [["alice"], ["bob"]]


def test_moto_account_id_from_the_environment_is_used(monkeypatch):
    # moto prefers MOTO_ACCOUNT_ID to the x-moto-account-id header.
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    with EmulatedPool() as pool:
        pool_id = pool.seed(_schema(), [ALICE])
        client = _client(pool)
        got = client.admin_get_user(UserPoolId=pool_id, Username="alice")
        client.close()
    assert pool._account == "111122223333"
    assert got["Username"] == "alice"


def test_pools_stay_readable_after_stop_and_leave_moto_with_the_object():
    from moto.backends import get_backend

    pool = EmulatedPool()
    pool_id = pool.seed(_schema(), [ALICE])
    backend = get_backend("cognito-idp")[pool._account][pool.region]
    pool.stop()
    assert pool.user_attributes(pool_id, "alice")["custom:plan"] == "gold"
    assert pool_id in backend.user_pools
    del pool
    gc.collect()
    assert pool_id not in backend.user_pools


def test_moto_models_have_the_fields_the_sandbox_reads(emulated):
    pool, pool_id, _client = emulated
    moto_pool = pool._backend.user_pools[pool_id]
    user = moto_pool.users["alice"]
    attribute = moto_pool.schema_attributes["custom:tenant_id"]
    assert isinstance(moto_pool.extended_config, dict)
    assert (attribute.data_type, attribute.required, attribute.mutable) == (
        "String",
        False,
        True,
    )
    assert moto_pool.schema_attributes["dev:custom:internal_id"].developer_only
    assert (user.username, user.enabled, user.id) == ("alice", True, ALICE["sub"])
    assert user.attribute_lookup["custom:plan"] == "gold"


def test_moto_internal_botocore_stubber_answers_without_the_network(
    emulated, monkeypatch
):
    pool, pool_id, _client = emulated

    def no_network(*args: Any) -> None:
        raise AssertionError("a moto answer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    target = sandbox.TARGET_PREFIX + "DescribeUserPool"
    found = sandbox._moto_answer(
        pool._account, "us-east-1", target, json.dumps({"UserPoolId": pool_id}).encode()
    )
    missing = sandbox._moto_answer(
        pool._account, "us-east-1", target, b'{"UserPoolId": "us-east-1_NOPE"}'
    )
    assert found.status == 200
    assert json.loads(found.body)["UserPool"]["Id"] == pool_id
    assert (missing.status, json.loads(missing.body)) == (
        400,
        {
            "__type": "ResourceNotFoundException",
            "message": "User pool us-east-1_NOPE does not exist.",
        },
    )


def test_moto_internal_standard_schema_lists_cognitos_standard_attributes():
    standard = sandbox._moto_standard_schema()
    assert {"sub", "email", "email_verified", "phone_number", "updated_at"} <= set(
        standard
    )
    assert standard["sub"]["Mutable"] is False
    assert standard["phone_number_verified"]["AttributeDataType"] == "Boolean"


def test_moto_internal_pool_id_and_arn_can_be_replaced(emulated):
    _pool, pool_id, client = emulated
    described = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    listed = client.list_user_pools(MaxResults=10)["UserPools"]
    assert (described["Id"], described["Arn"].rsplit("/", 1)[1]) == (pool_id, pool_id)
    assert [p["Id"] for p in listed] == [pool_id]


def test_moto_internal_attribute_constraints_are_set_as_described():
    schema = _inline_schema()
    attributes = schema["UserPool"]["SchemaAttributes"]
    seats = next(a for a in attributes if a["Name"] == "custom:seats")
    seats["NumberAttributeConstraints"] = {"MinValue": "-10", "MaxValue": "10"}
    with EmulatedPool() as pool:
        pool_id = pool.create_pool(schema)
        client = _client(pool)
        described = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
        client.close()
    found = {a["Name"]: a for a in described["SchemaAttributes"]}
    assert found["custom:seats"]["NumberAttributeConstraints"] == {
        "MinValue": "-10",
        "MaxValue": "10",
    }
    assert "StringAttributeConstraints" not in found["email_verified"]


def test_moto_internal_user_id_is_the_seeded_sub(emulated):
    _pool, pool_id, client = emulated
    got = client.admin_get_user(UserPoolId=pool_id, Username=ALICE["sub"])
    listed = client.list_users(UserPoolId=pool_id, Filter=f'sub = "{ALICE["sub"]}"')
    attributes = {a["Name"]: a["Value"] for a in got["UserAttributes"]}
    assert (got["Username"], attributes["sub"]) == ("alice", ALICE["sub"])
    assert [u["Username"] for u in listed["Users"]] == ["alice"]


def test_moto_internal_user_attributes_list_is_replaced_on_write(emulated):
    pool, pool_id, client = emulated
    client.admin_delete_user_attributes(
        UserPoolId=pool_id, Username="bob", UserAttributeNames=["custom:plan"]
    )
    got = client.admin_get_user(UserPoolId=pool_id, Username="bob")
    names = sorted(a["Name"] for a in got["UserAttributes"])
    assert names == ["email", "sub"]
    assert got["UserLastModifiedDate"] >= got["UserCreateDate"]
    assert pool.user_attributes(pool_id, "bob").keys() == {"email", "sub"}


def test_moto_internal_create_access_token_mints_a_jwt_moto_accepts(emulated):
    pool, pool_id, client = emulated
    token = pool.issue_access_token(pool_id, "bob")
    header, claims, _signature = token.split(".")
    assert json.loads(_b64(claims))["token_use"] == "access"
    assert json.loads(_b64(header))["alg"] == "RS256"
    assert client.get_user(AccessToken=token)["Username"] == "bob"


def test_moto_internal_access_tokens_register_a_token_string(emulated):
    pool, pool_id, client = emulated
    assert pool.issue_access_token(pool_id, "alice", "tok-given") == "tok-given"
    assert client.get_user(AccessToken="tok-given")["Username"] == "alice"


def test_moto_internal_jwk_global_is_wrapped_to_import_the_key_once():
    import moto.cognitoidp.models as models

    moto_keys.share_moto_signing_key()  # idempotent: tests.support did it
    with EmulatedPool() as pool:
        first = pool.create_pool({"UserPool": {"Name": "a", "SchemaAttributes": []}})
        second = pool.create_pool({"UserPool": {"Name": "b", "SchemaAttributes": []}})
        pools = pool._backend.user_pools
        keys = pools[first].json_web_key, pools[second].json_web_key
    assert isinstance(vars(models)["jwk"], moto_keys.KeyCachingJwk)
    assert keys[0] is keys[1]


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_moto_internal_user_model_creates_a_confirmed_sign_in_user():
    # A pool that signs in with email: the username is the sub, as in Cognito.
    schema = _inline_schema()
    schema["UserPool"].pop("AliasAttributes")
    schema["UserPool"]["UsernameAttributes"] = ["email"]
    with EmulatedPool(quotas=Quotas(user_update=None)) as pool:
        pool_id = pool.create_pool(schema)
        pool.add_users(pool_id, [{"username": "Ann@Example.com", "sub": ALICE["sub"]}])
        client = _client(pool)
        got = client.admin_get_user(UserPoolId=pool_id, Username="ann@example.com")
        listed = client.list_users(UserPoolId=pool_id)["Users"]
        client.close()
    attributes = {a["Name"]: a["Value"] for a in got["UserAttributes"]}
    assert (got["Username"], got["UserStatus"]) == (ALICE["sub"], "CONFIRMED")
    assert (attributes["sub"], attributes["email"]) == (ALICE["sub"], "Ann@Example.com")
    assert [u["Username"] for u in listed] == [ALICE["sub"]]
