"""``services.queues.pending_reason``: why a pending job has not run yet, called directly inside
an in-process app (``innosystem.testing``) on a fresh database of the configured backend.

The jobs are written straight to the ``jobs`` table with a recent ``enqueued_at`` and no broker
message, so the app's own workers and sweeper leave them pending."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from innosystem.models import Job, JobType
from innosystem.services import queues
from innosystem.services.runners import utcnow


@pytest.fixture
def innosystem_env(innosystem_env: dict[str, str], databases: Any) -> dict[str, str]:
    return {
        **innosystem_env,
        "INNOSYSTEM_DATABASE_URL": databases.new_url(),  # PostgreSQL when the suite runs on it
        "INNOSYSTEM_REQUEUE_AFTER_SECONDS": "3600",  # the sweeper sends none of them
        "INNOSYSTEM_PRIORITY_AGING_SECONDS": "3600",
    }


async def test_pending_reason(innosystem_app, innosystem_tenant, innosystem_create_job_type):
    settings = innosystem_app.config["INNOSYSTEM_SETTINGS"]
    echo = await innosystem_create_job_type("test-echo")
    nowhere = await JobType.create(
        name="not installed", processing_logic_id="test-nowhere", standard_cost_cents=0
    )
    customer_id = innosystem_tenant["customer_id"]
    now = utcnow()

    async def job(job_type_id: Any = echo["id"], **fields: Any) -> Job:
        return await Job.create(
            customer_id=customer_id,
            job_type_id=job_type_id,
            input_data={},
            cost_cents=0,
            enqueued_at=now,
            **fields,
        )

    async def reason(job: Job) -> str | None:
        return await queues.pending_reason(await Job.get(id=job.id), settings)

    later = now + timedelta(hours=2)
    scheduled = await job(run_at=later, priority="high")
    assert await reason(scheduled) == f"scheduled for {later.isoformat().replace('+00:00', 'Z')}"

    first = await job(priority="normal")
    assert await reason(first) == "waiting for a free runner"  # the schedule is not ahead
    second = await job(priority="normal")
    assert await reason(second) == "queued behind 1 job of equal or higher priority"
    urgent = await job(priority="high")  # newer, but taken first
    assert await reason(urgent) == "waiting for a free runner"
    assert await reason(second) == "queued behind 2 jobs of equal or higher priority"
    retried = await job(priority="low", run_at=now - timedelta(seconds=5), attempts=1)
    assert await reason(retried) == "queued behind 3 jobs of equal or higher priority"
    assert await reason(first) == "queued behind 1 job of equal or higher priority"

    stuck = await job(job_type_id=nowhere.id, priority="high")
    assert await reason(stuck) == "no active runner serves test-nowhere"
    assert await reason(await job(job_type_id=nowhere.id, run_at=later)) == (
        f"scheduled for {later.isoformat().replace('+00:00', 'Z')}"
    )

    for status in ("running", "succeeded", "failed", "cancelled"):
        assert await reason(await job(status=status)) is None


async def test_pending_reason_stops_counting(
    innosystem_app, innosystem_tenant, innosystem_create_job_type, monkeypatch
):
    monkeypatch.setattr(queues, "AHEAD_LIMIT", 3)
    settings = innosystem_app.config["INNOSYSTEM_SETTINGS"]
    echo = await innosystem_create_job_type("test-echo")
    base = utcnow() - timedelta(minutes=1)
    rows = [
        Job(
            customer_id=innosystem_tenant["customer_id"],
            job_type_id=echo["id"],
            input_data={},
            cost_cents=0,
            enqueued_at=utcnow(),
            run_at=base + timedelta(seconds=i),
            priority="low",
        )
        for i in range(6)
    ]
    await Job.bulk_create(rows)
    last = await Job.filter(job_type_id=echo["id"]).order_by("-run_at").first()
    assert last is not None
    assert await queues.pending_reason(last, settings) == (
        "queued behind 3+ jobs of equal or higher priority"
    )
