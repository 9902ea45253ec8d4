"""Priority at scale: one worker thread, a backlog of 1,000 slow low-priority jobs, then one
high-priority job. The high job must not wait for the backlog: it runs after at most the few
low jobs the worker had already taken (the one running and its prefetch), never after the
backlog that waits in the broker. Runs on whichever broker the suite runs with (memory or
Redis).

What is asserted, precisely: let ``waiting`` be the low jobs that had not started (status
``pending`` and no attempt row) just before the high job was submitted. Once the high job has
finished, at most 5 % of the 1,000 low jobs (50) of ``waiting`` may have started (status no
longer ``pending``, or an attempt row). Low jobs that ran while the backlog was being submitted
are not counted: they could not have been overtaken by a job that did not exist yet.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from helpers import (
    FINAL,
    create_job_type,
    create_tenant,
    db_query,
    running,
    submit,
    submit_many,
    wait_for,
)

N_LOW = 1_000
SECONDS_PER_JOB = 0.3
ALLOWED = N_LOW * 5 // 100  # 50


def as_datetime(value: Any) -> datetime:
    """A timestamp column as the driver gives it: a datetime (asyncpg) or text (sqlite3)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def started_ids(database_url: str, customer_id: str) -> set[str]:
    """The customer's jobs that have started: no longer pending, or with an attempt row."""
    customer = uuid.UUID(customer_id)
    moved = db_query(
        database_url,
        "SELECT id FROM jobs WHERE customer_id = {} AND status <> 'pending'",
        [customer],
    )
    attempted = db_query(
        database_url,
        "SELECT DISTINCT a.job_id FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
        "WHERE j.customer_id = {}",
        [customer],
    )
    return {str(r["id"]) for r in moved} | {str(r["job_id"]) for r in attempted}


def test_a_high_job_overtakes_a_backlog_of_a_thousand_low_jobs(make_server):
    srv = make_server(
        env={
            "INNOSYSTEM_MAX_CONCURRENT_JOBS": "1",
            # The starvation guard (which legitimately sends old low jobs ahead) stays out of
            # this test: only the priority queues are measured.
            "INNOSYSTEM_PRIORITY_AGING_SECONDS": "600",
        }
    )
    with running(srv), httpx.Client(base_url=srv.url, timeout=60) as api:
        srv.start()
        tenant = create_tenant(api, balance_cents=100_000)
        sleeper = create_job_type(api, "test-sleep", cost=1)
        began = time.monotonic()
        low = submit_many(
            api,
            tenant.customer_id,
            [(sleeper["id"], {"seconds": SECONDS_PER_JOB})] * N_LOW,
            max_workers=16,
            priority="low",
        )
        submitted_in = time.monotonic() - began
        low_ids = {j["id"] for j in low}
        assert len(low_ids) == N_LOW and {j["priority"] for j in low} == {"low"}

        waiting = low_ids - started_ids(srv.database_url, tenant.customer_id)
        # Sanity: the backlog is real (only a few 0.3 s jobs can run while it is submitted).
        assert len(waiting) >= N_LOW // 2, (len(waiting), submitted_in)

        high = submit(api, tenant.customer_id, sleeper["id"], {"seconds": 0.0}, priority="high")
        assert high["priority"] == "high"
        # Behind the backlog it would need 5 minutes; ahead of it, well under a second.
        done = wait_for(
            lambda: (j := api.get(f"/jobs/{high['id']}").json())["status"] in FINAL and j,
            timeout=30,
            interval=0.05,
            what="the high job finishes ahead of the low backlog",
            servers=[srv],
        )
        high_done_in = time.monotonic() - began - submitted_in
        assert done["status"] == "succeeded", done

        overtaking = waiting & started_ids(srv.database_url, tenant.customer_id)
        # The same from the attempt rows, to the microsecond: low attempts of ``waiting`` that
        # started before the high job's attempt did.
        (high_attempt,) = api.get(f"/jobs/{high['id']}/attempts").json()["items"]
        high_started = as_datetime(high_attempt["started_at"].replace("Z", "+00:00"))
        rows = db_query(
            srv.database_url,
            "SELECT a.job_id, a.started_at FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE j.customer_id = {}",
            [uuid.UUID(tenant.customer_id)],
        )
        before_high = {
            str(r["job_id"])
            for r in rows
            if str(r["job_id"]) in waiting and as_datetime(r["started_at"]) < high_started
        }
        print(
            f"submitted {N_LOW} low jobs in {submitted_in:.1f}s, {N_LOW - len(waiting)} ran "
            f"meanwhile; high done {high_done_in:.1f}s after; {len(overtaking)} of the "
            f"{len(waiting)} waiting low jobs started before it finished "
            f"({len(before_high)} before it started)"
        )
        assert before_high <= overtaking
        assert len(overtaking) <= ALLOWED, (
            f"{len(overtaking)} of {len(waiting)} waiting low jobs started before the high job "
            f"finished (at most {ALLOWED} allowed)"
        )
