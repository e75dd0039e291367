"""Large, realistic user files for benchmarks, made column-wise (no per-row Python).

The columns are those of ``samples/users.csv``, so the sample mappings work on
them; every generated row is valid (unique usernames, e-mails and subs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

COLUMNS = (
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
)

#: The issue's benchmark file: 8 of those columns.
BENCH_COLUMNS = [
    "username",
    "email",
    "phone",
    "first_name",
    "last_name",
    "tenant",
    "plan",
    "seats",
]

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph",
    "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Ana", "Wei", "Priya",
    "Mohammed", "Sofia", "Lucas", "Chloe", "Mateo", "Aisha", "Kenji", "Olivia",
    "Noah", "Emma", "Liam", "Zoe", "Hiroshi", "Fatima", "Diego", "Ingrid", "Omar",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Nguyen", "Patel",
    "Kim", "O'Brien", "O'Brien, Jr.", "Doe", "Chen", "Okafor", "Rossi", "Dubois",
    "Kowalski", "Haddad", "Sato", "Muller", "Smith-Jones", "van der Berg",
)  # fmt: skip
TENANTS = (
    "acme-corp", "globex", "initech", "umbrella", "stark-industries", "hooli",
    "wayne-enterprises", "wonka", "tyrell", "cyberdyne", "soylent", "massive-dynamic",
)  # fmt: skip
PLANS = (" Gold", "gold", "gold ", "Gold", "silver", "Silver", "SILVER ", "BRONZE",
         "bronze", " Bronze")  # fmt: skip
NEWSLETTER = ("yes", "no", "true", "false", "1", "0", "Yes", "NO")
AREA_CODES = ("415", "650", "212", "617", "312", "206", "512", "303")
DOMAINS = ("example.com", "example.org", "example.net")
SEATS = (1, 1, 1, 2, 5, 10, 25, 50, 100, 250, 1000)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ALNUM = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8
)
_EPOCH_1950 = -7305  # days from 1970-01-01 back to 1950-01-01


def _fixed_width(chars: npt.NDArray[np.uint8], name: str) -> pl.Series:
    """A string Series from an (n, width) array of ASCII codes, one row per string."""
    rows = chars.shape[0]
    if rows == 0:
        return pl.Series(name, [], dtype=pl.String)
    lines = np.empty((rows, chars.shape[1] + 1), dtype=np.uint8)
    lines[:, :-1] = chars
    lines[:, -1] = ord("\n")
    text = lines.tobytes().decode("ascii")
    return pl.Series(name, [text]).str.strip_suffix("\n").str.split("\n").explode()


def _phone_numbers() -> list[str]:
    """Every fictional number (555-01xx, Ofcom drama range) in the ways people write."""
    numbers: list[str] = []
    for area in AREA_CODES:
        for n in range(100, 200):
            line = f"{n:04d}"
            numbers += [f"({area}) 555-{line}", f"{area}.555.{line}"]
            numbers += [f"+1 {area} 555 {line}", f"1{area}555{line}"]
            numbers += [f"{area}-555-{line}"]
    # About one number in twenty is a London one.
    numbers += [f"+44 20 7946 {n:04d}" for n in range(100, 100 + len(numbers) // 19)]
    return numbers


def _slugs(names: tuple[str, ...]) -> list[str]:
    """Names as they appear in usernames and e-mails: "O'Brien, Jr." -> "obrien"."""
    return [
        "".join(c for c in name.split(",")[0].lower() if c.isalpha()) for name in names
    ]


def _pick(rng: np.random.Generator, values: tuple[str, ...], rows: int) -> pl.Series:
    return pl.Series(values).gather(rng.integers(0, len(values), rows))


def users_frame(rows: int, *, seed: int = 0) -> pl.DataFrame:
    """``rows`` realistic users, all columns strings; same seed, same frame."""
    rng = np.random.default_rng(seed)
    index = pl.int_range(1, rows + 1, eager=True).cast(pl.String)
    first_index = rng.integers(0, len(FIRST_NAMES), rows)
    last_index = rng.integers(0, len(LAST_NAMES), rows)

    uuid_bytes = rng.integers(0, 256, (rows, 16), dtype=np.uint8)
    uuid_bytes[:, 6] = (uuid_bytes[:, 6] & 0x0F) | 0x40  # version 4
    uuid_bytes[:, 8] = (uuid_bytes[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    nibbles = np.empty((rows, 32), dtype=np.uint8)
    nibbles[:, 0::2] = uuid_bytes >> 4
    nibbles[:, 1::2] = uuid_bytes & 0x0F
    hex_chars = _HEX[nibbles]
    dashed = np.full((rows, 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19)):
        dashed[:, at : at + stop - start] = hex_chars[:, start:stop]
    dashed[:, 24:] = hex_chars[:, 20:]

    token = _ALNUM[rng.integers(0, len(_ALNUM), (rows, 40), dtype=np.uint8)]
    birth_days = rng.integers(0, 365 * 54, rows) + _EPOCH_1950
    phones = _phone_numbers()
    phone = pl.Series(phones).gather(rng.integers(0, len(phones), rows))
    frame = pl.DataFrame(
        {
            "i": index,
            "first_name": pl.Series(FIRST_NAMES).gather(first_index),
            "last_name": pl.Series(LAST_NAMES).gather(last_index),
            "first": pl.Series(_slugs(FIRST_NAMES)).gather(first_index),
            "last": pl.Series(_slugs(LAST_NAMES)).gather(last_index),
            "sub": _fixed_width(dashed, "sub"),
            "domain": _pick(rng, DOMAINS, rows),
            "phone": phone,
            "tenant": _pick(rng, TENANTS, rows),
            "plan": _pick(rng, PLANS, rows),
            "newsletter": _pick(rng, NEWSLETTER, rows),
            "seats": pl.Series(SEATS).gather(rng.integers(0, len(SEATS), rows)),
            "birth": pl.Series(birth_days).cast(pl.Date),
            "us_date": rng.random(rows) < 0.12,
            "access_token": _fixed_width(token, "t"),
        }
    )
    return frame.select(
        username=pl.concat_str(
            pl.col("first").str.slice(0, 1),
            pl.col("last"),
            pl.col("i"),
        ),
        sub=pl.col("sub"),
        email=pl.concat_str(
            pl.col("first"),
            pl.lit("."),
            pl.col("last"),
            pl.col("i"),
            pl.lit("@"),
            pl.col("domain"),
        ),
        phone=pl.col("phone"),
        first_name=pl.col("first_name"),
        last_name=pl.col("last_name"),
        tenant=pl.col("tenant"),
        plan=pl.col("plan"),
        newsletter=pl.col("newsletter"),
        seats=pl.col("seats").cast(pl.String),
        birthdate=pl.when(pl.col("us_date"))
        .then(pl.col("birth").dt.strftime("%m/%d/%Y"))
        .otherwise(pl.col("birth").dt.strftime("%Y-%m-%d")),
        access_token=pl.lit("tok-") + pl.col("access_token"),
    )


def write_users_csv(path: str | Path, rows: int, *, seed: int = 0) -> Path:
    """Write ``rows`` generated users to a CSV file at ``path``; returns the path."""
    path = Path(path)
    users_frame(rows, seed=seed).write_csv(path)
    return path


#: Area codes of the distinct phone numbers: each holds 8,000,000 numbers.
_DISTINCT_AREAS = ("415", "650", "212", "617", "312", "206")

#: The two shapes every benchmark runs on: the generated file's phone numbers
#: (4,210 numbers written five ways, so most rows share one) and a file whose
#: every number differs.
PHONE_SHAPES = ("repeated", "distinct")


def distinct_phones(first: int, rows: int) -> pl.Series:
    """``rows`` different valid US numbers, from the ``first``-th on, as people
    write them: "(415) 234-0001" and "415.234.0002" alternately."""
    index = pl.int_range(first, first + rows, eager=True)
    area = pl.Series(_DISTINCT_AREAS).gather(
        (index // 8_000_000) % len(_DISTINCT_AREAS)
    )
    exchange = (200 + (index // 10_000) % 800).cast(pl.String)
    line = (index % 10_000).cast(pl.String).str.zfill(4)
    frame = pl.DataFrame({"i": index, "a": area, "e": exchange, "l": line})
    return frame.select(
        pl.when(pl.col("i") % 2 == 0)
        .then(pl.format("({}) {}-{}", "a", "e", "l"))
        .otherwise(pl.format("{}.{}.{}", "a", "e", "l"))
        .alias("phone")
    ).to_series()


def write_bench_csv(
    path: str | Path, rows: int, *, phones: str = "repeated", seed: int = 1
) -> Path:
    """The benchmark file (BENCH_COLUMNS), written 500,000 rows at a time so the
    generator stays small; usernames and emails differ across slices."""
    path = Path(path)
    step = 500_000
    with path.open("wb") as handle:
        for part, first in enumerate(range(0, rows, step)):
            size = min(step, rows - first)
            frame = users_frame(size, seed=seed + part).select(BENCH_COLUMNS)
            if part:
                frame = frame.with_columns(
                    pl.col("username") + f"-{part}", pl.col("email") + f".p{part}"
                )
            if phones == "distinct":
                frame = frame.with_columns(distinct_phones(first, size))
            frame.write_csv(handle, include_header=part == 0)
    return path
