"""/jobs: submit, read, list, cancel, events."""

from __future__ import annotations

import uuid

from quart import Blueprint, current_app, jsonify

from innosystem.api import idempotent
from innosystem.api.body import read_json, read_query
from innosystem.api.openapi import operation
from innosystem.api.schemas import (
    AttemptOut,
    EventOut,
    Items,
    JobCreate,
    JobListQuery,
    JobOut,
    Page,
    attempt_dict,
    event_dict,
    job_dict,
)
from innosystem.services import jobs as job_service
from innosystem.services import queues

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
@operation(
    "Submit a job: paid with a hold on the customer's wallet, then queued",
    "jobs",
    status=201,
    response=JobOut,
    alternatives={200: JobOut, 202: JobOut},
    description="Async and Batch types answer 201 at once. A Sync type waits up to its "
    "sync_timeout_ms: 200 with the finished job, or 202 with the job still running.",
    body=JobCreate,
    errors=(402, 404, 409),
    idempotent=True,
)
async def submit_job():
    body = await read_json(JobCreate)
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    outcome = await job_service.submit(
        customer_id=body.customer_id,
        job_type_id=body.job_type_id,
        input_data=body.input_data,
        project_id=body.project_id,
        priority=body.priority.value if body.priority else None,
        run_at=job_service.resolve_run_at(body.run_at, body.delay_ms, settings.max_delay_ms),
        keyed=idempotent.keyed(body.customer_id, body),
        render=job_dict,
        max_batch_items=settings.max_batch_items,
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
@operation("Read a job (a pending one says why it waits)", "jobs", response=JobOut)
async def get_job(job_id: uuid.UUID):
    job = await job_service.get_job(job_id)
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    return jsonify(job_dict(job, await queues.pending_reason(job, settings)))


@bp.post("/jobs/<uuid:job_id>/cancel")
@operation(
    "Cancel a job: pending at once (200); running, its runner stops it (202); finished 409",
    "jobs",
    response=JobOut,
    alternatives={202: JobOut},
    errors=(409,),
)
async def cancel_job(job_id: uuid.UUID):
    job, done = await job_service.cancel(job_id)
    return jsonify(job_dict(job)), 200 if done else 202


@bp.get("/jobs/<uuid:job_id>/events")
@operation("Every status change of a job", "jobs", response=Items[EventOut])
async def job_events(job_id: uuid.UUID):
    events = await job_service.list_events(job_id)
    return jsonify({"items": [event_dict(e) for e in events]})


@bp.get("/jobs/<uuid:job_id>/attempts")
@operation(
    "Every attempt of a job: runner, start, end, outcome, error and trimmed traceback",
    "jobs",
    response=Items[AttemptOut],
)
async def job_attempts(job_id: uuid.UUID):
    attempts = await job_service.list_attempts(job_id)
    return jsonify({"items": [attempt_dict(a) for a in attempts]})
