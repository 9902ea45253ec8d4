"""Resellers own customers, customers own projects (and one wallet, see billing)."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class Reseller(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    name = fields.CharField(max_length=200)
    status = fields.CharField(max_length=16, default="active")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "resellers"


class Customer(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    reseller = fields.ForeignKeyField(
        "models.Reseller", related_name="customers", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=200)
    # Stored lower-cased by the service layer, so the unique index is case-insensitive everywhere.
    email = fields.CharField(max_length=320, unique=True)
    status = fields.CharField(max_length=16, default="active")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "customers"


class Project(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="projects", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    status = fields.CharField(max_length=16, default="active")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "projects"
