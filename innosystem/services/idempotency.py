"""Idempotency keys with Stripe's semantics, for every request that moves money.

The key is recorded in the same transaction as the effect, so the effect and its record commit
together or not at all. Two concurrent requests with one key both run the effect; the second
one's insert of the key hits the unique index (PostgreSQL makes it wait for the first to commit)
and its whole transaction rolls back, so there is exactly one effect, and the loser answers with
the winner's response. Only successes are recorded: a failed request changed nothing, so running
it again is safe.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from innosystem.errors import Conflict, ServiceError, ValidationFailed
from innosystem.models import IdempotencyKey
from innosystem.services.runners import utcnow

T = TypeVar("T")

#: Keys the scheduler uses for its ticks ("schedule:<id>:<tick>"); clients may not send them.
RESERVED_PREFIX = "schedule:"

#: Purged per sweep at most, so a purge never holds a long lock.
PURGE_BATCH = 1000


@dataclass(frozen=True)
class Keyed:
    """A request that carries an Idempotency-Key, and how long its key is honoured."""

    customer_id: uuid.UUID
    key: str
    fingerprint: str
    retention: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The effect's result (a first request) or the stored response (a replay)."""

    result: T | None
    status_code: int
    body: dict[str, Any]
    replayed: bool


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not all(" " <= ch <= "~" for ch in key):
        raise ValidationFailed.field(
            "Idempotency-Key", "must be 1 to 255 printable ASCII characters"
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    """What "the same request" means: method, path and the body's meaning (key order and
    whitespace do not count)."""
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=_plain
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: Any) -> str:
    # One instant is one request, however its offset is spelled.
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat()
    return str(value)


async def _stored(keyed: Keyed) -> Outcome[Any] | None:
    row = await IdempotencyKey.get_or_none(customer_id=keyed.customer_id, key=keyed.key)
    if row is None:
        return None
    if row.created_at < utcnow() - keyed.retention:
        # Expired: the key may be used afresh. Conditional on the id so a concurrent fresh use
        # of the key is never deleted.
        await IdempotencyKey.filter(id=row.id).delete()
        return None
    if row.fingerprint != keyed.fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different request",
            [{"field": "Idempotency-Key", "message": "reused with another request"}],
        )
    return Outcome(None, row.status_code, row.response, replayed=True)


async def replay(keyed: Keyed | None) -> Outcome[Any] | None:
    """The stored response of an earlier request with this key, if any (409 when that request
    was a different one). Check it before validating: a replay answers as the first did."""
    return None if keyed is None else await _stored(keyed)


async def once(
    keyed: Keyed | None,
    effect: Callable[[BaseDBAsyncClient], Awaitable[T]],
    render: Callable[[T], dict[str, Any]],
    status_code: int,
) -> Outcome[T]:
    """Run ``effect`` in one transaction, at most once per key (no key: just run it)."""
    prior = await replay(keyed)
    if prior is not None:
        return prior
    return await run(keyed, effect, render, status_code)


async def run(
    keyed: Keyed | None,
    effect: Callable[[BaseDBAsyncClient], Awaitable[T]],
    render: Callable[[T], dict[str, Any]],
    status_code: int,
) -> Outcome[T]:
    """``once`` for a caller that already checked ``replay`` (and validated in between)."""
    try:
        async with in_transaction() as conn:
            result = await effect(conn)
            body = render(result)
            if keyed is not None:
                await IdempotencyKey.create(
                    using_db=conn,
                    customer_id=keyed.customer_id,
                    key=keyed.key,
                    fingerprint=keyed.fingerprint,
                    status_code=status_code,
                    response=body,
                )
    except (IntegrityError, ServiceError):
        # A concurrent request with this key may have won (our insert of the key collided, or
        # the effect failed because the winner's effect changed the wallet): answer as it did.
        if keyed is not None:
            prior = await _stored(keyed)
            if prior is not None:
                return prior
        raise
    return Outcome(result, status_code, body, replayed=False)


async def amend(keyed: Keyed, status_code: int, body: dict[str, Any]) -> None:
    """Replace a recorded response: for requests whose answer is only known after the effect
    committed (a Sync job answers with the finished job)."""
    await IdempotencyKey.filter(
        customer_id=keyed.customer_id, key=keyed.key, fingerprint=keyed.fingerprint
    ).update(status_code=status_code, response=body)


async def purge_expired(retention: timedelta) -> int:
    """Delete one bounded batch of expired keys; the sweeper calls this every pass."""
    ids = await (
        IdempotencyKey.filter(created_at__lt=utcnow() - retention)
        .limit(PURGE_BATCH)
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    return await IdempotencyKey.filter(id__in=ids).delete()
