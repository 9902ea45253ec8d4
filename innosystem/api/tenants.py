"""/resellers, /customers (with their wallet), /projects."""

from __future__ import annotations

import uuid

from quart import Blueprint, jsonify, request

from innosystem.api.body import read_json
from innosystem.api.params import query_int
from innosystem.api.schemas import (
    CustomerCreate,
    ProjectCreate,
    ResellerCreate,
    TopUpCreate,
    customer_dict,
    project_dict,
    reseller_dict,
    transaction_dict,
    wallet_dict,
)
from innosystem.services import billing, tenants

bp = Blueprint("tenants", __name__)


@bp.post("/resellers")
async def create_reseller():
    body = await read_json(ResellerCreate)
    return jsonify(reseller_dict(await tenants.create_reseller(body.name))), 201


@bp.get("/resellers/<uuid:reseller_id>")
async def get_reseller(reseller_id: uuid.UUID):
    return jsonify(reseller_dict(await tenants.get_reseller(reseller_id)))


@bp.post("/customers")
async def create_customer():
    body = await read_json(CustomerCreate)
    customer = await tenants.create_customer(
        body.reseller_id, body.name, body.email, body.currency, body.credit_limit_cents
    )
    return jsonify(customer_dict(customer)), 201


@bp.get("/customers/<uuid:customer_id>")
async def get_customer(customer_id: uuid.UUID):
    return jsonify(customer_dict(await tenants.get_customer(customer_id)))


@bp.get("/customers/<uuid:customer_id>/wallet")
async def get_wallet(customer_id: uuid.UUID):
    return jsonify(wallet_dict(await billing.get_wallet(customer_id)))


@bp.post("/customers/<uuid:customer_id>/wallet/top-ups")
async def top_up(customer_id: uuid.UUID):
    body = await read_json(TopUpCreate)
    wallet = await billing.top_up(customer_id, body.amount_cents, body.reference)
    return jsonify(wallet_dict(wallet)), 201


@bp.get("/customers/<uuid:customer_id>/wallet/transactions")
async def wallet_transactions(customer_id: uuid.UUID):
    rows, next_cursor = await billing.list_transactions(
        customer_id,
        limit=query_int("limit", default=50, lo=1, hi=200),
        cursor=request.args.get("cursor") or None,
    )
    return jsonify({"items": [transaction_dict(t) for t in rows], "next_cursor": next_cursor})


@bp.get("/customers/<uuid:customer_id>/wallet/reconciliation")
async def reconciliation(customer_id: uuid.UUID):
    wallet = await billing.get_wallet(customer_id)
    return jsonify(await billing.reconcile(wallet.id))


@bp.post("/projects")
async def create_project():
    body = await read_json(ProjectCreate)
    project = await tenants.create_project(body.customer_id, body.name, body.description)
    return jsonify(project_dict(project)), 201


@bp.get("/projects/<uuid:project_id>")
async def get_project(project_id: uuid.UUID):
    return jsonify(project_dict(await tenants.get_project(project_id)))
