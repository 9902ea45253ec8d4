"""/resellers, /customers (with their wallet and usage), /projects."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, jsonify

from innosystem.api import idempotent
from innosystem.api.body import read_json, read_query
from innosystem.api.openapi import operation
from innosystem.api.schemas import (
    AdjustmentCreate,
    CreditLimitUpdate,
    CustomerCreate,
    CustomerListQuery,
    CustomerOut,
    CustomerUpdate,
    Page,
    ProjectCreate,
    ProjectListQuery,
    ProjectOut,
    ProjectUpdate,
    ReconciliationOut,
    ResellerCreate,
    ResellerListQuery,
    ResellerOut,
    ResellerUpdate,
    TopUpCreate,
    TransactionListQuery,
    TransactionOut,
    UsageOut,
    UsageQuery,
    WalletChangeOut,
    WalletOut,
    customer_dict,
    project_dict,
    reseller_dict,
    transaction_dict,
    usage_dict,
    wallet_change_dict,
    wallet_dict,
)
from innosystem.services import billing, tenants, usage

bp = Blueprint("tenants", __name__)


def _deleted_or_archived(archived, serialize) -> Response | tuple[str, int]:
    return ("", 204) if archived is None else jsonify(serialize(archived))


# --- resellers ---------------------------------------------------------------------------------
@bp.post("/resellers")
@operation("Create a reseller", "tenants", status=201, response=ResellerOut, body=ResellerCreate)
async def create_reseller():
    body = await read_json(ResellerCreate)
    return jsonify(reseller_dict(await tenants.create_reseller(body.name))), 201


@bp.get("/resellers")
@operation("List resellers", "tenants", response=Page[ResellerOut], query=ResellerListQuery)
async def list_resellers():
    q = read_query(ResellerListQuery)
    rows, next_cursor = await tenants.list_resellers(
        status=q.status, name=q.name, limit=q.limit, cursor=q.cursor
    )
    return jsonify({"items": [reseller_dict(r) for r in rows], "next_cursor": next_cursor})


@bp.get("/resellers/<uuid:reseller_id>")
@operation("Read a reseller", "tenants", response=ResellerOut)
async def get_reseller(reseller_id: uuid.UUID):
    return jsonify(reseller_dict(await tenants.get_reseller(reseller_id)))


@bp.patch("/resellers/<uuid:reseller_id>")
@operation("Change a reseller", "tenants", response=ResellerOut, body=ResellerUpdate, errors=(409,))
async def update_reseller(reseller_id: uuid.UUID):
    body = await read_json(ResellerUpdate)
    reseller = await tenants.update_reseller(reseller_id, body.model_dump(exclude_unset=True))
    return jsonify(reseller_dict(reseller))


@bp.delete("/resellers/<uuid:reseller_id>")
@operation(
    "Delete a reseller, or archive it (and its customers and projects) when it has customers",
    "tenants",
    status=204,
    alternatives={200: ResellerOut},
)
async def delete_reseller(reseller_id: uuid.UUID):
    return _deleted_or_archived(await tenants.delete_reseller(reseller_id), reseller_dict)


@bp.get("/resellers/<uuid:reseller_id>/usage")
@operation("Usage of a reseller's customers", "usage", response=UsageOut, query=UsageQuery)
async def reseller_usage(reseller_id: uuid.UUID):
    q = read_query(UsageQuery)
    report = await usage.report(
        reseller_id=reseller_id, start=q.from_, end=q.to, group_by=q.group_by
    )
    return jsonify(usage_dict(report))


# --- customers ---------------------------------------------------------------------------------
@bp.post("/customers")
@operation(
    "Create a customer and its wallet",
    "tenants",
    status=201,
    response=CustomerOut,
    body=CustomerCreate,
    errors=(404, 409),
)
async def create_customer():
    body = await read_json(CustomerCreate)
    customer = await tenants.create_customer(
        body.reseller_id, body.name, body.email, body.currency, body.credit_limit_cents
    )
    return jsonify(customer_dict(customer)), 201


@bp.get("/customers")
@operation("List customers", "tenants", response=Page[CustomerOut], query=CustomerListQuery)
async def list_customers():
    q = read_query(CustomerListQuery)
    rows, next_cursor = await tenants.list_customers(
        status=q.status, reseller_id=q.reseller_id, email=q.email, limit=q.limit, cursor=q.cursor
    )
    return jsonify({"items": [customer_dict(c) for c in rows], "next_cursor": next_cursor})


@bp.get("/customers/<uuid:customer_id>")
@operation("Read a customer", "tenants", response=CustomerOut)
async def get_customer(customer_id: uuid.UUID):
    return jsonify(customer_dict(await tenants.get_customer(customer_id)))


@bp.patch("/customers/<uuid:customer_id>")
@operation("Change a customer", "tenants", response=CustomerOut, body=CustomerUpdate, errors=(409,))
async def update_customer(customer_id: uuid.UUID):
    body = await read_json(CustomerUpdate)
    customer = await tenants.update_customer(customer_id, body.model_dump(exclude_unset=True))
    return jsonify(customer_dict(customer))


@bp.delete("/customers/<uuid:customer_id>")
@operation(
    "Delete a customer, or archive it (and its projects) when it has history",
    "tenants",
    status=204,
    alternatives={200: CustomerOut},
)
async def delete_customer(customer_id: uuid.UUID):
    return _deleted_or_archived(await tenants.delete_customer(customer_id), customer_dict)


@bp.get("/customers/<uuid:customer_id>/usage")
@operation("Usage of a customer", "usage", response=UsageOut, query=UsageQuery)
async def customer_usage(customer_id: uuid.UUID):
    q = read_query(UsageQuery)
    report = await usage.report(
        customer_id=customer_id, start=q.from_, end=q.to, group_by=q.group_by
    )
    return jsonify(usage_dict(report))


# --- wallet ------------------------------------------------------------------------------------
@bp.get("/customers/<uuid:customer_id>/wallet")
@operation("Read a customer's wallet", "wallets", response=WalletOut)
async def get_wallet(customer_id: uuid.UUID):
    return jsonify(wallet_dict(await billing.get_wallet(customer_id)))


@bp.patch("/customers/<uuid:customer_id>/wallet")
@operation("Change the credit limit", "wallets", response=WalletOut, body=CreditLimitUpdate)
async def update_wallet(customer_id: uuid.UUID):
    body = await read_json(CreditLimitUpdate)
    wallet = await billing.set_credit_limit(customer_id, body.credit_limit_cents, body.reason)
    return jsonify(wallet_dict(wallet))


@bp.post("/customers/<uuid:customer_id>/wallet/top-ups")
@operation(
    "Add money to a wallet",
    "wallets",
    status=201,
    response=WalletChangeOut,
    body=TopUpCreate,
    errors=(409,),
    idempotent=True,
)
async def top_up(customer_id: uuid.UUID):
    body = await read_json(TopUpCreate)
    outcome = await billing.top_up(
        customer_id,
        body.amount_cents,
        body.reference,
        keyed=idempotent.keyed(customer_id, body),
        render=wallet_change_dict,
    )
    return idempotent.answer(outcome)


@bp.post("/customers/<uuid:customer_id>/wallet/adjustments")
@operation(
    "Correct a wallet's balance (either sign, with a reason)",
    "wallets",
    status=201,
    response=WalletChangeOut,
    body=AdjustmentCreate,
    errors=(402, 409),
    idempotent=True,
)
async def adjust(customer_id: uuid.UUID):
    body = await read_json(AdjustmentCreate)
    outcome = await billing.adjust(
        customer_id,
        body.amount_cents,
        body.reason,
        keyed=idempotent.keyed(customer_id, body),
        render=wallet_change_dict,
    )
    return idempotent.answer(outcome)


@bp.get("/customers/<uuid:customer_id>/wallet/transactions")
@operation(
    "The wallet's ledger, newest first",
    "wallets",
    response=Page[TransactionOut],
    query=TransactionListQuery,
)
async def wallet_transactions(customer_id: uuid.UUID):
    q = read_query(TransactionListQuery)
    rows, next_cursor = await billing.list_transactions(
        customer_id, limit=q.limit, cursor=q.cursor, kind=q.kind
    )
    return jsonify({"items": [transaction_dict(t) for t in rows], "next_cursor": next_cursor})


@bp.get("/customers/<uuid:customer_id>/wallet/reconciliation")
@operation("Recompute balance and held from the ledger", "wallets", response=ReconciliationOut)
async def reconciliation(customer_id: uuid.UUID):
    wallet = await billing.get_wallet(customer_id)
    return jsonify(await billing.reconcile(wallet.id))


# --- projects ----------------------------------------------------------------------------------
@bp.post("/projects")
@operation(
    "Create a project",
    "tenants",
    status=201,
    response=ProjectOut,
    body=ProjectCreate,
    errors=(404, 409),
)
async def create_project():
    body = await read_json(ProjectCreate)
    project = await tenants.create_project(body.customer_id, body.name, body.description)
    return jsonify(project_dict(project)), 201


@bp.get("/projects")
@operation("List projects", "tenants", response=Page[ProjectOut], query=ProjectListQuery)
async def list_projects():
    q = read_query(ProjectListQuery)
    rows, next_cursor = await tenants.list_projects(
        status=q.status, customer_id=q.customer_id, limit=q.limit, cursor=q.cursor
    )
    return jsonify({"items": [project_dict(p) for p in rows], "next_cursor": next_cursor})


@bp.get("/projects/<uuid:project_id>")
@operation("Read a project", "tenants", response=ProjectOut)
async def get_project(project_id: uuid.UUID):
    return jsonify(project_dict(await tenants.get_project(project_id)))


@bp.patch("/projects/<uuid:project_id>")
@operation("Change a project", "tenants", response=ProjectOut, body=ProjectUpdate, errors=(409,))
async def update_project(project_id: uuid.UUID):
    body = await read_json(ProjectUpdate)
    project = await tenants.update_project(project_id, body.model_dump(exclude_unset=True))
    return jsonify(project_dict(project))


@bp.delete("/projects/<uuid:project_id>")
@operation(
    "Delete a project, or archive it when it has jobs or job types",
    "tenants",
    status=204,
    alternatives={200: ProjectOut},
)
async def delete_project(project_id: uuid.UUID):
    return _deleted_or_archived(await tenants.delete_project(project_id), project_dict)
