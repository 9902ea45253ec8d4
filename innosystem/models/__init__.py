"""Tortoise models, one module per aggregate. ``MODEL_MODULES`` is what the ORM config loads."""

from innosystem.models.artifacts import Artifact
from innosystem.models.auth import ApiToken, AuditEvent, Role, User, UserStatus
from innosystem.models.billing import LedgerKind, Wallet, WalletTransaction
from innosystem.models.idempotency import IdempotencyKey
from innosystem.models.jobs import (
    AttemptOutcome,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    JobType,
    Priority,
    ProcessorType,
    Schedule,
)
from innosystem.models.runners import Runner
from innosystem.models.tenants import Customer, Project, Reseller

MODEL_MODULES = [
    "innosystem.models.artifacts",
    "innosystem.models.tenants",
    "innosystem.models.billing",
    "innosystem.models.jobs",
    "innosystem.models.runners",
    "innosystem.models.idempotency",
    "innosystem.models.auth",
]

__all__ = [
    "MODEL_MODULES",
    "ApiToken",
    "Artifact",
    "AttemptOutcome",
    "AuditEvent",
    "Customer",
    "IdempotencyKey",
    "Job",
    "JobAttempt",
    "JobEvent",
    "JobStatus",
    "JobType",
    "LedgerKind",
    "Priority",
    "ProcessorType",
    "Project",
    "Reseller",
    "Role",
    "Runner",
    "Schedule",
    "User",
    "UserStatus",
    "Wallet",
    "WalletTransaction",
]
