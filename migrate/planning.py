"""Turn validated rows into decisions: what to send, what to skip, what is invalid.

Planning is where the blank policy takes effect. A blank cell is never sent as an
empty value (which Cognito treats as "delete this attribute"): with
``blank = "skip"`` the attribute is left alone, with ``blank = "delete"`` it is
removed through the explicit delete call, with ``blank = "error"`` validation has
already marked the row invalid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from migrate.mapping import Mapping
from migrate.records import (
    DELETES,
    ERROR_CODE,
    ERROR_MESSAGE,
    ROW,
    STATUS,
    TOKEN,
    USER,
    Status,
    WorkItem,
    value_col,
)
from migrate.validation import SUPERSEDED_BY

#: Attributes this row sets (list[str]).
CHANGED = "__changed"
#: Status of rows that still need a call; never written to a report.
PENDING = "pending"


@dataclass(frozen=True, kw_only=True)
class Planner:
    """Decides each row's fate from the mapping's blank policy and validation."""

    mapping: Mapping

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names the mapping sets, in mapping order."""
        return tuple(self.mapping.attributes)

    def plan(self, validated: pl.DataFrame, *, dry_run: bool) -> pl.DataFrame:
        """Add CHANGED, DELETES and STATUS to a validated batch.

        Valid rows with something to do become ``would_update`` in a dry run and
        ``pending`` otherwise. The error columns gain the reason for skips.
        """
        names = self.attributes
        changed = pl.concat_list(
            [pl.when(pl.col(value_col(a)).is_not_null()).then(pl.lit(a)) for a in names]
            or [pl.lit(None, dtype=pl.String)]
        ).list.drop_nulls()
        delete_parts: list[pl.Expr] = [pl.lit(a) for a in self.mapping.delete]
        if self.mapping.blank == "delete":
            delete_parts += [
                pl.when(pl.col(value_col(a)).is_null()).then(pl.lit(a)) for a in names
            ]
        deletes = pl.concat_list(
            delete_parts or [pl.lit(None, dtype=pl.String)]
        ).list.drop_nulls()

        superseded = (
            pl.col(SUPERSEDED_BY)
            if SUPERSEDED_BY in validated.columns
            else pl.lit(None, dtype=pl.Int64)
        )
        frame = validated.with_columns(
            changed.alias(CHANGED), deletes.alias(DELETES), superseded.alias("__sup")
        )
        nothing = (pl.col(CHANGED).list.len() == 0) & (pl.col(DELETES).list.len() == 0)
        go = Status.WOULD_UPDATE.value if dry_run else PENDING
        status = (
            pl.when(pl.col(ERROR_CODE).is_not_null())
            .then(pl.lit(Status.INVALID.value))
            .when(pl.col("__sup").is_not_null())
            .then(pl.lit(Status.SKIPPED.value))
            .when(nothing)
            .then(pl.lit(Status.SKIPPED.value))
            .otherwise(pl.lit(go))
        )
        skip_code = (
            pl.when(pl.col(ERROR_CODE).is_not_null())
            .then(pl.col(ERROR_CODE))
            .when(pl.col("__sup").is_not_null())
            .then(pl.lit("superseded"))
            .when(nothing)
            .then(pl.lit("nothing_to_change"))
        )
        skip_message = (
            pl.when(pl.col(ERROR_CODE).is_not_null())
            .then(pl.col(ERROR_MESSAGE))
            .when(pl.col("__sup").is_not_null())
            .then(
                pl.format(
                    "row {}: superseded by row {} for the same user "
                    "(duplicates = last)",
                    pl.col(ROW),
                    pl.col("__sup"),
                )
            )
            .when(nothing)
            .then(
                pl.format(
                    "row {}: nothing to change (every mapped cell is blank and "
                    "blank = skip)",
                    pl.col(ROW),
                )
            )
        )
        return frame.with_columns(
            status.alias(STATUS),
            skip_code.alias(ERROR_CODE),
            skip_message.alias(ERROR_MESSAGE),
        ).drop("__sup")

    def work_items(self, planned: pl.DataFrame) -> Iterator[WorkItem]:
        """The pending rows of a planned batch as work items, in row order."""
        pending = planned.filter(pl.col(STATUS) == PENDING)
        cols = [value_col(a) for a in self.attributes]
        has_token = TOKEN in pending.columns
        for rec in pending.iter_rows(named=True):
            yield WorkItem(
                row=rec[ROW],
                user=rec[USER],
                set_attributes={
                    a: rec[c]
                    for a, c in zip(self.attributes, cols, strict=True)
                    if rec[c] is not None
                },
                delete_attributes=tuple(rec[DELETES]),
                token=rec[TOKEN] if has_token else None,
            )

    def examples(self, planned: pl.DataFrame, limit: int) -> list[WorkItem]:
        """A few planned requests, for the dry-run summary."""
        sample = planned.filter(
            pl.col(STATUS).is_in([Status.WOULD_UPDATE.value, PENDING])
        ).head(limit)
        return list(self.work_items(sample.with_columns(pl.lit(PENDING).alias(STATUS))))


def report_frame(
    planned: pl.DataFrame,
    *,
    finished_at: str,
    username_is_key: bool,
    inputs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The report rows of every planned row whose status is already final.

    ``changed``/``deleted`` are only filled for rows that would be sent: an
    invalid or skipped row changes nothing.
    """
    done = planned.filter(pl.col(STATUS) != PENDING)
    goes = pl.col(STATUS) == Status.WOULD_UPDATE.value
    empty = pl.lit([], dtype=pl.List(pl.String))
    frame = done.select(
        pl.col(ROW).cast(pl.Int64).alias("row"),
        pl.col(USER).alias("user"),
        (pl.col(USER) if username_is_key else pl.lit(None, dtype=pl.String)).alias(
            "username"
        ),
        pl.col(STATUS).alias("status"),
        pl.when(goes).then(pl.col(CHANGED)).otherwise(empty).alias("changed"),
        pl.when(goes).then(pl.col(DELETES)).otherwise(empty).alias("deleted"),
        pl.col(ERROR_CODE).alias("error_code"),
        pl.col(ERROR_MESSAGE).alias("error_message"),
        pl.lit(0, dtype=pl.Int64).alias("attempts"),
        pl.lit(finished_at).alias("finished_at"),
        pl.lit(None, dtype=pl.String).alias("delivery"),
    )
    if inputs is not None and inputs.width:
        # ``inputs`` is row-aligned with ``planned`` and already carries the
        # report's names for the input columns.
        frame = frame.hstack(inputs.filter(planned.get_column(STATUS) != PENDING))
    return frame
