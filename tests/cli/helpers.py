"""Helpers for the CLI tests: invoke the command line, write inputs, read reports."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from migrate.cli import cli
from tests.conftest import MAPPINGS, SAMPLES

SCHEMA_FILE = SAMPLES / "pool-schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
BACKFILL = MAPPINGS / "backfill-tenant.toml"
NORMALISE_PHONE = MAPPINGS / "normalise-phone.toml"
RENAME_PLAN = MAPPINGS / "rename-plan.toml"

#: What tests/conftest.py sets for every test, for fixtures set up before it.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}

#: The statuses that do not end well (``report --only failed``).
NOT_OK = {"invalid", "failed", "failed_retryable", "not_attempted"}

#: The report's own columns, before the input columns.
REPORT_HEADER = [
    "row",
    "user",
    "username",
    "status",
    "changed",
    "deleted",
    "error_code",
    "error_message",
    "attempts",
    "finished_at",
    "delivery",
]

#: ISO 8601 UTC to the second, as the report writes ``finished_at``.
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def invoke(*args: str | Path, input: str | None = None) -> Result:
    """Run the CLI as the console script would, letting real exceptions escape.

    With ``catch_exceptions=False`` an unexpected exception fails the test with
    its traceback instead of hiding in ``result.exception``.
    """
    result = CliRunner().invoke(
        cli,
        [str(a) for a in args],
        input=input,
        catch_exceptions=False,
        prog_name="cognito-migrate",
    )
    assert "Traceback" not in result.output
    return result


def write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, exactly as given) to ``path``."""
    path = Path(path)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def mapping(path: str | Path, attributes: str, *, options: str = "") -> Path:
    """A mapping keyed by the ``username`` column, with these attribute tables."""
    text = '[user]\ncolumn = "username"\nas = "username"\n'
    if options:
        text += f"\n[options]\n{options}\n"
    return write(path, text + "\n" + attributes)


def read_report(path: str | Path) -> list[dict[str, str]]:
    """A CSV report's rows, every cell as text."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """A JSON lines report's rows."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def mode(path: str | Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(os.stat(path).st_mode)


def real_run_args(
    endpoint_url: str,
    pool_id: str,
    *,
    job: str | Path = "job.sqlite",
    report: str | Path = "report.csv",
) -> list[str]:
    """Options of a real run against an emulated pool (job and report in the cwd)."""
    return [
        "--user-pool-id",
        pool_id,
        "--endpoint-url",
        endpoint_url,
        "--region",
        "us-east-1",
        "--job",
        str(job),
        "--report",
        str(report),
    ]


def without_preflight(text: str) -> str:
    """``text`` without the preflight block (tested on its own in test_preflight)."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("Preflight"):
            inside = True
            continue
        if inside and line.startswith("  "):
            continue
        inside = False
        kept.append(line)
    return "".join(kept)
