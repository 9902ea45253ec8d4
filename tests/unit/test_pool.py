"""KillablePool: results and errors travel back, and timed-out, cancelled or abandoned tasks are
really stopped (their process is gone), while the pool keeps serving."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pool_tasks as tasks
import pytest

from innosystem.pool import (
    KillablePool,
    RemoteError,
    TaskCancelled,
    TaskTimeout,
    WorkerDied,
)

# Generous bounds: the machine may be busy with other test runs.
SLOW = 15.0


@pytest.fixture
async def pool() -> AsyncIterator[KillablePool]:
    p = KillablePool(2)
    yield p
    await p.shutdown(kill=True)


@pytest.fixture
async def pool1() -> AsyncIterator[KillablePool]:
    p = KillablePool(1)
    yield p
    await p.shutdown(kill=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Started:
    """An on_progress callback that remembers the task's reports and its first pid."""

    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.event = asyncio.Event()

    def __call__(self, data: dict) -> None:
        self.reports.append(data)
        self.event.set()

    async def pid(self) -> int:
        await asyncio.wait_for(self.event.wait(), SLOW)
        return int(self.reports[0]["pid"])


# --- results and errors -------------------------------------------------------------------------
async def test_result_round_trip(pool: KillablePool) -> None:
    assert await pool.run(tasks.add, 2, 3) == 5
    value = {"a": [1, 2.5, None], "b": b"\x00bytes", "c": ("t", {"nested": True})}
    assert await pool.run(tasks.echo, value) == value
    big = bytes(range(256)) * 2000  # larger than a pipe buffer, both ways
    assert await pool.run(tasks.echo, big) == big


async def test_child_gets_the_parents_sys_path(pool: KillablePool) -> None:
    tests_dir = str(Path(tasks.__file__).parent)
    assert tests_dir in await pool.run(tasks.child_sys_path)


async def test_exceptions_round_trip(pool1: KillablePool) -> None:
    first = await pool1.run(tasks.pid)

    with pytest.raises(ValueError, match="bad input") as info:
        await pool1.run(tasks.raise_value_error, "bad input")
    assert "raise_value_error" in str(info.value.__cause__)  # the remote traceback

    with pytest.raises(tasks.CustomError) as custom:
        await pool1.run(tasks.raise_custom, "custom trouble", 7)
    assert type(custom.value) is tasks.CustomError
    assert custom.value.code == 7
    assert custom.value.args == ("custom trouble", 7)

    # Pickles in the child, does not unpickle in the parent (its __init__ needs two args).
    with pytest.raises(RemoteError) as two_arg:
        await pool1.run(tasks.raise_two_arg)
    assert str(two_arg.value) == "TwoArgError: the answer is wrong"

    with pytest.raises(RemoteError, match=r"^LockedError: holding a lock$"):
        await pool1.run(tasks.raise_locked)

    # SystemExit is reported, never raised as such in the server.
    with pytest.raises(RemoteError, match=r"^SystemExit: 4$"):
        await pool1.run(tasks.call_sys_exit)

    with pytest.raises(RemoteError, match="result could not be sent back: TypeError"):
        await pool1.run(tasks.unpicklable_result)

    # None of that hurt the worker.
    assert await pool1.run(tasks.pid) == first
    assert pool1.size == 1


async def test_unpicklable_arguments_fail_before_any_worker_starts(pool: KillablePool) -> None:
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        await pool.run(tasks.echo, lambda: None)
    assert pool.size == 0
    assert await pool.run(tasks.add, 1, 1) == 2


async def test_on_progress_errors_do_not_break_the_task(pool: KillablePool) -> None:
    def explode(data: dict) -> None:
        raise RuntimeError("callback bug")

    assert await pool.run(tasks.count, 3, on_progress=explode) == 3


async def test_progress_arrives_in_order_before_the_result(pool: KillablePool) -> None:
    seen: list[int] = []
    result = await pool.run(tasks.count, 500, on_progress=lambda d: seen.append(d["i"]))
    assert result == 500
    assert seen == list(range(500))


# --- timeouts -----------------------------------------------------------------------------------
async def test_timeout_kills_the_process_and_the_pool_keeps_working(pool: KillablePool) -> None:
    started = Started()
    t0 = time.monotonic()
    with pytest.raises(TaskTimeout):
        await pool.run(tasks.busy, timeout=0.5, on_progress=started)
    assert time.monotonic() - t0 >= 0.5
    pid = await started.pid()
    assert await gone_within(pid, 2.0), "the timed-out worker is still running"
    assert not alive(pid)
    assert await pool.run(tasks.add, 20, 22) == 42
    assert await pool.run(tasks.pid) != pid


async def test_timeout_counts_from_when_a_worker_takes_the_task(pool1: KillablePool) -> None:
    first = asyncio.create_task(pool1.run(tasks.nap, 1.2))
    await asyncio.sleep(0.05)
    # Waits ~1.2 s for the only worker, then runs 0.05 s: well within its 1 s timeout.
    start, end, _ = await pool1.run(tasks.nap, 0.05, timeout=1.0)
    _, first_end, _ = await first
    assert start >= first_end
    assert end - start < 1.0


# --- cancellation -------------------------------------------------------------------------------
async def test_cancel_cooperative_task_stops_without_killing(pool1: KillablePool) -> None:
    cancel = asyncio.Event()
    started = Started()
    run = asyncio.create_task(
        pool1.run(tasks.cooperative, cancel=cancel, grace=60, on_progress=started)
    )
    pid = await started.pid()
    t0 = time.monotonic()
    cancel.set()
    with pytest.raises(TaskCancelled):
        await run
    assert time.monotonic() - t0 < SLOW  # it stopped by itself, long before the 60 s grace
    assert alive(pid)
    assert await pool1.run(tasks.pid) == pid  # the same worker serves the next task
    assert await pool1.run(tasks.cancelled_now) is False  # the flag was for that task only


async def test_cancel_cooperative_task_that_raises(pool1: KillablePool) -> None:
    cancel = asyncio.Event()
    started = Started()
    run = asyncio.create_task(
        pool1.run(tasks.cooperative_raise, cancel=cancel, grace=60, on_progress=started)
    )
    pid = await started.pid()
    cancel.set()
    with pytest.raises(TaskCancelled) as info:
        await run
    assert isinstance(info.value.__cause__, RuntimeError)
    assert await pool1.run(tasks.pid) == pid


async def test_cancel_uncooperative_task_is_killed_after_grace(pool: KillablePool) -> None:
    cancel = asyncio.Event()
    started = Started()
    run = asyncio.create_task(pool.run(tasks.busy, cancel=cancel, grace=0.5, on_progress=started))
    pid = await started.pid()
    t0 = time.monotonic()
    cancel.set()
    with pytest.raises(TaskCancelled, match="did not stop"):
        await run
    assert time.monotonic() - t0 >= 0.5
    assert await gone_within(pid, 2.0)
    assert await pool.run(tasks.add, 1, 2) == 3


async def test_cancel_set_before_the_start_runs_nothing(pool: KillablePool) -> None:
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(TaskCancelled):
        await pool.run(tasks.pid, cancel=cancel)
    assert pool.size == 0  # not even a worker was started


async def test_cancel_while_waiting_for_a_worker(pool1: KillablePool) -> None:
    long = asyncio.create_task(pool1.run(tasks.nap, 1.0))
    await asyncio.sleep(0.1)
    cancel = asyncio.Event()
    waiting = asyncio.create_task(pool1.run(tasks.pid, cancel=cancel))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    cancel.set()
    with pytest.raises(TaskCancelled):
        await asyncio.wait_for(waiting, SLOW)
    assert not long.done()  # it did not wait for the running task
    _, _, pid = await long
    assert await pool1.run(tasks.pid) == pid


async def test_abandoning_run_kills_the_worker(pool: KillablePool) -> None:
    """asyncio.wait_for around run (as the job runner does) stops the process too."""
    started = Started()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.run(tasks.busy, on_progress=started), 1.0)
    pid = await started.pid()
    assert await gone_within(pid, 5.0)
    assert await pool.run(tasks.add, 2, 2) == 4


# --- worker death -------------------------------------------------------------------------------
async def test_worker_death_fails_only_its_task(pool: KillablePool) -> None:
    other = asyncio.create_task(pool.run(tasks.nap, 0.5))
    await asyncio.sleep(0.05)
    with pytest.raises(WorkerDied, match="exit code 1"):
        await pool.run(tasks.die)
    start, end, _ = await other
    assert end - start >= 0.5
    assert await pool.run(tasks.add, 3, 4) == 7
    assert pool.size <= 2


async def test_worker_killed_from_outside(pool: KillablePool) -> None:
    started = Started()
    run = asyncio.create_task(pool.run(tasks.busy, on_progress=started))
    pid = await started.pid()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied):
        await asyncio.wait_for(run, SLOW)
    assert await pool.run(tasks.add, 5, 5) == 10


async def test_idle_worker_that_died_is_replaced_silently(pool1: KillablePool) -> None:
    pid = await pool1.run(tasks.pid)
    os.kill(pid, signal.SIGKILL)
    assert await gone_within(pid, 5.0)
    new = await pool1.run(tasks.pid)  # no WorkerDied for a task that never met the dead one
    assert new != pid


# --- capacity, initializer, shutdown ------------------------------------------------------------
async def test_max_workers_is_respected(pool: KillablePool) -> None:
    sizes: list[int] = []

    async def sample() -> None:
        while True:
            sizes.append(pool.size)
            await asyncio.sleep(0.02)

    # Two warm workers first, so the measurement is not at the mercy of start-up times.
    await asyncio.gather(pool.run(tasks.nap, 0.1), pool.run(tasks.nap, 0.1))
    assert pool.size == 2
    sampler = asyncio.create_task(sample())
    t0 = time.monotonic()
    spans = await asyncio.gather(*(pool.run(tasks.nap, 0.5) for _ in range(4)))
    elapsed = time.monotonic() - t0
    sampler.cancel()

    def running_at(t: float) -> int:
        return sum(1 for start, end, _ in spans if start <= t < end)

    assert max(running_at(start) for start, _, _ in spans) <= 2
    assert len({pid for _, _, pid in spans}) == 2  # both workers took part
    assert max(sizes) <= 2
    # Two tasks waited for the first two to finish.
    ends = sorted(end for _, end, _ in spans)
    starts = sorted(start for start, _, _ in spans)
    assert starts[2] >= ends[0] and starts[3] >= ends[1]
    assert elapsed >= 1.0


async def test_initializer_runs_once_per_worker() -> None:
    pool = KillablePool(1, initializer=tasks.init_counter)
    try:
        assert await pool.run(tasks.initialized) == await pool.run(tasks.initialized)
        runs, _ = await pool.run(tasks.initialized)
        assert runs == 1
    finally:
        await pool.shutdown()


async def test_failing_initializer_reports_worker_died() -> None:
    pool = KillablePool(1, initializer=tasks.failing_init)
    try:
        with pytest.raises(WorkerDied, match="RuntimeError: no licence for this worker"):
            await pool.run(tasks.pid)
        assert pool.size == 0
    finally:
        await pool.shutdown()


async def test_shutdown_fails_running_and_waiting_tasks_then_reuse(pool1: KillablePool) -> None:
    started = Started()
    running = asyncio.create_task(pool1.run(tasks.busy, on_progress=started))
    pid = await started.pid()
    waiting = asyncio.create_task(pool1.run(tasks.pid))
    await asyncio.sleep(0.05)
    await pool1.shutdown()
    for task in (running, waiting):
        with pytest.raises(WorkerDied, match="shut down"):
            await asyncio.wait_for(task, SLOW)
    assert not alive(pid)
    assert pool1.size == 0
    await pool1.shutdown()  # idempotent
    new = await pool1.run(tasks.pid)  # reuse: a new worker starts lazily
    assert new != pid
    assert pool1.size == 1


async def test_round_trip_overhead(pool1: KillablePool) -> None:
    await pool1.run(tasks.add, 0, 0)  # warm up
    times: list[float] = []
    for i in range(300):
        t0 = time.perf_counter()
        assert await pool1.run(tasks.add, i, 1) == i + 1
        times.append(time.perf_counter() - t0)
    median_ms = statistics.median(times) * 1000
    print(f"KillablePool round trip: median {median_ms:.3f} ms")
    assert median_ms < 5.0


async def test_a_killed_worker_is_gone_before_run_raises(pool: KillablePool) -> None:
    """Stronger than "gone within 2 s": run only raises TaskTimeout once the process is reaped."""
    started = Started()
    with pytest.raises(TaskTimeout):
        await pool.run(tasks.busy, timeout=0.3, on_progress=started)
    pid = await started.pid()
    assert not alive(pid)


def test_pool_is_created_outside_any_loop_and_used_from_several() -> None:
    p = KillablePool(3)
    assert p.size == 0

    async def use(stop: bool) -> Any:
        try:
            return await p.run(tasks.pid)
        finally:
            if stop:
                await p.shutdown()

    # Loops in turn, as tests and production do: the idle worker carries over between loops.
    first = asyncio.run(use(stop=False))
    assert asyncio.run(use(stop=True)) == first
    assert not alive(first)
    assert asyncio.run(use(stop=True)) != first


async def test_spawn_context_works_too() -> None:
    p = KillablePool(1, mp_context="spawn")
    try:
        assert await p.run(tasks.add, 4, 5) == 9
        started = Started()
        with pytest.raises(TaskTimeout):
            await p.run(tasks.busy, timeout=0.3, on_progress=started)
        assert not alive(await started.pid())
        assert await p.run(tasks.add, 1, 1) == 2
    finally:
        await p.shutdown()
