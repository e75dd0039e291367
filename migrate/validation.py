"""Checks before anything is sent: the mapping against the pool, every row's values.

Two levels, because they fail differently:

* ``check_mapping`` looks at the mapping once. A mistake there (an attribute the
  pool lacks, an immutable one) would fail every row, so it is a MappingError
  before any work starts. Allowed-but-risky choices come back as warnings.
* ``Validator`` checks every row, as polars expressions over whole batches. A bad
  row is data, not an exception: it gets ``ERROR_CODE`` (the first problem, in
  the order of ``CODES``) and ``ERROR_MESSAGE`` (every problem, "; "-joined,
  each naming row, column and attribute) and is never sent.

Duplicate users need the whole file, not one batch: ``find_duplicates`` makes one
pass over the user keys before validation starts, exact and in bounded memory
(hash partitions on disk for large files, see migrate.spill).

Number attributes are checked as integers: Cognito's own number constraints are
whole numbers and ID tokens carry the value as a string, and a value Cognito might
reject is worse than one caught here (map decimals to a String attribute). Text
is checked as written: "5.0" in a CSV is refused, not rounded (a float column of
Parquet or JSON lines already reads 5.0 as "5", see migrate.source).
DateTime attributes must be ISO 8601 dates or date-times.

No value may hold a control character (see mapping.CONTROL_CHARACTERS), and a
cell the source could not turn into text (a NaN or infinite float) makes its
row invalid (``not_finite``) instead of being sent as "NaN" or skipped.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from migrate import spill
from migrate.errors import MappingError
from migrate.mapping import (
    CONTROL_CHARACTERS,
    VERIFIED_FLAGS,
    AttributeRule,
    Mapping,
    cell_col,
)
from migrate.records import (
    ERROR_CODE,
    ERROR_MESSAGE,
    MAX_ATTRIBUTE_VALUE,
    ROW,
    TOKEN,
    USER,
    problem_col,
    value_col,
)
from migrate.schema import AttributeSchema, PoolSchema
from migrate.spill import (
    Partition,
    Partitioned,
    RowTable,
    RowTableBuilder,
    chunks,
    partitioned,
    reduce_pieces,
)

#: Int64 column added by validate(): for ``duplicates = "last"``, the row number
#: of the user's last row when this one is superseded by it (null otherwise).
SUPERSEDED_BY: Final = "__superseded_by"

#: Problem codes, in priority order: ERROR_CODE is the first that applies.
CODES: Final[tuple[str, ...]] = (
    "not_finite",
    "missing_user",
    "bad_user_key",
    "missing_token",
    "duplicate_user",
    "transform",
    "blank_value",
    "required_blank",
    "control_character",
    "too_long",
    "too_short",
    "not_a_number",
    "out_of_range",
    "not_boolean",
    "bad_date",
    "bad_email",
    "bad_phone",
    "formula",
    "verified_flag",
)

#: Longest Username the Admin* operations accept.
MAX_USER_KEY: Final = 128
#: How much of a long value a message shows.
PREVIEW_CHARS: Final = 40

# A practical subset of RFC 5322: dot-atom local part, dotted domain of labels.
_ATOM = r"[\p{L}\p{M}\p{N}!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?"
EMAIL_PATTERN: Final = rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+$"
E164_PATTERN: Final = r"^\+[1-9][0-9]{6,14}$"
UUID_PATTERN: Final = (
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)
INTEGER_PATTERN: Final = r"^-?[0-9]+$"
# OIDC birthdate: YYYY-MM-DD (0000 when the year is withheld).
DATE_PATTERN: Final = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"
DATETIME_PATTERN: Final = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?$"
)
# AccessToken (TokenModelType) pattern.
TOKEN_PATTERN: Final = r"^[A-Za-z0-9_=.-]+$"
# Username pattern [\p{L}\p{M}\p{S}\p{N}\p{P}]+: no whitespace or control chars.
_NOT_IN_USERNAME = r"[\s\p{C}]"
_ASCII_SPACE_CONTROL = [chr(c) for c in range(0x21)] + ["\x7f"]

_VERIFIED_FLAGS = VERIFIED_FLAGS
_MESSAGE_TRIGGERS = ("CustomMessage", "CustomEmailSender", "CustomSMSSender")
_UNWRITABLE = {
    "sub": "sub is the user's permanent id, assigned by Cognito: it cannot be written",
    "identities": (
        "identities is managed by Cognito (linked sign-in providers): "
        "it cannot be written"
    ),
}


# --- the mapping against the pool -------------------------------------------


def check_mapping(mapping: Mapping, schema: PoolSchema) -> list[str]:
    """Reject mapping mistakes that would fail every row; return risk warnings."""
    errors: list[str] = []
    for name, rule in mapping.attributes.items():
        where = _table(name)
        attribute = schema.get(name)
        if attribute is None:
            errors.append(f"{where}: {_unknown(name, schema)}")
            continue
        errors += [f"{where}: {e}" for e in _write_errors(attribute, mapping.api)]
        if mapping.blank == "delete" and attribute.required and _can_be_blank(rule):
            errors.append(
                f'{where}: {name} is required in this pool, so blank = "delete" '
                'could not delete it; use blank = "skip" or "error"'
            )
    for name in mapping.delete:
        where = "[delete] attributes"
        attribute = schema.get(name)
        if attribute is None:
            errors.append(f"{where}: {_unknown(name, schema)}")
            continue
        errors += [f"{where}: {e}" for e in _write_errors(attribute, mapping.api)]
        if attribute.required:
            errors.append(
                f"{where}: {name} is required in this pool: it cannot be deleted"
            )
    sign_in = (*schema.username_attributes, *schema.alias_attributes)
    if (
        mapping.api == "admin"
        and mapping.user_as in ("email", "phone_number")
        and mapping.user_as not in sign_in
    ):
        errors.append(
            f'[user] as = "{mapping.user_as}", but this pool does not sign users in '
            f"with {mapping.user_as} (not in UsernameAttributes or AliasAttributes), "
            "so Cognito cannot find users by it; key the file by username or sub"
        )
    if errors:
        message = errors[0] if len(errors) == 1 else "\n".join(errors)
        raise MappingError(message, path=mapping.path)
    return _warnings(mapping, schema)


def _table(name: str) -> str:
    """How the mapping file spells the attribute's table."""
    key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'
    return f"[attributes.{key}]"


def _write_errors(attribute: AttributeSchema, api: str) -> list[str]:
    name = attribute.name
    errors: list[str] = []
    if name in _UNWRITABLE:
        errors.append(_UNWRITABLE[name])
    elif not attribute.mutable:
        errors.append(
            f"{name} is immutable: Cognito only writes it when a user is created"
        )
    if attribute.developer_only and api == "token":
        errors.append(
            f"{name} is developer-only: only IAM-authenticated calls can write it, "
            'so it needs api = "admin"'
        )
    return errors


def _can_be_blank(rule: AttributeRule) -> bool:
    return rule.value is None or not rule.value.strip()


def _unknown(name: str, schema: PoolSchema) -> str:
    """Why ``name`` is not in the pool, with the closest names it has."""
    names = list(schema.attributes)
    base = _base(name)
    for candidate in (f"custom:{base}", f"dev:custom:{base}", base):
        if candidate != name and candidate in schema.attributes:
            return (
                f"{name} is not an attribute of this pool; did you mean "
                f"{candidate}?{_prefix_hint(candidate)}"
            )
    by_base: dict[str, str] = {}
    for known in names:
        by_base.setdefault(_base(known), known)
    close = [by_base[b] for b in difflib.get_close_matches(base, list(by_base), n=3)]
    if close:
        hint = " or ".join(close)
        return f"{name} is not an attribute of this pool; did you mean {hint}?"
    custom = [n for n in names if n.startswith(("custom:", "dev:"))]
    listing = (
        f"this pool's custom attributes: {', '.join(custom)}"
        if custom
        else "this pool has no custom attributes"
    )
    return (
        f"{name} is not an attribute of this pool (custom attributes are written "
        f"with the custom: prefix; {listing})"
    )


def _base(name: str) -> str:
    return name.removeprefix("dev:").removeprefix("custom:")


def _prefix_hint(candidate: str) -> str:
    if candidate.startswith("dev:"):
        return " (developer-only attributes are written with the dev:custom: prefix)"
    if candidate.startswith("custom:"):
        return " (custom attributes are written with the custom: prefix)"
    return " (standard attributes have no prefix)"


def _warnings(mapping: Mapping, schema: PoolSchema) -> list[str]:
    warnings: list[str] = []
    attributes = mapping.attributes
    messages_possible = False
    for name in ("email", "phone_number"):
        if name in attributes:
            text, sends = _contact_warning(name, mapping, schema)
            warnings.append(text)
            messages_possible |= sends
    for flag, name in _VERIFIED_FLAGS.items():
        rule = attributes.get(flag)
        if rule is not None and rule.value == "true" and name not in attributes:
            warnings.append(
                f'{flag} = "true" without {name} in the mapping marks every '
                f"user's current {name} verified without checking it"
            )
    if mapping.delete:
        warnings.append(
            f"[delete] removes {', '.join(mapping.delete)} from every user in the file"
        )
    if mapping.blank == "delete":
        blankable = [n for n, r in attributes.items() if _can_be_blank(r)]
        if blankable:
            warnings.append(
                'blank = "delete": an empty cell deletes the attribute '
                f"({', '.join(blankable)})"
            )
    triggers = [t for t in schema.lambda_triggers if t in _MESSAGE_TRIGGERS]
    if triggers and messages_possible:
        warnings.append(
            f"the pool's {' and '.join(triggers)} trigger runs for every "
            "verification message this job causes"
        )
    if mapping.client_metadata and not triggers:
        warnings.append(
            "[client_metadata] reaches only message triggers (CustomMessage, "
            "CustomEmailSender, CustomSMSSender) and this pool has none: it is ignored"
        )
    if mapping.api == "token" and attributes:
        warnings.append(
            'api = "token": the app client that issued the tokens must be allowed '
            f"to write {', '.join(attributes)}, or Cognito rejects every call"
        )
    return warnings


def _contact_warning(
    name: str, mapping: Mapping, schema: PoolSchema
) -> tuple[str, bool]:
    """What this pool does when ``name`` changes; and whether it sends messages."""
    flag = f"{name}_verified"
    label, article = (
        ("email address", "an") if name == "email" else ("phone number", "a")
    )
    medium = "email" if name == "email" else "SMS"
    flag_rule = mapping.attributes.get(flag)
    flag_value = None if flag_rule is None else flag_rule.value
    sign_in = name in schema.alias_attributes or name in schema.username_attributes
    if mapping.api == "admin" and flag_value == "true":
        text = (
            f'{name} is set with {flag} = "true": Cognito changes it at once, '
            "keeps it verified and sends no message"
        )
        if sign_in:
            text += (
                f"; {article} {label} already verified on another user moves to "
                "this user without an error, so make sure no two users share one"
            )
        return text, False
    if name in schema.verify_before_update:
        text = (
            f"{name} is set: this pool keeps the old {label} until the user confirms "
            f"the new one (AttributesRequireVerificationBeforeUpdate) and sends a "
            f"verification code by {medium} to every new {label}"
        )
    else:
        text = f"{name} is set: Cognito writes the new {label} at once, unverified"
        if name in schema.auto_verified_attributes:
            text += f", and sends a verification code by {medium} to each one"
        if name in schema.alias_attributes:
            text += (
                f"; users cannot sign in with an unverified {name} alias until "
                "they verify it"
            )
        elif name in schema.username_attributes:
            text += f"; {name} is a sign-in name in this pool (UsernameAttributes)"
    sends = name in schema.auto_verified_attributes
    if mapping.api == "token":
        text += '; with api = "token" the verification cannot be skipped'
    elif flag_rule is not None and flag_value is None:
        text += f'; rows with {flag} "true" change at once and get no message'
    else:
        text += (
            f'; to change it at once without a message, map {flag} = "true" '
            "(value) as well"
        )
    return text, sends


# --- duplicate users across the whole file ------------------------------------

#: Normalised key (and owner) while duplicates are looked for.
_KEY = "__dup_key"
_OWNER = "__dup_owner"
_OTHERS = "__dup_others"
_LAST = "__dup_last"
_COUNT = "__dup_n"
_HEAD = "__dup_head"
_HASHED = "__dup_hash"
#: How many other row numbers a duplicate_user message lists.
SHOWN_DUPLICATES: Final = 5
_DUPLICATE_SCHEMA: Final[dict[str, pl.DataType]] = {
    _OTHERS: pl.String(),
    _LAST: pl.Int64(),
}


@dataclass(frozen=True, kw_only=True)
class DuplicateIndex:
    """The rows whose user key another row shares; built once per job.

    Only duplicated rows are kept: for each, a description of the other rows of
    its group ("rows 7, 9") and the group's last row number. The table is on
    disk when it is large (see migrate.spill.RowTable).
    """

    table: RowTable = field(default_factory=lambda: RowTable.empty(_DUPLICATE_SCHEMA))
    groups: int = 0

    def __len__(self) -> int:
        """Number of rows that share their user with another row."""
        return len(self.table)

    @property
    def rows(self) -> pl.DataFrame:
        """Every duplicated row (ROW, others, last), in row order."""
        return self.table.frame()

    def lookup(self, rows: pl.Series) -> pl.DataFrame:
        """For the given row numbers, in order: the others (String) and last (Int64)."""
        return self.table.lookup(rows)


#: Columns of DuplicateIndex.lookup(): the other rows of the group, and its last row.
DUPLICATE_OTHERS = _OTHERS
DUPLICATE_LAST = _LAST


def normalised_key(user_as: str, case_sensitive: bool | None) -> pl.Expr:
    """The user key as Cognito compares it (``comparable_key``)."""
    return comparable_key(pl.col(USER), user_as, case_sensitive)


def comparable_key(
    value: pl.Expr, user_as: str, case_sensitive: bool | None
) -> pl.Expr:
    """A user key as the pool compares a Username: stripped, and case-folded
    only where the pool folds it, so that two rows are one user here exactly
    when they are one user to Cognito. Usernames, emails (and the
    preferred_username a username key may be) fold only when
    UsernameConfiguration.CaseSensitive is false; a pool described without it
    is case-sensitive (CreateUserPool's default). Subs are UUIDs, in any case.
    """
    value = value.str.strip_chars()
    if user_as == "sub" or (
        case_sensitive is False and user_as in ("username", "email")
    ):
        return value.str.to_lowercase()
    return value


def find_duplicates(
    keys: pl.LazyFrame | Iterable[pl.DataFrame],
    *,
    user_as: str,
    case_sensitive: bool | None,
    collect: Callable[[pl.LazyFrame], pl.DataFrame] | None = None,
) -> DuplicateIndex:
    """Find rows that name the same user, over the whole file (ROW and USER).

    ``keys``: a query, or the file's batches. ``collect`` says what went wrong
    reading a query (Source.collect turns read errors into SourceError). See
    DuplicateKeys.
    """
    found = DuplicateKeys(user_as=user_as, case_sensitive=case_sensitive)
    for frame in chunks(keys, collect) if isinstance(keys, pl.LazyFrame) else keys:
        found.add(frame)
    return found.finish()


class DuplicateKeys:
    """Rows that name the same user, over the whole file, a chunk at a time.

    Keys are compared as Cognito compares them (``normalised_key``), exactly:
    rows are split into hash partitions on disk when the file is large (see
    migrate.spill), and within a partition grouped by the keys themselves, so
    memory does not grow with the file and no two keys are ever confused.
    Blank keys are not duplicates; they are ``missing_user``.
    """

    def __init__(self, *, user_as: str, case_sensitive: bool | None) -> None:
        self._key = normalised_key(user_as, case_sensitive).alias(_KEY)
        self._split = Partitioned([_KEY])

    def add(self, keys: pl.DataFrame) -> None:
        """Add rows (ROW and USER, the key as given)."""
        self._split.add(
            keys.select(pl.col(ROW).cast(pl.Int64), self._key).filter(
                pl.col(_KEY).is_not_null() & (pl.col(_KEY) != "")
            )
        )

    def finish(self) -> DuplicateIndex:
        """The rows whose user another row names too."""
        try:
            return _duplicate_rows(self._split)
        finally:
            self._split.remove()


class SharedValues:
    """Rows that would give two users one value of an attribute (an alias).

    ``add`` frames of ROW, the value as Cognito compares it (``DUPLICATE_KEY``,
    never blank) and the user it goes to, normalised (``DUPLICATE_OWNER``);
    then ``finish``. One user given one value twice is a duplicate user (or a
    superseded row), not two users sharing it: of each (value, user) pair only
    the last row counts. Two steps, each over hash partitions (see
    find_duplicates): the pairs, split by value and user, so that a value
    shared by a million users still spreads; then the pairs' rows, by value.
    """

    def __init__(self) -> None:
        self._pairs = Partitioned([_KEY, _OWNER])

    def add(self, values: pl.DataFrame) -> None:
        """Add rows (ROW, DUPLICATE_KEY, DUPLICATE_OWNER)."""
        self._pairs.add(values.select(ROW, _KEY, _OWNER))

    def finish(self) -> DuplicateIndex:
        """The rows whose value another user is given too."""
        try:
            with partitioned([_KEY]) as split:
                for partition in self._pairs.partitions():
                    for kept in _last_of_pairs(partition):
                        split.add(kept)
                self._pairs.remove()
                return _duplicate_rows(split)
        finally:
            self._pairs.remove()


def _last_of_pairs(pairs: Partition) -> Iterator[pl.DataFrame]:
    """(ROW, _KEY) of the last row of each (value, user) pair of a partition.

    A pair whose hash no other row has is on one row only, which is its last;
    the others (few, unless values repeat) are grouped by their values.
    """
    by = [_KEY, _OWNER]
    repeated = _repeated_hashes(pairs, by)
    for piece in pairs.pieces():
        yield piece.filter(~_hash_in(by, repeated)).select(ROW, _KEY)
    if repeated.is_empty():
        return
    last = reduce_pieces(
        _candidates(pairs, by, repeated),
        by=by,
        partial=[pl.col(ROW).max()],
        merge=[pl.col(ROW).max()],
    )
    if last is not None:
        yield last.select(ROW, _KEY)


def find_shared_values(values: Iterable[pl.DataFrame]) -> DuplicateIndex:
    """SharedValues over ``values`` (frames of ROW, DUPLICATE_KEY, DUPLICATE_OWNER)."""
    shared = SharedValues()
    for frame in values:
        shared.add(frame)
    return shared.finish()


def comparable(value: pl.Expr, kind: str, case_sensitive: bool | None) -> pl.Expr:
    """An alias value as compared for sharing: stripped, case-folded (emails,
    one mailbox in any case; subs, and usernames unless the pool's are
    case-sensitive). User keys: ``comparable_key``."""
    value = value.str.strip_chars()
    if kind in ("email", "sub") or (kind == "username" and not case_sensitive):
        return value.str.to_lowercase()
    return value


#: Columns of find_shared_values' input: the compared value, and its user.
DUPLICATE_KEY = _KEY
DUPLICATE_OWNER = _OWNER


def _repeated_hashes(partition: Partition, by: list[str]) -> pl.Series:
    """Hashes of ``by`` that more than one row of a partition has.

    Counting 64-bit hashes is cheap and needs no strings; a repeated hash is
    only a candidate, confirmed (or not) on the values by the caller. A
    partition of the planned size is sorted whole (8 bytes a row, 20 ms a
    million); a larger one (a key on most rows of a huge file) is counted
    piece by piece, in memory that follows its distinct keys.
    """
    hashes = (
        piece.select(spill.key_hash(by).alias(_HASHED)) for piece in partition.pieces()
    )
    if partition.rows <= 2 * spill.PARTITION_ROWS:
        frames = list(hashes)
        if not frames:
            return pl.Series(_HASHED, [], dtype=pl.UInt64)
        ordered = pl.concat(frames).get_column(_HASHED).sort()
        return ordered.filter(ordered == ordered.shift(1)).unique()
    counts = reduce_pieces(
        hashes,
        by=[_HASHED],
        partial=[pl.len().cast(pl.Int64).alias(_COUNT)],
        merge=[pl.col(_COUNT).sum()],
    )
    if counts is None:
        return pl.Series(_HASHED, [], dtype=pl.UInt64)
    return counts.filter(pl.col(_COUNT) > 1).get_column(_HASHED)


def _hash_in(by: list[str], hashes: pl.Series) -> pl.Expr:
    # Through the module: tests make every key collide (see migrate.spill).
    return spill.key_hash(by).is_in(hashes.implode())


def _candidates(
    partition: Partition, by: list[str], repeated: pl.Series
) -> Iterator[pl.DataFrame]:
    """The rows of a partition whose key's hash is among ``repeated``."""
    for piece in partition.pieces():
        yield piece.filter(_hash_in(by, repeated))


def _duplicate_rows(split: Partitioned) -> DuplicateIndex:
    """The duplicated rows of partitioned (ROW, _KEY) rows, with their groups.

    Per partition: rows whose key's hash is repeated are candidates; they are
    grouped by the keys themselves (count, first rows, last row), piece by
    piece, and the rows of keys counted more than once are picked out.
    """
    table = RowTableBuilder(_DUPLICATE_SCHEMA)
    groups = 0
    for partition in split.partitions():
        repeated = _repeated_hashes(partition, [_KEY])
        if repeated.is_empty():
            continue
        counted = reduce_pieces(
            _candidates(partition, [_KEY], repeated),
            by=[_KEY],
            partial=[
                pl.len().cast(pl.Int64).alias(_COUNT),
                pl.col(ROW).sort().head(SHOWN_DUPLICATES + 1).alias(_HEAD),
                pl.col(ROW).max().alias(_LAST),
            ],
            merge=[
                pl.col(_COUNT).sum(),
                pl.col(_HEAD).explode().sort().head(SHOWN_DUPLICATES + 1),
                pl.col(_LAST).max(),
            ],
        )
        if counted is None:
            continue
        found = _described(counted.filter(pl.col(_COUNT) > 1))
        if found.is_empty():
            continue
        groups += found.height
        for piece in _candidates(partition, [_KEY], repeated):
            table.add(
                piece.join(found, on=_KEY, how="inner").select(
                    pl.col(ROW), _others().alias(_OTHERS), pl.col(_LAST)
                )
            )
    return DuplicateIndex(table=table.finish(), groups=groups)


#: Per group: its first rows, and the list of them as a message shows it
#: when the row is the i-th of them (it is left out) or none of them.
_FIRST = [f"__dup_first{i}" for i in range(SHOWN_DUPLICATES + 1)]
_SHOWN = [f"__dup_shown{i}" for i in range(SHOWN_DUPLICATES + 1)]
_SHOWN_NONE = "__dup_shown"


def _described(groups: pl.DataFrame) -> pl.DataFrame:
    """Groups with what their rows' messages show, worked out once per group.

    A row's message lists the group's first rows but itself; doing it with
    list functions on every row costs seconds on a million duplicated rows.
    """
    head = pl.col(_HEAD).list.eval(pl.element().cast(pl.String))
    listed = [
        head.list.gather(
            [j for j in range(SHOWN_DUPLICATES + 1) if j != i], null_on_oob=True
        )
        .list.drop_nulls()
        .list.join(", ")
        .alias(_SHOWN[i])
        for i in range(SHOWN_DUPLICATES + 1)
    ]
    return groups.select(
        pl.col(_KEY),
        pl.col(_COUNT),
        pl.col(_LAST),
        *(
            pl.col(_HEAD).list.get(i, null_on_oob=True).alias(_FIRST[i])
            for i in range(SHOWN_DUPLICATES + 1)
        ),
        *listed,
        head.list.head(SHOWN_DUPLICATES).list.join(", ").alias(_SHOWN_NONE),
    )


def _others() -> pl.Expr:
    """ "row 7" / "rows 7, 9 and 3 more": the other rows of a row's group."""
    listed: pl.Expr = pl.col(_SHOWN_NONE)
    for first, shown in reversed(list(zip(_FIRST, _SHOWN, strict=True))):
        listed = (
            pl.when(pl.col(ROW) == pl.col(first)).then(pl.col(shown)).otherwise(listed)
        )
    # The group's first rows are sorted: whether or not this row is one of
    # them, min(5, n - 1) other rows are shown.
    more = pl.col(_COUNT) - 1 - pl.min_horizontal(pl.col(_COUNT) - 1, SHOWN_DUPLICATES)
    return (
        pl.when(pl.col(_COUNT) == 2)
        .then(pl.concat_str(pl.lit("row "), listed))
        .when(more > 0)
        .then(
            pl.concat_str(
                pl.lit("rows "), listed, pl.lit(" and "), more, pl.lit(" more")
            )
        )
        .otherwise(pl.concat_str(pl.lit("rows "), listed))
    )


# --- per-row checks ---------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    code: str
    #: True where the row has this problem (null counts as no problem).
    failed: pl.Expr
    #: The message; evaluated only on failing rows.
    message: pl.Expr
    #: A cheaper test, true wherever ``failed`` is (and maybe more): run on every
    #: row so that the exact test runs only on the few rows it flags.
    suspect: pl.Expr | None = None

    @property
    def screen(self) -> pl.Expr:
        """The test to run on every row."""
        return self.failed if self.suspect is None else self.suspect


def _preview(value: pl.Expr) -> pl.Expr:
    """The value quoted for a message, cut to PREVIEW_CHARS characters.

    Control characters show as U+FFFD: a message must not carry a NUL or an
    escape sequence into the report, the summary or a terminal.
    """
    cut = (
        pl.when(value.str.len_chars() > PREVIEW_CHARS)
        .then(pl.concat_str(value.str.slice(0, PREVIEW_CHARS), pl.lit("…")))
        .otherwise(value)
    )
    shown = cut.str.replace_all(CONTROL_CHARACTERS, "\ufffd")
    return pl.concat_str(pl.lit("'"), shown, pl.lit("'"))


#: After the cell problem ("NaN (not a number)") in a not_finite message.
_NOT_FINITE: Final = (
    " in a floating-point column is no value: store a null for a missing value "
    "(or fix the number)"
)


def _control_code(value: pl.Expr) -> pl.Expr:
    """Last two hex digits of the first control character's code point.

    Every control character is U+0000 to U+009F: one UTF-8 byte (its code) or,
    for U+0080 to U+009F, two (C2 and its code).
    """
    found = value.str.extract(f"({CONTROL_CHARACTERS})", 1)
    return found.str.encode("hex").str.slice(-2).str.to_uppercase()


def _control_position(value: pl.Expr) -> pl.Expr:
    """1-based character position of the first control character."""
    before = value.str.extract(f"^(.*?){CONTROL_CHARACTERS}", 1)
    return before.str.len_chars() + 1


def _message(prefix: str, *parts: str | pl.Expr) -> pl.Expr:
    """A message: row number, prefix, parts (strings are literals, not patterns)."""
    return pl.concat_str(
        pl.lit("row "),
        pl.col(ROW),
        pl.lit(prefix),
        *(pl.lit(p) if isinstance(p, str) else p for p in parts),
    )


class Validator:
    """Checks mapped batches against the pool schema, row by row, vectorised."""

    def __init__(
        self,
        mapping: Mapping,
        schema: PoolSchema,
        *,
        duplicates: DuplicateIndex,
        source_name: str,
    ) -> None:
        self.mapping = mapping
        self.schema = schema
        self.duplicates = duplicates
        self.source_name = source_name
        #: Problems found so far by code (a row with two problems counts twice).
        self.counts: Counter[str] = Counter()
        self._checks = self._compile()
        self._problem_columns = [problem_col(a) for a in mapping.attributes]
        self._problem_columns += [cell_col(USER)]
        self._problem_columns += [cell_col(a) for a in mapping.attributes]

    def validate(self, mapped: pl.DataFrame) -> pl.DataFrame:
        """The mapped batch plus ERROR_CODE, ERROR_MESSAGE and SUPERSEDED_BY."""
        dups = self.duplicates.lookup(mapped[ROW])
        # A rule that cannot fail (a constant) may come without a problem column,
        # and a frame not made by Mapping.apply without cell problem columns.
        absent = [c for c in self._problem_columns if c not in mapped.columns]
        frame = mapped.with_columns(
            dups[_OTHERS],
            dups[_LAST],
            *(pl.lit(None, dtype=pl.String).alias(c) for c in absent),
        )
        height = frame.height
        codes = pl.repeat(None, height, dtype=pl.String, eager=True).alias(ERROR_CODE)
        messages = codes.alias(ERROR_MESSAGE)
        # Two passes: cheap screens over every row, then exact tests and messages
        # over the flagged rows only. Formatting strings for every row of a clean
        # million-row file would cost more than all the checks together.
        flagged = (
            frame.select(
                pl.any_horizontal(c.screen.fill_null(False) for c in self._checks)
            )
            .to_series()
            .arg_true()
        )
        if len(flagged):
            subset = frame[flagged]
            failed = subset.select(
                c.failed.fill_null(False).alias(f"__f{i}")
                for i, c in enumerate(self._checks)
            )
            self._count(failed)
            found = pl.concat([subset, failed], how="horizontal").select(
                self._code_expr(), self._message_expr()
            )
            codes = codes.scatter(flagged, found[ERROR_CODE])
            messages = messages.scatter(flagged, found[ERROR_MESSAGE])
        if self.mapping.duplicates == "last":
            superseded = dups.select(
                pl.when(pl.col(_LAST) != pl.col(ROW)).then(pl.col(_LAST))
            ).to_series()
        else:
            superseded = pl.repeat(None, height, dtype=pl.Int64, eager=True)
        return mapped.with_columns(
            codes, messages, superseded.cast(pl.Int64).alias(SUPERSEDED_BY)
        )

    def _count(self, failed: pl.DataFrame) -> None:
        sums = failed.sum().row(0)
        for check, n in zip(self._checks, sums, strict=True):
            if n:
                self.counts[check.code] += n

    def _code_expr(self) -> pl.Expr:
        return pl.coalesce(
            pl.when(pl.col(f"__f{i}")).then(pl.lit(c.code))
            for i, c in enumerate(self._checks)
        ).alias(ERROR_CODE)

    def _message_expr(self) -> pl.Expr:
        flags = [pl.col(f"__f{i}") for i in range(len(self._checks))]
        joined = pl.concat_str(
            [
                pl.when(f).then(c.message)
                for f, c in zip(flags, self._checks, strict=True)
            ],
            separator="; ",
            ignore_nulls=True,
        )
        # A screened row that passes every exact test has no message at all.
        return pl.when(pl.any_horizontal(flags)).then(joined).alias(ERROR_MESSAGE)

    # --- compiling the checks -----------------------------------------------

    def _compile(self) -> list[_Check]:
        checks = self._key_checks() + [
            check
            for name, rule in self.mapping.attributes.items()
            for check in self._attribute_checks(name, rule)
        ]
        order = {code: i for i, code in enumerate(CODES)}
        # Stable: within one code, key checks first, then mapping order.
        return sorted(checks, key=lambda c: order[c.code])

    def _key_checks(self) -> list[_Check]:
        mapping = self.mapping
        user_as = mapping.user_as
        key = pl.col(USER)
        where = f", column '{mapping.user_column}' -> user: "
        cell = pl.col(cell_col(USER))
        checks = [
            _Check(
                "not_finite",
                cell.is_not_null(),
                _message(where, cell, _NOT_FINITE),
            ),
            _Check(
                "missing_user",
                # USER is stripped by the mapping, so blank means "" or null.
                (key.is_null() | (key == "")) & cell.is_null(),
                _message(where, f"blank; every row needs a {user_as}"),
            ),
        ]
        too_long = key.str.len_chars() > MAX_USER_KEY
        suspect_form: pl.Expr | None = None
        if user_as == "email":
            bad_form = ~key.str.contains(EMAIL_PATTERN)
            form_message = _message(where, _preview(key), " is not an email address")
        elif user_as == "phone_number":
            bad_form = ~key.str.contains(E164_PATTERN)
            form_message = _message(
                where,
                _preview(key),
                " is not an E.164 phone number (+ and 7 to 15 digits, "
                "e.g. +14325551212)",
            )
        elif user_as == "sub":
            bad_form = ~key.str.contains(UUID_PATTERN)
            form_message = _message(
                where,
                _preview(key),
                " is not a sub (a UUID such as 7d3c5d2e-8f0a-4b1c-9e6d-2a4f6b8c0e1f)",
            )
        else:
            bad_form = key.str.contains(_NOT_IN_USERNAME)
            # Only non-ASCII text or an ASCII space/control can fail the pattern.
            suspect_form = key.str.contains_any(_ASCII_SPACE_CONTROL) | (
                key.str.len_bytes() != key.str.len_chars()
            )
            form_message = _message(
                where,
                _preview(key),
                " contains spaces or control characters, which a username cannot",
            )
        present = key.is_not_null() & (key != "")
        checks.append(
            _Check(
                "bad_user_key",
                present & (too_long | bad_form),
                pl.when(too_long)
                .then(
                    _message(
                        where,
                        _preview(key),
                        " is too long: ",
                        key.str.len_chars(),
                        f" characters, at most {MAX_USER_KEY}",
                    )
                )
                .otherwise(form_message),
                suspect=None
                if suspect_form is None
                else present & ((key.str.len_bytes() > MAX_USER_KEY) | suspect_form),
            )
        )
        if mapping.api == "token":
            token = pl.col(TOKEN)
            where = f", column '{mapping.token_column}' -> token: "
            blank = token.is_null() | (token.str.strip_chars() == "")
            # The token itself never goes into a message: reports are shared.
            checks.append(
                _Check(
                    "missing_token",
                    blank | ~token.str.contains(TOKEN_PATTERN),
                    pl.when(blank)
                    .then(
                        _message(
                            where,
                            'blank; api = "token" needs each user\'s access token',
                        )
                    )
                    .otherwise(
                        _message(
                            where,
                            "not an access token (only letters, digits and - _ = . "
                            "are allowed); the value is not shown",
                        )
                    ),
                )
            )
        if mapping.duplicates == "error":
            checks.append(
                _Check(
                    "duplicate_user",
                    pl.col(_OTHERS).is_not_null(),
                    _message(
                        f", column '{mapping.user_column}' -> user: same user as ",
                        pl.col(_OTHERS),
                        ' (duplicates = "error")',
                    ),
                )
            )
        return checks

    def _attribute_checks(self, name: str, rule: AttributeRule) -> list[_Check]:
        if rule.column is not None:
            where = f", column '{rule.column}' -> {name}: "
        elif rule.template is not None:
            where = f", template -> {name}: "
        else:
            where = f", value -> {name}: "
        value = pl.col(value_col(name))
        problem = pl.col(problem_col(name))
        cell = pl.col(cell_col(name))
        attribute = self.schema.get(name)
        blank = self.mapping.blank
        checks = [
            _Check(
                "not_finite", cell.is_not_null(), _message(where, cell, _NOT_FINITE)
            ),
            _Check(
                "transform",
                problem.is_not_null() & cell.is_null(),
                _message(where, problem),
            ),
        ]
        # A cell with no text form reads as blank; it is not_finite only.
        is_blank = value.is_null() & problem.is_null() & cell.is_null()
        if blank == "error":
            checks.append(
                _Check(
                    "blank_value",
                    is_blank,
                    _message(where, 'blank, and blank = "error"'),
                )
            )
        if blank == "delete" and attribute is not None and attribute.required:
            checks.append(
                _Check(
                    "required_blank",
                    is_blank,
                    _message(
                        where,
                        f"blank, but {name} is required in this pool and cannot be "
                        "deleted",
                    ),
                )
            )
        # Value checks only where there is a value the transform accepted.
        present = value.is_not_null() & problem.is_null() & cell.is_null()
        return checks + [
            _Check(
                c.code,
                present & c.failed,
                c.message,
                None if c.suspect is None else present & c.suspect,
            )
            for c in _value_checks(name, attribute, value, where)
        ]

    def __repr__(self) -> str:
        return f"Validator({self.source_name!r}, {len(self._checks)} checks)"


def _value_checks(
    name: str, attribute: AttributeSchema | None, value: pl.Expr, where: str
) -> list[_Check]:
    """Checks of a present value: length, type, format."""
    checks: list[_Check] = []
    quoted = _preview(value)
    length = value.str.len_chars()
    data_type = attribute.data_type if attribute is not None else "String"
    limit = MAX_ATTRIBUTE_VALUE
    if attribute is not None and attribute.max_length is not None:
        limit = min(limit, attribute.max_length)
    checks.append(
        _Check(
            "too_long",
            length > limit,
            _message(
                where,
                quoted,
                " is too long: ",
                length,
                f" characters, at most {limit}",
            ),
            # A string never has more characters than UTF-8 bytes.
            suspect=value.str.len_bytes() > limit,
        )
    )
    checks.append(
        _Check(
            "control_character",
            value.str.contains(CONTROL_CHARACTERS),
            _message(
                where,
                "holds the control character U+00",
                _control_code(value),
                " at position ",
                _control_position(value),
                " (",
                quoted,
                "); Cognito may refuse or store it, and it breaks CSV files and "
                "logs: fix the export",
            ),
        )
    )
    min_length = attribute.min_length if attribute is not None else None
    if data_type == "String" and min_length:
        checks.append(
            _Check(
                "too_short",
                length < min_length,
                _message(
                    where,
                    quoted,
                    " is too short: ",
                    length,
                    f" characters, at least {min_length}",
                ),
            )
        )
    if data_type == "Number":
        checks += _number_checks(attribute, value, where)
    if data_type == "Boolean" and name not in _VERIFIED_FLAGS:
        checks.append(
            _Check(
                "not_boolean",
                ~value.is_in(["true", "false"]),
                _message(where, quoted, " is not true or false"),
            )
        )
    if name == "birthdate":
        checks.append(
            _Check(
                "bad_date",
                ~value.str.contains(DATE_PATTERN),
                _message(where, quoted, " is not a date in YYYY-MM-DD form"),
            )
        )
    elif data_type == "DateTime":
        checks.append(
            _Check(
                "bad_date",
                ~value.str.contains(DATETIME_PATTERN),
                _message(
                    where,
                    quoted,
                    " is not an ISO 8601 date or date-time "
                    "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)",
                ),
            )
        )
    if name == "email":
        checks.append(
            _Check(
                "bad_email",
                ~value.str.contains(EMAIL_PATTERN),
                _message(where, quoted, " is not a valid email address"),
            )
        )
    if name == "phone_number":
        checks.append(
            _Check(
                "bad_phone",
                ~value.str.contains(E164_PATTERN),
                _message(
                    where,
                    quoted,
                    " is not an E.164 phone number (+ and 7 to 15 digits, "
                    'e.g. +14325551212; transform = ["e164"] converts local numbers)',
                ),
            )
        )
    checks.append(
        _Check(
            "formula",
            value.str.starts_with("="),
            _message(
                where,
                "looks like a spreadsheet formula (",
                quoted,
                "); Cognito would store it literally; fix the export",
            ),
        )
    )
    if name in _VERIFIED_FLAGS:
        checks.append(
            _Check(
                "verified_flag",
                ~value.is_in(["true", "false"]),
                _message(where, quoted, " must be true or false"),
            )
        )
    return checks


def _number_checks(
    attribute: AttributeSchema | None, value: pl.Expr, where: str
) -> list[_Check]:
    is_integer = value.str.contains(INTEGER_PATTERN)
    # The integer parser accepts a leading "+" the pattern does not; and it
    # overflows past 19 digits, which the exact test then judges.
    parsed = value.str.to_integer(strict=False)
    quoted = _preview(value)
    # "5.0" typed in a text file: say which whole number was probably meant.
    whole = value.str.extract(r"^\s*([+-]?[0-9]+)\.0+\s*$", 1)
    checks = [
        _Check(
            "not_a_number",
            ~is_integer,
            _message(
                where,
                quoted,
                " is not a whole number (Cognito Number attributes hold integers)",
                pl.when(whole.is_not_null())
                .then(pl.concat_str(pl.lit("; write '"), whole, pl.lit("'")))
                .otherwise(pl.lit("")),
            ),
            suspect=parsed.is_null() | value.str.starts_with("+"),
        )
    ]
    if attribute is None:
        return checks
    low, high = attribute.min_value, attribute.max_value
    if low is None and high is None:
        return checks

    def outside(number: pl.Expr) -> pl.Expr:
        # Float is exact for every integer a bound check meets in practice.
        below = number < float(low) if low is not None else pl.lit(False)
        above = number > float(high) if high is not None else pl.lit(False)
        return below | above

    number = value.cast(pl.Float64, strict=False)
    too_low = number < float(low) if low is not None else pl.lit(False)
    checks.append(
        _Check(
            "out_of_range",
            is_integer & outside(number),
            pl.when(too_low)
            .then(_message(where, quoted, f" is less than the minimum {low}"))
            .otherwise(_message(where, quoted, f" is more than the maximum {high}")),
            suspect=outside(parsed.cast(pl.Float64)).fill_null(True),
        )
    )
    return checks
