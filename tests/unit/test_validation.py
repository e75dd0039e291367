"""Validation: the mapping against the pool schema, and every row's values."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate import spill
from migrate.errors import MappingError
from migrate.mapping import Mapping, cell_col, load_mapping
from migrate.records import (
    ERROR_CODE,
    ERROR_MESSAGE,
    ROW,
    TOKEN,
    USER,
    problem_col,
    value_col,
)
from migrate.schema import AttributeSchema, PoolSchema, load_schema_file
from migrate.validation import (
    CODES,
    DUPLICATE_KEY,
    DUPLICATE_LAST,
    DUPLICATE_OWNER,
    SUPERSEDED_BY,
    DuplicateIndex,
    Validator,
    check_mapping,
    find_duplicates,
    find_shared_values,
)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "pool-schema.json"


@pytest.fixture(scope="module")
def schema() -> PoolSchema:
    return load_schema_file(SAMPLE)


def mapping(
    tmp_path: Path,
    attributes: str = "",
    *,
    user: str = "username",
    user_as: str = "username",
    options: str = "",
    extra: str = "",
) -> Mapping:
    """A mapping loaded from TOML, as users write it."""
    path = tmp_path / "mapping.toml"
    path.write_text(
        f'[user]\ncolumn = "{user}"\nas = "{user_as}"\n\n'
        f"[options]\n{options}\n\n{attributes}\n{extra}\n"
    )
    return load_mapping(path)


def renamed(m: Mapping, names: Sequence[str]) -> Mapping:
    """``m`` with its one attribute rule copied under other names.

    For names the mapping loader itself would reject (it checks names without a
    schema); check_mapping must still explain them.
    """
    (rule,) = m.attributes.values()
    return dataclasses.replace(
        m, attributes={n: dataclasses.replace(rule, name=n) for n in names}
    )


def batch(
    m: Mapping,
    users: Sequence[str | None],
    values: dict[str, Sequence[str | None]] | None = None,
    *,
    problems: dict[str, Sequence[str | None]] | None = None,
    tokens: Sequence[str | None] | None = None,
    cells: dict[str, Sequence[str | None]] | None = None,
    first_row: int = 1,
) -> pl.DataFrame:
    """A mapped frame as Mapping.apply returns it.

    ``cells``: cell problems by attribute (or USER), as a float column's NaN
    gives; without them the frame has no cell columns, which validate allows.
    """
    n = len(users)
    values = values or {}
    problems = problems or {}
    columns: dict[str, pl.Series] = {
        ROW: pl.Series(range(first_row, first_row + n), dtype=pl.Int64),
        USER: pl.Series(users, dtype=pl.String),
    }
    if m.api == "token":
        columns[TOKEN] = pl.Series(tokens or ["tok-abc"] * n, dtype=pl.String)
    for name in m.attributes:
        columns[value_col(name)] = pl.Series(
            values.get(name, [None] * n), dtype=pl.String
        )
        columns[problem_col(name)] = pl.Series(
            problems.get(name, [None] * n), dtype=pl.String
        )
    for name, cell in (cells or {}).items():
        columns[cell_col(name)] = pl.Series(cell, dtype=pl.String)
    return pl.DataFrame(columns)


def validator(
    m: Mapping, schema: PoolSchema, keys: Sequence[str | None] = ()
) -> Validator:
    index = find_duplicates(
        pl.LazyFrame(
            {ROW: range(1, len(keys) + 1), USER: list(keys)},
            schema={ROW: pl.Int64, USER: pl.String},
        ),
        user_as=m.user_as,
        case_sensitive=schema.case_sensitive,
    )
    return Validator(m, schema, duplicates=index, source_name="users.csv")


def problems_of(frame: pl.DataFrame) -> list[tuple[str | None, str | None]]:
    return list(zip(frame[ERROR_CODE], frame[ERROR_MESSAGE], strict=True))


# --- one case per problem code ------------------------------------------------

PLAN = '[attributes."custom:plan"]\ncolumn = "plan"\n'
SEATS = '[attributes."custom:seats"]\ncolumn = "seats"\n'
BIRTH = '[attributes.birthdate]\ncolumn = "birthdate"\n'
EMAIL = '[attributes.email]\ncolumn = "mail"\n'
PHONE = '[attributes.phone_number]\ncolumn = "phone"\n'
NEWS = '[attributes."custom:newsletter"]\ncolumn = "newsletter"\n'
TOKEN_OPTIONS = 'api = "token"\ntoken_column = "access_token"'

# (code, attributes TOML, options, user_as, key, {attribute: value}, message)
Case = tuple[str, str, str, str, str | None, dict[str, str | None], str]
CASES: list[Case] = [
    (
        "missing_user",
        PLAN,
        "",
        "username",
        None,
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: blank; every row needs a username",
    ),
    (
        "missing_user",
        PLAN,
        "",
        "sub",
        "",
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: blank; every row needs a sub",
    ),
    (
        "bad_user_key",
        PLAN,
        "",
        "username",
        "john smith",
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: 'john smith' contains spaces or control "
        "characters, which a username cannot",
    ),
    (
        "bad_user_key",
        PLAN,
        "",
        "username",
        "u" * 129,
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: '" + "u" * 40 + "…' is too long: "
        "129 characters, at most 128",
    ),
    (
        "bad_user_key",
        PLAN,
        "",
        "email",
        "bob@example",
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: 'bob@example' is not an email address",
    ),
    (
        "bad_user_key",
        PLAN,
        "",
        "sub",
        "not-a-uuid",
        {"custom:plan": "pro"},
        "row 1, column 'username' -> user: 'not-a-uuid' is not a sub (a UUID such "
        "as 7d3c5d2e-8f0a-4b1c-9e6d-2a4f6b8c0e1f)",
    ),
    (
        "missing_token",
        PLAN,
        TOKEN_OPTIONS,
        "username",
        "alice",
        {"custom:plan": "pro"},
        "row 1, column 'access_token' -> token: blank; api = \"token\" needs each "
        "user's access token",
    ),
    (
        "transform",
        PHONE,
        "",
        "username",
        "alice",
        {"phone_number": "555-01"},
        "row 1, column 'phone' -> phone_number: '555-01' is not a valid phone "
        "number (default region US)",
    ),
    (
        "blank_value",
        PLAN,
        'blank = "error"',
        "username",
        "alice",
        {"custom:plan": None},
        "row 1, column 'plan' -> custom:plan: blank, and blank = \"error\"",
    ),
    (
        "required_blank",
        EMAIL,
        'blank = "delete"',
        "username",
        "alice",
        {"email": None},
        "row 1, column 'mail' -> email: blank, but email is required in this pool "
        "and cannot be deleted",
    ),
    (
        "too_long",
        PLAN,
        "",
        "username",
        "alice",
        {"custom:plan": "p" * 33},
        "row 1, column 'plan' -> custom:plan: '" + "p" * 33 + "' is too long: 33 "
        "characters, at most 32",
    ),
    (
        "too_long",
        '[attributes.name]\ncolumn = "full_name"\n',
        "",
        "username",
        "alice",
        {"name": "é" * 3000},
        "row 1, column 'full_name' -> name: '" + "é" * 40 + "…' is too long: 3000 "
        "characters, at most 2048",
    ),
    (
        "too_short",
        BIRTH,
        "",
        "username",
        "alice",
        {"birthdate": "1990-1-1"},
        "row 1, column 'birthdate' -> birthdate: '1990-1-1' is too short: 8 "
        "characters, at least 10; row 1, column 'birthdate' -> birthdate: "
        "'1990-1-1' is not a date in YYYY-MM-DD form",
    ),
    (
        "not_a_number",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": "1.5"},
        "row 1, column 'seats' -> custom:seats: '1.5' is not a whole number "
        "(Cognito Number attributes hold integers)",
    ),
    (
        "not_a_number",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": "+5"},
        "row 1, column 'seats' -> custom:seats: '+5' is not a whole number "
        "(Cognito Number attributes hold integers)",
    ),
    (
        "out_of_range",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": "100001"},
        "row 1, column 'seats' -> custom:seats: '100001' is more than the maximum "
        "100000",
    ),
    (
        "out_of_range",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": "-1"},
        "row 1, column 'seats' -> custom:seats: '-1' is less than the minimum 0",
    ),
    (
        "out_of_range",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": "9" * 25},
        "row 1, column 'seats' -> custom:seats: '" + "9" * 25 + "' is more than the "
        "maximum 100000",
    ),
    (
        "not_boolean",
        NEWS,
        "",
        "username",
        "alice",
        {"custom:newsletter": "yes"},
        "row 1, column 'newsletter' -> custom:newsletter: 'yes' is not true or false",
    ),
    (
        "bad_date",
        BIRTH,
        "",
        "username",
        "alice",
        {"birthdate": "1990-13-01"},
        "row 1, column 'birthdate' -> birthdate: '1990-13-01' is not a date in "
        "YYYY-MM-DD form",
    ),
    (
        "bad_email",
        EMAIL,
        "",
        "username",
        "alice",
        {"email": "alice@@example.com"},
        "row 1, column 'mail' -> email: 'alice@@example.com' is not a valid email "
        "address",
    ),
    (
        "bad_phone",
        PHONE,
        "",
        "username",
        "alice",
        {"phone_number": "555-0100"},
        "row 1, column 'phone' -> phone_number: '555-0100' is not an E.164 phone "
        'number (+ and 7 to 15 digits, e.g. +14325551212; transform = ["e164"] '
        "converts local numbers)",
    ),
    (
        "formula",
        PLAN,
        "",
        "username",
        "alice",
        {"custom:plan": "=SUM(A1:A3)"},
        "row 1, column 'plan' -> custom:plan: looks like a spreadsheet formula "
        "('=SUM(A1:A3)'); Cognito would store it literally; fix the export",
    ),
    (
        "formula",
        '[attributes.name]\ntemplate = "{first} {last}"\n',
        "",
        "username",
        "alice",
        {"name": "=1+1 x"},
        "row 1, template -> name: looks like a spreadsheet formula ('=1+1 x'); "
        "Cognito would store it literally; fix the export",
    ),
    (
        "verified_flag",
        '[attributes.email_verified]\nvalue = "yes"\nwhen = "always"\n',
        "",
        "username",
        "alice",
        {"email_verified": "yes"},
        "row 1, value -> email_verified: 'yes' must be true or false",
    ),
    (
        "control_character",
        '[attributes.name]\ncolumn = "name"\n',
        "",
        "username",
        "alice",
        {"name": "Ada\x00Lovelace"},
        "row 1, column 'name' -> name: holds the control character U+0000 at "
        "position 4 ('Ada\ufffdLovelace'); Cognito may refuse or store it, and it "
        "breaks CSV files and logs: fix the export",
    ),
    (
        "not_finite",
        SEATS,
        "",
        "username",
        "alice",
        {"custom:seats": None},
        "row 1, column 'seats' -> custom:seats: NaN (not a number) in a "
        "floating-point column is no value: store a null for a missing value (or "
        "fix the number)",
    ),
]


@pytest.mark.parametrize(
    ("code", "attributes", "options", "user_as", "key", "values", "message"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_problem_code(
    tmp_path: Path,
    schema: PoolSchema,
    code: str,
    attributes: str,
    options: str,
    user_as: str,
    key: str | None,
    values: dict[str, str | None],
    message: str,
) -> None:
    m = mapping(tmp_path, attributes, user_as=user_as, options=options)
    # A transform problem arrives with the original cell in the value column.
    problems: dict[str, Sequence[str | None]] | None = (
        {"phone_number": ["'555-01' is not a valid phone number (default region US)"]}
        if code == "transform"
        else None
    )
    tokens: list[str | None] | None = [None] if code == "missing_token" else None
    # A NaN cell arrives as no value plus its cell problem.
    cells: dict[str, Sequence[str | None]] | None = (
        {"custom:seats": ["NaN (not a number)"]} if code == "not_finite" else None
    )
    frame = batch(
        m,
        [key],
        {a: [v] for a, v in values.items()},
        problems=problems,
        tokens=tokens,
        cells=cells,
    )
    v = validator(m, schema)
    out = v.validate(frame)
    assert problems_of(out) == [(code, message)]
    assert v.counts[code] == 1


def test_every_code_has_a_case() -> None:
    assert {c[0] for c in CASES} | {"duplicate_user"} == set(CODES)


def test_valid_rows_have_no_problem(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, PLAN + SEATS + BIRTH + EMAIL + PHONE + NEWS)
    frame = batch(
        m,
        ["alice", "bob"],
        {
            "custom:plan": ["pro", None],
            "custom:seats": ["0", "100000"],
            "birthdate": ["1990-05-17", "0000-12-31"],
            "email": ["alice.o'neil+x@mail.example.co.uk", "JOSÉ@exämple.com"],
            "phone_number": ["+14325551212", "+447700900123"],
            "custom:newsletter": ["true", "false"],
        },
    )
    v = validator(m, schema)
    out = v.validate(frame)
    assert problems_of(out) == [(None, None), (None, None)]
    assert out.columns == [*frame.columns, ERROR_CODE, ERROR_MESSAGE, SUPERSEDED_BY]
    assert out[SUPERSEDED_BY].dtype == pl.Int64
    assert out.drop(ERROR_CODE, ERROR_MESSAGE, SUPERSEDED_BY).equals(frame)
    assert not v.counts


def test_first_code_in_priority_order_and_all_messages(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, PHONE + SEATS, options='blank = "error"')
    frame = batch(
        m,
        [None],
        {"phone_number": ["=1"], "custom:seats": [None]},
    )
    out = validator(m, schema).validate(frame)
    assert problems_of(out) == [
        (
            "missing_user",
            "row 1, column 'username' -> user: blank; every row needs a username; "
            "row 1, column 'seats' -> custom:seats: blank, and blank = \"error\"; "
            "row 1, column 'phone' -> phone_number: '=1' is not an E.164 phone number "
            '(+ and 7 to 15 digits, e.g. +14325551212; transform = ["e164"] converts '
            "local numbers); "
            "row 1, column 'phone' -> phone_number: looks like a spreadsheet formula "
            "('=1'); Cognito would store it literally; fix the export",
        )
    ]


def test_transform_problem_suppresses_value_checks(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, PHONE)
    frame = batch(
        m, ["alice"], {"phone_number": ["=555"]}, problems={"phone_number": ["bad"]}
    )
    out = validator(m, schema).validate(frame)
    assert problems_of(out) == [
        ("transform", "row 1, column 'phone' -> phone_number: bad")
    ]


def test_blank_skip_is_not_a_problem(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, PLAN + EMAIL)
    out = validator(m, schema).validate(batch(m, ["alice"]))
    assert problems_of(out) == [(None, None)]


def test_token_is_never_shown(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, PLAN, options=TOKEN_OPTIONS)
    secret = "eyJraWQiOi secret token"
    frame = batch(
        m,
        ["alice", "bob"],
        {"custom:plan": ["pro", "pro"]},
        tokens=[secret, "ok.tok-1_="],
    )
    out = validator(m, schema).validate(frame)
    assert problems_of(out) == [
        (
            "missing_token",
            "row 1, column 'access_token' -> token: not an access token (only "
            "letters, digits and - _ = . are allowed); the value is not shown",
        ),
        (None, None),
    ]
    assert not any(secret in str(c) for c in out[ERROR_MESSAGE])


@pytest.mark.parametrize(
    ("user_as", "key", "ok"),
    [
        ("email", "Alice.Smith@Example.COM", True),
        ("email", "alice smith@example.com", False),
        ("phone_number", "+14325551212", True),
        ("phone_number", "+04325551212", False),
        ("phone_number", "14325551212", False),
        ("sub", "7D3C5D2E-8F0A-4B1C-9E6D-2A4F6B8C0E1F", True),
        ("username", "José_Ωmega.1@x", True),
        ("username", "tab\there", False),
        ("username", "zero\u200bwidth", False),
        ("username", "nb\u00a0sp", False),
    ],
)
def test_user_key_formats(
    tmp_path: Path, schema: PoolSchema, user_as: str, key: str, ok: bool
) -> None:
    m = mapping(tmp_path, PLAN, user_as=user_as)
    out = validator(m, schema).validate(batch(m, [key], {"custom:plan": ["pro"]}))
    assert (out[ERROR_CODE][0] is None) is ok


def test_date_time_attributes(tmp_path: Path, schema: PoolSchema) -> None:
    joined = AttributeSchema(
        name="custom:joined",
        data_type="DateTime",
        mutable=True,
        required=False,
        developer_only=False,
    )
    pool = dataclasses.replace(
        schema, attributes={**schema.attributes, "custom:joined": joined}
    )
    m = mapping(tmp_path, '[attributes."custom:joined"]\ncolumn = "joined"\n')
    good = [
        "2024-02-29",
        "2024-02-29T10:15:00Z",
        "2024-02-29 10:15",
        "2024-02-29T10:15:00.5+02:00",
    ]
    frame = batch(m, ["u"] * 5, {"custom:joined": [*good, "29/02/2024"]})
    out = validator(m, pool).validate(frame)
    assert problems_of(out)[:4] == [(None, None)] * 4
    assert problems_of(out)[4] == (
        "bad_date",
        "row 5, column 'joined' -> custom:joined: '29/02/2024' is not an ISO 8601 "
        "date or date-time (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)",
    )


def test_counts_accumulate_over_batches(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, SEATS)
    v = validator(m, schema)
    v.validate(batch(m, ["a", None], {"custom:seats": ["x", "-4"]}))
    v.validate(batch(m, ["b"], {"custom:seats": ["y"]}, first_row=3))
    assert v.counts == {"not_a_number": 2, "missing_user": 1, "out_of_range": 1}


def test_empty_batch(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, SEATS)
    out = validator(m, schema).validate(batch(m, []))
    assert out.height == 0
    assert out.schema[ERROR_CODE] == pl.String


# --- duplicates ---------------------------------------------------------------


KEYS = ["Bob", "alice", "BOB", "carol", "bob", "", None, "  "]
# What Mapping.apply makes of them: stripped, blank as null.
USERS = [k.strip() or None if k is not None else None for k in KEYS]


def test_duplicates_error_marks_every_row_across_batches(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, PLAN)
    v = validator(m, schema, KEYS)
    first = v.validate(batch(m, USERS[:3], {"custom:plan": ["pro"] * 3}))
    second = v.validate(batch(m, USERS[3:5], {"custom:plan": ["pro"] * 2}, first_row=4))
    message = (
        "row {}, column 'username' -> user: same user as rows {} "
        '(duplicates = "error")'
    )
    assert problems_of(first) == [
        ("duplicate_user", message.format(1, "3, 5")),
        (None, None),
        ("duplicate_user", message.format(3, "1, 5")),
    ]
    assert problems_of(second) == [
        (None, None),
        ("duplicate_user", message.format(5, "1, 3")),
    ]
    assert first[SUPERSEDED_BY].to_list() == [None, None, None]
    assert v.counts == {"duplicate_user": 3}


def test_duplicates_last_supersedes_earlier_rows(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, PLAN, options='duplicates = "last"')
    v = validator(m, schema, KEYS)
    first = v.validate(batch(m, USERS[:3], {"custom:plan": ["pro"] * 3}))
    second = v.validate(batch(m, USERS[3:], {"custom:plan": ["pro"] * 5}, first_row=4))
    assert first[SUPERSEDED_BY].to_list() == [5, None, 5]
    assert second[SUPERSEDED_BY].to_list() == [None, None, None, None, None]
    assert first[ERROR_CODE].to_list() == [None, None, None]
    # Blank keys are their own problem, never duplicates of each other.
    assert second[ERROR_CODE].to_list() == [None, None, *["missing_user"] * 3]


def test_one_pair_names_the_other_row(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, PLAN)
    v = validator(m, schema, ["x", "y", "x"])
    out = v.validate(batch(m, ["x", "y", "x"], {"custom:plan": ["a", "b", "c"]}))
    assert out[ERROR_MESSAGE][2] == (
        "row 3, column 'username' -> user: same user as row 1 (duplicates = \"error\")"
    )


def test_big_group_lists_five_rows(tmp_path: Path, schema: PoolSchema) -> None:
    keys = ["n/a"] * 9
    m = mapping(tmp_path, PLAN)
    out = validator(m, schema, keys).validate(
        batch(m, keys, {"custom:plan": ["p"] * 9})
    )
    assert out[ERROR_MESSAGE][6] == (
        "row 7, column 'username' -> user: same user as rows 1, 2, 3, 4, 5 and 3 more "
        '(duplicates = "error")'
    )


def frame_of(keys: Sequence[str | None]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {ROW: range(1, len(keys) + 1), USER: list(keys)},
        schema={ROW: pl.Int64, USER: pl.String},
    )


@pytest.mark.parametrize(
    ("user_as", "case_sensitive", "keys", "duplicated"),
    [
        # Keys compare as the pool compares them: folded only in a pool whose
        # CaseSensitive is false; a pool described without it is case-sensitive.
        ("username", None, ["Bob", "bob"], []),
        ("username", False, ["Bob", "bob"], [1, 2]),
        ("username", True, ["Bob", "bob"], []),
        ("username", True, ["bob", "bob"], [1, 2]),
        ("email", True, ["A@x.com", "a@X.com"], []),
        ("email", False, ["A@x.com", " a@X.com"], [1, 2]),
        (
            "sub",
            True,
            [
                "7D3C5D2E-8F0A-4B1C-9E6D-2A4F6B8C0E1F",
                "7d3c5d2e-8f0a-4b1c-9e6d-2a4f6b8c0e1f",
            ],
            [1, 2],
        ),
        (
            "phone_number",
            None,
            ["+14325551212", "+14325551212", "+14325551213"],
            [1, 2],
        ),
        ("username", None, ["", "", None, None, " ", "\t"], []),
        ("username", None, ["a", "b", "c"], []),
    ],
)
def test_duplicate_key_rules(
    user_as: str,
    case_sensitive: bool | None,
    keys: list[str | None],
    duplicated: list[int],
) -> None:
    index = find_duplicates(
        frame_of(keys), user_as=user_as, case_sensitive=case_sensitive
    )
    assert index.rows[ROW].to_list() == duplicated
    assert len(index) == len(duplicated)
    assert index.groups == (1 if duplicated else 0)


def test_empty_duplicate_index_lookup() -> None:
    index = DuplicateIndex()
    found = index.lookup(pl.Series([3, 1], dtype=pl.Int64))
    assert found.height == 2
    assert found.null_count().row(0)[1:] == (2, 2)


# --- exact and in bounded memory -----------------------------------------------


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of a few rows already split into partitions and tables on disk."""
    monkeypatch.setattr(spill, "PARTITION_ROWS", 8)
    monkeypatch.setattr(spill, "FLUSH_ROWS", 5)
    monkeypatch.setattr(spill, "CHUNK_ROWS", 3)
    monkeypatch.setattr(spill, "BUCKET_ROWS", 4)


@pytest.fixture
def colliding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key hashes alike: any answer that trusted hashes would be wrong."""
    monkeypatch.setattr(
        spill, "key_hash", lambda columns, seed=0: pl.col(columns[0]).hash(seed) * 0
    )


def reference(keys: Sequence[str | None]) -> dict[int, tuple[str, int]]:
    """row -> (others, last) by brute force, for usernames of a case-blind pool."""
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys, start=1):
        if key is not None and key.strip():
            groups.setdefault(key.strip().lower(), []).append(row)
    found: dict[int, tuple[str, int]] = {}
    for rows in groups.values():
        if len(rows) < 2:
            continue
        for row in rows:
            others = [r for r in rows if r != row]
            shown = ", ".join(map(str, others[:5]))
            more = len(others) - len(others[:5])
            text = f"rows {shown}" if len(others) > 1 else f"row {shown}"
            found[row] = (text + (f" and {more} more" if more else ""), max(rows))
    return found


def found_by(index: DuplicateIndex) -> dict[int, tuple[str, int]]:
    return {row: (others, last) for row, others, last in index.rows.rows()}


def test_a_forced_hash_collision_is_not_a_duplicate(colliding: None) -> None:
    keys = ["ann", "bob", "cy", "Bob", "dee"]
    index = find_duplicates(frame_of(keys), user_as="username", case_sensitive=False)
    assert found_by(index) == {2: ("row 4", 4), 4: ("row 2", 4)}
    assert index.groups == 1


def test_a_forced_hash_collision_on_disk_is_not_a_duplicate(
    small_partitions: None, colliding: None
) -> None:
    keys = [f"user{i}" for i in range(30)] + ["user3"]
    index = find_duplicates(frame_of(keys), user_as="username", case_sensitive=False)
    assert found_by(index) == {4: ("row 31", 31), 31: ("row 4", 31)}


def test_duplicates_across_partitions_and_pieces_are_found(
    small_partitions: None,
) -> None:
    # 40 rows: 5 partitions written in pieces of 5 rows, read 3 rows at a time;
    # each group's rows are far apart, so they meet only in their partition.
    keys = [f"k{i % 13}" if i % 4 else f"solo{i}" for i in range(40)]
    index = find_duplicates(frame_of(keys), user_as="username", case_sensitive=False)
    assert index.table.spilled
    assert found_by(index) == reference(keys)
    looked = index.lookup(pl.Series(range(1, 41)))
    expected = reference(keys)
    assert looked[DUPLICATE_LAST].to_list() == [
        expected[r][1] if r in expected else None for r in range(1, 41)
    ]


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.one_of(st.none(), st.sampled_from(["a", "A", " a", "b", "", " ", "c1"])),
        max_size=60,
    ),
    spilled=st.booleans(),
)
def test_duplicates_match_a_brute_force_count(
    keys: list[str | None], spilled: bool
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        if spilled:
            patch.setattr(spill, "PARTITION_ROWS", 6)
            patch.setattr(spill, "FLUSH_ROWS", 4)
            patch.setattr(spill, "CHUNK_ROWS", 5)
            patch.setattr(spill, "BUCKET_ROWS", 7)
        index = find_duplicates(
            frame_of(keys), user_as="username", case_sensitive=False
        )
    assert found_by(index) == reference(keys)


def shared(values: Sequence[tuple[str, str]]) -> dict[int, tuple[str, int]]:
    """find_shared_values over (value, owner) per row, as row -> (others, last)."""
    frame = pl.DataFrame(
        {
            ROW: range(1, len(values) + 1),
            DUPLICATE_KEY: [v for v, _ in values],
            DUPLICATE_OWNER: [o for _, o in values],
        },
        schema={ROW: pl.Int64, DUPLICATE_KEY: pl.String, DUPLICATE_OWNER: pl.String},
    )
    parts = [frame.slice(i, 3) for i in range(0, frame.height, 3)]
    return found_by(find_shared_values(parts))


def test_one_user_given_one_value_twice_shares_it_with_nobody() -> None:
    assert shared([("a@x", "ann"), ("a@x", "ann"), ("b@x", "bob")]) == {}


def test_two_users_given_one_value_share_it_from_their_last_rows() -> None:
    values = [("a@x", "ann"), ("a@x", "bob"), ("a@x", "ann"), ("c@x", "cy")]
    assert shared(values) == {2: ("row 3", 3), 3: ("row 2", 3)}


def test_shared_values_are_exact_on_disk_under_colliding_hashes(
    small_partitions: None, colliding: None
) -> None:
    values = [(f"v{i}", f"u{i}") for i in range(30)]
    values += [("v7", "u7"), ("v9", "someone")]
    assert shared(values) == {10: ("row 32", 32), 32: ("row 10", 32)}


def test_a_value_shared_by_many_users_spreads_over_partitions(
    small_partitions: None,
) -> None:
    values = [("+15550100", f"user{i}") for i in range(40)]
    found = shared(values)
    assert sorted(found) == list(range(1, 41))
    assert found[7] == ("rows 1, 2, 3, 4, 5 and 34 more", 40)


# --- check_mapping --------------------------------------------------------------


def test_unknown_attributes_suggest_names(tmp_path: Path, schema: PoolSchema) -> None:
    m = renamed(
        mapping(tmp_path, PLAN),
        [
            "tenant_id",
            "custom:internal_id",
            "custom:tennant_id",
            "custom:email",
            "shoe_size",
        ],
    )
    with pytest.raises(MappingError) as info:
        check_mapping(m, schema)
    assert info.value.path == m.path
    assert str(info.value) == f"{m.path}: " + "\n".join(
        [
            "[attributes.tenant_id]: tenant_id is not an attribute of this pool; did "
            "you mean custom:tenant_id? (custom attributes are written with the "
            "custom: prefix)",
            '[attributes."custom:internal_id"]: custom:internal_id is not an attribute '
            "of this pool; did you mean dev:custom:internal_id? (developer-only "
            "attributes are written with the dev:custom: prefix)",
            '[attributes."custom:tennant_id"]: custom:tennant_id is not an attribute '
            "of this pool; did you mean custom:tenant_id?",
            '[attributes."custom:email"]: custom:email is not an attribute of this '
            "pool; did you mean email? (standard attributes have no prefix)",
            "[attributes.shoe_size]: shoe_size is not an attribute of this pool "
            "(custom attributes are written with the custom: prefix; this pool's "
            "custom attributes: custom:tenant_id, custom:plan, custom:legacy_flag, "
            "custom:newsletter, custom:seats, custom:employee_id, "
            "dev:custom:internal_id)",
        ]
    )


@pytest.mark.parametrize(
    ("attributes", "options", "extra", "message"),
    [
        (
            '[attributes."custom:employee_id"]\ncolumn = "emp"\n',
            "",
            "",
            '[attributes."custom:employee_id"]: custom:employee_id is immutable: '
            "Cognito only writes it when a user is created",
        ),
        (
            '[attributes.sub]\ncolumn = "sub"\n',
            "",
            "",
            "[attributes.sub]: sub is the user's permanent id, assigned by Cognito: it "
            "cannot be written",
        ),
        (
            '[attributes.identities]\ncolumn = "ids"\n',
            "",
            "",
            "[attributes.identities]: identities is managed by Cognito (linked sign-in "
            "providers): it cannot be written",
        ),
        (
            '[attributes."dev:custom:internal_id"]\ncolumn = "iid"\n',
            TOKEN_OPTIONS,
            "",
            '[attributes."dev:custom:internal_id"]: dev:custom:internal_id is '
            "developer-only: only IAM-authenticated calls can write it, so it needs "
            'api = "admin"',
        ),
        (
            PLAN,
            "",
            '[delete]\nattributes = ["email"]\n',
            "[delete] attributes: email is required in this pool: it cannot be deleted",
        ),
        (
            PLAN,
            "",
            '[delete]\nattributes = ["custom:employee_id"]\n',
            "[delete] attributes: custom:employee_id is immutable: Cognito only writes "
            "it when a user is created",
        ),
        (
            EMAIL,
            'blank = "delete"',
            "",
            '[attributes.email]: email is required in this pool, so blank = "delete" '
            'could not delete it; use blank = "skip" or "error"',
        ),
    ],
)
def test_mapping_errors(
    tmp_path: Path,
    schema: PoolSchema,
    attributes: str,
    options: str,
    extra: str,
    message: str,
) -> None:
    m = mapping(tmp_path, attributes, options=options, extra=extra)
    with pytest.raises(MappingError) as info:
        check_mapping(m, schema)
    assert str(info.value) == f"{m.path}: {message}"


def test_key_must_be_a_sign_in_attribute(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(tmp_path, PLAN, user="phone", user_as="phone_number")
    with pytest.raises(MappingError) as info:
        check_mapping(m, schema)
    assert str(info.value) == (
        f'{m.path}: [user] as = "phone_number", but this pool does not sign users in '
        "with phone_number (not in UsernameAttributes or AliasAttributes), so "
        "Cognito cannot find users by it; key the file by username or sub"
    )
    # The sample pool has email as an alias, so email keys work.
    assert (
        check_mapping(mapping(tmp_path, PLAN, user="mail", user_as="email"), schema)
        == []
    )


def test_sample_style_mappings_warnings(tmp_path: Path, schema: PoolSchema) -> None:
    tenant = mapping(tmp_path, '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n')
    assert check_mapping(tenant, schema) == []

    phone = mapping(
        tmp_path,
        '[attributes.phone_number]\ncolumn = "phone"\ntransform = ["e164"]\n'
        'region = "US"\n\n[attributes.phone_number_verified]\nvalue = "true"\n',
    )
    assert check_mapping(phone, schema) == [
        'phone_number is set with phone_number_verified = "true": Cognito changes it '
        "at once, keeps it verified and sends no message"
    ]

    plan = mapping(
        tmp_path,
        PLAN + 'transform = ["strip", "lower"]\n',
        extra='[delete]\nattributes = ["custom:legacy_flag"]\n',
    )
    assert check_mapping(plan, schema) == [
        "[delete] removes custom:legacy_flag from every user in the file"
    ]

    token = mapping(tmp_path, PLAN, options=TOKEN_OPTIONS)
    assert check_mapping(token, schema) == [
        'api = "token": the app client that issued the tokens must be allowed to '
        "write custom:plan, or Cognito rejects every call"
    ]


def test_email_change_warnings(tmp_path: Path, schema: PoolSchema) -> None:
    plain = mapping(tmp_path, EMAIL)
    assert check_mapping(plain, schema) == [
        "email is set: Cognito writes the new email address at once, unverified, and "
        "sends a verification code by email to each one; users cannot sign in with "
        "an unverified email alias until they verify it; to change it at once "
        'without a message, map email_verified = "true" (value) as well'
    ]
    verified = mapping(
        tmp_path, EMAIL + '[attributes.email_verified]\nvalue = "true"\n'
    )
    assert check_mapping(verified, schema) == [
        'email is set with email_verified = "true": Cognito changes it at once, keeps '
        "it verified and sends no message; an email address already verified on "
        "another user moves to this user without an error, so make sure no two users "
        "share one"
    ]
    pending = dataclasses.replace(
        schema,
        verify_before_update=("email",),
        lambda_triggers=("PreSignUp", "CustomMessage"),
    )
    assert check_mapping(plain, pending) == [
        "email is set: this pool keeps the old email address until the user confirms "
        "the new one (AttributesRequireVerificationBeforeUpdate) and sends a "
        "verification code by email to every new email address; to change it at "
        'once without a message, map email_verified = "true" (value) as well',
        "the pool's CustomMessage trigger runs for every verification message this "
        "job causes",
    ]


def test_other_warnings(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(
        tmp_path,
        PLAN + '[attributes.email_verified]\nvalue = "true"\nwhen = "always"\n',
        options='blank = "delete"',
        extra='[client_metadata]\nsource = "crm"\n',
    )
    assert check_mapping(m, schema) == [
        'email_verified = "true" without email in the mapping marks every user\'s '
        "current email verified without checking it",
        'blank = "delete": an empty cell deletes the attribute (custom:plan)',
        "[client_metadata] reaches only message triggers (CustomMessage, "
        "CustomEmailSender, CustomSMSSender) and this pool has none: it is ignored",
    ]


# --- robustness -----------------------------------------------------------------

cell = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(["true", "=x", "12", "-3", "1990-01-01", "+14325551212", "a@b.co"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            cell, cell, cell, cell, cell, st.one_of(st.none(), st.text(max_size=20))
        ),
        max_size=12,
    ),
    policy=st.sampled_from(["error", "last"]),
    blank=st.sampled_from(["skip", "error", "delete"]),
)
def test_validate_never_raises(
    tmp_path: Path,
    schema: PoolSchema,
    rows: list[tuple[str | None, ...]],
    policy: str,
    blank: str,
) -> None:
    m = mapping(
        tmp_path,
        PLAN + SEATS + BIRTH + PHONE,
        options=f'duplicates = "{policy}"\nblank = "{blank}"',
    )
    users = [r[0] for r in rows]
    v = validator(m, schema, users)
    names = ["custom:plan", "custom:seats", "birthdate", "phone_number"]
    frame = batch(
        m,
        users,
        {n: [r[i + 1] for r in rows] for i, n in enumerate(names)},
        problems={"phone_number": [r[5] for r in rows]},
    )
    out = v.validate(frame)
    assert out.height == frame.height
    assert set(out[ERROR_CODE].drop_nulls()) <= set(CODES)
    assert (out[ERROR_CODE].is_null() == out[ERROR_MESSAGE].is_null()).all()
    assert sum(v.counts.values()) >= out[ERROR_CODE].drop_nulls().len()


def test_constant_without_problem_column(tmp_path: Path, schema: PoolSchema) -> None:
    m = mapping(
        tmp_path, '[attributes.email_verified]\nvalue = "true"\nwhen = "always"\n'
    )
    frame = batch(m, ["alice"], {"email_verified": ["true"]})
    out = validator(m, schema).validate(frame.drop(problem_col("email_verified")))
    assert problems_of(out) == [(None, None)]


def test_find_duplicates_takes_batches() -> None:
    batches = [
        pl.DataFrame({ROW: [1, 2], USER: ["a", "b"]}),
        pl.DataFrame({ROW: [3], USER: ["A"]}),
    ]
    index = find_duplicates(batches, user_as="username", case_sensitive=False)
    assert index.rows[ROW].to_list() == [1, 3]


def test_find_duplicates_has_collect_explain_a_read_error(tmp_path: Path) -> None:
    # Source.collect turns a polars read error into a SourceError naming the row.
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"username\na\nb,c\n")
    keys = pl.scan_csv(bad, schema={"username": pl.String}).select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW),
        pl.col("username").alias(USER),
    )

    class Explained(Exception):
        pass

    def collect(query: pl.LazyFrame) -> pl.DataFrame:
        raise Explained

    with pytest.raises(Explained):
        find_duplicates(keys, user_as="username", case_sensitive=None, collect=collect)


# --- control characters, floats with no text, "5.0" ----------------------------------

NAME = '[attributes.name]\ncolumn = "name"\n'


@pytest.mark.parametrize(
    ("value", "code", "position"),
    [
        ("\x00", "00", 1),
        ("Ada\x01", "01", 4),
        ("\x1b[31mred", "1B", 1),
        ("del\x7f", "7F", 4),
        ("ca\u0085fé", "85", 3),
        ("é\x9f", "9F", 2),
    ],
)
def test_control_characters_are_invalid(
    tmp_path: Path, schema: PoolSchema, value: str, code: str, position: int
) -> None:
    m = mapping(tmp_path, NAME)
    out = validator(m, schema).validate(batch(m, ["alice"], {"name": [value]}))
    ((error_code, message),) = problems_of(out)
    assert error_code == "control_character"
    assert message is not None
    assert f"holds the control character U+00{code} at position {position}" in message
    # The message itself never carries the character.
    assert not any(
        ch in message for ch in value if ord(ch) < 32 or 127 <= ord(ch) < 160
    )


@pytest.mark.parametrize("value", ["a\tb", "1 Main St\nTown", "line\r\nend", "naïve ☃"])
def test_tab_and_line_breaks_are_allowed(
    tmp_path: Path, schema: PoolSchema, value: str
) -> None:
    m = mapping(tmp_path, NAME)
    out = validator(m, schema).validate(batch(m, ["alice"], {"name": [value]}))
    assert problems_of(out) == [(None, None)]


def test_a_control_character_from_a_template_or_map_is_caught(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, '[attributes.name]\ntemplate = "{first} {last}"\n')
    out = validator(m, schema).validate(batch(m, ["alice"], {"name": ["A\x00 B"]}))
    assert out[ERROR_CODE].to_list() == ["control_character"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "5.0",
            "row 1, column 'seats' -> custom:seats: '5.0' is not a whole number "
            "(Cognito Number attributes hold integers); write '5'",
        ),
        (
            "-12.000",
            "row 1, column 'seats' -> custom:seats: '-12.000' is not a whole number "
            "(Cognito Number attributes hold integers); write '-12'",
        ),
        (
            "5.5",
            "row 1, column 'seats' -> custom:seats: '5.5' is not a whole number "
            "(Cognito Number attributes hold integers)",
        ),
    ],
)
def test_a_decimal_typed_for_a_number_is_refused_with_the_whole_number(
    tmp_path: Path, schema: PoolSchema, value: str, message: str
) -> None:
    # Text is checked as written: "5.0" may be a decimal column exported by
    # mistake, so it is not rounded; the message says what to write instead.
    m = mapping(tmp_path, SEATS)
    out = validator(m, schema).validate(batch(m, ["alice"], {"custom:seats": [value]}))
    assert problems_of(out) == [("not_a_number", message)]


def test_a_nan_key_is_not_finite_not_missing(
    tmp_path: Path, schema: PoolSchema
) -> None:
    m = mapping(tmp_path, PLAN)
    frame = batch(
        m,
        [None],
        {"custom:plan": ["pro"]},
        cells={USER: ["NaN (not a number)"]},
    )
    out = validator(m, schema).validate(frame)
    assert problems_of(out) == [
        (
            "not_finite",
            "row 1, column 'username' -> user: NaN (not a number) in a "
            "floating-point column is no value: store a null for a missing value "
            "(or fix the number)",
        )
    ]


@pytest.mark.parametrize("blank", ["skip", "error", "delete"])
def test_a_nan_cell_is_only_not_finite_whatever_the_blank_policy(
    tmp_path: Path, schema: PoolSchema, blank: str
) -> None:
    m = mapping(tmp_path, SEATS, options=f'blank = "{blank}"')
    frame = batch(
        m,
        ["alice"],
        {"custom:seats": [None]},
        cells={"custom:seats": ["inf (infinity)"]},
    )
    out = validator(m, schema).validate(frame)
    assert out[ERROR_CODE].to_list() == ["not_finite"]
    assert "blank" not in (out[ERROR_MESSAGE][0] or "")
