"""Tests for migrate.transforms: each transform's values and problems, and e164
against phonenumbers itself."""

from __future__ import annotations

import random
from collections.abc import Sequence

import phonenumbers
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from migrate.transforms import (
    PROBLEM,
    TRANSFORMS,
    VALUE,
    TransformOptions,
    region_problem,
)


def run(
    name: str, cells: Sequence[str | None], **options: str
) -> list[tuple[str | None, str | None]]:
    """(value, problem) per cell after one transform."""
    build = TRANSFORMS[name].build
    frame = pl.DataFrame({"c": cells}, schema={"c": pl.String})
    out = frame.lazy().select(build(pl.col("c"), TransformOptions(**options)))
    result = out.collect().to_series()
    return list(
        zip(
            result.struct.field(VALUE).to_list(),
            result.struct.field(PROBLEM).to_list(),
            strict=True,
        )
    )


def one(name: str, cell: str | None, **options: str) -> tuple[str | None, str | None]:
    return run(name, [cell], **options)[0]


BOOL_HINT = "is not a boolean: write true/false, yes/no, y/n, 1/0, t/f or on/off"


@pytest.mark.parametrize(
    ("name", "options", "cell", "expected"),
    [
        pytest.param("strip", {}, "  a b \t", ("a b", None), id="strip"),
        pytest.param("lower", {}, "GoLD", ("gold", None), id="lower"),
        pytest.param("upper", {}, "gold", ("GOLD", None), id="upper"),
        pytest.param("title", {}, "ada LOVELACE", ("Ada Lovelace", None), id="title"),
        pytest.param("squeeze", {}, "  a \t b\n\nc ", ("a b c", None), id="squeeze"),
        pytest.param("strip", {}, None, (None, None), id="null-stays-null"),
        pytest.param("bool", {}, " Yes ", ("true", None), id="bool-yes"),
        pytest.param("bool", {}, "OFF", ("false", None), id="bool-off"),
        pytest.param("bool", {}, "1", ("true", None), id="bool-1"),
        pytest.param("bool", {}, "f", ("false", None), id="bool-f"),
        pytest.param(
            "bool", {}, "maybe", ("maybe", f"'maybe' {BOOL_HINT}"), id="bool-bad"
        ),
        pytest.param("bool", {}, None, (None, None), id="bool-null"),
        pytest.param("date", {}, "1987-03-14", ("1987-03-14", None), id="date-iso"),
        pytest.param("date", {}, "1987/3/4", ("1987-03-04", None), id="date-slashes"),
        pytest.param(
            "date", {}, "14.03.1987", ("1987-03-14", None), id="date-dots-dmy"
        ),
        pytest.param("date", {}, "03/14/1987", ("1987-03-14", None), id="date-us-mdy"),
        pytest.param("date", {}, "19870314", ("1987-03-14", None), id="date-compact"),
        pytest.param("date", {}, "14 Mar 1987", ("1987-03-14", None), id="date-month"),
        pytest.param(
            "date", {}, "March 14, 1987", ("1987-03-14", None), id="date-month-name"
        ),
        pytest.param(
            "date",
            {},
            "1987-03-14 00:00:00",
            ("1987-03-14", None),
            id="date-spreadsheet-datetime",
        ),
        pytest.param(
            "date",
            {},
            "1987-13-45",
            ("1987-13-45", "'1987-13-45' is not a date (write it as YYYY-MM-DD)"),
            id="date-impossible",
        ),
        pytest.param(
            "date",
            {},
            "14/03/1987",
            ("14/03/1987", "'14/03/1987' is not a date (write it as YYYY-MM-DD)"),
            id="date-slashes-are-month-first",
        ),
        pytest.param(
            "date",
            {"format": "%d/%m/%Y"},
            "14/03/1987",
            ("1987-03-14", None),
            id="date-format",
        ),
        pytest.param(
            "date",
            {"format": "%d/%m/%Y"},
            "1987-03-14",
            (
                "1987-03-14",
                "'1987-03-14' does not match the date format '%d/%m/%Y'",
            ),
            id="date-format-mismatch",
        ),
        pytest.param("epoch", {}, "1970-01-02", ("86400", None), id="epoch-date"),
        pytest.param(
            "epoch", {}, "2024-01-02T03:04:05Z", ("1704164645", None), id="epoch-utc"
        ),
        pytest.param(
            "epoch",
            {},
            "2024-01-02T05:04:05+02:00",
            ("1704164645", None),
            id="epoch-offset",
        ),
        pytest.param(
            "epoch", {}, "2024-01-02 03:04:05", ("1704164645", None), id="epoch-naive"
        ),
        pytest.param("epoch", {}, "1704164645", ("1704164645", None), id="epoch-int"),
        pytest.param(
            "epoch",
            {"format": "%d/%m/%Y %H:%M"},
            "02/01/2024 03:04",
            ("1704164640", None),
            id="epoch-format",
        ),
        pytest.param(
            "epoch",
            {},
            "yesterday",
            (
                "yesterday",
                "'yesterday' is not a date or time (write it as YYYY-MM-DDTHH:MM:SSZ)",
            ),
            id="epoch-bad",
        ),
    ],
)
def test_transform(
    name: str,
    options: dict[str, str],
    cell: str | None,
    expected: tuple[str | None, str | None],
) -> None:
    assert one(name, cell, **options) == expected


NO_COUNTRY = (
    'has no country code; write +<country><number> or set region = "US" in the mapping'
)


@pytest.mark.parametrize(
    ("cell", "region", "expected"),
    [
        pytest.param("+1 (415) 555-0134", None, "+14155550134", id="us-plus"),
        pytest.param("(415) 555-0134", "US", "+14155550134", id="us-national"),
        pytest.param("415.555.0134", "US", "+14155550134", id="us-dots"),
        pytest.param("14155550134", "US", "+14155550134", id="us-leading-1"),
        pytest.param("1-415-555-0134", "US", "+14155550134", id="us-prefix-1"),
        pytest.param("011 44 20 7946 0958", "US", "+442079460958", id="us-idd"),
        pytest.param("+44 (0)20 7946 0958", None, "+442079460958", id="gb-plus-0"),
        pytest.param("020 7946 0958", "GB", "+442079460958", id="gb-national"),
        pytest.param("0044 20 7946 0958", None, "+442079460958", id="00-is-plus"),
        pytest.param("++44 20 7946 0958", None, "+442079460958", id="double-plus"),
        pytest.param("030 1234567", "DE", "+49301234567", id="de"),
        pytest.param("01 42 68 53 00", "FR", "+33142685300", id="fr"),
        pytest.param("098765 43210", "IN", "+919876543210", id="in"),
        pytest.param("(11) 91234-5678", "BR", "+5511912345678", id="br"),
        pytest.param("0 21 11 91234 5678", "BR", "+5511912345678", id="br-carrier"),
        pytest.param("0412 345 678", "AU", "+61412345678", id="au-mobile"),
        pytest.param("011 15 1234 5678", "AR", "+5491112345678", id="ar-mobile"),
        pytest.param("464 1234", "AG", "+12684641234", id="ag-local"),
        pytest.param(
            "\u00a0+1\u2013415\u2013555\u20130134 ",
            None,
            "+14155550134",
            id="unicode-separators",
        ),
    ],
)
def test_e164_valid(cell: str, region: str | None, expected: str) -> None:
    options = {"region": region} if region else {}
    assert one("e164", cell, **options) == (expected, None)


@pytest.mark.parametrize(
    ("cell", "region", "problem"),
    [
        pytest.param(
            "555-01",
            "US",
            "'555-01' is not a valid phone number (default region US)",
            id="too-short",
        ),
        pytest.param(
            "+1 415 555 01",
            None,
            "'+1 415 555 01' is not a valid phone number",
            id="too-short-plus",
        ),
        pytest.param(
            "not a phone",
            "US",
            "'not a phone' is not a valid phone number",
            id="letters",
        ),
        pytest.param(
            "+1 800 FLOWERS",
            None,
            "'+1 800 FLOWERS' is not a valid phone number",
            id="vanity",
        ),
        pytest.param("415 555 0134", None, f"'415 555 0134' {NO_COUNTRY}", id="no-cc"),
        pytest.param(
            "+999 123 4567",
            None,
            "'+999 123 4567' is not a valid phone number: unknown country code",
            id="unknown-cc",
        ),
        pytest.param(
            "+1 415 555 0134 ext. 12",
            None,
            "'+1 415 555 0134 ext. 12' has an extension; extensions can't be"
            " stored in phone_number",
            id="extension",
        ),
        pytest.param(
            "(415) 555-0134 x12",
            "US",
            "'(415) 555-0134 x12' has an extension; extensions can't be stored in"
            " phone_number",
            id="extension-x",
        ),
        pytest.param("+", None, "'+' is not a valid phone number", id="plus-only"),
        pytest.param("", "US", "'' is not a valid phone number", id="empty"),
    ],
)
def test_e164_problem(cell: str, region: str | None, problem: str) -> None:
    options = {"region": region} if region else {}
    assert one("e164", cell, **options) == (cell, problem)


def test_e164_null_and_empty_batch() -> None:
    assert run("e164", [None, None], region="US") == [(None, None), (None, None)]
    assert run("e164", [], region="US") == []


def test_e164_keeps_row_order_across_countries() -> None:
    cells = ["+44 20 7946 0958", "bad", "(415) 555-0134", None, "+33 1 42 68 53 00"]
    values = [value for value, _ in run("e164", cells, region="US")]
    assert values == [
        "+442079460958",
        "bad",
        "+14155550134",
        None,
        "+33142685300",
    ]


def test_region_problem() -> None:
    assert region_problem("US") is None
    assert region_problem("UK") == (
        "region 'UK' is not a known region code (the United Kingdom is 'GB');"
        ' use an ISO 3166 alpha-2 code such as "US"'
    )


@pytest.mark.parametrize(
    ("name", "fmt", "problem"),
    [
        pytest.param("date", "%d/%m/%Y", None, id="good"),
        pytest.param(
            "date",
            "%Y",
            "format '%Y' cannot read a date: use strftime codes with day, month and"
            ' year, e.g. format = "%d/%m/%Y"',
            id="no-day",
        ),
        pytest.param(
            "epoch",
            "%Q",
            "format '%Q' cannot read a date: use strftime codes with day, month and"
            ' year, e.g. format = "%d/%m/%Y"',
            id="bad-code",
        ),
    ],
)
def test_format_check(name: str, fmt: str, problem: str | None) -> None:
    check = TRANSFORMS[name].check
    assert check is not None
    assert check(TransformOptions(format=fmt)) == problem


# --- e164 agrees with phonenumbers ---------------------------------------------

AGREEMENT_REGIONS = ("US", "GB", "DE", "FR", "IN", "BR", "AU")
TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
)


def reference(cell: str, region: str | None) -> str | None:
    """phonenumbers' verdict: the E.164 form of a valid number, else None."""
    try:
        number = phonenumbers.parse(cell, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def styles(digits: str) -> list[str]:
    """The same digits written with spaces, dashes, dots and parentheses."""
    if len(digits) < 7:
        return [digits]
    head, mid, tail = digits[:3], digits[3:6], digits[6:]
    return [
        digits,
        f"{head} {mid} {tail}",
        f"({head}) {mid}-{tail}",
        f"{head}.{mid}.{tail}",
        f"{head}-{mid}-{tail}",
    ]


def agreement_inputs(
    regions: tuple[str, ...], seed: int, *, styled: bool = True
) -> list[tuple[str, str | None]]:
    """Varied valid and invalid inputs built from phonenumbers' example numbers."""
    rng = random.Random(seed)
    cases: list[tuple[str, str | None]] = []
    for region in regions:
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            code = str(example.country_code)
            national = phonenumbers.national_significant_number(example)
            for fmt in (
                PhoneNumberFormat.E164,
                PhoneNumberFormat.INTERNATIONAL,
                PhoneNumberFormat.NATIONAL,
            ):
                written = phonenumbers.format_number(example, fmt)
                cases += [(written, region), (written, None)]
            variants = [national, "0" + national, national[:-1], national + "5"]
            digits = list(national)
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
            variants.append("".join(digits))
            for variant in variants:
                for written in styles(variant)[: None if styled else 2]:
                    cases += [
                        (written, region),
                        (f"+{code} {written}", None),
                        (f"+{code} {written}", rng.choice(regions)),
                        (code + variant, region),
                    ]
    return cases


def disagreements(
    cases: Sequence[tuple[str, str | None]],
) -> list[tuple[object, ...]]:
    by_region: dict[str | None, list[str]] = {}
    for cell, region in cases:
        by_region.setdefault(region, []).append(cell)
    found: list[tuple[object, ...]] = []
    for region, cells in by_region.items():
        options = {"region": region} if region else {}
        results = run("e164", cells, **options)
        for cell, (value, problem) in zip(cells, results, strict=True):
            mine = value if problem is None else None
            expected = reference(cell, region)
            if mine != expected:
                found.append((cell, region, mine, expected))
    return found


def test_e164_agrees_with_phonenumbers_for_common_countries() -> None:
    cases = agreement_inputs(AGREEMENT_REGIONS, seed=1)
    assert len(cases) > 500
    assert disagreements(cases) == []


def test_e164_agrees_with_phonenumbers_for_every_calling_code() -> None:
    cases = [
        (cell, None)
        for cell, region in agreement_inputs(ALL_REGIONS, seed=2, styled=False)
        if cell.startswith("+") and region is None
    ]
    assert len(cases) > 5_000
    assert disagreements(cases) == []


# Regions whose national numbers take phonenumbers' rarer paths: prefix
# transform rules, regions picked by leading digits, shared calling codes,
# unusual international prefixes; and a spread of others.
SPECIAL_REGIONS = (
    *("AR", "BR", "MX", "JP", "GA", "MG", "SM", "NF", "AG", "BS", "JM", "DO"),
    *("CA", "GG", "JE", "IM", "KZ", "RU", "IT", "VA", "NO", "SJ", "FI", "AX"),
    *("CC", "CX", "RE", "YT", "GP", "MF", "EH", "MA", "CN", "KR", "NG", "ZA"),
)
ALL_REGIONS = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))


def test_e164_agrees_with_phonenumbers_for_national_numbers() -> None:
    regions = (*SPECIAL_REGIONS, *ALL_REGIONS[::20])
    cases = [
        (cell, region)
        for cell, region in agreement_inputs(regions, seed=3, styled=False)
        if region is not None and not cell.startswith("+")
    ]
    assert disagreements(cases) == []


def test_e164_random_digits_agree_with_phonenumbers() -> None:
    rng = random.Random(4)
    regions = [*SPECIAL_REGIONS[::2], *ALL_REGIONS[5::20], None]
    cases: list[tuple[str, str | None]] = []
    while len(cases) < 2000:
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(3, 16)))
        cell = rng.choice(["+", "", "0"]) + digits
        # "00..." is read as "+" on purpose (see transforms.py).
        if not cell.startswith("00"):
            cases.append((cell, rng.choice(regions)))
    assert disagreements(cases) == []


def test_e164_double_zero_differs_from_phonenumbers_on_purpose() -> None:
    # phonenumbers reads "0044..." as a US national number; a leading 00 is far
    # more likely an international prefix written European-style.
    assert reference("0044 20 7946 0958", "US") is None
    assert one("e164", "0044 20 7946 0958", region="US") == ("+442079460958", None)


# --- every transform is total and deterministic --------------------------------

cells_strategy = st.lists(st.one_of(st.none(), st.text(max_size=30)), max_size=25)
OPTIONS = {"e164": {"region": "US"}, "date": {}, "epoch": {}}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@settings(max_examples=25, deadline=None)
@given(cells=cells_strategy)
def test_transform_is_total_and_keeps_order(name: str, cells: list[str | None]) -> None:
    options = OPTIONS.get(name, {})
    first = run(name, cells, **options)
    assert run(name, cells, **options) == first
    assert len(first) == len(cells)
    for cell, (value, problem) in zip(cells, first, strict=True):
        if cell is None:
            assert (value, problem) == (None, None)
        if problem is not None:
            assert value == cell
            assert problem.startswith(f"'{cell}' ")
    assert run(name, cells[::-1], **options) == first[::-1]


def test_e164_on_repeated_values_equals_the_row_by_row_result() -> None:
    from migrate.transforms import _e164_distinct, _e164_series

    cells = ["(415) 555-0100", None, "+44 20 7946 0958", "555-01", "", "x"] * 50
    series = pl.Series("phone", cells, dtype=pl.String)
    repeated = _e164_distinct(series, "US")
    assert repeated.to_list() == _e164_series(series, "US").to_list()
    assert repeated.struct.field("value").to_list()[:4] == [
        "+14155550100",
        None,
        "+442079460958",
        "555-01",
    ]


def test_e164_of_one_calling_code_equals_its_result_among_others() -> None:
    # A column of one calling code takes constants for what depends on the
    # code alone; among others, a lookup per row: both must agree.
    cases = agreement_inputs(AGREEMENT_REGIONS, seed=5)
    cells = [cell for cell, region in cases if region is None]
    mixed = dict(zip(cells, run("e164", cells), strict=True))
    by_code: dict[str, list[str]] = {}
    for cell, (value, _) in mixed.items():
        if value is not None and value.startswith("+"):
            code = str(phonenumbers.parse(value).country_code)
            by_code.setdefault(code, []).append(cell)
    assert len(by_code) > 5
    for group in by_code.values():
        assert run("e164", group) == [mixed[cell] for cell in group]
    national = [cell for cell, region in cases if region == "US"]
    assert national
    together = run("e164", cells + national, region="US")[len(cells) :]
    assert run("e164", national, region="US") == together


def test_e164_numbers_known_from_earlier_batches_give_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from migrate import transforms
    from migrate.transforms import _e164_series, _Memo

    monkeypatch.setattr(transforms, "_MEMO_SIZE", 3)  # older numbers drop out
    cells = ["(415) 555-0100", None, "+44 20 7946 0958", "555-01", "", "x"]
    cells += ["415.555.0101", "+1 415 555 0100", "(415) 555-0100"]
    rng = random.Random(6)
    memo = _Memo()
    for _ in range(30):
        batch = pl.Series("phone", rng.choices(cells, k=rng.randrange(0, 12)))
        with_memo = transforms._e164_distinct(batch.cast(pl.String), "US", memo)
        assert with_memo.to_list() == _e164_series(batch, "US").to_list()
    assert memo.useful


def test_e164_stops_remembering_numbers_that_do_not_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from migrate import transforms
    from migrate.transforms import _e164_series, _Memo

    monkeypatch.setattr(transforms, "_MEMO_TRIAL", 20)
    memo = _Memo()
    for start in range(0, 100, 10):
        batch = pl.Series([f"(415) 555-{n:04d}" for n in range(start, start + 10)])
        with_memo = transforms._e164_distinct(batch, "US", memo)
        assert with_memo.to_list() == _e164_series(batch, "US").to_list()
    assert not memo.useful
    assert memo._table is None


def test_e164_numbers_two_threads_work_out_at_once_are_remembered_once() -> None:
    from migrate.transforms import _e164_distinct, _e164_series, _Memo

    batch = pl.Series(["(415) 555-0100", "415.555.0101", None, "(415) 555-0100"])
    memo = _Memo()
    # Both threads miss the same numbers, then both keep what they found.
    missed = [memo.split(batch.unique())[1] for _ in range(2)]
    for todo in missed:
        computed = pl.DataFrame({"raw": todo, "result": _e164_series(todo, "US")})
        memo.add(computed, looked=len(todo), found=0)
    again = _e164_distinct(batch, "US", memo)
    assert again.to_list() == _e164_series(batch, "US").to_list()
