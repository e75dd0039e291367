"""The emulated pool in a process of its own, for tests that run the CLI as one.

A run that is killed or sent a signal must be a real process, and then so must
the pool it talks to: ``python -m tests.support.endpoint serve`` on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT, SAMPLES


def subprocess_env() -> dict[str, str]:
    """The environment for a CLI or sandbox process: fake credentials only."""
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("AWS_PROFILE", None)
    return env


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process with ``sig``; kill it if it has not ended in 10 s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def served_sandbox(
    users: Path, *, latency: float, schema: Path = SAMPLES / "pool-schema.json"
) -> Iterator[tuple[str, str]]:
    """(endpoint, pool id) of a served pool seeded with ``users``, no quotas."""
    port_file = users.with_name(f"{users.stem}.endpoint")
    log = users.with_name(f"{users.stem}.sandbox.log")
    # `-m tests.support...` needs the repository on the path, wherever the
    # tests were started from.
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.endpoint", "serve"),
                *("--schema", str(schema), "--users", str(users)),
                *("--port-file", str(port_file), "--latency", str(latency)),
                *("--quota", "none", "--list-quota", "none", "--read-quota", "none"),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert server.poll() is None, f"sandbox server died: {log.read_text()}"
            assert time.monotonic() < deadline, "sandbox server did not start"
            time.sleep(0.05)
        endpoint, pool_id = port_file.read_text().split()
        yield endpoint, pool_id
    finally:
        stop(server)
