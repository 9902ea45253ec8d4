"""Resellers, customers (each with one wallet) and projects."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from innosystem.errors import Conflict, NotFound, ValidationFailed
from innosystem.models import Customer, Project, Reseller, Wallet

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def normalize_email(email: str) -> str:
    """Emails are unique case-insensitively; storing them lower-cased makes that portable."""
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValidationFailed.field("email", "is not a valid email address")
    return email


async def create_reseller(name: str) -> Reseller:
    return await Reseller.create(name=name)


async def get_reseller(reseller_id: uuid.UUID) -> Reseller:
    reseller = await Reseller.get_or_none(id=reseller_id)
    if reseller is None:
        raise NotFound(f"reseller {reseller_id} not found")
    return reseller


async def create_customer(
    reseller_id: uuid.UUID,
    name: str,
    email: str,
    currency: str = "EUR",
    credit_limit_cents: int = 0,
    customer_id: uuid.UUID | None = None,
) -> Customer:
    email = normalize_email(email)
    currency = currency.upper()
    if not _CURRENCY.match(currency):
        raise ValidationFailed.field("currency", "must be an ISO 4217 code such as EUR")
    if credit_limit_cents < 0:
        raise ValidationFailed.field("credit_limit_cents", "must not be negative")
    if not await Reseller.exists(id=reseller_id):
        raise NotFound(
            f"reseller {reseller_id} not found", [{"field": "reseller_id", "message": "not found"}]
        )
    if await Customer.exists(email=email):
        raise Conflict(
            f"a customer with email {email} already exists",
            [{"field": "email", "message": "already in use"}],
        )
    try:
        async with in_transaction() as conn:
            extra: dict[str, Any] = {"id": customer_id} if customer_id else {}
            customer = await Customer.create(
                using_db=conn, reseller_id=reseller_id, name=name, email=email, **extra
            )
            await Wallet.create(
                using_db=conn,
                customer_id=customer.id,
                currency=currency,
                credit_limit_cents=credit_limit_cents,
            )
    except IntegrityError:  # lost a race on the unique email
        raise Conflict(
            f"a customer with email {email} already exists",
            [{"field": "email", "message": "already in use"}],
        ) from None
    return customer


async def get_customer(customer_id: uuid.UUID) -> Customer:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


async def create_project(customer_id: uuid.UUID, name: str, description: str = "") -> Project:
    if not await Customer.exists(id=customer_id):
        raise NotFound(
            f"customer {customer_id} not found", [{"field": "customer_id", "message": "not found"}]
        )
    return await Project.create(customer_id=customer_id, name=name, description=description)


async def get_project(project_id: uuid.UUID) -> Project:
    project = await Project.get_or_none(id=project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project
