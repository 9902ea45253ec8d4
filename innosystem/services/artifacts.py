"""Uploads (job inputs) and the listing/serving of a job's output files."""

from __future__ import annotations

import uuid

from tortoise.transactions import in_transaction

from innosystem.artifacts import check_name, describe, upload_key
from innosystem.errors import NotFound, ValidationFailed
from innosystem.models import Artifact, Customer, Job


async def upload(
    store: object, customer_id: uuid.UUID, name: str, content_type: str, data: bytes
) -> Artifact:
    """Store the bytes, then the row: a crash between the two leaves an unreferenced file,
    never a row pointing at nothing."""
    try:
        check_name(name)
    except ValueError as exc:
        raise ValidationFailed.field("name", str(exc)) from None
    if not data:
        raise ValidationFailed.field("body", "an upload must not be empty")
    if not await Customer.exists(id=customer_id):
        raise NotFound(
            f"customer {customer_id} not found", [{"field": "customer_id", "message": "not found"}]
        )
    artifact_id = uuid.uuid4()
    key = upload_key(customer_id, artifact_id)
    store.put(key, data)  # type: ignore[attr-defined]
    size, digest = describe(data)
    async with in_transaction() as conn:
        return await Artifact.create(
            using_db=conn,
            id=artifact_id,
            customer_id=customer_id,
            kind="upload",
            name=name,
            content_type=content_type,
            size_bytes=size,
            sha256=digest,
            storage_key=key,
        )


async def get_upload(artifact_id: uuid.UUID) -> Artifact:
    artifact = await Artifact.get_or_none(id=artifact_id, kind="upload")
    if artifact is None:
        raise NotFound(f"artifact {artifact_id} not found")
    return artifact


async def list_for_job(job_id: uuid.UUID) -> list[Artifact]:
    if not await Job.exists(id=job_id):
        raise NotFound(f"job {job_id} not found")
    return await Artifact.filter(job_id=job_id).order_by("name")


async def read_for_job(store: object, job_id: uuid.UUID, name: str) -> tuple[Artifact, bytes]:
    artifact = await Artifact.get_or_none(job_id=job_id, name=name)
    if artifact is None:
        raise NotFound(f"job {job_id} has no artifact {name!r}")
    try:
        data = store.read(artifact.storage_key)  # type: ignore[attr-defined]
    except FileNotFoundError:
        raise NotFound(f"artifact {name!r} of job {job_id} is missing from storage") from None
    return artifact, data
