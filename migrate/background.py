"""One background thread that handles items in order, a bounded step behind.

The job ledger commits its batches on one, and a dry run writes its report on
another: the caller hands work over and goes on, and the first failure is
raised again in the caller.

Every wait is sliced into ticks: once polars is imported, a Ctrl-C does not
interrupt a blocked lock wait (measured: the KeyboardInterrupt came when the
wait ended, 5 s late), so it is seen at the next tick instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

#: Granularity of waits (seconds).
TICK = 0.1

T = TypeVar("T")


class BackgroundError(Exception):
    """The background thread ended without having handled what it was given."""


class Background(Generic[T]):
    """Calls ``handle`` on each item put, in order, on a thread of its own.

    After ``handle`` raises, later items are dropped and the error is raised
    again by ``put``, ``wait`` and ``close`` in the caller's thread.
    """

    def __init__(
        self,
        handle: Callable[[T], None],
        *,
        name: str,
        queued: int,
        setup: Callable[[], None] = lambda: None,
    ) -> None:
        self._handle = handle
        self._setup = setup
        #: Items, or None to end the thread. The queue also counts each item
        #: until it is handled, in the same step that adds it, so an interrupt
        #: cannot miscount.
        self._items: queue.Queue[T | None] = queue.Queue(maxsize=queued)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        try:
            self._thread.start()
        except RuntimeError as error:
            raise BackgroundError(str(error)) from error

    def put(self, item: T) -> None:
        """Queue an item; waits while the queue is full."""
        self.check()
        self._put(item)

    def wait(self) -> None:
        """Return once every item put has been handled."""
        done = self._items.all_tasks_done
        with done:
            while self._items.unfinished_tasks:
                self._check_alive()
                done.wait(TICK)
        self.check()

    def close(self) -> None:
        """Handle what is queued, then end the thread (raises nothing)."""
        try:
            self._put(None)
        except BaseException:
            if self._thread.is_alive():
                raise
            return
        while self._thread.is_alive():
            self._thread.join(TICK)

    def check(self) -> None:
        """Raise the error of an earlier item, if one failed."""
        if self.error is not None:
            raise self.error

    def _put(self, item: T | None) -> None:
        while True:
            self._check_alive()
            try:
                self._items.put(item, timeout=TICK)
            except queue.Full:
                continue
            return

    def _check_alive(self) -> None:
        if not self._thread.is_alive():
            self.check()
            raise BackgroundError(f"the {self._thread.name} thread has ended")

    def _work(self) -> None:
        self._setup()
        while True:
            item = self._items.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    self._handle(item)
            except BaseException as error:  # raised again in the caller
                self.error = error
            finally:
                self._items.task_done()
