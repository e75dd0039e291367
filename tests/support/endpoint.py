"""``python -m tests.support.endpoint serve``: the sandbox's ``serve`` with faults.

The options of ``python -m migrate.sandbox serve`` plus ``--latency``, the four
quotas (``none``: unlimited), ``--error-rate``, ``--drop-rate`` and ``--seed``
(see `tests.support.faults.Faults`); ``GET /__stats`` returns the counters as
JSON. For tests whose pool must live in a process of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from migrate.errors import ConfigError
from migrate.sandbox import EmulatedPool, ServeCommand
from tests.support.faults import STATS_PATH, Faults, FaultyPool


def _quota(text: str) -> float | None:
    return None if text.lower() in ("none", "off") else float(text)


class FaultyServeCommand(ServeCommand):
    prog = "python -m tests.support.endpoint"
    description = (
        "Serve an emulated Cognito user pool with injected faults on 127.0.0.1; "
        f"GET {STATS_PATH} returns the counters as JSON."
    )

    def add_arguments(self, serve: argparse.ArgumentParser) -> None:
        super().add_arguments(serve)
        defaults = Faults()
        serve.add_argument("--latency", type=float, default=defaults.latency)
        serve.add_argument(
            "--quota",
            type=_quota,
            default=defaults.quota,
            help="UserUpdate requests/s ('none': unlimited); likewise the others",
        )
        serve.add_argument("--list-quota", type=_quota, default=defaults.list_quota)
        serve.add_argument("--read-quota", type=_quota, default=defaults.read_quota)
        serve.add_argument(
            "--pool-read-quota", type=_quota, default=defaults.pool_read_quota
        )
        serve.add_argument("--error-rate", type=float, default=defaults.error_rate)
        serve.add_argument("--drop-rate", type=float, default=defaults.drop_rate)
        serve.add_argument("--seed", type=int, default=defaults.seed)

    def make_pool(self, args: argparse.Namespace) -> EmulatedPool:
        try:
            faults = Faults(
                latency=args.latency,
                quota=args.quota,
                list_quota=args.list_quota,
                read_quota=args.read_quota,
                pool_read_quota=args.pool_read_quota,
                error_rate=args.error_rate,
                drop_rate=args.drop_rate,
                seed=args.seed,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return FaultyPool(faults=faults, region=args.region, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    return FaultyServeCommand().main(argv)


if __name__ == "__main__":
    sys.exit(main())
