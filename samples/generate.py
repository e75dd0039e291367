"""Generate samples/users.csv and samples/users.parquet (deterministic, seeded).

Run from anywhere: ``python samples/generate.py``. Every value is a string, in both
files; a blank cell is an empty CSV field and a null in Parquet.

Deliberately bad rows (row = 1-based data row, header not counted; the CSV line
number is row + 1):

    row  12  user "fjones96"                    row 88 repeats this user (duplicate)
    row  17  phone "555-01"                     not a phone number
    row  34  phone "not a phone"                not a phone number
    row  52  tenant of 70 characters            custom:tenant_id allows 1..64
    row  88  username/sub/email of row 12       duplicate user, other tenant and plan
    row 105  tenant blank                       blank cell
    row 121  plan blank                         blank cell
    row 138  phone blank                        blank cell
    row 156  plan "platinum"                    not in rename-plan's map: passes through
    row 173  seats "lots"                       not a number
    row 190  seats "-5"                         custom:seats allows 0..100000
    row 207  email "bob@@example"               not an email address
    row 224  tenant '=HYPERLINK("http://evil.example/","click me")'  formula cell
    row 241  username blank                     no user key
    row 258  birthdate "1987-13-45"             not a date
"""

from __future__ import annotations

import random
import string
import unicodedata
import uuid
from datetime import date, timedelta
from pathlib import Path

import polars as pl

SEED = 20240611
ROWS = 300
HERE = Path(__file__).resolve().parent

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

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph",
    "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Ana", "Wei", "Priya",
    "Mohammed", "Sofia", "Lucas", "Chloé", "Mateo", "Aisha", "Kenji", "Olivia",
    "Noah", "Emma", "Liam", "Zoë", "Hiroshi", "Fatima", "Diego", "Ingrid", "Omar",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Nguyen", "Patel",
    "Kim", "O'Brien", "O'Brien, Jr.", "Smith-Jones", "van der Berg", "Müller",
    "Doe", "Chen", "Okafor", "Rossi", "Dubois", "Kowalski", "Haddad", "Sato",
)  # fmt: skip
TENANTS = ("acme-corp", "globex", "initech", "umbrella", "stark-industries", "hooli")
PLANS = (" Gold", "gold", "gold ", "Gold", "silver", "Silver", "SILVER ", "BRONZE",
         "bronze", " Bronze")  # fmt: skip
NEWSLETTER = ("yes", "no", "true", "false", "1", "0", "Yes", "NO")
SEATS = (1, 1, 1, 2, 5, 10, 25, 50, 100, 250, 0)  # 0: any number up to 5000
AREA_CODES = ("415", "650", "212", "617", "312", "206", "512", "303")
DOMAINS = ("example.com", "example.org", "example.net")
TOKEN_ALPHABET = string.ascii_letters + string.digits

OVERLONG_TENANT = (
    "acme-corporation-international-holdings-emea-north-subsidiary-division"
)
FORMULA_TENANT = '=HYPERLINK("http://evil.example/","click me")'


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters of a name: "Chloé" -> "chloe"."""
    return (
        unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    )


def us_phone(rng: random.Random) -> str:
    """A fictional US number (555-01xx) in one of the ways people write them."""
    area = rng.choice(AREA_CODES)
    line = f"01{rng.randrange(100):02d}"
    forms = (
        f"({area}) 555-{line}",
        f"{area}.555.{line}",
        f"+1 {area} 555 {line}",
        f"1{area}555{line}",
        f"{area}-555-{line}",
    )
    return rng.choice(forms)


def uk_phone(rng: random.Random) -> str:
    """A fictional London number (Ofcom's drama range 020 7946 0xxx)."""
    return f"+44 20 7946 0{rng.randrange(1000):03d}"


def birthdate(rng: random.Random) -> str:
    """A birth date, mostly ISO 8601, sometimes US month/day/year."""
    day = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 54))
    if rng.random() < 0.12:
        return day.strftime("%m/%d/%Y")
    return day.isoformat()


def make_row(rng: random.Random, taken: set[str]) -> dict[str, str | None]:
    """One realistic, valid user."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    letters = "".join(
        c for c in ascii_lower(first[0] + last.split(",")[0]) if c.isalpha()
    )
    while True:
        number = rng.randrange(1, 100)
        username = f"{letters}{number}"
        if username not in taken:
            break
    taken.add(username)
    name = f"{first}.{last.split(',')[0]}"
    local = "".join(c for c in ascii_lower(name) if c.isalpha() or c == ".")
    return {
        "username": username,
        "sub": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "email": f"{local}{number}@{rng.choice(DOMAINS)}",
        "phone": uk_phone(rng) if rng.random() < 0.06 else us_phone(rng),
        "first_name": first,
        "last_name": last,
        "tenant": rng.choice(TENANTS),
        "plan": rng.choice(PLANS),
        "newsletter": rng.choice(NEWSLETTER),
        "seats": str(rng.choice(SEATS) or rng.randrange(1, 5000)),
        "birthdate": birthdate(rng),
        "access_token": "tok-" + "".join(rng.choices(TOKEN_ALPHABET, k=40)),
    }


def make_rows() -> list[dict[str, str | None]]:
    """All sample rows, bad ones included at the rows listed in the docstring."""
    rng = random.Random(SEED)
    taken: set[str] = set()
    rows = [make_row(rng, taken) for _ in range(ROWS)]

    def at(row: int) -> dict[str, str | None]:
        return rows[row - 1]

    at(17)["phone"] = "555-01"
    at(34)["phone"] = "not a phone"
    at(52)["tenant"] = OVERLONG_TENANT
    for column in ("username", "sub", "email", "first_name", "last_name"):
        at(88)[column] = at(12)[column]
    at(88)["plan"] = "gold" if "silver" in str(at(12)["plan"]).lower() else "silver"
    at(105)["tenant"] = None
    at(121)["plan"] = None
    at(138)["phone"] = None
    at(156)["plan"] = "platinum"
    at(173)["seats"] = "lots"
    at(190)["seats"] = "-5"
    at(207)["email"] = "bob@@example"
    at(224)["tenant"] = FORMULA_TENANT
    at(241)["username"] = None
    at(258)["birthdate"] = "1987-13-45"
    return rows


def main() -> None:
    """Write users.csv and users.parquet next to this script."""
    frame = pl.DataFrame(make_rows(), schema={c: pl.String for c in COLUMNS})
    frame.write_csv(HERE / "users.csv")
    frame.write_parquet(HERE / "users.parquet")
    print(f"wrote {frame.height} rows to {HERE / 'users.csv'} and users.parquet")


if __name__ == "__main__":
    main()
