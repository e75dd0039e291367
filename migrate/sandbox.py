"""The emulated Cognito user pool behind ``run --sandbox`` and ``serve``.

`EmulatedPool` serves the Cognito user pools JSON protocol (``POST /``,
``X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>``,
``application/x-amz-json-1.1``) on ``127.0.0.1`` over moto's cognito-idp backend,
so a real boto3 client pointed at ``endpoint_url`` works against it. Nothing
leaves the machine: the server binds the loopback interface only, requests are
never forwarded, no credentials are read and no environment variable is
changed. Signatures are not checked, so any credentials do; botocore still
needs some to sign with (``AWS_ACCESS_KEY_ID=sandbox
AWS_SECRET_ACCESS_KEY=sandbox`` is enough), or a client with
``signature_version=UNSIGNED`` sends none.

Two ways in:

- ``run --sandbox`` builds an `EmulatedPool`, ``seed``s it from the schema file
  and the run's input, and points the run's client at ``endpoint_url``.
- ``python -m migrate.sandbox serve --schema FILE [--users FILE] [--port N]
  [--port-file FILE] [--region R]`` serves one seeded pool until Ctrl-C or
  SIGTERM, and prints the endpoint, the user pool id and an example command
  on stdout. Unreadable files and a busy port are a one-line ``error:`` on
  stderr and exit status 2.

How requests are served:

- The attribute-write operations (AdminUpdateUserAttributes,
  AdminDeleteUserAttributes, UpdateUserAttributes, DeleteUserAttributes) are
  implemented here on moto's user objects, because moto's versions differ from
  Cognito where this tool cares (below). AdminGetUser's Username and GetUser's
  token are resolved here, as the writes resolve them, and then answered by moto.
- Every other operation of botocore's cognito-idp model (DescribeUserPool,
  ListUsers, CreateUserPoolClient, AdminInitiateAuth, ...) is answered
  by moto, serialised by moto from that model. An operation outside the model
  gets UnknownOperationException from here: moto's own answer to one has
  changed between releases.
- Cognito's request-rate quotas are token buckets (`Quotas`: refill ``quota``
  per second, burst one second's worth, so at most ``2 * quota`` successes fit
  in any one-second window) for the UserUpdate, UserList, UserRead and
  UserPoolRead categories; a request over its quota is answered HTTP 400
  TooManyRequestsException "Rate exceeded" and takes no token.
- Errors come back as Cognito sends them: HTTP 400 (500 for
  InternalErrorException) with ``{"__type": "<Code>", "message": "..."}``.
- One process-wide lock serialises every call into moto, which is not
  thread-safe.

Where the emulation differs from Cognito (moto 5.2 plus this module):

- Emulated here, because moto does not: a blank value deletes the attribute (moto
  would store ``""``); writes are checked against the pool schema (unknown
  attribute, immutable attribute, required attribute blanked or deleted,
  developer-only attribute through a token operation, String length and Number
  range constraints, Boolean values, email and E.164 phone formats, names over 32
  and values over 2048 characters), all InvalidParameterException (developer-only:
  NotAuthorizedException); deleting an attribute the user does not have succeeds
  (moto rejects it); DeleteUserAttributes exists (moto lacks it); a changed email
  or phone_number becomes unverified unless the same call sets
  ``*_verified=true``; with the attribute in
  ``AttributesRequireVerificationBeforeUpdate`` the old value is kept;
  UpdateUserAttributes returns ``CodeDeliveryDetailsList`` (masked destination)
  for changed auto-verified attributes; a verified email or phone alias set on
  one user moves off another user (AliasAttributes pools) or is refused with
  AliasExistsException (UsernameAttributes pools, verified or not); Admin*
  operations accept the username, a sign-in value (UsernameAttributes), a
  preferred_username alias, a verified email or phone alias, or the sub; all but
  the sub case-insensitively when ``UsernameConfiguration.CaseSensitive`` is false
  (a pool without it is case-sensitive). AdminGetUser and GetUser find their
  user exactly as the writes do. Users of a pool that signs in with email or
  phone are created by that value, named by their sub.
- Error messages for schema violations follow Cognito's ``user.<name>: ...`` form
  for unknown and immutable attributes; the wording for the other checks is this
  module's own (the codes are Cognito's).
- Not emulated: the per-user limit of about 10 writes per second, Lambda
  triggers (``ClientMetadata`` is accepted and ignored; ``LambdaConfig`` is not
  copied), sending messages, app-client attribute write permissions, token expiry
  (tokens stay valid until ``GlobalSignOut``), IAM authorisation and request
  signatures, ListUsers' eventual consistency and ``\\"`` escapes in its Filter.
- Users seeded with `EmulatedPool.add_users` are CONFIRMED, bypassing
  AdminCreateUser's invitation flow. ``writes`` counts per real username (a UUID
  in UsernameAttributes pools), whatever key the request named the user by;
  ``reads`` counts the UserRead requests let through their quota.

For tests, `EmulatedPool.handle` (every HTTP request) and `EmulatedPool.perform`
(a request within its quota) are the hooks a subclass wraps; the fault injection
(latency, injected errors, dropped connections) and the ``/__stats`` endpoint
the tests use live in ``tests/support``, not here.

moto. Each pool lives in moto's own cognito-idp backends (``BackendDict``, the
state ``mock_aws`` serves from) under an account id of its own, which each
request names in moto's ``x-moto-account-id`` header; so pools of two
`EmulatedPool` objects never meet, and moto's token look-ups, which search every
account, find the right pool. The pools stay readable after `EmulatedPool.stop`
and leave moto's backends when the object is garbage-collected. Caveats of
sharing moto's state: ``mock_aws`` resets every moto backend when it starts and
stops, so do not start or stop one while a sandbox serves in the same process;
``MOTO_ACCOUNT_ID``, if set, overrides the header and puts every pool in that
one account; and moto looks a token string registered in two live
`EmulatedPool` objects up in either (minted tokens are unique).

Besides the backend's methods that mirror API operations (``create_user_pool``,
``admin_create_user``, ``admin_confirm_sign_up``) and the fields of its models
that it reads (test_moto_models_have_the_fields_the_sandbox_reads), the sandbox
uses these moto internals, each in one function of the "moto adapter" section
below and named by one test in tests/functional/test_sandbox.py
(``test_moto_internal_*``):

- ``moto.core.botocore_stubber.BotocoreStubber``, the botocore ``before-send``
  hook that ``mock_aws`` installs (`_moto_answer`): answers a request
  from moto's own response classes with no network and no global switch; it
  builds moto's request type itself in every moto release.
- ``CognitoIdpUserPoolAttribute.STANDARD_SCHEMA`` (`_moto_standard_schema`):
  moto makes a pool created with custom attributes only have no standard ones.
- the pool's ``id`` and ``arn`` and the backend's ``user_pools`` key
  (`_keep_pool_id`): moto has no way to choose a pool id, and a sandbox run
  should use the real pool's ``--user-pool-id``.
- the schema attribute's ``string_constraints`` and ``number_constraints``
  (`_set_constraints`): moto refuses some valid constraints (a negative
  MinValue) and invents empty ones.
- the user's ``id`` (`_set_sub`): moto makes up every sub; runs keyed by sub
  need the input's.
- the ``CognitoIdpUser`` model, ``UserStatus`` and the pool's ``users``
  (`_create_confirmed_user`): moto's AdminCreateUser refuses sign-in emails
  its own pattern does not know, and picks the UUID username itself.
- the user's ``attributes`` list (`_replace_attributes`): moto's
  ``update_attributes`` only merges.
- the pool's ``create_access_token`` and ``access_tokens`` (`_mint_access_token`,
  `_register_access_token`): a token for UpdateUserAttributes without an app
  client and a sign-in, or the input file's own token strings.

Each moto pool imports moto's bundled RSA signing key, 0.1-0.3 s. A run or
``serve`` builds one pool, so that is paid once; the test suite, which builds
many, shares one import of the key through tests/support/moto_keys.py.

moto is an optional extra (``pip install 'cognito-bulk-migrate[sandbox]'``): it is
imported only when an `EmulatedPool` is built, and its absence is a ConfigError.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import itertools
import json
import logging
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TextIO, cast

from migrate.errors import ConfigError, SchemaError
from migrate.files import write_private
from migrate.records import MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE, TOKEN, USER

if TYPE_CHECKING:
    from moto.cognitoidp.models import (
        CognitoIdpBackend,
        CognitoIdpUser,
        CognitoIdpUserPool,
        CognitoIdpUserPoolAttribute,
    )

    from migrate.pipeline import Job

__all__ = [
    "SANDBOX_INSTALL_HINT",
    "EmulatedPool",
    "Quotas",
    "Reply",
    "Request",
    "ServeCommand",
    "main",
    "read_users",
]

log = logging.getLogger(__name__)

SANDBOX_INSTALL_HINT = (
    "--sandbox needs the emulated pool: pip install 'cognito-bulk-migrate[sandbox]'"
)

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
#: Access tokens issued by the sandbox name this app client.
SANDBOX_CLIENT_ID = "sandbox"
#: Credentials to show users of ``serve``: any will do, botocore wants some.
EXAMPLE_CREDENTIALS = "AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox"

#: Operations that write user attributes: the UserUpdate quota category.
WRITE_OPERATIONS: frozenset[str] = frozenset(
    {
        "AdminUpdateUserAttributes",
        "AdminDeleteUserAttributes",
        "UpdateUserAttributes",
        "DeleteUserAttributes",
    }
)
#: Quota category of each throttled operation (Cognito's quotas page).
CATEGORIES: dict[str, str] = {
    **dict.fromkeys(WRITE_OPERATIONS, "UserUpdate"),
    "ListUsers": "UserList",
    "ListUsersInGroup": "UserList",
    "AdminGetUser": "UserRead",
    "GetUser": "UserRead",
    "DescribeUserPool": "UserPoolRead",
}

_VERIFIABLE = (("email", "email_verified"), ("phone_number", "phone_number_verified"))
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_E164 = re.compile(r"\+[0-9]{4,15}")
# Keys of DescribeUserPool output that shape behaviour here and are safe to copy.
_POOL_KEYS = (
    "AliasAttributes",
    "UsernameAttributes",
    "AutoVerifiedAttributes",
    "UserAttributeUpdateSettings",
    "UsernameConfiguration",
    "Policies",
    "MfaConfiguration",
    "AccountRecoverySetting",
    "AdminCreateUserConfig",
    "VerificationMessageTemplate",
    "DeletionProtection",
    "UserPoolTier",
    "UserPoolTags",
)
# moto serialises every call into its backend through this one lock: its models
# mutate shared dicts without locking, and a few code paths reach module globals.
_MOTO_LOCK = threading.RLock()


@dataclass(frozen=True, kw_only=True)
class Quotas:
    """Cognito's request-rate quotas, in requests per second (None: unlimited).

    The defaults are Cognito's: UserUpdate 25, UserList 30, UserRead 120,
    UserPoolRead 15 (the quotas page of the Cognito developer guide).
    """

    user_update: float | None = 25.0
    user_list: float | None = 30.0
    user_read: float | None = 120.0
    user_pool_read: float | None = 15.0

    def __post_init__(self) -> None:
        for name, quota in vars(self).items():
            if quota is not None and not quota > 0:
                raise ValueError(f"{name} must be > 0 or None, not {quota}")

    def per_category(self) -> dict[str, float | None]:
        """Requests per second allowed per quota category (None: unlimited)."""
        return {
            "UserUpdate": self.user_update,
            "UserList": self.user_list,
            "UserRead": self.user_read,
            "UserPoolRead": self.user_pool_read,
        }


class _TokenBucket:
    """Allows ``rate`` requests/s on average with a burst of one second's worth."""

    def __init__(self, rate: float, *, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take one token if there is one; never blocks."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the pool sees it."""

    method: str
    path: str
    #: The X-Amz-Target header ("" when absent).
    target: str = ""
    body: bytes = b""

    @property
    def operation(self) -> str:
        return self.target.removeprefix(TARGET_PREFIX)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response; ``code`` is the error code, if it is an error."""

    status: int
    body: bytes
    code: str | None = None
    content_type: str = JSON_CONTENT_TYPE

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Reply:
        body = json.dumps({"__type": code, "message": message}).encode()
        return cls(status, body, code)

    @classmethod
    def json(
        cls, payload: Mapping[str, Any], *, content_type: str = JSON_CONTENT_TYPE
    ) -> Reply:
        return cls(200, json.dumps(payload).encode(), content_type=content_type)


class _CognitoError(Exception):
    """An error to answer the way Cognito would: HTTP status, code, message."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@contextlib.contextmanager
def _as_lookup_error() -> Iterator[None]:
    """Turns a missing pool or user into LookupError for in-process callers."""
    try:
        yield
    except _CognitoError as exc:
        raise LookupError(exc.message) from exc


@cache
def _cognito_operations() -> frozenset[str]:
    """The operation names of botocore's cognito-idp model: what Cognito serves."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("cognito-idp")
    return frozenset(model.operation_names)


#: An operation implemented here: (pool, params) -> (response, username written).
#: An operation answered here: its answer and the user it wrote (None: a read).
_Operation = Callable[
    ["EmulatedPool", dict[str, Any]], tuple[dict[str, Any], str | None]
]


class EmulatedPool:
    """An emulated Cognito user-pool endpoint on 127.0.0.1, throttled like Cognito.

    It serves from construction until `stop` (or the end of a ``with`` block).
    ``port`` 0 takes a free port; a port in use raises OSError. ``calls``
    counts requests per operation, ``writes`` the applied attribute writes per
    username, ``reads`` the UserRead requests (AdminGetUser, GetUser) let
    through its quota, ``throttled`` the requests answered
    TooManyRequestsException.
    """

    def __init__(
        self,
        *,
        quotas: Quotas = Quotas(),
        region: str = "us-east-1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        moto = _moto()
        self.quotas = quotas
        self.region = region
        self._moto = moto
        self._account = _new_account()
        _moto_backend(self._account, region)  # fails early on an unknown region
        # sub -> username per pool: runs keyed by sub must not scan every user.
        self._subs: dict[str, dict[str, str]] = {}
        # The pools stay readable after stop(), until this object is collected.
        weakref.finalize(
            self, _forget_pools, moto.backends, self._account, region, self._subs
        )
        self._buckets = {
            category: _TokenBucket(rate, clock=clock)
            for category, rate in quotas.per_category().items()
            if rate is not None
        }
        self._counters_lock = threading.Lock()
        self.writes: Counter[str] = Counter()
        self.reads = 0
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self._stopped = False
        self._server = _Server(self, port)
        host, bound = self._server.server_address[:2]
        self.port = int(bound)
        self.endpoint_url = f"http://{host!s}:{bound}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{bound}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread.

        The pools stay readable in process (`user_attributes`, ``writes``).
        """
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()

    @property
    def _backend(self) -> CognitoIdpBackend:
        # Looked up on every use: a moto reset replaces what the dict holds.
        return _moto_backend(self._account, self.region)

    # --- seeding and inspection (in process, no HTTP, no quota) -------------

    def create_pool(self, describe_output: Mapping[str, Any]) -> str:
        """Create a pool shaped like DescribeUserPool output; return its id.

        The id of the described pool is kept when it is free, so a sandbox run
        can use the same ``--user-pool-id`` as the real one.
        """
        described = describe_output.get("UserPool", describe_output)
        if not isinstance(described, Mapping) or not isinstance(
            described.get("SchemaAttributes", []), list
        ):
            raise SchemaError(
                "the pool schema is not DescribeUserPool output "
                '({"UserPool": {"SchemaAttributes": [...]}})'
            )
        schema = self._creation_schema(described.get("SchemaAttributes", []))
        config: dict[str, Any] = {k: described[k] for k in _POOL_KEYS if k in described}
        config["Schema"] = [
            {k: v for k, v in entry.items() if not k.endswith("Constraints")}
            for entry in schema
        ]
        with _MOTO_LOCK:
            backend = self._backend
            try:
                pool = backend.create_user_pool(
                    str(described.get("Name") or "sandbox"), config
                )
            except self._moto.http_exception as exc:
                raise SchemaError(f"cannot emulate this pool: {_message(exc)}") from exc
            for entry in schema:
                attribute = pool.schema_attributes[_described_name(entry)]
                _set_constraints(attribute, entry)
            wanted = described.get("Id")
            if isinstance(wanted, str) and wanted not in backend.user_pools:
                _keep_pool_id(backend, pool, wanted)
            self._subs[pool.id] = {}
            return str(pool.id)

    def _creation_schema(self, described: list[Any]) -> list[dict[str, Any]]:
        """CreateUserPool Schema for these attributes, plus missing standard ones."""
        standard_schema = _moto_standard_schema()
        schema: list[dict[str, Any]] = []
        seen: set[str] = set()
        for entry in described:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("Name"), str):
                raise SchemaError(f"schema attribute without a name: {entry!r}")
            name = entry["Name"]
            custom = name.startswith(("custom:", "dev:custom:"))
            if not custom and name not in standard_schema:
                continue  # e.g. "identities": set by federation, never written
            bare = name.removeprefix("dev:").removeprefix("custom:")
            created = {
                "Name": bare,
                "AttributeDataType": entry.get("AttributeDataType", "String"),
                "Mutable": bool(entry.get("Mutable", True)),
                "Required": bool(entry.get("Required", False)),
            }
            if custom:
                created["DeveloperOnlyAttribute"] = bool(
                    entry.get("DeveloperOnlyAttribute", name.startswith("dev:"))
                )
            for key in ("StringAttributeConstraints", "NumberAttributeConstraints"):
                if isinstance(entry.get(key), Mapping):
                    created[key] = entry[key]
            schema.append(created)
            seen.add(name)
        for name, standard in standard_schema.items():
            if name not in seen:
                schema.append({"Name": name, **standard})
        return schema

    def add_users(self, pool_id: str, users: Iterable[Mapping[str, str]]) -> None:
        """Create CONFIRMED users directly in the backend, sending no messages.

        Each mapping holds ``"username"`` and attribute name -> value (blank values
        are left out); a ``"sub"`` value becomes the user's sub.
        """
        with _MOTO_LOCK, _as_lookup_error():
            pool = self._pool(pool_id)
        with _MOTO_LOCK:
            backend = self._backend
            subs = self._subs.setdefault(pool_id, {})
            folded = _folds_case(pool)
            signs_in = pool.extended_config.get("UsernameAttributes") or []
            taken = {_compared(u.username, folded) for u in pool.users.values()}
            for number, row in enumerate(users, start=1):
                attributes = {k: v for k, v in row.items() if v not in (None, "")}
                username = attributes.pop("username", None)
                if username is None:
                    raise ConfigError(f"sandbox user {number} has no username")
                if _compared(username, folded) in taken:
                    raise ConfigError(f"sandbox user {username!r}: User already exists")
                taken.add(_compared(username, folded))
                sub = attributes.pop("sub", None)
                unknown = sorted(set(attributes) - set(pool.schema_attributes))
                if unknown:
                    raise ConfigError(
                        f"sandbox user {username!r}: not in the pool schema: "
                        + ", ".join(unknown)
                    )
                if signs_in:
                    user = self._add_sign_in_user(pool, username, attributes, sub)
                    subs[user.id] = user.username
                    continue
                try:
                    user = backend.admin_create_user(
                        pool_id,
                        username,
                        "SUPPRESS",
                        None,  # type: ignore[arg-type]  # moto: no password set
                        [{"Name": k, "Value": v} for k, v in attributes.items()],
                    )
                    backend.admin_confirm_sign_up(pool_id, user.username)
                except self._moto.http_exception as exc:
                    raise ConfigError(
                        f"sandbox user {username!r}: {_message(exc)}"
                    ) from exc
                if sub is not None:
                    _set_sub(user, sub)
                subs[user.id] = user.username

    @staticmethod
    def _add_sign_in_user(
        pool: CognitoIdpUserPool,
        value: str,
        attributes: dict[str, str],
        sub: str | None,
    ) -> CognitoIdpUser:
        """A user of a pool that signs in with email or phone, created by that value.

        As Cognito does: the value becomes the attribute it is (email, else
        phone_number) and the username is the sub, a UUID. Not moto's
        AdminCreateUser, which refuses emails its own pattern does not know
        (non-ASCII, a digit in the top-level domain) that Cognito takes.
        """
        signs_in = pool.extended_config.get("UsernameAttributes") or []
        formats = {"email": _EMAIL, "phone_number": _E164}
        kind = next((name for name in signs_in if formats[name].fullmatch(value)), None)
        if kind is None:
            raise ConfigError(
                f"sandbox user {value!r}: this pool signs in with "
                f"{' or '.join(signs_in)}, and {value!r} is neither"
            )
        folded = _folds_case(pool)
        for user in pool.users.values():
            held = user.attribute_lookup.get(kind)
            if held is not None and _compared(held, folded) == _compared(value, folded):
                raise ConfigError(f"sandbox user {value!r}: User already exists")
        return _create_confirmed_user(
            pool, sub or str(uuid.uuid4()), {**attributes, kind: value}
        )

    def seed(
        self,
        describe_output: Mapping[str, Any],
        rows: Iterable[Mapping[str, str | None]] = (),
        *,
        username_column: str = "username",
        token_column: str = "access_token",
    ) -> str:
        """Create the pool and its users from loosely shaped rows; return the pool id.

        Rows are e.g. the run's own input file: columns named like a schema
        attribute (and ``sub``) become attributes, other columns are ignored,
        rows without a username or repeating one are skipped, and a
        ``token_column`` value becomes an access token of that user.
        """
        pool_id = self.create_pool(describe_output)
        keep = self.schema_names(pool_id) | {"sub"}
        with _MOTO_LOCK:
            folded = _folds_case(self._pool(pool_id))
        users: list[dict[str, str]] = []
        tokens: list[tuple[str, str]] = []
        seen: set[str] = set()
        for row in rows:
            username = (row.get(username_column) or "").strip()
            key = _compared(username, folded)
            if not username or key in seen:
                continue
            seen.add(key)
            user = {k: v for k, v in row.items() if k in keep and v}
            users.append({**user, "username": username})
            token = row.get(token_column)
            if token:
                tokens.append((username, token))
        self.add_users(pool_id, users)
        for username, token in tokens:
            self.issue_access_token(pool_id, username, token)
        return pool_id

    def user_attributes(self, pool_id: str, username: str) -> dict[str, str]:
        """The user's current attributes (username, verified alias or sub).

        Raises LookupError when the pool or the user does not exist.
        """
        with _MOTO_LOCK, _as_lookup_error():
            user = self._find_user(self._pool(pool_id), username)
            return dict(user.attribute_lookup)

    def issue_access_token(
        self, pool_id: str, username: str, token: str | None = None
    ) -> str:
        """An access token UpdateUserAttributes accepts for this user.

        Without ``token`` a signed JWT is minted; with one, that exact string is
        registered (so fake tokens in an input file work in a sandbox run).
        Raises LookupError when the pool or the user does not exist.
        """
        with _MOTO_LOCK, _as_lookup_error():
            pool = self._pool(pool_id)
            user = self._find_user(pool, username)
            if token is None:
                return _mint_access_token(pool, user.username)
            _register_access_token(pool, user.username, token)
            return token

    def schema_names(self, pool_id: str) -> set[str]:
        """Attribute names in the pool's schema, with their custom prefixes."""
        with _MOTO_LOCK, _as_lookup_error():
            return set(self._pool(pool_id).schema_attributes)

    def counters(self) -> dict[str, Any]:
        """A consistent copy of ``calls``, ``writes``, ``reads`` and ``throttled``."""
        with self._counters_lock:
            return {
                "calls": dict(self.calls),
                "writes": dict(self.writes),
                "reads": self.reads,
                "throttled": self.throttled,
            }

    # --- request handling: the hooks a subclass may wrap -------------------------

    def handle(self, request: Request) -> Reply | None:
        """Answer one HTTP request; None closes the connection without a reply.

        A POST is counted in ``calls`` and passes its quota before `perform`.
        """
        if request.method != "POST":
            return Reply(
                404, b'{"message": "not found"}', content_type="application/json"
            )
        operation = request.operation
        with self._counters_lock:
            self.calls[operation] += 1
        category = CATEGORIES.get(operation, "")
        bucket = self._buckets.get(category)
        if bucket is not None and not bucket.try_acquire():
            with self._counters_lock:
                self.throttled += 1
            return Reply.error(400, "TooManyRequestsException", "Rate exceeded")
        if category == "UserRead":
            # Counted as Cognito's quota counts them: every read let through,
            # whether it finds its user or not.
            with self._counters_lock:
                self.reads += 1
        return self.perform(operation, request)

    def perform(self, operation: str, request: Request) -> Reply | None:
        """Answer a request within its quota: apply it, or ask moto."""
        try:
            params = json.loads(request.body or b"{}")
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return Reply.error(400, "SerializationException", "Malformed JSON body")
        own = self._OWN_OPERATIONS.get(operation)
        # Answered here, not by moto: moto's answer to an operation Cognito
        # lacks has changed between releases (a 400 JSON error, then a bare 404).
        if own is None and operation not in _cognito_operations():
            return Reply.error(
                400, "UnknownOperationException", f"Unknown operation {request.target}"
            )
        with _MOTO_LOCK:
            try:
                if own is None:
                    body = request.body
                    # Reads find their user exactly as the writes do.
                    if operation == "GetUser":
                        self._token_user(_required(params, "AccessToken"))
                    return _moto_answer(
                        self._account, self.region, request.target, body
                    )
                payload, written = own(self, params)
            except _CognitoError as exc:
                return Reply.error(exc.status, exc.code, exc.message)
            except self._moto.http_exception as exc:
                return Reply.error(
                    int(getattr(exc, "code", 400) or 400),
                    str(getattr(exc, "error_type", "InvalidParameterException")),
                    _message(exc),
                )
            except NotImplementedError:
                return Reply.error(
                    400,
                    "UnknownOperationException",
                    f"Unknown operation {request.target}",
                )
            except Exception as exc:  # a moto bug must not kill the handler
                log.exception("sandbox: %s failed", operation)
                return Reply.error(500, "InternalErrorException", repr(exc))
        if written is not None:
            with self._counters_lock:
                self.writes[written] += 1
        return Reply.json(payload)

    # --- the operations implemented here -------------------------------------

    def _admin_update(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        pool = self._pool(_required(params, "UserPoolId"))
        user = self._find_user(pool, _required(params, "Username"))
        self._update(pool, user, _required(params, "UserAttributes"), admin=True)
        return {}, user.username

    def _token_update(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        pool, user = self._token_user(_required(params, "AccessToken"))
        details = self._update(
            pool, user, _required(params, "UserAttributes"), admin=False
        )
        return ({"CodeDeliveryDetailsList": details} if details else {}), user.username

    def _admin_delete(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        pool = self._pool(_required(params, "UserPoolId"))
        user = self._find_user(pool, _required(params, "Username"))
        self._delete(pool, user, _required(params, "UserAttributeNames"), admin=True)
        return {}, user.username

    def _token_delete(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        pool, user = self._token_user(_required(params, "AccessToken"))
        self._delete(pool, user, _required(params, "UserAttributeNames"), admin=False)
        return {}, user.username

    def _admin_get(self, params: dict[str, Any]) -> tuple[dict[str, Any], None]:
        # Answered from moto's user here, not through moto's HTTP layer: the
        # read before every write doubles a job's calls, and this is twice as
        # fast. The user is found exactly as the writes find it.
        pool = self._pool(_required(params, "UserPoolId"))
        user = self._find_user(pool, _required(params, "Username"))
        answer = user.to_json(extended=True, attributes_key="UserAttributes")
        # Times as the JSON protocol sends them: seconds since the epoch; moto's
        # UserPoolId is not part of Cognito's answer.
        return {
            key: value.timestamp() if isinstance(value, datetime) else value
            for key, value in answer.items()
            if key != "UserPoolId"
        }, None

    _OWN_OPERATIONS: ClassVar[dict[str, _Operation]] = {
        "AdminGetUser": _admin_get,
        "AdminUpdateUserAttributes": _admin_update,
        "UpdateUserAttributes": _token_update,
        "AdminDeleteUserAttributes": _admin_delete,
        "DeleteUserAttributes": _token_delete,
    }

    def _pool(self, pool_id: str) -> CognitoIdpUserPool:
        pool = self._backend.user_pools.get(pool_id)
        if pool is None:
            raise _CognitoError(
                "ResourceNotFoundException", f"User pool {pool_id} does not exist."
            )
        return pool

    def _find_user(self, pool: CognitoIdpUserPool, name: str) -> CognitoIdpUser:
        """The user a Username parameter names: username, sign-in value, alias or sub.

        Every operation that takes a Username resolves it here, reads
        (AdminGetUser) as writes, so a read before a write finds the same user.
        """
        user = pool.users.get(name)
        if user is not None:
            return user
        subs = self._subs.setdefault(pool.id, {})
        if name in subs and subs[name] in pool.users:
            return pool.users[subs[name]]
        config = pool.extended_config
        folded = _folds_case(pool)
        # Sign-in attributes (UsernameAttributes) and a preferred_username alias
        # always identify their user; email and phone aliases only once verified.
        configured = set(config.get("AliasAttributes") or [])
        signs_in = set(config.get("UsernameAttributes") or [])
        signs_in |= configured & {"preferred_username"}
        aliases = configured | signs_in
        key = _compared(name, folded)
        for candidate in pool.users.values():
            if candidate.id == name:
                subs[name] = candidate.username
                return candidate
            if folded and _compared(candidate.username, folded) == key:
                return candidate
            for alias in aliases:
                value = candidate.attribute_lookup.get(alias)
                if value is None or _compared(value, folded) != key:
                    continue
                verified = candidate.attribute_lookup.get(f"{alias}_verified")
                if alias in signs_in or _is_true(verified):
                    return candidate
        raise _CognitoError("UserNotFoundException", "User does not exist.")

    def _token_user(self, token: str) -> tuple[CognitoIdpUserPool, CognitoIdpUser]:
        for pool in self._backend.user_pools.values():
            owner = pool.access_tokens.get(token)
            if owner is not None:
                user = pool.users.get(owner[1])
                if user is None:
                    raise _CognitoError("UserNotFoundException", "User does not exist.")
                if not user.enabled:
                    raise _CognitoError("NotAuthorizedException", "User is disabled.")
                return pool, user
        raise _CognitoError("NotAuthorizedException", "Invalid Access Token")

    def _update(
        self,
        pool: CognitoIdpUserPool,
        user: CognitoIdpUser,
        attributes: Any,
        *,
        admin: bool,
    ) -> list[dict[str, str]]:
        """Apply an attribute update as Cognito would; return code deliveries."""
        if not isinstance(attributes, list):
            raise _CognitoError("InvalidParameterException", "UserAttributes is a list")
        sets: dict[str, str] = {}
        deletes: list[str] = []
        problems: list[str] = []
        for index, item in enumerate(attributes, start=1):
            name = str(item.get("Name", "")) if isinstance(item, dict) else ""
            value = item.get("Value") if isinstance(item, dict) else None
            _check_lengths(index, name, value)
            attribute = self._writable(pool, name, admin=admin, problems=problems)
            if attribute is None:
                continue
            if value is None or value == "":
                if attribute.required:
                    problems.append(f"user.{name}: Required attribute cannot be blank.")
                else:
                    deletes.append(name)
                continue
            problem = _value_problem(name, str(value), attribute)
            if problem:
                problems.append(problem)
            else:
                sets[name] = str(value)
        if problems:
            raise _CognitoError("InvalidParameterException", _lines(problems))
        deliveries = self._verification(pool, user, sets)
        flat = dict(user.attribute_lookup)
        flat.update(sets)
        for name in deletes:
            flat.pop(name, None)
        _replace_attributes(user, flat)
        return deliveries

    def _delete(
        self,
        pool: CognitoIdpUserPool,
        user: CognitoIdpUser,
        names: Any,
        *,
        admin: bool,
    ) -> None:
        if not isinstance(names, list):
            raise _CognitoError(
                "InvalidParameterException", "UserAttributeNames is a list"
            )
        problems: list[str] = []
        for index, name in enumerate(names, start=1):
            _check_lengths(index, str(name), None)
            attribute = self._writable(pool, str(name), admin=admin, problems=problems)
            if attribute is not None and attribute.required:
                problems.append(f"user.{name}: Required attribute cannot be deleted.")
        if problems:
            raise _CognitoError("InvalidParameterException", _lines(problems))
        removed = set(names)
        flat = {k: v for k, v in user.attribute_lookup.items() if k not in removed}
        _replace_attributes(user, flat)

    @staticmethod
    def _writable(
        pool: CognitoIdpUserPool, name: str, *, admin: bool, problems: list[str]
    ) -> CognitoIdpUserPoolAttribute | None:
        """The schema attribute ``name`` if this call may write it, else None."""
        attribute = pool.schema_attributes.get(name)
        if attribute is None:
            problems.append(f"user.{name}: Attribute does not exist in the schema.")
            return None
        if attribute.developer_only and not admin:
            raise _CognitoError(
                "NotAuthorizedException",
                "A client attempted to write unauthorized attribute",
            )
        if not attribute.mutable:
            problems.append(f"user.{name}: Attribute cannot be updated.")
            return None
        return attribute

    def _verification(
        self, pool: CognitoIdpUserPool, user: CognitoIdpUser, sets: dict[str, str]
    ) -> list[dict[str, str]]:
        """Email/phone side effects; edits ``sets``; returns code deliveries."""
        config = pool.extended_config
        auto = set(config.get("AutoVerifiedAttributes", []))
        keep_old = set(
            config.get("UserAttributeUpdateSettings", {}).get(
                "AttributesRequireVerificationBeforeUpdate", []
            )
        )
        deliveries: list[dict[str, str]] = []
        for name, flag in _VERIFIABLE:
            if name not in sets:
                continue
            if sets[name] == user.attribute_lookup.get(name):
                continue
            verified = _is_true(sets.get(flag))
            self._claim_alias(pool, user, name, sets[name], verified=verified)
            if verified:
                continue
            if name in auto:
                deliveries.append(_delivery(name, sets[name]))
            if name in keep_old:
                del sets[name]  # pending until the user verifies the new value
            else:
                sets.setdefault(flag, "false")
        return deliveries

    @staticmethod
    def _claim_alias(
        pool: CognitoIdpUserPool,
        user: CognitoIdpUser,
        name: str,
        value: str,
        *,
        verified: bool,
    ) -> None:
        """Sign-in values are unique (refused), verified aliases move (as reported)."""
        config = pool.extended_config
        signs_in = name in config.get("UsernameAttributes", [])
        moves = verified and name in config.get("AliasAttributes", [])
        if not (signs_in or moves):
            return
        flag = f"{name}_verified"
        for other in pool.users.values():
            if other is user or other.attribute_lookup.get(name) != value:
                continue
            if signs_in:
                raise _CognitoError(
                    "AliasExistsException",
                    "An account with the given email already exists."
                    if name == "email"
                    else "An account with the given phone_number already exists.",
                )
            if _is_true(other.attribute_lookup.get(flag)):
                other.update_attributes([{"Name": flag, "Value": "false"}])


def _required(params: Mapping[str, Any], key: str) -> Any:
    value = params.get(key)
    if value is None:
        member = key[0].lower() + key[1:]
        raise _CognitoError(
            "InvalidParameterException",
            f"1 validation error detected: Value null at '{member}' failed to "
            "satisfy constraint: Member must not be null",
        )
    return value


def _check_lengths(index: int, name: str, value: Any) -> None:
    """The model's limits that botocore leaves to the server (name 32, value 2048)."""
    if not 1 <= len(name) <= MAX_ATTRIBUTE_NAME:
        raise _CognitoError(
            "InvalidParameterException",
            "1 validation error detected: Value at "
            f"'userAttributes.{index}.member.name' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_ATTRIBUTE_NAME}",
        )
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_VALUE:
        raise _CognitoError(
            "InvalidParameterException",
            "1 validation error detected: Value at "
            f"'userAttributes.{index}.member.value' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_ATTRIBUTE_VALUE}",
        )


def _value_problem(
    name: str, value: str, attribute: CognitoIdpUserPoolAttribute
) -> str | None:
    """Why ``value`` breaks the schema attribute's type or constraints, or None."""
    if name == "email" and not _EMAIL.fullmatch(value):
        return "Invalid email address format."
    if name == "phone_number" and not _E164.fullmatch(value):
        return "Invalid phone number format."
    kind = attribute.data_type
    if kind == "Boolean" and value.lower() not in ("true", "false"):
        return f"user.{name}: Attribute value must be true or false."
    if kind == "String":
        limits = attribute.string_constraints or {}
        low = int(limits.get("MinLength") or 0)
        high = int(limits.get("MaxLength") or MAX_ATTRIBUTE_VALUE)
        if not low <= len(value) <= high:
            return (
                f"user.{name}: String length must be between {low} and {high} "
                "characters."
            )
    if kind == "Number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            return f"user.{name}: Attribute value must be a number."
        limits = attribute.number_constraints or {}
        low_text, high_text = limits.get("MinValue"), limits.get("MaxValue")
        if (low_text not in (None, "") and number < Decimal(low_text)) or (
            high_text not in (None, "") and number > Decimal(high_text)
        ):
            return (
                f"user.{name}: Number must be between {low_text or '-inf'} and "
                f"{high_text or 'inf'}."
            )
    return None


def _lines(problems: Sequence[str]) -> str:
    # Cognito ends every problem line of this message with a newline.
    return "".join(f"{problem}\n" for problem in problems)


def _compared(value: str, folded: bool) -> str:
    """A username or alias value as the pool compares it.

    Lower-cased like the run's own key comparison (validation.comparable_key),
    so the sandbox and the run agree on which keys name one user.
    """
    return value.lower() if folded else value


def _folds_case(pool: CognitoIdpUserPool) -> bool:
    """Whether usernames and aliases match case-insensitively in this pool."""
    config = pool.extended_config.get("UsernameConfiguration") or {}
    # CreateUserPool's default (no UsernameConfiguration) is case-sensitive.
    return not config.get("CaseSensitive", True)


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def _delivery(name: str, value: str) -> dict[str, str]:
    """CodeDeliveryDetails as Cognito masks them: a***@e***, +*******1234."""
    if name == "email":
        local, _, domain = value.partition("@")
        return {
            "Destination": f"{local[:1]}***@{domain[:1]}***",
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }
    return {
        "Destination": "+" + "*" * max(0, len(value) - 5) + value[-4:],
        "DeliveryMedium": "SMS",
        "AttributeName": "phone_number",
    }


def _described_name(entry: Mapping[str, Any]) -> str:
    name = str(entry["Name"])
    if "DeveloperOnlyAttribute" not in entry:
        return name
    prefix = "dev:custom:" if entry["DeveloperOnlyAttribute"] else "custom:"
    return prefix + name


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


# --- moto adapter -----------------------------------------------------------------
# Everything this module takes from moto, apart from reading the fields of its
# models, is in this section. Each function that relies on a moto internal is
# named by one test in tests/functional/test_sandbox.py (test_moto_internal_*).


@dataclass(frozen=True)
class _Moto:
    """The pieces of moto the sandbox uses, imported on first need."""

    #: moto's cognito-idp BackendDict: account id -> region -> backend.
    backends: Any
    #: moto's botocore before-send hook, switched on for this module's calls only.
    stubber: Any
    standard_schema: Mapping[str, Mapping[str, Any]]
    http_exception: type[Exception]


@cache
def _moto() -> _Moto:
    try:
        from moto.backends import get_backend
        from moto.cognitoidp.models import CognitoIdpUserPoolAttribute
        from moto.core.botocore_stubber import BotocoreStubber
        from werkzeug.exceptions import HTTPException
    except ImportError as exc:
        raise ConfigError(SANDBOX_INSTALL_HINT) from exc
    # A stubber of our own, not mock_aws's global one: enabling it affects no
    # botocore client, since it is registered on none.
    stubber = BotocoreStubber()
    stubber.enabled = True
    return _Moto(
        backends=get_backend("cognito-idp"),
        stubber=stubber,
        standard_schema=CognitoIdpUserPoolAttribute.STANDARD_SCHEMA,
        http_exception=HTTPException,
    )


_ACCOUNTS = itertools.count(1)


def _new_account() -> str:
    """A moto account id for one EmulatedPool (moto prefers MOTO_ACCOUNT_ID)."""
    # 12 digits, far from moto's default 123456789012 that mock_aws users share.
    return os.environ.get("MOTO_ACCOUNT_ID") or f"{900_000_000_000 + next(_ACCOUNTS)}"


def _moto_backend(account: str, region: str) -> CognitoIdpBackend:
    """moto's cognito-idp backend for this account and region, as mock_aws uses it."""
    try:
        backend: CognitoIdpBackend = _moto().backends[account][region]
    except KeyError:
        raise ConfigError(f"unknown AWS region {region!r}") from None
    return backend


def _forget_pools(
    backends: Any, account: str, region: str, pool_ids: Iterable[str]
) -> None:
    """Drop an EmulatedPool's pools from moto's backends, creating nothing."""
    with _MOTO_LOCK:
        # dict.get, unlike BackendDict's [], creates no account and no region.
        regions = dict.get(backends, account)
        backend = None if regions is None else dict.get(regions, region)
        if backend is not None:
            for pool_id in list(pool_ids):
                backend.user_pools.pop(pool_id, None)


def _moto_answer(account: str, region: str, target: str, body: bytes) -> Reply:
    """moto's own answer to a JSON-protocol request, through its botocore hook.

    Internal: ``BotocoreStubber`` (moto.core.botocore_stubber), the before-send
    handler mock_aws installs. The request is never sent anywhere: the hook
    answers it in process, and the URL only selects moto's service and region.
    """
    from botocore.awsrequest import AWSPreparedRequest
    from botocore.compat import HTTPHeaders

    headers = {
        "X-Amz-Target": target,
        "Content-Type": JSON_CONTENT_TYPE,
        "x-moto-account-id": account,
    }
    request = AWSPreparedRequest(
        method="POST",
        url=f"https://cognito-idp.{region}.amazonaws.com/",
        headers=HTTPHeaders.from_dict(headers),
        body=body,
        stream_output=False,
    )
    operation = target.removeprefix(TARGET_PREFIX)
    response = _moto().stubber(f"before-send.cognito-idp.{operation}", request)
    if response is None:  # moto did not recognise the URL; never sent on
        return Reply.error(500, "InternalErrorException", "moto did not answer")
    return Reply(int(response.status_code), bytes(response.content) or b"{}")


def _moto_standard_schema() -> Mapping[str, Mapping[str, Any]]:
    """Cognito's standard attributes as moto defines them.

    Internal: ``CognitoIdpUserPoolAttribute.STANDARD_SCHEMA``.
    """
    return _moto().standard_schema


def _keep_pool_id(
    backend: CognitoIdpBackend, pool: CognitoIdpUserPool, wanted: str
) -> None:
    """Give a new pool the id it has in the real account.

    Internal: ``CognitoIdpUserPool.id`` and ``.arn``, ``user_pools``' keys.
    """
    del backend.user_pools[pool.id]
    pool.arn = pool.arn.replace(pool.id, wanted)
    pool.id = wanted
    backend.user_pools[wanted] = pool


def _set_constraints(
    attribute: CognitoIdpUserPoolAttribute, entry: Mapping[str, Any]
) -> None:
    """Copy the described String/Number constraints onto the schema attribute.

    Internal: ``CognitoIdpUserPoolAttribute.string_constraints`` and
    ``.number_constraints``.
    """
    for key, field in (
        ("StringAttributeConstraints", "string_constraints"),
        ("NumberAttributeConstraints", "number_constraints"),
    ):
        given = entry.get(key)
        setattr(attribute, field, dict(given) if given else None)


def _set_sub(user: CognitoIdpUser, sub: str) -> None:
    """Internal: ``CognitoIdpUser.id`` is the sub moto reports."""
    user.id = sub
    user.update_attributes([{"Name": "sub", "Value": sub}])


def _create_confirmed_user(
    pool: CognitoIdpUserPool, username: str, attributes: Mapping[str, str]
) -> CognitoIdpUser:
    """A CONFIRMED user named ``username`` whose sub is ``username``.

    Internal: the ``CognitoIdpUser`` model, ``UserStatus`` and ``pool.users``:
    moto's AdminCreateUser checks a sign-in value against its own email
    pattern, and names the user by a UUID of its choosing.
    """
    from moto.cognitoidp.models import CognitoIdpUser, UserStatus

    user = CognitoIdpUser(
        pool.id,
        username,
        None,
        UserStatus.CONFIRMED,
        [{"Name": k, "Value": v} for k, v in attributes.items()],
    )
    _set_sub(user, username)
    pool.users[user.username] = user
    return user


def _replace_attributes(user: CognitoIdpUser, flat: dict[str, str]) -> None:
    """Internal: ``CognitoIdpUser.attributes``, emptied before an update.

    moto's update_attributes merges into the current list; emptying it first
    makes it a replace that still maintains moto's lookup and modified date.
    """
    user.attributes = []
    user.update_attributes([{"Name": k, "Value": v} for k, v in flat.items()])


def _mint_access_token(pool: CognitoIdpUserPool, username: str) -> str:
    """A signed access token of the user, as a sign-in would return it.

    Internal: ``CognitoIdpUserPool.create_access_token``.
    """
    token, _expires_in = pool.create_access_token(
        SANDBOX_CLIENT_ID, username, str(uuid.uuid4())
    )
    return str(token)


def _register_access_token(pool: CognitoIdpUserPool, username: str, token: str) -> None:
    """Make ``token`` a valid access token of the user.

    Internal: ``CognitoIdpUserPool.access_tokens`` (token -> (client, username)).
    """
    pool.access_tokens[token] = (SANDBOX_CLIENT_ID, username)


# --- HTTP -----------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Loopback-only HTTP server that can close idle keep-alive connections."""

    daemon_threads = True

    def __init__(self, pool: EmulatedPool, port: int) -> None:
        self.pool = pool
        # ThreadingMixIn does not track daemon threads, so server_close() would
        # not join them; the server keeps its own list.
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        self._handlers_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)  # a TCP server
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"sandbox-connection-{client_address[1]}",
            daemon=True,
        )
        with self._handlers_lock:
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def shutdown_request(
        self, request: socket.socket | tuple[bytes, socket.socket]
    ) -> None:
        if isinstance(request, socket.socket):
            with self._handlers_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close every connection and wait for its handler thread to finish."""
        with self._handlers_lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for connection in connections:
            # Wakes a handler blocked reading a kept-alive connection.
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (or stop() closed the connection)
        log.error("sandbox: request from %s failed", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cognito-sandbox"
    # Headers and body go out as two writes; with Nagle's algorithm and the
    # client's delayed ACK every kept-alive request would wait ~40 ms.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target") or ""
        self._answer(Request("POST", self.path, target, body))

    def do_GET(self) -> None:
        self._answer(Request("GET", self.path))

    def _answer(self, request: Request) -> None:
        reply = cast(_Server, self.server).pool.handle(request)
        if reply is None:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)


# --- python -m migrate.sandbox serve ----------------------------------------------


def read_users(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a users CSV (UTF-8) or Parquet file, values as strings, nulls left out.

    Raises ConfigError when the file cannot be read, naming the file.
    """
    if path.suffix.lower() == ".parquet":
        import polars as pl

        try:
            frame = pl.read_parquet(path).select(pl.all().cast(pl.String))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        except pl.exceptions.PolarsError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"{path}: not a readable Parquet file ({first})"
            ) from None
        for row in frame.iter_rows(named=True):
            yield {k: v for k, v in row.items() if v is not None}
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        # Decoded whole, so that an error's offset is the file's.
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (line {line}: byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8"
        ) from None
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            yield {k: v for k, v in row.items() if k is not None and v is not None}
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a readable CSV file ({exc})") from None


def _read_schema(path: Path) -> dict[str, Any]:
    """The DescribeUserPool output in ``path``; ConfigError names what is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SchemaError(
            f"{path}: no such file; save the pool schema with `aws cognito-idp "
            f"describe-user-pool --user-pool-id ID > {path}`"
        ) from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not UTF-8 text, so not a JSON schema") from None
    except OSError as exc:
        raise SchemaError(f"{path}: {exc.strerror or exc}") from None
    try:
        described = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{path}: not JSON ({exc})") from None
    if not isinstance(described, dict):
        raise SchemaError(f"{path}: not DescribeUserPool output")
    return described


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {port}")
    return port


class ServeCommand:
    """``serve``: one seeded pool on 127.0.0.1 until Ctrl-C or SIGTERM.

    A subclass adds options (`add_arguments`) and builds another pool
    (`make_pool`); tests/support/endpoint.py does, for fault injection.
    """

    prog = "python -m migrate.sandbox"
    description = "Serve an emulated Cognito user pool on 127.0.0.1."

    def add_arguments(self, serve: argparse.ArgumentParser) -> None:
        """The options of ``serve``."""
        serve.add_argument(
            "--schema",
            type=Path,
            required=True,
            metavar="FILE",
            help="the pool's DescribeUserPool output (JSON); its Id is kept",
        )
        serve.add_argument(
            "--users",
            type=Path,
            metavar="FILE",
            help="users to create: CSV (UTF-8) or Parquet with a username column; "
            "columns named like schema attributes become attributes, a sub column "
            "their sub, an access_token column a token UpdateUserAttributes takes",
        )
        serve.add_argument(
            "--port",
            type=_port,
            default=0,
            metavar="N",
            help="port on 127.0.0.1 (default: a free one)",
        )
        serve.add_argument(
            "--port-file",
            type=Path,
            metavar="FILE",
            help='written with "ENDPOINT_URL POOL_ID" once serving',
        )
        serve.add_argument(
            "--region", default="us-east-1", help="(default: %(default)s)"
        )

    def parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        commands = parser.add_subparsers(dest="command", required=True)
        serve = commands.add_parser(
            "serve",
            help="serve one pool until Ctrl-C or SIGTERM",
            description=self.description + " Any credentials are accepted.",
        )
        self.add_arguments(serve)
        return parser

    def make_pool(self, args: argparse.Namespace) -> EmulatedPool:
        return EmulatedPool(region=args.region, port=args.port)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse ``argv`` and serve; returns the exit status (2: bad options)."""
        args = self.parser().parse_args(argv)
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {
            signum: signal.signal(signum, _stop)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.serve(args, stop, sys.stdout)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def serve(
        self, args: argparse.Namespace, stop: threading.Event, out: TextIO
    ) -> None:
        """Check the files, serve until ``stop`` is set; ConfigError if unusable."""
        port_file: Path | None = args.port_file
        if port_file is not None and not port_file.parent.is_dir():
            raise ConfigError(
                f"--port-file {port_file}: folder {port_file.parent} does not exist"
            )
        described = _read_schema(args.schema)
        rows = list(read_users(args.users)) if args.users is not None else []
        try:
            pool = self.make_pool(args)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {args.port} on 127.0.0.1 is in use: choose another "
                    "--port, or leave --port out to take a free one"
                ) from None
            raise ConfigError(f"cannot serve on 127.0.0.1:{args.port}: {exc}") from None
        with pool:
            pool_id = pool.seed(described, rows)
            if port_file is not None:
                _write_port_file(port_file, f"{pool.endpoint_url} {pool_id}\n")
            print(f"endpoint: {pool.endpoint_url}", file=out)
            print(f"user pool: {pool_id}", file=out)
            example = shlex.join(
                [
                    *("cognito-migrate", "run", "INPUT", "-m", "MAPPING"),
                    *("--endpoint-url", pool.endpoint_url),
                    *("--user-pool-id", pool_id, "--region", pool.region),
                ]
            )
            print(f"example: {EXAMPLE_CREDENTIALS} {example}", file=out)
            print(
                "Serving until Ctrl-C or SIGTERM; any credentials are accepted.",
                file=out,
                flush=True,
            )
            while not stop.wait(0.2):
                pass


def _write_port_file(path: Path, text: str) -> None:
    try:
        write_private(path, lambda handle: handle.write(text.encode()))
    except OSError as exc:
        raise ConfigError(f"--port-file {path}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m migrate.sandbox``; returns the exit status."""
    return ServeCommand().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())


def sandbox_users(job: Job) -> list[dict[str, str]]:
    """Users to seed an emulated pool with, so that every valid key in INPUT exists.

    Attributes the job deletes get a placeholder value, so the deletes have
    something to remove; in token mode each user gets the row's access token.
    """
    import polars as pl

    user_as = job.mapping.user_as
    if user_as == "sub":
        raise ConfigError(
            "--sandbox cannot seed users by sub (the emulated pool assigns its own "
            "subs); use a mapping keyed by username, email or phone_number"
        )
    from migrate.validation import E164_PATTERN, EMAIL_PATTERN, normalised_key

    token = job.mapping.token_column
    columns = [pl.col(job.mapping.user_column).str.strip_chars().alias(USER)]
    if token is not None:
        columns.append(pl.col(token).str.strip_chars().alias(TOKEN))
    # One user per key as the pool compares keys: two rows naming one user in
    # different case are one user (the run reports them as duplicates), not
    # two users the pool would refuse to create.
    same_user = normalised_key(user_as, job.schema.case_sensitive)
    usable = pl.col(USER).is_not_null() & (pl.col(USER) != "")
    # A key that is no email (or phone number) is an invalid row, never sent:
    # no user for it, and none the pool would refuse to create.
    form = {"email": EMAIL_PATTERN, "phone_number": E164_PATTERN}.get(user_as)
    if form is not None:
        usable &= pl.col(USER).str.contains(form)
    frame = job.source.collect(
        job.source.scan()
        .select(columns)
        .filter(usable)
        .unique(subset=same_user, keep="last", maintain_order=True)
    )
    extra = {name: "legacy" for name in job.mapping.delete}
    verified = f"{user_as}_verified"
    # A pool that signs in with email or phone (UsernameAttributes) makes its
    # own usernames: its users are created by that email or phone.
    signs_in_with = job.schema.username_attributes
    if user_as == "username" and signs_in_with:
        raise ConfigError(
            f"this pool signs users in with {' or '.join(signs_in_with)} "
            "(UsernameAttributes), so its usernames are generated ids: key the "
            f'mapping by {signs_in_with[0]} (as = "{signs_in_with[0]}") or by sub'
        )
    users: list[dict[str, str]] = []
    for index, rec in enumerate(frame.iter_rows(named=True)):
        user = {"username": rec[USER], **extra}
        if user_as != "username":
            user = {
                "username": (
                    rec[USER] if user_as in signs_in_with else f"user-{index:07d}"
                ),
                user_as: rec[USER],
                verified: "true",
            }
            user.update(extra)
        if rec.get(TOKEN):
            user["access_token"] = rec[TOKEN]
        users.append(user)
    return users
