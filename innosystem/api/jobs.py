"""/jobs: submit, read, list, cancel, events."""

from __future__ import annotations

import uuid

from quart import Blueprint, jsonify, request

from innosystem.api.body import read_json
from innosystem.api.params import query_int, query_uuid
from innosystem.api.schemas import JobCreate, event_dict, job_dict
from innosystem.errors import ValidationFailed
from innosystem.services import jobs as job_service

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
async def submit_job():
    body = await read_json(JobCreate)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ValidationFailed.field("Idempotency-Key", "must be 1 to 255 characters")
    job, _created = await job_service.submit(
        customer_id=body.customer_id,
        job_type_id=body.job_type_id,
        input_data=body.input_data,
        project_id=body.project_id,
        priority=body.priority.value if body.priority else None,
        run_at=body.run_at,
        idempotency_key=key,
    )
    return jsonify(job_dict(job)), 201


@bp.get("/jobs")
async def list_jobs():
    args = request.args
    jobs, next_cursor = await job_service.list_jobs(
        status=args.get("status") or None,
        customer_id=query_uuid("customer_id"),
        job_type_id=query_uuid("job_type_id"),
        project_id=query_uuid("project_id"),
        limit=query_int("limit", default=50, lo=1, hi=200),
        cursor=args.get("cursor") or None,
    )
    return jsonify({"items": [job_dict(j) for j in jobs], "next_cursor": next_cursor})


@bp.get("/jobs/<uuid:job_id>")
async def get_job(job_id: uuid.UUID):
    return jsonify(job_dict(await job_service.get_job(job_id)))


@bp.post("/jobs/<uuid:job_id>/cancel")
async def cancel_job(job_id: uuid.UUID):
    return jsonify(job_dict(await job_service.cancel(job_id)))


@bp.get("/jobs/<uuid:job_id>/events")
async def job_events(job_id: uuid.UUID):
    events = await job_service.list_events(job_id)
    return jsonify({"items": [event_dict(e) for e in events]})
