"""A runner is one worker process (embedded in serve, or ``innosystem worker``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Runner(Model):
    id = fields.CharField(max_length=128, primary_key=True)
    hostname = fields.CharField(max_length=255)
    pid = fields.IntField()
    kind = fields.CharField(max_length=16)  # serve | worker
    supported_job_types = fields.JSONField(default=list)
    capacity = fields.IntField()
    in_flight = fields.IntField(default=0)
    processed_count = fields.IntField(default=0, db_default=0)  # attempts finished
    failed_count = fields.IntField(default=0, db_default=0)  # of those, not succeeded
    started_at = fields.DatetimeField()
    heartbeat_at = fields.DatetimeField()
    stopped_at = fields.DatetimeField(null=True)

    class Meta:
        table = "runners"
