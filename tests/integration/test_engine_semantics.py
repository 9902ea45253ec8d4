"""Sync, Batch and cancellation semantics over real HTTP: a Sync type answers in the request,
a Batch type shows its progress while it runs and applies its failed-items policy, and a running
job can be cancelled (cooperatively, or by force after the grace period)."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from helpers import (
    create_job_type,
    create_tenant,
    ledger_kinds_by_job,
    running,
    submit,
    wait_for,
    wait_for_status,
    wallet_of,
)


@pytest.fixture(scope="module")
def srv(make_server):
    server = make_server(env={"INNOSYSTEM_CANCEL_GRACE_SECONDS": "1"}).start()
    with running(server), httpx.Client(base_url=server.url, timeout=60) as client:
        yield server, client


def sync_type(api, **extra):
    return create_job_type(api, "test-sync-sleep", cost=5, processor_type="sync", **extra)


def post_job(api, customer_id, job_type_id, input_data, **headers):
    return api.post(
        "/jobs",
        json={"customer_id": customer_id, "job_type_id": job_type_id, "input_data": input_data},
        headers=headers,
    )


# --- Sync -----------------------------------------------------------------------------------
def test_a_sync_job_answers_200_with_its_result(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = sync_type(api, sync_timeout_ms=10_000)
    response = post_job(api, tenant.customer_id, job_type["id"], {"seconds": 0.2})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["result"] == {"slept": 0.2}
    assert wallet_of(api, tenant.customer_id)["held_cents"] == 0


def test_a_sync_job_past_its_timeout_answers_202_and_carries_on(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = sync_type(api, sync_timeout_ms=300)
    started = time.monotonic()
    response = post_job(api, tenant.customer_id, job_type["id"], {"seconds": 2})
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 1.8
    assert response.json()["status"] in ("pending", "running")
    assert wait_for_status(api, response.json()["id"])["status"] == "succeeded"


def test_a_keyed_sync_job_replays_its_finished_answer(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = sync_type(api, sync_timeout_ms=10_000)
    first = post_job(
        api, tenant.customer_id, job_type["id"], {"seconds": 0.1}, **{"Idempotency-Key": "sync-1"}
    )
    again = post_job(
        api, tenant.customer_id, job_type["id"], {"seconds": 0.1}, **{"Idempotency-Key": "sync-1"}
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_async_and_batch_types_answer_201_at_once(srv):
    _, api = srv
    tenant = create_tenant(api)
    slow = create_job_type(api, "test-sleep", cost=1)
    response = post_job(api, tenant.customer_id, slow["id"], {"seconds": 1})
    assert response.status_code == 201 and response.json()["status"] == "pending"


# --- Batch ----------------------------------------------------------------------------------
def batch_type(api, **extra):
    return create_job_type(api, "test-batch", cost=9, processor_type="batch", **extra)


def test_batch_progress_is_visible_while_it_runs(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = batch_type(api)
    items = [{"ok": i % 5 != 4, "seconds": 0.25} for i in range(10)]
    job = submit(api, tenant.customer_id, job_type["id"], {"items": items})

    def midway():
        current = api.get(f"/jobs/{job['id']}").json()
        progress = current["progress"] or {}
        return (
            current
            if current["status"] == "running" and 0 < progress.get("succeeded", 0) < 8
            else None
        )

    seen = wait_for(midway, timeout=20, interval=0.05, what="progress while running")
    assert seen["progress"]["total"] == 10

    done = wait_for_status(api, job["id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == {"total": 10, "succeeded": 8, "failed": 2}
    errors = [item for item in done["result"]["items"] if "error" in item]
    assert [e["index"] for e in errors] == [4, 9]
    assert ledger_kinds_by_job(srv[0].database_url, tenant.customer_id)[job["id"]] == [
        "capture",
        "hold",
    ]


def test_batch_with_more_failed_items_than_allowed_fails_and_keeps_its_results(srv):
    server, api = srv
    tenant = create_tenant(api)
    job_type = batch_type(api, batch_max_failed_items=1)
    items = [{"ok": False}, {"ok": True}, {"ok": False}]
    job = submit(api, tenant.customer_id, job_type["id"], {"items": items})
    done = wait_for_status(api, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "batch_items_failed"
    assert len(done["result"]["items"]) == 3  # per-item results and errors are kept
    assert done["progress"] == {"total": 3, "succeeded": 1, "failed": 2}
    assert ledger_kinds_by_job(server.database_url, tenant.customer_id)[job["id"]] == [
        "hold",
        "release",
    ]  # sorted
    within = batch_type(api, batch_max_failed_items=2)
    ok = wait_for_status(api, submit(api, tenant.customer_id, within["id"], {"items": items})["id"])
    assert ok["status"] == "succeeded"


def test_batch_policy_can_be_changed_and_cleared(srv):
    _, api = srv
    job_type = batch_type(api, batch_max_failed_items=0)
    changed = api.patch(f"/job-types/{job_type['id']}", json={"batch_max_failed_items": None})
    assert changed.status_code == 200 and changed.json()["batch_max_failed_items"] is None
    bad = api.patch(f"/job-types/{job_type['id']}", json={"batch_max_failed_items": -1})
    assert bad.status_code == 422


# --- cancelling a running job ---------------------------------------------------------------
def cancel_running(api, logic_id):
    tenant = create_tenant(api)
    job_type = create_job_type(api, logic_id, cost=11)
    job = submit(api, tenant.customer_id, job_type["id"], {"seconds": 60})
    wait_for_status(api, job["id"], ("running",))
    started = time.monotonic()
    response = api.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested_at"] is not None
    done = wait_for_status(api, job["id"], timeout=20)
    return tenant, job, done, time.monotonic() - started


def test_a_cooperative_running_job_stops_at_once(srv):
    server, api = srv
    tenant, job, done, took = cancel_running(api, "test-sleep")
    assert done["status"] == "cancelled" and took < 1.0, took
    assert ledger_kinds_by_job(server.database_url, tenant.customer_id)[job["id"]] == [
        "hold",
        "release",
    ]  # sorted
    assert wallet_of(api, tenant.customer_id)["held_cents"] == 0
    (attempt,) = api.get(f"/jobs/{job['id']}/attempts").json()["items"]
    assert attempt["outcome"] == "cancelled"
    again = api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409


def test_a_stubborn_running_job_is_stopped_after_the_grace_period(srv):
    _, api = srv
    tenant, _job, done, took = cancel_running(api, "test-stubborn")
    assert done["status"] == "cancelled"
    assert 0.9 <= took < 5, took  # the grace period is 1 s
    assert wallet_of(api, tenant.customer_id)["held_cents"] == 0


# --- CPU work is really stopped ---------------------------------------------------------------
def spinning_pid(api, job_id):
    """The pool process running a test-cpu-spin job (it reports its pid as progress)."""

    def pid():
        job = api.get(f"/jobs/{job_id}").json()
        return (job["progress"] or {}).get("pid")

    return wait_for(pid, timeout=20, interval=0.05, what="the spinning process's pid")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is dead once its state says so.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_a_cpu_attempt_past_its_timeout_is_killed(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = create_job_type(api, "test-cpu-spin", cost=3, timeout_seconds=2, max_attempts=1)
    job = submit(api, tenant.customer_id, job_type["id"], {"seconds": 120})
    pid = spinning_pid(api, job["id"])
    done = wait_for_status(api, job["id"], timeout=30)
    assert done["status"] == "failed" and done["error"]["type"] == "timeout"
    assert wait_for(lambda: process_gone(pid), timeout=10, what=f"pool process {pid} gone")
    assert wallet_of(api, tenant.customer_id)["held_cents"] == 0


def test_a_cancelled_cpu_attempt_is_killed_after_the_grace_period(srv):
    _, api = srv
    tenant = create_tenant(api)
    job_type = create_job_type(api, "test-cpu-spin", cost=3)
    job = submit(api, tenant.customer_id, job_type["id"], {"seconds": 120})
    pid = spinning_pid(api, job["id"])
    assert api.post(f"/jobs/{job['id']}/cancel").status_code == 202
    done = wait_for_status(api, job["id"], timeout=30)
    assert done["status"] == "cancelled"
    assert wait_for(lambda: process_gone(pid), timeout=10, what=f"pool process {pid} gone")
    # The pool replaced it: CPU work still runs.
    burn = create_job_type(api, "test-cpu-burn", cost=1)
    after = submit(api, tenant.customer_id, burn["id"], {"n": 1000})
    assert wait_for_status(api, after["id"])["status"] == "succeeded"
