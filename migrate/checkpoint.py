"""The job ledger: one SQLite file per job, one final outcome per input row.

The ledger is what makes a job resumable. It records the job's fingerprint (what
input, mapping, pool and options it was made for) and, for every input row that
has reached a status, that status. Rows sent but not yet committed when a
process dies are simply absent, so a resume sends them again (updates are
idempotent). Access tokens are never stored.

Outcomes are recorded by one thread (the run's coordinator), which only queues
them: a writer thread owned by the ledger commits them in batches, each with
one SQL statement (see _batch_insert), so SQLite's work runs beside the run
instead of in its way. ``flush`` waits until everything recorded is
committed. WAL mode lets ``status`` and ``report`` read while a run writes.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import polars as pl

from migrate.background import Background, BackgroundError
from migrate.errors import CheckpointError, FatalError
from migrate.files import FileLock, create_private, read_head
from migrate.records import (
    LEDGER_ONLY_COLUMNS,
    OUTCOME_COLUMNS,
    REPORT_COLUMNS,
    JobKind,
    JobSpec,
    Outcome,
    Status,
)

#: Version of the ledger's layout; bump with a migration in _MIGRATIONS.
LEDGER_VERSION = 2
#: Commit at least this often (outcomes) ...
COMMIT_EVERY = 1000
#: ... or this often (seconds), whichever comes first.
COMMIT_INTERVAL = 0.5
#: Batches queued for the writer before ``record`` waits for it: bounds memory
#: if the disk is slower than the run.
QUEUED_BATCHES = 8

#: Beyond any row number: the end of a range of rows that has none.
LAST_ROW = 2**62

#: Statuses a resume does not send again.
FINAL_STATUSES: frozenset[str] = frozenset(
    {
        Status.UPDATED,
        Status.UNCHANGED,
        Status.SKIPPED,
        Status.INVALID,
        Status.FAILED,
        Status.WOULD_UPDATE,
        Status.CONFLICT,
    }
)


#: The rows a rollback undoes (parameters: updated, failed_retryable).
_CHANGED_A_USER = (
    "(status = ? OR changed != '[]' OR (status = ? AND before IS NOT NULL))"
)


def _final(*, retry_failed: bool, retry_conflicts: bool) -> list[str]:
    """The statuses a run leaves alone: a resume's, or a forced rollback's."""
    final = set(FINAL_STATUSES)
    if retry_failed:
        final.discard(Status.FAILED)
    if retry_conflicts:
        final.discard(Status.CONFLICT)
    return sorted(final)


_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE job (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE outcomes (
        row           INTEGER PRIMARY KEY,
        user          TEXT,
        username      TEXT,
        status        TEXT NOT NULL,
        changed       TEXT NOT NULL DEFAULT '[]',
        deleted       TEXT NOT NULL DEFAULT '[]',
        error_code    TEXT,
        error_message TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        finished_at   TEXT,
        delivery      TEXT,
        recorded      REAL NOT NULL
    );
    CREATE INDEX outcomes_status ON outcomes(status);
    CREATE TABLE runs (
        id         INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at   REAL,
        pid        INTEGER NOT NULL,
        command    TEXT NOT NULL,
        result     TEXT
    );
    """,
    # The attribute values a row sent, and their values before (from a
    # snapshot), so that a job can be audited and rolled back.
    2: """
    ALTER TABLE outcomes ADD COLUMN sent TEXT;
    ALTER TABLE outcomes ADD COLUMN before TEXT;
    """,
}

#: The outcomes table's columns, in the order of its layout (migration 1 added
#: the report's columns and ``recorded``, migration 2 ``sent`` and ``before``).
_OUTCOME_COLUMNS = (*OUTCOME_COLUMNS, *LEDGER_ONLY_COLUMNS)


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    """What a job was made for; a resume must match every part."""

    input_sha256: str
    mapping_sha256: str
    pool: str
    options: str

    def as_dict(self) -> dict[str, str]:
        """The parts as stored in the ledger."""
        return {
            "input_sha256": self.input_sha256,
            "mapping_sha256": self.mapping_sha256,
            "pool": self.pool,
            "options": self.options,
        }


_PART_NAMES = {
    "input_sha256": "the input file's content",
    "mapping_sha256": "the mapping file's content",
    "pool": "the user pool",
    "options": "the options that change what is sent",
}


#: The job table's key of the job description (a JobSpec as JSON).
_SPEC_KEY = "spec"


#: What each JobSpec field may hold, as JSON gives it back.
_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "pool_id": (str,),
    "delimiter": (str,),
    "diff": (bool,),
    "schema": (dict, type(None)),
    "total_rows": (int, type(None)),
    "concurrency": (int, type(None)),
    "max_attempts": (int, type(None)),
    "rate": (int, float, type(None)),
    "read_rate": (int, float, type(None)),
    "read_before_write": (bool,),
}


def _mistyped_fields(spec: JobSpec) -> list[str]:
    """Fields of a job description (edited by hand) that hold the wrong type."""
    wrong = []
    for item in fields(spec):
        value = getattr(spec, item.name)
        allowed = _SPEC_TYPES.get(item.name, (str, type(None)))
        # bool is an int to Python, never to a job description.
        if not isinstance(value, allowed) or (
            isinstance(value, bool) and bool not in allowed
        ):
            wrong.append(item.name)
    if spec.kind not in ("real", "sandbox", "rollback"):
        wrong.append("kind")
    return wrong


def _legacy_spec(info: Mapping[str, str]) -> JobSpec:
    """The description of a job file written before JobSpec (loose keys)."""
    total = info.get("total_rows") or ""
    kind: JobKind = (
        "rollback"
        if info.get("rollback_of")
        else "sandbox"
        if info.get("sandbox")
        else "real"
    )
    return JobSpec(
        kind=kind,
        pool_id=info["pool_id"],
        region=info.get("region") or None,
        profile=info.get("profile") or None,
        endpoint_url=info.get("endpoint_url") or None,
        input_path=info.get("input_path") or None,
        mapping_path=info.get("mapping_path") or None,
        delimiter=info.get("delimiter", ","),
        format=info.get("format") or None,
        schema=json.loads(info["schema"]) if info.get("schema") else None,
        diff=info.get("diff") == "true",
        snapshot=info.get("snapshot") or None,
        total_rows=int(total) if total.isdigit() else None,
        rollback_of=info.get("rollback_of") or None,
    )


def _difference(part: str, old: str | None, new: str) -> str:
    """How one part of a fingerprint changed, in words a person can act on."""
    if part.endswith("sha256"):
        return f"sha256 {(old or '')[:12] or 'none'}, now {new[:12]}"
    if part != "options":
        return f"was {old!r}, now {new!r}"
    try:
        before, after = json.loads(old or "{}"), json.loads(new)
    except ValueError:
        return f"was {old!r}, now {new!r}"
    names = sorted(set(before) | set(after))
    return "; ".join(
        f"{name}: {_shown(before, name)}, now {_shown(after, name)}"
        for name in names
        if before.get(name) != after.get(name)
    )


def _shown(options: dict[str, Any], name: str) -> str:
    return json.dumps(options[name]) if name in options else "unset"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_fingerprint(
    *,
    input_path: Path,
    mapping_path: Path,
    pool: str,
    options: Mapping[str, Any],
    input_sha256: str | None = None,
) -> Fingerprint:
    """Fingerprint of a job from its files, pool and send-relevant options.

    ``input_sha256``: the input's content hash when it is not one file's bytes
    (a folder of Parquet parts: ``Source.fingerprint()``).
    """
    return Fingerprint(
        input_sha256=input_sha256 or file_sha256(input_path),
        mapping_sha256=file_sha256(mapping_path),
        pool=pool,
        options=json.dumps(dict(options), sort_keys=True),
    )


def _create_private(path: Path, shown: Path) -> None:
    """Create an empty file readable by the owner only (before SQLite opens it)."""
    try:
        create_private(path)
    except FileExistsError:
        return
    except PermissionError as error:
        raise CheckpointError(
            f"cannot create the job file {shown}: permission denied; pass --job "
            "with a path in a writable directory"
        ) from error
    except FileNotFoundError as error:
        raise CheckpointError(
            f"cannot create the job file {shown}: the directory does not exist"
        ) from error


#: The first bytes of every SQLite database file.
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _place_without_replacing(partial: Path, path: Path) -> None:
    """Give ``partial`` the name ``path``; FileExistsError if it is taken.

    A hard link, not a rename: of two processes creating one job at once, the
    second fails instead of replacing the first one's file. Where the file
    system has no hard links, a rename after a last look is the best there is.
    """
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        if path.exists():
            raise FileExistsError(str(path)) from error
        os.replace(partial, path)


def _has_ledger_version(path: Path) -> bool:
    """Whether the database header carries a ledger version (user_version > 0).

    Read from the header bytes, before SQLite opens the file: opening a foreign
    database would switch it to WAL mode for good.
    """
    header = read_head(path, 64)
    return len(header) == 64 and int.from_bytes(header[60:64], "big") > 0


def is_job_file(path: Path) -> bool:
    """Whether ``path`` is a SQLite file (a job ledger, or a foreign database).

    Checked before SQLite opens a path, because SQLite turns an empty file
    into a database of its own.
    """
    return read_head(path, len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


class Ledger:
    """An open job ledger. Use ``Ledger.create`` or ``Ledger.open``."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        #: Serialises use of the connection between this thread and the writer.
        self._db_lock = threading.Lock()
        self._pending: list[Outcome] = []
        self._last_commit = time.monotonic()
        #: Commits batches (see _encode_batch); started by the first one.
        self._writer: Background[_Batch] | None = None
        # The database itself is locked (a symlink or hard link to it names
        # the same lock); the note beside its real path says who holds it.
        self._lock = FileLock(path, note=Path(f"{os.path.realpath(path)}.lock"))
        self._run_id: int | None = None

    # --- opening ------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | Path, fingerprint: Fingerprint, spec: JobSpec | None = None
    ) -> Ledger:
        """Create a new ledger; refuses to overwrite an existing job file."""
        path = Path(path)
        if path.exists():
            raise CheckpointError(f"job file {path} already exists")
        # Built under a temporary name and renamed into place, so a process
        # killed while creating it never leaves a half-made job file behind.
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        _create_private(partial, path)
        try:
            db = sqlite3.connect(partial)
            try:
                ledger = cls(partial, db)
                ledger._migrate()
                with db:
                    stored = fingerprint.as_dict()
                    if spec is not None:
                        stored[_SPEC_KEY] = json.dumps(asdict(spec), default=str)
                    db.executemany(
                        "INSERT INTO job(key, value) VALUES (?, ?)", stored.items()
                    )
            finally:
                db.close()
            _place_without_replacing(partial, path)
        except FileExistsError:
            raise CheckpointError(
                f"job file {path} was created by another process just now; run "
                "the command again to continue it (or wait for that process)"
            ) from None
        except sqlite3.Error as error:
            raise _ledger_error(path, error) from error
        finally:
            partial.unlink(missing_ok=True)
        return cls(path, _connect(path))

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        """Open an existing ledger (for resume, status, report)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(
                f"job file {path} not found; `cognito-migrate run` prints the job "
                "file it creates"
            )
        if is_job_file(path) and not _has_ledger_version(path):
            raise CheckpointError(
                f"{path} is not a cognito-migrate job file (no ledger in it)"
            )
        if not is_job_file(path):
            raise CheckpointError(
                f"{path} is not a cognito-migrate job file, or it is corrupt (it "
                "is not a SQLite database; it was left as it was)"
            )
        ledger = cls(path, _connect(path))
        try:
            ledger._check_version()
            ledger._check_integrity()
            ledger._check_statuses()
        except sqlite3.Error as error:
            ledger.close()
            raise _ledger_error(path, error) from error
        except CheckpointError:
            ledger.close()
            raise
        return ledger

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for version in range(current + 1, LEDGER_VERSION + 1):
            with self._db:
                self._db.executescript(_MIGRATIONS[version])
                self._db.execute(f"PRAGMA user_version = {version}")

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise CheckpointError(
                f"{self.path} is not a cognito-migrate job file (no ledger in it)"
            )
        if version > LEDGER_VERSION:
            raise CheckpointError(
                f"{self.path} was written by a newer cognito-migrate (ledger version "
                f"{version}; this one reads up to {LEDGER_VERSION}): upgrade "
                "cognito-bulk-migrate to resume it"
            )
        if version < LEDGER_VERSION:
            self._migrate()

    def _check_integrity(self) -> None:
        problems = [r[0] for r in self._db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise CheckpointError(
                f"{self.path} is not a cognito-migrate job file, or it is corrupt "
                f"({'; '.join(problems)})"
            )

    def _check_statuses(self) -> None:
        # One look at the status index: a ledger edited by hand (or by a newer
        # version) must not turn into a traceback in a report or resume.
        known = {status.value for status in Status}
        found = {
            row[0] for row in self._db.execute("SELECT DISTINCT status FROM outcomes")
        }
        unknown = sorted(str(value) for value in found - known)
        if unknown:
            raise CheckpointError(
                f"{self.path} holds outcomes with an unknown status "
                f"({', '.join(unknown)}): it was edited, or written by a newer "
                "cognito-migrate"
            )

    # --- job info -------------------------------------------------------------

    def info(self) -> dict[str, str]:
        """Everything in the job table (fingerprint and descriptive fields)."""
        rows = self._settled().execute("SELECT key, value FROM job").fetchall()
        return {key: value for key, value in rows}

    def spec(self) -> JobSpec:
        """What this job is (kind, pool, files, options), as it was created."""
        info = self.info()
        try:
            if _SPEC_KEY in info:
                fields = json.loads(info[_SPEC_KEY])
                if not isinstance(fields, dict):
                    raise TypeError("not an object")
                spec = JobSpec(**fields)
            else:
                spec = _legacy_spec(info)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"{self.path}: the job description in it is damaged ({error}); "
                "it cannot be resumed or reported from"
            ) from None
        wrong = _mistyped_fields(spec)
        if wrong:
            raise CheckpointError(
                f"{self.path}: the job description in it is damaged (wrong type "
                f"for {', '.join(wrong)}); it cannot be resumed or reported from"
            )
        if not isinstance(spec.pool_id, str) or not spec.pool_id:
            raise CheckpointError(
                f"{self.path}: the job description in it names no user pool; it "
                "was edited, and cannot be resumed or reported from"
            )
        return spec

    def check_fingerprint(self, fingerprint: Fingerprint) -> None:
        """Refuse to continue a job with different input, mapping, pool or options."""
        stored = self.info()
        changed = [
            f"{_PART_NAMES[key]} ({_difference(key, stored.get(key), value)})"
            for key, value in fingerprint.as_dict().items()
            if stored.get(key) != value
        ]
        if changed:
            raise CheckpointError(
                f"job file {self.path} was made for a different job: "
                + ", ".join(changed)
                + " changed since. Resume with the same files and options, or "
                "start a new job with another --job file"
            )

    # --- locking ----------------------------------------------------------------

    def lock(self) -> None:
        """Take the job for this process; refuse if another process holds it."""
        self._lock.acquire(
            lambda holder: CheckpointError(
                f"job {self.path} is being run by {holder}; wait for it to finish "
                "or stop it first (two processes on one job would send twice)"
            )
        )

    def holder(self) -> str | None:
        """Who holds the job right now, or None when no process runs it."""
        return self._lock.holder()

    # --- runs -------------------------------------------------------------------

    def start_run(self, command: str) -> None:
        """Record that a run (or resume) started now."""
        with self._writing():
            cursor = self._db.execute(
                "INSERT INTO runs(started_at, pid, command) VALUES (?, ?, ?)",
                (time.time(), os.getpid(), command),
            )
            self._run_id = cursor.lastrowid

    def end_run(self, result: str) -> None:
        """Record how the current run ended."""
        self.flush()
        if self._run_id is None:
            return
        with self._writing():
            self._db.execute(
                "UPDATE runs SET ended_at = ?, result = ? WHERE id = ?",
                (time.time(), result, self._run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        """Every run of this job, oldest first."""
        cursor = self._settled().execute(
            "SELECT id, started_at, ended_at, pid, command, result "
            "FROM runs ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # --- outcomes -----------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        """Queue one outcome; committed in batches (see COMMIT_EVERY)."""
        self._pending.append(outcome)
        if (
            len(self._pending) >= COMMIT_EVERY
            or time.monotonic() - self._last_commit >= COMMIT_INTERVAL
        ):
            self._hand_over()

    def record_frame(self, frame: pl.DataFrame) -> None:
        """Queue outcomes decided without a call, as one batch.

        ``frame`` holds report columns by name (``row`` and ``status`` at
        least, lists of names as lists); the others default to empty. The
        writer thread encodes and commits it like any batch.
        """
        if frame.is_empty():
            return
        self._hand_over()
        self._put((time.time(), frame))

    def commit_due(self) -> None:
        """Hand pending outcomes to the writer once they are COMMIT_INTERVAL old.

        Called while the run waits: without it, at low rates an outcome would
        wait for the next one to be committed.
        """
        if self._pending and time.monotonic() - self._last_commit >= COMMIT_INTERVAL:
            self._hand_over()

    def prior_attempts(
        self, *, retry_failed: bool = False, retry_conflicts: bool = False
    ) -> dict[int, int]:
        """Attempts already made for the rows a resume sends again, by row."""
        final = _final(retry_failed=retry_failed, retry_conflicts=retry_conflicts)
        marks = ",".join("?" * len(final))
        cursor = self._settled().execute(
            f"SELECT row, attempts FROM outcomes WHERE attempts > 0 "
            f"AND status NOT IN ({marks})",
            final,
        )
        return dict(cursor.fetchall())

    def flush(self) -> None:
        """Return once every recorded outcome is committed.

        Raises the writer's error (a FatalError: disk full, read-only) if a
        commit failed. Interrupted (Ctrl-C) while it waits, the writer still
        commits what it was handed; ``close`` waits for that.
        """
        self._hand_over()
        if self._writer is not None:
            with self._writer_errors():
                self._writer.wait()

    def _hand_over(self) -> None:
        """Encode the pending outcomes and queue them for the writer thread.

        Encoding happens here, not in the writer: it holds the GIL either way
        (one call into the C JSON encoder), and the writer then holds it for
        microseconds only.
        """
        if self._pending:
            # Queued before they are dropped from pending: an interrupt in
            # between writes them twice (harmless, the row is the key), never
            # not at all.
            self._put((time.time(), _encode_outcomes(self._pending)))
            self._pending = []
        self._last_commit = time.monotonic()

    def _put(self, batch: _Batch) -> None:
        if self._writer is None:
            try:
                self._writer = Background(
                    self._write, name="migrate-ledger", queued=QUEUED_BATCHES
                )
            except BackgroundError as error:
                raise FatalError(
                    f"cannot start the job ledger's writer thread ({error}); "
                    f"run `cognito-migrate resume {self.path}` to continue"
                ) from error
        with self._writer_errors():
            self._writer.put(batch)

    def _write(self, batch: _Batch) -> None:
        """Commit one batch (in the writer thread), encoding it if it is a frame.

        A frame is encoded here: polars does it without the GIL, beside the
        run, where the coordinator would spend its own time (a --diff run
        decides hundreds of thousands of rows without a call).
        """
        recorded, outcomes = batch
        try:
            if isinstance(outcomes, str):
                encoded: tuple[str, list[Any]] | None = (
                    _batch_insert(_BATCH_FIELDS, ()),
                    [outcomes, recorded],
                )
                frame = None
            else:
                frame = (
                    outcomes
                    if isinstance(outcomes, pl.DataFrame)
                    else _outcome_frame(outcomes)
                )
                encoded = _encode_batch(frame, recorded)
            with self._writing():
                if encoded is not None:
                    self._db.execute(*encoded)
                elif frame is not None:
                    self._db.executemany(_UPSERT, _exact_rows(frame, recorded))
        except FatalError:
            raise
        except Exception as error:  # a bug: stop the job, never hang it
            raise FatalError(
                f"the job ledger writer failed ({error!r}); run "
                f"`cognito-migrate resume {self.path}` to continue"
            ) from error

    @contextlib.contextmanager
    def _writer_errors(self) -> Iterator[None]:
        """The writer's failures as the job-wide error they are."""
        try:
            yield
        except BackgroundError as error:
            raise FatalError(
                f"the job ledger's writer thread ended; run "
                f"`cognito-migrate resume {self.path}` to continue"
            ) from error

    def done_rows(
        self, *, retry_failed: bool = False, retry_conflicts: bool = False
    ) -> pl.Series:
        """Row numbers a resume must not send again, in order (Int64).

        SQLite joins them into one text and polars splits it: a million rows
        in 0.25 s instead of 0.46 s as Python ints, and 8 bytes a row held
        instead of a Python int's 28 plus the list's 8.
        """
        final = _final(retry_failed=retry_failed, retry_conflicts=retry_conflicts)
        marks = ",".join("?" * len(final))
        (text,) = (
            self._settled()
            .execute(
                f"SELECT group_concat(row) FROM outcomes WHERE status IN ({marks})",
                final,
            )
            .fetchone()
        )
        if text is None:
            return pl.Series("row", [], dtype=pl.Int64)
        # An aggregate's order is not promised by SQLite: sorted here.
        return pl.Series("row", [text]).str.split(",").explode().cast(pl.Int64).sort()

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        cursor = self._settled().execute(
            "SELECT status, COUNT(*) FROM outcomes GROUP BY 1"
        )
        return {status: count for status, count in cursor}

    def error_counts(
        self, *, statuses: Collection[str] | None = None
    ) -> dict[str, int]:
        """Rows by error code, for rows that have one (of ``statuses``, if given)."""
        where, params = "", []
        if statuses is not None:
            where = f" AND status IN ({','.join('?' * len(statuses))})"
            params = sorted(statuses)
        cursor = self._settled().execute(
            "SELECT error_code, COUNT(*) FROM outcomes WHERE error_code IS NOT NULL"
            f"{where} GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
        return {code: count for code, count in cursor}

    def problem_counts(self) -> dict[str, int]:
        """Invalid rows by problem code (the first problem of each row)."""
        cursor = self._settled().execute(
            "SELECT error_code, COUNT(*) FROM outcomes WHERE status = ? "
            "AND error_code IS NOT NULL GROUP BY 1",
            (Status.INVALID.value,),
        )
        return {code: count for code, count in cursor}

    def activity(self, since: float = 0.0) -> tuple[float | None, float | None, int]:
        """(first, last) time an outcome of a sent row was recorded, and how many.

        Only rows that reached Cognito count, so the rate shown by ``status`` is
        the achieved request rate, not the speed of skipping invalid rows.
        ``since`` (a time.time()) leaves out rows recorded before it.
        """
        sql = (
            "SELECT MIN(recorded), MAX(recorded), COUNT(*) FROM outcomes "
            "WHERE attempts > 0 AND recorded >= ?"
        )
        row = self._settled().execute(sql, (since,)).fetchone()
        return row[0], row[1], row[2]

    def outcomes(
        self, *, first_row: int, last_row: int, values: bool = False
    ) -> Iterator[sqlite3.Row]:
        """Stored outcomes of rows first_row..last_row, in row order.

        Each row is named by the report's columns (``row["status"]``), in
        their order; ``changed`` and ``deleted`` are JSON lists. With
        ``values``, also ``before`` and ``sent`` (JSON objects, or None).
        """
        columns = [*REPORT_COLUMNS, *(("before", "sent") if values else ())]
        cursor = self._settled().cursor()
        cursor.row_factory = sqlite3.Row
        yield from cursor.execute(
            f"SELECT {', '.join(columns)} FROM outcomes "
            "WHERE row BETWEEN ? AND ? ORDER BY row",
            (first_row, last_row),
        )

    def outcome_frame(
        self,
        *,
        first_row: int,
        last_row: int = LAST_ROW,
        values: bool = False,
        limit: int | None = None,
    ) -> pl.DataFrame:
        """Stored outcomes of rows first_row..last_row (the first ``limit`` of
        them), in row order, as a frame: what ``outcomes`` yields, as columns.

        SQLite writes the rows as JSON lines in one step and polars reads
        them (both without the GIL): a report of a million rows read them in
        about 1.6 s instead of 3.8 s through Python row objects. json_object
        keeps a NUL in a string (escaped), unlike the JSON input of a write.
        """
        columns = [*REPORT_COLUMNS, *(("before", "sent") if values else ())]
        line = ", ".join(f"'{name}', {name}" for name in columns)
        rows = "outcomes WHERE row BETWEEN ? AND ?"
        if limit is not None:
            # A subquery only where it is needed: it costs a third more.
            rows = f"(SELECT * FROM {rows} ORDER BY row LIMIT {int(limit)})"
        (text,) = (
            self._settled()
            .execute(
                f"SELECT group_concat(json_object({line}), char(10)) FROM {rows}",
                (first_row, last_row),
            )
            .fetchone()
        )
        schema = {name: _STORED_SCHEMA[name] for name in columns}
        if text is None:
            return pl.DataFrame(schema=schema)
        # An aggregate's order is not promised by SQLite: sorted here.
        return pl.read_ndjson(text.encode(), schema=schema).sort("row")

    def value_attributes(self) -> list[str]:
        """Attributes whose values the job recorded (before or sent), by name."""
        cursor = self._settled().execute(
            "SELECT key FROM outcomes, json_each(outcomes.before) "
            "WHERE outcomes.before IS NOT NULL "
            "UNION SELECT key FROM outcomes, json_each(outcomes.sent) "
            "WHERE outcomes.sent IS NOT NULL ORDER BY 1"
        )
        return [name for (name,) in cursor]

    def updated_count(self) -> int:
        """How many rows `updated_rows` yields."""
        (count,) = (
            self._settled()
            .execute(
                f"SELECT COUNT(*) FROM outcomes WHERE {_CHANGED_A_USER}",
                (Status.UPDATED.value, Status.FAILED_RETRYABLE.value),
            )
            .fetchone()
        )
        return int(count)

    def earlier_values(
        self, *, retry_failed: bool = False, retry_conflicts: bool = False
    ) -> dict[int, Outcome]:
        """What earlier runs recorded of the rows a run sends again, by row:
        their names, values sent and before-values (rows that have some).

        A row tried before may have been changed by that try; its new outcome
        keeps what it did (see pipeline._recorder).
        """
        final = _final(retry_failed=retry_failed, retry_conflicts=retry_conflicts)
        marks = ",".join("?" * len(final))
        cursor = self._settled().execute(
            "SELECT row, user, status, changed, deleted, sent, before FROM outcomes "
            f"WHERE before IS NOT NULL AND status NOT IN ({marks})",
            final,
        )
        earlier: dict[int, Outcome] = {}
        for row, user, status, changed, deleted, sent, before in cursor:
            earlier[row] = Outcome(
                row=row,
                user=user,
                status=Status(status),
                changed=tuple(json.loads(changed or "[]")),
                deleted=tuple(json.loads(deleted or "[]")),
                sent=json.loads(sent) if sent else None,
                before=json.loads(before),
            )
        return earlier

    def updated_rows(self) -> Iterator[tuple[int, str, str, dict[str, str], Any]]:
        """(row, user, username, sent, before) of every row that changed a user.

        That is every updated row, a row whose update went through before
        its delete failed or the job stopped (it records what it set), and a
        failed_retryable row whose write may have been applied (it records
        what it sent). In row order. ``before`` is None when the job ran
        with --no-read-before-write and without a snapshot.
        """
        cursor = self._settled().execute(
            "SELECT row, user, username, sent, before FROM outcomes "
            f"WHERE {_CHANGED_A_USER} ORDER BY row",
            (Status.UPDATED.value, Status.FAILED_RETRYABLE.value),
        )
        for row, user, username, sent, before in cursor:
            try:
                values = json.loads(sent) if sent else {}
                previous = json.loads(before) if before else None
            except ValueError:
                raise CheckpointError(
                    f"{self.path}: the outcome of row {row} is damaged (not JSON); "
                    "the job file was edited"
                ) from None
            yield row, user, username or user, values, previous

    def all_outcomes(self) -> Iterator[sqlite3.Row]:
        """Every stored outcome in row order, named as ``outcomes`` names them."""
        cursor = self._settled().cursor()
        cursor.row_factory = sqlite3.Row
        cursor.execute(f"SELECT {', '.join(REPORT_COLUMNS)} FROM outcomes ORDER BY row")
        while rows := cursor.fetchmany(10_000):
            yield from rows

    # --- closing ----------------------------------------------------------------

    def close(self) -> None:
        """Flush, release the lock and close the database."""
        try:
            if self._writer is None or self._writer.error is None:
                self.flush()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._db.close()
            self._lock.release()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _settled(self) -> sqlite3.Connection:
        """The connection, once everything recorded so far is committed.

        Reads come from the recording thread, so once the writer is idle it
        stays idle while they run. A writer that failed stopped writing: the
        reads see what it committed.
        """
        with contextlib.suppress(FatalError):
            self.flush()
        return self._db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            with self._db_lock, self._db:
                yield
        except sqlite3.Error as error:
            raise _write_error(self.path, error) from error


_UPSERT = (
    f"INSERT OR REPLACE INTO outcomes({', '.join(_OUTCOME_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_OUTCOME_COLUMNS))})"
)


#: An outcome's fields in _OUTCOME_COLUMNS order, less ``recorded``.
_BATCH_FIELDS = tuple(name for name in _OUTCOME_COLUMNS if name != "recorded")
_NAMES = pl.List(pl.String)
_KINDS: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "text": pl.String(),
    "names": _NAMES,
    "real": pl.Float64(),
    "json": pl.String(),
}
#: A batch as the writer encodes it: every field, in order, lists of names as
#: lists, ``sent`` and ``before`` as JSON text.
_FRAME_SCHEMA: dict[str, pl.DataType] = {
    name: _KINDS[kind]
    for name, kind in {**OUTCOME_COLUMNS, **LEDGER_ONLY_COLUMNS}.items()
    if name != "recorded"
}
#: Every column as stored (outcome_frame): lists of names as JSON text.
_STORED_SCHEMA: dict[str, pl.DataType] = {
    name: pl.String() if kind == "names" else _KINDS[kind]
    for name, kind in {**OUTCOME_COLUMNS, **LEDGER_ONLY_COLUMNS}.items()
}
#: What a ledger row holds where an outcome decided without a call says nothing.
_DEFAULTS: dict[str, Any] = {
    "attempts": 0,
    **{name: [] for name, kind in OUTCOME_COLUMNS.items() if kind == "names"},
}
#: ``sent`` and ``before`` as compact JSON text.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: Compact, and without the check for circular references: an outcome holds
#: strings, numbers, tuples of strings and flat dicts of strings, nothing more.
#: Not ASCII-only, so that a lone surrogate stays visible (see _encode_outcomes).
_BATCH_ENCODER = json.JSONEncoder(
    check_circular=False, ensure_ascii=False, separators=(",", ":")
)


#: (when recorded, outcomes): sent outcomes as JSON (see _encode_outcomes) or,
#: holding a NUL or a lone surrogate, as Outcome objects; or a frame of outcome
#: columns (record_frame), which the writer encodes. One time per
#: batch: ``recorded`` is at most a COMMIT_INTERVAL late.
_Batch = tuple[float, str | list[Outcome] | pl.DataFrame]

_outcome_fields = operator.attrgetter(*_BATCH_FIELDS)


def _encode_outcomes(outcomes: list[Outcome]) -> str | list[Outcome]:
    """Sent outcomes as one JSON array of arrays (one call into the C encoder).

    SQLite's JSON functions cut a string at a NUL character, and a lone
    surrogate (possible in an error message) is not UTF-8: such a batch stays
    Outcome objects, which the writer stores by the exact path.
    """
    text = _BATCH_ENCODER.encode(list(map(_outcome_fields, outcomes)))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return outcomes
    return outcomes if "\\u0000" in text else text


def _outcome_frame(outcomes: list[Outcome]) -> pl.DataFrame:
    """Outcome objects as a batch frame (_FRAME_SCHEMA).

    Polars strings are UTF-8, so a lone surrogate (possible in an error
    message, never seen in real data) becomes '?' here, as SQLite could not
    store it as text either.
    """
    columns: dict[str, list[Any]] = {
        name: [getattr(outcome, name) for outcome in outcomes] for name in _BATCH_FIELDS
    }
    for name, kind in {**OUTCOME_COLUMNS, **LEDGER_ONLY_COLUMNS}.items():
        if kind == "names":
            columns[name] = [list(names) for names in columns[name]]
        elif kind == "json":
            columns[name] = [
                None if v is None else _JSON.encode(v) for v in columns[name]
            ]
    try:
        return pl.DataFrame(columns, schema=_FRAME_SCHEMA)
    except UnicodeEncodeError:
        return pl.DataFrame(_valid(columns), schema=_FRAME_SCHEMA)


def _valid(value: Any) -> Any:
    """``value`` with every string in it valid UTF-8 (a lone surrogate: '?')."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _valid(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid(item) for item in value]
    return value


def _complete(frame: pl.DataFrame) -> pl.DataFrame:
    """Every batch field in order; what a frame lacks, empty (see _DEFAULTS)."""
    return frame.select(
        pl.col(name).cast(dtype)
        if name in frame.columns
        else pl.lit(_DEFAULTS.get(name), dtype=dtype).alias(name)
        for name, dtype in _FRAME_SCHEMA.items()
    )


def _encode_batch(frame: pl.DataFrame, recorded: float) -> tuple[str, list[Any]] | None:
    """A batch as (statement, parameters) for the batch insert; None for NUL.

    The columns that vary go in one JSON array of arrays, written by polars;
    a column with one value for the whole batch (a run's decided rows share
    their time, attempts, empty lists, often their status) is a parameter, not
    parsed again on every row: measured, a million decided rows cost SQLite
    2.7 s instead of 4.8 s.

    SQLite's JSON functions cut a string at a NUL character (a NUL can come
    from the input file, as a user key): a batch holding one takes the exact
    path, one row tuple per outcome (see _exact_rows). Looked for in the JSON
    text (one search), not in every column (measured: 0.25 s of a million
    rows); an escaped backslash before "u0000" is taken for one too, and
    stored by the exact path as well. Fixed values are parameters, which
    SQLite stores whole.
    """
    frame = _complete(frame)
    counts = frame.select(pl.all().n_unique()).row(0, named=True)
    varying = tuple(name for name in _BATCH_FIELDS if counts[name] > 1 or name == "row")
    fixed = {
        name: _JSON.encode(value) if isinstance(value, list) else value
        for name, value in frame.select(pl.all().first()).row(0, named=True).items()
        if name not in varying
    }
    rows = frame.select(
        pl.concat_str(
            pl.lit("["),
            pl.concat_str([_json_value(name) for name in varying], separator=","),
            pl.lit("]"),
        )
    ).to_series()
    text = f"[{rows.str.join(',').item()}]"
    if "\\u0000" in text:
        return None
    return _batch_insert(varying, tuple(fixed)), [text, recorded, *fixed.values()]


def _json_value(name: str) -> pl.Expr:
    """A column's values as JSON text, as polars writes them (null: null)."""
    return pl.struct(name).struct.json_encode().str.slice(len(name) + 4).str.head(-1)


def _names_json() -> list[pl.Expr]:
    """Each list-of-names column as JSON text, as the ledger stores it."""
    return [
        _json_value(name).alias(name)
        for name, kind in OUTCOME_COLUMNS.items()
        if kind == "names"
    ]


def _exact_rows(frame: pl.DataFrame, recorded: float) -> Iterator[tuple[Any, ...]]:
    """A batch as row tuples for _UPSERT (lists of names as JSON text)."""
    frame = _complete(frame).with_columns(
        *_names_json(), pl.lit(recorded).alias("recorded")
    )
    return frame.select(_OUTCOME_COLUMNS).iter_rows()


@functools.lru_cache(maxsize=64)
def _batch_insert(varying: tuple[str, ...], fixed: tuple[str, ...]) -> str:
    """One statement that stores a whole batch handed over as one JSON array.

    ``varying`` fields come from each row's array, in that order (?1 is an
    array of arrays), ``fixed`` ones are parameters (?3...), ``recorded`` is
    ?2. SQLite unpacks the batch in one step, which runs without the GIL, so
    the run's threads barely feel the ledger. ``json_extract`` gives scalars
    as SQL values, containers as JSON text and a JSON null as NULL.
    MATERIALIZED (SQLite 3.35+) keeps each row's JSON as text, parsed once per
    row (SQLite caches the parse for the other columns), instead of rendered
    again for every column.
    """
    values = [
        "?2"
        if name == "recorded"
        else f"json_extract(o, '$[{varying.index(name)}]')"
        if name in varying
        else f"?{3 + fixed.index(name)}"
        for name in _OUTCOME_COLUMNS
    ]
    materialized = "MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35) else ""
    return (
        f"WITH batch(o) AS {materialized}(SELECT value FROM json_each(?1)) "
        f"INSERT OR REPLACE INTO outcomes({', '.join(_OUTCOME_COLUMNS)}) "
        f"SELECT {', '.join(values)} FROM batch"
    )


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (not a power cut); FULL
        # would fsync every batch for no benefit to a resumable job.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as error:
        raise _ledger_error(path, error) from error
    try:
        db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')")
    except sqlite3.OperationalError as error:
        db.close()
        # Found before the first call, not at the first commit.
        raise CheckpointError(
            f"this Python's SQLite ({sqlite3.sqlite_version}) cannot run the job "
            f"ledger ({error}); it needs SQLite's JSON functions, built in since "
            "SQLite 3.38: use a Python linked with a newer SQLite"
        ) from error
    return db


def _ledger_error(path: Path, error: sqlite3.Error) -> CheckpointError:
    text = str(error)
    if "file is not a database" in text or "malformed" in text:
        return CheckpointError(
            f"{path} is not a cognito-migrate job file, or it is corrupt ({text})"
        )
    if "readonly" in text or "unable to open" in text:
        return CheckpointError(
            f"cannot open the job file {path} for writing ({text}); check the "
            "directory's permissions or pass --job with another path"
        )
    return CheckpointError(f"job file {path}: {text}")


def _write_error(path: Path, error: sqlite3.Error) -> FatalError:
    text = str(error)
    if "full" in text or getattr(error, "sqlite_errorcode", None) == 13:
        why = "the disk is full; free some space"
    elif isinstance(error, sqlite3.OperationalError) and "readonly" in text:
        why = "it became read-only; restore write access"
    else:
        why = f"SQLite said: {text}"
    return FatalError(
        f"cannot write the job ledger {path}: {why}, then run "
        f"`cognito-migrate resume {path}`",
        aws_error_code=errno.errorcode.get(errno.ENOSPC) if "full" in text else None,
    )
