"""/schedules: recurring jobs (a cron expression in a time zone); create, list, read, change,
delete. The jobs themselves are created by the sweeper (innosystem.services.schedules)."""

from __future__ import annotations

import uuid

from quart import Blueprint, jsonify

from innosystem.api.body import read_json, read_query
from innosystem.api.openapi import operation
from innosystem.api.schemas import (
    Page,
    ScheduleCreate,
    ScheduleListQuery,
    ScheduleOut,
    ScheduleUpdate,
    schedule_dict,
)
from innosystem.plugins import get_registry
from innosystem.services import schedules as schedule_service

bp = Blueprint("schedules", __name__)


@bp.post("/schedules")
@operation(
    "Create a recurring schedule: one job per cron tick, in the schedule's time zone",
    "schedules",
    status=201,
    response=ScheduleOut,
    body=ScheduleCreate,
    errors=(404, 409),
)
async def create_schedule():
    body = await read_json(ScheduleCreate)
    schedule = await schedule_service.create_schedule(
        customer_id=body.customer_id,
        job_type_id=body.job_type_id,
        project_id=body.project_id,
        name=body.name,
        input_data=body.input_data,
        cron=body.cron,
        timezone=body.timezone,
        enabled=body.enabled,
        priority=body.priority.value if body.priority else None,
        registry=get_registry(),
    )
    return jsonify(schedule_dict(schedule)), 201


@bp.get("/schedules")
@operation(
    "List schedules, newest first", "schedules", response=Page[ScheduleOut], query=ScheduleListQuery
)
async def list_schedules():
    q = read_query(ScheduleListQuery)
    rows, next_cursor = await schedule_service.list_schedules(
        customer_id=q.customer_id,
        project_id=q.project_id,
        job_type_id=q.job_type_id,
        enabled=q.enabled,
        limit=q.limit,
        cursor=q.cursor,
    )
    return jsonify({"items": [schedule_dict(s) for s in rows], "next_cursor": next_cursor})


@bp.get("/schedules/<uuid:schedule_id>")
@operation("Read a schedule", "schedules", response=ScheduleOut)
async def get_schedule(schedule_id: uuid.UUID):
    return jsonify(schedule_dict(await schedule_service.get_schedule(schedule_id)))


@bp.patch("/schedules/<uuid:schedule_id>")
@operation(
    "Change a schedule; a new cron or time zone, or re-enabling, recomputes next_run_at from now",
    "schedules",
    response=ScheduleOut,
    body=ScheduleUpdate,
    errors=(409,),
)
async def update_schedule(schedule_id: uuid.UUID):
    body = await read_json(ScheduleUpdate)
    schedule = await schedule_service.update_schedule(
        schedule_id, body.model_dump(mode="json", exclude_unset=True), get_registry()
    )
    return jsonify(schedule_dict(schedule))


@bp.delete("/schedules/<uuid:schedule_id>")
@operation(
    "Delete a schedule (the jobs it created are kept and keep running)", "schedules", status=204
)
async def delete_schedule(schedule_id: uuid.UUID):
    await schedule_service.delete_schedule(schedule_id)
    return "", 204
