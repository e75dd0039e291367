"""The whole-file pass: every row's user key and new sign-in alias values, once.

Three checks need the whole input before its first row is decided: two rows
naming one user (duplicate_user), two users given one email or phone number
they sign in with (duplicate_value), and, with a snapshot, the diff's join
(current values, and a value already held by another user: alias_taken).
One pass over the input serves all three. It maps only the alias attributes
(their columns and transforms, E.164 included, never the rest of the
mapping) and hands each batch's keys and values to the checks, which keep
them in bounded memory (hash partitions on disk when the file is large, see
migrate.spill).

A large CSV file is read by Source.batches(), not a polars scan: polars' CSV
scan holds much of the file in memory (measured: 290 MB more for a 5-million
row file), the batches do not. The scan, which reads only the columns asked
for, serves smaller files and Parquet (see SCAN_BYTES).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import polars as pl

from migrate import spill
from migrate.mapping import Mapping, mapped_columns
from migrate.records import ROW, USER, value_col
from migrate.source import Source, cell_problem_col
from migrate.spill import RowTable, RowTableBuilder
from migrate.validation import (
    DUPLICATE_KEY,
    DUPLICATE_OWNER,
    DuplicateIndex,
    DuplicateKeys,
    SharedValues,
    comparable,
    normalised_key,
)


def key_chunks(
    source: Source,
    mapping: Mapping,
    names: Sequence[str],
    *,
    case_sensitive: bool | None,
) -> Iterator[pl.DataFrame]:
    """Per batch of the input: ROW, USER (the key as given, stripped) and,
    with ``names``, DUPLICATE_OWNER (the key as Cognito compares it) and per
    attribute of ``names`` a column of that name: its new value as Cognito
    compares it, or null; and its ``mapped_columns`` as Mapping.apply made
    them.

    The value is the mapped one even where the row is invalid (a number e164
    cannot read stays as written), as the planner sees it.
    """
    if not names:
        # Duplicate users only: no mapping to apply (the key is stripped as
        # Mapping.apply strips it; blank keys are left out downstream).
        key = pl.col(mapping.user_column).str.strip_chars().alias(USER)
        for chunk in _read(source, [mapping.user_column]):
            yield chunk.select(pl.col(ROW), key)
        return
    only = replace(
        mapping,
        attributes={name: mapping.attributes[name] for name in names},
        token_column=None,
        delete=(),
    )
    columns = only.source_columns()
    owner = normalised_key(mapping.user_as, case_sensitive).alias(DUPLICATE_OWNER)
    values = [
        _present(comparable(pl.col(value_col(name)), name, case_sensitive)).alias(name)
        for name in names
    ]
    mapped = [column for name in names for column in mapped_columns(name)]

    def work(chunk: pl.DataFrame) -> pl.DataFrame:
        return only.apply(chunk).select(
            pl.col(ROW), pl.col(USER), owner, *values, *mapped
        )

    # Mapping (e164 above all) is most of the pass: two chunks at once, of
    # MAP_ROWS rows, as what each holds meanwhile adds to the pass's memory.
    rows = min(MAP_ROWS, spill.CHUNK_ROWS)
    yield from spill.ordered_map(work, _read(source, columns, rows))


#: Rows mapped at a time by the pass (measured on 5,000,000 rows: two chunks
#: of 200,000 mapped at once raised the peak by 60-90 MB). e164 works once per
#: distinct number of a chunk and remembers those of earlier chunks, so the
#: chunk's size matters little to its time.
MAP_ROWS = 100_000


#: CSV files up to this size are read by polars' scan, which reads only the
#: columns asked for (a million rows of eight columns: 0.1 s instead of
#: 0.35 s; of twelve, 0.1 s instead of 0.5 s) but holds more memory than the
#: batches do, about 0.6 bytes per byte of the file (measured on 46 MB and
#: 487 MB files): at most about 150 MB more, whatever the file's size.
SCAN_BYTES = 256 << 20


def _read(
    source: Source, columns: Sequence[str], rows: int | None = None
) -> Iterator[pl.DataFrame]:
    """ROW and ``columns`` of the whole input, about ``rows`` (CHUNK_ROWS) rows
    at a time.

    Polars' scan where its memory stays small (Parquet; CSV files up to
    SCAN_BYTES), else the source's own batches.
    """
    if source.format == "parquet" or (
        source.format == "csv"
        and not source.compressed
        and source.path.stat().st_size <= SCAN_BYTES
    ):
        scan = source.scan()
        present = set(scan.collect_schema().names())
        problems = [
            cell_problem_col(c) for c in columns if cell_problem_col(c) in present
        ]
        yield from spill.chunks(
            scan.select(ROW, *columns, *problems), source.collect, rows
        )
        return
    yield from _rebatched(source, columns, rows or spill.CHUNK_ROWS)


def _rebatched(
    source: Source, columns: Sequence[str], size: int
) -> Iterator[pl.DataFrame]:
    """The columns the pass reads, ``size`` rows at a time (a few batches)."""
    held: list[pl.DataFrame] = []
    rows = 0
    for batch in source.batches():
        present = set(batch.columns)
        problems = [
            cell_problem_col(c) for c in columns if cell_problem_col(c) in present
        ]
        held.append(batch.select(ROW, *columns, *problems))
        rows += batch.height
        if rows >= size:
            yield pl.concat(held, how="diagonal_relaxed")
            held, rows = [], 0
    if held:
        yield pl.concat(held, how="diagonal_relaxed")


def _present(value: pl.Expr) -> pl.Expr:
    return pl.when(value.is_not_null() & (value != "")).then(value)


def values_of(chunk: pl.DataFrame, name: str) -> pl.DataFrame:
    """A chunk's rows that set ``name``: ROW, DUPLICATE_KEY, DUPLICATE_OWNER."""
    return chunk.select(
        pl.col(ROW), pl.col(name).alias(DUPLICATE_KEY), pl.col(DUPLICATE_OWNER)
    ).filter(pl.col(DUPLICATE_KEY).is_not_null())


@dataclass(frozen=True, kw_only=True)
class WholeFile:
    """What the pass found: duplicate users, and rows sharing an alias value."""

    users: DuplicateIndex
    aliases: dict[str, DuplicateIndex]
    #: The alias attributes' mapped_columns by row, and KNOWN (true): mapped
    #: once for the checks, they are not mapped again (None without aliases).
    mapped: RowTable | None = None


#: Column of WholeFile.mapped: true on every row the pass mapped.
KNOWN = "__known"


#: The pass's results by input (the Source a job read), with what they depend
#: on (mapping, alias attributes, the pool's case rule): a dry run or run asks
#: for duplicate users and alias values separately, and a diff job's snapshot
#: join before both; one pass serves all three.
_FOUND: weakref.WeakKeyDictionary[
    Source, list[tuple[Mapping, tuple[str, ...], bool | None, WholeFile]]
] = weakref.WeakKeyDictionary()


def whole_file(
    source: Source,
    mapping: Mapping,
    names: Sequence[str],
    *,
    case_sensitive: bool | None,
    also: Callable[[pl.DataFrame], None] | None = None,
) -> WholeFile:
    """Duplicate users and alias values of the whole input, in one pass.

    Done once per input, mapping and pool case rule. ``also`` receives every
    chunk of a pass that has to be made (the diff's Aligner.add); when the
    results are known already and ``also`` is given, the chunks are read
    again for it alone.
    """
    known = next(
        (
            found
            for used, attributes, rule, found in _FOUND.get(source, [])
            if used is mapping and attributes == tuple(names) and rule == case_sensitive
        ),
        None,
    )
    if known is not None:
        if also is not None:
            for chunk in key_chunks(
                source, mapping, names, case_sensitive=case_sensitive
            ):
                also(chunk)
        return known
    users = DuplicateKeys(user_as=mapping.user_as, case_sensitive=case_sensitive)
    shared = {name: SharedValues() for name in names}
    mapped = [column for name in names for column in mapped_columns(name)]
    by_row = RowTableBuilder(
        dict.fromkeys(mapped, pl.String()) | {KNOWN: pl.Boolean()},
        # Every row's values: written out as they come, not held by the half
        # million (the pass's memory peaks while it reads).
        flush_rows=min(MAP_ROWS, spill.FLUSH_ROWS),
    )
    for chunk in key_chunks(source, mapping, names, case_sensitive=case_sensitive):
        users.add(chunk)
        for name, found in shared.items():
            found.add(values_of(chunk, name))
        if names:
            by_row.add(chunk.select(ROW, *mapped, pl.lit(True).alias(KNOWN)))
        if also is not None:
            also(chunk)
    # Each check's own work (polars, without the GIL) runs beside the others:
    # two at once keep both cores of a small machine busy.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="migrate-pass") as pool:
        duplicates = pool.submit(users.finish)
        values = {name: pool.submit(found.finish) for name, found in shared.items()}
        result = WholeFile(
            users=duplicates.result(),
            aliases={name: future.result() for name, future in values.items()},
            mapped=by_row.finish() if names else None,
        )
    _FOUND.setdefault(source, []).append(
        (mapping, tuple(names), case_sensitive, result)
    )
    return result
