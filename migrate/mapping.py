"""The TOML mapping file: loaded once, every mistake rejected up front, then
compiled to polars column work that turns input batches into attribute values.

The file format is documented in README.md ("Mapping files") and by the
commented examples in ``mappings/``.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

import polars as pl

from migrate.errors import MappingError
from migrate.records import (
    MAX_ATTRIBUTE_NAME,
    ROW,
    STANDARD_ATTRIBUTES,
    TOKEN,
    USER,
    problem_col,
    value_col,
)
from migrate.source import cell_problem_col
from migrate.transforms import PROBLEM, TRANSFORMS, VALUE, TransformOptions

UserKey = Literal["username", "sub", "email", "phone_number"]
Api = Literal["admin", "token"]
BlankPolicy = Literal["skip", "delete", "error"]
DuplicatesPolicy = Literal["error", "last"]
#: When a verified flag is sent: only in a request that also sets its attribute
#: (the default), or whenever it has a value (a deliberate choice).
FlagWhen = Literal["with_attribute", "always"]

#: The verified flags and the attribute each one vouches for.
VERIFIED_FLAGS: abc.Mapping[str, str] = MappingProxyType(
    {"email_verified": "email", "phone_number_verified": "phone_number"}
)

#: Characters no attribute value may hold: C0 controls but tab, line feed and
#: carriage return (an address has several lines), DEL, and C1 controls. They
#: come from broken exports, Cognito may refuse or store them, and they corrupt
#: the CSV files, logs and ID tokens that carry the value on.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)

#: Prefixes of custom attribute names, as the user-pool APIs spell them.
CUSTOM_PREFIXES: tuple[str, ...] = ("dev:custom:", "custom:")
#: Longest custom attribute name after its prefix (CustomAttributeNameType).
MAX_CUSTOM_NAME = 20

# The keys each top-level table allows; () = names of the user's choosing.
_TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("column", "as"),
    "options": ("api", "token_column", "blank", "duplicates"),
    "attributes": (),
    "delete": ("attributes",),
    "client_metadata": (),
}
_ATTRIBUTE_KEYS = (
    "column",
    "value",
    "template",
    "transform",
    "map",
    "region",
    "format",
    "when",
)
_SOURCES = ("column", "value", "template")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN_USE = "[options] token_column"
_MAX_LISTED_COLUMNS = 30


@dataclass(frozen=True, kw_only=True)
class AttributeRule:
    """How one Cognito attribute gets its value: a column, a constant or a template."""

    name: str
    column: str | None = None
    value: str | None = None
    template: str | None = None
    transform: tuple[str, ...] = ()
    #: Applied after the transforms; values not in the map pass through.
    map: abc.Mapping[str, str] | None = None
    #: Default region of the e164 transform (ISO 3166 alpha-2).
    region: str | None = None
    #: Input layout of the date and epoch transforms (strftime codes).
    format: str | None = None
    #: Verified flags only: when the flag is sent (see FlagWhen).
    when: FlagWhen = "with_attribute"

    def source_columns(self) -> tuple[str, ...]:
        """The input columns this rule reads."""
        if self.column is not None:
            return (self.column,)
        if self.template is not None:
            return template_fields(self.template)
        return ()

    def options(self) -> TransformOptions:
        """The settings its transforms read."""
        return TransformOptions(region=self.region, format=self.format)


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """A loaded mapping file: which users, which attributes, which options."""

    path: str
    user_column: str
    user_as: UserKey = "username"
    api: Api = "admin"
    token_column: str | None = None
    blank: BlankPolicy = "skip"
    duplicates: DuplicatesPolicy = "error"
    attributes: abc.Mapping[str, AttributeRule]
    delete: tuple[str, ...] = ()
    client_metadata: abc.Mapping[str, str] = field(default_factory=dict)

    def source_columns(self) -> tuple[str, ...]:
        """Every input column the mapping reads, each once, in file order."""
        return tuple(dict.fromkeys(column for column, _ in self._column_uses()))

    def check_columns(self, header: abc.Sequence[str], *, source: str) -> None:
        """Raise MappingError naming every column the mapping needs but ``header``
        lacks, the mapping key that needs it, and a close match if there is one."""
        needed: dict[str, list[str]] = {}
        for column, key in self._column_uses():
            if column not in header:
                needed.setdefault(column, []).append(key)
        if not needed:
            return
        listed = ", ".join(header[:_MAX_LISTED_COLUMNS])
        if len(header) > _MAX_LISTED_COLUMNS:
            listed += f", ... ({len(header) - _MAX_LISTED_COLUMNS} more)"
        columns = f"(columns: {listed})" if header else "(it has no columns)"
        if len(needed) == 1:
            (column, keys), *_ = needed.items()
            message = f"{', '.join(keys)} {column!r} is not in {source} {columns}"
            guess = _close_column(column, header)
            if guess is not None:
                message += f"; did you mean {guess!r}?"
            raise MappingError(message, path=self.path)
        items = []
        for column, keys in needed.items():
            item = f"{', '.join(keys)} {column!r}"
            guess = _close_column(column, header)
            if guess is not None:
                item += f" (did you mean {guess!r}?)"
            items.append(item)
        raise MappingError(
            f"{len(needed)} columns are not in {source} {columns}: " + "; ".join(items),
            path=self.path,
        )

    def apply(
        self, batch: pl.DataFrame, *, known: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        """The batch as ROW, USER, [TOKEN], then each attribute's value and problem.

        Also ``cell_col(USER)`` and ``cell_col(name)`` per attribute: why a cell
        the value comes from has no text form (a NaN in a float column), or null.

        ``known``: the ``mapped_columns`` of some attributes for the batch's
        rows, in order, as this mapping made them (the whole-file pass maps
        the alias attributes of every row before the run): those attributes
        are not mapped again.
        """
        names = (
            [n for n in self.attributes if value_col(n) in known.columns]
            if known is not None
            else []
        )
        if not names:
            return self._apply(batch, self._plan)
        assert known is not None
        frame = self._apply(batch, self._plan_without(tuple(names)))
        given = [known.get_column(c) for n in names for c in mapped_columns(n)]
        return frame.hstack(given).select(self._output_names)

    def _apply(self, batch: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
        if any(column not in batch.columns for column in self.source_columns()):
            self.check_columns(batch.columns, source="the input")
        # Only float columns of Parquet and JSON lines carry cell problems.
        absent = [
            cell_problem_col(column)
            for column in self.source_columns()
            if cell_problem_col(column) not in batch.columns
        ]
        if absent:
            batch = batch.with_columns(
                pl.lit(None, dtype=pl.String).alias(name) for name in absent
            )
        # One chunk per column: polars zips columns whose chunks differ (as a
        # batch function's output and the streaming engine's do) very slowly.
        frame = batch.lazy().select(plan.sources).collect().rechunk()
        # Each transform step is its own with_columns so that a struct (and the
        # e164 batch function behind it) is computed once, not once per field.
        for structs, unpack in plan.steps:
            frame = (
                frame.lazy().with_columns(structs).with_columns(unpack).collect()
            ).rechunk()
        return frame.lazy().select(plan.outputs).collect()

    def _column_uses(self) -> list[tuple[str, str]]:
        uses = [(self.user_column, "[user] column")]
        if self.token_column is not None:
            uses.append((self.token_column, _TOKEN_USE))
        for name, rule in self.attributes.items():
            label = _table("attributes", name)
            if rule.column is not None:
                uses.append((rule.column, f"{label} column"))
            for column in rule.source_columns() if rule.template else ():
                uses.append((column, f"{label} template field"))
        return uses

    @cached_property
    def _plan(self) -> _Plan:
        return _compile(self)

    @cached_property
    def _output_names(self) -> list[str]:
        return [expr.meta.output_name() for expr in self._plan.outputs]

    @cached_property
    def _plans(self) -> dict[tuple[str, ...], _Plan]:
        return {}

    def _plan_without(self, names: tuple[str, ...]) -> _Plan:
        """The plan of the other attributes (their outputs, ROW and USER...)."""
        plan = self._plans.get(names)
        if plan is None:
            rest = {n: r for n, r in self.attributes.items() if n not in names}
            plan = self._plans[names] = _compile(replace(self, attributes=rest))
        return plan


# --- compiling ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """The polars expressions of a mapping, built once per Mapping."""

    sources: list[pl.Expr]
    steps: list[tuple[list[pl.Expr], list[pl.Expr]]]
    outputs: list[pl.Expr]


def cell_col(name: str) -> str:
    """Mapped-frame column: the cell problem behind ``name`` (an attribute or USER)."""
    return f"?{name}"


def mapped_columns(name: str) -> tuple[str, str, str]:
    """The mapped-frame columns of attribute ``name``: value, problem, cell."""
    return value_col(name), problem_col(name), cell_col(name)


def _original_col(attribute: str) -> str:
    return f"={attribute}"


def _struct_col(attribute: str) -> str:
    return f"~{attribute}"


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def _is_blank(value: pl.Expr) -> pl.Expr:
    return value.is_null() | (value.str.strip_chars().str.len_bytes() == 0)


def _non_blank(value: pl.Expr) -> pl.Expr:
    return pl.when(~_is_blank(value)).then(value)


def _stripped_key(column: str) -> pl.Expr:
    key = _text(column).str.strip_chars()
    return pl.when(key.str.len_bytes() > 0).then(key)


def _source(rule: AttributeRule) -> pl.Expr:
    if rule.column is not None:
        return _non_blank(_text(rule.column))
    if rule.value is not None:
        return pl.lit(rule.value, dtype=pl.String)
    assert rule.template is not None
    pieces: list[pl.Expr] = []
    fields: list[pl.Expr] = []
    for literal, name, _, _ in string.Formatter().parse(rule.template):
        if literal:
            pieces.append(pl.lit(literal))
        if name is not None:
            cell = _text(name)
            fields.append(_is_blank(cell))
            pieces.append(pl.when(_is_blank(cell)).then(pl.lit("")).otherwise(cell))
    joined = pl.concat_str(pieces).str.replace_all(" {2,}", " ").str.strip_chars()
    all_blank = pl.all_horizontal(fields)
    # replace, not a test of joined's length: polars would build joined twice.
    return pl.when(~all_blank).then(joined.replace("", None))


def _cell_problem(rule: AttributeRule) -> pl.Expr:
    """The problem of the first cell the rule reads that has no text form."""
    if rule.column is not None:
        return pl.col(cell_problem_col(rule.column))
    if rule.template is not None:
        return pl.coalesce(
            pl.concat_str(pl.lit(f"column {name!r}: "), pl.col(cell_problem_col(name)))
            for name in template_fields(rule.template)
        )
    return pl.lit(None, dtype=pl.String)


def _finish_value(value: pl.Expr, rule: AttributeRule) -> pl.Expr:
    """The map, then "" becomes blank: an empty value would delete the attribute."""
    if rule.map:
        value = value.replace(list(rule.map), list(rule.map.values()))
    return pl.when(value.str.len_bytes() > 0).then(value)


#: Never-failing transforms applied one after the other to a value.
Chain = Callable[[pl.Expr], pl.Expr]


def _stages(rule: AttributeRule) -> tuple[Chain, list[tuple[str, Chain]]]:
    """A rule's transforms as the chain of never-failing ones that comes first,
    then each transform that may fail with the never-failing ones after it.

    Only a transform that may fail needs its struct (and a step of its own,
    so that it is computed once); the others are chained onto the value.
    """
    first: list[Chain] = []
    rest: list[tuple[str, list[Chain]]] = []
    for name in rule.transform:
        value = TRANSFORMS[name].value
        if value is None:
            rest.append((name, []))
        elif rest:
            rest[-1][1].append(value)
        else:
            first.append(value)
    return _chain(first), [(name, _chain(after)) for name, after in rest]


def _chain(transforms: abc.Sequence[Chain]) -> Chain:
    def chained(value: pl.Expr) -> pl.Expr:
        for transform in transforms:
            value = transform(value)
        return value

    return chained


def _compile(mapping: Mapping) -> _Plan:
    sources = [
        pl.col(ROW),
        _stripped_key(mapping.user_column).alias(USER),
        pl.col(cell_problem_col(mapping.user_column)).alias(cell_col(USER)),
    ]
    outputs = [pl.col(ROW), pl.col(USER)]
    if mapping.token_column is not None:
        sources.append(_stripped_key(mapping.token_column).alias(TOKEN))
        outputs.append(pl.col(TOKEN))
    outputs.append(pl.col(cell_col(USER)))
    stages = {name: _stages(rule) for name, rule in mapping.attributes.items()}
    for name, rule in mapping.attributes.items():
        source = _source(rule)
        first, rest = stages[name]
        sources.append(first(source).alias(value_col(name)))
        sources.append(_cell_problem(rule).alias(cell_col(name)))
        if rest:
            sources.append(source.alias(_original_col(name)))
            sources.append(pl.lit(None, dtype=pl.String).alias(problem_col(name)))
    steps: list[tuple[list[pl.Expr], list[pl.Expr]]] = []
    depth = max((len(rest) for _, rest in stages.values()), default=0)
    for step in range(depth):
        structs: list[pl.Expr] = []
        unpack: list[pl.Expr] = []
        for name, rule in mapping.attributes.items():
            rest = stages[name][1]
            if step >= len(rest):
                continue
            transform, after = rest[step]
            build = TRANSFORMS[transform].build
            struct = pl.col(_struct_col(name))
            structs.append(
                build(pl.col(value_col(name)), rule.options()).alias(_struct_col(name))
            )
            unpack += [
                after(struct.struct.field(VALUE)).alias(value_col(name)),
                pl.coalesce(
                    pl.col(problem_col(name)), struct.struct.field(PROBLEM)
                ).alias(problem_col(name)),
            ]
        steps.append((structs, unpack))
    for name, rule in mapping.attributes.items():
        value = _finish_value(pl.col(value_col(name)), rule)
        if stages[name][1]:
            problem = pl.col(problem_col(name))
            value = (
                pl.when(problem.is_null())
                .then(value)
                .otherwise(pl.col(_original_col(name)))
            )
        else:
            problem = pl.lit(None, dtype=pl.String)
        outputs += [
            value.alias(value_col(name)),
            problem.alias(problem_col(name)),
            pl.col(cell_col(name)),
        ]
    return _Plan(sources=sources, steps=steps, outputs=outputs)


# --- loading ------------------------------------------------------------------


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a TOML mapping file; MappingError says what to fix."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MappingError(
            f"cannot read the mapping: {exc.strerror}", path=where
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"not UTF-8 text (byte {exc.start}); save the mapping as UTF-8", path=where
        ) from None
    return parse_mapping(text, path=where)


def parse_mapping(text: str, *, path: str) -> Mapping:
    """Check the TOML text of a mapping; ``path`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(_toml_problem(str(exc), text), path=path) from None
    try:
        mapping = _Loader(data, path).mapping()
        _check_constants(mapping)
    except _Invalid as exc:
        raise MappingError(str(exc), path=path) from None
    return mapping


class _Invalid(Exception):
    """A mistake in the mapping; parse_mapping adds the file name."""


def _toml_problem(message: str, text: str) -> str:
    problem = f"not valid TOML: {message}"
    where = re.search(r"\(at line (\d+), column \d+\)", message)
    if where is None:
        return problem
    lines = text.splitlines()
    number = int(where.group(1))
    line = lines[number - 1].strip() if number <= len(lines) else ""
    # A name with a colon outside quotes: [attributes.custom:plan] and friends.
    for found in re.finditer(r"[A-Za-z0-9_-]+(?::[A-Za-z0-9_-]+)+", line):
        if line[: found.start()].count('"') % 2 or line[: found.start()].count("'") % 2:
            continue
        name = found.group()
        fixed = line[: found.start()] + f'"{name}"' + line[found.end() :]
        return f"{problem}; a name containing ':' must be quoted: write {fixed}"
    return problem


def _table(table: str, name: str | None = None) -> str:
    if name is None:
        return f"[{table}]"
    key = name if _BARE_KEY.fullmatch(name) else f'"{name}"'
    return f"[{table}.{key}]"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str):
        return f"string {value!r}"
    return type(value).__name__


def _as_toml_string(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _suggest(word: str, choices: abc.Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _close_column(column: str, header: abc.Sequence[str]) -> str | None:
    folded = column.strip().casefold()
    for name in header:
        if name.strip().casefold() == folded:
            return name
    by_fold = {name.casefold(): name for name in header}
    found = _suggest(folded, by_fold)
    return by_fold[found] if found is not None else None


def _one_of(choices: abc.Iterable[str]) -> str:
    return ", ".join(choices)


def template_fields(template: str) -> tuple[str, ...]:
    """The column names a template reads, each once, in order."""
    names = (name for _, name, _, _ in string.Formatter().parse(template) if name)
    return tuple(dict.fromkeys(names))


def attribute_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Cognito attribute name, or None when it can."""
    for prefix in CUSTOM_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if not rest:
                return f"{name!r} has no name after the prefix"
            if len(rest) > MAX_CUSTOM_NAME:
                return (
                    f"{name!r} is too long: a custom attribute name has at most"
                    f" {MAX_CUSTOM_NAME} characters after {prefix!r} ({len(rest)} here)"
                )
            return None
    if name in STANDARD_ATTRIBUTES:
        return None
    if len(name) > MAX_ATTRIBUTE_NAME:
        return (
            f"{name!r} is {len(name)} characters long; Cognito attribute names have"
            f" at most {MAX_ATTRIBUTE_NAME}"
        )
    if name.lower() in STANDARD_ATTRIBUTES:
        return (
            f"{name!r} is not a standard attribute (names are case-sensitive);"
            f" did you mean {name.lower()!r}?"
        )
    if not name:
        return "an attribute name is empty"
    return (
        f"{name!r} is not a standard attribute; custom attributes need the prefix:"
        f" did you mean {'custom:' + name!r}?"
    )


class _Loader:
    """Walks the parsed TOML once, raising _Invalid at the first mistake."""

    def __init__(self, data: dict[str, object], path: str) -> None:
        self.data = data
        self.path = path

    def mapping(self) -> Mapping:
        self._check_top_level()
        user = self._table("user", required=True)
        options = self._table("options")
        column = self._string(user, "column", "[user]", required=True)
        assert column is not None
        user_as = self._choice(user, "as", "[user]", get_args(UserKey), "username")
        api = self._choice(options, "api", "[options]", get_args(Api), "admin")
        token_column = self._string(options, "token_column", "[options]")
        if api == "token" and token_column is None:
            raise _Invalid(
                '[options] api = "token" needs token_column = "<input column>"'
                " naming the column that holds each user's access token"
            )
        if api == "admin" and token_column is not None:
            raise _Invalid(
                '[options] token_column is only used with api = "token";'
                ' remove it or set api = "token"'
            )
        blank = self._choice(
            options, "blank", "[options]", get_args(BlankPolicy), "skip"
        )
        duplicates = self._choice(
            options, "duplicates", "[options]", get_args(DuplicatesPolicy), "error"
        )
        attributes = self._attributes()
        delete = self._delete(attributes)
        metadata = self._client_metadata()
        if not attributes and not delete:
            raise _Invalid(
                "the mapping sets no attributes and deletes none: add an"
                ' [attributes."<name>"] table or a [delete] attributes list'
            )
        _check_flags(attributes)
        mapping = Mapping(
            path=self.path,
            user_column=column,
            user_as=user_as,  # type: ignore[arg-type]
            api=api,  # type: ignore[arg-type]
            token_column=token_column,
            blank=blank,  # type: ignore[arg-type]
            duplicates=duplicates,  # type: ignore[arg-type]
            attributes=MappingProxyType(attributes),
            delete=delete,
            client_metadata=MappingProxyType(metadata),
        )
        _check_token_column(mapping)
        return mapping

    # -- structure

    def _check_top_level(self) -> None:
        for key, value in self.data.items():
            if key not in _TABLE_KEYS:
                owner = next((t for t, ks in _TABLE_KEYS.items() if key in ks), None)
                if owner is not None and not isinstance(value, dict):
                    raise _Invalid(
                        f"{key!r} must be inside a table: put it under [{owner}]"
                    )
                guess = _suggest(key, _TABLE_KEYS)
                tables = _one_of(f"[{t}]" for t in _TABLE_KEYS)
                raise _Invalid(
                    f"unknown table [{key}]; did you mean [{guess}]?"
                    if guess
                    else f"unknown table [{key}] (valid tables: {tables})"
                )
            if not isinstance(value, dict):
                raise _Invalid(
                    f"{key!r} must be a table: write [{key}] on a line of its own,"
                    " followed by its keys"
                )

    def _table(self, name: str, *, required: bool = False) -> dict[str, object]:
        table = self.data.get(name)
        if table is None:
            if required:
                raise _Invalid(
                    f"missing [{name}] table: add [{name}] with column ="
                    ' "<input column>" naming the column that identifies each user'
                )
            return {}
        assert isinstance(table, dict)
        if _TABLE_KEYS[name]:
            self._known_keys(table, f"[{name}]", _TABLE_KEYS[name])
        return table

    @staticmethod
    def _known_keys(
        table: dict[str, object], label: str, keys: tuple[str, ...]
    ) -> None:
        for key in table:
            if key in keys:
                continue
            guess = _suggest(key, keys)
            raise _Invalid(
                f"{label} unknown key {key!r}; did you mean {guess!r}?"
                if guess
                else f"{label} unknown key {key!r} (valid keys: {_one_of(keys)})"
            )

    @staticmethod
    def _string(
        table: dict[str, object], key: str, label: str, *, required: bool = False
    ) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise _Invalid(
                    f'{label} missing {key} = "<input column>" naming the column'
                    " that identifies each user"
                )
            return None
        if not isinstance(value, str):
            raise _Invalid(
                f"{label} {key} must be a string (got {_kind(value)});"
                f" write {key} = {_as_toml_string(value)}"
            )
        if not value.strip():
            raise _Invalid(f"{label} {key} is empty")
        return value

    @staticmethod
    def _choice(
        table: dict[str, object],
        key: str,
        label: str,
        choices: tuple[str, ...],
        default: str,
    ) -> str:
        value = table.get(key, default)
        if value not in choices:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            raise _Invalid(
                f"{label} {key} = {shown} is not allowed;"
                f" use one of: {_one_of(choices)}"
            )
        assert isinstance(value, str)
        return value

    # -- attributes

    def _attributes(self) -> dict[str, AttributeRule]:
        table = self.data.get("attributes", {})
        assert isinstance(table, dict)
        rules: dict[str, AttributeRule] = {}
        for name, body in table.items():
            label = _table("attributes", name)
            if not isinstance(body, dict):
                raise _Invalid(
                    f"[attributes] {name!r} must be a table: write {label}"
                    ' followed by column = "<input column>"'
                )
            for key, value in body.items():
                if key not in _ATTRIBUTE_KEYS and isinstance(value, dict):
                    raise _Invalid(
                        f"{label[:-1]}.{key}] is a nested table; an attribute name"
                        f" with ':' must be quoted, e.g. [attributes.\"{name}:{key}\"]"
                    )
            problem = attribute_name_problem(name)
            if problem is not None:
                raise _Invalid(f"{label} {problem}")
            rules[name] = self._rule(name, body, label)
        return rules

    def _rule(self, name: str, body: dict[str, object], label: str) -> AttributeRule:
        self._known_keys(body, label, _ATTRIBUTE_KEYS)
        given = [key for key in _SOURCES if key in body]
        if not given:
            raise _Invalid(f"{label} needs one of column, value or template")
        if len(given) > 1:
            both = (
                " and ".join(given) if len(given) == 2 else "column, value and template"
            )
            raise _Invalid(
                f"{label} has {'both ' if len(given) == 2 else ''}{both};"
                " keep exactly one of column, value or template"
            )
        column = value = template = None
        if "column" in body:
            column = self._string(body, "column", label)
        elif "value" in body:
            value = self._constant(body["value"], name, label)
        else:
            template = self._template(body["template"], label)
        transform = self._transforms(body.get("transform"), label)
        when = self._when(body, name, label)
        rule = AttributeRule(
            name=name,
            column=column,
            value=value,
            template=template,
            transform=transform,
            map=self._map(body.get("map"), label),
            region=self._option(body, "region", transform, label),
            format=self._option(body, "format", transform, label),
            when=when,
        )
        for transform_name in transform:
            check = TRANSFORMS[transform_name].check
            problem = check(rule.options()) if check else None
            if problem is not None:
                raise _Invalid(f"{label} {problem}")
        return rule

    @staticmethod
    def _when(body: dict[str, object], name: str, label: str) -> FlagWhen:
        if "when" not in body:
            return "with_attribute"
        value = body["when"]
        if name not in VERIFIED_FLAGS:
            flags = " and ".join(VERIFIED_FLAGS)
            raise _Invalid(f"{label} when is only for the verified flags ({flags})")
        choices = get_args(FlagWhen)
        if value not in choices:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            raise _Invalid(
                f"{label} when = {shown} is not allowed; use one of: {_one_of(choices)}"
            )
        return value  # type: ignore[return-value]

    @staticmethod
    def _constant(value: object, name: str, label: str) -> str:
        if not isinstance(value, str):
            raise _Invalid(
                f"{label} value must be a string (got {_kind(value)});"
                f" write value = {_as_toml_string(value)}"
            )
        if value == "":
            raise _Invalid(
                f"{label} value is empty, which would delete {name} from every user;"
                " list it in [delete] attributes instead"
            )
        control = control_character(value)
        if control is not None:
            raise _Invalid(f"{label} value holds {control}; remove it")
        return value

    @staticmethod
    def _template(template: object, label: str) -> str:
        if not isinstance(template, str):
            raise _Invalid(f"{label} template must be a string (got {_kind(template)})")
        advice = "write fields as {column} and a literal brace as {{ or }}"
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise _Invalid(
                f"{label} template {template!r} is malformed ({exc}); {advice}"
            ) from None
        control = control_character(template)
        if control is not None:
            raise _Invalid(f"{label} template holds {control}; remove it")
        names = [name for _, name, _, _ in parsed if name is not None]
        if not names:
            raise _Invalid(
                f"{label} template {template!r} has no {{fields}};"
                f" use value = {_as_toml_string(template)} for a constant"
            )
        for _, name, spec, conversion in parsed:
            if name == "":
                raise _Invalid(
                    f"{label} template {template!r} has an empty {{}}; {advice}"
                )
            if spec or conversion:
                raise _Invalid(
                    f"{label} template {template!r}: field {name!r} has a format spec"
                    f" or conversion; {advice}"
                )
        return template

    @staticmethod
    def _transforms(value: object, label: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _Invalid(
                f"{label} transform must be a list of transform names,"
                ' e.g. transform = ["strip", "lower"]'
            )
        valid = _one_of(sorted(TRANSFORMS))
        for name in value:
            if name not in TRANSFORMS:
                guess = _suggest(name, TRANSFORMS)
                hint = f"; did you mean {guess!r}?" if guess else ""
                raise _Invalid(
                    f"{label} unknown transform {name!r}{hint}"
                    f" (valid transforms: {valid})"
                )
        return tuple(value)

    @staticmethod
    def _map(value: object, label: str) -> abc.Mapping[str, str] | None:
        if value is None:
            return None
        example = 'e.g. map = { gold = "enterprise" }'
        if not isinstance(value, dict):
            raise _Invalid(
                f"{label} map must be a table of strings, {example}"
                f" (got {_kind(value)})"
            )
        for key, target in value.items():
            if not isinstance(target, str):
                raise _Invalid(
                    f"{label} map must be a table of strings, {example}"
                    f" ({key!r} maps to {_kind(target)})"
                )
        return MappingProxyType(dict(value))

    @staticmethod
    def _option(
        body: dict[str, object], key: str, transform: tuple[str, ...], label: str
    ) -> str | None:
        value = body.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _Invalid(
                f"{label} {key} must be a string (got {_kind(value)});"
                f" write {key} = {_as_toml_string(value)}"
            )
        users = [t.name for t in TRANSFORMS.values() if key in t.options]
        if not any(name in users for name in transform):
            which = (
                f"the {users[0]} transform"
                if len(users) == 1
                else f"the {' and '.join(users)} transforms"
            )
            add = f'add "{users[0]}"' if len(users) == 1 else "add one of them"
            raise _Invalid(
                f"{label} {key} is only used by {which}; {add} to transform or"
                f" remove {key}"
            )
        return value.upper() if key == "region" else value

    # -- delete and client metadata

    def _delete(self, attributes: dict[str, AttributeRule]) -> tuple[str, ...]:
        table = self._table("delete")
        if not table:
            return ()
        names = table.get("attributes")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _Invalid(
                "[delete] attributes must be a list of attribute names,"
                ' e.g. attributes = ["custom:legacy_flag"]'
            )
        seen: set[str] = set()
        for name in names:
            problem = attribute_name_problem(name)
            if problem is not None:
                raise _Invalid(f"[delete] {problem}")
            if name in seen:
                raise _Invalid(f"[delete] {name!r} is listed twice")
            if name in attributes:
                raise _Invalid(
                    f"[delete] {name!r} is also set in {_table('attributes', name)};"
                    " an attribute can be set or deleted, not both"
                )
            seen.add(name)
        return tuple(names)

    def _client_metadata(self) -> dict[str, str]:
        table = self._table("client_metadata")
        for key, value in table.items():
            if not isinstance(value, str):
                raise _Invalid(
                    f"[client_metadata] {key} must be a string (got {_kind(value)});"
                    f" write {key} = {_as_toml_string(value)}"
                )
        return {key: str(value) for key, value in table.items()}


def control_character(text: str) -> str | None:
    """The first control character of ``text`` (see CONTROL_CHARACTERS), described."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"the control character U+{ord(found.group()):04X} at position"
        f" {found.start() + 1}"
    )


def _check_flags(attributes: abc.Mapping[str, AttributeRule]) -> None:
    """A flag sent only with its attribute needs that attribute in the mapping."""
    for flag, attribute in VERIFIED_FLAGS.items():
        rule = attributes.get(flag)
        if rule is None or rule.when == "always" or attribute in attributes:
            continue
        raise _Invalid(
            f"{_table('attributes', flag)} is sent only in a request that also sets"
            f" {attribute}, and this mapping does not set {attribute}, so it would"
            f" never be sent. To mark users' current {attribute} verified (or not)"
            f' without checking it, say so: add when = "always"'
        )


def _check_token_column(mapping: Mapping) -> None:
    """The token column authorises calls; no other part of the mapping may read it.

    Any other use would send the token to the pool, store it in the job file
    and show it in dry-run examples and report messages.
    """
    token = mapping.token_column
    if token is None:
        return
    for column, key in mapping._column_uses():
        if column == token and key != _TOKEN_USE:
            raise _Invalid(
                f"{key} {column!r} is the token column ([options] token_column):"
                " an access token only authorises the call and is never written to"
                " the pool, the job file or the report; read another column"
            )


def _check_constants(mapping: Mapping) -> None:
    """A constant that its own transforms reject would fail on every row."""
    constants = {
        name: rule
        for name, rule in mapping.attributes.items()
        if rule.value is not None and rule.transform
    }
    if not constants:
        return
    probe = Mapping(
        path=mapping.path,
        user_column=ROW,
        attributes=MappingProxyType(constants),
    )
    result = probe.apply(pl.DataFrame({ROW: [1]}))
    for name, rule in constants.items():
        problem = result.get_column(problem_col(name))[0]
        if problem is not None:
            raise _Invalid(
                f"{_table('attributes', name)} value {rule.value!r} fails its"
                f" transforms: {problem}"
            )
