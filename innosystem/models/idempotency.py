"""Idempotency keys: the first successful response to a keyed request, kept so a retry gets it
again instead of a second effect."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IdempotencyKey(Model):
    id = fields.BigIntField(primary_key=True)
    # Not a foreign key: keys are scoped by customer but must not stop a customer's deletion.
    customer_id = fields.UUIDField()
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)  # of method, path and body
    status_code = fields.IntField()
    response = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("customer_id", "key"),)
        indexes = (("created_at",),)
