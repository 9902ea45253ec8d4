"""Open-to-buy under a real race (PostgreSQL): a wallet that covers exactly 500 jobs receives
1,000 concurrent POST /jobs over HTTP. Exactly 500 holds may be placed, whatever the
interleaving, and the ledger must account for every cent once the jobs have ended: captured when
they succeed, released when they fail.

The server is the test's own (its own database), so the load disturbs no other test.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import (
    IS_POSTGRES,
    assert_reconciled,
    create_job_type,
    create_tenant,
    db_query,
    job_body,
    running,
    wait_all_final,
    wallet_of,
)

pytestmark = pytest.mark.skipif(
    not IS_POSTGRES, reason="a race of 1,000 concurrent holds is a PostgreSQL test"
)

REQUESTS = 1_000
COVERED = 500
COST = 7
CONNECTIONS = 64


#: Connection-level failures seen and retried during the last burst (should stay 0).
TRANSPORT_RETRIES: list[str] = []


async def _post_once(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> httpx.Response:
    """One logical request, as a careful client sends it: with its own Idempotency-Key, retried
    with that key if the connection drops, so a retry can never make a second job."""
    for attempt in range(3):
        try:
            return await client.post("/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            if attempt == 2:
                raise
            TRANSPORT_RETRIES.append(f"{key}: {type(exc).__name__}")
    raise AssertionError("unreachable")


async def _burst(url: str, body: dict[str, Any], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    TRANSPORT_RETRIES.clear()
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(_post_once(client, body, f"race-{run}-{i}") for i in range(n))
        )


def race(url: str, body: dict[str, Any]) -> list[str]:
    """Send ``REQUESTS`` copies of one job at once; check the answers split exactly
    ``COVERED`` / the rest between 201 and 402; return the accepted job ids."""
    responses = asyncio.run(_burst(url, body, REQUESTS))
    if TRANSPORT_RETRIES:  # visible in the run's warnings summary: the server dropped these
        warnings.warn(f"connections dropped and retried: {TRANSPORT_RETRIES[:5]}", stacklevel=1)
    statuses = Counter(r.status_code for r in responses)
    others = [r.text for r in responses if r.status_code not in (201, 402)][:3]
    assert statuses == {201: COVERED, 402: REQUESTS - COVERED}, (statuses, others)
    for refused in (r for r in responses if r.status_code == 402):
        assert refused.json()["error"]["code"] == "insufficient_funds", refused.text
    accepted = [r.json() for r in responses if r.status_code == 201]
    assert all(job["cost_cents"] == COST for job in accepted)
    ids = [job["id"] for job in accepted]
    assert len(set(ids)) == COVERED
    return ids


def ledger_counts(database_url: str, customer_id: str) -> dict[str, int]:
    rows = db_query(
        database_url,
        "SELECT t.kind, COUNT(*) AS n FROM wallet_transactions t "
        "JOIN wallets w ON w.id = t.wallet_id WHERE w.customer_id = {} GROUP BY t.kind",
        [uuid.UUID(customer_id)],
    )
    return {row["kind"]: int(row["n"]) for row in rows}


def make_due(database_url: str, customer_id: str) -> None:
    """Make a customer's scheduled jobs due, as the clock reaching ``run_at`` would (NULL means
    due); the sweeper sends them on its next tick."""
    db_query(
        database_url,
        "UPDATE jobs SET run_at = NULL WHERE customer_id = {} RETURNING id",
        [uuid.UUID(customer_id)],
    )


@pytest.mark.parametrize(
    ("logic_id", "input_data", "outcome", "settled"),
    [
        ("test-noop", {}, "succeeded", "capture"),
        ("test-fail-n-times", {"failures": 1}, "failed", "release"),
    ],
    ids=["succeeding", "failing"],
)
def test_exactly_the_covered_jobs_are_accepted_then_settled(
    make_server, logic_id, input_data, outcome, settled
):
    """The jobs are scheduled far ahead (no broker message) so that none ends during the race:
    a failing job would release its hold and let more in. Once the holds are counted they are
    made due and run."""
    srv = make_server().start()
    with running(srv), httpx.Client(base_url=srv.url, timeout=60) as api:
        job_type = create_job_type(api, logic_id, cost=COST, max_attempts=1)
        tenant = create_tenant(api, balance_cents=COVERED * COST)
        far = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
        body = job_body(tenant.customer_id, job_type["id"], input_data, run_at=far)

        ids = race(srv.url, body)
        wallet = wallet_of(api, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (COVERED * COST, COVERED * COST)
        assert wallet["open_to_buy_cents"] == 0
        assert ledger_counts(srv.database_url, tenant.customer_id) == {
            "top_up": 1,
            "hold": COVERED,
        }
        assert_reconciled(api, tenant.customer_id)

        make_due(srv.database_url, tenant.customer_id)
        jobs = wait_all_final(api, tenant.customer_id, servers=[srv], timeout=120)
        assert sorted(j["id"] for j in jobs) == sorted(ids)
        assert {j["status"] for j in jobs} == {outcome}
        wallet = wallet_of(api, tenant.customer_id)
        balance = 0 if outcome == "succeeded" else COVERED * COST
        assert (wallet["balance_cents"], wallet["held_cents"]) == (balance, 0)
        assert wallet["open_to_buy_cents"] == balance
        assert_reconciled(api, tenant.customer_id)
        assert ledger_counts(srv.database_url, tenant.customer_id) == {
            "top_up": 1,
            "hold": COVERED,
            settled: COVERED,
        }
