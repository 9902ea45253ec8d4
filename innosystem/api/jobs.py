"""/jobs: submit, read, list, cancel, events."""

from __future__ import annotations

import uuid

from quart import Blueprint, jsonify

from innosystem.api import idempotent
from innosystem.api.body import read_json, read_query
from innosystem.api.openapi import operation
from innosystem.api.schemas import (
    EventOut,
    Items,
    JobCreate,
    JobListQuery,
    JobOut,
    Page,
    event_dict,
    job_dict,
)
from innosystem.services import jobs as job_service

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
@operation(
    "Submit a job: paid with a hold on the customer's wallet, then queued",
    "jobs",
    status=201,
    response=JobOut,
    body=JobCreate,
    errors=(402, 404, 409),
    idempotent=True,
)
async def submit_job():
    body = await read_json(JobCreate)
    outcome = await job_service.submit(
        customer_id=body.customer_id,
        job_type_id=body.job_type_id,
        input_data=body.input_data,
        project_id=body.project_id,
        priority=body.priority.value if body.priority else None,
        run_at=body.run_at,
        keyed=idempotent.keyed(body.customer_id, body),
        render=job_dict,
    )
    return idempotent.answer(outcome)


@bp.get("/jobs")
@operation("List jobs, newest first", "jobs", response=Page[JobOut], query=JobListQuery)
async def list_jobs():
    q = read_query(JobListQuery)
    jobs, next_cursor = await job_service.list_jobs(
        status=q.status.value if q.status else None,
        customer_id=q.customer_id,
        job_type_id=q.job_type_id,
        project_id=q.project_id,
        created_from=q.created_from,
        created_to=q.created_to,
        limit=q.limit,
        cursor=q.cursor,
    )
    return jsonify({"items": [job_dict(j) for j in jobs], "next_cursor": next_cursor})


@bp.get("/jobs/<uuid:job_id>")
@operation("Read a job", "jobs", response=JobOut)
async def get_job(job_id: uuid.UUID):
    return jsonify(job_dict(await job_service.get_job(job_id)))


@bp.post("/jobs/<uuid:job_id>/cancel")
@operation("Cancel a pending job and release its hold", "jobs", response=JobOut, errors=(409,))
async def cancel_job(job_id: uuid.UUID):
    return jsonify(job_dict(await job_service.cancel(job_id)))


@bp.get("/jobs/<uuid:job_id>/events")
@operation("Every status change of a job", "jobs", response=Items[EventOut])
async def job_events(job_id: uuid.UUID):
    events = await job_service.list_events(job_id)
    return jsonify({"items": [event_dict(e) for e in events]})
