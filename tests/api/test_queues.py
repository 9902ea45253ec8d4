"""GET /queues (what waits to run, from the database) and GET /runners statuses and counters,
against real servers with a short poll interval: a runner is ``active`` within two poll
intervals of its heartbeat, ``stale`` until ``lease_seconds``, then ``gone`` (or at once when it
stops)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    IS_REDIS,
    ServerProcess,
    create_job_type,
    create_tenant,
    db_query,
    running,
    start_worker,
    submit,
    wait_all_final,
    wait_for,
    wait_for_status,
)

from innosystem.api.schemas import QueuesOut, RunnerOut
from innosystem.services import jobs as job_service

POLL_MS = 200
FAST = {
    "INNOSYSTEM_POLL_INTERVAL_MS": str(POLL_MS),
    "INNOSYSTEM_LEASE_SECONDS": "3",  # at least 3 poll intervals (checked at start)
}
UNKNOWN_LOGIC_ID = "test-not-installed-anywhere"


def queues(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/queues")
    assert response.status_code == 200, response.text
    body = response.json()
    QueuesOut.model_validate(body)
    assert list(body) == ["queues", "job_types", "unserved_logic_ids", "runners"]
    return body


def runners(client: httpx.Client, status: str | None = None) -> list[dict[str, Any]]:
    response = client.get("/runners", params={"status": status} if status else None)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    for item in items:
        RunnerOut.model_validate(item)
        assert set(item) == set(RunnerOut.model_fields)
    return items


def runner(client: httpx.Client, runner_id: str) -> dict[str, Any]:
    found = [r for r in runners(client) if r["id"] == runner_id]
    assert len(found) == 1, found
    return found[0]


def start_runner(srv: ServerProcess) -> None:
    """Start a serve (healthy) or worker (its log says it consumes)."""
    if srv.command == "serve":
        srv.start()
    else:
        start_worker(srv)


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def ahead(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


# --- GET /queues --------------------------------------------------------------------------------
def test_queues_count_pending_jobs_by_priority_and_job_type(make_server):
    # One worker thread, held by a long job: everything submitted after it stays pending.
    serve = make_server(
        env={
            **FAST,
            "INNOSYSTEM_MAX_CONCURRENT_JOBS": "1",
            "INNOSYSTEM_ALLOW_UNKNOWN_PROCESSORS": "1",
        }
    )
    with running(serve), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        tenant = create_tenant(client, balance_cents=10_000)
        sleep = create_job_type(client, "test-sleep", cost=1)
        echo = create_job_type(client, "test-echo", cost=1)
        unknown = create_job_type(client, UNKNOWN_LOGIC_ID, cost=1)

        empty = queues(client)
        assert [q["priority"] for q in empty["queues"]] == ["high", "normal", "low"]
        for q in empty["queues"]:
            assert (q["pending"], q["due"], q["scheduled"]) == (0, 0, 0), q
            assert q["oldest_pending_age_seconds"] is None
        # An enabled job type nobody serves is reported before any of its jobs waits.
        assert UNKNOWN_LOGIC_ID in empty["unserved_logic_ids"]
        assert "test-echo" not in empty["unserved_logic_ids"]

        blocker = submit(client, tenant.customer_id, sleep["id"], {"seconds": 120})
        wait_for_status(client, blocker["id"], ("running",))

        first_submit = time.monotonic()
        for priority in ("high", "normal", "low"):
            submit(client, tenant.customer_id, echo["id"], {}, priority=priority)
            submit(client, tenant.customer_id, echo["id"], {}, priority=priority, run_at=ago(600))
            submit(client, tenant.customer_id, echo["id"], {}, priority=priority, run_at=ahead(1))
        stuck = submit(client, tenant.customer_id, unknown["id"], {}, priority="normal")
        time.sleep(1.2)

        def settled() -> dict[str, Any] | None:
            body = queues(client)
            echo_row = next(t for t in body["job_types"] if t["job_type_id"] == echo["id"])
            return body if serve.runner_id in echo_row["served_by"] else None

        body = wait_for(settled, timeout=10, what="the server is an active runner of test-echo")
        waited = time.monotonic() - first_submit

        by_priority = {q["priority"]: q for q in body["queues"]}
        assert [q["priority"] for q in body["queues"]] == ["high", "normal", "low"]
        expected = {"high": (3, 2, 1), "normal": (4, 3, 1), "low": (3, 2, 1)}
        for priority, (pending, due, scheduled) in expected.items():
            q = by_priority[priority]
            assert (q["pending"], q["due"], q["scheduled"]) == (pending, due, scheduled), q
            # A due job waits from its creation here (a past run_at is stored as none): the
            # far schedules do not count.
            age = q["oldest_pending_age_seconds"]
            assert age is not None and 1.0 <= age <= waited + 2, (q, waited)

        rows = {t["job_type_id"]: t for t in body["job_types"]}
        assert set(rows) == {echo["id"], sleep["id"], unknown["id"]}, body["job_types"]
        assert body["job_types"][0]["job_type_id"] == echo["id"]  # most pending first
        echo_row = rows[echo["id"]]
        assert (echo_row["pending"], echo_row["running"]) == (9, 0)
        assert echo_row["processing_logic_id"] == "test-echo" and echo_row["name"] == echo["name"]
        assert echo_row["unserved"] is False and serve.runner_id in echo_row["served_by"]
        assert 1.0 <= echo_row["oldest_pending_age_seconds"] <= waited + 2

        sleep_row = rows[sleep["id"]]
        assert (sleep_row["pending"], sleep_row["running"]) == (0, 1)
        assert sleep_row["oldest_pending_age_seconds"] is None and sleep_row["unserved"] is False

        unknown_row = rows[unknown["id"]]
        assert (unknown_row["pending"], unknown_row["running"]) == (1, 0)
        assert unknown_row["unserved"] is True and unknown_row["served_by"] == []
        assert unknown_row["processing_logic_id"] == UNKNOWN_LOGIC_ID
        assert UNKNOWN_LOGIC_ID in body["unserved_logic_ids"]
        assert not {"test-echo", "test-sleep"} & set(body["unserved_logic_ids"])

        assert body["runners"]["active"] >= 1
        assert client.get(f"/jobs/{stuck['id']}").json()["status"] == "pending"

        # Cancelling the waiting jobs empties the queues; the running one stays counted.
        for job in client.get("/jobs", params={"status": "pending", "limit": 200}).json()["items"]:
            assert client.post(f"/jobs/{job['id']}/cancel").status_code == 200
        after = queues(client)
        assert all(q["pending"] == 0 for q in after["queues"]), after["queues"]
        assert [(t["job_type_id"], t["running"]) for t in after["job_types"]] == [(sleep["id"], 1)]


# --- GET /runners -------------------------------------------------------------------------------
def test_runner_statuses_active_stale_gone_and_the_status_filter(make_server):
    serve = make_server(env=FAST)
    # A stopped and a killed runner: `innosystem worker` needs a shared broker; with the
    # in-process one, a second `serve` on the same database is a runner just the same.
    command = "worker" if IS_REDIS else "serve"
    stopped = make_server(serve.database_url, command=command, env=FAST)
    killed = make_server(serve.database_url, command=command, env=FAST)
    with running(serve, stopped, killed), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        start_runner(stopped)
        start_runner(killed)

        def all_active() -> bool:
            ids = {r["id"] for r in runners(client, "active")}
            return {serve.runner_id, stopped.runner_id, killed.runner_id} <= ids

        wait_for(all_active, timeout=15, what="every runner is active")
        assert runner(client, stopped.runner_id)["kind"] == command

        # Heartbeats come every poll interval: several within two seconds.
        beats = set()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            beats.add(runner(client, serve.runner_id)["heartbeat_at"])
            time.sleep(POLL_MS / 4000)
        assert len(beats) >= 4, sorted(beats)

        stopped.stop()
        gone = runner(client, stopped.runner_id)
        assert gone["status"] == "gone" and gone["stopped_at"] is not None
        assert gone["in_flight"] == 0

        killed.kill()  # no goodbye: stale while its leases would hold, then gone
        wait_for(
            lambda: killed.runner_id in {r["id"] for r in runners(client, "stale")},
            timeout=5,
            interval=0.05,
            what="the killed runner is stale",
        )
        silent = wait_for(
            lambda: next((r for r in runners(client, "gone") if r["id"] == killed.runner_id), None),
            timeout=10,
            what="the killed runner is gone after lease_seconds",
        )
        assert silent["stopped_at"] is None
        heartbeat = datetime.fromisoformat(silent["heartbeat_at"].replace("Z", "+00:00"))
        assert datetime.now(UTC) - heartbeat >= timedelta(seconds=3)

        def partition() -> dict[str, set[str]] | None:
            everyone = {r["id"]: r["status"] for r in runners(client)}
            parts = {s: {r["id"] for r in runners(client, s)} for s in ("active", "stale", "gone")}
            again = {r["id"]: r["status"] for r in runners(client)}
            # read again until no status changed meanwhile (and no heartbeat ran late)
            steady = everyone == again and again[serve.runner_id] == "active"
            return parts if steady else None

        parts = wait_for(partition, timeout=10)
        assert parts["gone"] == {stopped.runner_id, killed.runner_id}
        assert serve.runner_id in parts["active"]
        everyone = {r["id"] for r in runners(client)}
        assert parts["active"] | parts["stale"] | parts["gone"] == everyone
        counts = queues(client)["runners"]
        assert counts["gone"] == 2 and counts["active"] + counts["stale"] == 1

        bad = client.get("/runners", params={"status": "live"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "status"
        assert client.get("/runners", params={"state": "gone"}).status_code == 422


@pytest.mark.skipif(
    "count_finished" not in Path(job_service.__file__).read_text(),
    reason="counters are wired by the lead (RunnerState.count_finished in services/jobs.py)",
)
def test_runner_counters_rise_as_attempts_finish(make_server):
    serve = make_server(env=FAST)
    with running(serve), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        before = runner(client, serve.runner_id)
        assert (before["processed_count"], before["failed_count"]) == (0, 0)
        tenant = create_tenant(client, balance_cents=1_000)
        echo = create_job_type(client, "test-echo", cost=1)
        flaky = create_job_type(client, "test-fail-n-times", cost=1, backoff_base_ms=10)
        for i in range(3):
            submit(client, tenant.customer_id, echo["id"], {"i": i})
        submit(client, tenant.customer_id, flaky["id"], {"failures": 1})  # fails once, then ok
        submit(client, tenant.customer_id, flaky["id"], {"failures": 1, "permanent": True})
        done = wait_all_final(client, tenant.customer_id, [serve])
        attempts = sum(j["attempts"] for j in done)
        succeeded = sum(j["status"] == "succeeded" for j in done)
        assert (attempts, succeeded) == (6, 4), done

        def flushed() -> dict[str, Any] | None:  # written by the next heartbeat
            mine = runner(client, serve.runner_id)
            return mine if mine["processed_count"] == attempts else None

        mine = wait_for(flushed, timeout=10, what="the counters reach the runners row")
        assert mine["failed_count"] == attempts - succeeded == 2

        serve.stop()
        row = db_query(
            serve.database_url,
            "SELECT processed_count, failed_count, stopped_at FROM runners WHERE id = {}",
            [serve.runner_id],
        )[0]
        assert (row["processed_count"], row["failed_count"]) == (6, 2)
        assert row["stopped_at"] is not None


def test_unknown_runner_status_filter_is_refused(api):
    response = api.get("/runners", params={"status": "lost"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert api.get("/runners", params={"status": ""}).status_code == 200  # empty: not given
    active = api.get("/runners", params={"status": "active"}).json()["items"]
    assert all(r["status"] == "active" for r in active)
