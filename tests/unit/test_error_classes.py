"""How migrate.cognito.classify sorts AWS and botocore errors into kinds."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as bce
import botocore.session
import pytest
from botocore.exceptions import ClientError
from urllib3.exceptions import ProtocolError

from migrate.cognito import (
    FATAL_HINTS,
    THROTTLING_CODES,
    TRANSIENT_CODES,
    USER_CODES,
    Api,
    MalformedResponseError,
    classify,
    scrub,
)
from migrate.records import CallError, ErrorKind

TOKEN = "tok-Zq3vX9mPp2LkR7sT1uW4yB6nC8dE0fG5hJ2kL4mN"
JWT = (
    "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0"
    ".eyJzdWIiOiJhYmMiLCJ0b2tlbl91c2UiOiJhY2Nlc3MifQ"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)


def client_error(
    code: str | None,
    message: str = "something went wrong",
    *,
    status: int = 400,
    operation: str = "AdminUpdateUserAttributes",
) -> ClientError:
    """A ClientError shaped like botocore builds it from a Cognito JSON response."""
    error: dict[str, Any] = {"Message": message}
    if code is not None:
        error["Code"] = code
    response: dict[str, Any] = {
        "Error": error,
        "ResponseMetadata": {
            "RequestId": "2b2e4a7c-0d8f-4c1e-9a51-6f3d1c2b9e07",
            "HTTPStatusCode": status,
            "HTTPHeaders": {
                "content-type": "application/x-amz-json-1.1",
                "x-amzn-errortype": f"{code}:" if code else "",
            },
            "RetryAttempts": 0,
            "MaxAttemptsReached": True,
        },
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


# code, HTTP status, kind with api="admin", kind with api="token", throttled
CLIENT_ERRORS: list[tuple[str, int, ErrorKind, ErrorKind, bool]] = [
    # facts 1.5: modelled errors of the four update/delete operations
    ("ResourceNotFoundException", 400, "fatal", "fatal", False),
    ("InvalidParameterException", 400, "user", "user", False),
    ("NotAuthorizedException", 400, "fatal", "user", False),
    ("TooManyRequestsException", 400, "retryable", "retryable", True),
    ("UserNotFoundException", 400, "user", "user", False),
    ("AliasExistsException", 400, "user", "user", False),
    ("UnexpectedLambdaException", 400, "retryable", "retryable", False),
    ("UserLambdaValidationException", 400, "user", "user", False),
    ("InvalidLambdaResponseException", 400, "fatal", "fatal", False),
    ("InvalidSmsRoleAccessPolicyException", 400, "fatal", "fatal", False),
    ("InvalidSmsRoleTrustRelationshipException", 400, "fatal", "fatal", False),
    ("InvalidEmailRoleAccessPolicyException", 400, "fatal", "fatal", False),
    ("InternalErrorException", 500, "retryable", "retryable", False),
    ("CodeMismatchException", 400, "user", "user", False),
    ("ExpiredCodeException", 400, "user", "user", False),
    ("CodeDeliveryFailureException", 400, "user", "user", False),
    ("PasswordResetRequiredException", 400, "user", "user", False),
    ("UserNotConfirmedException", 400, "user", "user", False),
    ("ForbiddenException", 400, "fatal", "fatal", False),
    # DescribeUserPool only
    ("UserPoolTaggingException", 400, "fatal", "fatal", False),
    # in newer botocore models (1.44)
    ("OperationNotEnabledException", 400, "fatal", "fatal", False),
    # facts 1.5 / 5: not modelled, seen in practice
    ("AccessDeniedException", 400, "fatal", "fatal", False),
    ("ExpiredTokenException", 400, "fatal", "fatal", False),
    ("ExpiredToken", 400, "fatal", "fatal", False),
    ("RequestExpired", 400, "fatal", "fatal", False),
    ("UnrecognizedClientException", 400, "fatal", "fatal", False),
    ("InvalidClientTokenId", 403, "fatal", "fatal", False),
    ("InvalidSignatureException", 400, "fatal", "fatal", False),
    ("SignatureDoesNotMatch", 403, "fatal", "fatal", False),
    ("IncompleteSignature", 400, "fatal", "fatal", False),
    ("MissingAuthenticationToken", 403, "fatal", "fatal", False),
    ("MissingAuthenticationTokenException", 403, "fatal", "fatal", False),
    ("RequestTimeout", 400, "retryable", "retryable", False),
    ("RequestTimeoutException", 408, "retryable", "retryable", False),
    ("PriorRequestNotComplete", 400, "retryable", "retryable", False),
    ("ServiceUnavailable", 503, "retryable", "retryable", False),
    # not a Cognito error, but botocore's standard mode treats these as throttling
    ("ThrottlingException", 400, "retryable", "retryable", True),
    ("Throttling", 400, "retryable", "retryable", True),
    ("LimitExceededException", 400, "retryable", "retryable", True),
    ("RequestLimitExceeded", 400, "retryable", "retryable", True),
    ("SlowDown", 503, "retryable", "retryable", True),
]


@pytest.mark.parametrize(
    ("code", "status", "admin_kind", "token_kind", "throttled"), CLIENT_ERRORS
)
@pytest.mark.parametrize("api", ["admin", "token"])
def test_client_error_kind(
    code: str,
    status: int,
    admin_kind: ErrorKind,
    token_kind: ErrorKind,
    throttled: bool,
    api: Api,
) -> None:
    error = classify(client_error(code, "Rate exceeded", status=status), api=api)
    assert error.code == code
    assert error.kind == (admin_kind if api == "admin" else token_kind)
    assert error.throttled is throttled
    # Whatever the kind, the AWS message survives for the report.
    assert "Rate exceeded" in error.message


def test_table_covers_every_modelled_error_of_the_operations_we_call() -> None:
    model = botocore.session.get_session().get_service_model("cognito-idp")
    operations = [
        "AdminUpdateUserAttributes",
        "UpdateUserAttributes",
        "AdminDeleteUserAttributes",
        "DeleteUserAttributes",
        "DescribeUserPool",
    ]
    modelled = {
        shape.name
        for name in operations
        for shape in model.operation_model(name).error_shapes
    }
    assert modelled <= {row[0] for row in CLIENT_ERRORS}


def test_code_sets_do_not_overlap() -> None:
    sets = [THROTTLING_CODES, TRANSIENT_CODES, USER_CODES, frozenset(FATAL_HINTS)]
    for i, first in enumerate(sets):
        for second in sets[i + 1 :]:
            assert not first & second


def test_access_denied_names_the_operation_and_keeps_the_aws_message() -> None:
    aws = (
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
        "cognito-idp:AdminUpdateUserAttributes on resource: arn:aws:cognito-idp:"
        "us-east-1:123456789012:userpool/us-east-1_SAMPLE0001"
    )
    error = classify(client_error("AccessDeniedException", aws), api="admin")
    assert error == CallError(
        code="AccessDeniedException",
        message=(
            "AWS denied cognito-idp:AdminUpdateUserAttributes on the pool: grant it "
            "to the identity you run as (check --profile); `cognito-migrate policy "
            "--user-pool-id POOL` prints what each command needs "
            f"(AccessDeniedException: {aws})"
        ),
        kind="fatal",
    )


def test_access_denied_on_delete_names_the_delete_operation() -> None:
    exc = client_error(
        "AccessDeniedException", "no", operation="AdminDeleteUserAttributes"
    )
    assert classify(exc, api="admin").message.startswith(
        "AWS denied cognito-idp:AdminDeleteUserAttributes on the pool"
    )


def test_resource_not_found_says_what_to_check() -> None:
    exc = client_error(
        "ResourceNotFoundException", "User pool us-east-1_NOPE00000 does not exist."
    )
    assert classify(exc, api="admin").message == (
        "user pool not found: check --user-pool-id and --region "
        "(ResourceNotFoundException: User pool us-east-1_NOPE00000 does not exist.)"
    )


@pytest.mark.parametrize("code", ["ExpiredTokenException", "ExpiredToken"])
def test_expired_credentials_say_how_to_resume(code: str) -> None:
    exc = client_error(code, "The security token included in the request is expired")
    assert classify(exc, api="admin").message == (
        "your AWS credentials expired: refresh them (aws sso login / new session) "
        f"and run `cognito-migrate resume JOB` ({code}: The security token "
        "included in the request is expired)"
    )


def test_token_mode_not_authorized_is_per_user() -> None:
    exc = client_error(
        "NotAuthorizedException",
        "Access Token has expired",
        operation="UpdateUserAttributes",
    )
    assert classify(exc, api="token") == CallError(
        code="NotAuthorizedException", message="Access Token has expired", kind="user"
    )


def test_token_mode_unwritable_attribute_stops_the_job() -> None:
    # App-client write permissions are pool configuration: every row would fail.
    exc = client_error(
        "NotAuthorizedException",
        "A client attempted to write unauthorized attribute",
        operation="UpdateUserAttributes",
    )
    error = classify(exc, api="token")
    assert error.kind == "fatal"
    assert error.message == (
        "the app client may not write one of the mapped attributes: grant it write "
        'permission in the pool\'s app client settings, or use api = "admin" '
        "(NotAuthorizedException: A client attempted to write unauthorized attribute)"
    )


def test_admin_mode_not_authorized_stops_the_job() -> None:
    exc = client_error("NotAuthorizedException", "Not authorized")
    assert classify(exc, api="admin").message == (
        "Cognito refused cognito-idp:AdminUpdateUserAttributes: check that the "
        "identity you run as (--profile) may call it on this pool "
        "(NotAuthorizedException: Not authorized)"
    )


def test_user_errors_carry_the_aws_message_unchanged() -> None:
    exc = client_error("UserNotFoundException", "User does not exist.")
    assert classify(exc, api="admin") == CallError(
        code="UserNotFoundException", message="User does not exist.", kind="user"
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "throttled", "expected_code"),
    [
        ("SomethingNewException", 400, "user", False, "SomethingNewException"),
        ("SomethingNewException", 503, "retryable", False, "SomethingNewException"),
        ("SomethingNewException", 500, "retryable", False, "SomethingNewException"),
        ("SomethingNewException", 429, "retryable", True, "SomethingNewException"),
        (None, 502, "retryable", False, "HTTP502"),
        (None, 504, "retryable", False, "HTTP504"),
        (None, 400, "user", False, "HTTP400"),
    ],
)
def test_unknown_codes_go_by_http_status(
    code: str | None, status: int, kind: ErrorKind, throttled: bool, expected_code: str
) -> None:
    error = classify(client_error(code, status=status), api="admin")
    assert (error.code, error.kind, error.throttled) == (expected_code, kind, throttled)


URL = "https://cognito-idp.us-east-1.amazonaws.com/"

BOTOCORE_ERRORS: list[tuple[BaseException, ErrorKind]] = [
    (bce.EndpointConnectionError(endpoint_url=URL), "retryable"),
    (
        bce.ConnectionClosedError(
            endpoint_url=URL, error=ProtocolError("Connection aborted.")
        ),
        "retryable",
    ),
    (bce.ReadTimeoutError(endpoint_url=URL), "retryable"),
    (bce.ConnectTimeoutError(endpoint_url=URL), "retryable"),
    (bce.ProxyConnectionError(proxy_url="http://127.0.0.1:3128"), "retryable"),
    (bce.SSLError(endpoint_url=URL, error=OSError("handshake failed")), "retryable"),
    (bce.HTTPClientError(error=ProtocolError("Connection broken")), "retryable"),
    (bce.ParamValidationError(report="Invalid length for parameter Username"), "user"),
    (bce.NoCredentialsError(), "fatal"),
    (
        bce.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        "fatal",
    ),
    (bce.CredentialRetrievalError(provider="sso", error_msg="expired"), "fatal"),
    (bce.NoRegionError(), "fatal"),
    (bce.TokenRetrievalError(provider="sso", error_msg="Token has expired"), "fatal"),
    (bce.SSOTokenLoadError(error_msg="no cached token"), "fatal"),
    (bce.UnauthorizedSSOTokenError(), "fatal"),
    (bce.ProfileNotFound(profile="prod"), "fatal"),
    (bce.NoAuthTokenError(), "fatal"),
    (ValueError("a bug"), "fatal"),
]


@pytest.mark.parametrize(("exc", "kind"), BOTOCORE_ERRORS)
@pytest.mark.parametrize("api", ["admin", "token"])
def test_botocore_error_kind(exc: BaseException, kind: ErrorKind, api: Api) -> None:
    error = classify(exc, api=api)
    assert error.code == type(exc).__name__
    assert error.kind == kind
    assert error.throttled is False
    assert str(exc) in error.message


@pytest.mark.parametrize("api", ["admin", "token"])
def test_a_malformed_success_is_retryable(api: Api) -> None:
    # It may or may not have been applied; updates are idempotent, so retry.
    exc = MalformedResponseError(
        operation="AdminUpdateUserAttributes", status=200, problem="an empty body"
    )
    error = classify(exc, api=api)
    assert (error.code, error.kind, error.throttled) == (
        "MalformedResponse",
        "retryable",
        False,
    )
    assert error.message == (
        "AdminUpdateUserAttributes: the endpoint answered HTTP 200 with an empty "
        "body, which is not a Cognito response; the call may or may not have taken "
        "effect"
    )


def test_no_credentials_says_what_to_set() -> None:
    assert classify(bce.NoCredentialsError(), api="admin").message == (
        "no AWS credentials found: pass --profile or set AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY (NoCredentialsError: Unable to locate credentials)"
    )


def test_no_region_says_what_to_set() -> None:
    assert classify(bce.NoRegionError(), api="admin").message == (
        "no AWS region: pass --region or set AWS_REGION / a profile region "
        "(NoRegionError: You must specify a region.)"
    )


def test_sso_expiry_says_how_to_log_in_again() -> None:
    error = classify(
        bce.TokenRetrievalError(provider="sso", error_msg="Token has expired"),
        api="admin",
    )
    assert error.message == (
        "your AWS SSO / login session expired or is invalid: run `aws sso login` "
        "(check --profile) and run `cognito-migrate resume JOB` "
        "(TokenRetrievalError: Error when retrieving token from sso: "
        "Token has expired)"
    )


# --- access tokens never reach a message ------------------------------------------
def test_param_validation_report_with_the_token_is_scrubbed() -> None:
    report = (
        f"Invalid type for parameter AccessToken, value: b'{TOKEN}', "
        "type: <class 'bytes'>, valid types: <class 'str'>"
    )
    exc = bce.ParamValidationError(report=report)
    assert TOKEN in str(exc)  # botocore echoes the value: the reason for scrubbing
    error = classify(exc, api="token")
    assert error == CallError(
        code="ParamValidationError",
        message=(
            "Parameter validation failed:\n"
            "Invalid type for parameter AccessToken, value: <redacted>"
        ),
        kind="user",
    )


def test_known_token_is_scrubbed_from_any_message() -> None:
    exc = client_error(
        "NotAuthorizedException",
        f"Invalid Access Token {TOKEN} (token {TOKEN})",
        operation="UpdateUserAttributes",
    )
    error = classify(exc, api="token", secrets=[TOKEN])
    assert error.message == "Invalid Access Token <redacted> (token <redacted>)"
    assert TOKEN not in repr(error)


def test_jwt_shaped_tokens_are_scrubbed_without_being_told() -> None:
    exc = client_error("InvalidParameterException", f"bad token {JWT}.")
    assert classify(exc, api="token").message == "bad token <redacted>."


def test_scrub_handles_json_bodies_and_leaves_other_text_alone() -> None:
    body = f'b\'{{"AccessToken": "{TOKEN}", "UserAttributes": []}}\''
    assert scrub(body) == 'b\'{"AccessToken": "<redacted>", "UserAttributes": []}\''
    assert scrub("User does not exist.", [None, ""]) == "User does not exist."


def test_fatal_messages_are_scrubbed_too() -> None:
    exc = client_error("ForbiddenException", f"blocked request with {TOKEN}")
    error = classify(exc, api="token", secrets=[TOKEN])
    assert error.kind == "fatal"
    assert TOKEN not in error.message
    assert error.message.endswith(
        "(ForbiddenException: blocked request with <redacted>)"
    )


def test_the_daily_message_limit_stops_the_job() -> None:
    from botocore.exceptions import ClientError

    from migrate.cognito import classify

    response: Any = {
        "Error": {
            "Code": "LimitExceededException",
            "Message": "Exceeded daily email limit for the operation or the "
            "account. If a higher limit is required, please configure your "
            "user pool to use your own Amazon SES configuration for sending "
            "email.",
        },
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    error = ClientError(response, "AdminUpdateUserAttributes")
    result = classify(error, api="admin")
    assert result.kind == "fatal"
    assert result.message.startswith("Cognito's daily message limit is reached")
