"""Achieved write rate against the emulated pool: 60 ms latency, 25/s quota
(UserUpdate) and 120/s (UserRead) for the read before each write.

Run: python -m pytest tests/benchmarks/test_bench_rate.py --benchmarks -s
Each figure is a ratio measured in the same run (achieved / configured rate,
achieved / quota, throttled / calls).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from migrate.checkpoint import Fingerprint, Ledger
from migrate.cognito import ClientConfig, UserPool, make_client
from migrate.execution import ExecutionConfig
from migrate.pipeline import execute, prepare
from migrate.records import CallResult, WorkItem
from migrate.schema import load_schema_file
from tests.conftest import MAPPINGS, SAMPLES
from tests.support.faults import Faults, FaultyPool

pytestmark = pytest.mark.benchmark

SCHEMA_JSON = json.loads((SAMPLES / "pool-schema.json").read_text())
QUOTA = 25.0
READ_QUOTA = 120.0
LATENCY = 0.06


class TimedPool:
    """Wraps the real adapter to record when each call was sent."""

    def __init__(self, pool: UserPool) -> None:
        self.pool = pool
        self.sent: list[float] = []
        self.lock = threading.Lock()

    def read(self, item: WorkItem) -> CallResult:
        return self.pool.read(item)

    def update(self, item: WorkItem) -> CallResult:
        with self.lock:
            self.sent.append(time.monotonic())
        return self.pool.update(item)

    def delete(self, item: WorkItem) -> CallResult:
        with self.lock:
            self.sent.append(time.monotonic())
        return self.pool.delete(item)


def _users(path: Path, n: int) -> Path:
    path.write_text(
        "username,tenant\n" + "".join(f"u{i:05d},t{i % 9}\n" for i in range(n))
    )
    return path


def _run(
    tmp_path: Path,
    rate: float,
    users: int,
    *,
    reads: bool = True,
    at_target: int = 0,
) -> dict[str, Any]:
    """One run of ``users`` rows; the first ``at_target`` already hold theirs."""
    faults = Faults(latency=LATENCY, quota=QUOTA, read_quota=READ_QUOTA)
    with FaultyPool(faults=faults) as emulated:
        pool_id = emulated.seed(
            SCHEMA_JSON,
            [
                {"username": f"u{i:05d}"}
                | ({"custom:tenant_id": f"t{i % 9}"} if i < at_target else {})
                for i in range(users)
            ],
        )
        client = make_client(
            ClientConfig(
                region="us-east-1",
                endpoint_url=emulated.endpoint_url,
                credentials=("bench", "bench"),
                max_pool_connections=32,
            )
        )
        job = prepare(
            _users(tmp_path / f"in-{rate}.csv", users),
            MAPPINGS / "backfill-tenant.toml",
            load_schema_file(SAMPLES / "pool-schema.json"),
        )
        timed = TimedPool(UserPool(client, pool_id=pool_id, api="admin"))
        fp = Fingerprint(
            input_sha256="x", mapping_sha256="y", pool=pool_id, options="{}"
        )
        name = f"job-{rate}-{reads}-{at_target}.sqlite"
        with Ledger.create(tmp_path / name, fp) as ledger:
            start = time.monotonic()
            stats = execute(
                job,
                ledger=ledger,
                pool=timed,
                config=ExecutionConfig(
                    rate=rate, concurrency=8, read_before_write=reads
                ),
            )
            elapsed = time.monotonic() - start
            counts = ledger.counts()
        served = emulated.counters()
        sent = sorted(timed.sent)
        span = sent[-1] - sent[0]
        windows = [sum(1 for t in sent if s <= t < s + 1.0) for s in sent]
        return {
            "rate": rate,
            "users": users,
            "read_before_write": reads,
            "updated": counts.get("updated", 0),
            "unchanged": counts.get("unchanged", 0),
            "calls": stats.calls,
            "throttled": stats.throttled,
            "reads": stats.reads,
            "reads_throttled": stats.reads_throttled,
            "writes_served": sum(served["writes"].values()),
            "seconds": round(elapsed, 2),
            "achieved_per_s": round((len(sent) - 1) / span, 2),
            "max_1s_window": max(windows),
        }


def test_rate_20_holds_the_configured_rate(tmp_path: Path) -> None:
    figures = _run(tmp_path, 20.0, 660)
    figures["achieved_over_configured"] = round(figures["achieved_per_s"] / 20.0, 3)
    print("\n" + json.dumps(figures))
    assert figures["updated"] == 660
    assert figures["seconds"] >= 30
    assert figures["achieved_over_configured"] >= 0.97
    assert figures["throttled"] == 0
    assert figures["max_1s_window"] <= 20 + 1


def test_reads_before_writes_cost_no_job_time(tmp_path: Path) -> None:
    """--rate 20 with a read before each write, against the same without."""
    with_reads = _run(tmp_path, 20.0, 660)
    without = _run(tmp_path, 20.0, 660, reads=False)
    figures = {
        "with_reads": with_reads,
        "without_reads": without,
        "achieved_over_configured_with_reads": round(
            with_reads["achieved_per_s"] / 20.0, 3
        ),
        "with_over_without": round(
            with_reads["achieved_per_s"] / without["achieved_per_s"], 3
        ),
    }
    print("\n" + json.dumps(figures))
    assert with_reads["reads"] == 660
    assert with_reads["reads_throttled"] == 0
    assert without["reads"] == 0
    assert figures["achieved_over_configured_with_reads"] >= 0.97


def test_80_percent_at_the_target_makes_a_fifth_of_the_writes(tmp_path: Path) -> None:
    """No --diff: the read before each write finds 80% of users unchanged."""
    figures = _run(tmp_path, 20.0, 500, at_target=400)
    figures["writes_over_rows"] = round(figures["writes_served"] / 500, 3)
    print("\n" + json.dumps(figures))
    assert figures["writes_served"] == 100
    assert (figures["updated"], figures["unchanged"]) == (100, 400)
    assert figures["reads"] == 500


def test_rate_40_above_the_quota_absorbs_throttling(tmp_path: Path) -> None:
    figures = _run(tmp_path, 40.0, 1500)
    figures["achieved_over_quota"] = round(figures["achieved_per_s"] / QUOTA, 3)
    figures["throttled_share"] = round(figures["throttled"] / figures["calls"], 4)
    print("\n" + json.dumps(figures))
    assert figures["updated"] == 1500
    assert figures["throttled_share"] <= 0.05
    assert figures["achieved_over_quota"] >= 0.9


def _boto3_loop(
    endpoint: str, pool_id: str, users: int, mode: str
) -> dict[str, object]:
    config = Config(retries={"mode": mode}, max_pool_connections=32)  # type: ignore[arg-type]
    client = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )

    def one(i: int) -> bool:
        try:
            client.admin_update_user_attributes(
                UserPoolId=pool_id,
                Username=f"u{i:05d}",
                UserAttributes=[{"Name": "custom:tenant_id", "Value": "x"}],
            )
        except Exception:
            return False
        return True

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        ok = sum(pool.map(one, range(users)))
    elapsed = time.monotonic() - start
    return {
        "mode": mode,
        "lost_share": round(1 - ok / users, 3),
        "achieved_over_quota": round(ok / elapsed / QUOTA, 3),
    }


def _baselines() -> Iterator[dict[str, object]]:
    for mode in ("legacy", "standard", "adaptive"):
        with FaultyPool(faults=Faults(latency=LATENCY, quota=QUOTA)) as emulated:
            pool_id = emulated.seed(
                SCHEMA_JSON, [{"username": f"u{i:05d}"} for i in range(600)]
            )
            yield _boto3_loop(emulated.endpoint_url, pool_id, 600, mode)


def test_plain_boto3_loops_for_comparison() -> None:
    for figures in _baselines():
        print("\nboto3 loop, 16 threads: " + json.dumps(figures))
