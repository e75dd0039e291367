"""Vectorised value transforms a mapping can apply to a column (strip, bool, e164...).

Every transform turns an input expression (pl.String; null means blank) into one
Struct expression with two String fields: ``value`` (the transformed value) and
``problem`` (a short message naming the value when it could not be transformed,
null when fine; null input gives null in both). A transform never raises on data.

One struct rather than a (value, problem) pair of expressions: e164, date and
epoch run as one vectorised function per batch (they work on the rows a cheaper
step left undecided), and polars' common-subexpression elimination does not
deduplicate Python functions, so a pair would run them twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    #: The value alone, for a transform that can never fail (strip, lower...):
    #: a mapping chains it onto the value instead of building the struct.
    value: Callable[[pl.Expr], pl.Expr] | None = None
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


def _strip_value(value: pl.Expr) -> pl.Expr:
    return value.str.strip_chars()


def _lower_value(value: pl.Expr) -> pl.Expr:
    return value.str.to_lowercase()


def _upper_value(value: pl.Expr) -> pl.Expr:
    return value.str.to_uppercase()


def _title_value(value: pl.Expr) -> pl.Expr:
    return value.str.to_titlecase()


def _squeeze_value(value: pl.Expr) -> pl.Expr:
    return value.str.replace_all(r"\s+", " ").str.strip_chars()


def _never_fails(transform: Callable[[pl.Expr], pl.Expr]) -> Builder:
    """The Builder of a transform that has no problems to report."""

    def build(value: pl.Expr, options: TransformOptions) -> pl.Expr:
        return _result(transform(value))

    return build


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


Parser = Callable[[pl.Series], pl.Series]


def _date_parser(fmt: str) -> Parser:
    return lambda text: text.str.strptime(pl.Date, fmt, strict=False)


def _datetime_parser(fmt: str) -> Parser:
    return lambda text: text.str.strptime(pl.Datetime("us"), fmt, strict=False)


def _seconds(parse: Parser) -> Parser:
    return lambda text: parse(text).dt.epoch("s")


def _day(parse: Parser) -> Parser:
    return lambda text: parse(text).dt.date()


def _whole_seconds(text: pl.Series) -> pl.Series:
    # Digits only are taken as seconds already (a re-run of an earlier export).
    digits = text.str.contains(r"^[0-9]{1,12}$")
    return text.cast(pl.Int64, strict=False).zip_with(
        digits, pl.repeat(None, len(text), dtype=pl.Int64, eager=True)
    )


def _first_parse(text: pl.Series, parsers: Sequence[Parser]) -> pl.Series:
    """Each cell read by the first parser that can; the rest are tried only on
    the cells still unread, so a column in the first layout costs one parse."""
    found = parsers[0](text)
    for parse in parsers[1:]:
        missing = found.is_null() & text.is_not_null()
        if not missing.any():
            break
        found = found.scatter(missing.arg_true(), parse(text.filter(missing)))
    return found


def _parse_batch(
    raw: pl.Series, parsers: Sequence[Parser], expected: str, *, as_date: bool
) -> pl.Series:
    """The result struct for one column of dates (YYYY-MM-DD) or epoch seconds."""
    raw = raw.cast(pl.String).rechunk()
    parsed = _first_parse(raw.str.strip_chars(), parsers)
    frame = pl.DataFrame({"raw": raw, "parsed": parsed})
    if as_date:
        # Cognito's birthdate is exactly 10 characters: four-digit years only.
        good = pl.col("parsed").dt.year().is_between(1, 9999).fill_null(False)
        out = pl.col("parsed").dt.to_string("%Y-%m-%d")
    else:
        good = pl.col("parsed").is_not_null()
        out = pl.col("parsed").cast(pl.String)
    return frame.select(
        pl.struct(
            pl.when(good).then(out).otherwise("raw").alias(VALUE),
            pl.when(pl.col("raw").is_not_null() & ~good)
            .then(_quoted(pl.col("raw"), expected))
            .alias(PROBLEM),
        )
    ).to_series()


def _date(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    if options.format is not None:
        parsers = [_day(_datetime_parser(options.format))]
        expected = f"does not match the date format {options.format!r}"
    else:
        parsers = [_date_parser(fmt) for fmt in DATE_FORMATS]
        parsers += [_day(_datetime_parser(fmt)) for fmt in DATETIME_FORMATS[2:]]
        expected = "is not a date (write it as YYYY-MM-DD)"
    return value.map_batches(
        lambda raw: _parse_batch(raw, parsers, expected, as_date=True),
        return_dtype=RESULT_DTYPE,
    )


def _epoch(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    if options.format is not None:
        parsers = [_seconds(_datetime_parser(options.format))]
        expected = f"does not match the date format {options.format!r}"
    else:
        parsers = [_whole_seconds]
        parsers += [_seconds(_datetime_parser(fmt)) for fmt in DATETIME_FORMATS]
        parsers += [_seconds(_date_parser(fmt)) for fmt in DATE_FORMATS]
        expected = "is not a date or time (write it as YYYY-MM-DDTHH:MM:SSZ)"
    return value.map_batches(
        lambda raw: _parse_batch(raw, parsers, expected, as_date=False),
        return_dtype=RESULT_DTYPE,
    )


# --- e164 ---------------------------------------------------------------------
#
# phonenumbers.parse costs ~84 us per number. This re-implements its parse and
# is_valid_number over whole columns, driven by phonenumbers' own metadata
# (national-prefix, international-prefix, leading-digit and number-type
# patterns), and agrees with it on validity and output (tests/unit/
# test_transforms.py compares them). All countries share a few big patterns
# keyed by region ("US#10#4155550134"), so a batch costs a fixed handful of polars
# calls however many countries it holds, and polars' small compiled-regex cache
# (about 32 patterns) is not churned by per-country patterns.
#
# Known differences from phonenumbers.parse + is_valid_number:
# - a leading "00" is read as "+" without a default region, and with a region
#   whose international prefix is not "00" (US "011"): phonenumbers rejects
#   "0044..." without a region and reads it as a national number in the US;
# - letters are rejected (phonenumbers turns vanity numbers like 1-800-FLOWERS
#   into digits and drops trailing text such as "(mobile)");
# - only ASCII digits and "+" are read (phonenumbers also reads other scripts'
#   digits and the full-width plus sign);
# - an extension ("x12", "ext. 12", ";ext=12") is a problem: phone_number cannot
#   store one (phonenumbers parses it into a separate field).

_NON_GEO = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
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

    #: The pattern as phonenumbers has it, with ASCII digits.
    body: str
    lengths: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class _PhoneRegion:
    """What parse and is_valid_number read from one region's metadata."""

    #: The region code; non-geographic entities ("001") get their calling code
    #: appended, since each has its own metadata.
    key: str
    code: str
    country_code: str
    general: _Desc | None
    types: tuple[_Desc, ...]
    leading_digits: str | None
    national_prefix: str | None
    #: Capturing groups in national_prefix, and its transform rule as
    #: (literal, group number) pairs.
    prefix_groups: int
    transform_rule: tuple[tuple[str, int | None], ...]
    international_prefix: str | None
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]

    def viable(self) -> str:
        """phonenumbers' _match_national_number(n, general_desc): a full match."""
        never = "^$x"
        return f"^(?:{self.general.body})$" if self.general else never


def _ascii(pattern: str) -> str:
    # Input is ASCII digits by now, and a Unicode \d doubles polars' regex
    # compile time.
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
    return tuple(
        ("", int(piece)) if index % 2 else (piece, None)
        for index, piece in enumerate(pieces)
        if index % 2 or piece
    )


def _phone_region(code: str, country_code: int) -> _PhoneRegion:
    if code == _NON_GEO:
        meta = PhoneMetadata.metadata_for_nongeo_region(country_code)
    else:
        meta = PhoneMetadata.metadata_for_region(code)
    # Codes come from phonenumbers' own calling-code table, so metadata exists.
    assert meta is not None, code
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for name in _DESC_FIELDS:
        found = _desc(getattr(meta, name))
        if found is not None:
            by_lengths.setdefault(found.lengths, []).append(found.body)
    prefix = _ascii(meta.national_prefix_for_parsing or "")
    general = meta.general_desc
    return _PhoneRegion(
        key=code + str(country_code) if code == _NON_GEO else code,
        code=code,
        country_code=str(country_code),
        general=_desc(general),
        types=tuple(
            _Desc(body="|".join(bodies), lengths=lengths)
            for lengths, bodies in by_lengths.items()
        ),
        leading_digits=_ascii(meta.leading_digits) if meta.leading_digits else None,
        national_prefix=prefix or None,
        prefix_groups=re.compile(prefix).groups if prefix else 0,
        transform_rule=_rule_parts(meta.national_prefix_transform_rule),
        international_prefix=_ascii(meta.international_prefix or "") or None,
        possible_lengths=tuple(getattr(general, "possible_length", None) or ()),
        local_lengths=tuple(getattr(general, "possible_length_local_only", None) or ()),
    )


def _lengths(lengths: tuple[int, ...]) -> str:
    return "(?:" + "|".join(map(str, lengths)) + ")" if lengths else "[0-9]+"


@dataclass(frozen=True, kw_only=True)
class _PhoneTables:
    """phonenumbers' metadata for every region, as keyed polars patterns."""

    regions: Mapping[str, _PhoneRegion]
    #: Region keys of each calling code, in the order phonenumbers tries them.
    by_country: Mapping[str, tuple[str, ...]]
    #: "^(1|7|20|...)": the calling code at the start of a number.
    country_code: str
    #: National prefixes at the start of "KEY#number".
    national_prefix: str
    #: General and number-type patterns of each region key, each with its
    #: lengths, as alternatives on "KEY#length#number" (see _validity).
    general: Mapping[str, str]
    types: Mapping[str, str]
    #: Leading digits of the regions that share a calling code, on "CC#number":
    #: all of them (any_leading), and one capture group per region, in
    #: metadata order, so the first group to match names the region
    #: (leading, with leading_keys the region key of each group).
    any_leading: str
    leading: str
    leading_keys: tuple[str, ...]
    #: Position of each region key among its calling code's regions, and of the
    #: first region with leading digits of the calling codes that have one.
    position: Mapping[str, int]
    first_leading: Mapping[str, int]
    #: Regions without leading digits, the first, second... of each calling code.
    plain: tuple[Mapping[str, str], ...]


@functools.cache
def _tables() -> _PhoneTables:
    regions: dict[str, _PhoneRegion] = {}
    by_country: dict[str, tuple[str, ...]] = {}
    for code, names in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        found = [_phone_region(name, code) for name in names]
        regions.update((region.key, region) for region in found)
        by_country[str(code)] = tuple(region.key for region in found)
    values = regions.values()
    # phonenumbers ignores leading digits of a region that has its code alone.
    leading = [
        (code, key, regions[key].leading_digits)
        for code, keys in by_country.items()
        if len(keys) > 1
        for key in keys
        if regions[key].leading_digits
    ]
    plain = [
        [key for key in keys if regions[key].leading_digits is None or len(keys) == 1]
        for keys in by_country.values()
    ]
    return _PhoneTables(
        regions=MappingProxyType(regions),
        by_country=MappingProxyType(by_country),
        # Calling codes are prefix-free, so the alternation order does not matter.
        country_code="^(" + "|".join(by_country) + ")",
        national_prefix=_alternatives(
            f"{r.key}#(?:{r.national_prefix})" for r in values if r.national_prefix
        ),
        general=MappingProxyType(
            {
                r.key: f"{r.key}#{_lengths(r.general.lengths)}#(?:{r.general.body})"
                for r in values
                if r.general and r.types
            }
        ),
        types=MappingProxyType(
            {
                r.key: "|".join(
                    f"{r.key}#{_lengths(desc.lengths)}#(?:{desc.body})"
                    for desc in r.types
                )
                for r in values
                if r.general and r.types
            }
        ),
        any_leading=_alternatives(f"{code}#(?:{ld})" for code, _, ld in leading),
        leading=_alternatives(f"{code}#(?:{ld})()" for code, _, ld in leading),
        leading_keys=tuple(key for _, key, _ in leading),
        position=MappingProxyType(
            {key: at for keys in by_country.values() for at, key in enumerate(keys)}
        ),
        first_leading=MappingProxyType(
            {
                code: min(keys.index(key) for c, key, _ in leading if c == code)
                for code, keys in by_country.items()
                if any(c == code for c, _, _ in leading)
            }
        ),
        plain=tuple(
            MappingProxyType(
                {
                    code: keys[step]
                    for code, keys in zip(by_country, plain, strict=True)
                    if len(keys) > step
                }
            )
            for step in range(max(map(len, plain)))
        ),
    )


def _alternatives(patterns: Iterable[str]) -> str:
    return "^(?:" + "|".join(patterns) + ")"


@functools.lru_cache(maxsize=256)
def _validity(keys: frozenset[str]) -> tuple[str, str]:
    """The general and number-type patterns of the regions ``keys`` only.

    Every region's patterns in one alternation come to 100 KB, which polars
    compiles in 60-90 ms, and its regex cache is small enough that the other
    patterns of a run evict it: a batch's numbers usually belong to a region
    or two, whose patterns compile in well under a millisecond.
    """
    tables = _tables()
    general = [tables.general[key] for key in sorted(keys) if key in tables.general]
    if not general:
        return _NEVER, _NEVER
    types = [tables.types[key] for key in sorted(keys) if key in tables.types]
    return _alternatives(general) + "$", _alternatives(types) + "$"


#: A pattern that matches no text.
_NEVER = "^$x"


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


def _patch(base: pl.Series, mask: pl.Series, values: pl.Series) -> pl.Series:
    """``base`` with the rows where ``mask`` holds replaced by ``values``."""
    if values.is_empty():
        return base
    out = base.clone()
    out.scatter(mask.arg_true(), values)
    return out


def _length_test(number: pl.Expr, region: _PhoneRegion, *, too_long: bool) -> pl.Expr:
    """phonenumbers' _test_number_length: TOO_LONG (too_long) or a length parse
    accepts after stripping a national prefix (IS_POSSIBLE or TOO_LONG)."""
    lengths = region.possible_lengths
    if not lengths or lengths[0] == -1:
        return pl.lit(False)
    size = number.str.len_chars()
    longer = size > max(lengths)
    accepted = longer if too_long else size.is_in(lengths) | longer
    return accepted & ~size.is_in(region.local_lengths)


@functools.cache
def _strip_expr(region: _PhoneRegion, *, check_length: bool) -> pl.Expr:
    """phonenumbers' national-prefix step on column "n".

    Without check_length it is _maybe_strip_national_prefix_carrier_code; with
    it, parse's use of that (the stripped number must have a possible length).
    """
    number = pl.col("n")
    if region.national_prefix is None:
        return number
    found = number.str.extract_groups(f"^((?:{region.national_prefix}))([0-9]*)$")
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
    viable = number.str.contains(region.viable())
    # Keep the number as written when it was viable and stripping breaks that.
    take = found.struct.field("1").is_not_null() & ~(
        viable & ~stripped.str.contains(region.viable())
    )
    if check_length:
        take = take & _length_test(stripped, region, too_long=False)
    return pl.when(take).then(stripped).otherwise(number)


def _strip_rows(rows: pl.DataFrame, region: _PhoneRegion) -> pl.DataFrame:
    """_strip_expr (without the length test) on column "n" of ``rows``."""
    return rows.lazy().with_columns(n=_strip_expr(region, check_length=False)).collect()


def _international_prefix(
    national: pl.DataFrame, region: _PhoneRegion, *, double_zero: bool
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split rows (i, digits) into (national, international) ones.

    Like phonenumbers, "011 44 ..." with region US is international unless a 0
    follows the prefix. With double_zero, a leading "00" is read as "+" too.
    """
    digits = pl.col("digits")
    after = (
        digits.str.extract(f"^(?:{region.international_prefix})([0-9]*)$", 1)
        if region.international_prefix
        else pl.lit(None, dtype=pl.String)
    )
    moved: pl.Expr = pl.when(~after.str.starts_with("0")).then(after)
    if double_zero:
        moved = moved.fill_null(
            pl.when(digits.str.starts_with("00")).then(digits.str.slice(2))
        )
    frame = national.with_columns(moved=moved)
    taken = pl.col("moved").is_not_null()
    return (
        frame.filter(~taken).select("i", "digits"),
        frame.filter(taken).select("i", digits="moved"),
    )


def _national_rows(national: pl.DataFrame, region: _PhoneRegion) -> pl.DataFrame:
    """Rows (i, digits) read with the default region, as parsed rows (_finish).

    phonenumbers also takes a leading country code without "+" ("14155550134"
    in the US) when the number is not viable with it but is without it, or is
    too long with it; the national prefix of the calling code's main region
    then applies, else the default region's.
    """
    code = region.country_code
    main = _tables().by_country[code][0]
    frame = national.select("i", n="digits")
    starts = frame.get_column("n").str.starts_with(code)
    if starts.any():
        full = frame.filter(starts)
        cut = _strip_rows(full.with_columns(n=pl.col("n").str.slice(len(code))), region)
        full = full.with_columns(potential=cut.get_column("n"))
        digits, potential = pl.col("n"), pl.col("potential")
        take = (
            ~digits.str.contains(region.viable())
            & potential.str.contains(region.viable())
        ) | _length_test(digits, region, too_long=True)
        full = full.select(
            "i",
            n=pl.when(take).then(potential).otherwise(digits),
            strip=pl.when(take).then(pl.lit(main)).otherwise(pl.lit(region.key)),
        )
        frame = pl.concat(
            [frame.filter(~starts).with_columns(strip=pl.lit(region.key)), full]
        )
    else:
        frame = frame.with_columns(strip=pl.lit(region.key))
    return frame.select("i", cc=pl.lit(code), rest="n", strip="strip")


def _international_rows(intl: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Rows (i, digits) written with a calling code, as parsed rows (_finish);
    and the rows whose calling code is unknown."""
    tables = _tables()
    with_cc = intl.with_columns(cc=pl.col("digits").str.extract(tables.country_code, 1))
    unknown = with_cc.filter(pl.col("cc").is_null()).get_column("i")
    main = {code: keys[0] for code, keys in tables.by_country.items()}
    known = with_cc.filter(pl.col("cc").is_not_null()).select(
        "i",
        "cc",
        rest=pl.col("digits").str.slice(pl.col("cc").str.len_chars()),
        strip=pl.col("cc").replace_strict(main, return_dtype=pl.String),
    )
    return known, unknown


def _finish(parsed: pl.DataFrame) -> pl.DataFrame:
    """Columns i and e164 for the parsed rows that hold valid numbers.

    ``parsed`` has columns i, cc, rest (the digits after the calling code) and
    strip (the key of the region whose national prefix applies).
    """
    tables = _tables()
    keyed = pl.concat_str("strip", pl.lit("#"), "rest")
    hit = parsed.select(keyed.str.contains(tables.national_prefix)).to_series()
    frame = parsed.select("i", "cc", n="rest")
    if hit.any():
        # Only these rows can lose a national prefix: usually few, or one region.
        found = parsed.filter(hit).select("i", "strip", n="rest")
        queries = [
            rows.lazy()
            .select("i", "n")
            .with_columns(n=_strip_expr(tables.regions[str(key)], check_length=True))
            for (key,), rows in found.partition_by("strip", as_dict=True).items()
        ]
        stripped = pl.concat(pl.collect_all(queries)).rename({"n": "stripped"})
        frame = frame.join(stripped, on="i", how="left", maintain_order="left").select(
            "i", "cc", n=pl.coalesce("stripped", "n")
        )
    return _valid_numbers(frame.filter(pl.col("n").str.len_chars().is_between(2, 17)))


def _leading(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows (i, cc, n) with the region their leading digits pick (lead, or
    null) and its position among its calling code's regions (lead_at)."""
    tables = _tables()
    key = pl.concat_str("cc", pl.lit("#"), "n")
    found = key.str.extract_groups(tables.leading)
    picks = frame.filter(key.str.contains(tables.any_leading)).select(
        "i",
        lead=pl.coalesce(
            pl.when(found.struct.field(str(at)).is_not_null()).then(pl.lit(name))
            for at, name in enumerate(tables.leading_keys, start=1)
        ),
    )
    return frame.join(picks, on="i", how="left", maintain_order="left").with_columns(
        lead_at=pl.col("lead").replace_strict(
            tables.position, default=None, return_dtype=pl.Int64
        )
    )


def _by_code(
    only: str | None, table: Mapping[str, object], dtype: pl.DataType
) -> pl.Expr:
    """Column "cc" looked up in ``table``: a constant when every row has
    calling code ``only``."""
    if only is not None:
        return pl.lit(table.get(only), dtype=dtype)
    return pl.col("cc").replace_strict(table, default=None, return_dtype=dtype)


def _valid_numbers(frame: pl.DataFrame) -> pl.DataFrame:
    """is_valid_number over rows (i, cc, n): columns i and e164 of the valid ones.

    Like phonenumbers, the first region of the calling code (in metadata order)
    whose leading digits match, or that has none and validates the number,
    decides. Rounds try the regions without leading digits in turn (at most
    three: US then CA for +1) on the rows still undecided. Leading digits are
    looked at only for rows that get past the regions listed before any region
    that has them: +1 numbers valid in the US never are.
    """
    tables = _tables()
    number, key = pl.col("n"), pl.col("key")
    size = number.str.len_chars().cast(pl.String)
    long_key = pl.concat_str(key, pl.lit("#"), size, pl.lit("#"), number)

    def ok(keys: Iterable[str | None]) -> pl.Expr:
        """Whether the number is valid in its region (one of ``keys``)."""
        general, types = _validity(frozenset(k for k in keys if k is not None))
        return long_key.str.contains(general) & long_key.str.contains(types)

    e164 = pl.concat_str(pl.lit("+"), "cc", "n")
    valid = [pl.DataFrame(schema={"i": pl.UInt32, "e164": pl.String})]
    looked = False
    for regions in tables.plain:
        present = set(frame.get_column("cc").unique())
        codes = present.intersection(regions)
        if not codes:
            break
        # What depends on the calling code alone: a constant when the rows
        # share one (a phone column usually holds one country).
        only = next(iter(present)) if len(present) == 1 else None
        plain = _by_code(only, regions, pl.String())
        # Until leading digits are looked at, the first region that has them.
        first = _by_code(only, tables.first_leading, pl.Int64())
        at = (
            pl.lit(tables.position.get(regions[only]), dtype=pl.Int64)
            if only is not None
            else key.replace_strict(
                tables.position, default=None, return_dtype=pl.Int64
            )
        )
        if not looked:
            behind = plain.replace_strict(tables.position, default=None) >= first
            if frame.select(behind.fill_null(False).any()).item():
                frame, looked = _leading(frame), True
        bound = pl.col("lead_at") if looked else first
        now = key.is_not_null() & (bound.is_null() | (at < bound))
        checked = (
            frame.lazy()
            .with_columns(key=plain)
            .with_columns(ok=(now & ok(regions[c] for c in codes)).fill_null(False))
            .collect()
        )
        valid.append(checked.filter("ok").select("i", e164=e164))
        frame = checked.filter(~pl.col("ok")).drop("key", "ok")
    if frame.is_empty():
        return pl.concat(valid)
    if not looked:
        frame = _leading(frame)
    decided = frame.filter(pl.col("lead").is_not_null()).with_columns(key="lead")
    leads = decided.get_column("key").unique()
    valid.append(decided.filter(ok(leads)).select("i", e164=e164))
    return pl.concat(valid)


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
    region = _tables().regions[region_code] if region_code else None
    length = len(raw)
    # One chunk: zipping columns whose chunks differ is very slow in polars.
    raw = raw.cast(pl.String).rechunk()
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
    parsed: list[pl.DataFrame] = []
    if region is not None:
        national, moved = _international_prefix(
            frame.filter(~plus_rows), region, double_zero=True
        )
        # phonenumbers reads "+00 44..." through the region's prefix as well.
        zero = pl.col("digits").str.starts_with("0")
        _, rescued = _international_prefix(intl.filter(zero), region, double_zero=False)
        intl = pl.concat([intl.filter(~zero), rescued, moved])
        if not national.is_empty():
            parsed.append(_national_rows(national, region))
    known, unknown = _international_rows(intl)
    parsed.append(known)
    e164 = pl.repeat(None, length, dtype=pl.String, eager=True)
    done = _finish(pl.concat(parsed))
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


#: Normalise each distinct number once when a column repeats itself at least
#: this much (shared office lines, exports that repeat a household's number).
_DISTINCT_SHARE = 0.5


#: Distinct numbers a column looks up in its _Memo before the memo is judged,
#: and the share of them it must have known to be kept on.
_MEMO_TRIAL = 100_000
_MEMO_HITS = 0.25
#: Numbers a _Memo keeps (the latest): about 5 MB.
_MEMO_SIZE = 100_000
_HIT = "__hit"


class _Memo:
    """Numbers one e164 column worked out in its earlier batches.

    A file repeats its numbers across batches as much as within one (a few
    thousand office lines over a million users): each is then worked out
    once per job rather than once per batch. A column whose numbers do not
    come back (a share under _MEMO_HITS of the first _MEMO_TRIAL) stops using
    it, so that all-distinct numbers pay two lookups for two batches only.
    Shared by the threads that map batches, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: pl.DataFrame | None = None
        self._looked = 0
        self._found = 0

    @property
    def useful(self) -> bool:
        """Whether this column's numbers come back often enough to keep."""
        return self._looked < _MEMO_TRIAL or self._found >= _MEMO_HITS * self._looked

    def split(self, distinct: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
        """(raw, result) of the numbers known, and the numbers not known."""
        known = self._table
        if known is None:
            return pl.DataFrame(schema={"raw": pl.String, "result": RESULT_DTYPE}), (
                distinct
            )
        looked = distinct.to_frame("raw").join(
            known, on="raw", how="left", nulls_equal=True, maintain_order="left"
        )
        hit = looked.get_column(_HIT).is_not_null()
        return looked.filter(hit).drop(_HIT), looked.filter(~hit).get_column("raw")

    def add(self, computed: pl.DataFrame, *, looked: int, found: int) -> None:
        """Keep ``computed`` (raw, result), the latest numbers first."""
        with self._lock:
            self._looked += looked
            self._found += found
            if not self.useful:
                self._table = None
                return
            fresh = computed.with_columns(pl.lit(True).alias(_HIT))
            if self._table is not None:
                # Another thread may have worked out some of these numbers
                # meanwhile: the memo holds each once (its join gives a row one
                # result).
                fresh = fresh.join(self._table, on="raw", how="anti", nulls_equal=True)
                fresh = pl.concat([fresh, self._table])
            self._table = fresh.head(_MEMO_SIZE).rechunk()


def _e164_distinct(
    raw: pl.Series, region_code: str | None, memo: _Memo | None = None
) -> pl.Series:
    """_e164_series, computed once per distinct value when values repeat
    (in this batch or, with ``memo``, in earlier ones)."""
    raw = raw.cast(pl.String)
    distinct = raw.unique()
    if memo is not None and memo.useful:
        found, todo = memo.split(distinct)
        computed = pl.DataFrame(
            {"raw": todo, "result": _e164_series(todo, region_code)}
        )
        memo.add(computed, looked=len(distinct), found=found.height)
        table = pl.concat([found, computed])
    elif len(distinct) > _DISTINCT_SHARE * len(raw):
        return _e164_series(raw, region_code)
    else:
        table = pl.DataFrame(
            {"raw": distinct, "result": _e164_series(distinct, region_code)}
        )
    return (
        raw.to_frame("raw")
        .join(table, on="raw", how="left", nulls_equal=True, maintain_order="left")
        .get_column("result")
    )


def _e164(value: pl.Expr, options: TransformOptions) -> pl.Expr:
    region = options.region
    # One memo per compiled mapping: a job's column, batch after batch.
    memo = _Memo()
    return value.map_batches(
        lambda series: _e164_distinct(series, region, memo),
        return_dtype=RESULT_DTYPE,
    )


# --- registry -----------------------------------------------------------------

TRANSFORMS: Mapping[str, Transform] = MappingProxyType(
    {
        transform.name: transform
        for transform in (
            Transform(
                name="strip",
                summary="remove whitespace at both ends",
                build=_never_fails(_strip_value),
                value=_strip_value,
            ),
            Transform(
                name="lower",
                summary="lower-case",
                build=_never_fails(_lower_value),
                value=_lower_value,
            ),
            Transform(
                name="upper",
                summary="upper-case",
                build=_never_fails(_upper_value),
                value=_upper_value,
            ),
            Transform(
                name="title",
                summary="capitalise each word (ada lovelace -> Ada Lovelace)",
                build=_never_fails(_title_value),
                value=_title_value,
            ),
            Transform(
                name="squeeze",
                summary="turn every run of whitespace into one space; strip the ends",
                build=_never_fails(_squeeze_value),
                value=_squeeze_value,
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
