"""Vectorised value transforms a mapping can apply to a column (strip, bool, e164...).

Every transform turns an input expression (pl.String; null means blank) into one
Struct expression with two String fields: ``value`` (the transformed value) and
``problem`` (a short message naming the value when it could not be transformed,
null when fine; null input gives null in both). A transform never raises on data.

One struct rather than a (value, problem) pair of expressions: e164 runs as one
vectorised function per batch, and polars' common-subexpression elimination does
not deduplicate Python functions, so a pair would run it twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata

#: Field names of the struct every transform returns.
VALUE = "value"
PROBLEM = "problem"
#: The dtype of every transform's result.
RESULT_DTYPE = pl.Struct({VALUE: pl.String, PROBLEM: pl.String})


@dataclass(frozen=True, kw_only=True)
class TransformOptions:
    """The per-attribute settings a transform may read."""

    region: str | None = None
    format: str | None = None


Builder = Callable[[pl.Expr, TransformOptions], pl.Expr]
Checker = Callable[[TransformOptions], str | None]


@dataclass(frozen=True, kw_only=True)
class Transform:
    """One named transform: builds the result struct from an input expression."""

    name: str
    summary: str
    build: Builder
    #: Names of the TransformOptions fields this transform reads.
    options: frozenset[str] = frozenset()
    #: Returns a message when the options cannot work (checked at mapping load).
    check: Checker | None = None


_NO_PROBLEM = pl.lit(None, dtype=pl.String)


def _result(value: pl.Expr, problem: pl.Expr = _NO_PROBLEM) -> pl.Expr:
    return pl.struct(value.alias(VALUE), problem.alias(PROBLEM))


def _quoted(value: pl.Expr, message: str) -> pl.Expr:
    """The problem text "'<value>' <message>"."""
    return pl.concat_str(pl.lit("'"), value, pl.lit("' " + message))


# --- text ---------------------------------------------------------------------


def _strip(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    return _result(value.str.strip_chars())


def _lower(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    return _result(value.str.to_lowercase())


def _upper(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    return _result(value.str.to_uppercase())


def _title(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    return _result(value.str.to_titlecase())


def _squeeze(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    return _result(value.str.replace_all(r"\s+", " ").str.strip_chars())


# --- bool ---------------------------------------------------------------------

_TRUE_WORDS = ("true", "t", "yes", "y", "on", "1")
_FALSE_WORDS = ("false", "f", "no", "n", "off", "0")


def _bool(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    word = value.str.strip_chars().str.to_lowercase()
    parsed = (
        pl.when(word.is_in(_TRUE_WORDS))
        .then(pl.lit("true"))
        .when(word.is_in(_FALSE_WORDS))
        .then(pl.lit("false"))
    )
    problem = pl.when(value.is_not_null() & parsed.is_null()).then(
        _quoted(
            value, "is not a boolean: write true/false, yes/no, y/n, 1/0, t/f or on/off"
        )
    )
    return _result(pl.coalesce(parsed, value), problem)


# --- dates --------------------------------------------------------------------

#: Date layouts tried in order when an attribute sets no ``format``. Slashes with
#: the year last are read US-style (month first), dots European-style (day
#: first); two-digit years are never guessed.
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%d.%m.%Y",
    "%m/%d/%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
)
#: Date-and-time layouts (ISO 8601 with optional fraction and offset) tried by
#: epoch, and by date for spreadsheet exports such as "1990-05-17 00:00:00".
DATETIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


def _check_format(options: TransformOptions) -> str | None:
    """A format must read back the date it writes, or it can never match."""
    fmt = options.format
    if fmt is None:
        return None
    sample = dt.datetime(2001, 2, 3, 4, 5, 6)
    try:
        text = pl.Series([sample]).dt.to_string(fmt)
        parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.date()
    except pl.exceptions.PolarsError:
        parsed = pl.Series([None], dtype=pl.Date)
    if parsed[0] != sample.date():
        return (
            f"format {fmt!r} cannot read a date: use strftime codes with day, month"
            ' and year, e.g. format = "%d/%m/%Y"'
        )
    return None


def _parse_datetime(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.strptime(pl.Datetime("us"), fmt, strict=False)


def _date(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    text = value.str.strip_chars()
    if options.format is not None:
        parsed = _parse_datetime(text, options.format).dt.date()
        expected = f"does not match the date format {options.format!r}"
    else:
        parsed = pl.coalesce(
            *(text.str.strptime(pl.Date, fmt, strict=False) for fmt in DATE_FORMATS),
            *(_parse_datetime(text, fmt).dt.date() for fmt in DATETIME_FORMATS[2:]),
        )
        expected = "is not a date (write it as YYYY-MM-DD)"
    # Cognito's birthdate is exactly 10 characters: four-digit years only.
    good = parsed.dt.year().is_between(1, 9999)
    problem = (
        pl.when(value.is_null())
        .then(_NO_PROBLEM)
        .when(good.is_null() | ~good)
        .then(_quoted(value, expected))
    )
    out = pl.when(good).then(parsed.dt.to_string("%Y-%m-%d")).otherwise(value)
    return _result(out, problem)


def _epoch(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    text = value.str.strip_chars()
    if options.format is not None:
        seconds = _parse_datetime(text, options.format).dt.epoch("s")
        expected = f"does not match the date format {options.format!r}"
    else:
        # Digits only are taken as seconds already (a re-run of an earlier export).
        as_int = (
            pl.when(text.str.contains(r"^[0-9]{1,12}$"))
            .then(text.cast(pl.Int64, strict=False))
            .otherwise(pl.lit(None, dtype=pl.Int64))
        )
        seconds = pl.coalesce(
            as_int,
            *(_parse_datetime(text, fmt).dt.epoch("s") for fmt in DATETIME_FORMATS),
            *(
                text.str.strptime(pl.Date, fmt, strict=False).dt.epoch("s")
                for fmt in DATE_FORMATS
            ),
        )
        expected = "is not a date or time (write it as YYYY-MM-DDTHH:MM:SSZ)"
    problem = pl.when(value.is_not_null() & seconds.is_null()).then(
        _quoted(value, expected)
    )
    return _result(pl.coalesce(seconds.cast(pl.String), value), problem)


# --- e164 ---------------------------------------------------------------------
#
# phonenumbers.parse costs ~84 us per number; this re-implements its parse and
# is_valid_number steps over whole columns with phonenumbers' own metadata
# (national-prefix, international-prefix and number-type patterns), so a
# million numbers take about a second. Grouping is per country calling code:
# each group runs only its own country's small patterns, on its own rows.
#
# Known differences from phonenumbers.parse + is_valid_number (tested against it
# in tests/unit/test_transforms.py):
# - a leading "00" is read as "+" even without a default region, or when the
#   region's own international prefix differs (US "011"): phonenumbers rejects
#   "0044..." without a region and reads it as a national number for US;
# - letters are rejected (phonenumbers turns vanity numbers like 1-800-FLOWERS
#   into digits and drops trailing text such as "(mobile)");
# - only ASCII digits are accepted (phonenumbers also reads other scripts' digits
#   and the full-width plus sign);
# - an extension ("x12", "ext. 12", ";ext=12") is a problem, since phone_number
#   cannot store one (phonenumbers parses it into a separate field).

_DESC_FIELDS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
# Separators phonenumbers ignores (its _VALID_PUNCTUATION without "x"), plus any
# whitespace.
_SEPARATORS = (
    r"[\s.()\[\]/~\-"
    "\u2010-\u2015\u2212\u30fc\uff0d-\uff0f\u00a0\u00ad\u200b\u2060\u3000"
    "\uff08\uff09\uff3b\uff3d\u2053\u223c\uff5e]"
)
_ASCII_SEPARATORS = [" ", "-", "(", ")", ".", "/"]
_EXTENSION = (
    r"(?i)[0-9)]\s*(?:[,;]\s*)?(?:ext(?:ension|n)?\.?|ext=|x|#)\s*:?\s*[0-9]{1,10}#?$"
)
_PHONE_DIGITS = r"^[0-9]+$"


@dataclass(frozen=True, kw_only=True)
class _Desc:
    """One number pattern and the lengths it allows (empty = any)."""

    #: The pattern as phonenumbers has it (with ASCII digits).
    body: str
    lengths: tuple[int, ...]

    @property
    def pattern(self) -> str:
        """The full-match form."""
        return f"^(?:{self.body})$"


@dataclass(frozen=True, kw_only=True)
class _PhoneRegion:
    """What parse and is_valid_number read from one region's metadata."""

    code: str
    country_code: str
    general: _Desc | None
    #: Number types grouped by their allowed lengths; a number is valid for the
    #: region when it matches the general pattern and one of these.
    types: tuple[_Desc, ...]
    #: Anchored pattern choosing this region among those sharing its code.
    leading_digits: str | None
    #: National prefix for parsing as "^((?:npfp))([0-9]*)$", its groups, and the
    #: transform rule as (literal, group number) pairs.
    national_prefix: str | None
    national_prefix_start: str
    prefix_groups: int
    transform_rule: tuple[tuple[str, int | None], ...]
    international_prefix: str | None
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]


def _ascii(pattern: str) -> str:
    # Input is ASCII digits by now, and a Unicode \d costs polars' regex engine
    # twice the compile time.
    return pattern.replace(r"\d", "[0-9]")


def _desc(desc: object) -> _Desc | None:
    pattern = getattr(desc, "national_number_pattern", None)
    lengths = tuple(getattr(desc, "possible_length", ()) or ())
    if not pattern or lengths == (-1,):
        return None
    return _Desc(body=_ascii(pattern), lengths=lengths)


def _rule_parts(rule: str | None) -> tuple[tuple[str, int | None], ...]:
    if not rule:
        return ()
    pieces = re.split(r"\\(\d)", rule)
    parts: list[tuple[str, int | None]] = []
    for index, piece in enumerate(pieces):
        if index % 2:
            parts.append(("", int(piece)))
        elif piece:
            parts.append((piece, None))
    return tuple(parts)


@functools.cache
def _phone_region(code: str, country_code: int) -> _PhoneRegion:
    if code == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        meta = PhoneMetadata.metadata_for_nongeo_region(country_code)
    else:
        meta = PhoneMetadata.metadata_for_region(code)
    # Codes come from phonenumbers' own calling-code table, so metadata exists.
    assert meta is not None, code
    general = _desc(meta.general_desc)
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for name in _DESC_FIELDS:
        found = _desc(getattr(meta, name))
        if found is not None:
            by_lengths.setdefault(found.lengths, []).append(found.body)
    npfp = _ascii(meta.national_prefix_for_parsing or "") or None
    possible = getattr(meta.general_desc, "possible_length", None) or ()
    local = getattr(meta.general_desc, "possible_length_local_only", None) or ()
    return _PhoneRegion(
        code=code,
        country_code=str(country_code),
        general=(general if general else None),
        types=tuple(
            _Desc(body="|".join(patterns), lengths=lengths)
            for lengths, patterns in by_lengths.items()
        ),
        leading_digits=(
            f"^(?:{_ascii(meta.leading_digits)})" if meta.leading_digits else None
        ),
        national_prefix=f"^((?:{npfp}))([0-9]*)$" if npfp else None,
        national_prefix_start=f"^(?:{npfp})" if npfp else "",
        prefix_groups=re.compile(npfp).groups if npfp else 0,
        transform_rule=_rule_parts(meta.national_prefix_transform_rule),
        international_prefix=_ascii(meta.international_prefix or "") or None,
        possible_lengths=tuple(possible),
        local_lengths=tuple(local),
    )


@functools.cache
def _country_codes_pattern() -> str:
    # Calling codes are prefix-free, so the alternation order does not matter.
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE, key=str)
    return "^(" + "|".join(str(code) for code in codes) + ")"


def _regions_for(country_code: str) -> tuple[_PhoneRegion, ...]:
    code = int(country_code)
    return tuple(
        _phone_region(region, code)
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    )


def region_problem(region: str) -> str | None:
    """Why ``region`` cannot be an e164 default region, or None when it can."""
    if region in phonenumbers.SUPPORTED_REGIONS:
        return None
    hint = " (the United Kingdom is 'GB')" if region.upper() == "UK" else ""
    return (
        f"region {region!r} is not a known region code{hint};"
        ' use an ISO 3166 alpha-2 code such as "US"'
    )


def _check_e164(options: TransformOptions) -> str | None:
    return None if options.region is None else region_problem(options.region)


def _false(length: int) -> pl.Series:
    return pl.repeat(False, length, dtype=pl.Boolean, eager=True)


def _true(length: int) -> pl.Series:
    return pl.repeat(True, length, dtype=pl.Boolean, eager=True)


def _where(mask: pl.Series, then: pl.Series, otherwise: pl.Series) -> pl.Series:
    return then.zip_with(mask, otherwise)


def _patch(base: pl.Series, mask: pl.Series, values: pl.Series) -> pl.Series:
    """``base`` with the rows where ``mask`` holds replaced by ``values``."""
    if values.is_empty():
        return base
    out = base.clone()
    out.scatter(mask.arg_true(), values)
    return out


def _matches(number: pl.Expr, desc: _Desc | None) -> pl.Expr:
    """phonenumbers' _is_number_matching_desc as an expression."""
    if desc is None:
        return pl.lit(False)
    hit = number.str.contains(desc.pattern)
    if desc.lengths:
        hit = number.str.len_chars().is_in(desc.lengths) & hit
    return hit


@functools.cache
def _valid_expr(region: _PhoneRegion) -> pl.Expr:
    """phonenumbers' _number_type_helper(n) != UNKNOWN, on column "n"."""
    if region.general is None or not region.types:
        return pl.lit(False)
    number = pl.col("n")
    return _matches(number, region.general) & pl.any_horizontal(
        _matches(number, desc) for desc in region.types
    )


def _viable(numbers: pl.Series, region: _PhoneRegion) -> pl.Series:
    """phonenumbers' _match_national_number against the general pattern."""
    if region.general is None:
        return _false(len(numbers))
    return numbers.str.contains(region.general.pattern)


@functools.cache
def _is_valid_expr(country_code: str) -> pl.Expr:
    """_is_valid as one expression on column "n": every region's patterns run on
    every row, so it suits small groups and calling codes with one region."""
    regions = _regions_for(country_code)
    if len(regions) == 1:
        return _valid_expr(regions[0])
    number = pl.col("n")
    return pl.coalesce(
        pl.when(
            number.str.contains(region.leading_digits)
            if region.leading_digits
            else _valid_expr(region)
        ).then(_valid_expr(region))
        for region in regions
    ).fill_null(False)


def _valid_for(numbers: pl.Series, region: _PhoneRegion) -> pl.Series:
    """_valid_expr over a column, in one polars query (small groups are common)."""
    return pl.DataFrame({"n": numbers}).select(_valid_expr(region)).to_series()


def _is_valid(numbers: pl.Series, country_code: str) -> pl.Series:
    """is_valid_number for national numbers that share one calling code.

    Like phonenumbers, the first region (in metadata order) whose leading digits
    match, or that has no leading digits and validates the number, decides.
    """
    regions = _regions_for(country_code)
    if len(regions) == 1:
        return _valid_for(numbers, regions[0])
    valid = _false(len(numbers))
    pending = _true(len(numbers))
    leading = "|".join(r.leading_digits for r in regions if r.leading_digits)
    may_lead: pl.Series | None = None
    for region in regions:
        rows = pending.arg_true()
        if region.leading_digits:
            if may_lead is None:
                # One pass over the rows left decides which may need any of the
                # (many, for +1) regions chosen by leading digits.
                may_lead = _false(len(numbers))
                may_lead.scatter(rows, numbers.gather(rows).str.contains(leading))
            rows = rows.filter(may_lead.gather(rows))
        if rows.is_empty():
            continue
        subset = numbers.gather(rows)
        if region.leading_digits:
            chosen = subset.str.contains(region.leading_digits)
            rows, subset = rows.filter(chosen), subset.filter(chosen)
            ok = _valid_for(subset, region)
            pending.scatter(rows, False)
        else:
            ok = _valid_for(subset, region)
            pending.scatter(rows.filter(ok), False)
        winners = rows.filter(ok)
        if not winners.is_empty():
            valid.scatter(winners, True)
        if not pending.any():
            break
    return valid


@functools.cache
def _strip_expr(region: _PhoneRegion, *, check_length: bool) -> pl.Expr:
    """phonenumbers' national-prefix step on column "n".

    Without check_length it is _maybe_strip_national_prefix_carrier_code; with
    it, parse's use of that (the stripped number must have a possible length).
    """
    number = pl.col("n")
    if region.national_prefix is None:
        return number
    found = number.str.extract_groups(region.national_prefix)
    rest = found.struct.field(str(region.prefix_groups + 2))
    stripped = rest
    if region.transform_rule and region.prefix_groups:
        # Python's re.sub gives "" for a group that did not take part.
        pieces = [
            pl.lit(text)
            if group is None
            else found.struct.field(str(group + 1)).fill_null("")
            for text, group in region.transform_rule
        ]
        last = found.struct.field(str(region.prefix_groups + 1))
        stripped = (
            pl.when(last.is_not_null())
            .then(pl.concat_str(*pieces, rest))
            .otherwise(rest)
        )
    if region.general is None:
        viable, still_viable = pl.lit(False), pl.lit(False)
    else:
        viable = number.str.contains(region.general.pattern)
        still_viable = stripped.str.contains(region.general.pattern)
    # Keep the number as written when it was viable and stripping breaks that.
    take = found.struct.field("1").is_not_null() & ~(viable & ~still_viable)
    if check_length:
        lengths = stripped.str.len_chars()
        if region.possible_lengths and region.possible_lengths[0] != -1:
            take = take & (
                (
                    lengths.is_in(region.possible_lengths)
                    | (lengths > max(region.possible_lengths))
                )
                & ~lengths.is_in(region.local_lengths)
            )
        else:
            take = pl.lit(False)
    return pl.when(take).then(stripped).otherwise(number)


def _strip_numbers(
    numbers: pl.Series, region: _PhoneRegion, *, check_length: bool = True
) -> pl.Series:
    """_strip_expr over a column, run only on the rows its prefix could match."""
    if region.national_prefix is None or numbers.is_empty():
        return numbers
    hit = numbers.str.contains(region.national_prefix_start)
    if not hit.any():
        return numbers
    stripped = (
        pl.DataFrame({"n": numbers.filter(hit)})
        .lazy()
        .select(_strip_expr(region, check_length=check_length))
        .collect()
        .to_series()
    )
    return _patch(numbers, hit, stripped)


def _too_long(numbers: pl.Series, region: _PhoneRegion) -> pl.Series:
    """phonenumbers' _test_number_length(...) == TOO_LONG over a column."""
    if not region.possible_lengths or region.possible_lengths[0] == -1:
        return _false(len(numbers))
    lengths = numbers.str.len_chars()
    return (lengths > max(region.possible_lengths)) & ~lengths.is_in(
        region.local_lengths
    )


@dataclass(frozen=True, kw_only=True)
class _Group:
    """Rows (columns i, rest) of one calling code and the region whose national
    prefix applies to them (None: the calling code's main region)."""

    rows: pl.DataFrame
    country_code: str
    region: _PhoneRegion | None = None


def _international_prefix(
    national: pl.DataFrame, region: _PhoneRegion
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split (national, international) rows by the region's international prefix.

    Like phonenumbers, "011 44 ..." with region US is international unless a 0
    follows the prefix. A leading "00" that is not the region's prefix is read
    as "+" too (phonenumbers would read "0044..." in the US as a US number).
    """
    digits = national.get_column("digits")
    moved = pl.Series("idd", [None] * len(digits), dtype=pl.String)
    if region.international_prefix:
        hit = digits.str.contains(f"^(?:{region.international_prefix})")
        if hit.any():
            after = digits.filter(hit).str.extract(
                f"^(?:{region.international_prefix})([0-9]*)$", 1
            )
            moved = _patch(
                moved,
                hit,
                pl.select(pl.when(~after.str.starts_with("0")).then(after)).to_series(),
            )
    double_zero = moved.is_null() & digits.str.starts_with("00")
    if double_zero.any():
        moved = _patch(moved, double_zero, digits.filter(double_zero).str.slice(2))
    taken = moved.is_not_null()
    intl = national.filter(taken).with_columns(digits=moved.filter(taken))
    return national.filter(~taken), intl


def _national_rows(national: pl.DataFrame, region: _PhoneRegion) -> pl.DataFrame:
    """Rows read with the default region, including "14155550100" for US.

    phonenumbers takes a leading country code without "+" when the number is
    not viable with it but is without it, or is too long with it; such rows
    then use the calling code's main region for the national prefix, the others
    the default region. Returns columns i, cc, rest, strip (see _parsed).
    """
    code = region.country_code
    digits = national.get_column("digits")
    starts = digits.str.starts_with(code)
    rest = digits
    main = _false(len(digits))
    if starts.any():
        full = digits.filter(starts)
        potential = _strip_numbers(
            full.str.slice(len(code)), region, check_length=False
        )
        take = (~_viable(full, region) & _viable(potential, region)) | _too_long(
            full, region
        )
        rest = _patch(rest, starts, _where(take, potential, full))
        main = _patch(main, starts, take)
    own = "" if _regions_for(code)[0].code == region.code else region.code
    return national.select("i").with_columns(
        cc=pl.lit(code),
        rest=rest,
        strip=pl.when(pl.lit(main)).then(pl.lit("")).otherwise(pl.lit(own)),
    )


def _international_rows(intl: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Rows written with a country code (see _parsed); plus those of unknown codes."""
    with_cc = intl.with_columns(
        cc=pl.col("digits").str.extract(_country_codes_pattern(), 1)
    )
    unknown = with_cc.filter(pl.col("cc").is_null()).get_column("i")
    known = with_cc.filter(pl.col("cc").is_not_null()).select(
        "i",
        "cc",
        rest=pl.col("digits").str.slice(pl.col("cc").str.len_chars()),
        strip=pl.lit(""),
    )
    return known, unknown


def _finish(group: _Group) -> pl.DataFrame:
    """Columns i and e164 for the rows of one group that hold a valid number."""
    code = group.country_code
    region = group.region or _regions_for(code)[0]
    number = _strip_numbers(group.rows.get_column("rest"), region)
    return (
        pl.DataFrame(
            {
                "i": group.rows.get_column("i"),
                "n": number,
                "valid": _is_valid(number, code),
            }
        )
        .lazy()
        .filter(pl.col("valid") & pl.col("n").str.len_chars().is_between(2, 17))
        .select("i", e164=pl.lit("+" + code) + pl.col("n"))
        .collect()
    )


# A group of a shared calling code (+1, +7, +44...) this small is checked in one
# query with the others; a bigger one filters through its regions step by step.
_SMALL_GROUP = 1000


def _finish_all(parsed: pl.DataFrame, region: _PhoneRegion | None) -> pl.DataFrame:
    """Columns i and e164 (null when invalid) for the parsed rows.

    ``parsed`` has columns i, cc, rest (the national part as written) and strip:
    "" when the national prefix of the calling code's main region applies, else
    the code of the default region whose prefix does.
    """
    single = pl.col("cc").is_in(_single_region_codes())
    parts = [
        pl.DataFrame(schema={"i": pl.UInt32, "e164": pl.String}),
        _finish_single(parsed.filter(single)),
    ]
    shared = parsed.filter(~single)
    queries = []
    for (code, strip), rows in shared.partition_by(
        ["cc", "strip"], as_dict=True
    ).items():
        group = _Group(
            rows=rows.select("i", "rest"),
            country_code=str(code),
            region=region if strip else None,
        )
        if group.rows.height > _SMALL_GROUP:
            parts.append(_finish(group))
            continue
        number = pl.col("n")
        valid = _is_valid_expr(group.country_code) & number.str.len_chars().is_between(
            2, 17
        )
        queries.append(
            group.rows.lazy()
            .select("i", n=pl.col("rest"))
            .with_columns(
                n=_strip_expr(
                    group.region or _regions_for(group.country_code)[0],
                    check_length=True,
                )
            )
            .select(
                "i",
                e164=pl.when(valid).then(pl.lit("+" + group.country_code) + number),
            )
        )
    parts += pl.collect_all(queries)
    return pl.concat(parts)


@functools.cache
def _single_region_codes() -> frozenset[str]:
    return frozenset(
        str(code)
        for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
        if len(regions) == 1
    )


def _lengths_pattern(lengths: tuple[int, ...]) -> str:
    return "(?:" + "|".join(map(str, lengths)) + ")" if lengths else "[0-9]+"


@functools.cache
def _single_region_patterns() -> tuple[str, str, str]:
    """Patterns over all calling codes with one region, keyed by the code.

    Returns (national prefix start on "cc#n", general and type patterns on
    "cc#length#n"). One pattern for all codes means one polars call per batch,
    not one per country: a file with numbers from 200 countries stays fast.
    """
    prefixes: list[str] = []
    general: list[str] = []
    types: list[str] = []
    for code in sorted(_single_region_codes()):
        (region,) = _regions_for(code)
        if region.national_prefix:
            prefixes.append(f"{code}#{region.national_prefix_start[1:]}")
        if region.general is None or not region.types:
            continue
        general.append(
            f"{code}#{_lengths_pattern(region.general.lengths)}#(?:{region.general.body})"
        )
        types += [
            f"{code}#{_lengths_pattern(desc.lengths)}#(?:{desc.body})"
            for desc in region.types
        ]
    return (
        "^(?:" + "|".join(prefixes) + ")",
        "^(?:" + "|".join(general) + ")$",
        "^(?:" + "|".join(types) + ")$",
    )


def _finish_single(rows: pl.DataFrame) -> pl.DataFrame:
    """_finish_all for the calling codes with a single region, in a few calls."""
    prefix, general, types = _single_region_patterns()
    hit = rows.select(
        pl.concat_str("cc", pl.lit("#"), "rest").str.contains(prefix)
    ).to_series()
    frame = rows.select("i", "cc", n="rest")
    if hit.any():
        # Only these rows can lose a national prefix: usually few, or one country.
        queries = [
            group.lazy()
            .select("i", "n")
            .with_columns(n=_strip_expr(_regions_for(str(code))[0], check_length=True))
            for (code,), group in frame.filter(hit)
            .partition_by("cc", as_dict=True)
            .items()
        ]
        stripped = pl.concat(pl.collect_all(queries)).rename({"n": "stripped"})
        frame = frame.join(stripped, on="i", how="left", maintain_order="left").select(
            "i", "cc", n=pl.coalesce("stripped", "n")
        )
    number = pl.col("n")
    length = number.str.len_chars()
    key = pl.concat_str("cc", pl.lit("#"), length.cast(pl.String), pl.lit("#"), number)
    valid = (
        length.is_between(2, 17) & key.str.contains(general) & key.str.contains(types)
    )
    return (
        frame.lazy()
        .select("i", e164=pl.when(valid).then(pl.concat_str(pl.lit("+"), "cc", number)))
        .collect()
    )


def _clean(text: pl.Series) -> pl.Series:
    """Drop separators: the common ASCII ones by literal replacement, others by
    regex on the few rows that still hold anything but digits and "+"."""
    cleaned = text.str.replace_many(_ASCII_SEPARATORS, [""] * len(_ASCII_SEPARATORS))
    odd = cleaned.str.contains(r"[^0-9+]").fill_null(False)
    if odd.any():
        cleaned = _patch(
            cleaned, odd, cleaned.filter(odd).str.replace_all(_SEPARATORS, "")
        )
    return cleaned


def _e164_series(raw: pl.Series, region_code: str | None) -> pl.Series:
    """Normalise one column of phone numbers; returns the result struct."""
    region = (
        _phone_region(region_code, phonenumbers.country_code_for_region(region_code))
        if region_code
        else None
    )
    length = len(raw)
    raw = raw.cast(pl.String)
    text = raw.str.strip_chars()
    cleaned = _clean(text)
    plus = cleaned.str.starts_with("+").fill_null(False)
    digits = cleaned.str.strip_chars_start("+")
    if region is None:
        # Without a region "00" can only be an international prefix.
        double_zero = ~plus & digits.str.starts_with("00").fill_null(False)
        if double_zero.any():
            digits = _patch(
                digits, double_zero, digits.filter(double_zero).str.slice(2)
            )
            plus = plus | double_zero
    number = digits.str.contains(_PHONE_DIGITS).fill_null(False)
    extension = _false(length)
    odd = ~number & raw.is_not_null()
    if odd.any():
        # An extension always leaves letters or "#" behind, so look only there.
        extension = _patch(
            extension, odd, text.filter(odd).str.contains(_EXTENSION).fill_null(False)
        )
    frame = pl.DataFrame(
        {"i": pl.int_range(0, length, dtype=pl.UInt32, eager=True), "digits": digits}
    ).filter(number)
    plus_rows = plus.filter(number)
    intl = frame.filter(plus_rows)
    national = frame.filter(~plus_rows)
    parsed: list[pl.DataFrame] = []
    if region is not None and not national.is_empty():
        national, moved = _international_prefix(national, region)
        intl = pl.concat([intl, moved])
        if not national.is_empty():
            parsed.append(_national_rows(national, region))
    known, unknown = _international_rows(intl)
    parsed.append(known)
    e164 = pl.repeat(None, length, dtype=pl.String, eager=True)
    done = _finish_all(pl.concat(parsed), region)
    if not done.is_empty():
        e164.scatter(done.get_column("i"), done.get_column("e164"))
    why = pl.repeat(None, length, dtype=pl.String, eager=True)
    failed = e164.is_null() & raw.is_not_null()
    if failed.any():
        unknown_cc = _false(length)
        if not unknown.is_empty():
            unknown_cc.scatter(unknown, True)
        why = _patch(
            why,
            failed,
            _e164_problems(
                pl.DataFrame(
                    {
                        "raw": raw,
                        "extension": extension,
                        "number": number,
                        "plus": plus,
                        "unknown": unknown_cc,
                    }
                ).filter(failed),
                region_code,
            ),
        )
    return pl.DataFrame({VALUE: e164.fill_null(raw), PROBLEM: why}).to_struct("result")


def _e164_problems(failed: pl.DataFrame, region_code: str | None) -> pl.Series:
    """The problem text for each row that did not give a valid number."""
    invalid = "is not a valid phone number"
    national = (
        f"{invalid} (default region {region_code})"
        if region_code
        else (
            "has no country code; write +<country><number>"
            ' or set region = "US" in the mapping'
        )
    )
    why = (
        pl.when(pl.col("extension"))
        .then(pl.lit("has an extension; extensions can't be stored in phone_number"))
        .when(pl.col("unknown"))
        .then(pl.lit(f"{invalid}: unknown country code"))
        .when(pl.col("plus") | ~pl.col("number"))
        .then(pl.lit(invalid))
        .otherwise(pl.lit(national))
    )
    return failed.select(
        pl.concat_str(pl.lit("'"), pl.col("raw"), pl.lit("' "), why)
    ).to_series()


def _e164(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    region = options.region
    return value.map_batches(
        lambda series: _e164_series(series, region), return_dtype=RESULT_DTYPE
    )


# --- registry -----------------------------------------------------------------

TRANSFORMS: Mapping[str, Transform] = MappingProxyType(
    {
        transform.name: transform
        for transform in (
            Transform(
                name="strip",
                summary="remove whitespace at both ends",
                build=_strip,
            ),
            Transform(name="lower", summary="lower-case", build=_lower),
            Transform(name="upper", summary="upper-case", build=_upper),
            Transform(
                name="title",
                summary="capitalise each word (ada lovelace -> Ada Lovelace)",
                build=_title,
            ),
            Transform(
                name="squeeze",
                summary="turn every run of whitespace into one space; strip the ends",
                build=_squeeze,
            ),
            Transform(
                name="bool",
                summary=(
                    "true/t/yes/y/on/1 -> true, false/f/no/n/off/0 -> false (any case)"
                ),
                build=_bool,
            ),
            Transform(
                name="date",
                summary="a date in `format` or a common layout -> YYYY-MM-DD",
                build=_date,
                options=frozenset({"format"}),
                check=_check_format,
            ),
            Transform(
                name="epoch",
                summary=(
                    "a date or date-time (UTC unless it has an offset) ->"
                    " seconds since 1970"
                ),
                build=_epoch,
                options=frozenset({"format"}),
                check=_check_format,
            ),
            Transform(
                name="e164",
                summary=(
                    "a phone number -> +<country><number>, reading numbers without"
                    " a country code in `region`"
                ),
                build=_e164,
                options=frozenset({"region"}),
                check=_check_e164,
            ),
        )
    }
)
