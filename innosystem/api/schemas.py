"""Request models (what a client may send: bodies and query strings), the response models the
OpenAPI document is generated from, and the serializers that produce those shapes.

Each ``*_dict`` serializer answers with exactly its ``*Out`` model's fields (a unit test
validates one against the other), so the published schema is the answer clients get."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
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
    LedgerKind,
    Priority,
    ProcessorType,
    Project,
    Reseller,
    Runner,
    Schedule,
    Wallet,
    WalletTransaction,
)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_text(value: Any) -> Any:
    # Pydantic would also take a number (or a numeric string) as Unix time; the contract says
    # RFC 3339 date-time strings.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2030-01-01T12:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Fields that exist on the resource but a client may not change: named as such in the 422.
    immutable: ClassVar[frozenset[str]] = frozenset()


_SERVER_OWNED = frozenset({"id", "status", "created_at", "updated_at"})


class JobCreate(_Body):
    customer_id: uuid.UUID
    job_type_id: uuid.UUID
    input_data: dict[str, Any]
    project_id: uuid.UUID | None = None
    priority: Priority | None = None
    run_at: Rfc3339 | None = None
    delay_ms: StrictInt | None = Field(default=None, ge=0, description="instead of run_at")


class JobTypeCreate(_Body):
    name: StrictStr = Field(min_length=1, max_length=200)
    description: StrictStr = Field(default="", max_length=10_000)
    processing_logic_id: StrictStr = Field(min_length=1, max_length=128)
    processor_type: ProcessorType
    standard_cost_cents: StrictInt = Field(ge=0, le=1_000_000_000)
    enabled: StrictBool = True
    project_id: uuid.UUID | None = None
    default_priority: Priority = Priority.NORMAL
    max_attempts: StrictInt = Field(default=3, ge=1, le=100)
    backoff_base_ms: StrictInt = Field(default=1000, ge=0, le=86_400_000)
    backoff_max_ms: StrictInt = Field(default=300_000, ge=0, le=86_400_000)
    backoff_strategy: Literal["exponential", "fixed"] = "exponential"
    timeout_seconds: StrictInt = Field(default=300, ge=1, le=86_400)
    sync_timeout_ms: StrictInt = Field(default=30_000, ge=0, le=600_000)
    batch_max_failed_items: StrictInt | None = Field(default=None, ge=0, le=1_000_000)


class ResellerCreate(_Body):
    name: StrictStr = Field(min_length=1, max_length=200)


class CustomerCreate(_Body):
    reseller_id: uuid.UUID
    name: StrictStr = Field(min_length=1, max_length=200)
    email: StrictStr = Field(min_length=3, max_length=320)
    currency: StrictStr = Field(default="EUR", min_length=3, max_length=3)
    credit_limit_cents: StrictInt = Field(default=0, ge=0, le=1_000_000_000)


class ProjectCreate(_Body):
    customer_id: uuid.UUID
    name: StrictStr = Field(min_length=1, max_length=200)
    description: StrictStr = Field(default="", max_length=10_000)


class TopUpCreate(_Body):
    amount_cents: StrictInt
    reference: StrictStr = Field(default="", max_length=200)


class AdjustmentCreate(_Body):
    amount_cents: StrictInt
    reason: StrictStr = Field(min_length=1, max_length=200)  # kept whole as the ledger reference


class CreditLimitUpdate(_Body):
    immutable = frozenset({"balance_cents", "held_cents", "currency", "customer_id", "id"})
    credit_limit_cents: StrictInt
    # The ledger reference is "credit limit OLD -> NEW: reason", 200 characters at most.
    reason: StrictStr = Field(default="", max_length=150)


# PATCH bodies: every field optional but never null (absent means "unchanged"); defaults are
# not validated, so a missing field stays None and ``exclude_unset`` drops it.
class ResellerUpdate(_Body):
    immutable = _SERVER_OWNED
    name: StrictStr = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]


class CustomerUpdate(_Body):
    immutable = _SERVER_OWNED | {"reseller_id", "currency", "credit_limit_cents"}
    name: StrictStr = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    email: StrictStr = Field(default=None, min_length=3, max_length=320)  # type: ignore[assignment]


class ProjectUpdate(_Body):
    immutable = _SERVER_OWNED | {"customer_id"}
    name: StrictStr = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    description: StrictStr = Field(default=None, max_length=10_000)  # type: ignore[assignment]


class JobTypeUpdate(_Body):
    immutable = _SERVER_OWNED | {"processing_logic_id", "processor_type", "project_id"}
    name: StrictStr = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    description: StrictStr = Field(default=None, max_length=10_000)  # type: ignore[assignment]
    standard_cost_cents: StrictInt = Field(default=None, ge=0, le=1_000_000_000)  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]
    default_priority: Priority = None  # type: ignore[assignment]
    max_attempts: StrictInt = Field(default=None, ge=1, le=100)  # type: ignore[assignment]
    backoff_base_ms: StrictInt = Field(default=None, ge=0, le=86_400_000)  # type: ignore[assignment]
    backoff_max_ms: StrictInt = Field(default=None, ge=0, le=86_400_000)  # type: ignore[assignment]
    backoff_strategy: Literal["exponential", "fixed"] = None  # type: ignore[assignment]
    timeout_seconds: StrictInt = Field(default=None, ge=1, le=86_400)  # type: ignore[assignment]
    sync_timeout_ms: StrictInt = Field(default=None, ge=0, le=600_000)  # type: ignore[assignment]
    # null is meaningful here (no limit), so this one field may be set to null.
    batch_max_failed_items: StrictInt | None = Field(default=None, ge=0, le=1_000_000)


# --- query strings -----------------------------------------------------------------------------
class _Query(BaseModel):
    """Query parameters arrive as text; pydantic's lax mode parses numbers, UUIDs and booleans
    from it. Unknown parameters are refused so a typo never silently widens a filter."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PageQuery(_Query):
    limit: int = Field(default=50, ge=1, le=200, description="page size")
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")


StatusFilter = Literal["active", "archived", "all"]


class ResellerListQuery(PageQuery):
    status: StatusFilter = "active"
    name: str | None = Field(default=None, max_length=200, description="substring, any case")


class CustomerListQuery(PageQuery):
    status: StatusFilter = "active"
    reseller_id: uuid.UUID | None = None
    email: str | None = Field(default=None, max_length=320)


class ProjectListQuery(PageQuery):
    status: StatusFilter = "active"
    customer_id: uuid.UUID | None = None


class JobTypeListQuery(PageQuery):
    status: StatusFilter = "active"
    project_id: uuid.UUID | None = None
    enabled: bool | None = None
    processing_logic_id: str | None = Field(default=None, max_length=128)
    processor_type: ProcessorType | None = None


class JobListQuery(PageQuery):
    status: JobStatus | None = None
    customer_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    job_type_id: uuid.UUID | None = None
    created_from: Rfc3339 | None = Field(default=None, description="inclusive")
    created_to: Rfc3339 | None = Field(default=None, description="exclusive")


class TransactionListQuery(PageQuery):
    kind: LedgerKind | None = None


class UsageQuery(_Query):
    from_: Rfc3339 | None = Field(default=None, alias="from", description="inclusive")
    to: Rfc3339 | None = Field(default=None, description="exclusive")
    group_by: Literal["job_type", "project", "day", "customer"] = "job_type"


class UploadQuery(_Query):
    customer_id: uuid.UUID
    name: str = Field(default="", max_length=255)


# --- responses ---------------------------------------------------------------------------------
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class Items(BaseModel, Generic[T]):
    items: list[T]


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorOut(BaseModel):
    error: ErrorBody


class ResellerOut(BaseModel):
    id: uuid.UUID
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


class CustomerOut(BaseModel):
    id: uuid.UUID
    reseller_id: uuid.UUID
    name: str
    email: str
    status: str
    created_at: datetime
    updated_at: datetime


class ProjectOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    description: str
    status: str
    created_at: datetime
    updated_at: datetime


class JobTypeOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    processing_logic_id: str
    processor_type: ProcessorType
    standard_cost_cents: int
    enabled: bool
    status: str
    project_id: uuid.UUID | None
    default_priority: Priority
    max_attempts: int
    backoff_base_ms: int
    backoff_max_ms: int
    backoff_strategy: Literal["exponential", "fixed"]
    timeout_seconds: int
    sync_timeout_ms: int
    batch_max_failed_items: int | None = Field(
        description="Batch types: more failed items than this fail the job; null: never"
    )
    created_at: datetime
    updated_at: datetime


class JobOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    project_id: uuid.UUID | None
    job_type_id: uuid.UUID
    status: JobStatus
    priority: Priority
    input_data: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    cost_cents: int
    attempts: int
    runner_id: str | None
    progress: dict[str, Any] | None = Field(
        description="batch progress while it runs, e.g. {total, succeeded, failed}"
    )
    cancel_requested_at: datetime | None
    pending_reason: str | None = Field(
        description="why a pending job waits (GET /jobs/{id} only; null in lists)"
    )
    schedule_id: uuid.UUID | None = Field(description="the schedule that created it, if any")
    run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EventOut(BaseModel):
    id: int
    job_id: uuid.UUID
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    runner_id: str | None
    message: str
    created_at: datetime


class AttemptOut(BaseModel):
    number: int
    runner_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome
    error_type: str | None
    error_message: str | None
    traceback: str | None = Field(description="the last frames of the error, trimmed")


class WalletOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    balance_cents: int
    held_cents: int
    credit_limit_cents: int
    open_to_buy_cents: int


class TransactionOut(BaseModel):
    id: uuid.UUID
    kind: LedgerKind
    amount_cents: int
    held_delta_cents: int
    balance_after_cents: int
    held_after_cents: int
    job_id: uuid.UUID | None
    reference: str
    created_at: datetime


class WalletChangeOut(WalletOut):
    transaction: TransactionOut


class ReconciliationOut(BaseModel):
    wallet_id: uuid.UUID
    balance_cents: int
    held_cents: int
    ledger_balance_cents: int
    ledger_held_cents: int
    matches: bool


class JobCounts(BaseModel):
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    total: int


class UsageTotals(BaseModel):
    jobs: JobCounts
    captured_cents: dict[str, int] = Field(description="cents captured, by currency")


class UsageGroup(UsageTotals):
    key: str | None
    name: str | None


class UsageOut(BaseModel):
    customer_id: uuid.UUID | None
    reseller_id: uuid.UUID | None
    from_: datetime = Field(alias="from")
    to: datetime
    group_by: str
    totals: UsageTotals
    groups: list[UsageGroup]


class ArtifactOut(BaseModel):
    id: uuid.UUID
    kind: str
    customer_id: uuid.UUID
    job_id: uuid.UUID | None
    name: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


class RunnerOut(BaseModel):
    id: str
    status: Literal["active", "stale", "gone"] = Field(
        description="active: heartbeat within 2 poll intervals; stale: older, but within "
        "lease_seconds (its leases hold); gone: stopped, or silent past lease_seconds"
    )
    kind: str
    hostname: str
    pid: int
    supported_job_types: list[str] | None
    capacity: int
    in_flight: int
    processed_count: int = Field(description="attempts finished since started_at")
    failed_count: int = Field(description="of those, attempts that did not succeed")
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None


class HealthOut(BaseModel):
    status: Literal["ok", "error"]
    database: str
    broker: str
    version: str
    runner_id: str


class ProcessorsOut(BaseModel):
    items: list[dict[str, Any]]
    plugins: list[dict[str, Any]]


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def job_dict(job: Job, pending_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "customer_id": _id(job.customer_id),  # type: ignore[attr-defined]
        "project_id": _id(job.project_id),  # type: ignore[attr-defined]
        "job_type_id": _id(job.job_type_id),  # type: ignore[attr-defined]
        "status": job.status,
        "priority": job.priority,
        "input_data": job.input_data,
        "result": job.result,
        "error": job.error,
        "cost_cents": job.cost_cents,
        "attempts": job.attempts,
        "runner_id": job.runner_id,
        "progress": job.progress,
        "cancel_requested_at": _ts(job.cancel_requested_at),
        "pending_reason": pending_reason,
        "schedule_id": _id(job.schedule_id),
        "run_at": _ts(job.run_at),
        "created_at": _ts(job.created_at),
        "updated_at": _ts(job.updated_at),
        "started_at": _ts(job.started_at),
        "finished_at": _ts(job.finished_at),
    }


def event_dict(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "job_id": _id(event.job_id),  # type: ignore[attr-defined]
        "from_status": event.from_status,
        "to_status": event.to_status,
        "attempt": event.attempt,
        "runner_id": event.runner_id,
        "message": event.message,
        "created_at": _ts(event.created_at),
    }


def attempt_dict(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "runner_id": attempt.runner_id,
        "started_at": _ts(attempt.started_at),
        "finished_at": _ts(attempt.finished_at),
        "outcome": attempt.outcome,
        "error_type": attempt.error_type,
        "error_message": attempt.error_message,
        "traceback": attempt.traceback,
    }


def job_type_dict(job_type: JobType) -> dict[str, Any]:
    return {
        "id": str(job_type.id),
        "name": job_type.name,
        "description": job_type.description,
        "processing_logic_id": job_type.processing_logic_id,
        "processor_type": job_type.processor_type,
        "standard_cost_cents": job_type.standard_cost_cents,
        "enabled": job_type.enabled,
        "status": job_type.status,
        "project_id": _id(job_type.project_id),  # type: ignore[attr-defined]
        "default_priority": job_type.default_priority,
        "max_attempts": job_type.max_attempts,
        "backoff_base_ms": job_type.backoff_base_ms,
        "backoff_max_ms": job_type.backoff_max_ms,
        "backoff_strategy": job_type.backoff_strategy,
        "timeout_seconds": job_type.timeout_seconds,
        "sync_timeout_ms": job_type.sync_timeout_ms,
        "batch_max_failed_items": job_type.batch_max_failed_items,
        "created_at": _ts(job_type.created_at),
        "updated_at": _ts(job_type.updated_at),
    }


def reseller_dict(reseller: Reseller) -> dict[str, Any]:
    return {
        "id": str(reseller.id),
        "name": reseller.name,
        "status": reseller.status,
        "created_at": _ts(reseller.created_at),
        "updated_at": _ts(reseller.updated_at),
    }


def customer_dict(customer: Customer) -> dict[str, Any]:
    return {
        "id": str(customer.id),
        "reseller_id": _id(customer.reseller_id),  # type: ignore[attr-defined]
        "name": customer.name,
        "email": customer.email,
        "status": customer.status,
        "created_at": _ts(customer.created_at),
        "updated_at": _ts(customer.updated_at),
    }


def project_dict(project: Project) -> dict[str, Any]:
    return {
        "id": str(project.id),
        "customer_id": _id(project.customer_id),  # type: ignore[attr-defined]
        "name": project.name,
        "description": project.description,
        "status": project.status,
        "created_at": _ts(project.created_at),
        "updated_at": _ts(project.updated_at),
    }


def artifact_dict(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": str(artifact.id),
        "kind": artifact.kind,
        "customer_id": _id(artifact.customer_id),  # type: ignore[attr-defined]
        "job_id": _id(artifact.job_id),  # type: ignore[attr-defined]
        "name": artifact.name,
        "content_type": artifact.content_type,
        "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256,
        "created_at": _ts(artifact.created_at),
    }


def transaction_dict(tx: WalletTransaction) -> dict[str, Any]:
    return {
        "id": str(tx.id),
        "kind": tx.kind,
        "amount_cents": tx.amount_cents,
        "held_delta_cents": tx.held_delta_cents,
        "balance_after_cents": tx.balance_after_cents,
        "held_after_cents": tx.held_after_cents,
        "job_id": _id(tx.job_id),
        "reference": tx.reference,
        "created_at": _ts(tx.created_at),
    }


def runner_dict(runner: Runner, status: str) -> dict[str, Any]:
    return {
        "id": runner.id,
        "status": status,
        "kind": runner.kind,
        "hostname": runner.hostname,
        "pid": runner.pid,
        "supported_job_types": runner.supported_job_types,
        "capacity": runner.capacity,
        "in_flight": runner.in_flight,
        "processed_count": runner.processed_count,
        "failed_count": runner.failed_count,
        "started_at": _ts(runner.started_at),
        "heartbeat_at": _ts(runner.heartbeat_at),
        "stopped_at": _ts(runner.stopped_at),
    }


def wallet_dict(wallet: Wallet) -> dict[str, Any]:
    return {
        "id": str(wallet.id),
        "customer_id": _id(wallet.customer_id),  # type: ignore[attr-defined]
        "currency": wallet.currency,
        "balance_cents": wallet.balance_cents,
        "held_cents": wallet.held_cents,
        "credit_limit_cents": wallet.credit_limit_cents,
        "open_to_buy_cents": wallet.open_to_buy_cents,
    }


def wallet_change_dict(change: Any) -> dict[str, Any]:
    return {**wallet_dict(change.wallet), "transaction": transaction_dict(change.transaction)}


def usage_dict(report: dict[str, Any]) -> dict[str, Any]:
    return {**report, "from": _ts(report["from"]), "to": _ts(report["to"])}


# --- schedules ---------------------------------------------------------------------------------


class ScheduleCreate(_Body):
    customer_id: uuid.UUID
    job_type_id: uuid.UUID
    input_data: dict[str, Any]
    cron: StrictStr = Field(
        min_length=1, max_length=200, description="5 fields: minute hour day-of-month month weekday"
    )
    timezone: StrictStr = Field(
        default="UTC", min_length=1, max_length=64, description="IANA name, e.g. Europe/Berlin"
    )
    project_id: uuid.UUID | None = None
    name: StrictStr = Field(default="", max_length=200)
    enabled: StrictBool = True
    priority: Priority | None = Field(default=None, description="null: the job type's default")


class ScheduleUpdate(_Body):
    immutable = _SERVER_OWNED | {
        "customer_id",
        "project_id",
        "job_type_id",
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "last_error",
    }
    name: StrictStr = Field(default=None, max_length=200)  # type: ignore[assignment]
    input_data: dict[str, Any] = None  # type: ignore[assignment]
    cron: StrictStr = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    timezone: StrictStr = Field(default=None, min_length=1, max_length=64)  # type: ignore[assignment]
    enabled: StrictBool = None  # type: ignore[assignment]
    # The one nullable field: null goes back to the job type's default priority.
    priority: Priority | None = None


class ScheduleListQuery(PageQuery):
    customer_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    job_type_id: uuid.UUID | None = None
    enabled: bool | None = None


class ScheduleOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    project_id: uuid.UUID | None
    job_type_id: uuid.UUID
    name: str
    input_data: dict[str, Any]
    priority: Priority | None
    cron: str
    timezone: str
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: uuid.UUID | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": str(schedule.id),
        "customer_id": _id(schedule.customer_id),  # type: ignore[attr-defined]
        "project_id": _id(schedule.project_id),  # type: ignore[attr-defined]
        "job_type_id": _id(schedule.job_type_id),  # type: ignore[attr-defined]
        "name": schedule.name,
        "input_data": schedule.input_data,
        "priority": schedule.priority,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "next_run_at": _ts(schedule.next_run_at),
        "last_run_at": _ts(schedule.last_run_at),
        "last_job_id": _id(schedule.last_job_id),
        "last_error": schedule.last_error,
        "created_at": _ts(schedule.created_at),
        "updated_at": _ts(schedule.updated_at),
    }


# --- queues ---
class RunnerListQuery(_Query):
    status: Literal["active", "stale", "gone"] | None = Field(
        default=None, description="only runners of this status"
    )


class PriorityQueueOut(BaseModel):
    priority: Priority
    pending: int
    due: int = Field(description="pending with run_at null or past")
    scheduled: int = Field(description="pending with run_at in the future")
    oldest_pending_age_seconds: float | None = Field(
        description="longest wait of a due job, since its run_at or else its creation; "
        "null when none is due"
    )


class JobTypeQueueOut(BaseModel):
    job_type_id: uuid.UUID
    name: str
    processing_logic_id: str
    pending: int
    running: int
    oldest_pending_age_seconds: float | None
    served_by: list[str] = Field(description="ids of the active runners that serve it")
    unserved: bool = Field(description="no active or stale runner serves its logic id")


class RunnerCountsOut(BaseModel):
    active: int
    stale: int
    gone: int


class QueuesOut(BaseModel):
    queues: list[PriorityQueueOut] = Field(description="high, normal, low")
    job_types: list[JobTypeQueueOut] = Field(
        description="job types with pending or running jobs, most pending first"
    )
    unserved_logic_ids: list[str] = Field(
        description="logic ids of enabled job types, or of jobs waiting, that no active or "
        "stale runner serves"
    )
    runners: RunnerCountsOut
