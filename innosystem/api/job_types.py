"""/job-types: create, list, read."""

from __future__ import annotations

import uuid

from quart import Blueprint, current_app, jsonify

from innosystem.api.body import read_json
from innosystem.api.schemas import JobTypeCreate, job_type_dict
from innosystem.plugins import get_registry
from innosystem.services import job_types as job_type_service

bp = Blueprint("job_types", __name__)


@bp.post("/job-types")
async def create_job_type():
    body = await read_json(JobTypeCreate)
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    job_type = await job_type_service.create_job_type(
        body.model_dump(mode="json"), get_registry(), settings.allow_unknown_processors
    )
    return jsonify(job_type_dict(job_type)), 201


@bp.get("/job-types")
async def list_job_types():
    items = await job_type_service.list_job_types()
    return jsonify({"items": [job_type_dict(t) for t in items]})


@bp.get("/job-types/<uuid:job_type_id>")
async def get_job_type(job_type_id: uuid.UUID):
    return jsonify(job_type_dict(await job_type_service.get_job_type(job_type_id)))
