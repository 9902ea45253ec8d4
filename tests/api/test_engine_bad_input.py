"""Bad input to the job engine's fields (docs/API.md "Jobs", "How jobs run", "Schedules"): each
is refused with 422 (409 for cancelling a finished job) in the one error envelope, naming the
field, and creates nothing: no job, no schedule, no hold, no ledger row.

The configured limits are shown on a server of their own with small values
(``INNOSYSTEM_MAX_DELAY_MS``, ``INNOSYSTEM_MAX_BATCH_ITEMS``); the default batch limit (10,000
items) on the shared server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from helpers import (
    Tenant,
    assert_envelope,
    create_job_type,
    create_tenant,
    later,
    running,
    submit,
    wait_for_status,
)

LIMITED_MAX_DELAY_MS = 60_000
LIMITED_MAX_BATCH_ITEMS = 5
DEFAULT_MAX_BATCH_ITEMS = 10_000


# --- helpers ------------------------------------------------------------------------------------
def snapshot(api: httpx.Client, tenant: Tenant) -> dict[str, Any]:
    """What a refused request must leave as it was: the tenant's jobs, schedules, wallet and
    ledger, and the newest job on the whole server."""
    cid = tenant.customer_id
    wallet = api.get(f"/customers/{cid}/wallet").json()
    recon = api.get(f"/customers/{cid}/wallet/reconciliation").json()
    return {
        "jobs": [j["id"] for j in api.get("/jobs", params={"customer_id": cid}).json()["items"]],
        "schedules": [
            s["id"] for s in api.get("/schedules", params={"customer_id": cid}).json()["items"]
        ],
        "newest_job": [j["id"] for j in api.get("/jobs", params={"limit": 1}).json()["items"]],
        "wallet": (wallet["balance_cents"], wallet["held_cents"]),
        "ledger": [
            t["id"] for t in api.get(f"/customers/{cid}/wallet/transactions").json()["items"]
        ],
        "recon": (recon["ledger_balance_cents"], recon["ledger_held_cents"], recon["matches"]),
    }


def refused(
    api: httpx.Client,
    tenant: Tenant,
    path: str,
    body: dict[str, Any],
    status: int = 422,
    fields: set[str] | None = None,
) -> dict[str, Any]:
    """POST ``body`` to ``path``: refused with ``status``, every detail naming one of
    ``fields`` (and at least one detail), nothing changed. Returns the error."""
    before = snapshot(api, tenant)
    response = api.post(path, json=body)
    code = {422: "validation_error", 409: "conflict"}[status]
    error = assert_envelope(response, status, code)
    if fields is not None:
        named = {d["field"] for d in error["details"]}
        assert named and named <= fields, (fields, error)
    assert snapshot(api, tenant) == before
    return error


def job(tenant: Tenant, job_type: dict[str, Any], input_data: Any, **extra: Any) -> dict:
    return {
        "customer_id": tenant.customer_id,
        "job_type_id": job_type["id"],
        "input_data": input_data,
        **extra,
    }


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def tenant(api: httpx.Client) -> Tenant:
    return create_tenant(api, balance_cents=10_000)


@pytest.fixture(scope="module")
def echo(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=10)


@pytest.fixture(scope="module", params=["test-batch", "test-batch-lax"])
def batch(request, api: httpx.Client) -> dict[str, Any]:
    """A Batch type whose processor validates ``items`` itself, and one whose processor has no
    input model (so only the engine's check can refuse)."""
    return create_job_type(api, request.param, cost=10, processor_type="batch")


@pytest.fixture(scope="module")
def limited(make_server) -> Iterator[tuple[httpx.Client, Tenant, dict, dict]]:
    """A server with small limits: (client, tenant, echo type, lax batch type)."""
    srv = make_server(
        env={
            "INNOSYSTEM_MAX_DELAY_MS": str(LIMITED_MAX_DELAY_MS),
            "INNOSYSTEM_MAX_BATCH_ITEMS": str(LIMITED_MAX_BATCH_ITEMS),
        }
    )
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as client:
        srv.start()
        tenant = create_tenant(client, balance_cents=10_000)
        echo_type = create_job_type(client, "test-echo", cost=10)
        lax = create_job_type(client, "test-batch-lax", cost=10, processor_type="batch")
        yield client, tenant, echo_type, lax


# --- priority -----------------------------------------------------------------------------------
@pytest.mark.parametrize("priority", ["urgent", "HIGH", "High", "", 1, 0, True, ["high"], {}])
def test_unknown_priority_is_422(api, tenant, echo, priority):
    refused(api, tenant, "/jobs", job(tenant, echo, {}, priority=priority), fields={"priority"})


# --- run_at -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "run_at",
    [
        "tomorrow",
        "",
        "2030-01-01",  # a date, no time
        "2030-01-01T00:00:00",  # no offset: ambiguous
        "20300101T000000Z",  # ISO 8601 basic format
        "2030-W01-1T00:00:00Z",  # ISO week date
        "2030-13-01T00:00:00Z",  # month 13
        "2030-02-30T00:00:00Z",  # no such day
        "2030-01-01T25:00:00Z",  # hour 25
        "2030-01-01T00:00:00+25:00",  # offset out of range
        "2030-01-01T00:00:00Z ",  # trailing garbage
        "01/02/2030 10:00",
        "1893456000",  # Unix time as text
        1893456000,  # Unix time as a number
        "2030-01-01T00:00Z",  # RFC 3339 requires seconds
        "2030-01-01T00:00:00+0100",  # RFC 3339 offsets have a colon
    ],
)
def test_run_at_not_rfc3339_is_422(api, tenant, echo, run_at):
    refused(api, tenant, "/jobs", job(tenant, echo, {}, run_at=run_at), fields={"run_at"})


# --- delay_ms -----------------------------------------------------------------------------------
def test_a_valid_delay_ms_is_accepted(api, tenant, echo):
    """The control for the refusals below: ``delay_ms`` is a known field (were it unknown,
    every value would be 422 for that reason alone)."""
    response = api.post("/jobs", json=job(tenant, echo, {}, delay_ms=60_000))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["run_at"] is not None
    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    run_at = datetime.fromisoformat(body["run_at"].replace("Z", "+00:00"))
    assert (run_at - created).total_seconds() == pytest.approx(60, abs=2), body
    assert api.post(f"/jobs/{body['id']}/cancel").status_code == 200


@pytest.mark.parametrize(
    "delay_ms", [-1, -1_000, 1.5, 1000.0, "1000", "soon", True, [1000], {"ms": 1}]
)
def test_delay_ms_negative_or_not_an_integer_is_422(api, tenant, echo, delay_ms):
    refused(api, tenant, "/jobs", job(tenant, echo, {}, delay_ms=delay_ms), fields={"delay_ms"})


def test_delay_ms_beyond_the_configured_maximum_is_422(limited):
    client, tenant, echo_type, _ = limited
    body = job(tenant, echo_type, {}, delay_ms=LIMITED_MAX_DELAY_MS + 1)
    error = refused(client, tenant, "/jobs", body, fields={"delay_ms"})
    assert str(LIMITED_MAX_DELAY_MS) in error["message"].replace(",", ""), error
    # the maximum itself is accepted, as a job due that far ahead
    response = client.post("/jobs", json={**body, "delay_ms": LIMITED_MAX_DELAY_MS})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending" and response.json()["run_at"] is not None


def test_delay_ms_beyond_the_default_maximum_is_422(api, tenant, echo):
    # no default maximum is anywhere near a million years
    body = job(tenant, echo, {}, delay_ms=10**16)
    refused(api, tenant, "/jobs", body, fields={"delay_ms"})


@pytest.mark.parametrize("delay_ms", [0, 1_000])
def test_delay_ms_together_with_run_at_is_422(api, tenant, echo, delay_ms):
    body = job(tenant, echo, {}, delay_ms=delay_ms, run_at=later())
    refused(api, tenant, "/jobs", body, fields={"delay_ms", "run_at"})


# --- batch items --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "input_data",
    [
        {},  # no items
        {"other": [1, 2]},
        {"items": None},
        {"items": "a,b,c"},  # not a list
        {"items": {"0": {}}},
        {"items": 3},
        {"items": []},  # empty
    ],
    ids=["absent", "absent-other-key", "null", "string", "object", "number", "empty"],
)
def test_batch_without_a_list_of_items_is_422(api, tenant, batch, input_data):
    refused(api, tenant, "/jobs", job(tenant, batch, input_data), fields={"input_data.items"})


def test_batch_over_the_default_item_limit_is_422(api, tenant, batch):
    items = [{} for _ in range(DEFAULT_MAX_BATCH_ITEMS + 1)]
    refused(api, tenant, "/jobs", job(tenant, batch, {"items": items}), fields={"input_data.items"})


def test_batch_at_the_default_item_limit_is_accepted(api, tenant):
    lax = create_job_type(api, "test-batch-lax", cost=10, processor_type="batch")
    items = [0] * DEFAULT_MAX_BATCH_ITEMS
    created = submit(api, tenant.customer_id, lax["id"], {"items": items})
    done = wait_for_status(api, created["id"])
    assert done["status"] == "succeeded" and done["result"] == {"count": DEFAULT_MAX_BATCH_ITEMS}


def test_batch_over_the_configured_item_limit_is_422(limited):
    client, tenant, _, lax = limited
    items = [{"n": i} for i in range(LIMITED_MAX_BATCH_ITEMS + 1)]
    error = refused(
        client, tenant, "/jobs", job(tenant, lax, {"items": items}), fields={"input_data.items"}
    )
    assert str(LIMITED_MAX_BATCH_ITEMS) in error["message"], error
    at_limit = job(tenant, lax, {"items": items[:LIMITED_MAX_BATCH_ITEMS]})
    response = client.post("/jobs", json=at_limit)
    assert response.status_code == 201, response.text


def test_the_item_limit_applies_to_batch_types_only(limited):
    client, tenant, echo_type, _ = limited
    items = list(range(LIMITED_MAX_BATCH_ITEMS + 1))
    response = client.post("/jobs", json=job(tenant, echo_type, {"items": items}))
    assert response.status_code == 201, response.text


# --- schedules ----------------------------------------------------------------------------------
def schedule(tenant: Tenant, job_type: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": tenant.customer_id,
        "job_type_id": job_type["id"],
        "input_data": {},
        "cron": "0 0 1 1 *",
        **extra,
    }


@pytest.mark.parametrize(
    "cron",
    [
        "@daily",  # macros are not part of the contract
        "0 0 * * * *",  # a sixth field
        "0 0 * *",  # four fields
        "",
        "   ",
        "every day",
        "61 * * * *",  # minute out of range
        "* 24 * * *",  # hour out of range
        "* * 0 * *",  # day of month 0
        "* * * 13 *",  # month 13
        "* * * * 8",  # day of week 8
        "0 0 30 2 *",  # never happens
        "*/0 * * * *",  # step 0
        "5-1 * * * *",  # reversed range
        0,
        None,
    ],
)
def test_invalid_cron_is_422(api, tenant, echo, cron):
    refused(api, tenant, "/schedules", schedule(tenant, echo, cron=cron), fields={"cron"})


@pytest.mark.parametrize(
    "timezone",
    [
        "Mars/Olympus_Mons",
        "europe/berlin",  # case matters
        "UTC+1",
        "+01:00",
        "",
        "Europe/Berlin ",
        "../../etc/passwd",
        1,
        None,
    ],
)
def test_invalid_timezone_is_422(api, tenant, echo, timezone):
    body = schedule(tenant, echo, timezone=timezone)
    refused(api, tenant, "/schedules", body, fields={"timezone"})


# --- cancelling a finished job --------------------------------------------------------------------
@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_cancelling_a_finished_job_is_409(api, tenant, outcome):
    if outcome == "cancelled":
        job_type = create_job_type(api, "test-echo", cost=10)
        created = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())
        assert api.post(f"/jobs/{created['id']}/cancel").status_code == 200
    else:
        job_type = create_job_type(api, "test-fail-n-times", cost=10, max_attempts=1)
        failures = 0 if outcome == "succeeded" else 1
        created = submit(api, tenant.customer_id, job_type["id"], {"failures": failures})
    finished = wait_for_status(api, created["id"])
    assert finished["status"] == outcome
    before = snapshot(api, tenant)
    response = api.post(f"/jobs/{created['id']}/cancel")
    assert_envelope(response, 409, "conflict")
    assert api.get(f"/jobs/{created['id']}").json() == finished
    assert snapshot(api, tenant) == before
