"""What is waiting to run, and why: ``GET /queues`` and a pending job's reason.

Read from the database, the source of truth (the broker's queues only hold nudges, which may be
duplicated, delayed or lost). Everything here is a few grouped queries over the jobs that are
pending or running, served by the ``(status, run_at)`` index; nothing is read per job.

A pending job is **due** when its ``run_at`` is null or past, **scheduled** when it is in the
future. A due job has been waiting since its ``run_at`` (a schedule or a retry's backoff), or
since it was created when it has none; ``oldest_pending_age_seconds`` is the longest such wait
(null when nothing is due), so a far schedule never looks like a backlog. A job re-queued after
its runner died has no ``run_at`` and counts from its creation.

A logic id is **served** while a runner that is not gone (active or stale, see
``services.runners``) lists it; ``served_by`` names the active ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from innosystem import db
from innosystem.config import Settings
from innosystem.models import Job, JobStatus, JobType, Priority, Runner
from innosystem.services import runners
from innosystem.services.runners import utcnow

#: Counting the jobs ahead of a pending one stops here ("queued behind 1000+ jobs ..."), so the
#: answer stays cheap under any backlog.
AHEAD_LIMIT = 1000
#: Highest priority first, as runners take them.
PRIORITY_ORDER = (Priority.HIGH.value, Priority.NORMAL.value, Priority.LOW.value)

_DUE = "(run_at IS NULL OR run_at <= ?)"
_SINCE = "COALESCE(run_at, created_at)"


def _when(value: Any) -> datetime | None:
    """A timestamp from raw SQL: asyncpg gives a datetime, SQLite Tortoise's stored text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _age(since: Any, now: datetime) -> float | None:
    moment = _when(since)
    return None if moment is None else round(max(0.0, (now - moment).total_seconds()), 3)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _served(settings: Settings, now: datetime) -> tuple[set[str], dict[str, list[str]]]:
    """Logic ids a runner that is not gone serves, and the active runners of each."""
    served: set[str] = set()
    active_by_logic: dict[str, list[str]] = {}
    active_since = now - runners.active_window(settings)
    for row in await runners.serving_runners(settings.lease_seconds, now):
        logic_ids = row["supported_job_types"] or []
        served.update(logic_ids)
        if row["heartbeat_at"] >= active_since:
            for logic_id in logic_ids:
                active_by_logic.setdefault(logic_id, []).append(row["id"])
    return served, {k: sorted(v) for k, v in active_by_logic.items()}


async def _runner_counts(settings: Settings, now: datetime) -> dict[str, int]:
    return {
        status: await Runner.filter(runners.status_filter(status, now, settings)).count()
        for status in runners.RUNNER_STATUSES
    }


async def overview(settings: Settings) -> dict[str, Any]:
    """The ``GET /queues`` answer (see the module docstring and docs/API.md)."""
    now = utcnow()
    conn = db.connection()
    at = db.time_param(conn, now)
    pending, running = JobStatus.PENDING.value, JobStatus.RUNNING.value

    by_priority = await db.fetch(
        conn,
        f"SELECT priority, COUNT(*) AS pending, "
        f"SUM(CASE WHEN {_DUE} THEN 1 ELSE 0 END) AS due, "
        f"MIN(CASE WHEN {_DUE} THEN {_SINCE} END) AS since "
        "FROM jobs WHERE status = ? GROUP BY priority",
        [at, at, pending],
    )
    queues = {p: {"priority": p, "pending": 0, "due": 0, "scheduled": 0} for p in PRIORITY_ORDER}
    ages: dict[str, float | None] = {}
    for row in by_priority:
        entry = queues.setdefault(
            row["priority"], {"priority": row["priority"], "pending": 0, "due": 0, "scheduled": 0}
        )
        entry["pending"] = int(row["pending"])
        entry["due"] = int(row["due"] or 0)
        entry["scheduled"] = entry["pending"] - entry["due"]
        ages[row["priority"]] = _age(row["since"], now)
    for priority, entry in queues.items():
        entry["oldest_pending_age_seconds"] = ages.get(priority)

    by_type = await db.fetch(
        conn,
        f"SELECT job_type_id, "
        f"SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS pending, "
        f"SUM(CASE WHEN status = ? THEN 1 ELSE 0 END) AS running, "
        f"MIN(CASE WHEN status = ? AND {_DUE} THEN {_SINCE} END) AS since "
        "FROM jobs WHERE status IN (?, ?) GROUP BY job_type_id",
        [pending, running, pending, at, pending, running],
    )
    type_ids = [str(row["job_type_id"]) for row in by_type]
    types = {
        str(row["id"]): row
        for row in await JobType.filter(id__in=type_ids).values("id", "name", "processing_logic_id")
    }
    served, active_by_logic = await _served(settings, now)

    job_types = []
    for row in by_type:
        job_type = types.get(str(row["job_type_id"]))
        if job_type is None:  # cannot happen (a job type with jobs is archived, never deleted)
            continue
        logic_id = job_type["processing_logic_id"]
        job_types.append(
            {
                "job_type_id": str(job_type["id"]),
                "name": job_type["name"],
                "processing_logic_id": logic_id,
                "pending": int(row["pending"] or 0),
                "running": int(row["running"] or 0),
                "oldest_pending_age_seconds": _age(row["since"], now),
                "served_by": active_by_logic.get(logic_id, []),
                "unserved": logic_id not in served,
            }
        )
    job_types.sort(key=lambda t: (-t["pending"], -t["running"], t["name"], t["job_type_id"]))

    # Unserved: any logic id of an enabled job type, or of one with work in the queue.
    enabled_logic_ids = await (
        JobType.filter(enabled=True, status="active")
        .distinct()
        .values_list("processing_logic_id", flat=True)
    )
    wanted = set(enabled_logic_ids) | {t["processing_logic_id"] for t in job_types}
    return {
        "queues": list(queues.values()),
        "job_types": job_types,
        "unserved_logic_ids": sorted(wanted - served),
        "runners": await _runner_counts(settings, now),
    }


def _higher(priority: str) -> list[str]:
    if priority not in PRIORITY_ORDER:
        return []
    return list(PRIORITY_ORDER[: PRIORITY_ORDER.index(priority)])


def _placeholders(values: Iterable[Any]) -> str:
    return ", ".join("?" for _ in values)


async def pending_reason(job: Job, settings: Settings) -> str | None:
    """Why a pending job has not run yet, in one line; None for any other status.

    In order: its ``run_at`` is in the future ("scheduled for <run_at>"); no runner that is not
    gone serves its logic id ("no active runner serves <logic id>"); else it waits its turn:
    "queued behind N jobs of equal or higher priority", N counting the due pending jobs of a
    higher priority plus those of its own priority that have waited longer (the order runners
    take them in; counting stops at 1000, "1000+"), or "waiting for a free runner" when none is
    ahead (every runner is busy, or its message is about to be taken). At most three small
    queries; ``settings`` gives the thresholds of the runner statuses.
    """
    if job.status != JobStatus.PENDING.value:
        return None
    now = utcnow()
    if job.run_at is not None and job.run_at > now:
        return f"scheduled for {_rfc3339(job.run_at)}"

    logic_ids = await JobType.filter(id=job.job_type_id).values_list(  # type: ignore[attr-defined]
        "processing_logic_id", flat=True
    )
    if logic_ids:
        served, _active = await _served(settings, now)
        if logic_ids[0] not in served:
            return f"no active runner serves {logic_ids[0]}"

    conn = db.connection()
    higher = _higher(job.priority)
    since = job.run_at or job.created_at
    ahead = "(priority = ? AND " + _SINCE + " < ?)"
    params: list[Any] = [JobStatus.PENDING.value, db.time_param(conn, now)]
    if higher:
        ahead = f"(priority IN ({_placeholders(higher)}) OR {ahead})"
        params += higher
    params += [job.priority, db.time_param(conn, since), AHEAD_LIMIT]
    rows = await db.fetch(
        conn,
        "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM jobs "
        f"WHERE status = ? AND {_DUE} AND {ahead} LIMIT ?) AS ahead",
        params,
    )
    count = int(rows[0]["n"]) if rows else 0
    if count == 0:
        return "waiting for a free runner"
    shown = f"{AHEAD_LIMIT}+" if count >= AHEAD_LIMIT else str(count)
    noun = "job" if count == 1 else "jobs"
    return f"queued behind {shown} {noun} of equal or higher priority"
