"""migrate.cognito against real boto3 clients: moto in process, Stubber, loopback.

Nothing here leaves the machine: moto intercepts in process, Stubber answers
before a request is built, and every explicit endpoint is 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core.models import MockAWS

from migrate.cognito import (
    ClientConfig,
    UserPool,
    describe_user_pool,
    make_client,
)
from migrate.errors import ConfigError, FatalError
from migrate.records import CallError, CallResult, ErrorKind, WorkItem
from tests.support.fake_cognito import FakeCognito

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

REGION = "us-east-1"
POOL_ID = "us-east-1_SAMPLE0001"
TOKEN = "tok-Zq3vX9mPp2LkR7sT1uW4yB6nC8dE0fG5hJ2kL4mN"
# Nothing listens on the discard port; an unstubbed call fails locally.
DEAD_ENDPOINT = "http://127.0.0.1:9"


FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
FOREIGN_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
)


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> None:
    """Fake credentials and no trace of the developer's own AWS configuration."""
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_dir / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "aws-creds"))
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_aws_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def module_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The fake environment for clients built once per module (a client is slow)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fake_aws_env(monkeypatch, tmp_path_factory.mktemp("aws"))
        yield


# --- moto: calls that really land ----------------------------------------------------
@dataclass
class MotoPool:
    client: CognitoIdentityProviderClient
    pool_id: str
    app_client_id: str
    created: int = 0

    def new_user(self, plan: str = "gold") -> str:
        """Create a fresh user (tests share the pool) and return its username."""
        self.created += 1
        username = f"user{self.created}"
        self.client.admin_create_user(
            UserPoolId=self.pool_id,
            Username=username,
            MessageAction="SUPPRESS",
            UserAttributes=[
                {"Name": "email", "Value": f"{username}@example.com"},
                {"Name": "custom:plan", "Value": plan},
                {"Name": "custom:legacy_flag", "Value": "y"},
            ],
        )
        return username

    def attributes(self, username: str) -> dict[str, str]:
        user = self.client.admin_get_user(UserPoolId=self.pool_id, Username=username)
        return {a["Name"]: a.get("Value", "") for a in user["UserAttributes"]}

    def access_token(self, username: str) -> str:
        self.client.admin_set_user_password(
            UserPoolId=self.pool_id,
            Username=username,
            Password="Correct-Horse-9",
            Permanent=True,
        )
        auth = self.client.admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=self.app_client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": "Correct-Horse-9"},
        )
        return auth["AuthenticationResult"]["AccessToken"]


@pytest.fixture(scope="module")
def moto_world(module_env: None) -> Iterator[tuple[MockAWS, MotoPool]]:
    # One pool for the module: moto spends ~0.5 s on each pool's signing key.
    mock = mock_aws()
    mock.start()
    client = make_client(ClientConfig())
    pool_id = client.create_user_pool(
        PoolName="migrate-test",
        Schema=[
            {"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True},
            {"Name": "plan", "AttributeDataType": "String", "Mutable": True},
            {"Name": "legacy_flag", "AttributeDataType": "String", "Mutable": True},
        ],
    )["UserPool"]["Id"]
    app_client_id = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="migrate-test",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"],
    )["UserPoolClient"]["ClientId"]
    mock.stop(remove_data=False)
    yield mock, MotoPool(client, pool_id, app_client_id)
    mock.start(reset=True)
    mock.stop()
    client.close()


@pytest.fixture
def moto_pool(moto_world: tuple[MockAWS, MotoPool]) -> Iterator[MotoPool]:
    """The shared moto pool, with moto active only while the test runs."""
    mock, pool = moto_world
    mock.start(reset=False)
    yield pool
    mock.stop(remove_data=False)


def test_admin_update_lands(moto_pool: MotoPool) -> None:
    alice, bob = moto_pool.new_user(), moto_pool.new_user()
    pool = UserPool(moto_pool.client, pool_id=moto_pool.pool_id, api="admin")
    item = WorkItem(
        row=1,
        user=alice,
        set_attributes={"custom:tenant_id": "t-042", "custom:plan": "enterprise"},
    )
    assert pool.update(item) == CallResult()
    attributes = moto_pool.attributes(alice)
    assert attributes["custom:tenant_id"] == "t-042"
    assert attributes["custom:plan"] == "enterprise"
    assert "custom:tenant_id" not in moto_pool.attributes(bob)


def test_admin_delete_lands(moto_pool: MotoPool) -> None:
    bob = moto_pool.new_user(plan="silver")
    pool = UserPool(moto_pool.client, pool_id=moto_pool.pool_id, api="admin")
    item = WorkItem(row=2, user=bob, delete_attributes=("custom:legacy_flag",))
    assert pool.delete(item) == CallResult()
    attributes = moto_pool.attributes(bob)
    assert "custom:legacy_flag" not in attributes
    assert attributes["custom:plan"] == "silver"


def test_unknown_user_is_a_user_error(moto_pool: MotoPool) -> None:
    pool = UserPool(moto_pool.client, pool_id=moto_pool.pool_id, api="admin")
    item = WorkItem(row=3, user="mallory", set_attributes={"custom:plan": "pro"})
    assert pool.update(item) == CallResult(
        error=CallError(
            code="UserNotFoundException", message="User does not exist.", kind="user"
        )
    )
    deletion = WorkItem(row=3, user="mallory", delete_attributes=("custom:plan",))
    result = pool.delete(deletion)
    assert result.error is not None
    assert (result.error.code, result.error.kind) == ("UserNotFoundException", "user")


def test_missing_pool_is_fatal(moto_pool: MotoPool) -> None:
    pool = UserPool(moto_pool.client, pool_id="us-east-1_NOPE00000", api="admin")
    result = pool.update(WorkItem(row=1, user="alice", set_attributes={"name": "A"}))
    assert result == CallResult(
        error=CallError(
            code="ResourceNotFoundException",
            message=(
                "user pool not found: check --user-pool-id and --region "
                "(ResourceNotFoundException: User pool us-east-1_NOPE00000 does not "
                "exist.)"
            ),
            kind="fatal",
        )
    )


def test_token_update_lands(moto_pool: MotoPool) -> None:
    alice = moto_pool.new_user()
    token = moto_pool.access_token(alice)
    pool = UserPool(moto_pool.client, pool_id=None, api="token")
    item = WorkItem(
        row=1, user=alice, set_attributes={"custom:plan": "pro"}, token=token
    )
    assert pool.update(item) == CallResult()
    assert moto_pool.attributes(alice)["custom:plan"] == "pro"


def test_rejected_token_is_a_user_error_and_never_echoed(moto_pool: MotoPool) -> None:
    # moto answers a bad token with NotAuthorizedException whose message IS the
    # token: exactly the echo the scrubbing exists for.
    pool = UserPool(moto_pool.client, pool_id=None, api="token")
    item = WorkItem(row=1, user="alice", set_attributes={"name": "A"}, token=TOKEN)
    result = pool.update(item)
    assert result == CallResult(
        error=CallError(
            code="NotAuthorizedException", message="<redacted>", kind="user"
        )
    )
    assert TOKEN not in repr(result)
    assert TOKEN not in repr(item)


def test_describe_returns_json_ready_schema(moto_pool: MotoPool) -> None:
    pool = UserPool(moto_pool.client, pool_id=moto_pool.pool_id, api="admin")
    described = pool.describe()
    assert list(described) == ["UserPool"]
    assert described["UserPool"]["Id"] == moto_pool.pool_id
    names = {a["Name"] for a in described["UserPool"]["SchemaAttributes"]}
    assert {"custom:tenant_id", "custom:plan", "custom:legacy_flag"} <= names
    assert isinstance(described["UserPool"]["CreationDate"], str)
    assert json.loads(json.dumps(described)) == described


def test_describe_missing_pool_raises_fatal(moto_pool: MotoPool) -> None:
    pool = UserPool(moto_pool.client, pool_id="us-east-1_NOPE00000", api="admin")
    with pytest.raises(FatalError) as raised:
        pool.describe()
    assert str(raised.value) == (
        "user pool not found: check --user-pool-id and --region "
        "(ResourceNotFoundException: User pool us-east-1_NOPE00000 does not exist.)"
    )
    assert raised.value.aws_error_code == "ResourceNotFoundException"


# --- Stubber: exact request parameters and canned responses -----------------------
@pytest.fixture(scope="module")
def offline_client(module_env: None) -> Iterator[CognitoIdentityProviderClient]:
    """A client whose endpoint has nothing listening: an unstubbed call stays local."""
    client = make_client(ClientConfig(endpoint_url=DEAD_ENDPOINT))
    yield client
    client.close()


@pytest.fixture
def stubbed(
    offline_client: CognitoIdentityProviderClient,
) -> Iterator[tuple[CognitoIdentityProviderClient, Stubber]]:
    with Stubber(offline_client) as stubber:
        yield offline_client, stubber
        stubber.assert_no_pending_responses()


METADATA = {"source": "crm-backfill", "job": "2026-11"}


def test_admin_update_sends_exact_params_with_client_metadata(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "admin_update_user_attributes",
        {},
        expected_params={
            "UserPoolId": POOL_ID,
            "Username": "alice",
            "UserAttributes": [
                {"Name": "custom:tenant_id", "Value": "t-1"},
                {"Name": "phone_number", "Value": "+14325551212"},
                {"Name": "phone_number_verified", "Value": "true"},
            ],
            "ClientMetadata": METADATA,
        },
    )
    pool = UserPool(client, pool_id=POOL_ID, api="admin", client_metadata=METADATA)
    item = WorkItem(
        row=1,
        user="alice",
        set_attributes={
            "custom:tenant_id": "t-1",
            "phone_number": "+14325551212",
            "phone_number_verified": "true",
        },
    )
    assert pool.update(item) == CallResult()


def test_empty_client_metadata_is_not_sent(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "admin_update_user_attributes",
        {},
        expected_params={
            "UserPoolId": POOL_ID,
            "Username": "alice",
            "UserAttributes": [{"Name": "custom:plan", "Value": "pro"}],
        },
    )
    pool = UserPool(client, pool_id=POOL_ID, api="admin", client_metadata={})
    item = WorkItem(row=1, user="alice", set_attributes={"custom:plan": "pro"})
    assert pool.update(item) == CallResult()


def test_admin_delete_sends_no_client_metadata(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "admin_delete_user_attributes",
        {},
        expected_params={
            "UserPoolId": POOL_ID,
            "Username": "alice",
            "UserAttributeNames": ["custom:legacy_flag", "nickname"],
        },
    )
    pool = UserPool(client, pool_id=POOL_ID, api="admin", client_metadata=METADATA)
    item = WorkItem(
        row=1, user="alice", delete_attributes=("custom:legacy_flag", "nickname")
    )
    assert pool.delete(item) == CallResult()


def test_token_update_puts_the_token_only_in_access_token(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    seen: list[dict[str, Any]] = []
    event = "provide-client-params.cognito-idp.UpdateUserAttributes"
    client.meta.events.register(
        event, lambda params, **_: seen.append(dict(params)), unique_id="seen"
    )
    stubber.add_response(
        "update_user_attributes",
        {
            "CodeDeliveryDetailsList": [
                {
                    "Destination": "a***@e***.com",
                    "DeliveryMedium": "EMAIL",
                    "AttributeName": "email",
                },
                {
                    "Destination": "+*******1212",
                    "DeliveryMedium": "SMS",
                    "AttributeName": "phone_number",
                },
            ]
        },
        expected_params={
            "AccessToken": TOKEN,
            "UserAttributes": [
                {"Name": "email", "Value": "alice@example.org"},
                {"Name": "phone_number", "Value": "+14325551212"},
            ],
            "ClientMetadata": METADATA,
        },
    )
    pool = UserPool(client, pool_id=None, api="token", client_metadata=METADATA)
    item = WorkItem(
        row=1,
        user="alice",
        set_attributes={"email": "alice@example.org", "phone_number": "+14325551212"},
        token=TOKEN,
    )
    try:
        result = pool.update(item)
    finally:
        client.meta.events.unregister(event, unique_id="seen")
    assert result == CallResult(delivery="EMAIL:a***@e***.com;SMS:+*******1212")
    (params,) = seen
    assert params["AccessToken"] == TOKEN
    others = {key: value for key, value in params.items() if key != "AccessToken"}
    assert TOKEN not in json.dumps(others)
    assert TOKEN not in repr(result)


def test_token_update_without_delivery_details(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "update_user_attributes",
        {"CodeDeliveryDetailsList": []},
        expected_params={
            "AccessToken": TOKEN,
            "UserAttributes": [{"Name": "custom:plan", "Value": "pro"}],
        },
    )
    pool = UserPool(client, pool_id=None, api="token")
    item = WorkItem(row=1, user="a", set_attributes={"custom:plan": "pro"}, token=TOKEN)
    assert pool.update(item) == CallResult(delivery=None)


def test_token_delete_sends_token_and_names_only(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "delete_user_attributes",
        {},
        expected_params={"AccessToken": TOKEN, "UserAttributeNames": ["custom:plan"]},
    )
    pool = UserPool(client, pool_id=None, api="token", client_metadata=METADATA)
    item = WorkItem(row=1, user="a", delete_attributes=("custom:plan",), token=TOKEN)
    assert pool.delete(item) == CallResult()


def test_token_row_without_token_is_not_sent(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, _ = stubbed
    pool = UserPool(client, pool_id=None, api="token")
    item = WorkItem(row=7, user="a", set_attributes={"custom:plan": "pro"})
    assert pool.update(item) == CallResult(
        error=CallError(
            code="MissingAccessToken",
            message="the row has no access token",
            kind="user",
        )
    )


def test_token_mode_expired_token_is_a_user_error(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "delete_user_attributes",
        service_error_code="NotAuthorizedException",
        service_message="Access Token has expired",
        http_status_code=400,
    )
    pool = UserPool(client, pool_id=None, api="token")
    item = WorkItem(row=1, user="a", delete_attributes=("custom:plan",), token=TOKEN)
    assert pool.delete(item) == CallResult(
        error=CallError(
            code="NotAuthorizedException",
            message="Access Token has expired",
            kind="user",
        )
    )


def test_throttling_is_retryable_and_throttled(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "admin_update_user_attributes",
        service_error_code="TooManyRequestsException",
        service_message="Rate exceeded",
        http_status_code=400,
    )
    pool = UserPool(client, pool_id=POOL_ID, api="admin")
    item = WorkItem(row=1, user="alice", set_attributes={"custom:plan": "pro"})
    assert pool.update(item) == CallResult(
        error=CallError(
            code="TooManyRequestsException",
            message="Rate exceeded",
            kind="retryable",
            throttled=True,
        )
    )


def test_internal_error_is_retryable(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "admin_delete_user_attributes",
        service_error_code="InternalErrorException",
        service_message="Internal error",
        http_status_code=500,
    )
    pool = UserPool(client, pool_id=POOL_ID, api="admin")
    item = WorkItem(row=1, user="alice", delete_attributes=("custom:plan",))
    assert pool.delete(item) == CallResult(
        error=CallError(
            code="InternalErrorException", message="Internal error", kind="retryable"
        )
    )


def test_local_param_validation_is_a_user_error(
    offline_client: CognitoIdentityProviderClient,
) -> None:
    # No Stubber: it would refuse the call before botocore validates it.
    pool = UserPool(offline_client, pool_id=POOL_ID, api="admin")
    result = pool.update(WorkItem(row=1, user="", set_attributes={"name": "A"}))
    assert result == CallResult(
        error=CallError(
            code="ParamValidationError",
            message=(
                "Parameter validation failed:\nInvalid length for parameter Username, "
                "value: 0, valid min length: 1"
            ),
            kind="user",
        )
    )


def test_describe_retries_throttling_with_injected_sleep(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    for _ in range(2):
        stubber.add_client_error(
            "describe_user_pool",
            service_error_code="TooManyRequestsException",
            service_message="Rate exceeded",
        )
    stubber.add_response(
        "describe_user_pool",
        {"UserPool": {"Id": POOL_ID, "SchemaAttributes": [{"Name": "email"}]}},
        expected_params={"UserPoolId": POOL_ID},
    )
    sleeps: list[float] = []
    described = describe_user_pool(client, POOL_ID, sleep=sleeps.append)
    assert described == {
        "UserPool": {"Id": POOL_ID, "SchemaAttributes": [{"Name": "email"}]}
    }
    assert sleeps == [1.0, 2.0]


def test_describe_gives_up_after_its_attempts(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    for _ in range(3):
        stubber.add_client_error(
            "describe_user_pool",
            service_error_code="InternalErrorException",
            service_message="Internal error",
            http_status_code=500,
        )
    sleeps: list[float] = []
    with pytest.raises(FatalError) as raised:
        describe_user_pool(client, POOL_ID, attempts=3, sleep=sleeps.append)
    assert str(raised.value) == (
        f"could not read user pool '{POOL_ID}' after 3 attempts: Internal error "
        "(InternalErrorException)"
    )
    assert sleeps == [1.0, 2.0]


def test_describe_malformed_pool_id_is_a_config_error(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "describe_user_pool",
        service_error_code="InvalidParameterException",
        service_message="1 validation error detected: Value 'pool' at 'userPoolId' "
        "failed to satisfy constraint",
    )
    with pytest.raises(ConfigError) as raised:
        UserPool(client, pool_id="pool", api="admin").describe()
    assert str(raised.value) == (
        "cannot read user pool 'pool': 1 validation error detected: Value 'pool' at "
        "'userPoolId' failed to satisfy constraint (InvalidParameterException)"
    )


def test_pool_arguments_are_checked(
    stubbed: tuple[CognitoIdentityProviderClient, Stubber],
) -> None:
    client, _ = stubbed
    with pytest.raises(
        ConfigError, match=r'--user-pool-id is required with api = "admin"'
    ):
        UserPool(client, pool_id=None, api="admin")
    with pytest.raises(ConfigError, match="--user-pool-id is required to read"):
        UserPool(client, pool_id=None, api="token").describe()
    pool = UserPool(client, pool_id=POOL_ID, api="admin")
    with pytest.raises(ValueError, match="row 4: work item has no attributes to set"):
        pool.update(WorkItem(row=4, user="a"))
    with pytest.raises(
        ValueError, match="row 4: work item has no attributes to delete"
    ):
        pool.delete(WorkItem(row=4, user="a"))


# --- loopback HTTP: botocore's real send and retry path -------------------------------
@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeCognito]:
    """A 127.0.0.1 HTTP server answering every call with one canned reply."""
    with FakeCognito() as fake:
        yield fake


@pytest.fixture
def fake_cognito(fake_server: FakeCognito) -> FakeCognito:
    """The loopback server, reset to answer 400 with an empty body."""
    fake_server.reset(status=400, body={})
    return fake_server


@pytest.fixture(scope="module")
def loopback_client(
    module_env: None, fake_server: FakeCognito
) -> Iterator[CognitoIdentityProviderClient]:
    client = make_client(
        ClientConfig(endpoint_url=fake_server.url, connect_timeout=2, read_timeout=5)
    )
    yield client
    client.close()


def test_endpoint_url_is_honoured(
    fake_cognito: FakeCognito, loopback_client: CognitoIdentityProviderClient
) -> None:
    fake_cognito.status = 200
    pool = UserPool(loopback_client, pool_id=POOL_ID, api="admin")
    item = WorkItem(row=1, user="alice", set_attributes={"custom:plan": "pro"})
    assert pool.update(item) == CallResult()
    assert loopback_client.meta.endpoint_url == fake_cognito.url
    assert fake_cognito.requests == [
        {
            "target": "AWSCognitoIdentityProviderService.AdminUpdateUserAttributes",
            "body": {
                "UserPoolId": POOL_ID,
                "Username": "alice",
                "UserAttributes": [{"Name": "custom:plan", "Value": "pro"}],
            },
        }
    ]


@pytest.mark.parametrize(
    ("status", "code", "kind", "throttled"),
    [
        (400, "TooManyRequestsException", "retryable", True),
        (500, "InternalErrorException", "retryable", False),
        (503, "ServiceUnavailable", "retryable", False),
    ],
)
def test_botocore_makes_exactly_one_attempt(
    fake_cognito: FakeCognito,
    loopback_client: CognitoIdentityProviderClient,
    status: int,
    code: str,
    kind: ErrorKind,
    throttled: bool,
) -> None:
    # Legacy mode would send InternalErrorException 5 times, standard mode
    # TooManyRequestsException 3 times; the executor's loop must see each one.
    fake_cognito.status = status
    fake_cognito.body = {"__type": code, "message": "Rate exceeded"}
    pool = UserPool(loopback_client, pool_id=POOL_ID, api="admin")
    item = WorkItem(row=1, user="alice", set_attributes={"custom:plan": "pro"})
    result = pool.update(item)
    assert result.error == CallError(
        code=code, message="Rate exceeded", kind=kind, throttled=throttled
    )
    assert len(fake_cognito.requests) == 1


def test_dropped_connection_is_retryable_after_one_attempt(
    fake_cognito: FakeCognito, loopback_client: CognitoIdentityProviderClient
) -> None:
    fake_cognito.hang_up = True
    pool = UserPool(loopback_client, pool_id=POOL_ID, api="admin")
    result = pool.update(WorkItem(row=1, user="a", set_attributes={"name": "A"}))
    assert result.error is not None
    assert (result.error.code, result.error.kind) == (
        "ConnectionClosedError",
        "retryable",
    )
    assert len(fake_cognito.requests) == 1


def test_refused_connection_is_retryable(
    offline_client: CognitoIdentityProviderClient,
) -> None:
    pool = UserPool(offline_client, pool_id=POOL_ID, api="admin")
    result = pool.update(WorkItem(row=1, user="a", set_attributes={"name": "A"}))
    assert result.error is not None
    assert (result.error.code, result.error.kind) == (
        "EndpointConnectionError",
        "retryable",
    )


def test_token_never_reaches_botocore_debug_logs(
    fake_cognito: FakeCognito,
    loopback_client: CognitoIdentityProviderClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_cognito.body = {"__type": "NotAuthorizedException", "message": f"bad {TOKEN}"}
    pool = UserPool(loopback_client, pool_id=None, api="token")
    item = WorkItem(row=1, user="a", set_attributes={"name": "A"}, token=TOKEN)
    with caplog.at_level(logging.DEBUG, logger="botocore"):
        result = pool.update(item)
    assert fake_cognito.requests[0]["body"]["AccessToken"] == TOKEN
    assert result.error == CallError(
        code="NotAuthorizedException", message="bad <redacted>", kind="user"
    )
    assert "Making request for" in caplog.text  # the body log did happen
    assert "Response body" in caplog.text
    assert TOKEN not in caplog.text


# --- a 2xx is a success only when it is a Cognito response ---------------------------
GARBLED_SUCCESSES = [
    pytest.param(b"garbage", True, "a body that is not JSON", id="garbage"),
    pytest.param(
        b"<html><body>502 Bad Gateway</body></html>",
        True,
        "a body that is not JSON (starts '<html>",
        id="html",
    ),
    pytest.param(b"", False, "an empty body", id="empty-without-request-id"),
    pytest.param(b"   \n", False, "an empty body", id="blank-without-request-id"),
    pytest.param(b"\xff\xfe{}", True, "not UTF-8", id="not-utf8"),
    pytest.param(b"[]", True, "JSON that is not an object", id="list"),
    pytest.param(b"null", True, "JSON that is not an object", id="null"),
    pytest.param(b'"OK"', True, "JSON that is not an object", id="string"),
    pytest.param(
        b'{"status": "ok"}', True, "member 'status'", id="object-of-another-api"
    ),
    pytest.param(
        b'{"message": "queued"}', True, "member 'message'", id="message-object"
    ),
]


@pytest.mark.parametrize(("raw", "request_id", "problem"), GARBLED_SUCCESSES)
@pytest.mark.parametrize("api", ["admin", "token"])
@pytest.mark.parametrize("call", ["update", "delete"])
def test_a_garbled_success_is_retryable_not_done(
    fake_cognito: FakeCognito,
    loopback_client: CognitoIdentityProviderClient,
    raw: bytes,
    request_id: bool,
    problem: str,
    api: Literal["admin", "token"],
    call: str,
) -> None:
    # botocore parses these as an empty success; the write may never have
    # happened (a proxy answered) or may have: retrying is the only safe answer.
    fake_cognito.status, fake_cognito.raw = 200, raw
    fake_cognito.request_id = request_id
    pool = UserPool(loopback_client, pool_id=POOL_ID, api=api)
    item = WorkItem(
        row=1,
        user="alice",
        set_attributes={"custom:plan": "pro"},
        delete_attributes=("custom:legacy_flag",),
        token=TOKEN,
    )
    result = pool.update(item) if call == "update" else pool.delete(item)
    assert result.error is not None, result
    assert (result.error.code, result.error.kind) == ("MalformedResponse", "retryable")
    assert problem in result.error.message
    assert "may or may not have taken effect" in result.error.message
    assert TOKEN not in result.error.message
    assert len(fake_cognito.requests) == 1


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"CodeDeliveryDetailsList": "EMAIL"}', "is a string, not a list"),
        (b'{"CodeDeliveryDetailsList": [1]}', "[0] is a number, not an object"),
        (
            b'{"CodeDeliveryDetailsList": [{"Destination": 7}]}',
            "Destination is a number, not a string",
        ),
    ],
)
def test_a_token_success_of_the_wrong_shape_is_retryable(
    fake_cognito: FakeCognito,
    loopback_client: CognitoIdentityProviderClient,
    raw: bytes,
    problem: str,
) -> None:
    # Without the check botocore raises AttributeError deep in its parser.
    fake_cognito.status, fake_cognito.raw = 200, raw
    pool = UserPool(loopback_client, pool_id=None, api="token")
    result = pool.update(
        WorkItem(row=1, user="a", set_attributes={"name": "A"}, token=TOKEN)
    )
    assert result.error is not None
    assert (result.error.code, result.error.kind) == ("MalformedResponse", "retryable")
    assert problem in result.error.message


@pytest.mark.parametrize(
    ("raw", "request_id", "api", "expected"),
    [
        (b"{}", True, "admin", CallResult()),
        (b"{}", False, "admin", CallResult()),
        # An AWS answer (it has a request id) with no body at all.
        (b"", True, "admin", CallResult()),
        (b"{}", True, "token", CallResult()),
        (
            b'{"CodeDeliveryDetailsList": [{"Destination": "a***@e***", '
            b'"DeliveryMedium": "EMAIL", "AttributeName": "email"}]}',
            True,
            "token",
            CallResult(delivery="EMAIL:a***@e***"),
        ),
        # Members nested below the top may be newer than botocore's model.
        (
            b'{"CodeDeliveryDetailsList": [{"DeliveryMedium": "SMS", '
            b'"Destination": "+*******0100", "NewField": {"x": 1}}]}',
            True,
            "token",
            CallResult(delivery="SMS:+*******0100"),
        ),
    ],
)
def test_well_formed_successes_are_successes(
    fake_cognito: FakeCognito,
    loopback_client: CognitoIdentityProviderClient,
    raw: bytes,
    request_id: bool,
    api: Literal["admin", "token"],
    expected: CallResult,
) -> None:
    fake_cognito.status, fake_cognito.raw = 200, raw
    fake_cognito.request_id = request_id
    pool = UserPool(loopback_client, pool_id=POOL_ID, api=api)
    item = WorkItem(row=1, user="a", set_attributes={"name": "A"}, token=TOKEN)
    assert pool.update(item) == expected


def test_a_garbled_describe_is_retried_then_fatal(
    fake_cognito: FakeCognito, loopback_client: CognitoIdentityProviderClient
) -> None:
    fake_cognito.status, fake_cognito.raw = 200, b"<html>login</html>"
    with pytest.raises(FatalError, match="MalformedResponse"):
        describe_user_pool(loopback_client, POOL_ID, attempts=2, sleep=lambda _: None)
    assert len(fake_cognito.requests) == 2


def test_a_garbled_list_users_page_is_a_retryable_error_not_an_empty_pool(
    fake_cognito: FakeCognito, loopback_client: CognitoIdentityProviderClient
) -> None:
    # Parsed as a page with no users and no token, it would end a snapshot early.
    fake_cognito.status, fake_cognito.raw = 200, b"OK"
    page = UserPool(loopback_client, pool_id=POOL_ID, api="admin").list_users_page(None)
    assert page.error is not None
    assert (page.error.code, page.error.kind) == ("MalformedResponse", "retryable")
    assert page.users == []


# --- make_client ----------------------------------------------------------------------
def test_make_client_turns_botocore_retries_off() -> None:
    client = make_client(
        ClientConfig(
            endpoint_url=DEAD_ENDPOINT,
            max_pool_connections=24,
            connect_timeout=3,
            read_timeout=12,
        )
    )
    # botocore-stubs do not declare Config's options as attributes.
    config: Any = client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.max_pool_connections == 24
    assert (config.connect_timeout, config.read_timeout) == (3, 12)
    assert "cognito-bulk-migrate/" in (config.user_agent_extra or "")
    assert client.meta.region_name == REGION
    client.close()


def test_make_client_without_region_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError) as raised:
        make_client(ClientConfig(endpoint_url=DEAD_ENDPOINT))
    assert str(raised.value) == (
        "no AWS region: pass --region or set AWS_REGION / a profile region"
    )


def test_make_client_region_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    client = make_client(ClientConfig())
    assert client.meta.region_name == "eu-west-1"
    client.close()
    client = make_client(ClientConfig(region="ap-southeast-2"))
    assert client.meta.region_name == "ap-southeast-2"
    client.close()


def test_make_client_reads_the_profile_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (tmp_path / "aws-config").write_text("[profile migrate]\nregion = eu-central-1\n")
    client = make_client(ClientConfig(profile="migrate"))
    assert client.meta.region_name == "eu-central-1"
    client.close()


def test_make_client_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        make_client(ClientConfig(profile="nope"))
    assert str(raised.value) == (
        "AWS profile 'nope' not found: check --profile and your AWS config file "
        "(~/.aws/config)"
    )


def test_make_client_bad_endpoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot set up the Cognito client"):
        make_client(ClientConfig(endpoint_url="not a url"))
