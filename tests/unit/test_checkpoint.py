"""The SQLite job ledger: fingerprint, outcomes, locking, and every way it breaks."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from migrate.checkpoint import (
    LEDGER_VERSION,
    Fingerprint,
    Ledger,
    make_fingerprint,
)
from migrate.errors import CheckpointError, FatalError
from migrate.records import (
    LEDGER_ONLY_COLUMNS,
    OUTCOME_COLUMNS,
    REPORT_COLUMNS,
    JobSpec,
    Outcome,
    Status,
)
from migrate.report import REPORT_SCHEMA
from migrate.status import job_status, render
from tests.conftest import BeforeBatchWrites

FP = Fingerprint(input_sha256="a" * 64, mapping_sha256="b" * 64, pool="p", options="{}")


def outcome(row: int, status: Status = Status.UPDATED) -> Outcome:
    return Outcome(
        row=row,
        user=f"u{row}",
        username=f"u{row}",
        status=status,
        changed=("custom:plan",),
        attempts=1,
        finished_at="2026-11-26T00:00:00Z",
    )


def test_a_new_ledger_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    spec = JobSpec(kind="real", pool_id="p", input_path="/data/in.csv", rate=2.5)
    with Ledger.create(path, FP, spec) as ledger:
        ledger.record(outcome(1))
        ledger.flush()
    with Ledger.open(path) as ledger:
        assert ledger.spec() == spec
    for name in ("job.sqlite", "job.sqlite-wal"):
        if (tmp_path / name).exists():
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == LEDGER_VERSION
    db.close()


def test_outcomes_survive_reopen_and_done_rows_follow_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    with Ledger.create(path, FP) as ledger:
        for row, status in enumerate(
            [
                Status.UPDATED,
                Status.FAILED,
                Status.FAILED_RETRYABLE,
                Status.NOT_ATTEMPTED,
                Status.INVALID,
                Status.SKIPPED,
            ],
            start=1,
        ):
            ledger.record(outcome(row, status))
    with Ledger.open(path) as ledger:
        assert sorted(ledger.done_rows()) == [1, 2, 5, 6]
        assert sorted(ledger.done_rows(retry_failed=True)) == [1, 5, 6]
        assert ledger.counts()["updated"] == 1
        stored = list(ledger.outcomes(first_row=1, last_row=2))
        assert stored[0][:4] == (1, "u1", "u1", "updated")


def test_done_rows_come_in_order_whatever_the_order_recorded(tmp_path: Path) -> None:
    rows = [9, 3, 10_000_000_000, 1, 42, 7]
    with Ledger.create(tmp_path / "job.sqlite", FP) as ledger:
        assert ledger.done_rows().to_list() == []
        for row in rows:
            ledger.record(outcome(row, Status.UPDATED))
        ledger.record(outcome(5, Status.FAILED_RETRYABLE))
        done = ledger.done_rows()
    assert done.dtype == pl.Int64
    assert done.to_list() == sorted(rows)


def test_a_later_outcome_replaces_an_earlier_one(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(outcome(7, Status.FAILED_RETRYABLE))
        ledger.flush()
        ledger.record(outcome(7, Status.UPDATED))
        ledger.flush()
        assert ledger.counts() == {"updated": 1}


def test_access_tokens_are_not_a_column(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP):
        pass
    db = sqlite3.connect(tmp_path / "j")
    columns = [r[1] for r in db.execute("PRAGMA table_info(outcomes)")]
    db.close()
    assert not [c for c in columns if "token" in c.lower()]


def test_fingerprint_mismatch_names_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    other = Fingerprint(
        input_sha256="c" * 64, mapping_sha256="b" * 64, pool="p", options='{"x": 1}'
    )
    with Ledger.open(path) as ledger, pytest.raises(CheckpointError) as error:
        ledger.check_fingerprint(other)
    assert str(error.value) == (
        f"job file {path} was made for a different job: the input file's content "
        "(sha256 aaaaaaaaaaaa, now cccccccccccc), the options that change what is "
        "sent (x: unset, now 1) changed since. Resume with the same files and "
        "options, or start a new job with another --job file"
    )


def test_fingerprint_hashes_file_contents(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    m = tmp_path / "m.toml"
    a.write_text("x\n1\n")
    m.write_text("[user]\n")
    one = make_fingerprint(input_path=a, mapping_path=m, pool="p", options={})
    a.write_text("x\n2\n")
    two = make_fingerprint(input_path=a, mapping_path=m, pool="p", options={})
    assert one.input_sha256 != two.input_sha256
    assert one.mapping_sha256 == two.mapping_sha256


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as error:
        Ledger.open(tmp_path / "nope.sqlite")
    assert "not found" in str(error.value)


def test_corrupt_job_file(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    path.write_bytes(b"this is not sqlite at all, just text" * 100)
    with pytest.raises(CheckpointError) as error:
        Ledger.open(path)
    assert str(error.value).startswith(
        f"{path} is not a cognito-migrate job file, or it is corrupt"
    )


@pytest.mark.parametrize("content", [b"", b"x", b"SQLite format 2\x00"])
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    # SQLite would turn an empty file into a database of its own.
    path = tmp_path / "job.sqlite"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a SQLite database"):
        Ledger.open(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.sqlite"]


def test_the_lock_file_is_owner_only(tmp_path):
    path = tmp_path / "job.sqlite"
    with Ledger.create(path, FP) as ledger:
        ledger.lock()
        assert Path(f"{path}.lock").stat().st_mode & 0o777 == 0o600


def test_a_job_file_written_before_job_specs_reads_back_as_one(tmp_path):
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    legacy = {
        "pool_id": "us-east-1_X",
        "input_path": "/d/in.csv",
        "diff": "true",
        "total_rows": "12",
        "schema": '{"UserPool": {}}',
        "region": "",
    }
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO job VALUES (?, ?)", legacy.items())
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.spec() == JobSpec(
            kind="real",
            pool_id="us-east-1_X",
            input_path="/d/in.csv",
            diff=True,
            total_rows=12,
            schema={"UserPool": {}},
        )


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ("{not json", "the job description in it is damaged"),
        ("[1, 2]", "the job description in it is damaged"),
        ('{"kind": "real", "pool_id": ""}', "names no user pool"),
        ('{"kind": "real", "pool_id": "p", "extra": 1}', "is damaged"),
    ],
)
def test_a_damaged_job_description_is_a_clear_error(tmp_path, stored, message):
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP, JobSpec(kind="real", pool_id="p")).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE job SET value = ? WHERE key = 'spec'", (stored,))
    db.close()
    with Ledger.open(path) as ledger, pytest.raises(CheckpointError, match=message):
        ledger.spec()


def test_an_unknown_status_in_the_ledger_is_refused_on_open(tmp_path):
    path = tmp_path / "job.sqlite"
    with Ledger.create(path, FP) as ledger:
        ledger.record(outcome(1))
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE outcomes SET status = 'exploded'")
    db.close()
    with pytest.raises(CheckpointError, match=r"unknown status \(exploded\)"):
        Ledger.open(path)


def test_truncated_job_file(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    with Ledger.create(path, FP) as ledger:
        for row in range(1, 2000):
            ledger.record(outcome(row))
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError) as error:
        Ledger.open(path)
    assert str(error.value).startswith(
        f"{path} is not a cognito-migrate job file, or it is corrupt"
    )


def test_a_sqlite_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t(x)")
    db.close()
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as error:
        Ledger.open(path)
    assert str(error.value) == (
        f"{path} is not a cognito-migrate job file (no ledger in it)"
    )
    # Refused before SQLite opened it: it was not switched to WAL mode.
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_a_symlink_or_hard_link_to_a_running_job_is_the_same_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    (tmp_path / "alias.sqlite").symlink_to(path)
    os.link(path, tmp_path / "hard.sqlite")
    with Ledger.open(path) as ledger:
        ledger.lock()
        for other in ("alias.sqlite", "hard.sqlite"):
            with Ledger.open(tmp_path / other) as second:
                # A hard link has its own name, so not the note: only the lock.
                assert second.holder() in (f"process {os.getpid()}", "another process")
                with pytest.raises(CheckpointError, match="is being run by"):
                    second.lock()


def test_a_planted_symlink_as_lock_note_is_not_written_through(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    Path(f"{path}.lock").symlink_to(notes)
    with Ledger.open(path) as ledger:
        ledger.lock()
    assert notes.read_text() == "mine\n"


def test_two_processes_creating_one_job_cannot_replace_each_other(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job.sqlite"
    first = Ledger.create(path, FP)
    first.record(outcome(1))
    first.close()
    # The second process looked before the first created the file.
    original_exists = Path.exists
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            Path,
            "exists",
            lambda self: False if self == path else original_exists(self),
        )
        with pytest.raises(CheckpointError, match="created by another process"):
            Ledger.create(path, FP)
    with Ledger.open(path) as ledger:
        assert ledger.counts() == {"updated": 1}


def test_a_ledger_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LEDGER_VERSION + 1}")
    db.close()
    with pytest.raises(CheckpointError) as error:
        Ledger.open(path)
    assert str(error.value) == (
        f"{path} was written by a newer cognito-migrate (ledger version "
        f"{LEDGER_VERSION + 1}; this one reads up to {LEDGER_VERSION}): upgrade "
        "cognito-bulk-migrate to resume it"
    )


def test_a_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root ignores permission bits, so simulate the EACCES the kernel would give.
    def deny(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(CheckpointError) as error:
        Ledger.create(tmp_path / "job.sqlite", FP)
    assert str(error.value) == (
        f"cannot create the job file {tmp_path / 'job.sqlite'}: permission denied; "
        "pass --job with a path in a writable directory"
    )


def test_a_full_disk_stops_the_job_with_a_resumable_error(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    ledger = Ledger.create(path, FP)
    # SQLite's own limit gives exactly the error a full disk does (SQLITE_FULL).
    ledger._db.execute("PRAGMA max_page_count = 8")

    def fill() -> None:
        for row in range(1, 100_000):
            ledger.record(
                Outcome(row=row, user="x" * 200, status=Status.UPDATED, attempts=1)
            )

    with pytest.raises(FatalError) as error:
        fill()
    assert str(error.value) == (
        f"cannot write the job ledger {path}: the disk is full; free some space, "
        f"then run `cognito-migrate resume {path}`"
    )
    ledger._pending.clear()
    ledger.close()


def test_two_processes_cannot_hold_one_job(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    first = Ledger.open(path)
    first.lock()
    second = Ledger.open(path)
    try:
        assert second.holder() == f"process {os.getpid()}"
        with pytest.raises(CheckpointError) as error:
            second.lock()
        assert str(error.value) == (
            f"job {path} is being run by process {os.getpid()}; wait for it to "
            "finish or stop it first (two processes on one job would send twice)"
        )
    finally:
        second.close()
        first.close()
    with Ledger.open(path) as third:
        assert third.holder() is None
        third.lock()


def test_create_refuses_an_existing_job(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    with pytest.raises(CheckpointError) as error:
        Ledger.create(path, FP)
    assert str(error.value) == f"job file {path} already exists"


def test_reads_see_every_outcome_recorded_before_them(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        for row in range(1, 4):
            ledger.record(outcome(row))
        # No flush: a read waits for the writer to commit what came before it.
        assert ledger.counts() == {"updated": 3}
        ledger.record(outcome(4, Status.FAILED))
        assert sorted(ledger.done_rows()) == [1, 2, 3, 4]


def test_json_columns_round_trip_through_the_batch_insert(tmp_path: Path) -> None:
    sent = {"custom:plan": "pro", "name": 'Zoë "Z" \u2603'}
    before: dict[str, str | None] = {"custom:plan": None, "name": "Zoe"}
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(
            Outcome(
                row=1,
                user="u1",
                username="u1",
                status=Status.UPDATED,
                changed=("custom:plan", "name"),
                deleted=("locale",),
                attempts=2,
                sent=sent,
                before=before,
            )
        )
        ledger.record(Outcome(row=2, user="u2", status=Status.FAILED, attempts=1))
        assert list(ledger.updated_rows()) == [(1, "u1", "u1", sent, before)]
        stored = list(ledger.outcomes(first_row=1, last_row=2))
    assert stored[0][4:6] == ('["custom:plan","name"]', '["locale"]')
    assert stored[0][8] == 2
    assert stored[1][:4] == (2, "u2", None, "failed")
    assert stored[1][4:6] == ("[]", "[]")


def test_status_rate_counts_the_latest_run_only(tmp_path: Path) -> None:
    path = tmp_path / "job.sqlite"
    spec = JobSpec(kind="real", pool_id="p", input_path="in.csv", total_rows=100)
    Ledger.create(path, FP, spec).close()
    db = sqlite3.connect(path)
    with db:
        # A first run sent 10 rows at 10/s, a day passed, a second run has sent
        # 30 rows in 10 s so far.
        db.executemany(
            "INSERT INTO runs(started_at, ended_at, pid, command, result) "
            "VALUES (?, ?, 1, 'run', ?)",
            [(1000.0, 1001.0, "interrupted"), (90000.0, None, None)],
        )
        db.executemany(
            "INSERT INTO outcomes(row, user, status, attempts, recorded) "
            "VALUES (?, ?, 'updated', 1, ?)",
            [(row, f"u{row}", 1000.0 + row / 10) for row in range(1, 11)]
            + [(row, f"u{row}", 90000.0 + (row - 10) / 3) for row in range(11, 41)],
        )
    db.close()
    with Ledger.open(path) as ledger:
        lines = render(job_status(ledger, now=lambda: 90012.0)).splitlines()
    assert "Last activity: 1970-01-02T01:00:10+00:00 (2s ago)" in lines
    assert "Achieved rate: 3.0 users/s (latest run)" in lines


def test_nul_and_lone_surrogates_are_stored_without_poisoning_the_ledger(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j"
    with Ledger.create(path, FP) as ledger:
        ledger.record(outcome(1))
        ledger.record(
            Outcome(
                row=2,
                user="a\x00b",
                status=Status.FAILED,
                error_code="InvalidParameterException",
                error_message="bad \ud83d value",
                attempts=1,
            )
        )
    with Ledger.open(path) as ledger:
        stored = list(ledger.all_outcomes())
    assert stored[0][:4] == (1, "u1", "u1", "updated")
    # The NUL is kept; the lone surrogate, which SQLite cannot store as text,
    # becomes "?".
    assert stored[1][1] == "a\x00b"
    assert stored[1][7] == "bad ? value"


def test_flush_waits_for_a_batch_queued_just_before_a_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("migrate.checkpoint.COMMIT_INTERVAL", 3600.0)
    path = tmp_path / "j"
    ledger = Ledger.create(path, FP)
    real = ledger._db
    ledger._db = BeforeBatchWrites(real, lambda: time.sleep(0.5))  # type: ignore[assignment]
    queue_put = queue.Queue.put
    fired: list[bool] = []

    def put_then_ctrl_c(
        self: queue.Queue[Any], item: Any, block: bool = True, timeout: Any = None
    ) -> None:
        queue_put(self, item, block, timeout)
        if item is not None and not fired:
            fired.append(True)
            raise KeyboardInterrupt

    # The Ctrl-C lands just after the writer's queue took the batch.
    monkeypatch.setattr(queue.Queue, "put", put_then_ctrl_c)
    ledger.record(outcome(1))
    with pytest.raises(KeyboardInterrupt):
        ledger.flush()
    ledger.record(outcome(2))
    ledger.flush()
    # Committed by the time flush returns, as another process sees it.
    other = sqlite3.connect(path)
    assert other.execute("SELECT row FROM outcomes ORDER BY row").fetchall() == [
        (1,),
        (2,),
    ]
    other.close()
    ledger._db = real
    ledger.close()


def test_a_writer_thread_that_cannot_start_stops_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    path = tmp_path / "j"
    ledger = Ledger.create(path, FP)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    ledger.record(outcome(1))
    with pytest.raises(FatalError) as error:
        ledger.flush()
    assert str(error.value) == (
        "cannot start the job ledger's writer thread (can't start new thread); "
        f"run `cognito-migrate resume {path}` to continue"
    )
    ledger._pending.clear()
    ledger.close()


def test_the_outcome_columns_are_declared_once(tmp_path: Path) -> None:
    # records.OUTCOME_COLUMNS names what an Outcome carries, the report's
    # columns and the ledger's table; a column added there reaches all three.
    names = {f.name for f in dataclasses.fields(Outcome)}
    assert names == {*OUTCOME_COLUMNS, *LEDGER_ONLY_COLUMNS} - {"recorded"}
    assert tuple(REPORT_SCHEMA) == REPORT_COLUMNS == tuple(OUTCOME_COLUMNS)
    path = tmp_path / "job.sqlite"
    Ledger.create(path, FP).close()
    db = sqlite3.connect(path)
    table = [row[1] for row in db.execute("PRAGMA table_info(outcomes)")]
    db.close()
    assert table == [*OUTCOME_COLUMNS, *LEDGER_ONLY_COLUMNS]


def test_outcomes_read_back_as_named_rows(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(outcome(3))
        ledger.record_frame(
            pl.DataFrame({"row": [4], "status": ["invalid"], "user": ["u4"]})
        )
        stored = list(ledger.outcomes(first_row=1, last_row=9))
    assert [dict(row) for row in stored] == [
        {
            "row": 3,
            "user": "u3",
            "username": "u3",
            "status": "updated",
            "changed": '["custom:plan"]',
            "deleted": "[]",
            "error_code": None,
            "error_message": None,
            "attempts": 1,
            "finished_at": "2026-11-26T00:00:00Z",
            "delivery": None,
        },
        {
            "row": 4,
            "user": "u4",
            "username": None,
            "status": "invalid",
            "changed": "[]",
            "deleted": "[]",
            "error_code": None,
            "error_message": None,
            "attempts": 0,
            "finished_at": None,
            "delivery": None,
        },
    ]


def test_rows_that_changed_a_user_include_a_partly_applied_row(tmp_path: Path) -> None:
    # The update went through, then the delete was throttled out: the row is
    # failed_retryable but changed the user, so a rollback must undo it.
    with Ledger.create(tmp_path / "j", FP) as ledger:
        ledger.record(
            Outcome(
                row=1,
                user="u1",
                username="u1",
                status=Status.FAILED_RETRYABLE,
                changed=("custom:plan",),
                attempts=2,
                sent={"custom:plan": "new"},
                before={"custom:plan": "old"},
                error_code="TooManyRequestsException",
            )
        )
        ledger.record(Outcome(row=2, user="u2", status=Status.FAILED, attempts=1))
        assert list(ledger.updated_rows()) == [
            (1, "u1", "u1", {"custom:plan": "new"}, {"custom:plan": "old"})
        ]


@pytest.mark.parametrize(
    "damage",
    [
        {"total_rows": "300"},
        {"input_path": 5},
        {"schema": "x"},
        {"rate": "fast"},
        {"diff": 1},
        {"kind": "other"},
    ],
)
def test_a_job_description_with_a_wrong_type_is_refused(tmp_path, damage):
    path = tmp_path / "job.sqlite"
    spec = JobSpec(kind="real", pool_id="p", input_path="/in.csv", total_rows=3)
    Ledger.create(path, FP, spec).close()
    db = sqlite3.connect(path)
    with db:
        stored = json.loads(
            db.execute("SELECT value FROM job WHERE key='spec'").fetchone()[0]
        )
        db.execute(
            "UPDATE job SET value = ? WHERE key = 'spec'",
            (json.dumps({**stored, **damage}),),
        )
    db.close()
    with (
        Ledger.open(path) as ledger,
        pytest.raises(CheckpointError, match="wrong type"),
    ):
        ledger.spec()
