"""The pool schema: which attributes a user pool has and how Cognito checks them.

The schema comes from DescribeUserPool, either live or saved to a file. To save
it (read-only, needs ``cognito-idp:DescribeUserPool``)::

    aws cognito-idp describe-user-pool --user-pool-id us-east-1_EXAMPLE > pool.json

and pass ``--schema pool.json``. The file is the CLI output unchanged: a JSON
object ``{"UserPool": {...}}``; the bare ``UserPool`` object is accepted too.

DescribeUserPool names attributes as requests must write them: ``email``,
``custom:plan``, and ``dev:custom:internal_id`` for developer-only ones. The
schema is keyed by exactly those names. Constraints arrive as strings
(``"MaxLength": "2048"``) and are parsed here once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from migrate.errors import SchemaError
from migrate.records import STANDARD_ATTRIBUTES

DataType = Literal["String", "Number", "DateTime", "Boolean"]

DATA_TYPES: tuple[DataType, ...] = ("String", "Number", "DateTime", "Boolean")

#: What a schema file must be; part of several error messages.
EXPECTED = (
    "expected the output of `aws cognito-idp describe-user-pool --user-pool-id ID`: "
    "a JSON object with UserPool.SchemaAttributes"
)

# LambdaConfig also holds settings that are not triggers.
_NOT_TRIGGERS = frozenset({"KMSKeyID"})


@dataclass(frozen=True, kw_only=True)
class AttributeSchema:
    """One attribute of the pool, with the limits Cognito enforces on writes."""

    name: str
    data_type: DataType
    mutable: bool
    required: bool
    developer_only: bool
    min_length: int | None = None
    max_length: int | None = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None

    @property
    def custom(self) -> bool:
        """True for ``custom:`` and ``dev:custom:`` attributes."""
        return self.name.startswith(("custom:", "dev:"))


@dataclass(frozen=True, kw_only=True)
class PoolSchema:
    """The parts of a user pool's configuration that decide what a write does."""

    pool_id: str | None
    #: Keyed by the name used in API calls: "email", "custom:plan", "dev:custom:x".
    attributes: Mapping[str, AttributeSchema] = field(hash=False)
    username_attributes: tuple[str, ...] = ()
    alias_attributes: tuple[str, ...] = ()
    auto_verified_attributes: tuple[str, ...] = ()
    #: UserAttributeUpdateSettings.AttributesRequireVerificationBeforeUpdate.
    verify_before_update: tuple[str, ...] = ()
    case_sensitive: bool | None = None
    #: Names of the LambdaConfig triggers that are set, e.g. "CustomMessage".
    lambda_triggers: tuple[str, ...] = ()

    def get(self, name: str) -> AttributeSchema | None:
        """The attribute called exactly ``name`` (as written in requests), if any."""
        return self.attributes.get(name)


_STANDARD_TYPES: dict[str, DataType] = {
    "email_verified": "Boolean",
    "phone_number_verified": "Boolean",
    "updated_at": "Number",
}
#: Set by Cognito or by federation, never by a write.
_STANDARD_READ_ONLY = frozenset({"sub", "identities"})
#: Every pool's standard attributes as Cognito creates them (not required).
_STANDARD_DEFAULTS: dict[str, AttributeSchema] = {
    name: AttributeSchema(
        name=name,
        data_type=_STANDARD_TYPES.get(name, "String"),
        mutable=name not in _STANDARD_READ_ONLY,
        required=False,
        developer_only=False,
        max_length=2048 if _STANDARD_TYPES.get(name, "String") == "String" else None,
    )
    for name in sorted(STANDARD_ATTRIBUTES)
}


def load_schema_file(path: str | Path) -> PoolSchema:
    """Read a file saved from ``aws cognito-idp describe-user-pool``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SchemaError(
            f"{path}: no such file; save the pool schema with "
            "`aws cognito-idp describe-user-pool --user-pool-id ID > "
            f"{path.name}`"
        ) from None
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); {EXPECTED}"
        ) from None
    except UnicodeDecodeError:
        raise SchemaError(
            f"{path}: not valid JSON (not UTF-8 text); {EXPECTED}"
        ) from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: {EXPECTED}")
    return schema_from_describe(data, source=str(path))


def schema_from_describe(response: Mapping[str, Any], *, source: str) -> PoolSchema:
    """Build a PoolSchema from DescribeUserPool output or its ``UserPool`` object.

    ``source`` names where the data came from (a file, a pool id) in errors.
    """
    pool: Any = response.get("UserPool", response)
    if not isinstance(pool, Mapping) or not isinstance(
        pool.get("SchemaAttributes"), list
    ):
        raise SchemaError(f"{source}: {EXPECTED}")
    attributes: dict[str, AttributeSchema] = {}
    for index, entry in enumerate(pool["SchemaAttributes"]):
        attribute = _attribute(
            entry, where=f"{source}: UserPool.SchemaAttributes[{index}]"
        )
        if attribute.name in attributes:
            raise SchemaError(
                f"{source}: UserPool.SchemaAttributes[{index}]: "
                f"{attribute.name} is listed twice"
            )
        attributes[attribute.name] = attribute

    for name, attribute in _STANDARD_DEFAULTS.items():
        # DescribeUserPool may leave standard attributes out (some emulators
        # list only the custom ones); every pool has them all the same.
        attributes.setdefault(name, attribute)

    pool_id = pool.get("Id")
    username_config = _object(pool, "UsernameConfiguration", source)
    case_sensitive = username_config.get("CaseSensitive")
    if case_sensitive is not None and not isinstance(case_sensitive, bool):
        raise SchemaError(
            f"{source}: UserPool.UsernameConfiguration.CaseSensitive must be "
            "true or false"
        )
    update_settings = _object(pool, "UserAttributeUpdateSettings", source)
    lambda_config = _object(pool, "LambdaConfig", source)
    return PoolSchema(
        pool_id=pool_id if isinstance(pool_id, str) else None,
        attributes=MappingProxyType(attributes),
        username_attributes=_names(pool, "UsernameAttributes", source),
        alias_attributes=_names(pool, "AliasAttributes", source),
        auto_verified_attributes=_names(pool, "AutoVerifiedAttributes", source),
        verify_before_update=_names(
            update_settings,
            "AttributesRequireVerificationBeforeUpdate",
            source,
            parent_name="UserAttributeUpdateSettings.",
        ),
        case_sensitive=case_sensitive,
        lambda_triggers=tuple(
            key
            for key, value in lambda_config.items()
            if key not in _NOT_TRIGGERS and value
        ),
    )


def _attribute(entry: Any, *, where: str) -> AttributeSchema:
    """One SchemaAttributes entry, with its name as requests must write it."""
    if not isinstance(entry, Mapping):
        raise SchemaError(
            f"{where}: expected an object with Name and AttributeDataType"
        )
    name = entry.get("Name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}: Name is missing")
    where = f"{where} ({name})"
    data_type = entry.get("AttributeDataType")
    if data_type not in DATA_TYPES:
        raise SchemaError(
            f"{where}: AttributeDataType must be one of {', '.join(DATA_TYPES)}, "
            f"not {json.dumps(data_type)}"
        )
    flags: dict[str, bool] = {}
    # Defaults are Cognito's for a definition that leaves the flag out.
    for key, default in (
        ("Mutable", True),
        ("Required", False),
        ("DeveloperOnlyAttribute", False),
    ):
        value = entry.get(key, default)
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: {key} must be true or false")
        flags[key] = value
    strings = _constraints(entry, "StringAttributeConstraints", where)
    numbers = _constraints(entry, "NumberAttributeConstraints", where)
    return AttributeSchema(
        name=_request_name(name, developer_only=flags["DeveloperOnlyAttribute"]),
        data_type=cast(DataType, data_type),
        mutable=flags["Mutable"],
        required=flags["Required"],
        developer_only=flags["DeveloperOnlyAttribute"],
        min_length=_length(strings, "MinLength", where),
        max_length=_length(strings, "MaxLength", where),
        min_value=_number(numbers, "MinValue", where),
        max_value=_number(numbers, "MaxValue", where),
    )


def _request_name(name: str, *, developer_only: bool) -> str:
    """The name a request uses for a described (or CreateUserPool-style) name.

    DescribeUserPool already returns "custom:x" and "dev:custom:x"; a bare custom
    name (as written in a CreateUserPool Schema) gets the prefix Cognito adds.
    """
    if developer_only:
        base = name.removeprefix("dev:").removeprefix("custom:")
        return f"dev:custom:{base}"
    if name in STANDARD_ATTRIBUTES or name.startswith(("custom:", "dev:")):
        return name
    return f"custom:{name}"


def _constraints(entry: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    block = entry.get(key)
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise SchemaError(f"{where}: {key} must be an object")
    return block


def _length(block: Mapping[str, Any], key: str, where: str) -> int | None:
    raw = block.get(key)
    if raw is None or raw == "":
        return None
    # Cognito returns "2048"; a hand-written file may say 2048.
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise SchemaError(f"{where}: StringAttributeConstraints.{key} is not a number")
    try:
        value = int(raw)
    except ValueError:
        raise SchemaError(
            f"{where}: StringAttributeConstraints.{key} {raw!r} is not a whole number"
        ) from None
    if value < 0:
        raise SchemaError(f"{where}: StringAttributeConstraints.{key} is negative")
    return value


def _number(block: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    raw = block.get(key)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise SchemaError(f"{where}: NumberAttributeConstraints.{key} is not a number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise SchemaError(
            f"{where}: NumberAttributeConstraints.{key} {raw!r} is not a number"
        ) from None
    if not value.is_finite():
        raise SchemaError(
            f"{where}: NumberAttributeConstraints.{key} {raw!r} is not a number"
        )
    return value


def _object(parent: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SchemaError(f"{source}: UserPool.{key} must be an object")
    return value


def _names(
    parent: Mapping[str, Any], key: str, source: str, *, parent_name: str = ""
) -> tuple[str, ...]:
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SchemaError(
            f"{source}: UserPool.{parent_name}{key} must be a list of attribute names"
        )
    return tuple(value)


def schema_differences(
    saved: PoolSchema, live: PoolSchema, attributes: Iterable[str]
) -> tuple[list[str], list[str]]:
    """How the live pool differs from a saved schema, for these attributes.

    Returns (blocking, notes): an attribute the job writes that the pool lacks,
    or cannot change, fails every row, so it blocks the run; other differences
    are notes. A standard attribute missing from the live description says
    nothing (DescribeUserPool may leave standard attributes out).
    """
    blocking: list[str] = []
    notes: list[str] = []
    for name in sorted(set(attributes)):
        before, now = saved.get(name), live.get(name)
        if now is None:
            if name.startswith(("custom:", "dev:")):
                blocking.append(f"{name} is not in the pool")
            continue
        if not now.mutable:
            blocking.append(f"{name} cannot be changed in the pool (immutable)")
        if before is None:
            notes.append(f"{name} is in the pool but not in the saved schema")
        elif before != now:
            notes.append(f"{name} is described differently in the pool")
    for label, old, new in (
        ("alias attributes", saved.alias_attributes, live.alias_attributes),
        ("username attributes", saved.username_attributes, live.username_attributes),
        (
            "auto-verified",
            saved.auto_verified_attributes,
            live.auto_verified_attributes,
        ),
    ):
        if set(old) != set(new):
            notes.append(f"{label}: saved {list(old)}, pool {list(new)}")
    return blocking, notes
