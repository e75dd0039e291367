"""Turn validated rows into decisions: what to send, what to skip, what is invalid.

Planning is where the blank policy takes effect. A blank cell is never sent as an
empty value (which Cognito treats as "delete this attribute"): with
``blank = "skip"`` the attribute is left alone, with ``blank = "delete"`` it is
removed through the explicit delete call, with ``blank = "error"`` validation has
already marked the row invalid.

It is also where a verified flag (email_verified, phone_number_verified) is
tied to its attribute: the flag goes into a request only when that request sets
the attribute, and then always (even when a diff finds the flag unchanged, as
Cognito un-verifies a changed value unless the same call says otherwise). A
blank, deleted or unchanged attribute takes its flag out of the request, so
nobody's current number is marked verified unchecked. ``when = "always"`` in
the mapping sends the flag on its own too, on purpose.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import polars as pl

from migrate.mapping import VERIFIED_FLAGS, Mapping
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
from migrate.spill import (
    Partitioned,
    RowTable,
    RowTableBuilder,
    chunks,
    reduce_pieces,
)
from migrate.validation import (
    DUPLICATE_OTHERS,
    SUPERSEDED_BY,
    DuplicateIndex,
    comparable,
    comparable_key,
)

#: Normalised lookup key of a row / of a snapshot user.
KEY = "__key"
#: The username a snapshot resolved the key to.
USERNAME = "__username"
#: How many snapshot users the key matched.
MATCHES = "__matches"
#: True when the row had anything to set or delete before the diff.
HAD_CHANGES = "__had_changes"
#: Snapshot columns that identify a user for each kind of key.
_KEY_COLUMN = {
    "username": "username",
    "email": "email",
    "phone_number": "phone_number",
    "sub": "sub",
}
#: Attributes that are aliases: a value two users must not share.
ALIAS_ATTRIBUTES = ("email", "phone_number")
#: Attributes this row sets (list[str]).
CHANGED = "__changed"
#: Status of rows that still need a call; never written to a report.
PENDING = "pending"


def current_col(attribute: str) -> str:
    """Frame column holding the user's current value of ``attribute`` (snapshot)."""
    return f"^{attribute}"


def owner_col(attribute: str) -> str:
    """Frame column naming the snapshot user that already holds the row's value."""
    return f"&{attribute}"


def _streaming(query: pl.LazyFrame) -> pl.DataFrame:
    return query.collect(engine="streaming")


@dataclass(frozen=True, kw_only=True)
class CurrentValues:
    """The users' current attributes, from a snapshot, keyed like the mapping.

    Built by ``from_snapshot`` as queries over the snapshot; ``aligned_to``
    then joins them to every input row once (the diff's join), in bounded
    memory: both sides are split into hash partitions on disk when large, and
    the result is a RowTable read back batch by batch (see migrate.spill).
    Without ``aligned_to`` (small frames, tests), ``attach`` joins each batch
    with ``users`` and ``aliases`` held in memory.
    """

    #: One row per snapshot user with a key: KEY, USERNAME, and the current
    #: value (current_col) of every attribute the job touches.
    snapshot_users: pl.LazyFrame
    #: Per alias attribute the job sets that the snapshot has: KEY (the value,
    #: normalised) and owner_col(name), the username holding it.
    snapshot_aliases: dict[str, pl.LazyFrame]
    user_as: str
    case_sensitive: bool | None
    source: str
    collect: Callable[[pl.LazyFrame], pl.DataFrame] | None = None
    #: Per input row: USERNAME, MATCHES and the current values (aligned_to).
    by_row: RowTable | None = None
    #: Per alias attribute, per input row: who holds its new value (aligned_to).
    owners: dict[str, RowTable] | None = None

    @property
    def alias_names(self) -> tuple[str, ...]:
        """Alias attributes whose current owners are known."""
        return tuple(self.snapshot_aliases)

    def _run(self, query: pl.LazyFrame) -> pl.DataFrame:
        return (self.collect or _streaming)(query)

    @cached_property
    def users(self) -> pl.DataFrame:
        """One row per distinct key: KEY, USERNAME (None when ambiguous),
        MATCHES and the current values; in memory."""
        grouped = _grouped_users([self._run(self.snapshot_users)])
        return _resolved(grouped, self.snapshot_users)

    @cached_property
    def aliases(self) -> dict[str, pl.DataFrame]:
        """Per alias attribute: normalised value -> the username holding it."""
        return {
            name: self._run(query.unique(subset=[KEY], keep="first"))
            for name, query in self.snapshot_aliases.items()
        }

    def aligner(self) -> Aligner:
        """The join of these values with the input, fed a chunk at a time."""
        return Aligner(self)

    def aligned_to(
        self,
        keys: pl.LazyFrame | Iterable[pl.DataFrame],
        collect: Callable[[pl.LazyFrame], pl.DataFrame] | None = None,
    ) -> CurrentValues:
        """Join the whole input (ROW, USER; see Aligner.add) to the snapshot once."""
        aligner = self.aligner()
        for chunk in chunks(keys, collect) if isinstance(keys, pl.LazyFrame) else keys:
            aligner.add(chunk)
        return aligner.finish()

    def by_row_schema(self) -> dict[str, pl.DataType]:
        """The columns ``attach`` adds from the snapshot: username, matches, values."""
        schema = dict(self.snapshot_users.collect_schema())
        schema.pop(KEY)
        return {USERNAME: schema.pop(USERNAME), MATCHES: pl.Int64(), **schema}

    @classmethod
    def from_snapshot(
        cls,
        snapshot: pl.LazyFrame,
        *,
        mapping: Mapping,
        case_sensitive: bool | None,
        source: str,
        alias_attributes: Sequence[str] = ALIAS_ATTRIBUTES,
        collect: Callable[[pl.LazyFrame], pl.DataFrame] | None = None,
        signs_in_with: Sequence[tuple[str, bool]] = (),
    ) -> CurrentValues:
        """Index a snapshot (see migrate.snapshot) for one mapping's job.

        ``signs_in_with``: for a job keyed by username, the attributes Cognito
        also takes as a Username (aliases, sign-in attributes), each with
        whether only a verified value counts; a key is looked up by them too,
        as Cognito would find the user. Nothing is read yet: see
        ``aligned_to`` and ``users``.
        """
        present = set(snapshot.collect_schema().names())
        touched = list(dict.fromkeys([*mapping.attributes, *mapping.delete]))
        key_column = _KEY_COLUMN[mapping.user_as]

        def value(name: str) -> pl.Expr:
            if name in present:
                return pl.col(name).alias(current_col(name))
            return pl.lit(None, dtype=pl.String).alias(current_col(name))

        def keyed_by(column: str, kind: str, where: pl.Expr) -> pl.LazyFrame:
            return snapshot.filter(where).select(
                comparable_key(pl.col(column), kind, case_sensitive).alias(KEY),
                pl.col("username").alias(USERNAME),
                *(value(name) for name in touched),
            )

        users = keyed_by(key_column, mapping.user_as, pl.lit(True))
        other_keys = [
            # The row's key is a username: its alias values are compared as
            # the pool compares a Username.
            keyed_by(
                name,
                mapping.user_as,
                pl.col(f"{name}_verified") == "true"
                if verified_only and f"{name}_verified" in present
                else pl.lit(not verified_only),
            )
            for name, verified_only in signs_in_with
            if mapping.user_as == "username" and name in present
        ]
        if other_keys:
            # A user found by a key twice (an alias that is its own username)
            # counts once: see _grouped_users, which does it partition by
            # partition (a unique over the whole snapshot here held it all in
            # memory: 1.4 GB instead of 0.9 GB for 5,000,000 users).
            users = pl.concat([users, *other_keys])
        users = users.filter(pl.col(KEY).is_not_null() & (pl.col(KEY) != ""))
        aliases = {
            name: snapshot.select(
                comparable(pl.col(name), name, case_sensitive).alias(KEY),
                pl.col("username").alias(owner_col(name)),
            ).filter(pl.col(KEY).is_not_null() & (pl.col(KEY) != ""))
            for name in alias_attributes
            if name in mapping.attributes and name in present
        }
        return cls(
            snapshot_users=users,
            snapshot_aliases=aliases,
            user_as=mapping.user_as,
            case_sensitive=case_sensitive,
            source=source,
            collect=collect,
        )

    def attach(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Join each row with its user's current values (and alias owners)."""
        if self.by_row is not None:
            found = self.by_row.lookup(frame.get_column(ROW))
            frame = frame.hstack(found.drop(ROW).get_columns())
        else:
            frame = frame.with_columns(
                comparable_key(pl.col(USER), self.user_as, self.case_sensitive).alias(
                    KEY
                )
            ).join(self.users, on=KEY, how="left", coalesce=True)
        if self.owners is not None:
            for name, table in self.owners.items():
                found = table.lookup(frame.get_column(ROW))
                frame = frame.with_columns(found.get_column(owner_col(name)))
            return frame
        for name, owners in self.aliases.items():
            target = comparable(pl.col(value_col(name)), name, self.case_sensitive)
            frame = (
                frame.with_columns(target.alias("__alias"))
                .join(
                    owners.rename({KEY: "__alias"}),
                    on="__alias",
                    how="left",
                    coalesce=True,
                )
                .drop("__alias")
            )
        return frame


class Aligner:
    """The diff's join of the whole input with a snapshot, in bounded memory.

    ``add`` the input a chunk at a time: ROW, USER (the key as given) and,
    for each alias attribute whose owners are wanted (CurrentValues.
    alias_names), a column of that name with the row's new value as Cognito
    compares it (see migrate.aliases). ``finish`` adds the snapshot's side
    and joins partition by partition: the result is kept by row, in memory
    when small, else on disk (RowTable).
    """

    def __init__(self, current: CurrentValues) -> None:
        self._current = current
        # Side 0: the snapshot's users (or owners); side 1: the input's rows.
        self._users = Partitioned([KEY], sides=2)
        self._owners = {
            name: Partitioned([KEY], sides=2) for name in current.snapshot_aliases
        }
        self._key = comparable_key(
            pl.col(USER), current.user_as, current.case_sensitive
        )

    def add(self, chunk: pl.DataFrame) -> None:
        """Add input rows (ROW, USER and the alias value columns)."""
        self._users.add(
            chunk.select(pl.col(ROW).cast(pl.Int64), self._key.alias(KEY)).filter(
                pl.col(KEY).is_not_null() & (pl.col(KEY) != "")
            ),
            side=1,
        )
        for name, split in self._owners.items():
            split.add(
                chunk.select(pl.col(ROW), pl.col(name).alias(KEY)).filter(
                    pl.col(KEY).is_not_null() & (pl.col(KEY) != "")
                ),
                side=1,
            )

    def finish(self) -> CurrentValues:
        """The current values, aligned to every input row added."""
        current = self._current
        try:
            by_row = RowTableBuilder(current.by_row_schema())
            for chunk in chunks(current.snapshot_users, current.collect):
                self._users.add(chunk, side=0)
            for partition in self._users.partitions():
                grouped = _grouped_users(partition.pieces(0))
                if grouped is None:
                    continue
                found = _resolved(grouped, current.snapshot_users)
                for piece in partition.pieces(1):
                    by_row.add(piece.join(found, on=KEY, how="inner").drop(KEY))
            self._users.remove()
            owners: dict[str, RowTable] = {}
            for name, split in self._owners.items():
                column = owner_col(name)
                table = RowTableBuilder({column: pl.String()})
                for chunk in chunks(current.snapshot_aliases[name], current.collect):
                    split.add(chunk, side=0)
                for partition in split.partitions():
                    # The first user holding a value, as a join in memory.
                    first = reduce_pieces(
                        partition.pieces(0),
                        by=[KEY],
                        partial=[pl.col(column).first()],
                        merge=[pl.col(column).first()],
                    )
                    if first is None:
                        continue
                    for piece in partition.pieces(1):
                        table.add(piece.join(first, on=KEY, how="inner").drop(KEY))
                split.remove()
                owners[name] = table.finish()
            return replace(current, by_row=by_row.finish(), owners=owners)
        finally:
            self._users.remove()
            for split in self._owners.values():
                split.remove()


#: How snapshot users are grouped by key, piece by piece (see reduce_pieces):
#: how many users have the key, and the first one's name and values.
def _grouped_users(pieces: Iterable[pl.DataFrame]) -> pl.DataFrame | None:
    """Snapshot users by key (all rows of a key among ``pieces``): KEY,
    MATCHES (how many users the key finds), then the first user's columns.

    One user found by a key twice (its username and an alias of the same
    value) is one match: (key, username) pairs are made distinct first, in
    memory that follows the pairs, then counted by key.
    """
    pairs = reduce_pieces(
        pieces, by=[KEY, USERNAME], partial=[pl.all().first()], merge=[pl.all().first()]
    )
    if pairs is None:
        return None
    return pairs.group_by(KEY, maintain_order=True).agg(
        pl.len().cast(pl.Int64).alias(MATCHES), pl.all().first()
    )


def _resolved(grouped: pl.DataFrame | None, users: pl.LazyFrame) -> pl.DataFrame:
    """Grouped snapshot users, an ambiguous key resolving to no one."""
    if grouped is None:
        schema = dict(users.collect_schema())
        return pl.DataFrame(schema={KEY: schema.pop(KEY), MATCHES: pl.Int64, **schema})
    return grouped.with_columns(
        pl.when(pl.col(MATCHES) == 1).then(pl.col(USERNAME)).alias(USERNAME)
    )


@dataclass(frozen=True, kw_only=True)
class Planner:
    """Decides each row's fate from the mapping's blank policy and validation."""

    mapping: Mapping
    #: Current values from a snapshot: enables the diff and the key lookup.
    current: CurrentValues | None = None
    #: For alias attributes (email/phone_number used to sign in): rows of the
    #: file that would give two users the same value.
    alias_duplicates: dict[str, DuplicateIndex] = field(default_factory=dict)
    #: Per verified flag, rows whose request left it out because it did not
    #: set the flag's attribute (see withheld_flags).
    _withheld: Counter[str] = field(
        default_factory=Counter, init=False, compare=False, repr=False
    )
    # plan() runs on several threads in a dry run.
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, compare=False, repr=False
    )

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names the mapping sets, in mapping order."""
        return tuple(self.mapping.attributes)

    def withheld_flags(self) -> dict[str, int]:
        """Rows planned so far whose verified flag was left out, by flag.

        Counts rows that would have sent the flag (it has a value, and with a
        diff it differs) but whose request does not set the flag's attribute:
        a blank or deleted attribute, or one a diff found unchanged. Invalid
        and superseded rows are not counted: nothing of theirs is sent.
        """
        with self._lock:
            return {flag: n for flag, n in self._withheld.items() if n}

    def _differs(self, attribute: str) -> pl.Expr:
        """Whether this row has a value for ``attribute`` that differs."""
        value = pl.col(value_col(attribute))
        if self.current is None:
            return value.is_not_null()
        current = pl.col(current_col(attribute))
        return value.is_not_null() & (current.is_null() | (current != value))

    def _sends(self, attribute: str) -> pl.Expr:
        """Whether this row's request sets ``attribute``."""
        flagged = VERIFIED_FLAGS.get(attribute)
        if flagged is None:
            return self._differs(attribute)
        present = pl.col(value_col(attribute)).is_not_null()
        with_value = (
            self._differs(flagged)
            if flagged in self.mapping.attributes
            else pl.lit(False)
        )
        if self.mapping.attributes[attribute].when == "always":
            return present & (with_value | self._differs(attribute))
        return present & with_value

    def _has_value(self, attribute: str) -> pl.Expr:
        """Whether the row holds something to set for ``attribute`` (before a diff)."""
        value = pl.col(value_col(attribute)).is_not_null()
        flagged = VERIFIED_FLAGS.get(attribute)
        rule = self.mapping.attributes[attribute]
        if flagged is None or rule.when == "always":
            return value
        if flagged not in self.mapping.attributes:
            return pl.lit(False)
        return value & pl.col(value_col(flagged)).is_not_null()

    def _exists(self, attribute: str) -> pl.Expr:
        """Whether the user has ``attribute`` now (always assumed without a diff)."""
        if self.current is None:
            return pl.lit(True)
        return pl.col(current_col(attribute)).is_not_null()

    def _names(self, exprs: Sequence[pl.Expr]) -> pl.Expr:
        return pl.concat_list(
            exprs or [pl.lit(None, dtype=pl.String)]
        ).list.drop_nulls()

    def plan(self, validated: pl.DataFrame, *, dry_run: bool) -> pl.DataFrame:
        """Add CHANGED, DELETES and STATUS to a validated batch.

        Valid rows with something to do become ``would_update`` in a dry run and
        ``pending`` otherwise; the error columns say why a row is not sent. With
        current values (a snapshot) only what differs is sent, keys are resolved
        to usernames, and unknown or ambiguous keys fail without a call.
        """
        names = self.attributes
        blank_deletes = self.mapping.blank == "delete"
        had = [self._has_value(a) for a in names]
        had += [pl.lit(True) for _ in self.mapping.delete]
        if blank_deletes:
            had += [pl.col(value_col(a)).is_null() for a in names]
        frame = validated
        if self.current is not None:
            frame = self.current.attach(frame)
        changed = self._names([pl.when(self._sends(a)).then(pl.lit(a)) for a in names])
        delete_parts: list[pl.Expr] = [
            pl.when(self._exists(a)).then(pl.lit(a)) for a in self.mapping.delete
        ]
        if blank_deletes:
            delete_parts += [
                pl.when(pl.col(value_col(a)).is_null() & self._exists(a)).then(
                    pl.lit(a)
                )
                for a in names
            ]
        superseded = (
            pl.col(SUPERSEDED_BY)
            if SUPERSEDED_BY in frame.columns
            else pl.lit(None, dtype=pl.Int64)
        )
        frame = frame.with_columns(
            changed.alias(CHANGED),
            self._names(delete_parts).alias(DELETES),
            superseded.alias("__sup"),
            pl.any_horizontal(had or [pl.lit(False)]).alias(HAD_CHANGES),
        )
        nothing = (pl.col(CHANGED).list.len() == 0) & (pl.col(DELETES).list.len() == 0)
        go = Status.WOULD_UPDATE.value if dry_run else PENDING
        # (condition, status, code, message), first match wins.
        rules: list[tuple[pl.Expr, str, pl.Expr, pl.Expr]] = [
            (
                pl.col(ERROR_CODE).is_not_null(),
                Status.INVALID.value,
                pl.col(ERROR_CODE),
                pl.col(ERROR_MESSAGE),
            )
        ]
        for name, index in self.alias_duplicates.items():
            frame = frame.with_columns(
                index.lookup(frame[ROW])[DUPLICATE_OTHERS].alias(f"__same:{name}")
            )
            rules.append(
                (
                    pl.col(f"__same:{name}").is_not_null()
                    & pl.col(value_col(name)).is_not_null(),
                    Status.INVALID.value,
                    pl.lit("duplicate_value"),
                    pl.format(
                        f"row {{}}, {name}: '{{}}' is also the new {name} of {{}}; "
                        "two users must not share it (Cognito may silently move "
                        "it from one to the other)",
                        pl.col(ROW),
                        pl.col(value_col(name)),
                        pl.col(f"__same:{name}"),
                    ),
                )
            )
        if self.current is not None:
            rules += self._lookup_rules()
        rules += [
            (
                pl.col("__sup").is_not_null(),
                Status.SKIPPED.value,
                pl.lit("superseded"),
                pl.format(
                    "row {}: superseded by row {} for the same user "
                    "(duplicates = last)",
                    pl.col(ROW),
                    pl.col("__sup"),
                ),
            ),
            (
                nothing & pl.col(HAD_CHANGES),
                Status.UNCHANGED.value,
                pl.lit("unchanged"),
                pl.format("row {}: the user already holds these values", pl.col(ROW)),
            ),
            (
                nothing,
                Status.SKIPPED.value,
                pl.lit("nothing_to_change"),
                pl.format(
                    "row {}: nothing to change (every mapped cell is blank and "
                    "blank = skip)",
                    pl.col(ROW),
                ),
            ),
        ]
        status: pl.Expr = pl.lit(go)
        code: pl.Expr = pl.lit(None, dtype=pl.String)
        message: pl.Expr = pl.lit(None, dtype=pl.String)
        for condition, name, reason, text in reversed(rules):
            status = pl.when(condition).then(pl.lit(name)).otherwise(status)
            code = pl.when(condition).then(reason).otherwise(code)
            message = pl.when(condition).then(text).otherwise(message)
        planned = frame.with_columns(
            status.alias(STATUS), code.alias(ERROR_CODE), message.alias(ERROR_MESSAGE)
        ).drop("__sup")
        self._count_withheld(planned)
        return planned

    def _count_withheld(self, planned: pl.DataFrame) -> None:
        flags = [flag for flag in VERIFIED_FLAGS if flag in self.mapping.attributes]
        if not flags or planned.is_empty():
            return
        # Rows decided by policy or sent; not invalid, failed or superseded ones.
        decided = pl.col(ERROR_CODE).is_null() | pl.col(ERROR_CODE).is_in(
            ["unchanged", "nothing_to_change"]
        )
        counts = planned.select(
            (decided & self._differs(flag) & ~self._sends(flag)).sum().alias(flag)
            for flag in flags
        ).row(0, named=True)
        with self._lock:
            for flag, n in counts.items():
                self._withheld[flag] += int(n)

    def _lookup_rules(self) -> list[tuple[pl.Expr, str, pl.Expr, pl.Expr]]:
        assert self.current is not None
        kind = self.mapping.user_as
        source = self.current.source
        rules: list[tuple[pl.Expr, str, pl.Expr, pl.Expr]] = [
            (
                pl.col(MATCHES).is_null(),
                Status.FAILED.value,
                pl.lit("UserNotFoundException"),
                pl.format(
                    f"row {{}}: no user with {kind} '{{}}' in the snapshot ({source})",
                    pl.col(ROW),
                    pl.col(USER),
                ),
            ),
            (
                pl.col(MATCHES) > 1,
                Status.FAILED.value,
                pl.lit("AmbiguousUser"),
                pl.format(
                    f"row {{}}: {{}} users have {kind} '{{}}' in the snapshot; "
                    "key the row by username or sub",
                    pl.col(ROW),
                    pl.col(MATCHES),
                    pl.col(USER),
                ),
            ),
        ]
        for name in self.current.alias_names:
            taken = (
                pl.col(owner_col(name)).is_not_null()
                & (pl.col(owner_col(name)) != pl.col(USERNAME))
                & self._sends(name)
            )
            rules.append(
                (
                    taken,
                    Status.INVALID.value,
                    pl.lit("alias_taken"),
                    pl.format(
                        f"row {{}}, {name}: '{{}}' already belongs to user '{{}}' in "
                        "the pool; Cognito may silently move it to this user or "
                        "refuse, so it is not sent",
                        pl.col(ROW),
                        pl.col(value_col(name)),
                        pl.col(owner_col(name)),
                    ),
                )
            )
        return rules

    def work_items(self, planned: pl.DataFrame) -> Iterator[WorkItem]:
        """The pending rows of a planned batch as work items, in row order."""
        pending = planned.filter(pl.col(STATUS) == PENDING)
        has_token = TOKEN in pending.columns
        resolved = self.current is not None
        for rec in pending.iter_rows(named=True):
            changed: list[str] = rec[CHANGED]
            deletes: list[str] = rec[DELETES]
            user = rec[USERNAME] if resolved else rec[USER]
            yield WorkItem(
                row=rec[ROW],
                user=user,
                key=rec[USER] if user != rec[USER] else None,
                set_attributes={a: rec[value_col(a)] for a in changed},
                delete_attributes=tuple(deletes),
                token=rec[TOKEN] if has_token else None,
                before=(
                    {a: rec[current_col(a)] for a in [*changed, *deletes]}
                    if resolved
                    else None
                ),
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
    if USERNAME in done.columns:
        username = pl.col(USERNAME)
    elif username_is_key:
        username = pl.col(USER)
    else:
        username = pl.lit(None, dtype=pl.String)
    frame = done.select(
        pl.col(ROW).cast(pl.Int64).alias("row"),
        pl.col(USER).alias("user"),
        username.alias("username"),
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
