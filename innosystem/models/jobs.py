"""Job types (what can be run and at what price), jobs (one paid request to run it) and the
events that record every status change of a job."""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ProcessorType(StrEnum):
    SYNC = "sync"
    ASYNC = "async"
    BATCH = "batch"


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobType(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    processing_logic_id = fields.CharField(max_length=128)
    processor_type = fields.CharField(max_length=8, default=ProcessorType.ASYNC.value)
    standard_cost_cents = fields.BigIntField()
    enabled = fields.BooleanField(default=True)
    # null: global; else only that project's jobs may use it.
    project = fields.ForeignKeyField(
        "models.Project", related_name="job_types", null=True, on_delete=fields.RESTRICT
    )
    default_priority = fields.CharField(max_length=8, default=Priority.NORMAL.value)
    max_attempts = fields.IntField(default=3)
    backoff_base_ms = fields.IntField(default=1000)
    backoff_max_ms = fields.IntField(default=300_000)
    # "exponential": base * 2^(n-1) capped at max, with 50-100 % jitter; "fixed": base each time.
    backoff_strategy = fields.CharField(
        max_length=16, default="exponential", db_default="exponential"
    )
    timeout_seconds = fields.IntField(default=300)
    sync_timeout_ms = fields.IntField(default=30_000)
    # Batch types: a job fails when more items than this failed; null: it succeeds with the
    # failed items listed in its result.
    batch_max_failed_items = fields.IntField(null=True)
    status = fields.CharField(max_length=16, default="active", db_default="active")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "job_types"
        indexes = (("processing_logic_id",),)


class Job(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="jobs", on_delete=fields.RESTRICT
    )
    project = fields.ForeignKeyField(
        "models.Project", related_name="jobs", null=True, on_delete=fields.RESTRICT
    )
    job_type = fields.ForeignKeyField(
        "models.JobType", related_name="jobs", on_delete=fields.RESTRICT
    )
    status = fields.CharField(max_length=16, default=JobStatus.PENDING.value)
    priority = fields.CharField(max_length=8, default=Priority.NORMAL.value)
    input_data = fields.JSONField()
    result = fields.JSONField(null=True)
    error = fields.JSONField(null=True)
    cost_cents = fields.BigIntField()
    attempts = fields.IntField(default=0)
    run_at = fields.DatetimeField(null=True)
    lease_until = fields.DatetimeField(null=True)
    runner_id = fields.CharField(max_length=128, null=True)
    # When the broker message for the current pending period was (or is due to be) delivered;
    # null means no message is known to be in flight, so the sweeper must send one.
    enqueued_at = fields.DatetimeField(null=True)
    # Batch progress while it runs: {"total", "succeeded", "failed"}.
    progress = fields.JSONField(null=True)
    # Set by a cancel request on a running job; its runner stops it cooperatively, then by force.
    cancel_requested_at = fields.DatetimeField(null=True)
    schedule_id = fields.UUIDField(null=True)  # the schedule that created it, if any
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"
        indexes = (
            ("status", "run_at"),  # sweeper: due pending jobs
            ("status", "lease_until"),  # sweeper: expired leases
            ("customer_id", "created_at"),  # listing per customer
            ("created_at", "id"),  # cursor pagination
            ("job_type_id", "created_at"),  # usage per job type, "has jobs?" on delete
            ("project_id", "created_at"),  # usage per project, "has jobs?" on delete
            ("status", "finished_at"),  # retention: finished jobs older than N days
        )


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a final failure
    RETRYING = "retrying"  # failed, another attempt follows
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"  # its runner died (lease expired)


class JobAttempt(Model):
    """One delivery of a job that was claimed and run: who ran it, when, and how it ended."""

    id = fields.BigIntField(primary_key=True)
    job = fields.ForeignKeyField(
        "models.Job", related_name="attempt_rows", on_delete=fields.CASCADE
    )
    number = fields.IntField()
    runner_id = fields.CharField(max_length=128)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    outcome = fields.CharField(max_length=16, default=AttemptOutcome.RUNNING.value)
    error_type = fields.CharField(max_length=64, null=True)
    error_message = fields.TextField(null=True)
    traceback = fields.TextField(null=True)  # trimmed; for operators and the job's owner

    class Meta:
        table = "job_attempts"
        unique_together = (("job", "number"),)


class Schedule(Model):
    """A recurring job: one job per cron tick, created by whichever process's sweeper claims the
    tick first (a conditional UPDATE of next_run_at)."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="schedules", on_delete=fields.RESTRICT
    )
    project = fields.ForeignKeyField(
        "models.Project", related_name="schedules", null=True, on_delete=fields.RESTRICT
    )
    job_type = fields.ForeignKeyField(
        "models.JobType", related_name="schedules", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=200, default="")
    input_data = fields.JSONField()
    priority = fields.CharField(max_length=8, null=True)
    cron = fields.CharField(max_length=200)
    timezone = fields.CharField(max_length=64, default="UTC")
    enabled = fields.BooleanField(default=True)
    next_run_at = fields.DatetimeField(null=True)
    last_run_at = fields.DatetimeField(null=True)
    last_job_id = fields.UUIDField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "schedules"
        indexes = (("enabled", "next_run_at"), ("customer_id", "created_at"), ("created_at", "id"))


class JobEvent(Model):
    id = fields.BigIntField(primary_key=True)
    job = fields.ForeignKeyField("models.Job", related_name="events", on_delete=fields.CASCADE)
    from_status = fields.CharField(max_length=16, null=True)
    to_status = fields.CharField(max_length=16)
    attempt = fields.IntField(default=0)
    runner_id = fields.CharField(max_length=128, null=True)
    message = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "job_events"
        indexes = (("job_id", "id"),)
