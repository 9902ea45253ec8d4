"""Job types: what can be run, by which processor, at what price, under which policy."""

from __future__ import annotations

import uuid
from typing import Any

from tortoise.transactions import in_transaction

from innosystem.errors import NotFound, ValidationFailed
from innosystem.models import Job, JobType, Project, Schedule
from innosystem.plugins import ProcessorRegistry
from innosystem.services import pagination, tenants
from innosystem.services.runners import utcnow

#: Fields a client may set, with their bounds; the policy fields have seed-compatible defaults.
POLICY_BOUNDS: dict[str, tuple[int, int]] = {
    "max_attempts": (1, 100),
    "backoff_base_ms": (0, 86_400_000),
    "backoff_max_ms": (0, 86_400_000),
    "timeout_seconds": (1, 86_400),
    "sync_timeout_ms": (0, 600_000),
}


def check_processor(
    registry: ProcessorRegistry, logic_id: str, processor_type: str, allow_unknown: bool
) -> None:
    processor = registry.get(logic_id)
    if processor is None:
        if allow_unknown:
            return
        installed = ", ".join(registry.logic_ids()) or "none"
        raise ValidationFailed.field(
            "processing_logic_id",
            f"no installed processor serves {logic_id!r}; installed: {installed}",
        )
    if processor.processor_type != processor_type:
        raise ValidationFailed.field(
            "processor_type",
            f"processor {logic_id!r} is {processor.processor_type!r}, not {processor_type!r}",
        )


async def create_job_type(
    data: dict[str, Any],
    registry: ProcessorRegistry,
    allow_unknown: bool = False,
) -> JobType:
    """``data`` is already shape-validated by the caller (API model or seed file)."""
    check_processor(registry, data["processing_logic_id"], data["processor_type"], allow_unknown)
    _check_policy(data)
    if data.get("project_id") is not None:
        project = await Project.get_or_none(id=data["project_id"])
        if project is None:
            raise NotFound(
                f"project {data['project_id']} not found",
                [{"field": "project_id", "message": "not found"}],
            )
        tenants.require_active(project, "project_id")
    return await JobType.create(**data)


def _check_policy(data: dict[str, Any]) -> None:
    for name, (lo, hi) in POLICY_BOUNDS.items():
        if name in data and not lo <= data[name] <= hi:
            raise ValidationFailed.field(name, f"must be between {lo} and {hi}")
    if data.get("backoff_base_ms", 0) > data.get("backoff_max_ms", 300_000):
        raise ValidationFailed.field("backoff_max_ms", "must not be less than backoff_base_ms")


async def get_job_type(job_type_id: uuid.UUID) -> JobType:
    job_type = await JobType.get_or_none(id=job_type_id)
    if job_type is None:
        raise NotFound(f"job type {job_type_id} not found")
    return job_type


async def list_job_types(
    *,
    status: str = "active",
    project_id: uuid.UUID | None = None,
    enabled: bool | None = None,
    processing_logic_id: str | None = None,
    processor_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[JobType], str | None]:
    query = JobType.all() if status == "all" else JobType.filter(status=status)
    if project_id is not None:
        query = query.filter(project_id=project_id)
    if enabled is not None:
        query = query.filter(enabled=enabled)
    if processing_logic_id:
        query = query.filter(processing_logic_id=processing_logic_id)
    if processor_type:
        query = query.filter(processor_type=processor_type)
    return await pagination.page(query, limit, cursor)


async def update_job_type(job_type_id: uuid.UUID, changes: dict[str, Any]) -> JobType:
    """``changes`` holds only fields a client may set. A new price applies to jobs submitted
    after it: a job keeps the cost it was authorized at."""
    job_type = await get_job_type(job_type_id)
    tenants.require_changeable(job_type)
    merged = {
        "backoff_base_ms": job_type.backoff_base_ms,
        "backoff_max_ms": job_type.backoff_max_ms,
        **changes,
    }
    _check_policy(merged)
    if changes:
        await job_type.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
    return job_type


async def delete_job_type(job_type_id: uuid.UUID) -> JobType | None:
    """Delete a job type nothing ran under; archive (and disable) one with jobs, which keep
    pointing at it. Returns None when deleted."""
    await get_job_type(job_type_id)
    async with in_transaction() as conn:
        history = (
            await Job.filter(job_type_id=job_type_id).using_db(conn).exists()
            or await Schedule.filter(job_type_id=job_type_id).using_db(conn).exists()
        )
        if not history:
            await JobType.filter(id=job_type_id).using_db(conn).delete()
            return None
        await (
            JobType.filter(id=job_type_id)
            .using_db(conn)
            .update(status="archived", enabled=False, updated_at=utcnow())
        )
        await tenants.stop_schedules(conn, Schedule.filter(job_type_id=job_type_id))
    return await get_job_type(job_type_id)
