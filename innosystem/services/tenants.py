"""Resellers, customers (each with one wallet) and projects."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from innosystem.errors import Conflict, NotFound, ValidationFailed
from innosystem.models import (
    Customer,
    IdempotencyKey,
    Job,
    JobType,
    Project,
    Reseller,
    Schedule,
    User,
    Wallet,
    WalletTransaction,
)
from innosystem.services import pagination
from innosystem.services.billing import check_credit_limit, check_currency
from innosystem.services.runners import utcnow

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ACTIVE = "active"
ARCHIVED = "archived"
STATUS_FILTERS = (ACTIVE, ARCHIVED, "all")


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
    currency = check_currency(currency)
    credit_limit_cents = check_credit_limit(credit_limit_cents)
    reseller = await Reseller.get_or_none(id=reseller_id)
    if reseller is None:
        raise NotFound(
            f"reseller {reseller_id} not found", [{"field": "reseller_id", "message": "not found"}]
        )
    require_active(reseller, "reseller_id")
    if await Customer.exists(email=email):
        raise _email_taken(email)
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
        raise _email_taken(email) from None
    return customer


def _email_taken(email: str) -> Conflict:
    return Conflict(
        f"a customer with email {email} already exists",
        [{"field": "email", "message": "already in use"}],
    )


def _kind(entity: Any) -> str:
    """ "job type" for a JobType: how messages name a model."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(entity).__name__).lower()


def require_active(parent: Any, field: str) -> None:
    """Nothing new is created under an archived resource (409 naming ``field``)."""
    if parent.status != ACTIVE:
        kind = _kind(parent)
        raise Conflict(
            f"{kind} {parent.id} is archived; nothing new can be created under it",
            [{"field": field, "message": "is archived"}],
        )


async def get_customer(customer_id: uuid.UUID) -> Customer:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


async def create_project(customer_id: uuid.UUID, name: str, description: str = "") -> Project:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise NotFound(
            f"customer {customer_id} not found", [{"field": "customer_id", "message": "not found"}]
        )
    require_active(customer, "customer_id")
    return await Project.create(customer_id=customer_id, name=name, description=description)


async def get_project(project_id: uuid.UUID) -> Project:
    project = await Project.get_or_none(id=project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


# --- list -----------------------------------------------------------------------------------
def _with_status(query: Any, status: str) -> Any:
    return query if status == "all" else query.filter(status=status)


async def list_resellers(
    *, status: str = ACTIVE, name: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[Reseller], str | None]:
    query = _with_status(Reseller.all(), status)
    if name:
        query = query.filter(name__icontains=name)
    return await pagination.page(query, limit, cursor)


async def list_customers(
    *,
    status: str = ACTIVE,
    reseller_id: uuid.UUID | None = None,
    email: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Customer], str | None]:
    query = _with_status(Customer.all(), status)
    if reseller_id is not None:
        query = query.filter(reseller_id=reseller_id)
    if email:
        query = query.filter(email=email.strip().lower())
    return await pagination.page(query, limit, cursor)


async def list_projects(
    *,
    status: str = ACTIVE,
    customer_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Project], str | None]:
    query = _with_status(Project.all(), status)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    return await pagination.page(query, limit, cursor)


# --- update ---------------------------------------------------------------------------------
def require_changeable(entity: Any) -> None:
    """An archived resource (tenant or job type) cannot be changed (409)."""
    if entity.status != ACTIVE:
        kind = _kind(entity)
        raise Conflict(
            f"{kind} {entity.id} is archived and cannot be changed",
            [{"field": "status", "message": "is archived"}],
        )


async def update_reseller(reseller_id: uuid.UUID, changes: dict[str, Any]) -> Reseller:
    """``changes`` holds only fields a client may set (the API model guarantees it)."""
    reseller = await get_reseller(reseller_id)
    require_changeable(reseller)
    if changes:
        await reseller.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
    return reseller


async def update_customer(customer_id: uuid.UUID, changes: dict[str, Any]) -> Customer:
    customer = await get_customer(customer_id)
    require_changeable(customer)
    if "email" in changes:
        changes["email"] = normalize_email(changes["email"])
        if changes["email"] != customer.email and await Customer.exists(email=changes["email"]):
            raise _email_taken(changes["email"])
    if changes:
        try:
            await customer.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
        except IntegrityError:  # lost a race on the unique email
            raise _email_taken(changes["email"]) from None
    return customer


async def update_project(project_id: uuid.UUID, changes: dict[str, Any]) -> Project:
    project = await get_project(project_id)
    require_changeable(project)
    if changes:
        await project.update_from_dict(changes).save(update_fields=[*changes, "updated_at"])
    return project


# --- delete or archive ------------------------------------------------------------------------
# A resource with history (jobs, money, children) is archived rather than deleted, so no job or
# ledger row ever loses its owner; archiving cascades down. Returns None when it was deleted.


async def delete_reseller(reseller_id: uuid.UUID) -> Reseller | None:
    reseller = await get_reseller(reseller_id)
    async with in_transaction() as conn:
        if not (
            await Customer.filter(reseller_id=reseller_id).using_db(conn).exists()
            or await User.filter(reseller_id=reseller_id).using_db(conn).exists()
        ):
            await Reseller.filter(id=reseller_id).using_db(conn).delete()
            return None
        customer_ids = await (
            Customer.filter(reseller_id=reseller_id).using_db(conn).values_list("id", flat=True)
        )
        await _archive(conn, Project.filter(customer_id__in=customer_ids))
        await _archive(conn, Customer.filter(reseller_id=reseller_id))
        await _archive(conn, Reseller.filter(id=reseller_id))
        await stop_schedules(conn, Schedule.filter(customer_id__in=customer_ids))
    await reseller.refresh_from_db()
    return reseller


async def delete_customer(customer_id: uuid.UUID) -> Customer | None:
    customer = await get_customer(customer_id)
    async with in_transaction() as conn:
        wallet = await Wallet.get(customer_id=customer_id).using_db(conn)
        history = (
            await Project.filter(customer_id=customer_id).using_db(conn).exists()
            or await Job.filter(customer_id=customer_id).using_db(conn).exists()
            or await WalletTransaction.filter(wallet_id=wallet.id).using_db(conn).exists()
            or await Schedule.filter(customer_id=customer_id).using_db(conn).exists()
            or await User.filter(customer_id=customer_id).using_db(conn).exists()
        )
        if not history:
            await IdempotencyKey.filter(customer_id=customer_id).using_db(conn).delete()
            await Wallet.filter(id=wallet.id).using_db(conn).delete()
            await Customer.filter(id=customer_id).using_db(conn).delete()
            return None
        await _archive(conn, Project.filter(customer_id=customer_id))
        await _archive(conn, Customer.filter(id=customer_id))
        await stop_schedules(conn, Schedule.filter(customer_id=customer_id))
    await customer.refresh_from_db()
    return customer


async def delete_project(project_id: uuid.UUID) -> Project | None:
    project = await get_project(project_id)
    async with in_transaction() as conn:
        history = (
            await Job.filter(project_id=project_id).using_db(conn).exists()
            or await JobType.filter(project_id=project_id).using_db(conn).exists()
            or await Schedule.filter(project_id=project_id).using_db(conn).exists()
        )
        if not history:
            await Project.filter(id=project_id).using_db(conn).delete()
            return None
        await _archive(conn, Project.filter(id=project_id))
        await stop_schedules(conn, Schedule.filter(project_id=project_id))
    await project.refresh_from_db()
    return project


async def stop_schedules(conn: Any, query: Any) -> None:
    """Nothing new runs for an archived owner: its schedules are disabled with it (they would
    only record a refused tick each time)."""
    await query.using_db(conn).update(enabled=False, next_run_at=None, updated_at=utcnow())


async def _archive(conn: Any, query: Any) -> None:
    await query.using_db(conn).filter(status=ACTIVE).update(status=ARCHIVED, updated_at=utcnow())
