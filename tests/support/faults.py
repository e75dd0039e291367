"""Fault injection around the emulated pool: latency, errors, dropped connections.

`FaultyPool` wraps `EmulatedPool`'s two request hooks: `EmulatedPool.handle`
(every HTTP request: latency first, and ``GET /__stats``) and
`EmulatedPool.perform` (a request within its quota: an injected error or a
dropped connection for the four write operations).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate.sandbox import WRITE_OPERATIONS, EmulatedPool, Quotas, Reply, Request

STATS_PATH = "/__stats"


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Faults the pool injects: latency, quotas, errors, dropped connections.

    Quotas are token buckets: ``quota`` tokens per second, burst ``quota`` (one
    second's worth), one token per request, throttled requests take none. ``None``
    means unlimited. ``error_rate`` and ``drop_rate`` apply to write operations
    only; a dropped write is closed half the time before it is applied and half
    after (the ambiguous case a real network has). One ``seed`` gives one fault
    sequence.
    """

    latency: float = 0.0
    quota: float | None = 25.0
    list_quota: float | None = 30.0
    read_quota: float | None = 120.0
    pool_read_quota: float | None = 15.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, not {self.latency}")
        for name in ("error_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        for name in ("quota", "list_quota", "read_quota", "pool_read_quota"):
            quota = getattr(self, name)
            if quota is not None and quota <= 0:
                raise ValueError(f"{name} must be > 0 or None, not {quota}")

    def quotas(self) -> Quotas:
        return Quotas(
            user_update=self.quota,
            user_list=self.list_quota,
            user_read=self.read_quota,
            user_pool_read=self.pool_read_quota,
        )


class FaultyPool(EmulatedPool):
    """An `EmulatedPool` with injected faults and a ``GET /__stats`` endpoint.

    ``faults`` is read on every request, so a test may swap it (the quotas are
    fixed at construction).
    """

    def __init__(
        self,
        *,
        faults: Faults = Faults(),
        region: str = "us-east-1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # Set before the server starts answering in super().__init__.
        self.faults = faults
        self._sleep = sleep
        self._rng = random.Random(faults.seed)
        self._faults_lock = threading.Lock()
        self.injected_errors = 0
        self.dropped = 0
        super().__init__(quotas=faults.quotas(), region=region, port=port, clock=clock)

    def stats(self) -> dict[str, Any]:
        """Counters so far, JSON-ready: requests, applied writes per user, faults."""
        counters = self.counters()
        with self._faults_lock:
            return {
                "endpoint_url": self.endpoint_url,
                **counters,
                "writes_total": sum(counters["writes"].values()),
                "injected_errors": self.injected_errors,
                "dropped": self.dropped,
            }

    def handle(self, request: Request) -> Reply | None:
        if request.method == "GET" and request.path.split("?")[0] == STATS_PATH:
            stats = json.dumps(self.stats()).encode()
            return Reply(200, stats, content_type="application/json")
        if request.method == "POST" and self.faults.latency:
            self._sleep(self.faults.latency)
        return super().handle(request)

    def perform(self, operation: str, request: Request) -> Reply | None:
        if operation not in WRITE_OPERATIONS:
            return super().perform(operation, request)
        with self._faults_lock:
            # Always three draws, so one seed gives one fault sequence.
            fail = self._rng.random() < self.faults.error_rate
            drop = self._rng.random() < self.faults.drop_rate
            before = self._rng.random() < 0.5
            if fail:
                self.injected_errors += 1
            elif drop and before:
                self.dropped += 1
        if fail:
            return Reply.error(
                500, "InternalErrorException", "Internal error (sandbox fault)"
            )
        if drop and before:
            return None
        reply = super().perform(operation, request)
        if drop:
            with self._faults_lock:
                self.dropped += 1
            return None
        return reply
