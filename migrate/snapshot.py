"""The pool snapshot: every user's status and attributes, exported with ListUsers.

A snapshot file has a fixed schema, all ``pl.String``: ``username``, ``status``
(UserStatus), ``enabled`` ("true"/"false"), then one column per attribute name
the caller passes (the pool schema's), in that order. A null cell means the
user has no such attribute. Attributes a user has outside that list are not
added as columns (every file of one pool keeps one schema); they are counted in
`SnapshotResult.unknown_attributes`.

How a snapshot is taken:

- ListUsers is called page after page (up to 60 users each, every attribute:
  AttributesToGet is never sent, see `UserPool.list_users_page`), paced by
  its own adaptive token bucket, well under the 30 requests/s UserList quota
  that every caller in the account and Region shares. Throttling and
  transient errors are retried with jittered backoff; a job-wide error
  raises FatalError.
- Pages are written as Parquet part files of a fixed number of pages into a
  private (0o700) directory next to the output, ``.<name>.snapshot-parts``,
  so memory does not grow with the pool. After each part is on disk, a small
  state file there records the next pagination token, the counts and the
  parts: an interrupted snapshot (Ctrl-C, crash, error) continues from there
  when `take_snapshot` is called again with the same output path. A saved token
  the service no longer accepts makes it start over, and say so.
- At the end the parts are combined into the output (Parquet or CSV, by the
  file's extension), created 0o600 because it holds personal data, and moved
  into place with one atomic ``os.replace``; then the parts directory goes.

A snapshot resumed from a saved token is de-duplicated by username (first
occurrence kept), because ListUsers is eventually consistent and promises no
order: only one uninterrupted chain of pages is guaranteed free of repeats.

CSV cells are written exactly as Cognito returns them, without the spreadsheet
formula guard of the report: a snapshot is data for ``run --diff``. Prefer
Parquet; it is also smaller and faster to read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random as _random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import polars as pl

from migrate.errors import ConfigError, FatalError, SourceError
from migrate.files import AtomicFile, FileLock, read_head, write_private
from migrate.ratelimit import AdaptiveRate, Clock, SystemClock, TokenBucket
from migrate.records import CallError
from migrate.retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from migrate.cognito import UserPage

USERNAME: Final = "username"
STATUS: Final = "status"
ENABLED: Final = "enabled"
#: The first columns of every snapshot; one column per attribute name follows.
SNAPSHOT_FIXED: Final = (USERNAME, STATUS, ENABLED)
#: ListUsers requests/s by default: below the 30/s UserList quota, which is
#: account-wide and shared with the production app's own ListUsers calls.
DEFAULT_LIST_RATE: Final = 20.0
#: The UserList quota (ListUsers, ListUsersInGroup): requests/s, not adjustable.
USER_LIST_QUOTA: Final = 30.0
#: Users per ListUsers page (the API's maximum).
PAGE_SIZE: Final = 60
#: Pages per part file: 6,000 users, a few MB of memory at most, and at worst
#: 100 pages (5 s at 20/s) fetched again after an interruption.
DEFAULT_PAGES_PER_PART: Final = 100

SnapshotFormat = Literal["parquet", "csv"]
_EXTENSIONS: Final[Mapping[str, SnapshotFormat]] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
}
_STATE_VERSION: Final = 1
_STATE: Final = "state.json"
_LOCK: Final = "lock"
_HOW_TO_TAKE: Final = (
    "take one with `cognito-migrate snapshot --user-pool-id ID -o FILE`"
)


class UserLister(Protocol):
    """What a snapshot needs from Cognito: one ListUsers page at a time."""

    def list_users_page(
        self, pagination_token: str | None, *, limit: int = PAGE_SIZE
    ) -> UserPage:
        """The page after ``pagination_token`` (None: the first page)."""


@dataclass(frozen=True, kw_only=True)
class SnapshotResult:
    """What `take_snapshot` wrote, and how it went."""

    #: Users (rows) in the snapshot file.
    users: int
    #: ListUsers pages the file was built from, earlier interrupted runs included.
    pages: int
    path: Path
    #: Throttled ListUsers calls in this run.
    throttled: int
    #: True when this run continued from an interrupted one's saved progress.
    resumed: bool
    #: ListUsers calls made by this run, retries included.
    calls: int = 0
    #: Why saved progress was thrown away and the snapshot started over, if it was.
    restarted: str | None = None
    #: Attributes users have that are not snapshot columns: name -> users.
    unknown_attributes: Mapping[str, int] = field(default_factory=dict)
    #: Users listed twice across a resume and written once.
    duplicates: int = 0


def snapshot_format(path: str | Path) -> SnapshotFormat:
    """The file format a snapshot path asks for, by its extension."""
    suffix = Path(path).suffix.lower()
    fmt = _EXTENSIONS.get(suffix)
    if fmt is None:
        raise ConfigError(
            f"snapshot file {str(path)!r}: the name must end in .parquet or .csv"
        )
    return fmt


def is_snapshot_file(path: Path) -> bool:
    """Whether ``path`` holds a snapshot this tool wrote (by its fixed columns)."""
    head = read_head(path)
    if head.startswith(b"PAR1"):
        try:
            columns = list(pl.read_parquet_schema(path))
        except (OSError, pl.exceptions.PolarsError):
            return False
    else:
        line = head.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        columns = line.split(",")
    return tuple(columns[: len(SNAPSHOT_FIXED)]) == SNAPSHOT_FIXED


def parts_directory(path: str | Path) -> Path:
    """Where the parts and saved progress of a snapshot into ``path`` live."""
    target = Path(path)
    return target.parent / f".{target.name}.snapshot-parts"


def take_snapshot(
    pool: UserLister,
    path: str | Path,
    *,
    attributes: Sequence[str],
    rate: float = DEFAULT_LIST_RATE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    clock: Clock | None = None,
    random: Callable[[], float] = _random.random,
    progress: Callable[[int], None] | None = None,
    page_size: int = PAGE_SIZE,
    pages_per_part: int = DEFAULT_PAGES_PER_PART,
) -> SnapshotResult:
    """Export every user of the pool to ``path`` (.parquet or .csv); resumable.

    ``attributes`` are the snapshot's attribute columns (the pool schema's
    names). ``progress`` is called after each page with the number of users
    listed so far, resumed ones included. Raises FatalError when ListUsers fails
    for the whole pool (wrong pool, permissions, credentials, retries used up);
    what was fetched until then stays saved for the next call.
    """
    target = Path(path)
    fmt = snapshot_format(target)
    names = _attribute_columns(attributes)
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"--rate must be above 0 requests/s, not {rate}")
    policy = RetryPolicy(max_attempts=max_attempts)
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
    if pages_per_part < 1:
        raise ValueError("pages_per_part must be at least 1")
    if target.is_dir():
        raise ConfigError(f"snapshot file {str(path)!r}: is a directory")
    if not target.parent.is_dir():
        raise ConfigError(
            f"snapshot file {str(path)!r}: no such directory {str(target.parent)!r}"
        )
    pool_id = getattr(pool, "pool_id", None)
    clock = clock if clock is not None else SystemClock()
    with _locked_workspace(target) as workspace:
        fetcher = _Fetcher(
            pool,
            workspace,
            wanted=_State.new(
                pool_id=pool_id if isinstance(pool_id, str) else None,
                attributes=names,
                page_size=page_size,
            ),
            rate=rate,
            policy=policy,
            clock=clock,
            random=random,
            progress=progress,
            pages_per_part=pages_per_part,
        )
        state = fetcher.run()
        users = _combine(workspace, state, target, fmt)
        shutil.rmtree(workspace, ignore_errors=True)
    return SnapshotResult(
        users=users,
        pages=state.pages,
        path=target,
        throttled=fetcher.throttled,
        resumed=fetcher.resumed,
        calls=fetcher.calls,
        restarted=fetcher.restarted,
        unknown_attributes=dict(sorted(state.unknown.items())),
        duplicates=state.users - users,
    )


def read_snapshot(
    path: str | Path, *, columns: Sequence[str] | None = None
) -> pl.LazyFrame:
    """A snapshot file as a LazyFrame of pl.String columns.

    With ``columns``, only ``username`` and those columns, in that order.
    Raises SourceError when the file is missing, unreadable, not a snapshot
    (no username, status and enabled columns) or lacks a requested column.
    """
    source = Path(path)
    shown = str(path)
    suffix = source.suffix.lower()
    fmt = _EXTENSIONS.get(suffix)
    if fmt is None:
        raise SourceError("a snapshot file's name ends in .parquet or .csv", path=shown)
    if not source.is_file():
        raise SourceError(f"no such snapshot file; {_HOW_TO_TAKE}", path=shown)
    try:
        if fmt == "parquet":
            frame = pl.scan_parquet(source)
        else:
            frame = pl.scan_csv(source, infer_schema=False)
        schema = frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(
            f"cannot be read as a {'Parquet' if fmt == 'parquet' else 'CSV'} "
            f"snapshot: {_reason(exc)}",
            path=shown,
        ) from None
    missing = [name for name in SNAPSHOT_FIXED if name not in schema]
    if missing:
        found = ", ".join(repr(name) for name in list(schema)[:8]) or "none"
        if len(schema) > 8:
            found += ", ..."
        raise SourceError(
            "not a snapshot file: it has no "
            + ", ".join(repr(name) for name in missing)
            + f" column (its columns: {found}); {_HOW_TO_TAKE}",
            path=shown,
        )
    if columns is None:
        selected = list(schema)
    else:
        selected = list(dict.fromkeys([USERNAME, *columns]))
        absent = [name for name in selected if name not in schema]
        if absent:
            raise SourceError(
                "the snapshot has no column "
                + ", ".join(repr(name) for name in absent)
                + ": the pool schema changed since it was taken? Take a new one",
                path=shown,
            )
    return frame.select(pl.col(name).cast(pl.String) for name in selected)


def _attribute_columns(attributes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(attributes, str):
        raise TypeError("attributes must be a sequence of names, not one string")
    names = tuple(dict.fromkeys(attributes))
    for name in names:
        if not name:
            raise ConfigError("an attribute name of the snapshot is empty")
        if name in SNAPSHOT_FIXED:
            raise ConfigError(
                f"attribute {name!r} would clash with the snapshot's own "
                f"{name!r} column"
            )
    return names


# --- saved progress --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _State:
    """Progress saved in the parts directory after each durable part."""

    pool_id: str | None
    attributes: tuple[str, ...]
    page_size: int
    next_token: str | None = None
    complete: bool = False
    pages: int = 0
    users: int = 0
    parts: tuple[str, ...] = ()
    #: Page chains the parts come from: 1 + the resumes from a saved token.
    chains: int = 1
    unknown: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def new(
        cls, *, pool_id: str | None, attributes: tuple[str, ...], page_size: int
    ) -> _State:
        return cls(pool_id=pool_id, attributes=attributes, page_size=page_size)

    def fresh(self) -> _State:
        """The same snapshot, started from nothing."""
        return _State.new(
            pool_id=self.pool_id, attributes=self.attributes, page_size=self.page_size
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "pool_id": self.pool_id,
            "attributes": list(self.attributes),
            "page_size": self.page_size,
            "next_token": self.next_token,
            "complete": self.complete,
            "pages": self.pages,
            "users": self.users,
            "parts": list(self.parts),
            "chains": self.chains,
            "unknown_attributes": dict(self.unknown),
        }

    @classmethod
    def from_json(cls, data: Any) -> _State:
        """Parse a saved state; ValueError when it is not one this code wrote."""
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            raise ValueError("unknown state version")
        pool_id = data["pool_id"]
        token = data["next_token"]
        attributes = data["attributes"]
        parts = data["parts"]
        unknown = data["unknown_attributes"]
        counts = (data["page_size"], data["pages"], data["users"], data["chains"])
        if not (
            (pool_id is None or isinstance(pool_id, str))
            and (token is None or (isinstance(token, str) and token))
            and isinstance(data["complete"], bool)
            and isinstance(attributes, list)
            and all(isinstance(name, str) for name in attributes)
            and isinstance(parts, list)
            and all(isinstance(name, str) and "/" not in name for name in parts)
            and isinstance(unknown, dict)
            and all(isinstance(n, int) and n >= 0 for n in unknown.values())
            and all(isinstance(n, int) and n >= 0 for n in counts)
        ):
            raise ValueError("malformed state")
        return cls(
            pool_id=pool_id,
            attributes=tuple(attributes),
            page_size=counts[0],
            next_token=token,
            complete=data["complete"],
            pages=counts[1],
            users=counts[2],
            parts=tuple(parts),
            chains=counts[3],
            unknown=dict(unknown),
        )


@contextlib.contextmanager
def _locked_workspace(target: Path) -> Iterator[Path]:
    """The private parts directory, held by this process for the snapshot."""
    workspace = parts_directory(target)
    try:
        workspace.mkdir(mode=0o700, exist_ok=True)
        # A directory left by an older run may have been created under another
        # umask; the parts hold personal data.
        os.chmod(workspace, 0o700)
    except OSError as exc:
        raise ConfigError(
            f"snapshot file {str(target)!r}: cannot write in "
            f"{str(workspace.parent)!r}: {exc.strerror}"
        ) from None
    lock = FileLock(workspace / _LOCK)
    lock.acquire(
        lambda holder: ConfigError(
            f"a snapshot into {str(target)!r} is already being taken by "
            f"{holder}; wait for it or stop it first"
        )
    )
    try:
        yield workspace
    finally:
        lock.release()


def _save_state(workspace: Path, state: _State) -> None:
    body = json.dumps(state.to_json(), indent=1).encode()
    write_private(workspace / _STATE, lambda handle: handle.write(body))


# --- fetching --------------------------------------------------------------------


class _Pages:
    """ListUsers pages not yet written, as snapshot columns."""

    def __init__(self, attributes: tuple[str, ...]) -> None:
        self._attributes = attributes
        self._known = frozenset(attributes)
        self.columns: dict[str, list[str | None]] = {
            name: [] for name in (*SNAPSHOT_FIXED, *attributes)
        }
        self.unknown: Counter[str] = Counter()
        self.pages = 0
        self.users = 0

    def add(self, users: Sequence[Mapping[str, Any]]) -> None:
        columns = self.columns
        for user in users:
            values = {
                str(entry.get("Name")): entry.get("Value")
                for entry in user.get("Attributes") or ()
            }
            enabled = user.get("Enabled")
            columns[USERNAME].append(user.get("Username"))
            columns[STATUS].append(user.get("UserStatus"))
            columns[ENABLED].append(
                None if enabled is None else ("true" if enabled else "false")
            )
            for name in self._attributes:
                columns[name].append(values.get(name))
            self.unknown.update(name for name in values if name not in self._known)
        self.pages += 1
        self.users += len(users)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=dict.fromkeys(self.columns, pl.String))


class _Fetcher:
    """Lists the pool page by page into part files, saving progress as it goes."""

    def __init__(
        self,
        pool: UserLister,
        workspace: Path,
        *,
        wanted: _State,
        rate: float,
        policy: RetryPolicy,
        clock: Clock,
        random: Callable[[], float],
        progress: Callable[[int], None] | None,
        pages_per_part: int,
    ) -> None:
        self._pool = pool
        self._workspace = workspace
        self._wanted = wanted
        self._policy = policy
        self._clock = clock
        self._random = random
        self._progress = progress
        self._pages_per_part = pages_per_part
        self._bucket = TokenBucket(rate, clock=clock)
        self.adaptive = AdaptiveRate(self._bucket, ceiling=rate, clock=clock)
        self.calls = 0
        self.throttled = 0
        self.resumed = False
        self.restarted: str | None = None

    def run(self) -> _State:
        """Fetch what is missing; return the complete state."""
        state = self._load()
        if state.complete:
            return state
        try:
            return self._fetch(state)
        except BaseException:
            if not (self._workspace / _STATE).exists():
                # Nothing was saved: leave nothing behind either.
                shutil.rmtree(self._workspace, ignore_errors=True)
            raise

    def _load(self) -> _State:
        wanted = self._wanted
        path = self._workspace / _STATE
        state = wanted
        if path.exists():
            try:
                saved = _State.from_json(json.loads(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                self.restarted = (
                    f"the saved progress in {self._workspace} was unreadable"
                )
            else:
                state = self._check_saved(saved)
        if state is wanted:
            self._clear()
        else:
            self._remove_strays(state)
            self.resumed = state.pages > 0
            if not state.complete and self.resumed:
                state = replace(state, chains=state.chains + 1)
        return state

    def _check_saved(self, saved: _State) -> _State:
        """The saved state if it can be continued; else why not (in restarted)."""
        wanted = self._wanted
        if saved.pool_id != wanted.pool_id:
            self.restarted = (
                f"the unfinished snapshot was of user pool {saved.pool_id}, "
                f"not {wanted.pool_id}"
            )
        elif saved.attributes != wanted.attributes:
            self.restarted = (
                "the unfinished snapshot had other attribute columns (the pool "
                "schema changed)"
            )
        elif saved.page_size != wanted.page_size:
            self.restarted = "the unfinished snapshot used another page size"
        elif not all((self._workspace / part).is_file() for part in saved.parts):
            self.restarted = "part files of the unfinished snapshot are missing"
        elif not saved.complete and saved.next_token is None and saved.pages:
            self.restarted = "the saved progress has no pagination token"
        else:
            return saved
        return wanted

    def _clear(self) -> None:
        for entry in self._workspace.iterdir():
            if entry.name != _LOCK:
                _remove(entry)

    def _remove_strays(self, state: _State) -> None:
        # Part or temporary files written after the last saved state, by a run
        # that was interrupted before it could record them.
        keep = {_STATE, _LOCK, *state.parts}
        for entry in self._workspace.iterdir():
            if entry.name not in keep:
                _remove(entry)

    def _fetch(self, state: _State) -> _State:
        pending = _Pages(state.attributes)
        token = state.next_token
        from_saved_token = token is not None
        while True:
            page = self._call(token, state.page_size)
            error = page.error
            if error is not None:
                if from_saved_token:
                    self.restarted = (
                        "Cognito no longer accepts the saved pagination token "
                        f"({error.code}: {error.message})"
                    )
                    self.resumed = False
                    self._clear()
                    state = state.fresh()
                    pending = _Pages(state.attributes)
                    token = None
                    from_saved_token = False
                    continue
                raise FatalError(
                    f"ListUsers was refused: {error.message} ({error.code})",
                    aws_error_code=error.code,
                )
            from_saved_token = False
            pending.add(page.users)
            token = page.next_token
            if self._progress is not None:
                self._progress(state.users + pending.users)
            if token is None or pending.pages >= self._pages_per_part:
                state = self._commit(state, pending, token)
                pending = _Pages(state.attributes)
            if token is None:
                return state

    def _call(self, token: str | None, page_size: int) -> UserPage:
        """One page, with retries; returns a page or a "user" error."""

        def before_attempt() -> bool:
            self._bucket.acquire()
            return True

        def observe(error: CallError | None) -> None:
            self.calls += 1
            if error is None:
                self.adaptive.on_success()
            elif error.throttled:
                self.throttled += 1
                self.adaptive.on_throttle()

        def wait(seconds: float) -> bool:
            self._clock.sleep(seconds)
            return True

        tried = call_with_retries(
            lambda: self._pool.list_users_page(token, limit=page_size),
            lambda page: page.error,
            policy=self._policy,
            random=self._random,
            wait=wait,
            before_attempt=before_attempt,
            observe=observe,
        )
        page = tried.result
        assert page is not None  # nothing stops a snapshot but an exception
        error = page.error
        if error is not None and error.kind == "fatal":
            raise FatalError(error.message, aws_error_code=error.code)
        if error is not None and error.kind == "retryable":
            raise FatalError(
                f"ListUsers failed {tried.attempts} times in a row ({error.code}: "
                f"{error.message}); the users listed so far are saved: run "
                "the snapshot again to continue",
                aws_error_code=error.code,
            )
        return page

    def _commit(self, state: _State, pending: _Pages, token: str | None) -> _State:
        """Make the pending pages durable, then record them in the state."""
        parts = state.parts
        name = f"part-{len(parts) + 1:06d}.parquet"
        if pending.users:
            parts = (*parts, name)
        unknown = Counter(state.unknown)
        unknown.update(pending.unknown)
        state = replace(
            state,
            next_token=token,
            complete=token is None,
            pages=state.pages + pending.pages,
            users=state.users + pending.users,
            parts=parts,
            unknown=dict(unknown),
        )
        try:
            if pending.users:
                write_private(self._workspace / name, pending.frame().write_parquet)
            _save_state(self._workspace, state)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise FatalError(
                f"cannot save the snapshot's progress in {self._workspace}: "
                f"{_reason(exc)}"
            ) from exc
        return state


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


# --- combining -------------------------------------------------------------------


def _combine(workspace: Path, state: _State, target: Path, fmt: SnapshotFormat) -> int:
    """Write the parts into ``target`` atomically; return the users written."""
    schema = dict.fromkeys((*SNAPSHOT_FIXED, *state.attributes), pl.String)
    if state.parts:
        frame = pl.scan_parquet([workspace / part for part in state.parts])
    else:
        frame = pl.LazyFrame(schema=schema)
    deduplicate = state.chains > 1
    if deduplicate:
        frame = frame.unique(subset=[USERNAME], keep="first", maintain_order=True)
    partial = AtomicFile(target, what="snapshot file")
    try:
        partial.close_handle()
        if fmt == "parquet":
            frame.sink_parquet(partial.tmp)
        else:
            frame.sink_csv(partial.tmp)
        partial.commit()
        if not deduplicate:
            return state.users
        # Keys only, whatever the format: the same count unique() kept.
        unique = frame.select(pl.col(USERNAME).n_unique())
        return int(unique.collect().item())
    except (OSError, pl.exceptions.PolarsError) as exc:
        partial.discard()
        raise FatalError(
            f"cannot write the snapshot file {target}: {_reason(exc)}; the users "
            "listed are saved: run the snapshot again to finish it"
        ) from exc
    except BaseException:
        partial.discard()
        raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
