"""The least a run's calls can cost on this machine: botocore alone, no network.

Run: python -m pytest tests/benchmarks/test_bench_client_floor.py --benchmarks -s

Issue 12 asks a ``--diff`` run of 1,000,000 rows, 990,000 of them unchanged,
to take at most twice its dry run against the loopback endpoint. The 10,000
changed users each need a read and a write. This measures what those 20,000
calls cost the client even when every answer arrives at once: botocore
serialises, signs and parses each one, and a ``before-send`` hook answers it
(no socket, no server, no emulator, no code of ours). The floor of the run's
ratio is then (dry run + those calls) / dry run, measured in the same process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from tests.benchmarks.test_bench_diff import TENANT_SHAPES, cli_seconds, diff_inputs
from tests.conftest import MAPPINGS, SAMPLES

pytestmark = pytest.mark.benchmark

ROWS, CHANGED = 1_000_000, 10_000

_USER = json.dumps(
    {
        "Username": "u",
        "UserAttributes": [
            {"Name": "sub", "Value": "0b6c3a9e-2f7d-4c1e-9a5b-8d2e4f6a1c3b"},
            {"Name": "custom:tenant_id", "Value": "old"},
        ],
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }
).encode()


class _Body:
    """A raw response body as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._body


def _answer(request: Any, **_: Any) -> AWSResponse:
    """Answer a request before it is sent: a user for a read, {} for a write."""
    target = request.headers.get("X-Amz-Target", b"")
    body = _USER if b"AdminGetUser" in target else b"{}"
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.1"
    return AWSResponse(request.url, 200, headers, _Body(body))


def botocore_seconds(users: int) -> float:
    """Seconds botocore takes for ``users`` reads and writes, answered at once.

    One thread: more only share the GIL (measured: 16 threads are slower).
    """
    client = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        # Never connected to: the hook answers every request first.
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.meta.events.register("before-send", _answer)  # type: ignore[arg-type]
    pool = "us-east-1_floor"
    update: list[Any] = [{"Name": "custom:tenant_id", "Value": "new"}]
    client.admin_get_user(UserPoolId=pool, Username="warm-up")
    start = time.perf_counter()
    for i in range(users):
        read = client.admin_get_user(UserPoolId=pool, Username=f"u{i}")
        assert read["Username"] == "u"
        client.admin_update_user_attributes(
            UserPoolId=pool, Username=f"u{i}", UserAttributes=update
        )
    return time.perf_counter() - start


@pytest.mark.parametrize("shape", TENANT_SHAPES)
def test_the_floor_of_a_990k_unchanged_diff_run(tmp_path: Path, shape: str) -> None:
    _, data, snap = diff_inputs(tmp_path, shape, rows=ROWS, changed=CHANGED)
    dry_seconds = cli_seconds(
        "run",
        data,
        "-m",
        MAPPINGS / "backfill-tenant.toml",
        "--snapshot",
        snap,
        "--dry-run",
        "--schema",
        SAMPLES / "pool-schema.json",
        "--report",
        tmp_path / "dry.csv",
        "--quiet",
    )
    calls_seconds = botocore_seconds(CHANGED)
    floor = (dry_seconds + calls_seconds) / dry_seconds
    print(
        "\n"
        + json.dumps(
            {
                "rows": ROWS,
                "changed": CHANGED,
                "tenants": shape,
                "diff_dry_run_s": round(dry_seconds, 2),
                "botocore_20000_calls_s": round(calls_seconds, 2),
                "ms_per_call": round(calls_seconds / (2 * CHANGED) * 1000, 3),
                "floor_of_the_run_ratio": round(floor, 2),
                "limit": 2,
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )
    assert pl.read_csv(tmp_path / "dry.csv", columns=["status"]).height == ROWS
