"""Amazon Cognito: the boto3 client and the calls a migration makes.

This is the only module of the package that imports boto3 or botocore. It turns
every AWS or botocore failure into a `CallError` with one of three kinds (see
`classify`), so the executor never has to know what botocore raises.

Access tokens (api = "token") go into the request's ``AccessToken`` field and
nowhere else: error messages are scrubbed of them, and botocore's debug log of
request bodies is redacted while a token-mode `UserPool` exists.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
import botocore.exceptions
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from migrate import __version__
from migrate.errors import ConfigError, FatalError
from migrate.records import CallError, CallResult, WorkItem
from migrate.retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_cognito_idp.type_defs import AttributeTypeTypeDef

Api = Literal["admin", "token"]

NO_REGION_MESSAGE: Final = (
    "no AWS region: pass --region or set AWS_REGION / a profile region"
)
_EXPIRED_CREDENTIALS: Final = (
    "your AWS credentials expired: refresh them (aws sso login / new session) "
    "and run `cognito-migrate resume JOB`"
)
_BAD_CREDENTIALS: Final = (
    "AWS does not recognise your credentials: check --profile and the "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables"
)
_BAD_SIGNATURE: Final = (
    "AWS rejected the request signature: check the secret access key of your "
    "credentials and this machine's clock"
)

# --- classification tables ---------------------------------------------------
# botocore's standard-mode throttling codes (ThrottledRetryableChecker): Cognito
# itself only ever sends TooManyRequestsException, but a proxy or emulator may
# answer with any of them, and each means "slow down", never "this user is bad".
THROTTLING_CODES: Final = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES: Final = frozenset(
    {
        "InternalErrorException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        # The pool's Lambda trigger failed or was throttled; the next try may work.
        "UnexpectedLambdaException",
    }
)
USER_CODES: Final = frozenset(
    {
        "UserNotFoundException",
        "AliasExistsException",
        "InvalidParameterException",
        "UserLambdaValidationException",
        "CodeDeliveryFailureException",
        "CodeMismatchException",
        "ExpiredCodeException",
        "UserNotConfirmedException",
        "PasswordResetRequiredException",
    }
)
#: Job-wide errors: every later call would fail the same way. Value: what to fix.
FATAL_HINTS: Final[Mapping[str, str]] = {
    "ResourceNotFoundException": (
        "user pool not found: check --user-pool-id and --region"
    ),
    "AccessDeniedException": (
        "AWS denied cognito-idp:{op} on the pool: grant it to the identity you "
        "run as (check --profile); `cognito-migrate policy --user-pool-id POOL` "
        "prints what each command needs"
    ),
    "AccessDenied": (
        "AWS denied cognito-idp:{op} on the pool: grant it to the identity you "
        "run as (check --profile); `cognito-migrate policy --user-pool-id POOL` "
        "prints what each command needs"
    ),
    "NotAuthorizedException": (
        "Cognito refused cognito-idp:{op}: check that the identity you run as "
        "(--profile) may call it on this pool"
    ),
    "ExpiredTokenException": _EXPIRED_CREDENTIALS,
    "ExpiredToken": _EXPIRED_CREDENTIALS,
    "RequestExpired": (
        "AWS says the request expired before it arrived: check this machine's clock"
    ),
    "UnrecognizedClientException": _BAD_CREDENTIALS,
    "InvalidClientTokenId": _BAD_CREDENTIALS,
    "InvalidSignatureException": _BAD_SIGNATURE,
    "SignatureDoesNotMatch": _BAD_SIGNATURE,
    "IncompleteSignature": _BAD_SIGNATURE,
    "MissingAuthenticationToken": (
        "the request carried no AWS signature: configure credentials "
        "(--profile or the AWS_* variables)"
    ),
    "MissingAuthenticationTokenException": (
        "the request carried no AWS signature: configure credentials "
        "(--profile or the AWS_* variables)"
    ),
    "InvalidSmsRoleAccessPolicyException": (
        "the pool cannot send SMS (its SNS role is not allowed to publish): fix "
        "the pool's SMS configuration or leave phone_number out of the mapping"
    ),
    "InvalidSmsRoleTrustRelationshipException": (
        "the pool cannot send SMS (its SNS role does not trust Cognito): fix the "
        "pool's SMS configuration or leave phone_number out of the mapping"
    ),
    "InvalidEmailRoleAccessPolicyException": (
        "the pool cannot send email (SES refused its identity policy): fix the "
        "pool's email configuration or leave email out of the mapping"
    ),
    "InvalidLambdaResponseException": (
        "a Lambda trigger of the pool returned an invalid response: fix the "
        "trigger, then resume the job"
    ),
    "ForbiddenException": (
        "a WAF web ACL on the pool blocked the request: allow this client's traffic"
    ),
    "UserPoolTaggingException": (
        "Cognito could not read the pool's tags: check the permissions of the "
        "identity you run as (check --profile)"
    ),
    # Added to the service model in 2026 (botocore 1.44): the operation is
    # switched off for this pool or account, so every row would be refused.
    "OperationNotEnabledException": (
        "Cognito says this operation is not enabled for the pool or account: "
        "check the pool's settings and feature tier"
    ),
}
# In token mode NotAuthorizedException usually means this row's token is expired or
# revoked; only a write-permission refusal repeats for every row.
_TOKEN_FATAL_HINTS: Final[Mapping[str, str]] = {
    "ResourceNotFoundException": (
        "Cognito found no user pool for the access tokens: check --region (a "
        "token is accepted only in its own pool's region)"
    ),
}
_UNWRITABLE_ATTRIBUTE = re.compile(r"unauthorized attribute", re.IGNORECASE)
_UNWRITABLE_HINT: Final = (
    "the app client may not write one of the mapped attributes: grant it write "
    'permission in the pool\'s app client settings, or use api = "admin"'
)
# LoginError (`aws login` sessions) is new in botocore; older versions lack it.
_SESSION_ERRORS: Final[tuple[type[Exception], ...]] = tuple(
    getattr(botocore.exceptions, name)
    for name in ("TokenRetrievalError", "SSOError", "LoginError")
    if hasattr(botocore.exceptions, name)
)
_SSO_EXPIRED: Final = (
    "your AWS SSO / login session expired or is invalid: run `aws sso login` "
    "(check --profile) and run `cognito-migrate resume JOB`"
)

# --- token scrubbing -----------------------------------------------------------
REDACTED: Final = "<redacted>"
# Cognito access tokens are JWTs; botocore or an emulator may echo one back.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# A JSON request body as botocore logs it: b'{"AccessToken": "..."}'.
_JSON_TOKEN_FIELD = re.compile(r'("AccessToken"\s*:\s*")[^"]*(")')
# ParamValidationError reports echo the invalid value of the parameter.
_PARAM_TOKEN_VALUE = re.compile(r"(parameter AccessToken, value: ).*")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove access tokens (the given ones and anything JWT-shaped) from text."""
    for secret in secrets:
        if secret and isinstance(secret, str):
            text = text.replace(secret, REDACTED)
    text = _JWT.sub(REDACTED, text)
    text = _JSON_TOKEN_FIELD.sub(rf"\1{REDACTED}\2", text)
    return _PARAM_TOKEN_VALUE.sub(rf"\1{REDACTED}", text)


# The token of the call running on this thread, so the log filter can remove it
# even where it is not JSON-shaped (an emulator may echo it in an error body).
_in_flight = threading.local()


class _RedactAccessTokens(logging.Filter):
    """Scrubs access tokens from botocore's DEBUG logs of requests and responses."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message, [getattr(_in_flight, "token", None)])
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_LOG_FILTER: Final = _RedactAccessTokens()
# botocore.endpoint logs each request dict (body included), botocore.parsers each
# response body, both at DEBUG.
_LOGGERS_WITH_BODIES: Final = ("botocore.endpoint", "botocore.parsers")


def _guard_debug_log() -> None:
    for name in _LOGGERS_WITH_BODIES:
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


@contextmanager
def _token_in_flight(token: str) -> Iterator[None]:
    _in_flight.token = token
    try:
        yield
    finally:
        _in_flight.token = None


# --- only a well-formed answer is a success -------------------------------------
# botocore's JSON parser turns a 2xx body that is not JSON into {"message": body}
# and a JSON body of the wrong shape into an empty result, so a proxy or captive
# portal answering "200 <html>" would make every update look done. A 2xx counts
# only when its body is what the operation's output shape allows.
MALFORMED_RESPONSE: Final = "MalformedResponse"
_RESPONSE_GUARD_ID: Final = "cognito-bulk-migrate-response-guard"
_PREVIEW_BYTES: Final = 60


class MalformedResponseError(BotoCoreError):
    """A 2xx answer whose body is not a response of the operation.

    Retryable: the request may or may not have reached Cognito, and attribute
    updates are idempotent, so sending it again is the way to find out.
    """

    fmt = (
        "{operation}: the endpoint answered HTTP {status} with {problem}, which is "
        "not a Cognito response; the call may or may not have taken effect"
    )


def _guard_responses(client: CognitoIdentityProviderClient) -> None:
    """Check every 2xx body of this client against its operation's output shape.

    Idempotent (one handler per client, by id); call it before threads share
    the client, as botocore's event hooks are not thread-safe to register.
    """
    client.meta.events.register(
        "before-parse.cognito-identity-provider",
        _check_response,
        unique_id=_RESPONSE_GUARD_ID,
    )


def _check_response(
    operation_model: OperationModel, response_dict: Mapping[str, Any], **_: Any
) -> None:
    status = response_dict.get("status_code")
    if not isinstance(status, int) or not 200 <= status < 300:
        return  # errors have their own parser and classification
    problem = response_problem(
        response_dict.get("body") or b"",
        operation_model.output_shape,
        request_id=_request_id(response_dict.get("headers")),
    )
    if problem is not None:
        raise MalformedResponseError(
            operation=operation_model.name, status=status, problem=problem
        )


def _request_id(headers: Any) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get("x-amzn-requestid") or headers.get("x-amzn-RequestId")
    except AttributeError:
        return None
    return str(value) if value else None


def response_problem(
    body: bytes, shape: Shape | None, *, request_id: str | None = None
) -> str | None:
    """Why ``body`` is not a success response of an operation with output ``shape``.

    None when it is: a JSON object whose members are the shape's, each of the
    JSON type its shape says (members nested deeper than the top may be new
    ones botocore does not know yet, and are left alone). An empty body passes
    only with an AWS request id: the service itself answered, with nothing.
    """
    if not body.strip():
        return None if request_id else "an empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "a body that is not UTF-8 text"
    try:
        parsed = json.loads(text)
    except ValueError:
        return f"a body that is not JSON ({_preview(text)})"
    if not isinstance(parsed, dict):
        return f"JSON that is not an object ({_preview(text)})"
    members = shape.members if shape is not None else {}  # type: ignore[attr-defined]
    unknown = [key for key in parsed if key not in members]
    if unknown:
        return (
            f"a JSON object with the member {unknown[0]!r}, which the "
            f"operation's response does not have ({_preview(text)})"
        )
    for key, value in parsed.items():
        wrong = _type_problem(value, members[key], key)
        if wrong is not None:
            return f"a JSON object where {wrong}"
    return None


_JSON_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float, str),
    "double": (int, float, str),
    "timestamp": (int, float, str),
}
_JSON_NAMES: Final[Mapping[str, str]] = {
    "structure": "an object",
    "map": "an object",
    "list": "a list",
    "string": "a string",
    "blob": "a string",
    "boolean": "true or false",
    "integer": "a number",
    "long": "a number",
    "float": "a number",
    "double": "a number",
    "timestamp": "a time",
}


def _type_problem(value: object, shape: Shape, where: str) -> str | None:
    """Where ``value`` is not the JSON type of ``shape`` (recursively), or None."""
    if value is None:
        return None  # botocore skips null members
    kind = shape.type_name
    expected = _JSON_TYPES.get(kind)
    if expected is None:
        return None
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (is_bool and kind != "boolean"):
        return f"{where} is {_json_kind(value)}, not {_JSON_NAMES[kind]}"
    if kind == "structure":
        assert isinstance(value, dict)
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key in members:
                problem = _type_problem(item, members[key], f"{where}.{key}")
                if problem is not None:
                    return problem
    elif kind == "list":
        assert isinstance(value, list)
        for index, item in enumerate(value):
            problem = _type_problem(item, shape.member, f"{where}[{index}]")  # type: ignore[attr-defined]
            if problem is not None:
                return problem
    elif kind == "map":
        assert isinstance(value, dict)
        for key, item in value.items():
            problem = _type_problem(item, shape.value, f"{where}[{key!r}]")  # type: ignore[attr-defined]
            if problem is not None:
                return problem
    return None


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _PREVIEW_BYTES:
        flat = flat[:_PREVIEW_BYTES] + "..."
    return f"starts {flat!r}" if flat else "blank"


# --- the client ----------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """How to reach Cognito: AWS profile, region, endpoint and connection limits."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    max_pool_connections: int = 16
    connect_timeout: float = 5
    read_timeout: float = 30
    #: Explicit (access key, secret) pair: only for the embedded sandbox, so a
    #: sandbox run never reads, let alone uses, the user's real credentials.
    credentials: tuple[str, str] | None = field(default=None, repr=False)


def make_client(config: ClientConfig) -> CognitoIdentityProviderClient:
    """Build the one cognito-idp client a run shares between its threads.

    botocore's own retries are off (one attempt per call): the executor retries,
    so every attempt passes its rate limiter and is counted. Region order:
    ``config.region``, then AWS_REGION, then AWS_DEFAULT_REGION or the profile's.
    """
    region = config.region or os.environ.get("AWS_REGION") or None
    try:
        keys = config.credentials
        session = boto3.session.Session(
            profile_name=config.profile,
            region_name=region,
            aws_access_key_id=keys[0] if keys else None,
            aws_secret_access_key=keys[1] if keys else None,
        )
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile {config.profile!r} not found: check --profile and your "
            "AWS config file (~/.aws/config)"
        ) from None
    except BotoCoreError as exc:
        raise ConfigError(f"cannot read the AWS configuration: {exc}") from None
    if not session.region_name:
        raise ConfigError(NO_REGION_MESSAGE)
    botocore_config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=config.max_pool_connections,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        user_agent_extra=f"cognito-bulk-migrate/{__version__}",
    )
    try:
        client = session.client(
            "cognito-idp", endpoint_url=config.endpoint_url, config=botocore_config
        )
    except NoRegionError:
        raise ConfigError(NO_REGION_MESSAGE) from None
    except (BotoCoreError, ValueError) as exc:
        # botocore raises ValueError for a malformed endpoint URL or region name.
        raise ConfigError(
            f"cannot set up the Cognito client (region {session.region_name!r}, "
            f"endpoint {config.endpoint_url!r}): {exc}"
        ) from None
    _guard_responses(client)
    return client


# --- classification ----------------------------------------------------------------
def classify(
    exc: BaseException, *, api: Api, secrets: Iterable[str | None] = ()
) -> CallError:
    """Turn an exception from a Cognito call into a `CallError`.

    ``secrets`` are values (the row's access token) to remove from the message;
    JWT-shaped strings are removed anyway.
    """
    secrets = tuple(secrets)
    if isinstance(exc, ClientError):
        error = _classify_client_error(exc, api=api)
    else:
        error = _classify_local_error(exc)
    return CallError(
        code=error.code,
        message=scrub(error.message, secrets),
        kind=error.kind,
        throttled=error.throttled,
    )


_DAILY_LIMIT = re.compile(r"daily (email|sms|message)? ?limit|spend(ing)? limit", re.I)
_DAILY_LIMIT_HINT = (
    "Cognito's daily message limit is reached (the update would send a "
    "verification message): set email_verified / phone_number_verified = "
    '"true" in the mapping so no message is sent, or configure your own SES/SNS '
    "sending, then resume the job"
)


def _classify_client_error(exc: ClientError, *, api: Api) -> CallError:
    response: Mapping[str, Any] = exc.response
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    aws_code = response.get("Error", {}).get("Code")
    code = str(aws_code) if aws_code else f"HTTP{status or ''}"
    message = str(response.get("Error", {}).get("Message") or "").strip()
    operation = getattr(exc, "operation_name", None) or "the call"

    if _DAILY_LIMIT.search(message):
        # Cognito's own email sender allows a few dozen messages a day, and
        # SMS has a spending limit: every later row would fail the same way.
        return _fatal(code, _DAILY_LIMIT_HINT, message)
    if code in THROTTLING_CODES or status == 429:
        return CallError(code=code, message=message, kind="retryable", throttled=True)
    if code in TRANSIENT_CODES:
        return CallError(code=code, message=message, kind="retryable")
    if code == "NotAuthorizedException" and api == "token":
        if _UNWRITABLE_ATTRIBUTE.search(message):
            return _fatal(code, _UNWRITABLE_HINT, message)
        return CallError(code=code, message=message, kind="user")
    if code in USER_CODES:
        return CallError(code=code, message=message, kind="user")
    hint = FATAL_HINTS.get(code)
    if api == "token":
        hint = _TOKEN_FATAL_HINTS.get(code, hint)
    if hint is not None:
        return _fatal(code, hint.format(op=operation), message)
    if isinstance(status, int) and status >= 500:
        return CallError(code=code, message=message, kind="retryable")
    return CallError(code=code, message=message, kind="user")


def _classify_local_error(exc: BaseException) -> CallError:
    code = type(exc).__name__
    message = str(exc).strip()
    # ConnectionError covers EndpointConnectionError, ConnectTimeoutError, SSLError
    # and proxy errors; HTTPClientError covers ReadTimeoutError and the urllib3
    # ProtocolError that botocore wraps as ConnectionClosedError.
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return CallError(code=code, message=message, kind="retryable")
    if isinstance(exc, MalformedResponseError):
        return CallError(code=MALFORMED_RESPONSE, message=message, kind="retryable")
    if isinstance(exc, ParamValidationError):
        return CallError(code=code, message=message, kind="user")
    if isinstance(exc, NoRegionError):
        return _fatal(code, NO_REGION_MESSAGE, message)
    if isinstance(exc, NoCredentialsError):
        hint = (
            "no AWS credentials found: pass --profile or set AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY"
        )
        return _fatal(code, hint, message)
    if isinstance(exc, PartialCredentialsError):
        return _fatal(code, "your AWS credentials are incomplete", message)
    if isinstance(exc, _SESSION_ERRORS):
        return _fatal(code, _SSO_EXPIRED, message)
    if isinstance(exc, CredentialRetrievalError):
        hint = "could not get AWS credentials (check --profile)"
        return _fatal(code, hint, message)
    if isinstance(exc, ProfileNotFound):
        return _fatal(code, "AWS profile not found: check --profile", message)
    if isinstance(exc, BotoCoreError):
        return _fatal(code, "unexpected error from botocore", message)
    return _fatal(code, "unexpected error while calling Cognito", message)


def _fatal(code: str, hint: str, detail: str) -> CallError:
    message = f"{hint} ({code}: {detail})" if detail else f"{hint} ({code})"
    return CallError(code=code, message=message, kind="fatal")


# --- reading the pool -----------------------------------------------------------
def caller_identity(config: ClientConfig) -> tuple[str | None, str | None]:
    """(account and principal, None), or (None, why they are not known).

    One STS GetCallerIdentity call, which needs no permission. Skipped for an
    emulator (``endpoint_url``): STS would be asked about AWS credentials that
    the emulator does not use.
    """
    if config.endpoint_url:
        return None, "not checked: --endpoint-url is not AWS"
    try:
        session = boto3.session.Session(
            profile_name=config.profile,
            region_name=config.region or os.environ.get("AWS_REGION") or None,
        )
        sts = session.client(
            "sts",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=3,
                read_timeout=5,
                user_agent_extra=f"cognito-bulk-migrate/{__version__}",
            ),
        )
        return identity_of(sts), None
    except (ClientError, BotoCoreError) as exc:
        return None, f"not known: STS said {classify(exc, api='admin').code}"


def identity_of(sts: Any) -> str:
    """'ACCOUNT (ARN)' of the identity an STS client signs as."""
    answer = sts.get_caller_identity()
    return f"{answer['Account']} ({answer['Arn']})"


def describe_user_pool(
    client: CognitoIdentityProviderClient,
    pool_id: str,
    *,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Return DescribeUserPool output (``{"UserPool": {...}}``), JSON-ready.

    Dates become ISO strings, so the result equals a schema file saved from
    ``aws cognito-idp describe-user-pool``. Throttling and 5xx are retried a few
    times; anything else raises FatalError (or ConfigError for a malformed ID).
    """
    _guard_responses(client)

    def describe() -> tuple[dict[str, Any] | None, CallError | None]:
        try:
            response = client.describe_user_pool(UserPoolId=pool_id)
        except (ClientError, BotoCoreError) as exc:
            return None, classify(exc, api="admin")
        return {"UserPool": _json_ready(response["UserPool"])}, None

    def wait(seconds: float) -> bool:
        sleep(seconds)
        return True

    tried = call_with_retries(
        describe,
        lambda answer: answer[1],
        policy=RetryPolicy(max_attempts=attempts, base=1.0, cap=8.0),
        # One call before the job starts: nothing to spread out, so no jitter.
        random=lambda: 1.0,
        wait=wait,
    )
    assert tried.result is not None  # nothing stops this loop but its limit
    described, error = tried.result
    if error is None:
        assert described is not None
        return described
    if error.kind == "fatal":
        raise FatalError(error.message, aws_error_code=error.code)
    if error.kind == "user":
        raise ConfigError(
            f"cannot read user pool {pool_id!r}: {error.message} ({error.code})"
        )
    raise FatalError(
        f"could not read user pool {pool_id!r} after {attempts} attempts: "
        f"{error.message} ({error.code})",
        aws_error_code=error.code,
    )


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


#: ListUsers' largest page (the model's Limit maximum).
LIST_USERS_MAX_LIMIT: Final = 60


@dataclass(frozen=True, kw_only=True)
class UserPage:
    """One ListUsers page: UserType dicts, the next token, or why it failed."""

    #: ListUsers' UserType dicts as boto3 returns them (Username, Attributes,
    #: UserStatus, Enabled, UserCreateDate, ...).
    users: list[dict[str, Any]]
    #: None on the last page (and when the call failed).
    next_token: str | None
    #: Classified like the writes; throttling is retryable and throttled.
    error: CallError | None = None


# --- the adapter the executor calls -------------------------------------------------
class UserPool:
    """The Cognito calls of a run; thread-safe (threads share one boto3 client)."""

    def __init__(
        self,
        client: CognitoIdentityProviderClient,
        *,
        pool_id: str | None,
        api: Api,
        client_metadata: Mapping[str, str] | None = None,
    ) -> None:
        if api == "admin" and not pool_id:
            raise ConfigError('--user-pool-id is required with api = "admin"')
        self._client = client
        self._pool_id = pool_id
        self._api: Api = api
        self._metadata = dict(client_metadata or {})
        # Clients built elsewhere than make_client (tests, library users) get
        # the same check of success responses.
        _guard_responses(client)
        if api == "token":
            _guard_debug_log()

    @property
    def api(self) -> Api:
        """Which family of calls this pool makes: "admin" (IAM) or "token"."""
        return self._api

    @property
    def pool_id(self) -> str | None:
        """The user pool ID, if known (token mode can run without one)."""
        return self._pool_id

    def update(self, item: WorkItem) -> CallResult:
        """Set ``item.set_attributes`` on the user; AWS errors come back as data."""
        if not item.set_attributes:
            raise ValueError(f"row {item.row}: work item has no attributes to set")
        attributes: list[AttributeTypeTypeDef] = [
            {"Name": name, "Value": value}
            for name, value in item.set_attributes.items()
        ]
        extra: dict[str, Any] = {}
        if self._metadata:
            extra["ClientMetadata"] = self._metadata
        return self._send(
            item,
            admin=lambda pool_id: self._client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username=item.user,
                UserAttributes=attributes,
                **extra,
            ),
            token=lambda token: self._client.update_user_attributes(
                AccessToken=token, UserAttributes=attributes, **extra
            ),
        )

    def delete(self, item: WorkItem) -> CallResult:
        """Delete ``item.delete_attributes`` from the user; errors come back as data."""
        if not item.delete_attributes:
            raise ValueError(f"row {item.row}: work item has no attributes to delete")
        names = list(item.delete_attributes)
        return self._send(
            item,
            admin=lambda pool_id: self._client.admin_delete_user_attributes(
                UserPoolId=pool_id, Username=item.user, UserAttributeNames=names
            ),
            token=lambda token: self._client.delete_user_attributes(
                AccessToken=token, UserAttributeNames=names
            ),
        )

    def read(self, item: WorkItem) -> CallResult:
        """The user's attributes now, in ``attributes``; errors come back as data.

        AdminGetUser whenever the pool is known, in token mode too: GetUser
        returns only the attributes the app client may read (its
        ReadAttributes), and an attribute left out would pass for one the user
        does not have (a rollback would delete it). GetUser with the row's
        access token otherwise. Both are the UserRead quota, apart from the
        writes' UserUpdate quota.
        """
        api: Api = "admin" if self._pool_id else self._api
        try:
            if api == "admin":
                assert self._pool_id is not None
                response: Mapping[str, Any] = self._client.admin_get_user(
                    UserPoolId=self._pool_id, Username=item.user
                )
            else:
                if not item.token:
                    return _missing_token()
                with _token_in_flight(item.token):
                    response = self._client.get_user(AccessToken=item.token)
        except (ClientError, BotoCoreError) as exc:
            return CallResult(error=classify(exc, api=api, secrets=[item.token]))
        return _read_answer(response)

    def _send(
        self,
        item: WorkItem,
        *,
        admin: Callable[[str], Any],
        token: Callable[[str], Any],
    ) -> CallResult:
        """One write the way this pool's API makes it; errors come back as data."""
        if self._api == "admin":
            assert self._pool_id is not None
            try:
                admin(self._pool_id)
            except (ClientError, BotoCoreError) as exc:
                return CallResult(error=classify(exc, api="admin"))
            return CallResult()
        if not item.token:
            return _missing_token()
        try:
            with _token_in_flight(item.token):
                response = token(item.token)
        except (ClientError, BotoCoreError) as exc:
            return CallResult(error=classify(exc, api="token", secrets=[item.token]))
        return CallResult(delivery=_delivery(response.get("CodeDeliveryDetailsList")))

    def describe(self) -> dict[str, Any]:
        """DescribeUserPool output for the schema; raises FatalError/ConfigError."""
        if not self._pool_id:
            raise ConfigError("--user-pool-id is required to read the pool's schema")
        return describe_user_pool(self._client, self._pool_id)

    def list_users_page(
        self, pagination_token: str | None, *, limit: int = LIST_USERS_MAX_LIMIT
    ) -> UserPage:
        """One ListUsers page with every attribute; AWS errors come back as data.

        No AttributesToGet: Cognito rejects it unless every listed user has
        every requested attribute (ListUsers API reference). ListUsers is
        signed with IAM credentials whatever ``api`` is, so errors are
        classified as admin.
        """
        if not self._pool_id:
            raise ConfigError("--user-pool-id is required to list the pool's users")
        if not 1 <= limit <= LIST_USERS_MAX_LIMIT:
            raise ValueError(
                f"limit must be between 1 and {LIST_USERS_MAX_LIMIT}, got {limit}"
            )
        try:
            if pagination_token:
                response = self._client.list_users(
                    UserPoolId=self._pool_id,
                    Limit=limit,
                    PaginationToken=pagination_token,
                )
            else:
                response = self._client.list_users(
                    UserPoolId=self._pool_id, Limit=limit
                )
        except (ClientError, BotoCoreError) as exc:
            return UserPage(users=[], next_token=None, error=classify(exc, api="admin"))
        users = [dict(user) for user in response.get("Users", [])]
        return UserPage(users=users, next_token=response.get("PaginationToken") or None)


def _read_answer(response: Mapping[str, Any]) -> CallResult:
    """A read's attributes, or a retryable error when the answer lacks them.

    An answer without the user (an empty body passes the response guard when
    it has a request id) must not read as a user with no attributes: the
    diff would send everything and a rollback would delete what it restores.
    """
    entries = response.get("UserAttributes")
    username = response.get("Username")
    # Every Cognito user has a sub: an answer without it is not a whole user.
    if (
        not isinstance(username, str)
        or not isinstance(entries, list)
        or not all(
            isinstance(entry.get("Name"), str) and isinstance(entry.get("Value"), str)
            for entry in entries
        )
        or not any(entry["Name"] == "sub" for entry in entries)
    ):
        return CallResult(
            error=CallError(
                code=MALFORMED_RESPONSE,
                message="the read's answer is not a whole user (no username, no "
                "attribute list with the sub, or an attribute without a name or "
                "value)",
                kind="retryable",
            )
        )
    return CallResult(
        attributes={entry["Name"]: entry["Value"] for entry in entries},
        username=username,
    )


def _missing_token() -> CallResult:
    return CallResult(
        error=CallError(
            code="MissingAccessToken",
            message="the row has no access token",
            kind="user",
        )
    )


def _delivery(details: Iterable[Mapping[str, Any]] | None) -> str | None:
    entries = [
        f"{detail.get('DeliveryMedium', '?')}:{detail.get('Destination', '?')}"
        for detail in details or ()
    ]
    return ";".join(entries) or None
