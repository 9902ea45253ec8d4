"""Crash safety: SIGKILL a server in the middle of a batch, start another on the same database, and
every job still runs to the end, exactly once charged. Also the poison pill (a job that kills its
runner every time) and a graceful SIGTERM stop.

Each test owns its servers and database (``make_server``) and stops them itself, so a killed
process never leaks into another test.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from helpers import (
    FINAL,
    all_jobs,
    assert_reconciled,
    create_job_type,
    create_tenant,
    events_of,
    ledger_kinds_by_job,
    running,
    submit,
    submit_many,
    wait_all_final,
    wait_for,
    wallet_of,
)

pytestmark = pytest.mark.crash


# --- small helpers ------------------------------------------------------------------------------
def count_status(client: httpx.Client, customer_id: str, status: str) -> int:
    return len(all_jobs(client, customer_id, status=status))


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["created_at"])


def show(events: list[dict[str, Any]]) -> str:
    """Events one per line, for assertion messages."""
    return "\n".join(
        f"  #{e['id']} {e['created_at']} {e['from_status']}->{e['to_status']} "
        f"attempt={e['attempt']} runner={e['runner_id']} {e['message']!r}"
        for e in events
    )


def assert_history_is_consistent(events: list[dict[str, Any]], job: dict[str, Any]) -> None:
    """A job's events form one chain: submitted, then attempts, each run preceded by pending."""
    assert events, job
    why = f"job {job['id']} attempts={job['attempts']} status={job['status']}:\n{show(events)}"
    assert (events[0]["from_status"], events[0]["to_status"]) == (None, "pending"), why
    for before, after in pairwise(events):
        assert after["from_status"] == before["to_status"], why
    runs = [e for e in events if e["to_status"] == "running"]
    assert [e["attempt"] for e in runs] == list(range(1, job["attempts"] + 1)), why
    assert events[-1]["to_status"] == job["status"], why


# --- 1. SIGKILL in the middle of a batch -----------------------------------------------------
N_JOBS = 200
COST = 7
INITIAL = 5_000


@pytest.mark.parametrize("same_runner", [True, False], ids=["same-runner", "new-runner"])
def test_sigkill_mid_batch_loses_nothing_and_charges_once(make_server, same_runner):
    """Same runner id: the restart sweep re-queues the dead life's jobs at once. New runner id:
    they come back only when their lease (5 s in tests) expires."""
    first = make_server(env={"INNOSYSTEM_MAX_CONCURRENT_JOBS": "12"})
    with running(first), httpx.Client(base_url=first.url, timeout=30) as client:
        first.start()
        tenant = create_tenant(client, balance_cents=INITIAL)
        job_type = create_job_type(
            client, "test-sleep", cost=COST, max_attempts=5, backoff_base_ms=50
        )
        rng = random.Random(1234)
        inputs = [{"seconds": round(rng.uniform(0.3, 0.5), 2)} for _ in range(N_JOBS)]
        submitted = submit_many(
            client, tenant.customer_id, [(job_type["id"], data) for data in inputs]
        )
        ids = {j["id"] for j in submitted}
        assert len(ids) == N_JOBS

        wait_for(
            lambda: count_status(client, tenant.customer_id, "succeeded") >= 15,
            30,
            interval=0.2,
            what="first jobs succeed",
            servers=[first],
        )
        before = {j["id"]: j["status"] for j in all_jobs(client, tenant.customer_id)}
        first.kill()
        killed_at = datetime.now(UTC)
        assert first.proc is not None and first.proc.returncode is not None
        done_before = {i for i, s in before.items() if s == "succeeded"}
        open_before = {i for i, s in before.items() if s in ("pending", "running")}
        assert done_before, before
        assert open_before, "the batch finished before the kill; nothing was tested"
        running_before = {i for i, s in before.items() if s == "running"}

        second = make_server(
            first.database_url,
            runner_id=first.runner_id if same_runner else None,
            env={"INNOSYSTEM_MAX_CONCURRENT_JOBS": "12"},
        )
        with running(second):
            second.start()
            client.base_url = httpx.URL(second.url)

            wait_all_final(client, tenant.customer_id, [second], timeout=90)

            jobs = all_jobs(client, tenant.customer_id, limit=200)
            assert len(jobs) == N_JOBS
            assert {j["id"] for j in jobs} == ids
            paged = all_jobs(client, tenant.customer_id, limit=37)
            assert sorted(j["id"] for j in paged) == sorted(ids)
            assert {j["status"] for j in jobs} == {"succeeded"}, {
                j["id"]: (j["status"], j["error"]) for j in jobs if j["status"] != "succeeded"
            }
            for job in jobs:
                assert job["result"] == {"slept": job["input_data"]["seconds"]}

            wallet = wallet_of(client, tenant.customer_id)
            assert wallet["balance_cents"] == INITIAL - N_JOBS * COST
            assert wallet["held_cents"] == 0
            assert_reconciled(client, tenant.customer_id)
            assert ledger_kinds_by_job(first.database_url, tenant.customer_id) == {
                job_id: ["capture", "hold"] for job_id in ids
            }

            requeued: set[str] = set()
            finished_first: set[str] = set()
            expected_reason = (
                "runner restarted" if same_runner else f"lease of runner {first.runner_id} expired"
            )
            for job in jobs:
                events = events_of(client, job["id"])
                assert_history_is_consistent(events, job)
                assert events[-1]["to_status"] == "succeeded"
                first_life = [e for e in events if at(e) < killed_at]
                later = events[len(first_life) :]
                if first_life[-1]["to_status"] == "succeeded":
                    finished_first.add(job["id"])
                if job["id"] in done_before:
                    assert first_life[-1]["to_status"] == "succeeded", events
                if first_life[-1]["to_status"] == "running":
                    # it was running when the server died: re-queued, then run again
                    assert (later[0]["from_status"], later[0]["to_status"]) == (
                        "running",
                        "pending",
                    ), events
                    assert later[0]["runner_id"] == first.runner_id
                    assert expected_reason in later[0]["message"], later[0]
                    assert job["attempts"] == 2
                    requeued.add(job["id"])
                else:
                    assert job["attempts"] == 1, events
                    assert "re-queued" not in " ".join(e["message"] for e in events)
                if first_life[-1]["to_status"] != "succeeded":
                    assert job["runner_id"] == second.runner_id
            assert requeued, "no job was running at the kill"
            # what the list showed running just before the kill finished then or was re-queued
            assert running_before <= requeued | finished_first, running_before - requeued


# --- 2. poison pill ----------------------------------------------------------------------------
def test_poison_pill_fails_after_max_attempts_and_server_survives(make_server):
    srv = make_server()
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as client:
        srv.start()
        tenant = create_tenant(client, balance_cents=300)
        job_type = create_job_type(client, "test-crash", cost=50, max_attempts=2)
        # run_at a moment ahead: the 201 must reach us before the job kills the server
        run_at = datetime.now(UTC) + timedelta(seconds=1.5)
        job = submit(client, tenant.customer_id, job_type["id"], {}, run_at=run_at.isoformat())
        pids = []
        # Each delivery kills the server. A restarted server re-queues the job in its start-up
        # sweep and may die again before it ever answers HTTP, so restarts do not wait.
        for _death in range(2):
            assert srv.proc is not None
            pids.append(srv.proc.pid)
            wait_for(
                lambda: srv.proc.poll() is not None,
                30,
                interval=0.2,
                what="the crash job kills it",
                servers=[srv],
            )
            assert srv.proc.returncode == -9, srv.proc.returncode
            srv.start(wait=False)
        srv.wait_healthy()

        done = wait_for(
            lambda: (j := client.get(f"/jobs/{job['id']}").json())["status"] in FINAL and j,
            30,
            interval=0.2,
            what="the poison pill is quarantined",
            servers=[srv],
        )
        assert done["status"] == "failed", done
        assert done["attempts"] == 2
        assert done["error"]["type"] == "lost"
        assert "attempt 2 of 2 was the last" in done["error"]["message"]
        assert done["finished_at"] is not None
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (300, 0)
        assert_reconciled(client, tenant.customer_id)
        events = events_of(client, job["id"])
        assert_history_is_consistent(events, done)
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, "pending"),
            ("pending", "running"),
            ("running", "pending"),
            ("pending", "running"),
            ("running", "failed"),
        ]
        assert "re-queued" in events[2]["message"]

        # the third life stays up and keeps working
        time.sleep(1.0)
        assert srv.proc is not None and srv.proc.poll() is None, srv.logs()
        assert srv.proc.pid not in pids
        assert client.get("/health").status_code == 200
        echo_type = create_job_type(client, "test-echo", cost=1)
        after = submit(client, tenant.customer_id, echo_type["id"], {"still": "alive"})
        done_after = wait_for(
            lambda: (j := client.get(f"/jobs/{after['id']}").json())["status"] in FINAL and j,
            30,
            interval=0.2,
            what="a job after the poison pill",
            servers=[srv],
        )
        assert done_after["status"] == "succeeded"
        assert srv.proc.poll() is None


# --- 9. graceful stop ----------------------------------------------------------------------------
def test_sigterm_finishes_running_jobs_and_restart_completes_the_rest(make_server):
    threads = 4
    srv = make_server(env={"INNOSYSTEM_MAX_CONCURRENT_JOBS": str(threads)})
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as client:
        srv.start()
        tenant = create_tenant(client, balance_cents=1_000)
        job_type = create_job_type(client, "test-sleep", cost=10, backoff_base_ms=50)
        ids = [
            submit(client, tenant.customer_id, job_type["id"], {"seconds": 1.0})["id"]
            for _ in range(12)
        ]
        wait_for(
            lambda: count_status(client, tenant.customer_id, "running") >= 1,
            20,
            interval=0.2,
            what="jobs start",
            servers=[srv],
        )
        started = time.monotonic()
        code = srv.stop(timeout=20)
        elapsed = time.monotonic() - started
        assert code == 0, srv.logs()
        # shutdown timeout is 3 s in tests; the 1 s jobs in flight finish inside it
        assert elapsed < 3 + 2, elapsed

        srv.start()
        wait_all_final(client, tenant.customer_id, [srv], timeout=60)
        jobs = all_jobs(client, tenant.customer_id)
        assert sorted(j["id"] for j in jobs) == sorted(ids)
        assert {j["status"] for j in jobs} == {"succeeded"}
        # nothing was cut off: the jobs in flight at SIGTERM finished during the grace period
        assert {j["attempts"] for j in jobs} == {1}, [(j["id"], j["attempts"]) for j in jobs]
        for job in jobs:
            assert_history_is_consistent(events_of(client, job["id"]), job)
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000 - 12 * 10, 0)
        assert_reconciled(client, tenant.customer_id)
