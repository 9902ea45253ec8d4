"""The state of one runner process and its registration/heartbeat in the database.

A runner heartbeats every ``poll_interval_ms`` (the sweeper tick). The heartbeat also renews the
leases of the jobs it is running, so a job whose lease lapses belongs to a dead runner and the
sweeper hands it to another; and it writes the runner's counters of finished attempts, kept in
memory between heartbeats (no write per job).

Seen from the ``runners`` table, a runner is (``runner_status``):

* ``active``: it heartbeated within two poll intervals;
* ``stale``: its last heartbeat is older than that but within ``lease_seconds``: it may be slow
  or cut off, and its leases still hold, so its running jobs stay its own;
* ``gone``: it stopped, or has been silent for longer than ``lease_seconds``: the sweepers
  recover its running jobs.

Active and stale runners count as serving the logic ids they list; gone ones do not.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tortoise.expressions import Q

from innosystem.config import Settings
from innosystem.models import Job, JobStatus, Runner
from innosystem.plugins import ProcessorRegistry
from innosystem.pool import KillablePool
from innosystem.processors import JobContext


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunnerState:
    settings: Settings
    registry: ProcessorRegistry
    kind: str = "serve"
    in_flight: dict[str, JobContext] = field(default_factory=dict)
    #: Attempts this process finished since it started, and how many of them did not succeed;
    #: written to its ``runners`` row by the heartbeat and at stop.
    processed: int = 0
    failed: int = 0
    _cpu_pool: KillablePool | None = None
    _artifact_store: Any = None

    @property
    def artifact_store(self) -> Any:
        if self._artifact_store is None:
            self._artifact_store = self.registry.artifact_store(self.settings)
        return self._artifact_store

    @property
    def runner_id(self) -> str:
        return self.settings.runner_id

    @property
    def served_logic_ids(self) -> list[str]:
        """SUPPORTED_JOB_TYPES if set, else every logic id an installed plugin serves."""
        wanted = self.settings.supported_job_types
        return list(wanted) if wanted else self.registry.logic_ids()

    def supports(self, logic_id: str) -> bool:
        return logic_id in self.served_logic_ids and self.registry.get(logic_id) is not None

    def count_finished(self, ok: bool) -> None:
        """Count one attempt that ended (``ok``: it succeeded); the next heartbeat stores it."""
        self.processed += 1
        if not ok:
            self.failed += 1

    def lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.lease_seconds)

    @property
    def cpu_pool(self) -> KillablePool:
        """Processes for ``kind = "cpu"`` processors (forkserver, so children do not inherit
        the API's sockets and threads), started on first use. A task past its timeout, or
        cancelled past the grace period, is stopped by killing its process."""
        if self._cpu_pool is None:
            self._cpu_pool = KillablePool(max_workers=max(1, os.cpu_count() or 1))
        return self._cpu_pool

    async def shutdown_pool(self) -> None:
        if self._cpu_pool is not None:
            await self._cpu_pool.shutdown(kill=True)
            self._cpu_pool = None


async def register(state: RunnerState) -> None:
    now = utcnow()
    supported = [i for i in state.served_logic_ids if state.registry.get(i) is not None]
    await Runner.update_or_create(
        id=state.runner_id,
        defaults={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "kind": state.kind,
            "supported_job_types": supported,
            "capacity": state.settings.worker_threads,
            "in_flight": 0,
            # The counters are per process life (since started_at), like the in-memory ones.
            "processed_count": state.processed,
            "failed_count": state.failed,
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
        },
    )


async def heartbeat(state: RunnerState) -> None:
    await Runner.filter(id=state.runner_id).update(
        heartbeat_at=utcnow(),
        in_flight=len(state.in_flight),
        processed_count=state.processed,
        failed_count=state.failed,
    )
    if state.in_flight:
        await Job.filter(
            id__in=list(state.in_flight), status=JobStatus.RUNNING.value, runner_id=state.runner_id
        ).update(lease_until=state.lease_until())


async def mark_stopped(state: RunnerState) -> None:
    await Runner.filter(id=state.runner_id).update(
        stopped_at=utcnow(),
        in_flight=0,
        processed_count=state.processed,
        failed_count=state.failed,
    )


# --- status, as seen from the runners table -----------------------------------------------------
RunnerStatus = Literal["active", "stale", "gone"]
RUNNER_STATUSES: tuple[RunnerStatus, ...] = ("active", "stale", "gone")


def active_window(settings: Settings) -> timedelta:
    """A runner that heartbeated within this is ``active``: two heartbeat periods."""
    return timedelta(milliseconds=2 * settings.poll_interval_ms)


def runner_status(runner: Runner, now: datetime, settings: Settings) -> RunnerStatus:
    if runner.stopped_at is not None:
        return "gone"
    if runner.heartbeat_at >= now - active_window(settings):
        return "active"
    if runner.heartbeat_at >= now - timedelta(seconds=settings.lease_seconds):
        return "stale"
    return "gone"


def status_filter(status: RunnerStatus, now: datetime, settings: Settings) -> Q:
    """The rows ``runner_status`` classifies as ``status``, as a filter."""
    active_since = now - active_window(settings)
    lease_since = now - timedelta(seconds=settings.lease_seconds)
    if status == "active":
        return Q(stopped_at__isnull=True, heartbeat_at__gte=active_since)
    if status == "stale":
        return Q(
            stopped_at__isnull=True, heartbeat_at__lt=active_since, heartbeat_at__gte=lease_since
        )
    return Q(stopped_at__isnull=False) | Q(heartbeat_at__lt=lease_since)


def _not_gone(now: datetime, lease_seconds: int) -> Q:
    return Q(stopped_at__isnull=True, heartbeat_at__gte=now - timedelta(seconds=lease_seconds))


async def serving_runners(lease_seconds: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Runners that are not gone (active or stale): ``id``, ``heartbeat_at`` and
    ``supported_job_types`` of each."""
    now = now or utcnow()
    return await Runner.filter(_not_gone(now, lease_seconds)).values(
        "id", "heartbeat_at", "supported_job_types"
    )


async def live_runner_serves(logic_id: str, state: RunnerState) -> bool:
    """Whether another runner that is not gone (active or stale) takes this logic id."""
    runners = (
        await Runner.filter(_not_gone(utcnow(), state.settings.lease_seconds))
        .exclude(id=state.runner_id)
        .values_list("supported_job_types", flat=True)
    )
    return any(logic_id in (served or []) for served in runners)


async def list_runners(
    settings: Settings, status: RunnerStatus | None = None
) -> list[tuple[Runner, RunnerStatus]]:
    """Registered runners, latest heartbeat first, each with its status; only those of
    ``status`` when given. The thresholds are this process's ``poll_interval_ms`` and
    ``lease_seconds`` (every process of a deployment should share them)."""
    now = utcnow()
    query = Runner.all() if status is None else Runner.filter(status_filter(status, now, settings))
    return [(r, runner_status(r, now, settings)) for r in await query.order_by("-heartbeat_at")]


# --- this process's runner ----------------------------------------------------------------------
_local: RunnerState | None = None


def set_local_state(state: RunnerState | None) -> None:
    """The worker runtime registers its state, so a request served by this process can reach a
    job this process is running (e.g. to cancel it without waiting for the next tick)."""
    global _local
    _local = state


def local_state() -> RunnerState | None:
    return _local
