"""Newest-first keyset pagination on (created_at, id), shared by every list that can grow large:
a deep page costs what the first does, unlike OFFSET."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from innosystem.errors import ValidationFailed


def encode_cursor(row: Any) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed.field("cursor", "is not a cursor this API returned") from None


async def page(query: QuerySet, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of ``query``, newest first, and the cursor of the next page (None at the end)."""
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=last_id))
    rows = await query.order_by("-created_at", "-id").limit(limit + 1)
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


# --- append-only tables with a growing integer id (audit events) ------------------------------
# Their id order is their insertion order, so the id alone is the key: newest first, id < cursor.


def encode_id_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"id|{row.id}".encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        if kind != "id" or not value.isdigit():
            raise ValueError("not an id cursor")
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed.field("cursor", "is not a cursor this API returned") from None


async def page_by_id(
    query: QuerySet, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``query`` (a model with an increasing integer id), newest first, and the
    cursor of the next page (None at the end)."""
    if cursor:
        query = query.filter(id__lt=decode_id_cursor(cursor))
    rows = await query.order_by("-id").limit(limit + 1)
    next_cursor = encode_id_cursor(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor
