"""Background: one thread handles items in order; failures reach the caller."""

from __future__ import annotations

import threading

import pytest

from migrate.background import Background, BackgroundError


def test_items_are_handled_in_order_and_wait_returns_when_all_are() -> None:
    seen: list[int] = []
    worker = Background(seen.append, name="test-worker", queued=2)
    for item in range(50):
        worker.put(item)
    worker.wait()
    assert seen == list(range(50))
    worker.close()


def test_the_first_failure_is_raised_in_the_caller_and_later_items_dropped() -> None:
    seen: list[int] = []

    def handle(item: int) -> None:
        if item == 3:
            raise ValueError("item 3 is bad")
        seen.append(item)

    worker = Background(handle, name="test-worker", queued=8)
    for item in range(6):
        worker.put(item)
    with pytest.raises(ValueError, match="item 3 is bad"):
        worker.wait()
    with pytest.raises(ValueError, match="item 3 is bad"):
        worker.put(6)
    assert seen == [0, 1, 2]
    worker.close()  # raises nothing: the failure was reported


def test_a_thread_that_cannot_start_is_a_background_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(BackgroundError, match="can't start new thread"):
        Background(print, name="test-worker", queued=1)


def test_close_after_close_waits_for_nothing() -> None:
    worker: Background[int] = Background(
        lambda item: None, name="test-worker", queued=1
    )
    worker.close()
    worker.close()
