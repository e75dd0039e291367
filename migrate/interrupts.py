"""Ctrl-C and SIGTERM that wait for the end of a step that must not be cut.

A stop raises KeyboardInterrupt in the main thread between any two bytecodes.
Between taking a call's outcome off the queue and handing it to the ledger,
that loses the outcome: the user was changed and the job does not know it
(a resume finds the user at the target and cannot record what it was
before). The signal handlers call ``interrupt``; inside ``shielded`` the
interrupt is held until the block ends or calls ``check``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending = False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt() -> None:
    """Stop the main thread: raise KeyboardInterrupt now, or at the end of
    the shielded block it is in. For signal handlers (main thread)."""
    global _pending
    if _depth:
        _pending = True
        return
    raise KeyboardInterrupt


def check() -> None:
    """Raise a held interrupt now: for a shielded block at a safe point."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


@contextmanager
def shielded() -> Iterator[None]:
    """Hold interrupts until the block ends (main thread only: signal
    handlers run there; elsewhere this does nothing)."""
    global _depth
    if not _in_main_thread():
        yield
        return
    global _pending
    _depth += 1
    try:
        yield
    except BaseException:
        # The block is stopping anyway: a held interrupt must not surface
        # later, in a block that has nothing to do with it.
        if _depth == 1:
            _pending = False
        raise
    finally:
        _depth -= 1
    if not _depth:
        check()
