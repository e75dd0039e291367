"""A verified flag goes only into a request that also sets its attribute.

email_verified / phone_number_verified = "true" tells Cognito the value is
checked. Sent in a request that does not set the value (a blank cell, a
deleted or unchanged number), it marks whatever number the user has now as
verified, though nobody checked it. ``when = "always"`` makes that deliberate.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from migrate.errors import MappingError
from migrate.mapping import Mapping, load_mapping
from migrate.planning import CHANGED, CurrentValues, Planner
from migrate.records import DELETES, ERROR_CODE, ROW, STATUS, USER
from migrate.schema import PoolSchema, load_schema_file
from migrate.validation import Validator, find_duplicates
from tests.conftest import MAPPINGS, SAMPLES

PHONE = '[attributes.phone_number]\ncolumn = "phone"\n'
EMAIL = '[attributes.email]\ncolumn = "mail"\n'
PHONE_FLAG = '[attributes.phone_number_verified]\nvalue = "true"\n'
EMAIL_FLAG = '[attributes.email_verified]\nvalue = "true"\n'
ALWAYS = 'when = "always"\n'


@pytest.fixture(scope="module")
def schema() -> PoolSchema:
    return load_schema_file(SAMPLES / "pool-schema.json")


def load(tmp_path: Path, attributes: str, options: str = "") -> Mapping:
    path = tmp_path / "m.toml"
    path.write_text(
        f'[user]\ncolumn = "username"\n\n[options]\n{options}\n\n{attributes}'
    )
    return load_mapping(path)


def plan(
    mapping: Mapping,
    schema: PoolSchema,
    rows: dict[str, list[str | None]],
    *,
    snapshot: dict[str, list[str | None]] | None = None,
) -> tuple[pl.DataFrame, Planner]:
    """Map, validate and plan ``rows`` (a dry run); the planner keeps its counts."""
    n = len(rows["username"])
    batch = pl.DataFrame(
        {ROW: list(range(1, n + 1)), **rows},
        schema={ROW: pl.Int64, **dict.fromkeys(rows, pl.String)},
    )
    mapped = mapping.apply(batch)
    keys = mapped.select(ROW, USER).lazy()
    validator = Validator(
        mapping,
        schema,
        duplicates=find_duplicates(keys, user_as="username", case_sensitive=False),
        source_name="in.csv",
    )
    current = None
    if snapshot is not None:
        current = CurrentValues.from_snapshot(
            pl.LazyFrame(snapshot, schema=dict.fromkeys(snapshot, pl.String)),
            mapping=mapping,
            case_sensitive=False,
            source="snap.parquet",
        )
    planner = Planner(mapping=mapping, current=current)
    return planner.plan(validator.validate(mapped), dry_run=True), planner


def sent(planned: pl.DataFrame) -> list[tuple[str, list[str], list[str]]]:
    """(status, attributes set, attributes deleted) per row."""
    return list(
        zip(
            planned[STATUS].to_list(),
            planned[CHANGED].to_list(),
            planned[DELETES].to_list(),
            strict=True,
        )
    )


def test_a_constant_flag_goes_only_with_its_phone(
    tmp_path: Path, schema: PoolSchema
) -> None:
    # mappings/normalise-phone.toml in small: the second row's phone is blank.
    m = load(tmp_path, PHONE + PHONE_FLAG)
    planned, planner = plan(
        m, schema, {"username": ["ann", "bob"], "phone": ["+14155550100", ""]}
    )
    assert sent(planned) == [
        ("would_update", ["phone_number", "phone_number_verified"], []),
        ("skipped", [], []),
    ]
    assert planned[ERROR_CODE].to_list() == [None, "nothing_to_change"]
    assert planner.withheld_flags() == {"phone_number_verified": 1}


def test_the_shipped_normalise_phone_mapping_holds_its_flag_back(
    schema: PoolSchema,
) -> None:
    m = load_mapping(MAPPINGS / "normalise-phone.toml")
    planned, planner = plan(
        m,
        schema,
        {"username": ["ann", "bob", "cy"], "phone": ["(415) 555-0134", "  ", ""]},
    )
    assert [changed for _, changed, _ in sent(planned)] == [
        ["phone_number", "phone_number_verified"],
        [],
        [],
    ]
    assert planner.withheld_flags() == {"phone_number_verified": 2}


def test_a_flag_from_a_column_goes_only_with_its_phone(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = load(
        tmp_path,
        PHONE + '[attributes.phone_number_verified]\ncolumn = "checked"\n',
    )
    planned, planner = plan(
        m,
        schema,
        {
            "username": ["ann", "bob", "cy"],
            "phone": ["+14155550100", "", "+14155550102"],
            "checked": ["true", "true", ""],
        },
    )
    assert sent(planned) == [
        ("would_update", ["phone_number", "phone_number_verified"], []),
        ("skipped", [], []),
        ("would_update", ["phone_number"], []),
    ]
    assert planner.withheld_flags() == {"phone_number_verified": 1}


def test_a_deleted_phone_takes_its_flag_out(tmp_path: Path, schema: PoolSchema) -> None:
    m = load(tmp_path, PHONE + PHONE_FLAG, options='blank = "delete"')
    planned, planner = plan(
        m, schema, {"username": ["ann", "bob"], "phone": ["+14155550100", ""]}
    )
    assert sent(planned) == [
        ("would_update", ["phone_number", "phone_number_verified"], []),
        ("would_update", [], ["phone_number"]),
    ]
    assert planner.withheld_flags() == {"phone_number_verified": 1}


def test_a_blank_email_takes_email_verified_out(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = load(tmp_path, EMAIL + EMAIL_FLAG + '[attributes.name]\ncolumn = "name"\n')
    planned, planner = plan(
        m,
        schema,
        {
            "username": ["ann", "bob"],
            "mail": ["ann@example.com", ""],
            "name": ["Ann", "Bob"],
        },
    )
    assert sent(planned) == [
        ("would_update", ["email", "email_verified", "name"], []),
        ("would_update", ["name"], []),
    ]
    assert planner.withheld_flags() == {"email_verified": 1}


SNAPSHOT: dict[str, list[str | None]] = {
    "username": ["ann", "bob"],
    "phone_number": ["+14155550100", "+14155550101"],
    "phone_number_verified": ["false", "true"],
}


def test_a_diff_keeps_the_flag_off_an_unchanged_phone(
    tmp_path: Path, schema: PoolSchema
) -> None:
    # ann's number does not change and is not verified: the flag alone would
    # mark it verified unchecked. bob's number changes and is verified already:
    # the flag must still go with it, or Cognito un-verifies the new number.
    m = load(tmp_path, PHONE + PHONE_FLAG)
    planned, planner = plan(
        m,
        schema,
        {"username": ["ann", "bob"], "phone": ["+14155550100", "+14155550199"]},
        snapshot=SNAPSHOT,
    )
    assert sent(planned) == [
        ("unchanged", [], []),
        ("would_update", ["phone_number", "phone_number_verified"], []),
    ]
    assert planner.withheld_flags() == {"phone_number_verified": 1}


def test_when_always_sends_the_flag_on_its_own(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = load(tmp_path, PHONE + PHONE_FLAG + ALWAYS)
    planned, planner = plan(
        m, schema, {"username": ["ann", "bob"], "phone": ["+14155550100", ""]}
    )
    assert sent(planned) == [
        ("would_update", ["phone_number", "phone_number_verified"], []),
        ("would_update", ["phone_number_verified"], []),
    ]
    assert planner.withheld_flags() == {}


def test_when_always_with_a_diff_sends_only_a_flag_that_differs(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = load(tmp_path, PHONE + PHONE_FLAG + ALWAYS)
    planned, _ = plan(
        m,
        schema,
        {"username": ["ann", "bob"], "phone": ["", ""]},
        snapshot=SNAPSHOT,
    )
    assert sent(planned) == [
        ("would_update", ["phone_number_verified"], []),
        ("unchanged", [], []),
    ]


def test_a_flag_alone_on_purpose(tmp_path: Path, schema: PoolSchema) -> None:
    m = load(tmp_path, EMAIL_FLAG + ALWAYS)
    planned, _ = plan(m, schema, {"username": ["ann"]})
    assert sent(planned) == [("would_update", ["email_verified"], [])]


def test_a_flag_alone_by_accident_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        load(tmp_path, '[attributes.name]\ncolumn = "name"\n' + EMAIL_FLAG)
    assert str(caught.value) == (
        f"{tmp_path / 'm.toml'}: [attributes.email_verified] is sent only in a "
        "request that also sets email, and this mapping does not set email, so "
        "it would never be sent. To mark users' current email verified (or not) "
        'without checking it, say so: add when = "always"'
    )


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            '[attributes.name]\ncolumn = "name"\nwhen = "always"\n',
            "[attributes.name] when is only for the verified flags "
            "(email_verified and phone_number_verified)",
        ),
        (
            PHONE + PHONE_FLAG + 'when = "sometimes"\n',
            "[attributes.phone_number_verified] when = 'sometimes' is not "
            "allowed; use one of: with_attribute, always",
        ),
        (
            PHONE + PHONE_FLAG + "when = true\n",
            "[attributes.phone_number_verified] when = boolean true is not "
            "allowed; use one of: with_attribute, always",
        ),
    ],
)
def test_when_is_checked_at_load(tmp_path: Path, attributes: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        load(tmp_path, attributes)
    assert str(caught.value) == f"{tmp_path / 'm.toml'}: {message}"


def test_with_attribute_may_be_spelled_out(tmp_path: Path) -> None:
    m = load(tmp_path, PHONE + PHONE_FLAG + 'when = "with_attribute"\n')
    assert m.attributes["phone_number_verified"].when == "with_attribute"
