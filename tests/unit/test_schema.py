"""The pool schema: DescribeUserPool output in, PoolSchema out, clear errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from migrate.errors import SchemaError
from migrate.records import STANDARD_ATTRIBUTES
from migrate.schema import (
    AttributeSchema,
    PoolSchema,
    load_schema_file,
    schema_from_describe,
)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "pool-schema.json"
EXPECTED = (
    "expected the output of `aws cognito-idp describe-user-pool --user-pool-id ID`: "
    "a JSON object with UserPool.SchemaAttributes"
)


@pytest.fixture(scope="module")
def sample() -> PoolSchema:
    return load_schema_file(SAMPLE)


def pool(*attributes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A DescribeUserPool response with the given schema attributes."""
    return {
        "UserPool": {
            "Id": "eu-west-1_TEST",
            "SchemaAttributes": list(attributes),
            **fields,
        }
    }


def string(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "AttributeDataType": "String",
        "DeveloperOnlyAttribute": False,
        "Mutable": True,
        "Required": False,
        "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
        **extra,
    }


def test_sample_pool_settings(sample: PoolSchema) -> None:
    assert sample.pool_id == "us-east-1_SAMPLE0001"
    assert sample.username_attributes == ()
    assert sample.alias_attributes == ("email",)
    assert sample.auto_verified_attributes == ("email",)
    assert sample.verify_before_update == ()
    assert sample.case_sensitive is False
    assert sample.lambda_triggers == ()


def test_sample_has_every_standard_attribute(sample: PoolSchema) -> None:
    from migrate.records import STANDARD_ATTRIBUTES

    assert set(sample.attributes) >= STANDARD_ATTRIBUTES


def test_sample_custom_attributes_keep_their_request_names(sample: PoolSchema) -> None:
    custom = [name for name in sample.attributes if ":" in name]
    assert custom == [
        "custom:tenant_id",
        "custom:plan",
        "custom:legacy_flag",
        "custom:newsletter",
        "custom:seats",
        "custom:employee_id",
        "dev:custom:internal_id",
    ]
    assert sample.get("tenant_id") is None
    assert sample.get("custom:internal_id") is None


def test_sample_attribute_details(sample: PoolSchema) -> None:
    assert sample.get("sub") == AttributeSchema(
        name="sub",
        data_type="String",
        mutable=False,
        required=True,
        developer_only=False,
        min_length=1,
        max_length=2048,
    )
    assert sample.get("custom:seats") == AttributeSchema(
        name="custom:seats",
        data_type="Number",
        mutable=True,
        required=False,
        developer_only=False,
        min_value=Decimal(0),
        max_value=Decimal(100000),
    )
    internal = sample.get("dev:custom:internal_id")
    assert internal is not None
    assert internal.developer_only
    assert internal.custom
    assert (internal.min_length, internal.max_length) == (0, 64)
    employee = sample.get("custom:employee_id")
    assert employee is not None
    assert not employee.mutable
    email = sample.get("email")
    assert email is not None
    assert email.required
    assert not email.custom


def test_sample_constraints(sample: PoolSchema) -> None:
    def limits(name: str) -> tuple[object, ...]:
        a = sample.get(name)
        assert a is not None
        return (a.data_type, a.min_length, a.max_length, a.min_value, a.max_value)

    assert limits("birthdate") == ("String", 10, 10, None, None)
    assert limits("updated_at") == ("Number", None, None, Decimal(0), None)
    assert limits("email_verified") == ("Boolean", None, None, None, None)
    # Real pools describe identities with an empty constraints block.
    assert limits("identities") == ("String", None, None, None, None)
    assert limits("custom:newsletter") == ("Boolean", None, None, None, None)
    assert limits("custom:legacy_flag") == ("String", 0, 16, None, None)


def test_bare_user_pool_object_is_accepted() -> None:
    schema = schema_from_describe(pool(string("name"))["UserPool"], source="x")
    assert schema.pool_id == "eu-west-1_TEST"
    assert next(iter(schema.attributes)) == "name"


def test_settings_default_when_absent() -> None:
    schema = schema_from_describe(pool(string("name")), source="x")
    assert schema.username_attributes == ()
    assert schema.alias_attributes == ()
    assert schema.case_sensitive is None
    assert schema.lambda_triggers == ()


def test_pool_settings_are_read() -> None:
    schema = schema_from_describe(
        pool(
            string("email"),
            UsernameAttributes=["email"],
            AutoVerifiedAttributes=["email", "phone_number"],
            UserAttributeUpdateSettings={
                "AttributesRequireVerificationBeforeUpdate": ["email"]
            },
            UsernameConfiguration={"CaseSensitive": True},
        ),
        source="x",
    )
    assert schema.username_attributes == ("email",)
    assert schema.auto_verified_attributes == ("email", "phone_number")
    assert schema.verify_before_update == ("email",)
    assert schema.case_sensitive is True


def test_lambda_triggers_lists_only_set_triggers() -> None:
    schema = schema_from_describe(
        pool(
            string("name"),
            LambdaConfig={
                "PreSignUp": "",
                "CustomMessage": "arn:aws:lambda:eu-west-1:1:function:msg",
                "CustomEmailSender": {
                    "LambdaVersion": "V1_0",
                    "LambdaArn": "arn:aws:lambda:eu-west-1:1:function:mail",
                },
                "KMSKeyID": "arn:aws:kms:eu-west-1:1:key/abc",
            },
        ),
        source="x",
    )
    assert schema.lambda_triggers == ("CustomMessage", "CustomEmailSender")


@pytest.mark.parametrize(
    ("entry", "name"),
    [
        (string("custom:plan"), "custom:plan"),
        (string("dev:custom:plan", DeveloperOnlyAttribute=True), "dev:custom:plan"),
        # The model documents "dev:name"; users see "dev:custom:name".
        (string("dev:plan", DeveloperOnlyAttribute=True), "dev:custom:plan"),
        (string("custom:plan", DeveloperOnlyAttribute=True), "dev:custom:plan"),
        # CreateUserPool-style bare custom names get the prefix Cognito adds.
        (string("plan"), "custom:plan"),
        (string("locale"), "locale"),
    ],
)
def test_attribute_names_as_requests_write_them(
    entry: dict[str, Any], name: str
) -> None:
    schema = schema_from_describe(pool(entry), source="x")
    # The described attribute first, then the standard ones it did not list.
    assert list(schema.attributes) == [
        name,
        *sorted(STANDARD_ATTRIBUTES - {name}),
    ]


def test_standard_attributes_left_out_of_a_description_are_known() -> None:
    # Some emulators (and responses trimmed by hand) list only custom
    # attributes; every pool has the standard ones all the same.
    schema = schema_from_describe(pool(string("custom:plan")), source="x")
    email = schema.get("email")
    assert email is not None
    assert (email.data_type, email.mutable, email.required) == ("String", True, False)
    verified = schema.get("email_verified")
    assert verified is not None
    assert verified.data_type == "Boolean"
    sub = schema.get("sub")
    assert sub is not None
    assert not sub.mutable


def test_missing_constraint_blocks_and_flags_use_cognito_defaults() -> None:
    schema = schema_from_describe(
        pool({"Name": "custom:n", "AttributeDataType": "Number"}), source="x"
    )
    assert schema.get("custom:n") == AttributeSchema(
        name="custom:n",
        data_type="Number",
        mutable=True,
        required=False,
        developer_only=False,
    )


def test_numeric_constraints_may_be_json_numbers() -> None:
    entry = string(
        "custom:a", StringAttributeConstraints={"MinLength": 2, "MaxLength": 9}
    )
    number = {
        "Name": "custom:b",
        "AttributeDataType": "Number",
        "NumberAttributeConstraints": {"MinValue": -5, "MaxValue": "1e3"},
    }
    schema = schema_from_describe(pool(entry, number), source="x")
    a, b = schema.get("custom:a"), schema.get("custom:b")
    assert a is not None
    assert b is not None
    assert (a.min_length, a.max_length) == (2, 9)
    assert (b.min_value, b.max_value) == (Decimal(-5), Decimal(1000))


# --- errors -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    with pytest.raises(SchemaError) as info:
        load_schema_file(path)
    assert str(info.value) == (
        f"{path}: no such file; save the pool schema with "
        "`aws cognito-idp describe-user-pool --user-pool-id ID > pool.json`"
    )


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError) as info:
        load_schema_file(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '{"UserPool": {',
            "not valid JSON (line 1, column 15: Expecting property name enclosed "
            "in double quotes); ",
        ),
        ("", "not valid JSON (line 1, column 1: Expecting value); "),
        (
            '{\n  "UserPool": [1,]\n}',
            "not valid JSON (line 2, column 18: Expecting value); ",
        ),
        ("[]", ""),
        ('"UserPool"', ""),
        ('{"UserPools": []}', ""),
        ('{"UserPool": {"Id": "x"}}', ""),
        ('{"UserPool": {"SchemaAttributes": {}}}', ""),
        ('{"UserPool": []}', ""),
    ],
)
def test_not_describe_user_pool_output(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "pool.json"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        load_schema_file(path)
    assert str(info.value) == f"{path}: {problem}{EXPECTED}"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    path.write_bytes(b'{"UserPool": "\xff"}')
    with pytest.raises(SchemaError) as info:
        load_schema_file(path)
    assert str(info.value) == f"{path}: not valid JSON (not UTF-8 text); {EXPECTED}"


X = "UserPool.SchemaAttributes[0] (custom:x): "
N = "UserPool.SchemaAttributes[0] (custom:n): "


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            ["email"],
            "UserPool.SchemaAttributes[0]: expected an object with Name and "
            "AttributeDataType",
        ),
        (
            [{"AttributeDataType": "String"}],
            "UserPool.SchemaAttributes[0]: Name is missing",
        ),
        (
            [{"Name": "", "AttributeDataType": "String"}],
            "UserPool.SchemaAttributes[0]: Name is missing",
        ),
        (
            [string("name"), {"Name": "custom:x", "AttributeDataType": "Integer"}],
            "UserPool.SchemaAttributes[1] (custom:x): AttributeDataType must be one of "
            'String, Number, DateTime, Boolean, not "Integer"',
        ),
        (
            [{"Name": "custom:x"}],
            "UserPool.SchemaAttributes[0] (custom:x): AttributeDataType must be one of "
            "String, Number, DateTime, Boolean, not null",
        ),
        (
            [string("custom:x", Mutable="yes")],
            "UserPool.SchemaAttributes[0] (custom:x): Mutable must be true or false",
        ),
        (
            [string("custom:x", StringAttributeConstraints={"MaxLength": "lots"})],
            X + "StringAttributeConstraints.MaxLength 'lots' is not a whole number",
        ),
        (
            [string("custom:x", StringAttributeConstraints={"MinLength": "-1"})],
            X + "StringAttributeConstraints.MinLength is negative",
        ),
        (
            [string("custom:x", StringAttributeConstraints=["0", "9"])],
            X + "StringAttributeConstraints must be an object",
        ),
        (
            [
                {
                    "Name": "custom:n",
                    "AttributeDataType": "Number",
                    "NumberAttributeConstraints": {"MaxValue": "ten"},
                }
            ],
            N + "NumberAttributeConstraints.MaxValue 'ten' is not a number",
        ),
        (
            [
                {
                    "Name": "custom:n",
                    "AttributeDataType": "Number",
                    "NumberAttributeConstraints": {"MinValue": "NaN"},
                }
            ],
            N + "NumberAttributeConstraints.MinValue 'NaN' is not a number",
        ),
        (
            [string("custom:x"), string("x")],
            "UserPool.SchemaAttributes[1]: custom:x is listed twice",
        ),
    ],
)
def test_malformed_attribute_entries(
    tmp_path: Path, entries: list[Any], message: str
) -> None:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool(*entries)))
    with pytest.raises(SchemaError) as info:
        load_schema_file(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"UsernameConfiguration": {"CaseSensitive": "no"}},
            "UserPool.UsernameConfiguration.CaseSensitive must be true or false",
        ),
        (
            {"AliasAttributes": "email"},
            "UserPool.AliasAttributes must be a list of attribute names",
        ),
        (
            {
                "UserAttributeUpdateSettings": {
                    "AttributesRequireVerificationBeforeUpdate": [1]
                }
            },
            "UserPool.UserAttributeUpdateSettings."
            "AttributesRequireVerificationBeforeUpdate "
            "must be a list of attribute names",
        ),
        ({"LambdaConfig": []}, "UserPool.LambdaConfig must be an object"),
    ],
)
def test_malformed_pool_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError) as info:
        schema_from_describe(pool(string("name"), **fields), source="DescribeUserPool")
    assert str(info.value) == f"DescribeUserPool: {message}"
