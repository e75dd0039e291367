"""Tests for migrate.mapping: what load rejects (with the exact message), what
apply produces, and that every shipped mapping works on the samples."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate import transforms
from migrate.errors import MappingError
from migrate.mapping import (
    AttributeRule,
    Mapping,
    attribute_name_problem,
    cell_col,
    load_mapping,
    parse_mapping,
    template_fields,
)
from migrate.records import ROW, TOKEN, USER, problem_col, value_col
from migrate.source import cell_problem_col
from migrate.transforms import TRANSFORMS
from tests.conftest import MAPPINGS, SAMPLES

USER_TABLE = '[user]\ncolumn = "username"\n'
TENANT = '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'
SAMPLE_COLUMNS = [
    "username",
    "sub",
    "email",
    "phone",
    "first_name",
    "last_name",
    "tenant",
    "plan",
    "newsletter",
    "seats",
    "birthdate",
    "access_token",
]


def mapping(text: str) -> Mapping:
    return parse_mapping(text, path="m.toml")


def frame(**columns: list[str | None]) -> pl.DataFrame:
    """A source batch: ROW then the given text columns."""
    height = len(next(iter(columns.values())))
    data: dict[str, pl.Series] = {
        ROW: pl.Series(ROW, range(1, height + 1), dtype=pl.Int64)
    }
    for name, values in columns.items():
        data[name] = pl.Series(name, values, dtype=pl.String)
    return pl.DataFrame(data)


def values(result: pl.DataFrame, attribute: str) -> list[tuple[str | None, str | None]]:
    return list(
        zip(
            result.get_column(value_col(attribute)).to_list(),
            result.get_column(problem_col(attribute)).to_list(),
            strict=True,
        )
    )


# --- load: every rejection, with its message -----------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "{a}"\ncolumn = \n',
            "not valid TOML: Invalid value (at line 5, column 10)",
            id="toml-syntax",
        ),
        pytest.param(
            USER_TABLE + '[attributes.custom:tenant_id]\ncolumn = "tenant"\n',
            "not valid TOML: Expected ']' at the end of a table declaration (at"
            " line 3, column 19); a name containing ':' must be quoted: write"
            ' [attributes."custom:tenant_id"]',
            id="unquoted-colon-table",
        ),
        pytest.param(
            USER_TABLE + '[attributes]\ncustom:plan = { column = "plan" }\n',
            "not valid TOML: Expected '=' after a key in a key/value pair (at"
            " line 4, column 7); a name containing ':' must be quoted: write"
            ' "custom:plan" = { column = "plan" }',
            id="unquoted-colon-key",
        ),
        pytest.param(
            USER_TABLE + "[delete]\nattributes = [custom:legacy_flag]\n",
            "not valid TOML: Invalid value (at line 4, column 15); a name"
            " containing ':' must be quoted: write attributes ="
            ' ["custom:legacy_flag"]',
            id="unquoted-in-delete",
        ),
        pytest.param(
            USER_TABLE + TENANT + '[option]\nblank = "skip"\n',
            "unknown table [option]; did you mean [options]?",
            id="unknown-table",
        ),
        pytest.param(
            USER_TABLE + TENANT + "[zzz]\n",
            "unknown table [zzz] (valid tables: [user], [options],"
            " [attributes], [delete], [client_metadata])",
            id="unknown-table-no-guess",
        ),
        pytest.param(
            'column = "username"\n' + TENANT,
            "'column' must be inside a table: put it under [user]",
            id="top-level-key",
        ),
        pytest.param(
            'user = "username"\n' + TENANT,
            "'user' must be a table: write [user] on a line of its own,"
            " followed by its keys",
            id="user-not-table",
        ),
        pytest.param(
            '[user]\ncolumn = "username"\nkind = "sub"\n' + TENANT,
            "[user] unknown key 'kind' (valid keys: column, as)",
            id="unknown-user-key",
        ),
        pytest.param(
            USER_TABLE + '[options]\nblanks = "skip"\n' + TENANT,
            "[options] unknown key 'blanks'; did you mean 'blank'?",
            id="unknown-option",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\ntransfrom = ["strip"]\n',
            "[attributes.\"custom:plan\"] unknown key 'transfrom'; did you mean"
            " 'transform'?",
            id="unknown-attribute-key",
        ),
        pytest.param(
            USER_TABLE + '[attributes.custom.plan]\ncolumn = "plan"\n',
            "[attributes.custom.plan] is a nested table; an attribute name with"
            " ':' must be quoted, e.g. [attributes.\"custom:plan\"]",
            id="nested-attribute",
        ),
        pytest.param(
            TENANT,
            'missing [user] table: add [user] with column = "<input column>"'
            " naming the column that identifies each user",
            id="missing-user",
        ),
        pytest.param(
            '[user]\nas = "sub"\n' + TENANT,
            '[user] missing column = "<input column>" naming the column that'
            " identifies each user",
            id="missing-user-column",
        ),
        pytest.param(
            "[user]\ncolumn = 3\n" + TENANT,
            '[user] column must be a string (got number 3); write column = "3"',
            id="user-column-not-string",
        ),
        pytest.param(
            '[user]\ncolumn = "username"\nas = "login"\n' + TENANT,
            "[user] as = 'login' is not allowed; use one of: username, sub,"
            " email, phone_number",
            id="bad-as",
        ),
        pytest.param(
            USER_TABLE + '[options]\napi = "iam"\n' + TENANT,
            "[options] api = 'iam' is not allowed; use one of: admin, token",
            id="bad-api",
        ),
        pytest.param(
            USER_TABLE + '[options]\napi = "token"\n' + TENANT,
            '[options] api = "token" needs token_column = "<input column>"'
            " naming the column that holds each user's access token",
            id="token-without-column",
        ),
        pytest.param(
            USER_TABLE + '[options]\ntoken_column = "access_token"\n' + TENANT,
            '[options] token_column is only used with api = "token"; remove it'
            ' or set api = "token"',
            id="token-column-with-admin",
        ),
        pytest.param(
            USER_TABLE + '[options]\nblank = "ignore"\n' + TENANT,
            "[options] blank = 'ignore' is not allowed; use one of: skip,"
            " delete, error",
            id="bad-blank",
        ),
        pytest.param(
            USER_TABLE + '[options]\nduplicates = "first"\n' + TENANT,
            "[options] duplicates = 'first' is not allowed; use one of: error, last",
            id="bad-duplicates",
        ),
        pytest.param(
            USER_TABLE + "[options]\nblank = false\n" + TENANT,
            "[options] blank = boolean false is not allowed; use one of: skip,"
            " delete, error",
            id="blank-not-string",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntransform = ["strip"]\n',
            "[attributes.name] needs one of column, value or template",
            id="no-source",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.name]\ncolumn = "first_name"\n'
            + 'template = "{first_name} {last_name}"\n',
            "[attributes.name] has both column and template; keep exactly one"
            " of column, value or template",
            id="two-sources",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.name]\ncolumn = "a"\nvalue = "b"\ntemplate = "{c}"\n',
            "[attributes.name] has column, value and template; keep exactly one"
            " of column, value or template",
            id="three-sources",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\n'
            + 'transform = ["strip", "lowercase"]\n',
            "[attributes.\"custom:plan\"] unknown transform 'lowercase'; did you"
            " mean 'lower'? (valid transforms: bool, date, e164, epoch, lower,"
            " squeeze, strip, title, upper)",
            id="unknown-transform",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\n'
            + 'transform = ["frobnicate"]\n',
            "[attributes.\"custom:plan\"] unknown transform 'frobnicate' (valid"
            " transforms: bool, date, e164, epoch, lower, squeeze, strip,"
            " title, upper)",
            id="unknown-transform-no-guess",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\ntransform = "strip"\n',
            '[attributes."custom:plan"] transform must be a list of transform'
            ' names, e.g. transform = ["strip", "lower"]',
            id="transform-not-list",
        ),
        pytest.param(
            USER_TABLE + '[attributes.phone_number]\ncolumn = "phone"\nregion = "US"\n',
            "[attributes.phone_number] region is only used by the e164"
            ' transform; add "e164" to transform or remove region',
            id="region-without-e164",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.phone_number]\ncolumn = "phone"\n'
            + 'transform = ["e164"]\nregion = "UK"\n',
            "[attributes.phone_number] region 'UK' is not a known region code"
            " (the United Kingdom is 'GB'); use an ISO 3166 alpha-2 code such"
            ' as "US"',
            id="unknown-region",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.birthdate]\ncolumn = "birthdate"\nformat = "%d/%m/%Y"\n',
            "[attributes.birthdate] format is only used by the date and epoch"
            " transforms; add one of them to transform or remove format",
            id="format-without-date",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.birthdate]\ncolumn = "birthdate"\n'
            + 'transform = ["date"]\nformat = "%Y"\n',
            "[attributes.birthdate] format '%Y' cannot read a date: use"
            ' strftime codes with day, month and year, e.g. format = "%d/%m/%Y"',
            id="bad-format",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\nmap = ["gold"]\n',
            '[attributes."custom:plan"] map must be a table of strings, e.g.'
            ' map = { gold = "enterprise" } (got an array)',
            id="map-not-table",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:plan"]\ncolumn = "plan"\nmap = { gold = 1 }\n',
            '[attributes."custom:plan"] map must be a table of strings, e.g.'
            " map = { gold = \"enterprise\" } ('gold' maps to number 1)",
            id="map-not-strings",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "Anonymous"\n',
            "[attributes.name] template 'Anonymous' has no {fields}; use value"
            ' = "Anonymous" for a constant',
            id="template-no-fields",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "{first_name} {last_name"\n',
            "[attributes.name] template '{first_name} {last_name' is malformed"
            " (expected '}' before end of string); write fields as {column} and"
            " a literal brace as {{ or }}",
            id="template-bad-braces",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "first_name} {last_name}"\n',
            "[attributes.name] template 'first_name} {last_name}' is malformed"
            " (Single '}' encountered in format string); write fields as"
            " {column} and a literal brace as {{ or }}",
            id="template-single-close",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "{} {last_name}"\n',
            "[attributes.name] template '{} {last_name}' has an empty {}; write"
            " fields as {column} and a literal brace as {{ or }}",
            id="template-empty-field",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ntemplate = "{first_name:>10}"\n',
            "[attributes.name] template '{first_name:>10}': field 'first_name'"
            " has a format spec or conversion; write fields as {column} and a"
            " literal brace as {{ or }}",
            id="template-format-spec",
        ),
        pytest.param(
            USER_TABLE + "[attributes.email_verified]\nvalue = true\n",
            "[attributes.email_verified] value must be a string (got boolean"
            ' true); write value = "true"',
            id="value-not-string",
        ),
        pytest.param(
            USER_TABLE + '[attributes.email_verified]\nvalue = ""\n',
            "[attributes.email_verified] value is empty, which would delete"
            " email_verified from every user; list it in [delete] attributes"
            " instead",
            id="value-empty",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."custom:newsletter"]\n'
            + 'value = "maybe"\ntransform = ["bool"]\n',
            "[attributes.\"custom:newsletter\"] value 'maybe' fails its"
            " transforms: 'maybe' is not a boolean: write true/false, yes/no,"
            " y/n, 1/0, t/f or on/off",
            id="value-fails-transform",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes.a_very_long_attribute_name_indeed_x]\ncolumn = "x"\n',
            "[attributes.a_very_long_attribute_name_indeed_x]"
            " 'a_very_long_attribute_name_indeed_x' is 35 characters long;"
            " Cognito attribute names have at most 32",
            id="name-too-long",
        ),
        pytest.param(
            USER_TABLE + '[attributes.tenant_id]\ncolumn = "tenant"\n',
            "[attributes.tenant_id] 'tenant_id' is not a standard attribute;"
            " custom attributes need the prefix: did you mean"
            " 'custom:tenant_id'?",
            id="missing-prefix",
        ),
        pytest.param(
            USER_TABLE + '[attributes.Email]\ncolumn = "email"\n',
            "[attributes.Email] 'Email' is not a standard attribute (names are"
            " case-sensitive); did you mean 'email'?",
            id="wrong-case-standard",
        ),
        pytest.param(
            USER_TABLE + '[attributes."custom:abcdefghijklmnopqrstu"]\ncolumn = "x"\n',
            '[attributes."custom:abcdefghijklmnopqrstu"]'
            " 'custom:abcdefghijklmnopqrstu' is too long: a custom attribute"
            " name has at most 20 characters after 'custom:' (21 here)",
            id="custom-too-long",
        ),
        pytest.param(
            USER_TABLE
            + '[attributes."dev:custom:abcdefghijklmnopqrstu"]\ncolumn = "x"\n',
            '[attributes."dev:custom:abcdefghijklmnopqrstu"]'
            " 'dev:custom:abcdefghijklmnopqrstu' is too long: a custom"
            " attribute name has at most 20 characters after 'dev:custom:' (21"
            " here)",
            id="dev-custom-too-long",
        ),
        pytest.param(
            USER_TABLE + '[attributes."custom:"]\ncolumn = "x"\n',
            "[attributes.\"custom:\"] 'custom:' has no name after the prefix",
            id="custom-empty",
        ),
        pytest.param(
            USER_TABLE + TENANT + '[delete]\nattributes = ["custom:tenant_id"]\n',
            "[delete] 'custom:tenant_id' is also set in"
            ' [attributes."custom:tenant_id"]; an attribute can be set or'
            " deleted, not both",
            id="set-and-delete",
        ),
        pytest.param(
            USER_TABLE + '[delete]\nattributes = ["legacy_flag"]\n',
            "[delete] 'legacy_flag' is not a standard attribute; custom"
            " attributes need the prefix: did you mean 'custom:legacy_flag'?",
            id="delete-missing-prefix",
        ),
        pytest.param(
            USER_TABLE
            + '[delete]\nattributes = ["custom:legacy_flag", "custom:legacy_flag"]\n',
            "[delete] 'custom:legacy_flag' is listed twice",
            id="delete-twice",
        ),
        pytest.param(
            USER_TABLE + '[delete]\nattributes = "custom:legacy_flag"\n',
            "[delete] attributes must be a list of attribute names, e.g."
            ' attributes = ["custom:legacy_flag"]',
            id="delete-not-list",
        ),
        pytest.param(
            USER_TABLE + '[delete]\nattribute = ["custom:legacy_flag"]\n',
            "[delete] unknown key 'attribute'; did you mean 'attributes'?",
            id="delete-unknown-key",
        ),
        pytest.param(
            USER_TABLE + TENANT + "[client_metadata]\nbatch = 7\n",
            "[client_metadata] batch must be a string (got number 7); write"
            ' batch = "7"',
            id="metadata-not-string",
        ),
        pytest.param(
            USER_TABLE,
            "the mapping sets no attributes and deletes none: add an"
            ' [attributes."<name>"] table or a [delete] attributes list',
            id="empty-mapping",
        ),
        pytest.param(
            USER_TABLE + "[delete]\nattributes = []\n",
            "the mapping sets no attributes and deletes none: add an"
            ' [attributes."<name>"] table or a [delete] attributes list',
            id="empty-delete",
        ),
        pytest.param(
            USER_TABLE + '[attributes]\nname = "first_name"\n',
            "[attributes] 'name' must be a table: write [attributes.name]"
            ' followed by column = "<input column>"',
            id="attribute-not-table",
        ),
        pytest.param(
            USER_TABLE + '[attributes.name]\ncolumn = " "\n',
            "[attributes.name] column is empty",
            id="column-empty",
        ),
    ],
)
def test_load_rejects(text: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        mapping(text)
    assert str(caught.value) == f"m.toml: {message}"
    assert caught.value.path == "m.toml"


def test_load_mapping_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tenant.toml"
    path.write_text(USER_TABLE + TENANT, encoding="utf-8")
    loaded = load_mapping(path)
    assert loaded.path == str(path)
    assert loaded.user_column == "username"
    assert loaded.attributes == {
        "custom:tenant_id": AttributeRule(name="custom:tenant_id", column="tenant")
    }


def test_load_mapping_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == (
        f"{path}: cannot read the mapping: No such file or directory"
    )


def test_load_mapping_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(
        (USER_TABLE + '[attributes.name]\nvalue = "Zoë"\n').encode("latin-1")
    )
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == (
        f"{path}: not UTF-8 text (byte 56); save the mapping as UTF-8"
    )


def test_load_keeps_every_setting() -> None:
    loaded = mapping(
        """
        [user]
        column = "sub"
        as = "sub"
        [options]
        api = "token"
        token_column = "access_token"
        blank = "delete"
        duplicates = "last"
        [attributes.phone_number]
        column = "phone"
        transform = ["strip", "e164"]
        region = "gb"
        [attributes."custom:plan"]
        column = "plan"
        map = { gold = "enterprise" }
        [attributes.name]
        template = "{first_name} {last_name}"
        [attributes.birthdate]
        column = "birthdate"
        transform = ["date"]
        format = "%d/%m/%Y"
        [attributes.email_verified]
        value = "true"
        when = "always"
        [delete]
        attributes = ["custom:legacy_flag", "dev:custom:internal_id"]
        [client_metadata]
        source = "crm"
        """
    )
    assert (loaded.user_column, loaded.user_as, loaded.api) == ("sub", "sub", "token")
    assert (loaded.token_column, loaded.blank, loaded.duplicates) == (
        "access_token",
        "delete",
        "last",
    )
    assert list(loaded.attributes) == [
        "phone_number",
        "custom:plan",
        "name",
        "birthdate",
        "email_verified",
    ]
    assert loaded.attributes["phone_number"] == AttributeRule(
        name="phone_number", column="phone", transform=("strip", "e164"), region="GB"
    )
    assert loaded.attributes["custom:plan"].map == {"gold": "enterprise"}
    assert loaded.attributes["birthdate"].format == "%d/%m/%Y"
    assert loaded.attributes["email_verified"].value == "true"
    assert loaded.attributes["email_verified"].when == "always"
    assert loaded.attributes["phone_number"].when == "with_attribute"
    assert loaded.delete == ("custom:legacy_flag", "dev:custom:internal_id")
    assert loaded.client_metadata == {"source": "crm"}
    assert loaded.source_columns() == (
        "sub",
        "access_token",
        "phone",
        "plan",
        "first_name",
        "last_name",
        "birthdate",
    )


def test_defaults() -> None:
    loaded = mapping(USER_TABLE + TENANT)
    assert (loaded.user_as, loaded.api, loaded.token_column) == (
        "username",
        "admin",
        None,
    )
    assert (loaded.blank, loaded.duplicates, loaded.delete) == ("skip", "error", ())
    assert loaded.client_metadata == {}


@pytest.mark.parametrize(
    "name",
    ["email", "custom:tenant_id", "dev:custom:internal_id", "custom:" + "x" * 20],
)
def test_attribute_names_accepted(name: str) -> None:
    assert attribute_name_problem(name) is None


def test_template_fields() -> None:
    assert template_fields("{a} {b}, {a} {{literal}}") == ("a", "b")
    rule = AttributeRule(name="name", template="{first_name} {last_name}")
    assert rule.source_columns() == ("first_name", "last_name")
    assert AttributeRule(name="x", value="1").source_columns() == ()


# --- every shipped mapping ------------------------------------------------------

MAPPING_FILES = sorted(MAPPINGS.glob("*.toml"))


def test_the_five_mappings_ship() -> None:
    assert [path.name for path in MAPPING_FILES] == [
        "backfill-tenant.toml",
        "normalise-phone.toml",
        "profile.toml",
        "rename-plan.toml",
        "token-self-service.toml",
    ]


@pytest.mark.parametrize("path", MAPPING_FILES, ids=lambda path: path.stem)
def test_shipped_mapping_applies_to_the_samples(path: Path) -> None:
    loaded = load_mapping(path)
    loaded.check_columns(SAMPLE_COLUMNS, source="samples/users.csv")
    batch = pl.read_csv(SAMPLES / "users.csv", infer_schema=False)
    assert batch.columns == SAMPLE_COLUMNS
    batch = batch.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    result = loaded.apply(batch)
    assert result.height == batch.height
    assert result.get_column(ROW).to_list() == batch.get_column(ROW).to_list()
    expected = [ROW, USER] + ([TOKEN] if loaded.api == "token" else [])
    expected.append(cell_col(USER))
    for name in loaded.attributes:
        expected += [value_col(name), problem_col(name), cell_col(name)]
    assert result.columns == expected


def sample_result(name: str) -> pl.DataFrame:
    batch = pl.read_csv(SAMPLES / "users.csv", infer_schema=False)
    batch = batch.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return load_mapping(MAPPINGS / name).apply(batch)


def problems(result: pl.DataFrame, attribute: str) -> dict[int, str]:
    found = result.filter(pl.col(problem_col(attribute)).is_not_null())
    return dict(
        zip(
            found.get_column(ROW), found.get_column(problem_col(attribute)), strict=True
        )
    )


def test_normalise_phone_on_the_samples() -> None:
    # samples/README.md: rows 17 and 34 hold the bad numbers, row 138 is blank.
    result = sample_result("normalise-phone.toml")
    assert problems(result, "phone_number") == {
        17: "'555-01' is not a valid phone number (default region US)",
        34: "'not a phone' is not a valid phone number",
    }
    phones = result.get_column(value_col("phone_number"))
    assert phones[137] is None
    assert (
        phones.filter(~phones.is_in(["555-01", "not a phone"]))
        .str.contains(r"^\+[0-9]{8,15}$")
        .all()
    )
    assert set(result.get_column(value_col("phone_number_verified"))) == {"true"}


def test_rename_plan_on_the_samples() -> None:
    result = sample_result("rename-plan.toml")
    plans = result.get_column(value_col("custom:plan"))
    assert set(plans.drop_nulls()) == {"enterprise", "pro", "starter", "platinum"}
    assert plans[155] == "platinum"  # row 156: not in the map, passes through
    assert plans[120] is None  # row 121: blank
    assert problems(result, "custom:plan") == {}


def test_profile_on_the_samples() -> None:
    result = sample_result("profile.toml")
    assert problems(result, "birthdate") == {
        258: "'1987-13-45' is not a date (write it as YYYY-MM-DD)"
    }
    assert problems(result, "custom:newsletter") == {}
    assert set(result.get_column(value_col("custom:newsletter"))) == {"true", "false"}
    assert (
        result.get_column(value_col("birthdate"))
        .drop_nulls()
        .str.contains(r"^\d{4}-\d{2}-\d{2}$|^1987-13-45$")
        .all()
    )


# --- check_columns ---------------------------------------------------------------


def test_check_columns_passes() -> None:
    mapping(USER_TABLE + TENANT).check_columns(["tenant", "username"], source="in.csv")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(
            ["username", "Plan", "tenant"],
            "[attributes.\"custom:plan\"] column 'plan' is not in samples/users.csv"
            " (columns: username, Plan, tenant); did you mean 'Plan'?",
            id="case",
        ),
        pytest.param(
            ["username", "tenant", "plans"],
            "[attributes.\"custom:plan\"] column 'plan' is not in samples/users.csv"
            " (columns: username, tenant, plans); did you mean 'plans'?",
            id="close",
        ),
        pytest.param(
            ["username", "tenant"],
            "[attributes.\"custom:plan\"] column 'plan' is not in samples/users.csv"
            " (columns: username, tenant)",
            id="no-guess",
        ),
        pytest.param(
            ["user_name", "x"],
            "3 columns are not in samples/users.csv (columns: user_name, x):"
            " [user] column 'username' (did you mean 'user_name'?);"
            " [attributes.\"custom:tenant_id\"] column 'tenant';"
            " [attributes.\"custom:plan\"] column 'plan'",
            id="several",
        ),
        pytest.param(
            [],
            "3 columns are not in samples/users.csv (it has no columns):"
            " [user] column 'username'; [attributes.\"custom:tenant_id\"] column"
            " 'tenant'; [attributes.\"custom:plan\"] column 'plan'",
            id="empty-header",
        ),
    ],
)
def test_check_columns_message(header: list[str], message: str) -> None:
    loaded = mapping(
        USER_TABLE + TENANT + '[attributes."custom:plan"]\ncolumn = "plan"\n'
    )
    with pytest.raises(MappingError) as caught:
        loaded.check_columns(header, source="samples/users.csv")
    assert str(caught.value) == f"m.toml: {message}"


def test_check_columns_names_every_key_that_needs_a_column() -> None:
    loaded = mapping(
        USER_TABLE
        + '[options]\napi = "token"\ntoken_column = "token"\n'
        + '[attributes.name]\ntemplate = "{first} {last}"\n'
        + '[attributes.nickname]\ncolumn = "first"\n'
    )
    with pytest.raises(MappingError) as caught:
        loaded.check_columns(["username", "last", "Token"], source="in.csv")
    assert str(caught.value) == (
        "m.toml: 2 columns are not in in.csv (columns: username, last, Token):"
        " [options] token_column 'token' (did you mean 'Token'?);"
        " [attributes.name] template field, [attributes.nickname] column 'first'"
    )


def test_check_columns_shortens_a_long_header() -> None:
    header = [f"c{number}" for number in range(40)]
    with pytest.raises(MappingError) as caught:
        mapping(USER_TABLE + TENANT).check_columns(header, source="in.csv")
    listed = ", ".join(header[:30])
    assert str(caught.value) == (
        f"m.toml: 2 columns are not in in.csv (columns: {listed}, ... (10 more)):"
        " [user] column 'username'; [attributes.\"custom:tenant_id\"] column 'tenant'"
    )


def test_apply_checks_columns_first() -> None:
    with pytest.raises(MappingError) as caught:
        mapping(USER_TABLE + TENANT).apply(frame(username=["a"]))
    assert str(caught.value) == (
        "m.toml: [attributes.\"custom:tenant_id\"] column 'tenant' is not in the"
        " input (columns: __row, username)"
    )


# --- apply ------------------------------------------------------------------------


def test_apply_user_and_token() -> None:
    loaded = mapping(
        USER_TABLE
        + '[options]\napi = "token"\ntoken_column = "access_token"\n'
        + TENANT
    )
    result = loaded.apply(
        frame(
            username=[" ada ", "", None, "  "],
            access_token=[" tok-1 ", "tok-2", "", None],
            tenant=["t", "t", "t", "t"],
        )
    )
    assert result.columns == [
        ROW,
        USER,
        TOKEN,
        cell_col(USER),
        value_col("custom:tenant_id"),
        problem_col("custom:tenant_id"),
        cell_col("custom:tenant_id"),
    ]
    assert result.get_column(USER).to_list() == ["ada", None, None, None]
    assert result.get_column(TOKEN).to_list() == ["tok-1", "tok-2", None, None]
    assert result.get_column(ROW).to_list() == [1, 2, 3, 4]
    assert result.schema[value_col("custom:tenant_id")] == pl.String
    assert result.schema[problem_col("custom:tenant_id")] == pl.String


def test_apply_email_key_keeps_its_case() -> None:
    loaded = mapping('[user]\ncolumn = "email"\nas = "email"\n' + TENANT)
    result = loaded.apply(frame(email=[" Ada@Example.COM "], tenant=["t"]))
    assert result.get_column(USER).to_list() == ["Ada@Example.COM"]


def test_apply_column_blank_means_null() -> None:
    result = mapping(USER_TABLE + TENANT).apply(
        frame(username=["a"] * 5, tenant=[" acme ", "", "   ", None, "\t"])
    )
    # The value is sent as written (no transform), blanks become null.
    assert values(result, "custom:tenant_id") == [
        (" acme ", None),
        (None, None),
        (None, None),
        (None, None),
        (None, None),
    ]


def test_apply_constant() -> None:
    result = mapping(
        USER_TABLE + '[attributes.email_verified]\nvalue = "true"\nwhen = "always"\n'
    ).apply(frame(username=["a", "b"]))
    assert values(result, "email_verified") == [("true", None), ("true", None)]


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        pytest.param("Ada", "Lovelace", "Ada Lovelace", id="both"),
        pytest.param("Ada", None, "Ada", id="last-null"),
        pytest.param("  ", "Lovelace", "Lovelace", id="first-whitespace"),
        pytest.param(" Ada  ", "  Lovelace ", "Ada Lovelace", id="spaces-collapse"),
        pytest.param("", None, None, id="all-blank"),
        pytest.param("Mary Ann", "O'Brien, Jr.", "Mary Ann O'Brien, Jr.", id="inner"),
    ],
)
def test_apply_template(
    first: str | None, last: str | None, expected: str | None
) -> None:
    loaded = mapping(USER_TABLE + '[attributes.name]\ntemplate = "{first}  {last}"\n')
    result = loaded.apply(frame(username=["a"], first=[first], last=[last]))
    assert values(result, "name") == [(expected, None)]


def test_apply_template_literals_and_braces() -> None:
    loaded = mapping(USER_TABLE + '[attributes.profile]\ntemplate = "{{id}}: {id}"\n')
    result = loaded.apply(frame(username=["a", "b"], id=["7", None]))
    assert values(result, "profile") == [("{id}: 7", None), (None, None)]


def test_apply_transforms_then_map() -> None:
    loaded = mapping(
        USER_TABLE
        + '[attributes."custom:plan"]\ncolumn = "plan"\n'
        + 'transform = ["strip", "lower"]\n'
        + 'map = { gold = "enterprise", legacy = "" }\n'
    )
    result = loaded.apply(
        frame(username=["a"] * 5, plan=[" Gold ", "GOLD", "platinum", "Legacy", " "])
    )
    assert values(result, "custom:plan") == [
        ("enterprise", None),
        ("enterprise", None),
        ("platinum", None),  # not in the map: passes through
        (None, None),  # mapped to "": blank, so the blank policy decides
        (None, None),
    ]


def test_apply_failed_transform_keeps_the_original_cell() -> None:
    loaded = mapping(
        USER_TABLE
        + '[attributes."custom:newsletter"]\ncolumn = "news"\n'
        + 'transform = ["bool", "upper"]\nmap = { TRUE = "yes" }\n'
    )
    result = loaded.apply(frame(username=["a", "b", "c"], news=[" Maybe ", "y", None]))
    assert values(result, "custom:newsletter") == [
        (
            " Maybe ",
            "' Maybe ' is not a boolean: write true/false, yes/no, y/n, 1/0, t/f"
            " or on/off",
        ),
        ("yes", None),
        (None, None),
    ]


def test_apply_template_with_a_transform_failure() -> None:
    loaded = mapping(
        USER_TABLE
        + '[attributes.birthdate]\ntemplate = "{y}-{m}-{d}"\ntransform = ["date"]\n'
    )
    result = loaded.apply(
        frame(username=["a", "b"], y=["1987", "1987"], m=["3", "13"], d=["4", "1"])
    )
    assert values(result, "birthdate") == [
        ("1987-03-04", None),
        ("1987-13-1", "'1987-13-1' is not a date (write it as YYYY-MM-DD)"),
    ]


def test_apply_casts_other_dtypes_to_text() -> None:
    loaded = mapping(USER_TABLE + '[attributes."custom:seats"]\ncolumn = "seats"\n')
    batch = pl.DataFrame(
        {ROW: [1, 2], "username": [10, 11], "seats": [5, None]},
        schema={ROW: pl.Int64, "username": pl.Int64, "seats": pl.Int64},
    )
    result = loaded.apply(batch)
    assert result.get_column(USER).to_list() == ["10", "11"]
    assert values(result, "custom:seats") == [("5", None), (None, None)]


def test_apply_runs_e164_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = transforms._e164_series

    def counting(raw: pl.Series, region: str | None) -> pl.Series:
        calls.append(len(raw))
        return real(raw, region)

    monkeypatch.setattr(transforms, "_e164_series", counting)
    loaded = load_mapping(MAPPINGS / "normalise-phone.toml")
    result = loaded.apply(frame(username=["a", "b"], phone=["(415) 555-0134", "x"]))
    assert calls == [2]
    assert values(result, "phone_number") == [
        ("+14155550134", None),
        ("x", "'x' is not a valid phone number"),
    ]


def test_apply_empty_batch() -> None:
    loaded = load_mapping(MAPPINGS / "profile.toml")
    empty = frame(**{column: [] for column in SAMPLE_COLUMNS})
    result = loaded.apply(empty)
    assert result.height == 0
    assert result.columns[:2] == [ROW, USER]


# --- apply is total and deterministic --------------------------------------------

#: What polars' strip_chars() removes (Unicode White_Space, as Rust's
#: char::is_whitespace); Python's str.strip() also removes \x1c-\x1f.
UNICODE_WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)

cells = st.lists(st.one_of(st.none(), st.text(max_size=20)), min_size=0, max_size=20)
ALL_TRANSFORMS_MAPPING = USER_TABLE + "".join(
    f'[attributes."custom:t_{name}"]\ncolumn = "c"\ntransform = ["{name}"]\n'
    + ('region = "US"\n' if name == "e164" else "")
    for name in sorted(TRANSFORMS)
)


@settings(max_examples=30, deadline=None)
@given(column=cells)
def test_apply_is_total_and_keeps_rows(column: list[str | None]) -> None:
    loaded = mapping(ALL_TRANSFORMS_MAPPING)
    batch = (
        frame(username=["u"] * len(column), c=column)
        if column
        else frame(username=[], c=[])
    )
    first = loaded.apply(batch)
    assert first.equals(loaded.apply(batch))
    assert first.height == batch.height
    assert first.get_column(ROW).to_list() == batch.get_column(ROW).to_list()
    for name in TRANSFORMS:
        attribute = f"custom:t_{name}"
        for cell, (value, problem) in zip(
            column, values(first, attribute), strict=True
        ):
            if problem is not None:
                assert value == cell
            if cell is None or not cell.strip(UNICODE_WHITE_SPACE):
                assert (value, problem) == (None, None)
            assert value != ""


# --- the token column is only ever the token ------------------------------------

TOKEN_OPTIONS = '[options]\napi = "token"\ntoken_column = "access_token"\n'
PLAN_FROM_TOKEN = (
    "{key} 'access_token' is the token column ([options] token_column): an access"
    " token only authorises the call and is never written to the pool, the job"
    " file or the report; read another column"
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            USER_TABLE
            + TOKEN_OPTIONS
            + '[attributes."custom:plan"]\ncolumn = "access_token"\n',
            '[attributes."custom:plan"] column',
        ),
        # A map passes values it does not list through: the token with them.
        (
            USER_TABLE
            + TOKEN_OPTIONS
            + '[attributes."custom:plan"]\ncolumn = "access_token"\n'
            + 'map = { gold = "enterprise" }\n',
            '[attributes."custom:plan"] column',
        ),
        (
            USER_TABLE
            + TOKEN_OPTIONS
            + '[attributes.name]\ntemplate = "{first_name} {access_token}"\n',
            "[attributes.name] template field",
        ),
        (
            USER_TABLE
            + TOKEN_OPTIONS
            + '[attributes.name]\ntemplate = "{access_token}"\n',
            "[attributes.name] template field",
        ),
        (
            '[user]\ncolumn = "access_token"\n'
            + TOKEN_OPTIONS
            + '[attributes."custom:plan"]\ncolumn = "plan"\n',
            "[user] column",
        ),
    ],
    ids=["column", "column-with-map", "template", "template-alone", "user-column"],
)
def test_the_token_column_cannot_be_read_as_data(text: str, key: str) -> None:
    # Read as data, the token would be written to the pool, stored in the job
    # file's sent column and shown in dry-run examples and report messages.
    with pytest.raises(MappingError) as caught:
        mapping(text)
    assert str(caught.value) == "m.toml: " + PLAN_FROM_TOKEN.format(key=key)


def test_a_map_value_naming_the_token_column_is_only_text() -> None:
    # Map values are literal text, not columns: nothing reads the token.
    loaded = mapping(
        USER_TABLE
        + TOKEN_OPTIONS
        + '[attributes."custom:plan"]\ncolumn = "plan"\n'
        + 'map = { gold = "access_token" }\n'
    )
    result = loaded.apply(
        frame(username=["a"], access_token=["tok-secret"], plan=["gold"])
    )
    assert values(result, "custom:plan") == [("access_token", None)]


def test_without_token_api_a_column_named_like_a_token_is_data() -> None:
    loaded = mapping(
        USER_TABLE + '[attributes."custom:plan"]\ncolumn = "access_token"\n'
    )
    assert loaded.token_column is None


# --- control characters in constants --------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            USER_TABLE + '[attributes."custom:plan"]\nvalue = "gold\\u0000"\n',
            '[attributes."custom:plan"] value holds the control character U+0000 at'
            " position 5; remove it",
        ),
        (
            USER_TABLE + '[attributes.name]\ntemplate = "{first}\\u001b[2J{last}"\n',
            "[attributes.name] template holds the control character U+001B at"
            " position 8; remove it",
        ),
    ],
)
def test_constants_with_control_characters_are_refused(text: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        mapping(text)
    assert str(caught.value) == "m.toml: " + message


def test_a_constant_may_hold_a_line_break() -> None:
    # An address is several lines (OIDC formatted address).
    loaded = mapping(USER_TABLE + '[attributes.address]\nvalue = "1 Main St\\nTown"\n')
    assert loaded.attributes["address"].value == "1 Main St\nTown"


# --- cells with no text form (a float column's NaN) ------------------------------


def test_cell_problems_reach_the_attributes_that_read_them() -> None:
    loaded = mapping(
        USER_TABLE
        + '[attributes."custom:seats"]\ncolumn = "seats"\n'
        + '[attributes.name]\ntemplate = "{first} {seats}"\n'
        + '[attributes."custom:plan"]\nvalue = "gold"\n'
    )
    batch = frame(
        username=["a", "b"], seats=[None, "3"], first=["Ann", "Bob"]
    ).with_columns(pl.Series(cell_problem_col("seats"), ["NaN (not a number)", None]))
    result = loaded.apply(batch)
    assert result[cell_col(USER)].to_list() == [None, None]
    assert result[cell_col("custom:seats")].to_list() == ["NaN (not a number)", None]
    assert result[cell_col("name")].to_list() == [
        "column 'seats': NaN (not a number)",
        None,
    ]
    assert result[cell_col("custom:plan")].to_list() == [None, None]


def test_cell_problems_of_the_user_column() -> None:
    loaded = mapping(USER_TABLE + '[attributes."custom:plan"]\nvalue = "gold"\n')
    batch = frame(username=[None]).with_columns(
        pl.Series(cell_problem_col("username"), ["inf (infinity)"])
    )
    assert loaded.apply(batch)[cell_col(USER)].to_list() == ["inf (infinity)"]
