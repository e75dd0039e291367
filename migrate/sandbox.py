"""The embedded, emulated Cognito user pool behind ``run --sandbox`` and the tests.

`EmulatedPool` serves the Cognito user pools JSON protocol (``POST /``,
``X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>``,
``application/x-amz-json-1.1``) on ``127.0.0.1`` over moto's cognito-idp backend,
so a real boto3 client pointed at ``endpoint_url`` works against it with fake
credentials. Nothing leaves the machine: the backend is a private moto
``CognitoIdpBackend`` (not moto's global one, so ``mock_aws`` resets elsewhere in
the process never touch it), requests are not signature-checked, and no
credentials or environment variables are read or changed.

How requests are served:

- The attribute-write operations (AdminUpdateUserAttributes,
  AdminDeleteUserAttributes, UpdateUserAttributes, DeleteUserAttributes) are
  implemented here on moto's user objects, because moto's versions differ from
  Cognito where this tool cares (below). AdminGetUser is resolved here (aliases,
  sub) and then answered by moto.
- Every other operation (DescribeUserPool, ListUsers, CreateUserPoolClient,
  AdminInitiateAuth, ...) goes to moto's own ``CognitoIdpResponse``, bound to the
  private backend, and is serialised by moto from botocore's service model.
- Errors come back as Cognito sends them: HTTP 400 (500 for
  InternalErrorException) with ``{"__type": "<Code>", "message": "..."}``.
- One process-wide lock serialises every call into moto, which is not
  thread-safe; latency is slept outside it, so slow requests overlap.

Faults (`Faults`) are injected before moto sees a request: latency on every
request; Cognito's request-rate quotas as token buckets (refill ``quota`` per
second, burst = one second's worth, so at most ``2 * quota`` successes fit in any
one-second window) for the UserUpdate, UserList, UserRead and UserPoolRead
categories, answering HTTP 400 TooManyRequestsException "Rate exceeded"; and, for
the four write operations only, HTTP 500 InternalErrorException before the write
and connections closed without a response, half before the write is applied and
half after it (the ambiguous case a real network has).

Where the emulation differs from Cognito (moto 5.2.1 plus this module):

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
  operations accept the username (case-insensitively when
  ``UsernameConfiguration.CaseSensitive`` is false), a verified alias, or the sub.
- Error messages for schema violations follow Cognito's ``user.<name>: ...`` form
  for unknown and immutable attributes; the wording for the other checks is this
  module's own (the codes are Cognito's).
- Not emulated: the per-user limit of about 10 writes per second, Lambda
  triggers (``ClientMetadata`` is accepted and ignored; ``LambdaConfig`` is not
  copied), sending messages, app-client attribute write permissions, token expiry
  (tokens stay valid until ``GlobalSignOut``), IAM authorisation and request
  signatures, ListUsers' eventual consistency and ``\\"`` escapes in its Filter.
  ForgotPassword, ConfirmForgotPassword and ChangePassword reach moto's global
  backend and do not see sandbox pools.
- Users seeded with `EmulatedPool.add_users` are CONFIRMED, bypassing
  AdminCreateUser's invitation flow. ``writes`` counts per real username (a UUID
  in UsernameAttributes pools), whatever key the request named the user by.

Process-wide side effect: the first `EmulatedPool` makes moto's cognito-idp models
import their bundled RSA signing key once instead of once per pool (0.15-0.3 s
each); the key, and so every token, is the same as before.

moto is an optional extra (``pip install 'cognito-bulk-migrate[sandbox]'``): it is
imported only when an `EmulatedPool` is built, and its absence is a ConfigError.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import json
import logging
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from migrate.errors import ConfigError, SchemaError
from migrate.records import MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE

if TYPE_CHECKING:
    from moto.cognitoidp.models import (
        CognitoIdpBackend,
        CognitoIdpUser,
        CognitoIdpUserPool,
        CognitoIdpUserPoolAttribute,
    )

__all__ = ["SANDBOX_INSTALL_HINT", "EmulatedPool", "Faults", "main", "read_users"]

log = logging.getLogger(__name__)

SANDBOX_INSTALL_HINT = (
    "--sandbox needs the emulated pool: pip install 'cognito-bulk-migrate[sandbox]'"
)

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
#: moto keys backends by account; the sandbox owns its backend, so any will do.
ACCOUNT_ID = "123456789012"
#: Access tokens issued by the sandbox name this app client.
SANDBOX_CLIENT_ID = "sandbox"

#: Operations that write user attributes: the UserUpdate quota category, and the
#: only ones that error_rate / drop_rate apply to.
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
class Faults:
    """Faults the emulated pool injects: latency, quotas, errors, dropped connections.

    Quotas are token buckets: ``quota`` tokens per second, burst ``quota`` (one
    second's worth), one token per request, throttled requests take none. ``None``
    means unlimited. ``error_rate`` and ``drop_rate`` apply to write operations only.
    """

    latency: float = 0.0
    quota: float | None = 25.0
    list_quota: float | None = 30.0
    read_quota: float | None = 120.0
    pool_read_quota: float | None = 15.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, not {self.latency}")
        for name in ("error_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        for name in ("quota", "list_quota", "read_quota", "pool_read_quota"):
            quota = getattr(self, name)
            if quota is not None and quota <= 0:
                raise ValueError(f"{name} must be > 0 or None, not {quota}")

    def quotas(self) -> dict[str, float | None]:
        """Requests per second allowed per quota category (None: unlimited)."""
        return {
            "UserUpdate": self.quota,
            "UserList": self.list_quota,
            "UserRead": self.read_quota,
            "UserPoolRead": self.pool_read_quota,
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
class _Reply:
    status: int
    body: bytes


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


def _error_reply(status: int, code: str, message: str) -> _Reply:
    body = json.dumps({"__type": code, "message": message}).encode()
    return _Reply(status, body)


def _json_reply(payload: Mapping[str, Any]) -> _Reply:
    return _Reply(200, json.dumps(payload).encode())


@dataclass(frozen=True)
class _Moto:
    """The pieces of moto the sandbox uses, imported on first need."""

    backend_class: Any
    responses_class: Any
    confirmed: Any
    standard_schema: Mapping[str, Mapping[str, Any]]
    http_exception: type[Exception]


class _KeyCachingRSAKey:
    """``joserfc.jwk.RSAKey`` whose ``import_key`` remembers the keys it imported."""

    def __init__(self, rsa_key: Any) -> None:
        self._rsa_key = rsa_key
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def import_key(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(data, dict):
            return self._rsa_key.import_key(data, *args, **kwargs)
        fingerprint = json.dumps(data, sort_keys=True)
        with self._lock:
            if fingerprint not in self._keys:
                self._keys[fingerprint] = self._rsa_key.import_key(data)
            return self._keys[fingerprint]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rsa_key, name)


class _KeyCachingJwk:
    """Stands in for the ``joserfc.jwk`` module inside moto's cognito-idp models."""

    def __init__(self, jwk: Any) -> None:
        self._jwk = jwk
        self.RSAKey = _KeyCachingRSAKey(jwk.RSAKey)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._jwk, name)


@cache
def _moto() -> _Moto:
    try:
        import moto.cognitoidp.models as models
        from moto.cognitoidp.models import (
            CognitoIdpBackend,
            CognitoIdpUserPoolAttribute,
            RegionAgnosticBackend,
            UserStatus,
        )
        from moto.cognitoidp.responses import CognitoIdpResponse
        from werkzeug.exceptions import HTTPException
    except ImportError as exc:
        raise ConfigError(SANDBOX_INSTALL_HINT) from exc

    # Every moto pool imports the same bundled RSA key, which costs 0.15-0.3 s
    # per pool; importing it once keeps pool creation (and test suites) fast.
    namespace = vars(models)
    if not isinstance(namespace["jwk"], _KeyCachingJwk):
        namespace["jwk"] = _KeyCachingJwk(namespace["jwk"])

    class _PrivateAgnosticBackend(RegionAgnosticBackend):
        # moto looks token/client owners up across its global backends; here
        # there is exactly one backend to look in.
        def __init__(self, backend: CognitoIdpBackend) -> None:
            super().__init__(backend.account_id, backend.region_name)
            self._backend = backend

        def _find_backend_by_access_token(self, access_token: str) -> Any:
            return self._backend

        def _find_backend_by_access_token_or_session(
            self, access_token: str, session: str
        ) -> Any:
            return self._backend

        def _find_backend_for_clientid(self, client_id: str) -> Any:
            return self._backend

    class _PrivateResponse(CognitoIdpResponse):
        def __init__(self, backend: CognitoIdpBackend) -> None:
            super().__init__()
            self._private_backend = backend

        @property
        def backend(self) -> CognitoIdpBackend:
            return self._private_backend

        def _get_region_agnostic_backend(self) -> Any:
            return _PrivateAgnosticBackend(self._private_backend)

    return _Moto(
        backend_class=CognitoIdpBackend,
        responses_class=_PrivateResponse,
        confirmed=UserStatus.CONFIRMED,
        standard_schema=CognitoIdpUserPoolAttribute.STANDARD_SCHEMA,
        http_exception=HTTPException,
    )


@cache
def _cognito_operations() -> frozenset[str]:
    """The operation names of botocore's cognito-idp model: what Cognito serves."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("cognito-idp")
    return frozenset(model.operation_names)


class _MotoRequest:
    """The request shape moto's ``BaseResponse.setup_class`` reads (moto <= 5.2.1)."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body = body
        self.headers = headers
        self.method = "POST"


def _moto_request(url: str, body: bytes, headers: dict[str, str]) -> Any:
    """A request moto's response classes accept, across moto versions.

    Newer moto (5.2.2 on) normalises every request to its own werkzeug-based
    ``Request``; older releases read only body, headers and method.
    """
    try:
        module = importlib.import_module("moto.core.request")
    except ImportError:
        return _MotoRequest(body, headers)
    build = getattr(getattr(module, "Request", None), "from_primitives", None)
    if build is None:
        return _MotoRequest(body, headers)
    return build("POST", url, headers, body)


#: An operation implemented here: (pool, params) -> (response, username written).
_Operation = Callable[["EmulatedPool", dict[str, Any]], tuple[dict[str, Any], str]]


class EmulatedPool:
    """An emulated Cognito user-pool endpoint on 127.0.0.1, with injected faults.

    It serves from construction until `stop` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        *,
        faults: Faults = Faults(),
        region: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        moto = _moto()
        self.faults = faults
        self.region = region
        self._moto = moto
        self._backend: CognitoIdpBackend = moto.backend_class(
            region_name=region, account_id=ACCOUNT_ID
        )
        self._sleep = sleep
        self._rng = random.Random(faults.seed)
        self._buckets = {
            category: _TokenBucket(rate, clock=clock)
            for category, rate in faults.quotas().items()
            if rate is not None
        }
        # sub -> username per pool: runs keyed by sub must not scan every user.
        self._subs: dict[str, dict[str, str]] = {}
        self._stats_lock = threading.Lock()
        self.writes: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self.injected_errors = 0
        self.dropped = 0
        self._stopped = False
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{port}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> EmulatedPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()

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
            try:
                pool = self._backend.create_user_pool(
                    str(described.get("Name") or "sandbox"), config
                )
            except self._moto.http_exception as exc:
                raise SchemaError(f"cannot emulate this pool: {_message(exc)}") from exc
            # moto validates constraints more narrowly than Cognito (no negative
            # MinValue) and invents empty ones, so they are copied as described.
            for entry in schema:
                attribute = pool.schema_attributes[_described_name(entry)]
                for key, field in (
                    ("StringAttributeConstraints", "string_constraints"),
                    ("NumberAttributeConstraints", "number_constraints"),
                ):
                    given = entry.get(key)
                    setattr(attribute, field, dict(given) if given else None)
            wanted = described.get("Id")
            if isinstance(wanted, str) and wanted not in self._backend.user_pools:
                del self._backend.user_pools[pool.id]
                pool.arn = pool.arn.replace(pool.id, wanted)
                pool.id = wanted
                self._backend.user_pools[wanted] = pool
            self._subs[pool.id] = {}
            return str(pool.id)

    def _creation_schema(self, described: list[Any]) -> list[dict[str, Any]]:
        """CreateUserPool Schema for these attributes, plus missing standard ones."""
        schema: list[dict[str, Any]] = []
        seen: set[str] = set()
        for entry in described:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("Name"), str):
                raise SchemaError(f"schema attribute without a name: {entry!r}")
            name = entry["Name"]
            custom = name.startswith(("custom:", "dev:custom:"))
            if not custom and name not in self._moto.standard_schema:
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
        for name, standard in self._moto.standard_schema.items():
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
            subs = self._subs.setdefault(pool_id, {})
            folded = _folds_case(pool)
            taken = {u.username.casefold() for u in pool.users.values()}
            for number, row in enumerate(users, start=1):
                attributes = {k: v for k, v in row.items() if v not in (None, "")}
                username = attributes.pop("username", None)
                if username is None:
                    raise ConfigError(f"sandbox user {number} has no username")
                if folded and username.casefold() in taken:
                    raise ConfigError(f"sandbox user {username!r}: User already exists")
                taken.add(username.casefold())
                sub = attributes.pop("sub", None)
                unknown = sorted(set(attributes) - set(pool.schema_attributes))
                if unknown:
                    raise ConfigError(
                        f"sandbox user {username!r}: not in the pool schema: "
                        + ", ".join(unknown)
                    )
                try:
                    user = self._backend.admin_create_user(
                        pool_id,
                        username,
                        "SUPPRESS",
                        None,  # type: ignore[arg-type]  # moto: no password set
                        [{"Name": k, "Value": v} for k, v in attributes.items()],
                    )
                except self._moto.http_exception as exc:
                    raise ConfigError(
                        f"sandbox user {username!r}: {_message(exc)}"
                    ) from exc
                user.status = self._moto.confirmed
                if sub is not None:
                    user.id = sub
                    user.update_attributes([{"Name": "sub", "Value": sub}])
                subs[user.id] = user.username

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
            key = username.casefold() if folded else username
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
                token, _ = pool.create_access_token(
                    SANDBOX_CLIENT_ID, user.username, str(uuid.uuid4())
                )
            pool.access_tokens[token] = (SANDBOX_CLIENT_ID, user.username)
            return token

    def schema_names(self, pool_id: str) -> set[str]:
        """Attribute names in the pool's schema, with their custom prefixes."""
        with _MOTO_LOCK, _as_lookup_error():
            return set(self._pool(pool_id).schema_attributes)

    def stats(self) -> dict[str, Any]:
        """Counters so far, JSON-ready: requests, applied writes per user, faults."""
        with self._stats_lock:
            return {
                "endpoint_url": self.endpoint_url,
                "calls": dict(self.calls),
                "writes": dict(self.writes),
                "writes_total": sum(self.writes.values()),
                "throttled": self.throttled,
                "injected_errors": self.injected_errors,
                "dropped": self.dropped,
            }

    # --- request handling -------------------------------------------------

    def _handle(self, target: str, body: bytes) -> _Reply | None:
        """Answer one JSON-protocol request; None means close without a response."""
        operation = target.removeprefix(TARGET_PREFIX)
        with self._stats_lock:
            self.calls[operation] += 1
        if self.faults.latency:
            self._sleep(self.faults.latency)
        bucket = self._buckets.get(CATEGORIES.get(operation, ""))
        if bucket is not None and not bucket.try_acquire():
            with self._stats_lock:
                self.throttled += 1
            return _error_reply(400, "TooManyRequestsException", "Rate exceeded")
        drop_after = False
        if operation in WRITE_OPERATIONS:
            with self._stats_lock:
                # Always three draws, so one seed gives one fault sequence.
                fail = self._rng.random() < self.faults.error_rate
                drop = self._rng.random() < self.faults.drop_rate
                before = self._rng.random() < 0.5
                if fail:
                    self.injected_errors += 1
                elif drop and before:
                    self.dropped += 1
            if fail:
                return _error_reply(
                    500, "InternalErrorException", "Internal error (sandbox fault)"
                )
            if drop and before:
                return None
            drop_after = drop
        reply = self._dispatch(target, operation, body)
        if drop_after:
            with self._stats_lock:
                self.dropped += 1
            return None
        return reply

    def _dispatch(self, target: str, operation: str, body: bytes) -> _Reply:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = None
        if not isinstance(params, dict):
            return _error_reply(400, "SerializationException", "Malformed JSON body")
        own = self._OWN_OPERATIONS.get(operation)
        if own is None and operation not in _cognito_operations():
            # Answered here, not by moto: moto's answer to an unknown operation
            # has changed between releases (a 400 JSON error, then a bare 404).
            return _error_reply(
                400, "UnknownOperationException", f"Unknown operation {target}"
            )
        with _MOTO_LOCK:
            try:
                if own is None:
                    if operation == "AdminGetUser":
                        body = self._canonical_username(params)
                    return self._delegate(target, body)
                payload, written = own(self, params)
            except _CognitoError as exc:
                return _error_reply(exc.status, exc.code, exc.message)
            except self._moto.http_exception as exc:
                return _error_reply(
                    int(getattr(exc, "code", 400) or 400),
                    str(getattr(exc, "error_type", "InvalidParameterException")),
                    _message(exc),
                )
            except NotImplementedError:
                return _error_reply(
                    400, "UnknownOperationException", f"Unknown operation {target}"
                )
            except Exception as exc:  # a moto bug must not kill the handler
                log.exception("sandbox: %s failed", operation)
                return _error_reply(500, "InternalErrorException", repr(exc))
        with self._stats_lock:
            self.writes[written] += 1
        return _json_reply(payload)

    def _canonical_username(self, params: dict[str, Any]) -> bytes:
        """The request body with Username resolved (alias, sub) for moto."""
        pool = self._pool(_required(params, "UserPoolId"))
        user = self._find_user(pool, _required(params, "Username"))
        return json.dumps({**params, "Username": user.username}).encode()

    def _delegate(self, target: str, body: bytes) -> _Reply:
        """Answer with moto's own response class, bound to the private backend."""
        responder = self._moto.responses_class(self._backend)
        headers = {"X-Amz-Target": target, "Content-Type": JSON_CONTENT_TYPE}
        url = f"{self.endpoint_url}/"
        responder.setup_class(_moto_request(url, body, headers), url, headers)
        # setup_class reads a query string out of the JSON body; there is none.
        responder.querystring = {}
        status, _headers, out = responder.call_action()
        data = out.encode() if isinstance(out, str) else bytes(out or b"{}")
        return _Reply(int(status), data or b"{}")

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

    _OWN_OPERATIONS: ClassVar[dict[str, _Operation]] = {
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
        """The user a Username parameter names: username, verified alias or sub."""
        user = pool.users.get(name)
        if user is not None:
            return user
        subs = self._subs.setdefault(pool.id, {})
        if name in subs and subs[name] in pool.users:
            return pool.users[subs[name]]
        config = pool.extended_config
        folded = _folds_case(pool)
        # Sign-in attributes (UsernameAttributes) always identify their user;
        # email and phone aliases (AliasAttributes) only once verified.
        signs_in = set(config.get("UsernameAttributes", [])) | {"preferred_username"}
        aliases = set(config.get("AliasAttributes", [])) | signs_in
        key = name.casefold() if folded else name
        for candidate in pool.users.values():
            if candidate.id == name:
                subs[name] = candidate.username
                return candidate
            if folded and candidate.username.casefold() == key:
                return candidate
            for alias in aliases:
                value = candidate.attribute_lookup.get(alias)
                if value is None or (value.casefold() if folded else value) != key:
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


def _replace_attributes(user: CognitoIdpUser, flat: dict[str, str]) -> None:
    # moto's update_attributes merges into the current list; emptying it first
    # makes it a replace that still maintains moto's lookup and modified date.
    user.attributes = []
    user.update_attributes([{"Name": k, "Value": v} for k, v in flat.items()])


def _described_name(entry: Mapping[str, Any]) -> str:
    name = str(entry["Name"])
    if "DeveloperOnlyAttribute" not in entry:
        return name
    prefix = "dev:custom:" if entry["DeveloperOnlyAttribute"] else "custom:"
    return prefix + name


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


# --- HTTP ---------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Loopback-only HTTP server that can close idle keep-alive connections."""

    daemon_threads = True

    def __init__(self, pool: EmulatedPool) -> None:
        self.pool = pool
        # ThreadingMixIn does not track daemon threads, so server_close() would
        # not join them; the server keeps its own list.
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        self._handlers_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

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
        pool = cast(_Server, self.server).pool
        reply = pool._handle(target, body)
        if reply is None:
            self.close_connection = True
            return
        self._send(reply.status, reply.body, JSON_CONTENT_TYPE)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/__stats":
            self._send(404, b'{"message": "not found"}', "application/json")
            return
        stats = cast(_Server, self.server).pool.stats()
        self._send(200, json.dumps(stats).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)


# --- python -m migrate.sandbox serve ------------------------------------------


def read_users(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a users CSV or Parquet file, all values as strings (nulls left out)."""
    if path.suffix.lower() == ".parquet":
        import polars as pl

        frame = pl.read_parquet(path)
        frame = frame.select(pl.all().cast(pl.String))
        for row in frame.iter_rows(named=True):
            yield {k: v for k, v in row.items() if v is not None}
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            yield {k: v for k, v in row.items() if k is not None and v is not None}


def _quota(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m migrate.sandbox",
        description="Serve an emulated Cognito user pool on 127.0.0.1.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve until SIGTERM; GET /__stats returns the counters as JSON",
    )
    serve.add_argument(
        "--schema", type=Path, required=True, help="DescribeUserPool JSON"
    )
    serve.add_argument("--users", type=Path, help="users CSV or Parquet to seed")
    serve.add_argument(
        "--port-file",
        type=Path,
        required=True,
        help='written with "ENDPOINT_URL POOL_ID" once serving',
    )
    serve.add_argument("--region", default="us-east-1")
    defaults = Faults()
    serve.add_argument("--latency", type=float, default=defaults.latency)
    serve.add_argument(
        "--quota",
        type=_quota,
        default=defaults.quota,
        help="UserUpdate requests/s ('none': unlimited); likewise the other quotas",
    )
    serve.add_argument("--list-quota", type=_quota, default=defaults.list_quota)
    serve.add_argument("--read-quota", type=_quota, default=defaults.read_quota)
    serve.add_argument(
        "--pool-read-quota", type=_quota, default=defaults.pool_read_quota
    )
    serve.add_argument("--error-rate", type=float, default=defaults.error_rate)
    serve.add_argument("--drop-rate", type=float, default=defaults.drop_rate)
    serve.add_argument("--seed", type=int, default=defaults.seed)
    return parser


def _serve(args: argparse.Namespace, stop: threading.Event) -> None:
    """Run the ``serve`` command until ``stop`` is set."""
    try:
        faults = Faults(
            latency=args.latency,
            quota=args.quota,
            list_quota=args.list_quota,
            read_quota=args.read_quota,
            pool_read_quota=args.pool_read_quota,
            error_rate=args.error_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        described = json.loads(args.schema.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{args.schema}: {exc}") from exc
    if not isinstance(described, dict):
        raise SchemaError(f"{args.schema}: not DescribeUserPool output")
    try:
        rows = list(read_users(args.users)) if args.users is not None else []
    except OSError as exc:
        raise ConfigError(f"{args.users}: {exc}") from exc
    with EmulatedPool(faults=faults, region=args.region) as pool:
        pool_id = pool.seed(described, rows)
        partial = args.port_file.with_name(args.port_file.name + ".tmp")
        partial.write_text(f"{pool.endpoint_url} {pool_id}\n", encoding="utf-8")
        os.replace(partial, args.port_file)
        while not stop.wait(0.2):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m migrate.sandbox``; returns the exit code."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        _serve(args, stop)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
