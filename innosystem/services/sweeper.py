"""The sweeper: what makes the database, not the broker, the source of truth.

Every process runs it every ``poll_interval_ms`` (and once before serving). It is safe to run in
many processes at once because each change it makes is a conditional UPDATE.
1. Running jobs whose lease lapsed (their runner died) go back to pending, or to failed once
   they have been delivered ``max_attempts`` times (a poison pill that kills its runner).
2. Expired idempotency keys are purged (a bounded batch), and due schedules fire (one job per
   tick, see ``services.schedules``).
3. Due pending jobs with no message known to be in flight (none sent, or one sent longer ago
   than ``requeue_after_seconds``) are sent to the broker again, on their priority's queue; the
   longest-waiting low/normal ones are also re-sent on the "aged" queue (starvation guard).
4. With ``retention_days`` set, one bounded batch of old finished jobs is pruned
   (``services.retention``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from loguru import logger
from tortoise.expressions import Q

from innosystem.broker import AGED, get_dispatcher
from innosystem.models import Job, JobStatus, Priority
from innosystem.services import idempotency, retention, schedules
from innosystem.services.jobs import recover_expired
from innosystem.services.runners import RunnerState, utcnow

BATCH = 1000


@dataclass
class SweepReport:
    recovered: int = 0
    enqueued: int = 0


async def sweep(state: RunnerState, *, startup: bool = False) -> SweepReport:
    report = SweepReport()
    now = utcnow()

    expired = Q(status=JobStatus.RUNNING.value, lease_until__lt=now)
    if startup:
        # This runner id just started, so nothing can be running under it: a previous life of
        # this runner died with those jobs.
        expired |= Q(status=JobStatus.RUNNING.value, runner_id=state.runner_id)
    rows = (
        await Job.filter(expired)
        .limit(BATCH)
        .values(
            "id",
            "attempts",
            "job_type__max_attempts",
            "customer_id",
            "cost_cents",
            "runner_id",
        )
    )
    for row in rows:
        reason = (
            "runner restarted"
            if row["runner_id"] == state.runner_id and startup
            else f"lease of runner {row['runner_id']} expired"
        )
        if await recover_expired(
            row["id"],
            row["attempts"],
            row["job_type__max_attempts"],
            row["customer_id"],
            row["cost_cents"],
            row["runner_id"],
            reason,
        ):
            report.recovered += 1

    await idempotency.purge_expired(timedelta(hours=state.settings.idempotency_hours))
    await schedules.fire_due(state.registry)

    dispatcher = get_dispatcher()
    if dispatcher is None:
        return report
    if startup and state.settings.broker_kind == "memory":
        # The in-process queue died with the previous process: every pending job needs a send.
        await Job.filter(status=JobStatus.PENDING.value).update(enqueued_at=None)
    # A message may be lost (Redis flush or failover) or dropped (the database failed while it
    # was handled): one that has not led to a claim in time is sent again. Duplicates are
    # harmless, only one conditional claim can win.
    stale = now - timedelta(seconds=state.settings.requeue_after_seconds)
    not_in_flight = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    due = Q(run_at__isnull=True) | Q(run_at__lte=now)
    rows = await (
        Job.filter(status=JobStatus.PENDING.value)
        .filter(not_in_flight)
        .filter(due)
        .order_by("created_at")
        .limit(BATCH)
        .values_list("id", "priority")
    )
    # Starvation guard: the longest-waiting due jobs of low or normal priority, sent at least
    # priority_aging_seconds ago, are sent again on the "aged" queue, which workers take before
    # all others (their priority field is unchanged). At most one worker's worth per pass, so a
    # backlog trickles through instead of flooding it with duplicates; low work keeps moving
    # under any high load.
    aged = now - timedelta(seconds=state.settings.priority_aging_seconds)
    waiting = await (
        Job.filter(
            status=JobStatus.PENDING.value,
            priority__in=[Priority.LOW.value, Priority.NORMAL.value],
            enqueued_at__lt=aged,
        )
        .filter(due)
        .order_by("enqueued_at")
        .limit(state.settings.worker_threads)
        .values_list("id", "priority")
    )
    sends = [(str(i), p) for i, p in rows]
    seen = {i for i, _ in sends}
    sends += [(str(i), AGED) for i, _ in waiting if str(i) not in seen]
    if sends:
        ids = [i for i, _ in sends]
        await Job.filter(id__in=ids, status=JobStatus.PENDING.value).update(enqueued_at=now)
        await dispatcher.send_many(sends)
        report.enqueued = len(sends)
    if report.recovered or report.enqueued:
        logger.info(
            "sweep: {} jobs recovered from dead runners, {} enqueued",
            report.recovered,
            report.enqueued,
        )
    if state.settings.retention_days > 0:  # one bounded batch per pass (services.retention)
        await retention.auto_prune(state.settings, state.artifact_store)
    return report
