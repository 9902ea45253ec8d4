"""A process pool whose tasks can really be stopped.

``concurrent.futures.ProcessPoolExecutor`` cannot stop a task once it has started: a CPU-bound
processor that runs past its timeout, or whose job is cancelled, keeps a pool process busy
until it returns. :class:`KillablePool` gives every task a worker process of its own for the
task's duration and stops it for real:

* **timeout** -- the worker is terminated (SIGTERM, then SIGKILL after half a second) and
  :class:`TaskTimeout` is raised once the process is gone;
* **cancel** -- the task sees ``channel.cancelled()`` become true and may stop by itself; after
  ``grace`` seconds it is killed. Either way :class:`TaskCancelled` is raised;
* **asyncio cancellation** of the awaiting coroutine (``asyncio.wait_for`` around ``run``) kills
  the worker too: nobody is left to wait for its result.

Workers are long-lived and started lazily; a killed or dead worker is replaced lazily by the next
task that needs one. The parent side is asyncio-native: one duplex pipe per worker, read with
``loop.add_reader`` only while a task runs on it, so the pool object can be created outside any
loop and used from whichever loop runs the tasks (one loop at a time). ``shutdown`` stops every
worker but does not close the pool: the next ``run`` starts workers again.

Workers come from the forkserver by default (the API process has sockets and threads a forked
child should not inherit); ``spawn`` works too. ``fork`` is not recommended: sibling workers
would inherit each other's pipe ends, and a death might then go unnoticed. A worker exits when its
parent dies, even by SIGKILL (it watches its pipe for a hang-up), so no orphan keeps burning CPU.

Wire format, child to parent: one message per ``send_bytes``: a kind byte, the task's sequence
number (8 bytes, little-endian) and a pickle. Parent to child: the pickled ``(fn, args)``. Each
side counts the tasks of a worker, so a stale message (a progress report sent by a thread the
previous task left behind) is recognised and dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import queue
import select
import signal
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from loguru import logger

__all__ = [
    "Channel",
    "KillablePool",
    "RemoteError",
    "TaskCancelled",
    "TaskTimeout",
    "WorkerDied",
]

T = TypeVar("T")

#: Seconds between SIGTERM and SIGKILL when a worker is stopped.
TERM_GRACE = 0.5
#: Longest wait for a killed worker to be reaped before ``run`` raises anyway.
REAP_TIMEOUT = 5.0
#: Task payloads larger than this are written from a thread, not on the event loop.
_BIG_PAYLOAD = 32 * 1024
_PROTOCOL = pickle.HIGHEST_PROTOCOL

# Message kinds, child to parent.
_READY = b"S"  # the worker started and ran its initializer
_INIT_FAILED = b"I"  # the initializer raised; the worker exits
_PROGRESS = b"P"
_RESULT = b"R"
_ERROR = b"E"


class TaskTimeout(Exception):
    """The task ran past its timeout and its worker process was killed.

    Raised only after the process is gone, so no CPU is spent on an answer nobody waits for."""


class TaskCancelled(Exception):
    """Cancellation was requested while the task was queued or running.

    Raised whatever the task did afterwards (returned, raised, was killed after the grace
    period): a cancelled job's outcome must not depend on a race with its last instructions."""


class WorkerDied(Exception):
    """The worker process died while running (or starting for) the task: killed from outside,
    out of memory, ``os._exit``, a failing initializer, or the pool was shut down."""


class RemoteError(Exception):
    """The task raised (or returned) something that could not be sent back to the parent.

    The message is ``"TypeName: message"`` of the original; the remote traceback is the
    ``__cause__``. Only the message travels, so the pool never breaks on a bad exception."""


class _RemoteTraceback(Exception):
    """Carries the child's formatted traceback as the ``__cause__`` of a re-raised error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


# --- child side ---------------------------------------------------------------------------------
def _frame(kind: bytes, seq: int, obj: Any) -> memoryview:
    """One message: kind, sequence number, pickle. Pickled in full before anything is written,
    so a pickling error never leaves half a message in the pipe."""
    buf = io.BytesIO()
    buf.write(kind + seq.to_bytes(8, "little"))
    pickle.Pickler(buf, _PROTOCOL).dump(obj)
    return buf.getbuffer()


class _Link:
    """The child's end of its pipe, shared by the task thread and the progress sender thread."""

    def __init__(self, conn: Any, flag: Any) -> None:
        self.conn = conn
        self.flag = flag  # shared int64: sequence number of the task the parent cancelled
        self.lock = threading.Lock()  # one writer at a time, so messages never interleave
        self.outbox: queue.Queue[memoryview] | None = None
        self._starting = threading.Lock()

    def send(self, frame: memoryview) -> None:
        with self.lock:
            self.conn.send_bytes(frame)

    def post(self, frame: memoryview) -> None:
        """Queue a frame for the sender thread (started on first use): the task never waits
        for the parent to read."""
        if self.outbox is None:
            with self._starting:  # one sender thread, or order would be lost
                if self.outbox is None:
                    outbox: queue.Queue[memoryview] = queue.Queue()
                    threading.Thread(
                        target=self._sender, args=(outbox,), name="pool-progress", daemon=True
                    ).start()
                    self.outbox = outbox
        self.outbox.put(frame)

    def _sender(self, outbox: queue.Queue[memoryview]) -> None:
        while True:
            frame = outbox.get()
            try:
                self.send(frame)
            except OSError:  # the parent is gone; the worker exits anyway
                pass
            finally:
                outbox.task_done()

    def flush(self) -> None:
        """Wait until queued progress is written, so it reaches the parent before the result."""
        if self.outbox is not None:
            self.outbox.join()


class Channel:
    """What a task function receives as its first argument, inside the worker process.

    One channel per task: a thread the task leaves behind keeps its old channel, whose messages
    the parent recognises as stale and drops."""

    __slots__ = ("_flag", "_link", "_seq")

    def __init__(self, link: _Link, seq: int) -> None:
        self._link = link
        self._flag = link.flag
        self._seq = seq

    def cancelled(self) -> bool:
        """True once the parent asked to cancel this task. A read of shared memory, no system
        call: cheap enough to poll in an inner loop."""
        return self._flag.value == self._seq

    def progress(self, data: dict) -> None:
        """Send ``data`` to the parent's ``on_progress`` callback, in order, before the result.

        Pickled here (a pickling error raises here), written by a background thread: the task
        does not wait for the parent."""
        self._link.post(_frame(_PROGRESS, self._seq, data))


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # a broken __str__ must not break the worker
        return f"{type(exc).__name__}: <unprintable>"


def _error_frame(seq: int, exc: BaseException, prefix: str = "", keep: bool = True) -> memoryview:
    text = prefix + _describe(exc)
    try:
        tb = "".join(traceback.format_exception(exc))
    except Exception:
        tb = text
    exc_bytes: bytes | None = None
    if keep:
        try:
            exc_bytes = pickle.dumps(exc, _PROTOCOL)
        except Exception:
            exc_bytes = None
    return _frame(_ERROR, seq, (text, tb, exc_bytes))


def _exit_with_parent(fd: int) -> None:
    """Watch the pipe for the parent's end closing (the parent died, even by SIGKILL) and exit:
    a busy worker must not outlive its pool. Waits in poll(2) for a hang-up only, so incoming
    tasks do not wake it. Linux (POLLRDHUP); elsewhere workers exit on EOF once idle."""
    rdhup = getattr(select, "POLLRDHUP", None)
    if rdhup is None:
        return
    watcher = select.poll()
    watcher.register(fd, rdhup)  # POLLHUP, POLLERR and POLLNVAL are always reported

    def watch() -> None:
        while True:
            if watcher.poll():
                os._exit(70)

    threading.Thread(target=watch, name="pool-lifeline", daemon=True).start()


def _worker_main(conn: Any, flag: Any, initializer: Callable[[], None] | None) -> None:
    """The worker process: run the initializer once, then one task per message until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _exit_with_parent(conn.fileno())
    link = _Link(conn, flag)
    if initializer is not None:
        try:
            initializer()
        except BaseException as exc:
            tb = "".join(traceback.format_exception(exc))
            link.send(_frame(_INIT_FAILED, 0, (_describe(exc), tb)))
            os._exit(3)
    link.send(_frame(_READY, 0, None))
    seq = 0
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed the pipe: shut down quietly
        seq += 1
        try:
            fn, args = pickle.loads(data)
            del data
            result = fn(Channel(link, seq), *args)
        except BaseException as exc:
            link.flush()
            link.send(_error_frame(seq, exc))
            del exc
            continue
        del fn, args
        link.flush()
        try:
            frame = _frame(_RESULT, seq, result)
        except BaseException as exc:  # unpicklable result: report it, keep the worker
            frame = _error_frame(seq, exc, "result could not be sent back: ", keep=False)
        del result
        link.send(frame)
        del frame


# --- parent side --------------------------------------------------------------------------------
class _Slot:
    """Handed to a waiter instead of a worker: "you may start a new worker"."""


_SLOT = _Slot()


class _Job:
    """One conversation with a worker: its outcome future and what the reader needs."""

    __slots__ = ("cancel_requested", "fut", "grace_timer", "on_progress", "seq")

    def __init__(
        self, fut: asyncio.Future[tuple[str, Any]], seq: int, on_progress: Any = None
    ) -> None:
        self.fut = fut
        self.seq = seq
        self.on_progress = on_progress
        self.cancel_requested = False
        self.grace_timer: asyncio.TimerHandle | None = None

    def settle(self, kind: str, value: Any = None) -> None:
        if not self.fut.done():
            self.fut.set_result((kind, value))


class _Worker:
    __slots__ = (
        "broken",
        "conn",
        "dead",
        "exitcode",
        "fd",
        "flag",
        "job",
        "loop",
        "pid",
        "proc",
        "reaped",
        "seq",
        "stopping",
        "term_sent",
    )

    def __init__(self, proc: Any, conn: Any, flag: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.fd: int = conn.fileno()
        self.flag = flag
        self.pid: int = proc.pid
        self.seq = 0
        self.job: _Job | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # where the pipe reader is registered
        self.broken = False  # killed, dying or dead: never given another task
        self.stopping = False  # stopped by shutdown()
        self.term_sent = False
        self.dead: asyncio.Future[None] | None = None  # resolves once the process is reaped
        self.reaped = False
        self.exitcode: int | None = None

    def exited(self) -> bool:
        """The process is gone (its sentinel is readable): one poll(2), no waiting."""
        return self.reaped or bool(mp_connection.wait([self.proc.sentinel], 0))


_POOLS: weakref.WeakSet[KillablePool] = weakref.WeakSet()


@atexit.register
def _kill_all_at_exit() -> None:
    """Workers are not daemonic (a processor may start processes of its own), so
    multiprocessing's exit handler would wait for them: kill them first (atexit runs handlers in
    reverse order of registration, and multiprocessing registered its own earlier)."""
    for pool in list(_POOLS):
        pool._kill_now()


class KillablePool:
    """At most ``max_workers`` long-lived worker processes, one task at a time each, whose tasks
    can be stopped (timeout, cancel) by killing their process.

    ``run`` is safe to call concurrently from many coroutines of one event loop; waiting for a
    free worker is FIFO and never blocks the loop. After :meth:`shutdown` the pool can be used
    again: new workers are started lazily by the next ``run``.
    """

    def __init__(
        self,
        max_workers: int,
        mp_context: str = "forkserver",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max = max_workers
        self._ctx = multiprocessing.get_context(mp_context)
        self._initializer = initializer
        self._idle: list[_Worker] = []  # a stack: the most recently used worker is the warmest
        self._workers: set[_Worker] = set()  # every worker not reaped yet, busy or not
        self._starting = 0  # slots reserved for workers being started
        self._waiters: deque[asyncio.Future[_Worker | _Slot]] = deque()
        self._epoch = 0  # bumped by shutdown(): workers of an older epoch are not reused
        _POOLS.add(self)

    @property
    def size(self) -> int:
        """Live worker processes (including any being stopped and not reaped yet)."""
        return len(self._workers)

    # --- running a task -------------------------------------------------------------------------
    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 -- counted from the start on a worker
        cancel: asyncio.Event | None = None,
        grace: float = 5.0,
        on_progress: Callable[[dict], None] | None = None,
    ) -> T:
        """Run ``fn(channel, *args)`` in a worker process and return its result.

        ``timeout`` counts from the moment a worker takes the task, not while it waits for one.
        Raises what ``fn`` raised (or :class:`RemoteError` when that cannot be sent back),
        :class:`TaskTimeout`, :class:`TaskCancelled` or :class:`WorkerDied`. ``on_progress``
        is called on the loop, in order, for each ``channel.progress(...)``, before ``run``
        returns; an exception it raises is logged and ignored. ``fn`` and ``args`` must pickle
        (an error pickling them is raised here, before any worker is involved).
        """
        if cancel is not None and cancel.is_set():
            raise TaskCancelled("cancelled before the task started")
        payload = pickle.dumps((fn, args), _PROTOCOL)
        worker = await self._acquire(cancel)
        try:
            if cancel is not None and cancel.is_set():
                raise TaskCancelled("cancelled before the task started")
            if worker.broken:
                raise WorkerDied(self._death_message(worker, "before the task started"))
            job = _Job(asyncio.get_running_loop().create_future(), worker.seq + 1, on_progress)
            kind, value = await self._converse(worker, job, payload, timeout, cancel, grace)
            # Set before run returns counts, even if the watcher has not seen it yet.
            cancelled = job.cancel_requested or (cancel is not None and cancel.is_set())
            if kind == "ok":
                if cancelled:
                    raise TaskCancelled("cancelled; the task stopped by itself")
                return value  # type: ignore[no-any-return]
            if kind == "error":
                if cancelled:
                    raise TaskCancelled("cancelled; the task stopped by raising") from value
                raise value
            if kind in ("timeout", "grace"):
                await self._stop(worker)
                if cancelled:
                    raise TaskCancelled(
                        f"cancelled; the task did not stop within {grace}s, "
                        f"worker process {worker.pid} was killed"
                    )
                raise TaskTimeout(
                    f"the task ran longer than {timeout}s, worker process {worker.pid} was killed"
                )
            # "died"
            await self._wait_reaped(worker)
            if cancelled:
                raise TaskCancelled("cancelled; the worker process died meanwhile")
            raise WorkerDied(self._death_message(worker, "while running the task"))
        finally:
            self._release(worker)

    async def _converse(
        self,
        worker: _Worker,
        job: _Job,
        payload: bytes | None,
        time_limit: float | None,
        cancel: asyncio.Event | None,
        grace: float,
    ) -> tuple[str, Any]:
        """Send the task (if any) and wait for its outcome: ("ok", value), ("error", exc),
        ("died", None), ("timeout", None), ("grace", None), ("ready", None) or
        ("init_failed", text). If the awaiting coroutine is cancelled, the worker is killed."""
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        watcher: asyncio.Task[Any] | None = None
        worker.job = job
        self._start_reading(worker, loop)
        try:
            if payload is not None:
                worker.seq = job.seq
                try:
                    if len(payload) > _BIG_PAYLOAD:
                        await asyncio.to_thread(worker.conn.send_bytes, payload)
                    else:
                        worker.conn.send_bytes(payload)
                except OSError:
                    worker.broken = True
                    job.settle("died")
            if time_limit is not None:
                timer = loop.call_later(time_limit, job.settle, "timeout")
            if cancel is not None:
                watcher = loop.create_task(cancel.wait())
                watcher.add_done_callback(lambda t: self._on_cancel(t, worker, job, grace))
            return await job.fut
        except asyncio.CancelledError:
            # Nobody will wait for this task any more: stop it for real.
            self._terminate(worker)
            raise
        finally:
            job.settle("done")  # fires no more timers/grace callbacks
            for handle in (timer, job.grace_timer):
                if handle is not None:
                    handle.cancel()
            if watcher is not None:
                watcher.cancel()
            self._stop_reading(worker)
            worker.job = None

    def _on_cancel(
        self, watcher: asyncio.Task[Any], worker: _Worker, job: _Job, grace: float
    ) -> None:
        if watcher.cancelled() or job.fut.done():
            return
        job.cancel_requested = True
        worker.flag.value = job.seq
        if grace <= 0:
            job.settle("grace")
        else:
            job.grace_timer = job.fut.get_loop().call_later(grace, job.settle, "grace")

    # --- reading the pipe -----------------------------------------------------------------------
    def _start_reading(self, worker: _Worker, loop: asyncio.AbstractEventLoop) -> None:
        if worker.loop is None and not worker.reaped:
            loop.add_reader(worker.fd, self._on_readable, worker)
            worker.loop = loop

    def _stop_reading(self, worker: _Worker) -> None:
        if worker.loop is not None:
            worker.loop.remove_reader(worker.fd)
            worker.loop = None

    def _on_readable(self, worker: _Worker) -> None:
        """One message per call (the selector is level-triggered: it calls again if more is
        waiting)."""
        job = worker.job
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._stop_reading(worker)
            worker.broken = True
            if job is not None:
                job.settle("died")
            self._watch_death(worker)
            return
        if job is None or job.fut.done():
            return
        kind = data[:1]
        if int.from_bytes(data[1:9], "little") != job.seq:
            return  # stale: sent for an earlier task
        body = memoryview(data)[9:]
        if kind == _PROGRESS:
            if job.on_progress is not None:
                try:
                    job.on_progress(pickle.loads(body))
                except Exception:
                    logger.opt(exception=True).warning("pool: on_progress failed")
        elif kind == _RESULT:
            try:
                job.settle("ok", pickle.loads(body))
            except Exception as exc:
                job.settle("error", RemoteError(f"result could not be unpickled: {_describe(exc)}"))
        elif kind == _ERROR:
            job.settle("error", _rebuild_error(body))
        elif kind == _READY:
            job.settle("ready")
        elif kind == _INIT_FAILED:
            text, tb = pickle.loads(body)
            worker.broken = True
            job.settle("init_failed", (text, tb))

    # --- workers: start, hand out, stop ---------------------------------------------------------
    async def _acquire(self, cancel: asyncio.Event | None) -> _Worker:
        """A worker for one task: an idle one, a new one if below max_workers, else wait (FIFO)."""
        if not self._waiters:
            worker = self._pop_idle()
            if worker is not None:
                return worker
            if len(self._workers) + self._starting < self._max:
                self._starting += 1
                return await self._start_worker()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Worker | _Slot] = loop.create_future()
        self._waiters.append(fut)
        watcher: asyncio.Task[Any] | None = None
        try:
            if cancel is None:
                item = await fut
            else:
                watcher = loop.create_task(cancel.wait())
                await asyncio.wait((fut, watcher), return_when=asyncio.FIRST_COMPLETED)
                if not fut.done():
                    raise TaskCancelled("cancelled while waiting for a worker")
                item = fut.result()
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._give_back(fut.result())
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if isinstance(item, _Slot):
            return await self._start_worker()
        return item

    async def _start_worker(self) -> _Worker:
        """Start a worker in the slot the caller reserved (``_starting``) and wait until it is
        ready (its initializer ran)."""
        loop = asyncio.get_running_loop()
        epoch = self._epoch
        spawn = loop.run_in_executor(None, self._spawn)  # Process.start() blocks
        try:
            worker = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            spawn.add_done_callback(self._spawned_for_nobody)
            raise
        except BaseException:
            self._starting -= 1
            self._wake()
            raise
        self._starting -= 1
        self._workers.add(worker)
        if epoch != self._epoch:  # shut down meanwhile
            self._terminate(worker)
            raise WorkerDied("the pool was shut down while a worker was starting")
        job = _Job(loop.create_future(), 0)
        try:
            kind, value = await self._converse(worker, job, None, None, None, 0)
        except BaseException:
            self._terminate(worker)
            raise
        if kind == "ready":
            return worker
        self._terminate(worker)
        await self._wait_reaped(worker)
        if kind == "init_failed":
            text, tb = value
            raise WorkerDied(
                f"the initializer failed in worker process {worker.pid}: {text}"
            ) from _RemoteTraceback(tb)
        raise WorkerDied(self._death_message(worker, "while starting"))

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        try:
            flag = self._ctx.RawValue("q", 0)
            proc = self._ctx.Process(
                target=_worker_main,
                args=(child_conn, flag, self._initializer),
                name="innosystem-pool-worker",
            )
            proc.start()
        except BaseException:
            parent_conn.close()
            raise
        finally:
            child_conn.close()  # the child has its copy: EOF on ours means it died
        return _Worker(proc, parent_conn, flag)

    def _spawned_for_nobody(self, spawn: asyncio.Future[_Worker]) -> None:
        """The coroutine that started this worker was cancelled meanwhile: stop the worker (it
        is freed when reaped) or, if the start failed, free its slot at once."""
        self._starting -= 1
        if spawn.cancelled() or spawn.exception() is not None:
            self._wake()
            return
        worker = spawn.result()
        self._workers.add(worker)
        self._terminate(worker)

    def _pop_idle(self) -> _Worker | None:
        """The warmest idle worker still alive; workers that died while idle (OOM killer, a
        stray kill) are reaped on the way, so an innocent task never runs into them."""
        while self._idle:
            worker = self._idle.pop()
            if not worker.exited():
                return worker
            self._reap(worker, wake=False)
        return None

    def _release(self, worker: _Worker) -> None:
        """After a task: a healthy worker goes to the next waiter or the idle stack; a broken one
        frees its slot when reaped (see ``_watch_death``)."""
        if worker.broken or worker.reaped:
            self._terminate(worker)
            return
        self._idle.append(worker)
        self._wake()

    def _give_back(self, item: _Worker | _Slot) -> None:
        if isinstance(item, _Slot):
            self._starting -= 1
        else:
            self._release(item)
            return
        self._wake()

    def _wake(self) -> None:
        """Hand idle workers, then free slots, to waiters in FIFO order."""
        while self._waiters:
            item: _Worker | _Slot | None = self._pop_idle()
            if item is None:
                if len(self._workers) + self._starting >= self._max:
                    return
                self._starting += 1
                item = _SLOT
            fut = self._waiters.popleft()
            if fut.done():  # cancelled waiters remove themselves; be safe anyway
                if isinstance(item, _Slot):
                    self._starting -= 1
                else:
                    self._idle.append(item)
                continue
            fut.set_result(item)

    def _terminate(self, worker: _Worker, kill: bool = False) -> None:
        """Stop a worker: SIGTERM, then SIGKILL after TERM_GRACE (or SIGKILL at once)."""
        worker.broken = True
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        if worker.reaped:
            return
        if kill:
            self._kill(worker)
        elif not worker.term_sent:
            worker.term_sent = True
            with contextlib.suppress(Exception):
                worker.proc.terminate()
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(TERM_GRACE, self._kill, worker)
        self._watch_death(worker)

    def _kill(self, worker: _Worker) -> None:
        if not worker.reaped:
            with contextlib.suppress(Exception):
                worker.proc.kill()

    def _watch_death(self, worker: _Worker) -> None:
        """Reap the worker when its process sentinel becomes readable (the forkserver writes the
        exit status there once it reaped the child), then free its slot."""
        if worker.reaped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (interpreter exit): reap synchronously
            self._reap(worker)
            return
        if worker.dead is not None:
            if worker.dead.get_loop() is loop:
                return
            # Watched from a loop that has since been closed (tests run one loop each).
            worker.dead.get_loop().remove_reader(worker.proc.sentinel)
        worker.dead = loop.create_future()
        loop.add_reader(worker.proc.sentinel, self._reap, worker)

    def _reap(self, worker: _Worker, wake: bool = True) -> None:
        """Collect the exit status of a dead worker and free its slot. Process.close() is not
        called: multiprocessing may poll the same Process from a thread starting another one;
        the descriptors are closed when the Process is garbage collected."""
        if worker.reaped:
            return
        if worker.dead is not None:
            worker.dead.get_loop().remove_reader(worker.proc.sentinel)
        self._stop_reading(worker)
        worker.proc.join(1.0)  # the exit status is ready: no wait with forkserver
        if worker.proc.exitcode is None:  # not dead after all (fork/spawn): kill and wait
            worker.proc.kill()
            worker.proc.join(REAP_TIMEOUT)
        worker.exitcode = worker.proc.exitcode
        worker.reaped = True
        worker.broken = True
        worker.conn.close()
        self._workers.discard(worker)
        if worker.dead is not None and not worker.dead.done():
            worker.dead.set_result(None)
        if wake:
            self._wake()

    async def _wait_reaped(self, worker: _Worker) -> None:
        self._watch_death(worker)
        if worker.dead is not None and not worker.reaped:
            try:
                await asyncio.wait_for(asyncio.shield(worker.dead), REAP_TIMEOUT)
            except TimeoutError:
                logger.warning("pool: worker process {} not reaped after kill", worker.pid)

    async def _stop(self, worker: _Worker, kill: bool = False) -> None:
        self._terminate(worker, kill)
        await self._wait_reaped(worker)

    @staticmethod
    def _death_message(worker: _Worker, when: str) -> str:
        if worker.stopping:
            return f"the pool was shut down {when} (worker process {worker.pid})"
        code = worker.exitcode
        how = "" if code is None else f" (exit code {code})"
        return f"worker process {worker.pid} died {when}{how}"

    # --- shutdown -------------------------------------------------------------------------------
    async def shutdown(self, kill: bool = False) -> None:
        """Stop every worker (SIGTERM then SIGKILL after TERM_GRACE, or SIGKILL at once if
        ``kill``) and wait until they are gone. Running tasks raise :class:`WorkerDied`, and so
        do tasks waiting for a worker. Idempotent; the pool stays usable: the next ``run``
        starts new workers."""
        self._epoch += 1
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(WorkerDied("the pool was shut down"))
        self._idle.clear()
        workers = list(self._workers)
        for worker in workers:
            worker.stopping = True
            self._terminate(worker, kill)
        await asyncio.gather(*(self._wait_reaped(w) for w in workers))

    def _kill_now(self) -> None:
        """Synchronous last resort (interpreter exit): SIGKILL every worker and reap it."""
        self._epoch += 1
        self._idle.clear()
        for worker in list(self._workers):
            worker.stopping = True
            with contextlib.suppress(Exception):
                worker.proc.kill()
        for worker in list(self._workers):
            with contextlib.suppress(Exception):
                worker.proc.join(1.0)


def _rebuild_error(body: memoryview) -> BaseException:
    """The child's exception if it unpickles into an ``Exception``; else RemoteError. Other
    ``BaseException``s (SystemExit, KeyboardInterrupt, CancelledError) are never re-raised as
    such in the parent: they would stop the server or confuse asyncio's cancellation."""
    text, tb, exc_bytes = pickle.loads(body)
    exc: BaseException | None = None
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except Exception:
            exc = None
    if not isinstance(exc, Exception):
        exc = RemoteError(text)
    exc.__cause__ = _RemoteTraceback(tb)
    return exc
