"""The life of a job, in one place: submit (pay with a hold), claim, run, finish (capture or
release), retry, cancel. Every transition is a conditional UPDATE on the job's current status, so
concurrent runners, sweepers and API calls can race safely: exactly one of them wins.

The database is the source of truth; broker messages are only nudges (see ``innosystem.broker``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import traceback
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from innosystem import jsonsafe
from innosystem.artifacts import JobArtifacts
from innosystem.broker import get_dispatcher
from innosystem.errors import (
    Conflict,
    JobCancelled,
    NotFound,
    PermanentError,
    ProcessorError,
    RetryableError,
    ValidationFailed,
)
from innosystem.models import (
    Artifact,
    AttemptOutcome,
    Customer,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    JobType,
    Project,
)
from innosystem.plugins import ProcessorRegistry, get_registry
from innosystem.pool import Channel, TaskCancelled, WorkerDied
from innosystem.processors import JobContext, Processor
from innosystem.services import billing, idempotency, pagination, runners
from innosystem.services.runners import RunnerState, utcnow

MAX_ERROR_CHARS = 4000
MAX_TRACEBACK_CHARS = 4000
#: Longest delay handed to the broker; later work is sent by the sweeper when due.
MAX_BROKER_DELAY = timedelta(minutes=5)


# --- submit -------------------------------------------------------------------------------------
async def submit(
    *,
    customer_id: uuid.UUID,
    job_type_id: uuid.UUID,
    input_data: dict[str, Any],
    project_id: uuid.UUID | None = None,
    priority: str | None = None,
    run_at: datetime | None = None,
    keyed: idempotency.Keyed | None = None,
    render: Callable[[Job], dict[str, Any]] = lambda job: {},
    registry: ProcessorRegistry | None = None,
    wait: bool = True,
    schedule_id: uuid.UUID | None = None,
    max_batch_items: int = 10_000,
) -> idempotency.Outcome[Job]:
    """Create a paid, queued job: the job row, its hold and its event in one transaction, the
    broker send after commit. With ``keyed``, a retry of the same request returns the first
    response (``render`` of the job as created) and creates nothing. A Sync type's request
    waits for the job (``wait``; the scheduler does not)."""
    prior = await idempotency.replay(keyed)
    if prior is not None:
        return prior
    registry = registry or get_registry()
    job_type = await check_target(customer_id, job_type_id, project_id)
    input_data = validate_input(registry, job_type, input_data, max_batch_items)

    now = utcnow()
    due = run_at if run_at is not None and run_at > now else None
    # Near-term schedules ride the broker's delay; far ones wait in the database until the
    # sweeper finds them due (a delayed message is held in worker memory until its time).
    via_broker = due is None or due - now <= MAX_BROKER_DELAY

    async def effect(conn: BaseDBAsyncClient) -> Job:
        job = await Job.create(
            using_db=conn,
            customer_id=customer_id,
            project_id=project_id,
            job_type_id=job_type.id,
            status=JobStatus.PENDING.value,
            priority=priority or job_type.default_priority,
            input_data=input_data,
            cost_cents=job_type.standard_cost_cents,
            run_at=due,
            # Set optimistically: the send follows the commit; if it fails we clear it and
            # the sweeper sends instead.
            enqueued_at=(due or now) if via_broker else None,
            schedule_id=schedule_id,
        )
        if job.cost_cents > 0:
            await billing.place_hold(conn, customer_id, job.cost_cents, job.id)
        message = f"submitted; {job.cost_cents} cents held"
        await _event(conn, job.id, None, JobStatus.PENDING, 0, None, message)
        return job

    outcome = await idempotency.run(keyed, effect, render, 201)
    if via_broker and outcome.result is not None:
        delay_ms = int((due - now).total_seconds() * 1000) if due else None
        await _dispatch(outcome.result.id, delay_ms, outcome.result.priority)
    if wait and job_type.processor_type == "sync" and outcome.result is not None:
        return await _answer_sync(outcome, job_type.sync_timeout_ms / 1000, keyed, render)
    return outcome


async def _answer_sync(
    outcome: idempotency.Outcome[Job],
    wait_s: float,
    keyed: idempotency.Keyed | None,
    render: Callable[[Job], dict[str, Any]],
) -> idempotency.Outcome[Job]:
    """Sync types answer in the request: the finished job (200) if it ends within the type's
    sync timeout, else the job as it is (202) while it carries on. A keyed request's stored
    response becomes this answer, so a retry gets what the first request got."""
    assert outcome.result is not None
    job = await wait_until_final(outcome.result.id, wait_s) or await get_job(outcome.result.id)
    status = 200 if job.status in FINAL_STATUSES else 202
    body = render(job)
    if keyed is not None:
        await idempotency.amend(keyed, status, body)
    return idempotency.Outcome(job, status, body, replayed=False)


FINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
)


async def wait_until_final(job_id: uuid.UUID, wait_s: float) -> Job | None:
    """The job once it is final, or None after ``wait_s``. Polls the database (the job may run
    in any process), quickly at first, then every 100 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    pause = 0.005
    while True:
        job = await Job.get_or_none(id=job_id)
        if job is not None and job.status in FINAL_STATUSES:
            return job
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.1)


async def check_target(
    customer_id: uuid.UUID, job_type_id: uuid.UUID, project_id: uuid.UUID | None
) -> JobType:
    """Whether this customer may run this job type (in this project), as submit and schedules
    both ask: unknown ids 404 naming the field (another customer's project too), a
    project-scoped type outside its project 422, anything archived or a disabled type 409."""
    job_type = await JobType.get_or_none(id=job_type_id)
    if job_type is None:
        raise NotFound(
            f"job type {job_type_id} not found", [{"field": "job_type_id", "message": "not found"}]
        )
    customer_status = await Customer.filter(id=customer_id).values_list("status", flat=True)
    if not customer_status:
        raise NotFound(
            f"customer {customer_id} not found", [{"field": "customer_id", "message": "not found"}]
        )
    _require_active("customer", customer_id, customer_status[0], "customer_id")
    if project_id is not None:
        project_status = await Project.filter(id=project_id, customer_id=customer_id).values_list(
            "status", flat=True
        )
        if not project_status:
            raise NotFound(
                f"project {project_id} not found for this customer",
                [{"field": "project_id", "message": "not found"}],
            )
        _require_active("project", project_id, project_status[0], "project_id")
    scope = job_type.project_id  # type: ignore[attr-defined]
    if scope is not None and scope != project_id:
        raise ValidationFailed.field("job_type_id", "this job type belongs to another project")
    _require_active("job type", job_type.id, job_type.status, "job_type_id")
    if not job_type.enabled:
        raise Conflict(
            f"job type {job_type.name!r} is disabled",
            [{"field": "job_type_id", "message": "job type is disabled"}],
        )
    return job_type


def validate_input(
    registry: ProcessorRegistry,
    job_type: JobType,
    input_data: dict[str, Any],
    max_batch_items: int = 10_000,
) -> dict[str, Any]:
    """``input_data`` as the job will get it: a Batch type's items checked, then the
    processor's own model (422 naming ``input_data.<field>``); unchecked by a processor that is
    not installed here."""
    if job_type.processor_type == "batch":
        check_batch_items(input_data, max_batch_items)
    processor = registry.get(job_type.processing_logic_id)
    if processor is None:
        return input_data
    checked = processor.validate_input(input_data)
    # The processor's model may have produced values (NaN from "nan") the database would store
    # differently, or not at all: same rule as the raw body.
    bad = jsonsafe.problems(checked, "input_data")
    if bad:
        raise ValidationFailed("input_data is not storable JSON", bad)
    return checked


def check_batch_items(input_data: dict[str, Any], limit: int) -> None:
    """A Batch job's work is ``input_data.items``: a non-empty list, at most ``limit`` long."""
    items = input_data.get("items")
    if not isinstance(items, list):
        raise ValidationFailed.field("input_data.items", "a Batch job needs a list of items")
    if not 1 <= len(items) <= limit:
        raise ValidationFailed.field("input_data.items", f"must hold 1 to {limit} items")


def resolve_run_at(
    run_at: datetime | None, delay_ms: int | None, max_delay_ms: int
) -> datetime | None:
    """``delay_ms`` is the relative form of ``run_at``; a request gives one or neither."""
    if delay_ms is None:
        return run_at
    if run_at is not None:
        raise ValidationFailed.field("delay_ms", "give run_at or delay_ms, not both")
    if not 0 <= delay_ms <= max_delay_ms:
        raise ValidationFailed.field("delay_ms", f"must be between 0 and {max_delay_ms}")
    return utcnow() + timedelta(milliseconds=delay_ms)


def _require_active(kind: str, entity_id: Any, status: str, field: str) -> None:
    if status != "active":
        raise Conflict(
            f"{kind} {entity_id} is archived; nothing new can run for it",
            [{"field": field, "message": "is archived"}],
        )


async def _dispatch(job_id: uuid.UUID, delay_ms: int | None, priority: str) -> None:
    dispatcher = get_dispatcher()
    try:
        if dispatcher is None:
            raise RuntimeError("no broker in this process")
        await dispatcher.send(str(job_id), delay_ms, priority)
    except Exception as exc:
        logger.warning("enqueue of job {} failed ({}); the sweeper will retry", job_id, exc)
        await Job.filter(id=job_id, status=JobStatus.PENDING.value).update(enqueued_at=None)


async def _event(
    conn: BaseDBAsyncClient | None,
    job_id: uuid.UUID,
    from_status: str | None,
    to_status: str,
    attempt: int,
    runner_id: str | None,
    message: str,
) -> None:
    await JobEvent.create(
        using_db=conn,
        job_id=job_id,
        from_status=from_status,
        to_status=str(to_status),
        attempt=attempt,
        runner_id=runner_id,
        message=message[:MAX_ERROR_CHARS],
    )


async def _end_unpaid(
    conn: BaseDBAsyncClient,
    job_id: uuid.UUID,
    customer_id: uuid.UUID,
    cost_cents: int,
    from_status: str,
    to_status: str,
    attempt: int,
    runner_id: str | None,
    message: str,
    reference: str,
) -> None:
    """A job ended without success (failed or cancelled): its hold goes back to the wallet and
    the transition is recorded, in the caller's transaction."""
    if cost_cents > 0:
        await billing.release_hold(conn, customer_id, cost_cents, job_id, reference)
    await _event(conn, job_id, from_status, to_status, attempt, runner_id, message)


# --- read / cancel ------------------------------------------------------------------------------
async def get_job(job_id: uuid.UUID) -> Job:
    job = await Job.get_or_none(id=job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def list_events(job_id: uuid.UUID) -> list[JobEvent]:
    await get_job(job_id)
    return await JobEvent.filter(job_id=job_id).order_by("id")


async def list_attempts(job_id: uuid.UUID) -> list[JobAttempt]:
    await get_job(job_id)
    return await JobAttempt.filter(job_id=job_id).order_by("number")


async def cancel(job_id: uuid.UUID) -> tuple[Job, bool]:
    """Cancel a job. Pending: cancelled at once, hold released; returns (job, True). Running: the
    request is recorded and its runner stops it (cooperatively, then by force after
    ``cancel_grace_seconds``), releasing the hold; returns (job, False) while that happens.
    Finished: 409."""
    job = await get_job(job_id)
    async with in_transaction() as conn:
        changed = (
            await Job.filter(id=job_id, status=JobStatus.PENDING.value)
            .using_db(conn)
            .update(
                updated_at=utcnow(),
                status=JobStatus.CANCELLED.value,
                finished_at=utcnow(),
                enqueued_at=None,
            )
        )
        if changed:
            await _end_unpaid(
                conn,
                job.id,
                job.customer_id,  # type: ignore[attr-defined]
                job.cost_cents,
                JobStatus.PENDING,
                JobStatus.CANCELLED,
                job.attempts,
                None,
                "cancelled by request",
                "cancelled",
            )
            return await get_job(job_id), True
        requested = (
            await Job.filter(id=job_id, status=JobStatus.RUNNING.value, cancel_requested_at=None)
            .using_db(conn)
            .update(updated_at=utcnow(), cancel_requested_at=utcnow())
        )
        if requested:
            await _event(
                conn,
                job.id,
                JobStatus.RUNNING,
                JobStatus.RUNNING,
                job.attempts,
                job.runner_id,
                "cancel requested; the runner stops the attempt",
            )
    job = await get_job(job_id)
    if job.status == JobStatus.RUNNING.value:
        _signal_local_cancel(str(job.id))  # at once when this process runs it
        return job, False
    raise Conflict(
        f"job {job_id} is {job.status} and cannot be cancelled",
        [{"field": "status", "message": f"is {job.status}"}],
    )


def _signal_local_cancel(job_id: str) -> None:
    state = runners.local_state()
    ctx = state.in_flight.get(job_id) if state is not None else None
    if ctx is not None:
        ctx.request_cancel()


async def poll_cancellations(state: RunnerState) -> None:
    """Every tick: tell this runner's processors whose jobs were asked to cancel (the request
    may have reached another process's API)."""
    if not state.in_flight:
        return
    ids = await Job.filter(
        id__in=list(state.in_flight), cancel_requested_at__isnull=False
    ).values_list("id", flat=True)
    for job_id in ids:
        ctx = state.in_flight.get(str(job_id))
        if ctx is not None and not ctx.cancelled():
            ctx.request_cancel()


# --- execute ------------------------------------------------------------------------------------
def backoff_ms(job_type: JobType, attempt: int) -> int:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, then 50-100 % of that, so
    retries of many jobs failing together spread out. Fixed: the base, every time."""
    if job_type.backoff_strategy == "fixed":
        return job_type.backoff_base_ms
    ceiling = min(job_type.backoff_max_ms, job_type.backoff_base_ms * 2 ** max(0, attempt - 1))
    return int(random.uniform(ceiling / 2, ceiling)) if ceiling > 0 else 0


def _error(
    kind: str, message: str, attempt: int, exc: BaseException | None = None
) -> dict[str, Any]:
    """The error stored on the job: type and message. The traceback, trimmed to its last
    frames, goes to the attempt row (``GET /jobs/{id}/attempts``) and the operator's log."""
    error: dict[str, Any] = {"type": kind, "message": message[:MAX_ERROR_CHARS], "attempt": attempt}
    if exc is not None:
        logger.opt(exception=exc).warning("attempt {} raised ({}): {}", attempt, kind, message)
        trace = "".join(traceback.format_exception(exc))
        error["traceback"] = trace[-MAX_TRACEBACK_CHARS:]
    return error


async def _close_attempt(
    conn: BaseDBAsyncClient,
    job_id: uuid.UUID,
    number: int,
    outcome: AttemptOutcome,
    error: dict[str, Any] | None = None,
) -> None:
    """Record how an attempt ended, in the transaction that moves its job."""
    await (
        JobAttempt.filter(job_id=job_id, number=number, outcome=AttemptOutcome.RUNNING.value)
        .using_db(conn)
        .update(
            outcome=outcome.value,
            finished_at=utcnow(),
            error_type=error["type"] if error else None,
            error_message=error["message"] if error else None,
            traceback=error.get("traceback") if error else None,
        )
    )


def _public(error: dict[str, Any]) -> dict[str, Any]:
    """The job's ``error`` as its owner sees it on the job: no traceback."""
    return {k: v for k, v in error.items() if k != "traceback"}


async def execute_job(job_id: str, state: RunnerState) -> None:
    """Run one delivery of "run job X": claim, run the processor, record the outcome.

    Safe to call any number of times for the same job (at-least-once delivery): only the call
    whose conditional claim succeeds does any work.
    """
    with logger.contextualize(job_id=job_id):
        job = await Job.get_or_none(id=job_id).select_related("job_type")
        if job is None or job.status != JobStatus.PENDING.value:
            return
        now = utcnow()
        if job.run_at is not None and job.run_at > now:
            return  # an early duplicate; the delayed message or the sweeper brings it back
        job_type: JobType = job.job_type
        logic_id = job_type.processing_logic_id
        if (
            not state.supports(logic_id)
            and state.settings.broker_kind == "redis"  # memory:// queues are private
            and await runners.live_runner_serves(logic_id, state)
        ):
            # Not ours, but a live runner takes it: hand it back to the shared queue.
            await Job.filter(id=job.id, status=JobStatus.PENDING.value).update(
                enqueued_at=now + timedelta(seconds=1)
            )
            await _dispatch(job.id, 1000, job.priority)
            return
        attempt = job.attempts + 1
        async with in_transaction() as conn:
            claimed = (
                await Job.filter(id=job.id, status=JobStatus.PENDING.value, attempts=job.attempts)
                .using_db(conn)
                .update(
                    updated_at=utcnow(),
                    status=JobStatus.RUNNING.value,
                    runner_id=state.runner_id,
                    attempts=attempt,
                    lease_until=state.lease_until(),
                    started_at=now,
                    enqueued_at=None,
                )
            )
            if claimed:
                await JobAttempt.create(
                    using_db=conn,
                    job_id=job.id,
                    number=attempt,
                    runner_id=state.runner_id,
                    started_at=now,
                )
                await _event(
                    conn,
                    job.id,
                    JobStatus.PENDING,
                    JobStatus.RUNNING,
                    attempt,
                    state.runner_id,
                    f"attempt {attempt} started",
                )
        if not claimed:
            return
        logger.info("attempt {} of {} ({}) started", attempt, job_type.name, logic_id)

        ctx = JobContext(
            job_id=job.id,
            attempt=attempt,
            job_type_id=job_type.id,
            customer_id=job.customer_id,  # type: ignore[attr-defined]
            runner_id=state.runner_id,
        )
        ctx.artifacts = JobArtifacts(
            store=state.artifact_store,
            job_id=job.id,
            attempt=attempt,
            customer_id=job.customer_id,  # type: ignore[attr-defined]
            max_bytes=state.settings.max_artifact_bytes,
        )
        state.in_flight[job_id] = ctx
        try:
            await _run_and_record(job, job_type, ctx, state)
        finally:
            state.in_flight.pop(job_id, None)


async def _run_and_record(job: Job, job_type: JobType, ctx: JobContext, state: RunnerState) -> None:
    attempt = ctx.attempt
    processor = state.registry.get(job_type.processing_logic_id)
    if processor is None or not state.supports(job_type.processing_logic_id):
        installed = ", ".join(state.served_logic_ids) or "none"
        await _fail(
            job,
            job_type,
            state,
            attempt,
            _error(
                "no_processor",
                f"no live runner has an installed processor for "
                f"{job_type.processing_logic_id!r} (runner {state.runner_id} serves: {installed})",
                attempt,
            ),
            retry=False,
        )
        return
    progress = _ProgressWriter(job.id, state.runner_id, attempt)
    ctx._progress = progress.report
    try:
        result = await _run_cancellable(
            _call_processor(processor, ctx, job.input_data, state),
            ctx,
            limit_s=job_type.timeout_seconds,
            grace=state.settings.cancel_grace_seconds,
        )
    except JobCancelled:
        await progress.close()
        ctx.artifacts.discard()
        await _finish_cancelled(job, state, attempt)
        return
    except TimeoutError as exc:
        error, retry = (
            _error("timeout", f"attempt exceeded {job_type.timeout_seconds}s", attempt, exc),
            True,
        )
    except (PermanentError, ValidationFailed) as exc:  # bad input never gets better by retrying
        error, retry = _error("permanent", str(exc), attempt, exc), False
    except Exception as exc:  # unexpected errors are retryable by default
        error, retry = _error("exception", f"{type(exc).__name__}: {exc}", attempt, exc), True
    else:
        await progress.close()
        if ctx.cancelled():  # a cancel request wins over a result that arrived after it
            ctx.artifacts.discard()
            await _finish_cancelled(job, state, attempt)
            return
        problem = _result_problem(result)
        if problem is None:
            too_many = _batch_failed_too_many(job_type, progress.latest)
            if too_many is None:
                await _succeed(job, state, attempt, result, ctx.artifacts.written)
                return
            ctx.artifacts.discard()
            error = _error("batch_items_failed", too_many, attempt)
            await _fail(job, job_type, state, attempt, error, retry=False, result=result)
            return
        error, retry = _error("bad_result", problem, attempt), False
    await progress.close()
    ctx.artifacts.discard()  # a failed attempt's files are never served
    await _fail(job, job_type, state, attempt, error, retry=retry)


def _batch_failed_too_many(job_type: JobType, progress: dict[str, Any] | None) -> str | None:
    """The batch policy: more failed items than ``batch_max_failed_items`` fail the job (its
    per-item results are kept on it). Counted from the processor's last progress report."""
    limit = job_type.batch_max_failed_items
    if job_type.processor_type != "batch" or limit is None or not progress:
        return None
    failed = progress.get("failed")
    if isinstance(failed, int) and failed > limit:
        return f"{failed} item(s) failed; this job type allows at most {limit}"
    return None


async def _run_cancellable(
    call: Coroutine[Any, Any, Any], ctx: JobContext, *, limit_s: float, grace: float
) -> Any:
    """Await the processor under the job type's timeout; once a cancel is requested, give it
    ``grace`` seconds to stop on its own (``ctx.cancelled()``), then stop it by force and raise
    JobCancelled. Coroutines are really cancelled; a CPU task's process is killed by the pool
    (it gets the same cancel signal); a plain function in a thread cannot be interrupted and is
    abandoned (its late result is ignored)."""
    task = asyncio.ensure_future(call)
    cancel = ctx.cancel_event()
    watcher = asyncio.ensure_future(cancel.wait())
    try:
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return task.result()
        if watcher not in done:
            task.cancel()
            raise TimeoutError(f"exceeded {limit_s}s")
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
        except Exception:
            pass
        raise JobCancelled("the job was cancelled")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


#: Batch progress is written to the job at most this often (and once more at the end).
PROGRESS_INTERVAL_S = 0.5


class _ProgressWriter:
    """Keeps a running attempt's latest ``ctx.report_progress`` and writes it to the job, at
    most every PROGRESS_INTERVAL_S, so ``GET /jobs/{id}`` shows it while the job runs. Reports
    may come from any thread (sync processors run in one); writes happen on the loop."""

    def __init__(self, job_id: uuid.UUID, runner_id: str, attempt: int) -> None:
        self.job_id, self.runner_id, self.attempt = job_id, runner_id, attempt
        self.latest: dict[str, Any] | None = None
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.TimerHandle | None = None
        self._written: dict[str, Any] | None = None
        self._last_write = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, data: dict[str, Any]) -> None:
        clean = _progress_value(data)
        if clean is None:
            return
        self.latest = clean
        self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self._pending is not None:
            return
        delay = max(0.0, self._last_write + PROGRESS_INTERVAL_S - self._loop.time())
        self._pending = self._loop.call_later(delay, self._start_write)

    def _start_write(self) -> None:
        self._pending = None
        task = self._loop.create_task(self._write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self) -> None:
        data = self.latest
        if data is None or data == self._written:
            return
        self._last_write = self._loop.time()
        self._written = data
        try:
            await Job.filter(
                id=self.job_id,
                status=JobStatus.RUNNING.value,
                runner_id=self.runner_id,
                attempts=self.attempt,
            ).update(progress=data)
        except Exception as exc:  # progress is informative; never fail the attempt for it
            logger.warning("could not record progress: {}", exc)

    async def close(self) -> None:
        """Write the final progress (once all reports are in) before the attempt is recorded."""
        await asyncio.sleep(0)  # let reports scheduled from threads land
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        for task in list(self._tasks):
            await task
        await self._write()


def _progress_value(data: dict[str, Any]) -> dict[str, Any] | None:
    """Progress is a small flat object (e.g. total/succeeded/failed) of storable scalars."""
    if len(data) > 20:
        return None
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 64:
            return None
        if isinstance(value, float) and value != value:  # NaN
            return None
        if value is not None and not isinstance(value, (bool, int, float, str)):
            return None
        clean[key] = value[:200] if isinstance(value, str) else value
    return clean


def _result_problem(result: Any) -> str | None:
    """A result must be a JSON object the database can store; anything else is a processor
    bug, not worth a retry."""
    if not isinstance(result, dict):
        return f"processor returned {type(result).__name__}, not a dict"
    try:
        json.dumps(result)
        bad = jsonsafe.problems(result, "result")
    except (TypeError, ValueError, RecursionError) as exc:
        return f"processor result is not storable JSON: {type(exc).__name__}: {exc}"[:500]
    if bad:
        return "processor result is not storable JSON: " + "; ".join(
            f"{b['field']} {b['message']}" for b in bad
        )
    return None


async def _call_processor(
    processor: Processor, ctx: JobContext, input_data: Any, state: RunnerState
) -> Any:
    if processor.kind == "cpu":
        try:
            return await _call_in_pool(processor, ctx, input_data, state)
        except WorkerDied:
            # The pool process died (killed, out of memory); the pool replaces it, and this
            # attempt is retried by the job type's policy.
            raise RetryableError("the CPU worker process died during the attempt") from None
        except TaskCancelled:
            raise JobCancelled("the job was cancelled") from None
    if inspect.iscoroutinefunction(processor.process):
        return await processor.process(ctx, input_data)
    return await asyncio.to_thread(processor.process, ctx, input_data)


async def _call_in_pool(
    processor: Processor, ctx: JobContext, input_data: Any, state: RunnerState
) -> Any:
    ctx_fields = (
        str(ctx.job_id),
        ctx.attempt,
        str(ctx.job_type_id),
        str(ctx.customer_id),
        ctx.runner_id,
    )
    result, written = await state.cpu_pool.run(
        _child_entry,
        processor.logic_id,
        input_data,
        ctx_fields,
        ctx.artifacts.store,
        ctx.artifacts.max_bytes,
        cancel=ctx.cancel_event(),
        grace=state.settings.cancel_grace_seconds,
        on_progress=ctx.report_progress_dict,
    )
    ctx.artifacts.written.update(written)
    return result


def _child_entry(
    channel: Channel,
    logic_id: str,
    input_data: Any,
    ctx_fields: tuple,
    store: Any,
    max_bytes: int,
) -> tuple[Any, dict[str, Any]]:
    """What the CPU pool runs: the processor plus the artifacts it wrote, for the parent to
    register (the child has no database). Progress and the cancel flag travel on ``channel``."""
    job_id, attempt, _job_type_id, customer_id, _runner_id = ctx_fields
    artifacts = JobArtifacts(
        store=store,
        job_id=uuid.UUID(job_id),
        attempt=attempt,
        customer_id=uuid.UUID(customer_id),
        max_bytes=max_bytes,
    )
    try:
        result = run_in_child(logic_id, input_data, ctx_fields, artifacts, channel)
        return result, artifacts.written
    except (ProcessorError, ValidationFailed) as exc:
        artifacts.discard()
        # Re-raised as the base type with its message: a subclass with its own __init__ may not
        # unpickle in the parent, and that breaks the whole pool.
        if isinstance(exc, PermanentError | ValidationFailed):
            raise PermanentError(str(exc)) from None
        if isinstance(exc, JobCancelled):
            raise JobCancelled(str(exc)) from None
        raise RetryableError(str(exc)) from None
    except Exception as exc:
        artifacts.discard()
        # The traceback is logged here, in the pool process; only the message travels back.
        logger.opt(exception=exc).bind(job_id=job_id).warning("processor raised in the pool")
        raise ChildProcessError(f"{type(exc).__name__}: {exc}") from None


def run_in_child(
    logic_id: str,
    input_data: Any,
    ctx_fields: tuple,
    artifacts: JobArtifacts | None = None,
    channel: Channel | None = None,
) -> Any:
    """Entry point inside the CPU process pool: resolve the processor there by logic id."""
    processor = get_registry().get(logic_id)
    if processor is None:
        raise PermanentError(f"no processor {logic_id!r} in the worker pool")
    job_id, attempt, job_type_id, customer_id, runner_id = ctx_fields
    ctx = JobContext(
        job_id=uuid.UUID(job_id),
        attempt=attempt,
        job_type_id=uuid.UUID(job_type_id),
        customer_id=uuid.UUID(customer_id),
        runner_id=runner_id,
        artifacts=artifacts,
    )
    if channel is not None:
        ctx._progress = channel.progress
        ctx._cancel_check = channel.cancelled
    result = processor.process(ctx, input_data)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return result


def _owned(job: Job, state: RunnerState, attempt: int) -> Any:
    """The job as this runner claimed it: if the lease was lost and another runner took over,
    the filter matches nothing and this runner's outcome is discarded."""
    return Job.filter(
        id=job.id, status=JobStatus.RUNNING.value, runner_id=state.runner_id, attempts=attempt
    )


async def _succeed(
    job: Job, state: RunnerState, attempt: int, result: dict, artifacts: dict[str, dict]
) -> None:
    async with in_transaction() as conn:
        changed = (
            await _owned(job, state, attempt)
            .using_db(conn)
            .update(
                updated_at=utcnow(),
                status=JobStatus.SUCCEEDED.value,
                result=result,
                error=None,
                lease_until=None,
                finished_at=utcnow(),
            )
        )
        if not changed:
            logger.warning(
                "attempt {} finished after its lease was lost; result discarded", attempt
            )
            return
        state.count_finished(True)
        for meta in artifacts.values():
            await Artifact.create(
                using_db=conn,
                customer_id=job.customer_id,  # type: ignore[attr-defined]
                job_id=job.id,
                kind="output",
                **meta,
            )
        if job.cost_cents > 0:
            await billing.capture_hold(
                conn,
                job.customer_id,  # type: ignore[attr-defined]
                job.cost_cents,
                job.id,
            )
        await _close_attempt(conn, job.id, attempt, AttemptOutcome.SUCCEEDED)
        await _event(
            conn,
            job.id,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            attempt,
            state.runner_id,
            f"succeeded; {job.cost_cents} cents captured",
        )
    logger.info("attempt {} succeeded", attempt)


async def _fail(
    job: Job,
    job_type: JobType,
    state: RunnerState,
    attempt: int,
    error: dict[str, Any],
    *,
    retry: bool,
    result: dict[str, Any] | None = None,
) -> None:
    if retry and attempt < job_type.max_attempts:
        delay = backoff_ms(job_type, attempt)
        run_at = utcnow() + timedelta(milliseconds=delay)
        via_broker = timedelta(milliseconds=delay) <= MAX_BROKER_DELAY
        async with in_transaction() as conn:
            changed = (
                await _owned(job, state, attempt)
                .using_db(conn)
                .update(
                    updated_at=utcnow(),
                    status=JobStatus.PENDING.value,
                    error=_public(error),
                    lease_until=None,
                    runner_id=None,
                    run_at=run_at,
                    enqueued_at=run_at if via_broker else None,
                )
            )
            if changed:
                state.count_finished(False)
                await _close_attempt(conn, job.id, attempt, _outcome(error, final=False), error)
                await _event(
                    conn,
                    job.id,
                    JobStatus.RUNNING,
                    JobStatus.PENDING,
                    attempt,
                    state.runner_id,
                    f"attempt {attempt} failed ({error['type']}: {error['message']}); "
                    f"retry in {delay} ms",
                )
        if changed:
            logger.warning(
                "attempt {} failed: {}; retry in {} ms", attempt, error["message"], delay
            )
            if via_broker:
                await _dispatch(job.id, delay, job.priority)
        return
    async with in_transaction() as conn:
        changed = (
            await _owned(job, state, attempt)
            .using_db(conn)
            .update(
                updated_at=utcnow(),
                status=JobStatus.FAILED.value,
                error=_public(error),
                result=result,
                lease_until=None,
                finished_at=utcnow(),
            )
        )
        if changed:
            state.count_finished(False)
            await _close_attempt(conn, job.id, attempt, _outcome(error, final=True), error)
            await _end_unpaid(
                conn,
                job.id,
                job.customer_id,  # type: ignore[attr-defined]
                job.cost_cents,
                JobStatus.RUNNING,
                JobStatus.FAILED,
                attempt,
                state.runner_id,
                f"failed ({error['type']}): {error['message']}",
                "job failed",
            )
    if changed:
        logger.error("job failed after attempt {}: {}", attempt, error["message"])


def _outcome(error: dict[str, Any], *, final: bool) -> AttemptOutcome:
    if error["type"] == "timeout":
        return AttemptOutcome.TIMEOUT
    return AttemptOutcome.FAILED if final else AttemptOutcome.RETRYING


async def _finish_cancelled(job: Job, state: RunnerState, attempt: int) -> None:
    async with in_transaction() as conn:
        changed = (
            await _owned(job, state, attempt)
            .using_db(conn)
            .update(
                updated_at=utcnow(),
                status=JobStatus.CANCELLED.value,
                lease_until=None,
                finished_at=utcnow(),
            )
        )
        if changed:
            state.count_finished(False)
            await _close_attempt(conn, job.id, attempt, AttemptOutcome.CANCELLED)
            await _end_unpaid(
                conn,
                job.id,
                job.customer_id,  # type: ignore[attr-defined]
                job.cost_cents,
                JobStatus.RUNNING,
                JobStatus.CANCELLED,
                attempt,
                state.runner_id,
                "cancelled while running",
                "cancelled",
            )


# --- used by the sweeper ------------------------------------------------------------------------
async def recover_expired(
    job_id: uuid.UUID,
    attempts: int,
    max_attempts: int,
    customer_id: uuid.UUID,
    cost_cents: int,
    runner_id: str | None,
    reason: str,
) -> bool:
    """Take a running job away from a dead runner: back to pending, or failed when it has been
    delivered ``max_attempts`` times (a poison pill that keeps killing its runner)."""
    async with in_transaction() as conn:
        query = Job.filter(
            id=job_id, status=JobStatus.RUNNING.value, attempts=attempts, runner_id=runner_id
        ).using_db(conn)
        if attempts >= max_attempts:
            error = _error(
                "lost", f"{reason}; attempt {attempts} of {max_attempts} was the last", attempts
            )
            changed = await query.update(
                updated_at=utcnow(),
                status=JobStatus.FAILED.value,
                error=error,
                lease_until=None,
                finished_at=utcnow(),
            )
            if changed:
                await _close_attempt(conn, job_id, attempts, AttemptOutcome.LOST, error)
                await _end_unpaid(
                    conn,
                    job_id,
                    customer_id,
                    cost_cents,
                    JobStatus.RUNNING,
                    JobStatus.FAILED,
                    attempts,
                    runner_id,
                    f"failed: {error['message']}",
                    "job failed",
                )
        else:
            error = _error("lost", reason, attempts)
            changed = await query.update(
                updated_at=utcnow(),
                status=JobStatus.PENDING.value,
                error=error,
                lease_until=None,
                runner_id=None,
                run_at=None,
                enqueued_at=None,
            )
            if changed:
                await _close_attempt(conn, job_id, attempts, AttemptOutcome.LOST, error)
                await _event(
                    conn,
                    job_id,
                    JobStatus.RUNNING,
                    JobStatus.PENDING,
                    attempts,
                    runner_id,
                    f"re-queued: {reason}",
                )
    return bool(changed)


# --- listing ------------------------------------------------------------------------------------
async def list_jobs(
    *,
    status: str | None = None,
    customer_id: uuid.UUID | None = None,
    job_type_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so deep pages stay cheap."""
    query = Job.all()
    if status is not None:
        if status not in {s.value for s in JobStatus}:
            raise ValidationFailed.field(
                "status", "must be one of " + ", ".join(s.value for s in JobStatus)
            )
        query = query.filter(status=status)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    if job_type_id is not None:
        query = query.filter(job_type_id=job_type_id)
    if project_id is not None:
        query = query.filter(project_id=project_id)
    # In UTC: SQLite compares the stored UTC text, so another offset would compare wrongly.
    if created_from is not None:
        query = query.filter(created_at__gte=created_from.astimezone(UTC))
    if created_to is not None:
        query = query.filter(created_at__lt=created_to.astimezone(UTC))
    return await pagination.page(query, limit, cursor)
