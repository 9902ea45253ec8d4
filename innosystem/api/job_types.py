"""/job-types: create, list, read, change, delete (or archive)."""

from __future__ import annotations

import uuid

from quart import Blueprint, current_app, jsonify

from innosystem.api.body import read_json, read_query
from innosystem.api.openapi import operation
from innosystem.api.schemas import (
    JobTypeCreate,
    JobTypeListQuery,
    JobTypeOut,
    JobTypeUpdate,
    Page,
    job_type_dict,
)
from innosystem.plugins import get_registry
from innosystem.services import job_types as job_type_service

bp = Blueprint("job_types", __name__)


@bp.post("/job-types")
@operation(
    "Create a job type (a price and the processor that does the work)",
    "job types",
    status=201,
    response=JobTypeOut,
    body=JobTypeCreate,
    errors=(404, 409),
)
async def create_job_type():
    body = await read_json(JobTypeCreate)
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    job_type = await job_type_service.create_job_type(
        body.model_dump(mode="json"), get_registry(), settings.allow_unknown_processors
    )
    return jsonify(job_type_dict(job_type)), 201


@bp.get("/job-types")
@operation("List job types", "job types", response=Page[JobTypeOut], query=JobTypeListQuery)
async def list_job_types():
    q = read_query(JobTypeListQuery)
    rows, next_cursor = await job_type_service.list_job_types(
        status=q.status,
        project_id=q.project_id,
        enabled=q.enabled,
        processing_logic_id=q.processing_logic_id,
        processor_type=q.processor_type.value if q.processor_type else None,
        limit=q.limit,
        cursor=q.cursor,
    )
    return jsonify({"items": [job_type_dict(t) for t in rows], "next_cursor": next_cursor})


@bp.get("/job-types/<uuid:job_type_id>")
@operation("Read a job type", "job types", response=JobTypeOut)
async def get_job_type(job_type_id: uuid.UUID):
    return jsonify(job_type_dict(await job_type_service.get_job_type(job_type_id)))


@bp.patch("/job-types/<uuid:job_type_id>")
@operation(
    "Change a job type (price, enabled, policy); a new price applies to new jobs only",
    "job types",
    response=JobTypeOut,
    body=JobTypeUpdate,
    errors=(409,),
)
async def update_job_type(job_type_id: uuid.UUID):
    body = await read_json(JobTypeUpdate)
    job_type = await job_type_service.update_job_type(
        job_type_id, body.model_dump(mode="json", exclude_unset=True)
    )
    return jsonify(job_type_dict(job_type))


@bp.delete("/job-types/<uuid:job_type_id>")
@operation(
    "Delete a job type, or archive and disable it when it has jobs",
    "job types",
    status=204,
    alternatives={200: JobTypeOut},
)
async def delete_job_type(job_type_id: uuid.UUID):
    archived = await job_type_service.delete_job_type(job_type_id)
    return ("", 204) if archived is None else jsonify(job_type_dict(archived))
