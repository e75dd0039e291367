"""Bad input at the command line: one clear line and exit 2, or a per-row verdict.

Whole-file problems (unreadable input, broken mapping or schema) stop before
anything is read or sent: exit 2 and one "Error: ..." line naming the file (and
the row and column where there is one). Problems of single rows are data: the
row is reported invalid with a code and a message naming row and column, the
summary counts it, and it is never sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.sandbox import EmulatedPool
from tests.cli.helpers import (
    BACKFILL,
    SCHEMA,
    SCHEMA_FILE,
    invoke,
    mapping,
    read_report,
    real_run_args,
    without_preflight,
    write,
)

UTF8_HINT = (
    "the file is not UTF-8: re-export it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
)
DESCRIBE_HINT = (
    "expected the output of `aws cognito-idp describe-user-pool --user-pool-id ID`: "
    "a JSON object with UserPool.SchemaAttributes"
)
TENANT = '[attributes."custom:tenant_id"]\ncolumn = "tenant"\n'


def config_error(
    input_name: str, mapping_path: str | Path = BACKFILL, *extra: str
) -> str:
    """Validate against the samples' schema; returns the output of a config error."""
    result = invoke(
        "validate", input_name, "-m", mapping_path, "--schema", SCHEMA_FILE, *extra
    )
    assert result.exit_code == 2, result.output
    assert len(result.output.splitlines()) == 1, result.output
    assert result.stdout == ""
    return result.output


# --- the input file -------------------------------------------------------------------


def test_missing_input_file() -> None:
    assert (
        config_error("nope.csv") == "Error: nope.csv: file not found; check the path\n"
    )


def test_input_is_a_directory() -> None:
    Path("adir").mkdir()
    assert config_error("adir") == (
        "Error: adir: is an empty folder; give a CSV or Parquet file, or a folder "
        "of Parquet parts\n"
    )


def test_empty_file() -> None:
    write("empty.csv", "")
    assert config_error("empty.csv") == (
        "Error: empty.csv: the file is empty; expected a header row naming the "
        "columns\n"
    )


@pytest.mark.parametrize("data", ["username,tenant\n", "username,tenant\n\n\n"])
def test_header_only(data: str) -> None:
    write("header.csv", data)
    assert config_error("header.csv") == (
        "Error: header.csv: has a header but no data rows; nothing to migrate\n"
    )


def test_missing_key_column() -> None:
    write("nokey.csv", "user,tenant\nalice,acme\n")
    assert config_error("nokey.csv") == (
        f"Error: {BACKFILL}: [user] column 'username' is not in nokey.csv "
        "(columns: user, tenant); did you mean 'user'?\n"
    )


def test_mapped_column_missing_from_input() -> None:
    write("nocol.csv", "username,tnt\nalice,acme\n")
    assert config_error("nocol.csv") == (
        f"Error: {BACKFILL}: [attributes.\"custom:tenant_id\"] column 'tenant' is "
        "not in nocol.csv (columns: username, tnt); did you mean 'tnt'?\n"
    )


@pytest.mark.parametrize(
    ("delimiter", "shown", "flag"),
    [(";", "username;tenant", "';'"), ("\t", "username\\ttenant", "'\\t'")],
    ids=["semicolon", "tab"],
)
def test_wrong_delimiter_suggests_the_right_one(
    delimiter: str, shown: str, flag: str
) -> None:
    write("other.csv", f"username{delimiter}tenant\nalice{delimiter}acme\n")
    separated = "';'-separated" if delimiter == ";" else "tab-separated"
    assert config_error("other.csv") == (
        f"Error: other.csv: the header has a single column '{shown}'; the file "
        f"looks {separated}: pass --delimiter {flag}\n"
    )
    # Following the advice works (the shell passes '\t' as backslash-t).
    result = invoke(
        "validate",
        "other.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--delimiter",
        flag.strip("'"),
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Rows: 1\n  would_update  1\n")


@pytest.mark.parametrize("delimiter", ["", ";;"])
def test_bad_delimiter_option(delimiter: str) -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    assert config_error("in.csv", BACKFILL, "--delimiter", delimiter) == (
        "Error: the delimiter must be one ASCII character other than a double "
        f"quote or a line break, got {delimiter!r}\n"
    )


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"username,tenant\nalice,acme\nbob,caf\xe9\n", "row 2, column 'tenant'"),
        (b"username,tenant\ncaf\xe9,acme\n", "row 1, column 'username'"),
    ],
    ids=["value", "key"],
)
def test_latin1_bytes_name_the_row(data: bytes, where: str) -> None:
    write("latin.csv", data)
    assert config_error("latin.csv") == (
        f"Error: latin.csv, {where}: invalid byte 0xE9; {UTF8_HINT}\n"
    )


def test_latin1_deep_in_the_file_leaves_no_report() -> None:
    lines = [b"username,tenant"] + [f"u{i:05d},t".encode() for i in range(1, 1501)]
    lines[1300] = b"u01300,caf\xe9"
    write("deep.csv", b"\n".join(lines) + b"\n")
    result = invoke(
        "run",
        "deep.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
        "--report",
        "deep.report.csv",
    )
    assert result.exit_code == 2
    assert without_preflight(result.output) == (
        f"Error: deep.csv, row 1300, column 'tenant': invalid byte 0xE9; {UTF8_HINT}\n"
    )
    assert sorted(p.name for p in Path().iterdir()) == ["deep.csv"]


def test_utf8_bom_is_not_part_of_the_key_column() -> None:
    write("bom.csv", "\ufeffusername,tenant\nalice,acme\n,globex\n")
    result = invoke(
        "validate",
        "bom.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--report",
        "bom.report.csv",
    )
    # Exit 1 for the row without a user, not 2 for a missing key column.
    assert result.exit_code == 1, result.output
    assert result.output.startswith(
        "Rows: 2\n  would_update  1\n  invalid       1\n\n"
        "Problems by code:\n  missing_user  1\n"
    )
    rows = read_report("bom.report.csv")
    assert list(rows[0])[-2:] == ["input:username", "tenant"]
    assert [(r["user"], r["status"]) for r in rows] == [
        ("alice", "would_update"),
        ("", "invalid"),
    ]


def test_embedded_newlines_and_quotes_round_trip() -> None:
    write(
        "quoted.csv",
        'username,tenant\nalice,"multi\nline"\nbob,"say ""hi"""\r\ncarol,"a,b"\n',
    )
    result = invoke(
        "validate",
        "quoted.csv",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--report",
        "quoted.report.csv",
    )
    assert result.exit_code == 0, result.output
    assert "  alice: set custom:tenant_id='multi\\nline'\n" in result.output
    assert "  bob: set custom:tenant_id='say \"hi\"'\n" in result.output
    rows = read_report("quoted.report.csv")
    assert [(r["row"], r["user"], r["tenant"]) for r in rows] == [
        ("1", "alice", "multi\nline"),
        ("2", "bob", 'say "hi"'),
        ("3", "carol", "a,b"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "username,tenant\nalice,acme\nbob,acme,extra\n",
            "many.csv, row 2: has 3 fields but the header has 2; check the quoting "
            "or the delimiter",
        ),
        (
            "username,tenant\nalice\n",
            "many.csv, row 1: has 1 field but the header has 2; check the quoting "
            "or the delimiter",
        ),
        (
            'username,tenant\nalice,"unterminated\n',
            "many.csv, row 1: opens a quoted field that is never closed; check the "
            "quoting",
        ),
    ],
    ids=["too-many", "too-few", "unterminated-quote"],
)
def test_malformed_rows_name_the_row(data: str, message: str) -> None:
    write("many.csv", data)
    assert config_error("many.csv") == f"Error: {message}\n"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "username,tenant,tenant",
            "the header has duplicate column names: 'tenant' (columns 2, 3); rename "
            "them so that every column name is unique",
        ),
        (
            "username,tenant,",
            "the header has an empty column name (column 3); give every column a name",
        ),
    ],
    ids=["duplicate", "empty"],
)
def test_bad_header(header: str, message: str) -> None:
    write("hdr.csv", f"{header}\nalice,acme,x\n")
    assert config_error("hdr.csv") == f"Error: hdr.csv: {message}\n"


def test_parquet_file_that_is_not_parquet() -> None:
    write("users.parquet", "username,tenant\nalice,acme\n")
    assert config_error("users.parquet") == (
        "Error: users.parquet: is not a Parquet file (no PAR1 magic); is it CSV? "
        "rename it to .csv or pass --format csv\n"
    )
    # The advice works.
    result = invoke(
        "validate",
        "users.parquet",
        "-m",
        BACKFILL,
        "--schema",
        SCHEMA_FILE,
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output


# --- the mapping file -----------------------------------------------------------------


def test_missing_mapping_file() -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    assert config_error("in.csv", "nope.toml") == (
        "Error: nope.toml: cannot read the mapping: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        pytest.param(
            '[attributes."custom:tenant_id"\ncolumn = "tenant"\n',
            "not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 5, column 31)",
            id="toml-syntax",
        ),
        pytest.param(
            '[attributes."custom:tenant_id"]\ncolum = "tenant"\n',
            "[attributes.\"custom:tenant_id\"] unknown key 'colum'; did you mean "
            "'column'?",
            id="unknown-key",
        ),
        pytest.param(
            '[optoins]\nblank = "skip"\n\n' + TENANT,
            "unknown table [optoins]; did you mean [options]?",
            id="unknown-table",
        ),
        pytest.param(
            TENANT + 'transform = ["lowr"]\n',
            "[attributes.\"custom:tenant_id\"] unknown transform 'lowr'; did you mean "
            "'lower'? (valid transforms: bool, date, e164, epoch, lower, squeeze, "
            "strip, title, upper)",
            id="unknown-transform",
        ),
        pytest.param(
            '[attributes.tenant_id]\ncolumn = "tenant"\n',
            "[attributes.tenant_id] 'tenant_id' is not a standard attribute; custom "
            "attributes need the prefix: did you mean 'custom:tenant_id'?",
            id="custom-without-prefix",
        ),
        pytest.param(
            '[attributes."custom:employee_id"]\ncolumn = "emp"\n',
            '[attributes."custom:employee_id"]: custom:employee_id is immutable: '
            "Cognito only writes it when a user is created",
            id="immutable",
        ),
        pytest.param(
            '[attributes.sub]\ncolumn = "tenant"\n',
            "[attributes.sub]: sub is the user's permanent id, assigned by Cognito: "
            "it cannot be written",
            id="sub",
        ),
        pytest.param(
            '[attributes."custom:tenantid"]\ncolumn = "tenant"\n',
            '[attributes."custom:tenantid"]: custom:tenantid is not an attribute of '
            "this pool; did you mean custom:tenant_id?",
            id="not-in-schema-close-name",
        ),
    ],
)
def test_bad_mapping(attributes: str, message: str) -> None:
    write("in.csv", "username,tenant,emp\nalice,acme,E1\n")
    mapping("bad.toml", attributes)
    assert config_error("in.csv", "bad.toml") == f"Error: bad.toml: {message}\n"


def test_attribute_not_in_the_schema() -> None:
    write("in.csv", "username,region\nalice,eu\n")
    mapping("bad.toml", '[attributes."custom:region"]\ncolumn = "region"\n')
    output = config_error("in.csv", "bad.toml")
    assert output.startswith(
        'Error: bad.toml: [attributes."custom:region"]: custom:region is not an '
        "attribute of this pool"
    )
    assert output.endswith(
        "this pool's custom attributes: custom:tenant_id, custom:plan, "
        "custom:legacy_flag, custom:newsletter, custom:seats, custom:employee_id, "
        "dev:custom:internal_id)\n"
    )


# --- the schema file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"Users": []}', DESCRIBE_HINT),
        (
            "not json",
            f"not valid JSON (line 1, column 1: Expecting value); {DESCRIBE_HINT}",
        ),
    ],
    ids=["wrong-json", "not-json"],
)
def test_schema_file_that_is_not_describe_user_pool(content: str, message: str) -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    write("pool.json", content)
    result = invoke("validate", "in.csv", "-m", BACKFILL, "--schema", "pool.json")
    assert result.exit_code == 2
    assert result.output == f"Error: pool.json: {message}\n"


def test_missing_schema_file() -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    result = invoke("validate", "in.csv", "-m", BACKFILL, "--schema", "pool.json")
    assert result.exit_code == 2
    assert result.output == (
        "Error: pool.json: no such file; save the pool schema with `aws cognito-idp "
        "describe-user-pool --user-pool-id ID > pool.json`\n"
    )


def test_validate_needs_a_schema_or_a_pool() -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    result = invoke("validate", "in.csv", "-m", BACKFILL)
    assert result.exit_code == 2
    usage, rest = result.output.split("\n", 1)
    assert usage.startswith("Usage: cognito-migrate validate [OPTIONS] INPUT")
    assert rest == (
        "Try 'cognito-migrate validate --help' for help.\n"
        "\n"
        "Error: give --schema FILE (saved DescribeUserPool output) or --user-pool-id "
        "ID\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run", "--sandbox"], "choose --dry-run or --sandbox, not both"),
        (
            [],
            "--user-pool-id is required for a real run (or use --dry-run / --sandbox)",
        ),
        (["--sandbox"], "--sandbox needs --schema FILE to build its pool"),
    ],
    ids=["dry-run-and-sandbox", "no-pool", "sandbox-without-schema"],
)
def test_run_usage_errors(args: list[str], message: str) -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    result = invoke("run", "in.csv", "-m", BACKFILL, *args)
    assert result.exit_code == 2
    assert result.output.endswith(f"\nError: {message}\n")
    assert not Path("in.backfill-tenant.job.sqlite").exists()


# --- per-row problems -----------------------------------------------------------------

#: Mapping attribute tables by name, each reading the "value" column.
ATTRIBUTES = {
    "tenant": '[attributes."custom:tenant_id"]\ncolumn = "value"\n',
    "seats": '[attributes."custom:seats"]\ncolumn = "value"\n',
    "email": (
        '[attributes.email]\ncolumn = "value"\n\n'
        '[attributes.email_verified]\nvalue = "true"\n'
    ),
    "phone": (
        '[attributes.phone_number]\ncolumn = "value"\n\n'
        '[attributes.phone_number_verified]\nvalue = "true"\n'
    ),
    "e164": (
        '[attributes.phone_number]\ncolumn = "value"\ntransform = ["e164"]\n'
        'region = "US"\n\n[attributes.phone_number_verified]\nvalue = "true"\n'
    ),
}

ROW_PROBLEMS = [
    pytest.param(
        "tenant",
        "acme",
        "x" * 65,
        "too_long",
        "custom:tenant_id: '" + "x" * 40 + "…' is too long: 65 characters, at most 64",
        id="too-long",
    ),
    pytest.param(
        "seats",
        "5",
        "five",
        "not_a_number",
        "custom:seats: 'five' is not a whole number (Cognito Number attributes hold "
        "integers)",
        id="not-a-number",
    ),
    pytest.param(
        "seats",
        "5",
        "100001",
        "out_of_range",
        "custom:seats: '100001' is more than the maximum 100000",
        id="above-max",
    ),
    pytest.param(
        "seats",
        "5",
        "-1",
        "out_of_range",
        "custom:seats: '-1' is less than the minimum 0",
        id="below-min",
    ),
    pytest.param(
        "email",
        "good@example.com",
        "not-an-email",
        "bad_email",
        "email: 'not-an-email' is not a valid email address",
        id="bad-email",
    ),
    pytest.param(
        "phone",
        "+14155550100",
        "415 555 0100",
        "bad_phone",
        "phone_number: '415 555 0100' is not an E.164 phone number (+ and 7 to 15 "
        'digits, e.g. +14325551212; transform = ["e164"] converts local numbers)',
        id="bad-phone",
    ),
    pytest.param(
        "e164",
        "(415) 555-0100",
        "555-01",
        "transform",
        "phone_number: '555-01' is not a valid phone number (default region US)",
        id="bad-phone-e164",
    ),
    pytest.param(
        "tenant",
        "acme",
        "=1+1",
        "formula",
        "custom:tenant_id: looks like a spreadsheet formula ('=1+1'); Cognito would "
        "store it literally; fix the export",
        id="formula",
    ),
]


@pytest.mark.parametrize(("name", "good", "bad", "code", "message"), ROW_PROBLEMS)
def test_row_problem_is_reported_per_row(
    name: str, good: str, bad: str, code: str, message: str
) -> None:
    mapping("m.toml", ATTRIBUTES[name])
    write("in.csv", f"username,value\nok,{good}\nbad,{bad}\n")
    result = invoke(
        "run",
        "in.csv",
        "-m",
        "m.toml",
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
        "--report",
        "r.csv",
    )
    assert result.exit_code == 1, result.output
    assert without_preflight(result.output).startswith(
        "Rows: 2\n"
        "  would_update  1\n"
        "  invalid       1\n"
        "\n"
        "Problems by code:\n"
        f"  {code}  1\n"
        "\n"
    )
    first, second = read_report("r.csv")
    assert (first["status"], first["error_code"]) == ("would_update", "")
    assert second["status"] == "invalid"
    assert second["error_code"] == code
    assert second["error_message"] == f"row 2, column 'value' -> {message}"
    assert second["changed"] == ""
    # The report keeps the cell as written, made safe for spreadsheets.
    assert second["value"] == ("'" + bad if bad.startswith("=") else bad)


@pytest.mark.parametrize(
    ("first", "second"), [("dup", "dup"), ("Dup", "dup ")], ids=["same", "case"]
)
def test_duplicate_users_are_both_invalid(first: str, second: str) -> None:
    # The samples' pool is case-insensitive, and keys are stripped.
    mapping("m.toml", ATTRIBUTES["tenant"], options='duplicates = "error"')
    write("in.csv", f"username,value\n{first},a\nok,b\n{second},c\n")
    result = invoke(
        "validate",
        "in.csv",
        "-m",
        "m.toml",
        "--schema",
        SCHEMA_FILE,
        "--report",
        "r.csv",
    )
    assert result.exit_code == 1, result.output
    assert "\nProblems by code:\n  duplicate_user  2\n" in result.output
    rows = read_report("r.csv")
    assert [(r["status"], r["error_code"], r["error_message"]) for r in rows] == [
        (
            "invalid",
            "duplicate_user",
            "row 1, column 'username' -> user: same user as row 3 "
            '(duplicates = "error")',
        ),
        ("would_update", "", ""),
        (
            "invalid",
            "duplicate_user",
            "row 3, column 'username' -> user: same user as row 1 "
            '(duplicates = "error")',
        ),
    ]


# --- invalid rows are never sent ------------------------------------------------------

ALL_CHECKS = f"""\
{ATTRIBUTES["tenant"].replace('"value"', '"tenant"')}
{ATTRIBUTES["seats"].replace('"value"', '"seats"')}
{ATTRIBUTES["email"].replace('"value"', '"email"')}
{ATTRIBUTES["e164"].replace('"value"', '"phone"')}"""

MIXED = f"""\
username,tenant,seats,email,phone
ok1,acme,5,ok1@example.com,415 555 0100
long,{"x" * 65},5,long@example.com,415 555 0101
nan,acme,five,nan@example.com,415 555 0102
big,acme,100001,big@example.com,415 555 0103
bademail,acme,5,not-an-email,415 555 0104
badphone,acme,5,bp@example.com,555-01
dup,acme,5,dup1@example.com,415 555 0105
dup,acme,6,dup2@example.com,415 555 0106
formula,=SUM(A1),5,f@example.com,415 555 0107
ok2,acme,7,ok2@example.com,415 555 0108
"""

MIXED_PROBLEMS = (
    "Problems by code:\n"
    "  duplicate_user  2\n"
    "  bad_email       1\n"
    "  formula         1\n"
    "  not_a_number    1\n"
    "  out_of_range    1\n"
    "  too_long        1\n"
    "  transform       1\n"
)


def mixed_pool(pool: EmulatedPool) -> str:
    mapping("all.toml", ALL_CHECKS)
    write("mixed.csv", MIXED)
    users = ["ok1", "long", "nan", "big", "bademail", "badphone", "dup", "formula"]
    return pool.seed(SCHEMA, [{"username": u} for u in [*users, "ok2"]])


def test_dry_run_sends_nothing_at_all(pool: EmulatedPool) -> None:
    pool_id = mixed_pool(pool)
    result = invoke(
        "run",
        "mixed.csv",
        "-m",
        "all.toml",
        *real_run_args(pool.endpoint_url, pool_id),
        "--schema",
        SCHEMA_FILE,
        "--dry-run",
    )
    assert result.exit_code == 1, result.output
    assert without_preflight(result.output).startswith(
        "Rows: 10\n  would_update  2\n  invalid       8\n\n" + MIXED_PROBLEMS + "\n"
    )
    assert dict(pool.calls) == {}
    assert not Path("job.sqlite").exists()
    statuses = [r["status"] for r in read_report("report.csv")]
    assert statuses == ["would_update"] + ["invalid"] * 8 + ["would_update"]


def test_dry_run_with_a_pool_only_describes_it(pool: EmulatedPool) -> None:
    pool_id = mixed_pool(pool)
    result = invoke(
        "run",
        "mixed.csv",
        "-m",
        "all.toml",
        *real_run_args(pool.endpoint_url, pool_id),
        "--dry-run",
    )
    assert result.exit_code == 1, result.output
    assert dict(pool.calls) == {"DescribeUserPool": 1}


def test_real_run_sends_only_valid_rows(pool: EmulatedPool) -> None:
    pool_id = mixed_pool(pool)
    result = invoke(
        "run",
        "mixed.csv",
        "-m",
        "all.toml",
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
    )
    assert result.exit_code == 1, result.output
    assert without_preflight(result.output).startswith(
        "Job: job.sqlite\nRows: 10\n  updated  2\n"
    )
    assert dict(pool.calls) == {
        "DescribeUserPool": 1,
        # Each valid row's user is read just before its write, no other.
        "AdminGetUser": 2,
        "AdminUpdateUserAttributes": 2,
    }
    assert pool.writes == {"ok1": 1, "ok2": 1}
    rows = read_report("report.csv")
    assert [(r["user"], r["status"], r["attempts"]) for r in rows] == [
        ("ok1", "updated", "1"),
        ("long", "invalid", "0"),
        ("nan", "invalid", "0"),
        ("big", "invalid", "0"),
        ("bademail", "invalid", "0"),
        ("badphone", "invalid", "0"),
        ("dup", "invalid", "0"),
        ("dup", "invalid", "0"),
        ("formula", "invalid", "0"),
        ("ok2", "updated", "1"),
    ]
    assert pool.user_attributes(pool_id, "ok2")["custom:seats"] == "7"
    assert "custom:tenant_id" not in pool.user_attributes(pool_id, "long")


def test_real_run_summary_lists_problems_by_code(pool: EmulatedPool) -> None:
    pool_id = mixed_pool(pool)
    result = invoke(
        "run",
        "mixed.csv",
        "-m",
        "all.toml",
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
    )
    assert result.exit_code == 1, result.output
    assert "\n\n" + MIXED_PROBLEMS + "\n" in result.output


@pytest.mark.parametrize(
    "bad_row",
    [b"u3,acme,extra", b"u3,caf\xe9"],
    ids=["too-many-fields", "latin1"],
)
def test_real_run_reads_the_whole_file_before_sending(
    pool: EmulatedPool, bad_row: bytes
) -> None:
    pool_id = pool.seed(SCHEMA, [{"username": f"u{i}"} for i in range(1, 4)])
    write("in.csv", b"username,tenant\nu1,acme\nu2,acme\n" + bad_row + b"\n")
    result = invoke(
        "run", "in.csv", "-m", BACKFILL, *real_run_args(pool.endpoint_url, pool_id)
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: in.csv, row 3")
    assert len(result.output.splitlines()) == 1
    assert sum(pool.writes.values()) == 0
    assert "AdminUpdateUserAttributes" not in pool.calls
