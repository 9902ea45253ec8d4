"""Files: a job's outputs (written by its processor) and customers' uploads (job inputs)."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class Artifact(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="artifacts", on_delete=fields.RESTRICT
    )
    # null for an upload; the job that produced it for an output.
    job = fields.ForeignKeyField(
        "models.Job", related_name="artifacts", null=True, on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=8)  # output | upload
    name = fields.CharField(max_length=255)
    content_type = fields.CharField(max_length=255)
    size_bytes = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=600)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "artifacts"
        unique_together = (("job", "name"),)
        indexes = (("customer_id", "created_at"),)
