"""Fixtures of the CLI tests: every test runs in its own directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.sandbox import EmulatedPool
from tests.support.faults import Faults, FaultyPool


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths (and so the messages that name them) are short and stable."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def pool() -> Iterator[EmulatedPool]:
    """An emulated Cognito endpoint without throttling, counting every call."""
    with FaultyPool(faults=Faults(quota=None)) as emulated:
        yield emulated
