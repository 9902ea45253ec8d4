"""Task functions for ``tests/unit/test_pool.py``.

They live in their own module because worker processes import a task function by its module
name: ``pool_tasks`` is importable there (``tests`` is on ``sys.path`` under pytest, and
multiprocessing hands the parent's ``sys.path`` to every child), a test module may not be.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from innosystem.pool import Channel

_initialized = 0


def init_counter() -> None:
    """Initializer: counts its runs in this worker process."""
    global _initialized
    _initialized += 1


def failing_init() -> None:
    raise RuntimeError("no licence for this worker")


def initialized(ch: Channel) -> tuple[int, int]:
    return _initialized, os.getpid()


def echo(ch: Channel, value: Any) -> Any:
    return value


def add(ch: Channel, a: int, b: int) -> int:
    return a + b


def pid(ch: Channel) -> int:
    return os.getpid()


def child_sys_path(ch: Channel) -> list[str]:
    return list(sys.path)


def nap(ch: Channel, seconds: float) -> tuple[float, float, int]:
    """Sleep; report when it ran (CLOCK_MONOTONIC is system-wide on Linux) and where."""
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic(), os.getpid()


class CustomError(Exception):
    """Pickles round trip: the parent gets this very class back, attributes included."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message, code)
        self.code = code


class TwoArgError(Exception):
    """Cannot be unpickled: pickle calls ``TwoArgError(message)`` and ``code`` is missing."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class LockedError(Exception):
    """Cannot be pickled at all: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_value_error(ch: Channel, message: str) -> None:
    raise ValueError(message)


def raise_custom(ch: Channel, message: str, code: int) -> None:
    raise CustomError(message, code)


def raise_two_arg(ch: Channel) -> None:
    raise TwoArgError(42, "the answer is wrong")


def raise_locked(ch: Channel) -> None:
    raise LockedError("holding a lock")


def call_sys_exit(ch: Channel) -> None:
    sys.exit(4)


def unpicklable_result(ch: Channel) -> Any:
    return threading.Lock()


def die(ch: Channel) -> None:
    os._exit(1)


def busy(ch: Channel) -> None:
    """Reports its pid, then burns CPU forever, ignoring cancellation."""
    ch.progress({"pid": os.getpid()})
    while True:
        pass


def cooperative(ch: Channel) -> str:
    """Reports its pid, then works in small steps until cancelled."""
    ch.progress({"pid": os.getpid()})
    deadline = time.monotonic() + 60
    while not ch.cancelled():
        if time.monotonic() > deadline:
            return "never cancelled"
        time.sleep(0.01)
    return "stopped"


def cooperative_raise(ch: Channel) -> None:
    ch.progress({"pid": os.getpid()})
    while not ch.cancelled():
        time.sleep(0.01)
    raise RuntimeError("stopping on request")


def count(ch: Channel, n: int) -> int:
    for i in range(n):
        ch.progress({"i": i})
    return n


def cancelled_now(ch: Channel) -> bool:
    return ch.cancelled()
