"""The message broker from a URL: ``memory://`` (Dramatiq's StubBroker, consumed by real Worker
threads in this process) or ``redis://`` (shared by every process of a deployment).

The broker only carries "run job X" nudges; the database decides what is due. A lost message is
therefore harmless: the sweeper sends it again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware

from innosystem.config import Settings
from innosystem.models import Priority

#: Queue for jobs the sweeper's starvation guard found waiting too long: ahead of everything.
AGED = "aged"

#: One queue per priority, each with its own actor (same body, see innosystem.worker). A worker
#: consumes them all; Dramatiq's work queue orders prefetched messages by actor priority (lower
#: first), so a high job overtakes a whole low backlog, which waits in the broker, not in memory.
QUEUES: dict[str, tuple[str, str, int]] = {
    AGED: ("jobs.aged", "run_job_aged", 0),
    Priority.HIGH.value: ("jobs.high", "run_job_high", 10),
    Priority.NORMAL.value: ("jobs", "run_job", 20),
    Priority.LOW.value: ("jobs.low", "run_job_low", 30),
}


def create_broker(settings: Settings, extra_middleware: list[Middleware] | None = None) -> Any:
    # No Retries / TimeLimit / AgeLimit middleware: attempts, backoff and timeouts are the
    # database's business (DESIGN §4), so Dramatiq must never retry or kill on its own.
    middleware: list[Middleware] = [CurrentMessage(), *(extra_middleware or [])]
    if settings.broker_kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(
            url=settings.broker_url, middleware=middleware, namespace=settings.broker_namespace
        )
    else:
        broker = StubBroker(middleware=middleware)
    return broker


class Dispatcher:
    """Sends "run job X" messages; the one way services reach the broker."""

    def __init__(self, broker: Any, actors: dict[str, dramatiq.Actor], *, blocking: bool) -> None:
        self.broker = broker
        self.actors = actors  # by priority
        self._blocking = blocking

    async def send(
        self, job_id: str, delay_ms: int | None = None, priority: str = Priority.NORMAL.value
    ) -> None:
        """Enqueue on the priority's queue; a network broker's blocking send runs off the
        event loop."""
        kwargs: dict[str, Any] = {"args": (job_id,)}
        if delay_ms and delay_ms > 0:
            kwargs["delay"] = int(delay_ms)
        actor = self.actors[priority]
        if self._blocking:
            await asyncio.to_thread(actor.send_with_options, **kwargs)
        else:
            actor.send_with_options(**kwargs)

    async def send_many(self, jobs: list[tuple[str, str]]) -> None:
        """``jobs``: (job id, priority) pairs."""
        if self._blocking:
            await asyncio.to_thread(self._send_all, jobs)
        else:
            self._send_all(jobs)

    def _send_all(self, jobs: list[tuple[str, str]]) -> None:
        for job_id, priority in jobs:
            self.actors[priority].send_with_options(args=(job_id,))

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        client = getattr(self.broker, "client", None)
        if client is not None:
            await asyncio.to_thread(client.ping)


_dispatcher: Dispatcher | None = None


def get_dispatcher() -> Dispatcher | None:
    return _dispatcher


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    global _dispatcher
    _dispatcher = dispatcher
