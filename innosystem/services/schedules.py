"""Recurring schedules: a cron expression in a time zone that submits one job per tick.

Every process's sweeper calls :func:`fire_due` on each pass, so several processes may fire the
same tick at once. A tick is identified by the schedule and its instant (the ``next_run_at`` it
fires), and its job is submitted through ``jobs.submit`` under an idempotency key made from
both: whoever loses a race, and any retry after a crash between the submit and the advance,
gets the first job back instead of a second one. Exactly one job per tick. The advance of
``next_run_at`` is a conditional UPDATE on the tick just fired, so only one process moves it.

Catch-up: after downtime the due tick fires once; the ticks missed in between are skipped and
``next_run_at`` jumps to the first tick after now. A tick whose submit is refused (402 empty
wallet, 409 disabled or archived job type or tenant, 422 input no longer valid) records the
message in ``last_error`` and is skipped the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from loguru import logger

from innosystem.errors import NotFound, ServiceError, ValidationFailed
from innosystem.models import JobType, Schedule
from innosystem.plugins import ProcessorRegistry, get_registry
from innosystem.services import idempotency, pagination
from innosystem.services import jobs as job_service
from innosystem.services.runners import utcnow

#: Schedules fired per sweep pass at most, the most overdue first.
BATCH = 100
#: Fields a PATCH may change.
CHANGEABLE = frozenset({"name", "input_data", "cron", "timezone", "enabled", "priority"})


# --- cron and time zones ------------------------------------------------------------------------
def check_cron(cron: str) -> str:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), with its
    whitespace normalized; 422 on ``cron`` with cronsim's reason otherwise."""
    parts = cron.split()
    if len(parts) != 5:
        raise ValidationFailed.field(
            "cron", "must have 5 fields: minute hour day-of-month month day-of-week"
        )
    normalized = " ".join(parts)
    try:
        CronSim(normalized, datetime.now(UTC))
    except CronSimError as exc:
        raise ValidationFailed.field("cron", str(exc) or "is not a valid cron expression") from None
    return normalized


def check_timezone(name: str) -> ZoneInfo:
    """An IANA time zone name such as ``Europe/Berlin`` or ``UTC``; 422 on ``timezone``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed.field(
            "timezone", f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
        ) from None


def next_tick(cron: str, timezone: str, after: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``after``, read as wall-clock time in
    ``timezone`` (DST handled as Debian cron does), returned in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    return next(CronSim(cron, local)).astimezone(UTC)


def _first_tick(cron: str, timezone: str, after: datetime) -> datetime:
    try:
        return next_tick(cron, timezone, after)
    except (CronSimError, StopIteration):
        raise ValidationFailed.field("cron", "never matches a future time") from None


# --- checks shared by create and re-enable ------------------------------------------------------
async def _check_target(
    customer_id: uuid.UUID, job_type_id: uuid.UUID, project_id: uuid.UUID | None
) -> JobType:
    """What ``jobs.submit`` would refuse, refused now (the same check)."""
    return await job_service.check_target(customer_id, job_type_id, project_id)


def _validate_input(
    registry: ProcessorRegistry | None, job_type: JobType, input_data: dict[str, Any]
) -> dict[str, Any]:
    """The same check as at submit, so a schedule never holds input its ticks would refuse."""
    return job_service.validate_input(registry or get_registry(), job_type, input_data)


# --- create, read, list, change, delete ---------------------------------------------------------
async def create_schedule(
    *,
    customer_id: uuid.UUID,
    job_type_id: uuid.UUID,
    input_data: dict[str, Any],
    cron: str,
    timezone: str = "UTC",
    project_id: uuid.UUID | None = None,
    name: str = "",
    enabled: bool = True,
    priority: str | None = None,
    registry: ProcessorRegistry | None = None,
) -> Schedule:
    cron = check_cron(cron)
    check_timezone(timezone)
    job_type = await _check_target(customer_id, job_type_id, project_id)
    input_data = _validate_input(registry, job_type, input_data)
    return await Schedule.create(
        customer_id=customer_id,
        project_id=project_id,
        job_type_id=job_type_id,
        name=name,
        input_data=input_data,
        priority=priority,
        cron=cron,
        timezone=timezone,
        enabled=enabled,
        next_run_at=_first_tick(cron, timezone, utcnow()) if enabled else None,
    )


async def get_schedule(schedule_id: uuid.UUID) -> Schedule:
    schedule = await Schedule.get_or_none(id=schedule_id)
    if schedule is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return schedule


async def list_schedules(
    *,
    customer_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    job_type_id: uuid.UUID | None = None,
    enabled: bool | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Schedule], str | None]:
    query = Schedule.all()
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    if project_id is not None:
        query = query.filter(project_id=project_id)
    if job_type_id is not None:
        query = query.filter(job_type_id=job_type_id)
    if enabled is not None:
        query = query.filter(enabled=enabled)
    return await pagination.page(query, limit, cursor)


async def update_schedule(
    schedule_id: uuid.UUID, changes: dict[str, Any], registry: ProcessorRegistry | None = None
) -> Schedule:
    """``changes`` holds only :data:`CHANGEABLE` fields (``priority`` None: the job type's
    default). A new cron or time zone, or re-enabling, computes ``next_run_at`` afresh from now;
    disabling clears it. Re-enabling applies the creation checks again (409 when the customer,
    project or job type was archived or the job type disabled meanwhile)."""
    assert set(changes) <= CHANGEABLE, changes
    schedule = await get_schedule(schedule_id)
    changes = dict(changes)
    if "cron" in changes:
        changes["cron"] = check_cron(changes["cron"])
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    enabling = changes.get("enabled") is True and not schedule.enabled
    job_type: JobType | None = None
    if enabling:
        job_type = await _check_target(
            schedule.customer_id,  # type: ignore[attr-defined]
            schedule.job_type_id,  # type: ignore[attr-defined]
            schedule.project_id,  # type: ignore[attr-defined]
        )
    if "input_data" in changes:
        job_type = job_type or await JobType.get(id=schedule.job_type_id)  # type: ignore[attr-defined]
        changes["input_data"] = _validate_input(registry, job_type, changes["input_data"])
    if not changes:
        return schedule
    schedule.update_from_dict(changes)
    fields = [*changes, "updated_at"]
    if not schedule.enabled:
        schedule.next_run_at = None
        fields.append("next_run_at")
    elif enabling or "cron" in changes or "timezone" in changes:
        schedule.next_run_at = _first_tick(schedule.cron, schedule.timezone, utcnow())
        fields.append("next_run_at")
    # Only the fields changed here are written: a concurrent firing's last_* stay as it set them.
    await schedule.save(update_fields=list(dict.fromkeys(fields)))
    return schedule


async def delete_schedule(schedule_id: uuid.UUID) -> None:
    """Gone for good. Jobs it created keep running; their ``schedule_id`` points at nothing."""
    if not await Schedule.filter(id=schedule_id).delete():
        raise NotFound(f"schedule {schedule_id} not found")


# --- firing -------------------------------------------------------------------------------------
async def fire_due(registry: ProcessorRegistry | None = None, now: datetime | None = None) -> int:
    """Fire every due tick (at most :data:`BATCH` schedules, the most overdue first); returns how
    many ticks this call advanced. Safe in any number of processes at once."""
    now = now or utcnow()
    due = (
        await Schedule.filter(enabled=True, next_run_at__lte=now)
        .order_by("next_run_at")
        .limit(BATCH)
    )
    fired = 0
    for schedule in due:
        try:
            fired += await _fire(schedule, registry, now)
        except Exception as exc:  # one broken schedule must not stop the others
            logger.opt(exception=exc).warning(
                "schedule {}: tick {} failed: {}", schedule.id, schedule.next_run_at, exc
            )
    return fired


async def _fire(schedule: Schedule, registry: ProcessorRegistry | None, now: datetime) -> int:
    tick = schedule.next_run_at
    assert tick is not None
    # Another process may have fired it since our read, or the schedule was changed, disabled
    # or deleted meanwhile: then there is nothing to do (the key makes a late submit harmless,
    # this only spares it).
    if not await Schedule.filter(id=schedule.id, enabled=True, next_run_at=tick).exists():
        return 0
    moment = tick.astimezone(UTC).isoformat()
    customer_id = schedule.customer_id  # type: ignore[attr-defined]
    keyed = idempotency.Keyed(
        customer_id=customer_id,
        key=f"{idempotency.RESERVED_PREFIX}{schedule.id}:{moment}",
        fingerprint=idempotency.fingerprint(
            "SCHEDULE", f"/schedules/{schedule.id}", {"tick": moment}
        ),
    )
    job_id: uuid.UUID | None = None
    error: str | None = None
    try:
        outcome = await job_service.submit(
            customer_id=customer_id,
            job_type_id=schedule.job_type_id,  # type: ignore[attr-defined]
            project_id=schedule.project_id,  # type: ignore[attr-defined]
            input_data=schedule.input_data,
            priority=schedule.priority,
            keyed=keyed,
            render=lambda job: {"id": str(job.id)},
            registry=registry,
            schedule_id=schedule.id,
            wait=False,  # a Sync type's job must not hold up the sweeper
        )
        job_id = uuid.UUID(outcome.body["id"])
    except ServiceError as exc:
        error = exc.message
        logger.warning("schedule {}: tick {} skipped: {}", schedule.id, moment, error)

    values: dict[str, Any] = {"last_run_at": tick, "last_error": error, "updated_at": utcnow()}
    if job_id is not None:
        values["last_job_id"] = job_id
    try:
        # From the later of the pass's start and the real clock: ticks that fell due while the
        # submit ran are skipped too, never fired late in a burst.
        values["next_run_at"] = next_tick(schedule.cron, schedule.timezone, max(now, utcnow()))
    except (CronSimError, StopIteration, ValueError, KeyError) as exc:
        # Cannot happen for a schedule created through the API; never fire it again.
        values.update(next_run_at=None, enabled=False, last_error=f"cannot compute next run: {exc}")
    advanced = await Schedule.filter(id=schedule.id, next_run_at=tick).update(**values)
    if advanced and job_id is not None:
        logger.info("schedule {}: tick {} fired job {}", schedule.id, moment, job_id)
    return 1 if advanced else 0
