"""Query-string parameters, validated with the same 422 envelope as bodies."""

from __future__ import annotations

import uuid

from quart import request

from innosystem.errors import ValidationFailed


def query_uuid(name: str) -> uuid.UUID | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.field(name, "must be a UUID") from None


def query_int(name: str, *, default: int, lo: int, hi: int) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationFailed.field(name, "must be an integer") from None
    if not lo <= number <= hi:
        raise ValidationFailed.field(name, f"must be between {lo} and {hi}")
    return number
