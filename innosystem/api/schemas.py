"""Request models (what a client may send) and the JSON shapes the API answers with."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

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
    Customer,
    Job,
    JobEvent,
    JobType,
    Priority,
    ProcessorType,
    Project,
    Reseller,
    Runner,
    Wallet,
    WalletTransaction,
)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    # Pydantic would also take a number (or a numeric string) as Unix time; the contract says
    # RFC 3339 date-time strings.
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2030-01-01T12:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_Body):
    customer_id: uuid.UUID
    job_type_id: uuid.UUID
    input_data: dict[str, Any]
    project_id: uuid.UUID | None = None
    priority: Priority | None = None
    run_at: Rfc3339 | None = None


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
    timeout_seconds: StrictInt = Field(default=300, ge=1, le=86_400)
    sync_timeout_ms: StrictInt = Field(default=30_000, ge=0, le=600_000)


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


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def job_dict(job: Job) -> dict[str, Any]:
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


def job_type_dict(job_type: JobType) -> dict[str, Any]:
    return {
        "id": str(job_type.id),
        "name": job_type.name,
        "description": job_type.description,
        "processing_logic_id": job_type.processing_logic_id,
        "processor_type": job_type.processor_type,
        "standard_cost_cents": job_type.standard_cost_cents,
        "enabled": job_type.enabled,
        "project_id": _id(job_type.project_id),  # type: ignore[attr-defined]
        "default_priority": job_type.default_priority,
        "max_attempts": job_type.max_attempts,
        "backoff_base_ms": job_type.backoff_base_ms,
        "backoff_max_ms": job_type.backoff_max_ms,
        "timeout_seconds": job_type.timeout_seconds,
        "sync_timeout_ms": job_type.sync_timeout_ms,
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


def runner_dict(runner: Runner, state: str) -> dict[str, Any]:
    return {
        "id": runner.id,
        "state": state,
        "kind": runner.kind,
        "hostname": runner.hostname,
        "pid": runner.pid,
        "supported_job_types": runner.supported_job_types,
        "capacity": runner.capacity,
        "in_flight": runner.in_flight,
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
