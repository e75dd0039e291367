"""The alias pass: each row's new sign-in alias values, mapped once, read in chunks.

Two rows must not give two users one email or phone number that users sign in
with, and with a snapshot a value must not already belong to another user.
Both need every row's new value before the first row is decided. This pass
reads only the columns those values come from (and the user key), applies only
their attributes' rules (E.164 included, never the rest of the mapping), and
yields the values as Cognito compares them, a chunk at a time: what is kept of
them is up to the consumers (validation.SharedValues, planning.CurrentValues),
which hold them in hash partitions on disk when the file is large.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import polars as pl

from migrate.mapping import Mapping
from migrate.records import ROW, value_col
from migrate.source import Source, cell_problem_col
from migrate.spill import chunks
from migrate.validation import (
    DUPLICATE_KEY,
    DUPLICATE_OWNER,
    comparable,
    normalised_key,
)


def alias_chunks(
    source: Source,
    mapping: Mapping,
    names: Sequence[str],
    *,
    case_sensitive: bool | None,
) -> Iterator[pl.DataFrame]:
    """Chunks of ROW, DUPLICATE_OWNER (the user, normalised) and one column per
    attribute of ``names``: its new value as Cognito compares it, or null.

    The value is the mapped one even where the row is invalid (a number e164
    cannot read stays as written), as the planner sees it.
    """
    only = replace(
        mapping,
        attributes={name: mapping.attributes[name] for name in names},
        token_column=None,
        delete=(),
    )
    scan = source.scan()
    present = set(scan.collect_schema().names())
    columns = only.source_columns()
    problems = [cell_problem_col(c) for c in columns if cell_problem_col(c) in present]
    query = scan.select(ROW, *columns, *problems)
    for chunk in chunks(query, source.collect):
        mapped = only.apply(chunk)
        yield mapped.select(
            pl.col(ROW),
            normalised_key(mapping.user_as, case_sensitive).alias(DUPLICATE_OWNER),
            *(
                _present(
                    comparable(pl.col(value_col(name)), name, case_sensitive)
                ).alias(name)
                for name in names
            ),
        )


def _present(value: pl.Expr) -> pl.Expr:
    return pl.when(value.is_not_null() & (value != "")).then(value)


def values_of(chunk: pl.DataFrame, name: str) -> pl.DataFrame:
    """A chunk's rows that set ``name``: ROW, DUPLICATE_KEY, DUPLICATE_OWNER."""
    return chunk.select(
        pl.col(ROW), pl.col(name).alias(DUPLICATE_KEY), pl.col(DUPLICATE_OWNER)
    ).filter(pl.col(DUPLICATE_KEY).is_not_null())
