"""Job types: what can be run, by which processor, at what price, under which policy."""

from __future__ import annotations

import uuid
from typing import Any

from innosystem.errors import NotFound, ValidationFailed
from innosystem.models import JobType, Project
from innosystem.plugins import ProcessorRegistry

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
    for name, (lo, hi) in POLICY_BOUNDS.items():
        if name in data and not lo <= data[name] <= hi:
            raise ValidationFailed.field(name, f"must be between {lo} and {hi}")
    if data.get("backoff_base_ms", 0) > data.get("backoff_max_ms", 300_000):
        raise ValidationFailed.field("backoff_max_ms", "must not be less than backoff_base_ms")
    if data.get("project_id") is not None and not await Project.exists(id=data["project_id"]):
        raise NotFound(
            f"project {data['project_id']} not found",
            [{"field": "project_id", "message": "not found"}],
        )
    return await JobType.create(**data)


async def get_job_type(job_type_id: uuid.UUID) -> JobType:
    job_type = await JobType.get_or_none(id=job_type_id)
    if job_type is None:
        raise NotFound(f"job type {job_type_id} not found")
    return job_type


async def list_job_types() -> list[JobType]:
    return await JobType.all().order_by("created_at", "id")
