"""The HTTP side of idempotency: read the Idempotency-Key header into a service request and
answer a replay exactly as the first response was answered."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from quart import Response, current_app, jsonify, request

from innosystem.errors import ValidationFailed
from innosystem.services import idempotency


def keyed(customer_id: uuid.UUID, body: BaseModel) -> idempotency.Keyed | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if key.startswith(idempotency.RESERVED_PREFIX):
        raise ValidationFailed.field(
            "Idempotency-Key", f"keys starting with {idempotency.RESERVED_PREFIX!r} are reserved"
        )
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    return idempotency.Keyed(
        customer_id=customer_id,
        key=idempotency.check_key(key),
        fingerprint=idempotency.fingerprint(request.method, request.path, body.model_dump()),
        retention=timedelta(hours=settings.idempotency_hours),
    )


def answer(outcome: idempotency.Outcome[Any]) -> Response:
    response = jsonify(outcome.body)
    response.status_code = outcome.status_code
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
