"""The only module that declares Dramatiq actors, and the runtime that runs them.

Actors are coroutines executed on the host's event loop (Quart's loop under ``serve``, the main
loop under ``worker``): Dramatiq's worker threads hand each coroutine to that loop through
``run_coroutine_threadsafe``. One loop means one set of Tortoise connections; Dramatiq's own
AsyncIO middleware would start a second loop and cross-loop errors with it (DESIGN §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.middleware import Middleware
from loguru import logger

from innosystem import db
from innosystem.broker import (
    QUEUES,
    Dispatcher,
    create_broker,
    get_dispatcher,
    set_dispatcher,
)
from innosystem.config import Settings, redacted_url
from innosystem.models import Job, JobStatus
from innosystem.plugins import ProcessorRegistry
from innosystem.services import runners
from innosystem.services.jobs import execute_job, poll_cancellations
from innosystem.services.runners import RunnerState, utcnow
from innosystem.services.sweeper import sweep


class HostLoopThread(EventLoopThread):
    """An EventLoopThread that owns no thread: it targets an already-running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logger=None)
        self.loop.close()  # the base class made a loop of its own; we use the host's
        self.loop = loop

    def start(self, *, timeout: float | None = None) -> None:  # the host runs the loop
        return None

    def stop(self) -> None:
        return None


class HostLoopMiddleware(Middleware):
    """Points Dramatiq's async actors at the host loop for the worker's lifetime."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        set_event_loop_thread(HostLoopThread(self.loop))

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        set_event_loop_thread(None)


_state: RunnerState | None = None


async def run_job(job_id: str) -> None:
    """Actor body: one delivery of "run job X" (see services.jobs.execute_job).

    Never raises: Dramatiq must not retry on its own (attempts live in the database). A delivery
    that fails before its claim (e.g. the database is briefly down) leaves the job pending, and
    the sweeper sends it again after ``requeue_after_seconds``.
    """
    if _state is None:  # pragma: no cover - the runtime sets it before consuming
        raise RuntimeError("worker runtime not started")
    try:
        await execute_job(job_id, _state)
    except Exception as exc:
        logger.opt(exception=exc).bind(job_id=job_id).error("delivery of job failed: {}", exc)


class WorkerRuntime:
    """Broker + Dramatiq worker + sweeper/heartbeat loop of one process (embedded or not)."""

    def __init__(self, settings: Settings, registry: ProcessorRegistry, kind: str) -> None:
        self.settings = settings
        self.state = RunnerState(settings=settings, registry=registry, kind=kind)
        self.broker: Any = None
        self.worker: dramatiq.Worker | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, *, consume: bool = True) -> None:
        global _state
        loop = asyncio.get_running_loop()
        self.broker = create_broker(self.settings, [HostLoopMiddleware(loop)])
        actors = {
            priority: dramatiq.actor(
                run_job,
                broker=self.broker,
                actor_name=actor_name,
                queue_name=queue,
                priority=rank,
            )
            for priority, (queue, actor_name, rank) in QUEUES.items()
        }
        set_dispatcher(
            Dispatcher(self.broker, actors, blocking=self.settings.broker_kind == "redis")
        )
        _state = self.state
        runners.set_local_state(self.state)
        logger.info(
            "broker {} ({})", redacted_url(self.settings.broker_url), self.settings.broker_kind
        )
        await runners.register(self.state)
        await sweep(self.state, startup=True)
        if consume:
            self.worker = dramatiq.Worker(
                self.broker, worker_threads=self.settings.worker_threads, worker_timeout=100
            )
            await asyncio.to_thread(self.worker.start)
            # Without this, middleware waiting for process boot never fires (DESIGN §7).
            self.broker.emit_after("process_boot")
            logger.info(
                "runner {} consuming with {} threads (types: {})",
                self.state.runner_id,
                self.settings.worker_threads,
                ", ".join(self.settings.supported_job_types) or "all",
            )
        self._ticker = asyncio.create_task(self._tick_forever(), name="innosystem-sweeper")

    async def _tick_forever(self) -> None:
        interval = self.settings.poll_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await runners.heartbeat(self.state)
                await poll_cancellations(self.state)
                if not self._stopping:  # while draining, only keep our leases alive
                    await sweep(self.state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be briefly down; keep ticking
                logger.warning("sweeper tick failed: {}", exc)

    async def stop(self) -> None:
        global _state
        self._stopping = True
        if self.worker is not None:
            # The ticker keeps heartbeating meanwhile, so jobs finishing in the grace period keep
            # their leases and are not handed to another runner under our feet.
            timeout_ms = int(self.settings.shutdown_timeout_seconds * 1000)
            await asyncio.to_thread(self.worker.stop, timeout_ms)
            self.worker = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        with contextlib.suppress(Exception):
            # Jobs still running after the grace period become someone else's at once.
            await Job.filter(status=JobStatus.RUNNING.value, runner_id=self.state.runner_id).update(
                lease_until=utcnow()
            )
            await runners.mark_stopped(self.state)
        await self.state.shutdown_pool()
        set_dispatcher(None)
        runners.set_local_state(None)
        _state = None
        if self.broker is not None:
            self.broker.close()
            self.broker = None

    async def health(self) -> None:
        """Raise if this process cannot reach its broker or its worker stopped."""
        if self.broker is None:
            raise RuntimeError("broker not started")
        dispatcher = get_dispatcher()
        if dispatcher is not None:
            await dispatcher.ping()


async def run_worker_process(settings: Settings, registry: ProcessorRegistry) -> None:
    """``innosystem worker``: the runtime without HTTP, until SIGTERM/SIGINT."""
    if settings.broker_kind != "redis":
        from innosystem.errors import ConfigError

        raise ConfigError(
            "INNOSYSTEM_BROKER_URL: `innosystem worker` shares work through a "
            "broker; set it to redis://HOST:PORT/DB (memory:// is per-process)"
        )
    if settings.auto_migrate:
        await db.migrate(settings)
    await db.connect(settings)
    runtime = WorkerRuntime(settings, registry, kind="worker")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        await stop.wait()
        logger.info("stopping runner {}", settings.runner_id)
    finally:
        await runtime.stop()
        await db.close()
