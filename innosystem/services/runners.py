"""The state of one runner process and its registration/heartbeat in the database.

A runner's heartbeat also renews the leases of the jobs it is running: a job whose lease lapses
belongs to a dead runner and the sweeper hands it to another.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from innosystem.config import Settings
from innosystem.models import Job, JobStatus, Runner
from innosystem.plugins import ProcessorRegistry
from innosystem.processors import JobContext


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunnerState:
    settings: Settings
    registry: ProcessorRegistry
    kind: str = "serve"
    in_flight: dict[str, JobContext] = field(default_factory=dict)
    _cpu_pool: ProcessPoolExecutor | None = None
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

    def lease_until(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.lease_seconds)

    @property
    def cpu_pool(self) -> ProcessPoolExecutor:
        """Process pool for ``kind = "cpu"`` processors, created on first use (forkserver, so
        children do not inherit the API's sockets and threads)."""
        if self._cpu_pool is None:
            ctx = multiprocessing.get_context("forkserver")
            self._cpu_pool = ProcessPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), mp_context=ctx
            )
        return self._cpu_pool

    def shutdown_pool(self) -> None:
        if self._cpu_pool is not None:
            self._cpu_pool.shutdown(wait=False, cancel_futures=True)
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
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
        },
    )


async def heartbeat(state: RunnerState) -> None:
    await Runner.filter(id=state.runner_id).update(
        heartbeat_at=utcnow(), in_flight=len(state.in_flight)
    )
    if state.in_flight:
        await Job.filter(
            id__in=list(state.in_flight), status=JobStatus.RUNNING.value, runner_id=state.runner_id
        ).update(lease_until=state.lease_until())


async def mark_stopped(state: RunnerState) -> None:
    await Runner.filter(id=state.runner_id).update(stopped_at=utcnow(), in_flight=0)


async def live_runner_serves(logic_id: str, state: RunnerState) -> bool:
    """Whether another runner with a fresh heartbeat takes this logic id."""
    fresh = utcnow() - timedelta(seconds=state.settings.lease_seconds)
    runners = (
        await Runner.filter(stopped_at__isnull=True, heartbeat_at__gte=fresh)
        .exclude(id=state.runner_id)
        .values_list("supported_job_types", flat=True)
    )
    return any(logic_id in (served or []) for served in runners)


async def list_runners(lease_seconds: int) -> list[tuple[Runner, str]]:
    """Every registered runner with its state: live (fresh heartbeat), stopped, or lost (no
    heartbeat for longer than a lease: its jobs are being handed to others)."""
    out = []
    now = utcnow()
    for runner in await Runner.all().order_by("-heartbeat_at"):
        if runner.stopped_at is not None:
            state = "stopped"
        elif runner.heartbeat_at < now - timedelta(seconds=lease_seconds):
            state = "lost"
        else:
            state = "live"
        out.append((runner, state))
    return out
