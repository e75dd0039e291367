"""One guard for every command that writes a file: nothing it does not own changes.

Every writing command (validate, dry run, sandbox run, real run, resume, report,
rollback, snapshot) is driven with each output option pointed at each file of a
job's working directory: the job's own inputs (input, mapping, schema, snapshot),
job files of real, diff and sandbox jobs, and files of other kinds that merely
have a fitting extension. The property: a file the command may not replace is
byte-for-byte unchanged and the command exits 2 naming it; the only files that
may change are an earlier output of the same kind (a report, a snapshot, a
sandbox job file) or an empty file, and files the command owns (its own job).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from migrate.sandbox import EmulatedPool
from tests.cli.helpers import (
    BACKFILL,
    FAKE_AWS_ENV,
    SCHEMA,
    SCHEMA_FILE,
    invoke,
    write,
)

POOL_ID = SCHEMA["UserPool"]["Id"]
USERS = [f"u{i}" for i in range(1, 6)]

#: Files of the working directory; the commands below read some of them.
INPUTS = ("in.csv", "map.toml", "schema.json", "snap.parquet")
JOBS = ("job.sqlite", "diff.job.sqlite", "old.sandbox.job.sqlite")
FOREIGN = ("notes.txt", "foreign.csv", "foreign.parquet", "data.json", "data.jsonl")
OURS = ("old.report.csv", "old.snapshot.parquet", "empty.csv")
CANDIDATES = (*INPUTS, *JOBS, *FOREIGN, *OURS)


def _seed(pool: EmulatedPool) -> None:
    pool.seed(SCHEMA, [{"username": name} for name in USERS])


def _connection(pool: EmulatedPool) -> list[str]:
    return ["--endpoint-url", pool.endpoint_url, "--region", "us-east-1"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job's working directory: inputs, finished jobs and files of other kinds."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        write("in.csv", "username,tenant\n" + "".join(f"{u},t-{u}\n" for u in USERS))
        shutil.copy(BACKFILL, "map.toml")
        shutil.copy(SCHEMA_FILE, "schema.json")
        pl.DataFrame(
            {
                "username": USERS,
                "status": ["CONFIRMED"] * 5,
                "enabled": ["true"] * 5,
                "custom:tenant_id": [None] * 5,
            }
        ).write_parquet("snap.parquet")
        with EmulatedPool() as pool:
            _seed(pool)
            common = ["in.csv", "-m", "map.toml", "--user-pool-id", POOL_ID]
            for job, extra in (
                ("job.sqlite", []),
                ("diff.job.sqlite", ["--snapshot", "snap.parquet"]),
            ):
                result = invoke(
                    "run",
                    *common,
                    *_connection(pool),
                    "--job",
                    job,
                    "--report",
                    f"{job}.report.csv",
                    *extra,
                )
                assert result.exit_code == 0, result.output
            result = invoke(
                "snapshot",
                "--user-pool-id",
                POOL_ID,
                *_connection(pool),
                "-o",
                "old.snapshot.parquet",
            )
            assert result.exit_code == 0, result.output
        result = invoke(
            "run",
            "in.csv",
            "-m",
            "map.toml",
            "--schema",
            "schema.json",
            "--sandbox",
            "--job",
            "old.sandbox.job.sqlite",
            "--report",
            "old.report.csv",
        )
        assert result.exit_code == 0, result.output
        write("notes.txt", "my notes\n")
        write("foreign.csv", "a,b\n1,2\n")
        pl.DataFrame({"x": [1, 2]}).write_parquet("foreign.parquet")
        write("data.json", '{"keep": true}\n')
        write("data.jsonl", '{"keep": true}\n')
        write("empty.csv", "")
    return root


def _base(pool: EmulatedPool) -> list[str]:
    return ["in.csv", "-m", "map.toml", "--schema", "schema.json"]


#: Each writing command, given the output path; the kind of output it writes
#: there; and the files it owns (may change whatever the output).
Command = Callable[[EmulatedPool, str], list[str]]
COMMANDS: dict[str, tuple[str, Command, tuple[str, ...]]] = {
    "validate --report": (
        "report",
        lambda pool, out: ["validate", *_base(pool), "--report", out],
        (),
    ),
    "run --dry-run --report": (
        "report",
        lambda pool, out: ["run", *_base(pool), "--dry-run", "--report", out],
        (),
    ),
    "run --sandbox --report": (
        "report",
        lambda pool, out: ["run", *_base(pool), "--sandbox", "--report", out],
        (),
    ),
    "run --sandbox --job": (
        "sandbox job",
        lambda pool, out: ["run", *_base(pool), "--sandbox", "--job", out],
        (),
    ),
    "run --report": (
        "report",
        lambda pool, out: [
            "run",
            *_base(pool),
            "--user-pool-id",
            POOL_ID,
            *_connection(pool),
            "--job",
            "new.job.sqlite",
            "--report",
            out,
        ],
        (),
    ),
    "run --job": (
        "real job",
        lambda pool, out: [
            "run",
            *_base(pool),
            "--user-pool-id",
            POOL_ID,
            *_connection(pool),
            "--job",
            out,
            "--report",
            "new.report.csv",
        ],
        (),
    ),
    "resume --report": (
        "report",
        lambda pool, out: ["resume", "job.sqlite", *_connection(pool), "--report", out],
        ("job.sqlite",),
    ),
    "report -o": ("report", lambda pool, out: ["report", "job.sqlite", "-o", out], ()),
    "rollback --report": (
        "report",
        lambda pool, out: [
            "rollback",
            "diff.job.sqlite",
            *_connection(pool),
            "--yes",
            "--job",
            "new.rollback.sqlite",
            "--report",
            out,
        ],
        ("diff.job.sqlite",),
    ),
    "rollback --job": (
        "rollback job",
        lambda pool, out: [
            "rollback",
            "diff.job.sqlite",
            *_connection(pool),
            "--yes",
            "--job",
            out,
            "--report",
            "new.report.csv",
        ],
        ("diff.job.sqlite",),
    ),
    "rollback --dry-run --report": (
        "report",
        lambda pool, out: ["rollback", "diff.job.sqlite", "--dry-run", "--report", out],
        (),
    ),
    "snapshot -o": (
        "snapshot",
        lambda pool, out: [
            "snapshot",
            "--user-pool-id",
            POOL_ID,
            *_connection(pool),
            "-o",
            out,
        ],
        (),
    ),
}

#: Existing files each kind of output may replace: its own earlier output, or
#: an empty file (which loses nothing).
REPLACEABLE = {
    "report": {"old.report.csv", "empty.csv"},
    # snap.parquet is an input of the diff job, not of the snapshot command.
    "snapshot": {"old.snapshot.parquet", "snap.parquet", "empty.csv"},
    "sandbox job": {"old.sandbox.job.sqlite", "empty.csv"},
    # The same input, mapping and pool: these are this job's files, continued
    # (the diff job keeps its diff); a sandbox job's file is never continued.
    "real job": {"job.sqlite", "diff.job.sqlite"},
    "rollback job": set(),
}


def _contents(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))
    }


@pytest.fixture
def workdir(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "job", dirs_exist_ok=True)
    return tmp_path / "job"


@pytest.mark.parametrize("target", CANDIDATES)
@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_replaces_a_file_it_does_not_own(
    command: str, target: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, args, owned = COMMANDS[command]
    monkeypatch.chdir(workdir)
    before = _contents(workdir)
    with EmulatedPool() as pool:
        _seed(pool)
        result = invoke(*args(pool, target))
    after = _contents(workdir)
    changed = {
        name for name in before if name not in owned and after.get(name) != before[name]
    }
    replaceable = REPLACEABLE[kind]
    if target in replaceable:
        assert result.exit_code in (0, 1), result.output
        assert changed <= {target}
    else:
        assert result.exit_code == 2, result.output
        assert changed == set(), result.output
        assert target in result.output
    assert not [name for name in after if name.endswith((".tmp", ".partial"))]
