"""The job spine over real HTTP: wallet holds under concurrency, the retry policy, unknown
processors, cancelling pending jobs, once-only execution and the CPU process pool.

Everything runs against the shared ``server`` (its own database); each test makes its own tenant
so the wallets it checks are its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import (
    FINAL,
    ServerProcess,
    all_jobs,
    assert_reconciled,
    create_job_type,
    create_tenant,
    db_query,
    events_of,
    job_body,
    ledger_kinds_by_job,
    submit,
    submit_many,
    wait_for,
    wait_for_status,
    wallet_of,
)


# --- small helpers ------------------------------------------------------------------------------
def transitions(events: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(e["from_status"], e["to_status"]) for e in events]


def _job_sql(database_url: str, query: str, job_id: str) -> Any:
    """Run one statement about one job (``{}`` is its id placeholder); returns the first value."""
    rows = db_query(database_url, query, [uuid.UUID(job_id)])
    return next(iter(rows[0].values())) if rows else None


def _set_run_at_now(database_url: str, job_id: str) -> None:
    """Make a scheduled job due, as the clock reaching run_at would (NULL run_at means due)."""
    _job_sql(database_url, "UPDATE jobs SET run_at = NULL WHERE id = {} RETURNING id", job_id)


@pytest.fixture
def client(server: ServerProcess):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# --- 3. holds under concurrency ----------------------------------------------------------------
def _race(client: httpx.Client, customer_id: str, job_type_id: str, n: int) -> list[httpx.Response]:
    body = job_body(customer_id, job_type_id, {"seconds": 0.05})
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: client.post("/jobs", json=body), range(n)))


@pytest.mark.parametrize(
    ("balance_units", "credit_units", "accepted"),
    [(10, 0, 10), (0, 5, 5)],
    ids=["balance", "credit-limit"],
)
def test_concurrent_submits_never_overdraw_the_wallet(
    client, balance_units, credit_units, accepted
):
    cost = 13
    tenant = create_tenant(
        client, balance_cents=balance_units * cost, credit_limit_cents=credit_units * cost
    )
    job_type = create_job_type(client, "test-sleep", cost=cost)

    responses = _race(client, tenant.customer_id, job_type["id"], 30)

    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == accepted, [r.text for r in responses if r.status_code != 201][:3]
    assert codes.count(402) == 30 - accepted, codes
    for refused in (r for r in responses if r.status_code == 402):
        error = refused.json()["error"]
        assert error["code"] == "insufficient_funds"
        assert error["message"]
        assert isinstance(error["details"], list)

    wallet = wallet_of(client, tenant.customer_id)
    # every accepted job is either still held or already captured; nothing else moved
    captured = balance_units * cost - wallet["balance_cents"]
    assert wallet["held_cents"] + captured == accepted * cost, wallet
    assert wallet["open_to_buy_cents"] == 0
    assert wallet["balance_cents"] >= -credit_units * cost

    accepted_ids = [r.json()["id"] for r in responses if r.status_code == 201]
    for job_id in accepted_ids:
        assert wait_for_status(client, job_id)["status"] == "succeeded"
    wallet = wallet_of(client, tenant.customer_id)
    assert wallet["held_cents"] == 0
    assert wallet["balance_cents"] == (balance_units - accepted) * cost
    if credit_units == 0:
        assert wallet["balance_cents"] >= 0
    assert wallet["open_to_buy_cents"] == 0
    assert_reconciled(client, tenant.customer_id)
    assert len(all_jobs(client, tenant.customer_id)) == accepted


# --- 4. retry policy ----------------------------------------------------------------------------
def test_transient_failures_are_retried_until_success(client):
    tenant = create_tenant(client, balance_cents=1_000)
    job_type = create_job_type(
        client, "test-fail-n-times", cost=30, max_attempts=3, backoff_base_ms=50
    )
    job = submit(client, tenant.customer_id, job_type["id"], {"failures": 2})

    done = wait_for_status(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 3
    assert done["result"] == {"succeeded_on_attempt": 3}
    assert done["error"] is None
    events = events_of(client, job["id"])
    assert transitions(events) == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "pending"),
        ("pending", "running"),
        ("running", "pending"),
        ("pending", "running"),
        ("running", "succeeded"),
    ]
    assert [e["attempt"] for e in events if e["to_status"] == "running"] == [1, 2, 3]
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (970, 0)
    assert_reconciled(client, tenant.customer_id)


def test_retries_stop_at_max_attempts_and_release_the_hold(client):
    tenant = create_tenant(client, balance_cents=1_000)
    job_type = create_job_type(
        client, "test-fail-n-times", cost=30, max_attempts=3, backoff_base_ms=50
    )
    job = submit(client, tenant.customer_id, job_type["id"], {"failures": 5})

    done = wait_for_status(client, job["id"])
    assert done["status"] == "failed", done
    assert done["attempts"] == 3
    assert done["error"]["type"] == "exception"
    assert "planned failure on attempt 3" in done["error"]["message"]
    assert done["result"] is None
    events = events_of(client, job["id"])
    assert [e["to_status"] for e in events].count("running") == 3
    assert transitions(events)[-1] == ("running", "failed")
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 0)
    assert_reconciled(client, tenant.customer_id)


def test_permanent_error_fails_at_once(client):
    tenant = create_tenant(client, balance_cents=1_000)
    job_type = create_job_type(
        client, "test-fail-n-times", cost=30, max_attempts=5, backoff_base_ms=50
    )
    job = submit(client, tenant.customer_id, job_type["id"], {"failures": 1, "permanent": True})

    done = wait_for_status(client, job["id"])
    assert done["status"] == "failed", done
    assert done["attempts"] == 1
    assert done["error"]["type"] == "permanent"
    assert "permanent failure on attempt 1" in done["error"]["message"]
    assert transitions(events_of(client, job["id"])) == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "failed"),
    ]
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 0)
    assert_reconciled(client, tenant.customer_id)


def test_job_type_for_unknown_processor_is_refused(client):
    response = client.post(
        "/job-types",
        json={
            "name": "ghost",
            "processing_logic_id": "no-such-processor-v9",
            "processor_type": "async",
            "standard_cost_cents": 5,
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(d["field"] == "processing_logic_id" for d in error["details"])
    for installed in ("test-echo", "test-sleep", "test-fail-n-times", "test-cpu-burn"):
        assert installed in error["message"]


def test_job_without_installed_processor_fails_and_releases_its_hold(make_server):
    # A server that allows job types for unserved logic ids (the default refuses them with 422).
    srv = make_server(env={"INNOSYSTEM_ALLOW_UNKNOWN_PROCESSORS": "true"}).start()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        job_type = create_job_type(client, "no-such-processor-v1", cost=30)
        tenant = create_tenant(client, balance_cents=1_000)
        job = submit(client, tenant.customer_id, job_type["id"], {"text": "hello"})
        assert job["cost_cents"] == 30

        done = wait_for_status(client, job["id"])
        assert done["status"] == "failed", done
        assert done["error"]["type"] == "no_processor"
        assert "no-such-processor-v1" in done["error"]["message"]
        assert done["attempts"] == 1
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 0)
        assert_reconciled(client, tenant.customer_id)


# --- 5. cancel ----------------------------------------------------------------------------------
def test_cancel_pending_job_releases_hold_and_second_cancel_conflicts(client):
    tenant = create_tenant(client, balance_cents=500)
    job_type = create_job_type(client, "test-echo", cost=40)
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job = submit(client, tenant.customer_id, job_type["id"], {"x": 1}, run_at=run_at)
    assert job["status"] == "pending"
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (500, 40)

    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["attempts"] == 0
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (500, 0)
    assert_reconciled(client, tenant.customer_id)

    again = client.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"
    assert transitions(events_of(client, job["id"])) == [
        (None, "pending"),
        ("pending", "cancelled"),
    ]
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (500, 0)
    assert client.post(f"/jobs/{uuid.uuid4()}/cancel").status_code == 404


def test_finished_job_cannot_be_cancelled(client):
    tenant = create_tenant(client, balance_cents=500)
    job_type = create_job_type(client, "test-noop", cost=40)
    job = submit(client, tenant.customer_id, job_type["id"], {})
    assert wait_for_status(client, job["id"])["status"] == "succeeded"
    response = client.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (460, 0)


# --- 6. once-only execution ---------------------------------------------------------------------
def test_each_job_runs_and_is_charged_exactly_once(client, server):
    n, cost = 60, 3
    tenant = create_tenant(client, balance_cents=10_000)
    job_type = create_job_type(client, "test-echo", cost=cost)
    jobs = submit_many(client, tenant.customer_id, [(job_type["id"], {"i": i}) for i in range(n)])
    ids = [j["id"] for j in jobs]
    assert len(set(ids)) == n

    done = [wait_for_status(client, job_id) for job_id in ids]
    for i, job in enumerate(done):
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
        assert job["result"] == {"echo": {"i": i}}
        assert transitions(events_of(client, job["id"])) == [
            (None, "pending"),
            ("pending", "running"),
            ("running", "succeeded"),
        ]
    kinds = ledger_kinds_by_job(server.database_url, tenant.customer_id)
    assert kinds == {job_id: ["capture", "hold"] for job_id in ids}
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (10_000 - n * cost, 0)
    assert_reconciled(client, tenant.customer_id)
    # keyset pagination: small pages give every job once
    paged = all_jobs(client, tenant.customer_id, limit=7)
    assert sorted(j["id"] for j in paged) == sorted(ids)


# --- 7. CPU processors ----------------------------------------------------------------------------
def test_cpu_processor_runs_in_the_process_pool(client, server):
    tenant = create_tenant(client, balance_cents=100)
    job_type = create_job_type(client, "test-cpu-burn", cost=10)
    job = submit(client, tenant.customer_id, job_type["id"], {"n": 1000})

    done = wait_for_status(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["sum_of_squares"] == sum(i * i for i in range(1000))
    assert server.proc is not None
    assert isinstance(done["result"]["pid"], int)
    assert done["result"]["pid"] != server.proc.pid
    health = client.get("/health")
    assert health.status_code == 200
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (90, 0)


def test_status_filter_lists_only_that_status(client):
    tenant = create_tenant(client, balance_cents=100)
    job_type = create_job_type(client, "test-noop", cost=1)
    job = submit(client, tenant.customer_id, job_type["id"], {})
    wait_for(lambda: client.get(f"/jobs/{job['id']}").json()["status"] in FINAL)
    listed = client.get(
        "/jobs", params={"customer_id": tenant.customer_id, "status": "succeeded"}
    ).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 422


# --- the ledger always sums to the wallet ---------------------------------------------------------
def test_reconciliation_matches_while_money_moves(client):
    """Reconciliation read while jobs capture and release must never see half a movement."""
    tenant = create_tenant(client, balance_cents=10_000)
    ok = create_job_type(client, "test-noop", cost=3)
    bad = create_job_type(client, "test-fail-n-times", cost=5, max_attempts=1)
    specs = [(ok["id"], {}) if i % 3 else (bad["id"], {"failures": 1}) for i in range(90)]
    stop = threading.Event()
    readings: list[dict[str, Any]] = []

    def poll() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
            while not stop.is_set():
                recon = own.get(f"/customers/{tenant.customer_id}/wallet/reconciliation")
                readings.append(recon.json())

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        jobs = submit_many(client, tenant.customer_id, specs, max_workers=6)
        for job in jobs:
            wait_for_status(client, job["id"])
    finally:
        stop.set()
        poller.join()

    assert len(readings) > 10
    bad_readings = [r for r in readings if not r["matches"]]
    assert not bad_readings, f"{len(bad_readings)} of {len(readings)}: {bad_readings[:3]}"
    wallet = wallet_of(client, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (10_000 - 60 * 3, 0)


def test_far_future_job_waits_in_the_database_and_runs_when_due(make_server):
    """A run_at beyond the broker-delay horizon is not sent at submit; the sweeper sends it once
    it is due (here: pulled forward by editing run_at in the database, as time passing would)."""
    srv = make_server().start()
    with httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=1_000)
        job_type = create_job_type(api, "test-echo", cost=3)
        far = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
        job = api.post(
            "/jobs",
            json={
                "customer_id": tenant.customer_id,
                "job_type_id": job_type["id"],
                "input_data": {"x": 1},
                "run_at": far,
            },
        ).json()
        assert job["status"] == "pending"
        sent = "SELECT enqueued_at FROM jobs WHERE id = {}"
        assert _job_sql(srv.database_url, sent, job["id"]) is None  # no broker message
        time.sleep(1)  # several sweeper ticks: nothing may run or be sent early
        assert _job_sql(srv.database_url, sent, job["id"]) is None
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "pending"
        _set_run_at_now(srv.database_url, job["id"])
        done = wait_for_status(api, job["id"], timeout=20)
        assert done["status"] == "succeeded"
        assert done["result"] == {"echo": {"x": 1}}


@pytest.mark.parametrize("how", ["die", "odd-exception"])
def test_cpu_pool_survives_a_dead_process_or_an_unpicklable_error(client, how):
    tenant = create_tenant(client, balance_cents=1_000)
    job_type = create_job_type(
        client, "test-cpu-fail-first", cost=5, max_attempts=3, backoff_base_ms=10, backoff_max_ms=10
    )
    job = submit(client, tenant.customer_id, job_type["id"], {"how": how})
    done = wait_for_status(client, job["id"], timeout=60)
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["attempt"] == 2
    first_failure = [e for e in events_of(client, job["id"]) if e["to_status"] == "pending"][1]
    expected = "CPU worker process died" if how == "die" else "odd failure (7)"
    assert expected in first_failure["message"]
    # The pool still serves later jobs.
    again = submit(client, tenant.customer_id, job_type["id"], {"how": "odd-exception"})
    assert wait_for_status(client, again["id"], timeout=60)["status"] == "succeeded"


def test_a_failed_jobs_error_shows_no_traceback_or_server_paths(client):
    tenant = create_tenant(client, balance_cents=1_000)
    for logic_id, body in (
        ("test-fail-n-times", {"failures": 1, "permanent": True}),
        ("test-cpu-fail-first", {"how": "odd-exception"}),
    ):
        job_type = create_job_type(client, logic_id, cost=1, max_attempts=1)
        job = submit(client, tenant.customer_id, job_type["id"], body)
        done = wait_for_status(client, job["id"], timeout=60)
        assert done["status"] == "failed"
        assert set(done["error"]) == {"type", "message", "attempt"}
        assert "Traceback" not in done["error"]["message"]
        assert "/innosystem/" not in done["error"]["message"]
