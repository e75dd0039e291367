"""The diff's join with a snapshot, done once for the whole file in bounded memory.

``CurrentValues.aligner`` splits the input's keys and the snapshot's users
into hash partitions (on disk when large) and keeps the joined values by row;
each batch then reads its rows back. It must give every row what joining the
batch with the whole snapshot in memory gives.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from migrate import spill
from migrate.aliases import key_chunks
from migrate.mapping import Mapping, load_mapping
from migrate.planning import MATCHES, USERNAME, CurrentValues, current_col, owner_col
from migrate.records import ROW, USER
from migrate.schema import PoolSchema, load_schema_file
from migrate.source import open_source
from migrate.validation import find_duplicates
from tests.conftest import SAMPLES

MAPPING = """\
[user]
column = "username"

[attributes.email]
column = "email"

[attributes.phone_number]
column = "phone"

[attributes."custom:tenant_id"]
column = "tenant"
"""


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "PARTITION_ROWS", 3)
    monkeypatch.setattr(spill, "FLUSH_ROWS", 2)
    monkeypatch.setattr(spill, "CHUNK_ROWS", 3)
    monkeypatch.setattr(spill, "BUCKET_ROWS", 4)


@pytest.fixture
def colliding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        spill, "key_hash", lambda columns, seed=0: pl.col(columns[0]).hash(seed) * 0
    )


@pytest.fixture(scope="module")
def schema() -> PoolSchema:
    return load_schema_file(SAMPLES / "pool-schema.json")


def write_job(tmp_path: Path, seed: int) -> tuple[Path, Mapping, pl.LazyFrame]:
    """A random input and snapshot sharing some users, values and aliases."""
    rng = random.Random(seed)
    names = ["ann", "Ann", "bob", "cy", "dee", "", " eve "] + [
        f"u{i}" for i in range(9)
    ]
    emails = ["a@x.com", "A@x.com", "b@x.com", "", "c@x.com", None]
    phones = ["+14155550100", "+14155550101", "", None]
    rows = rng.randint(0, 40)
    frame = pl.DataFrame(
        {
            "username": [rng.choice(names) for _ in range(rows)],
            "email": [rng.choice(emails) for _ in range(rows)],
            "phone": [rng.choice(phones) for _ in range(rows)],
            "tenant": [rng.choice(["t1", "t2", None]) for _ in range(rows)],
        },
        schema=dict.fromkeys(["username", "email", "phone", "tenant"], pl.String),
    )
    data = tmp_path / "in.csv"
    frame.write_csv(data)
    users = rng.randint(0, 30)
    snapshot = pl.LazyFrame(
        {
            "username": [rng.choice([*names[:5], "z1", "z2"]) for _ in range(users)],
            "status": ["CONFIRMED"] * users,
            "enabled": ["true"] * users,
            "email": [rng.choice(emails) for _ in range(users)],
            "phone_number": [rng.choice(phones) for _ in range(users)],
            "custom:tenant_id": [rng.choice(["t1", "t3", None]) for _ in range(users)],
        },
        schema=dict.fromkeys(
            [
                "username",
                "status",
                "enabled",
                "email",
                "phone_number",
                "custom:tenant_id",
            ],
            pl.String,
        ),
    )
    (tmp_path / "m.toml").write_text(MAPPING)
    return data, load_mapping(tmp_path / "m.toml"), snapshot


def attached(current: CurrentValues, batch: pl.DataFrame) -> pl.DataFrame:
    columns = [
        USERNAME,
        MATCHES,
        current_col("email"),
        current_col("custom:tenant_id"),
        owner_col("email"),
        owner_col("phone_number"),
    ]
    return current.attach(batch).select(ROW, *columns).sort(ROW)


@pytest.mark.parametrize("seed", range(12))
def test_aligned_rows_get_what_a_join_in_memory_gives(
    tmp_path: Path,
    schema: PoolSchema,
    small_partitions: None,
    colliding: None,
    seed: int,
) -> None:
    data, mapping, snapshot = write_job(tmp_path, seed)
    source = open_source(data)
    names = ("email", "phone_number")
    current = CurrentValues.from_snapshot(
        snapshot,
        mapping=mapping,
        case_sensitive=False,
        source="snap",
        alias_attributes=names,
    )
    aligned = current.aligned_to(
        key_chunks(source, mapping, names, case_sensitive=False)
    )
    for batch in source.batches():
        mapped = mapping.apply(batch)
        assert attached(aligned, mapped).equals(attached(current, mapped))


def test_a_big_snapshot_join_is_on_disk(tmp_path: Path, small_partitions: None) -> None:
    rows = 60
    data = tmp_path / "in.csv"
    pl.DataFrame({"username": [f"u{i}" for i in range(rows)]}).write_csv(data)
    (tmp_path / "m.toml").write_text(
        '[user]\ncolumn = "username"\n[attributes."custom:tenant_id"]\nvalue = "t"\n'
    )
    mapping = load_mapping(tmp_path / "m.toml")
    snapshot = pl.LazyFrame(
        {
            "username": [f"U{i}" for i in range(0, rows, 2)],
            "custom:tenant_id": [f"t{i}" for i in range(0, rows, 2)],
        }
    )
    current = CurrentValues.from_snapshot(
        snapshot, mapping=mapping, case_sensitive=False, source="snap"
    )
    source = open_source(data)
    keys = source.scan().select(pl.col(ROW), pl.col("username").alias(USER))
    aligned = current.aligned_to(keys, source.collect)
    assert aligned.by_row is not None
    assert aligned.by_row.spilled
    found = aligned.attach(
        pl.DataFrame({ROW: range(1, rows + 1), USER: [f"u{i}" for i in range(rows)]})
    )
    assert found[USERNAME].to_list() == [
        f"U{i}" if i % 2 == 0 else None for i in range(rows)
    ]
    assert found[current_col("custom:tenant_id")].to_list() == [
        f"t{i}" if i % 2 == 0 else None for i in range(rows)
    ]


def test_find_duplicates_and_the_diff_agree_on_blank_keys(tmp_path: Path) -> None:
    # Blank keys match no snapshot user and duplicate nobody.
    keys = pl.LazyFrame(
        {ROW: [1, 2, 3], USER: ["", None, " "]},
        schema={ROW: pl.Int64, USER: pl.String},
    )
    assert len(find_duplicates(keys, user_as="username", case_sensitive=False)) == 0


@pytest.mark.parametrize("on_disk", [False, True])
def test_a_user_found_by_its_username_and_its_own_alias_is_one_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_disk: bool
) -> None:
    """Keyed by username, a key also finds users by a verified email alias:
    a user whose alias is its own username is found once; a key that is one
    user's username and another's alias finds two (ambiguous: no one)."""
    if on_disk:
        monkeypatch.setattr(spill, "PARTITION_ROWS", 2)
        monkeypatch.setattr(spill, "FLUSH_ROWS", 1)
        monkeypatch.setattr(spill, "CHUNK_ROWS", 1)
        monkeypatch.setattr(spill, "BUCKET_ROWS", 1)
    data = tmp_path / "in.csv"
    data.write_text("username\na@x.com\nb@x.com\nbob\n")
    (tmp_path / "m.toml").write_text(
        '[user]\ncolumn = "username"\n[attributes."custom:tenant_id"]\nvalue = "t"\n'
    )
    mapping = load_mapping(tmp_path / "m.toml")
    snapshot = pl.LazyFrame(
        {
            "username": ["a@x.com", "bob", "b@x.com"],
            "email": ["a@x.com", "b@x.com", "c@x.com"],
            "email_verified": ["true", "true", "true"],
            "custom:tenant_id": ["ta", "tb", "tc"],
        }
    )
    current = CurrentValues.from_snapshot(
        snapshot,
        mapping=mapping,
        case_sensitive=False,
        source="snap",
        signs_in_with=[("email", True)],
    )
    source = open_source(data)
    keys = source.scan().select(pl.col(ROW), pl.col("username").alias(USER))
    aligned = current.aligned_to(keys, source.collect)
    batch = pl.DataFrame({ROW: [1, 2, 3], USER: ["a@x.com", "b@x.com", "bob"]})
    for values in (aligned, current):
        found = values.attach(batch).sort(ROW)
        assert found[MATCHES].to_list() == [1, 2, 1]
        assert found[USERNAME].to_list() == ["a@x.com", None, "bob"]
        assert found[current_col("custom:tenant_id")].to_list()[0] == "ta"
