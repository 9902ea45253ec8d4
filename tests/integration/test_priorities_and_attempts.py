"""Priority queues (a high job overtakes a low backlog; the starvation guard moves low work
under a steady high load) and the attempt history of a job, over real HTTP."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from helpers import (
    create_job_type,
    create_tenant,
    running,
    submit,
    submit_many,
    wait_all_final,
    wait_for_status,
)


def finished(job: dict) -> datetime:
    return datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def one_thread(make_server):
    """One worker thread, so the order jobs run in is the order the workers pick them."""
    srv = make_server(
        env={"INNOSYSTEM_MAX_CONCURRENT_JOBS": "1", "INNOSYSTEM_PRIORITY_AGING_SECONDS": "1"}
    ).start()
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as client:
        yield srv, client


def test_a_high_job_overtakes_a_low_backlog(one_thread):
    srv, api = one_thread
    tenant = create_tenant(api, balance_cents=100_000)
    sleeper = create_job_type(api, "test-sleep", cost=1)
    echo = create_job_type(api, "test-echo", cost=1)
    blocker = submit(api, tenant.customer_id, sleeper["id"], {"seconds": 1.0}, priority="low")
    low = submit_many(
        api, tenant.customer_id, [(echo["id"], {"i": i}) for i in range(30)], priority="low"
    )
    high = submit(api, tenant.customer_id, echo["id"], {"urgent": True}, priority="high")

    jobs = wait_all_final(api, tenant.customer_id, servers=[srv])
    assert {j["status"] for j in jobs} == {"succeeded"}
    by_id = {j["id"]: j for j in jobs}
    high_done = finished(by_id[high["id"]])
    later_low = [j for j in low if finished(by_id[j["id"]]) > high_done]
    # The worker may already hold a couple of low messages (its prefetch) when the high one
    # arrives; every other low job of the backlog runs after it.
    assert len(later_low) >= 25, f"only {len(later_low)} of 30 low jobs ran after the high one"
    assert finished(by_id[blocker["id"]]) <= high_done


def test_low_work_still_moves_under_a_steady_high_load(one_thread):
    srv, api = one_thread
    tenant = create_tenant(api, balance_cents=100_000)
    sleeper = create_job_type(api, "test-sleep", cost=1)
    echo = create_job_type(api, "test-echo", cost=1)
    high = submit_many(
        api,
        tenant.customer_id,
        [(sleeper["id"], {"seconds": 0.1}) for _ in range(50)],
        priority="high",
    )
    low = submit(api, tenant.customer_id, echo["id"], {"patient": True}, priority="low")

    jobs = wait_all_final(api, tenant.customer_id, servers=[srv], timeout=90)
    by_id = {j["id"]: j for j in jobs}
    low_done = finished(by_id[low["id"]])
    after = [j for j in high if finished(by_id[j["id"]]) > low_done]
    # Five seconds of high work; aged after 1 s, the low job is sent one queue higher per
    # sweep step and runs long before the high backlog is through.
    assert len(after) >= 10, f"the low job ran after {50 - len(after)} of 50 high jobs"


def test_every_attempt_is_recorded(api):
    tenant = create_tenant(api, balance_cents=10_000)
    flaky = create_job_type(
        api, "test-fail-n-times", cost=7, max_attempts=3, backoff_base_ms=10, backoff_max_ms=20
    )
    job = submit(api, tenant.customer_id, flaky["id"], {"failures": 2})
    done = wait_for_status(api, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 3

    response = api.get(f"/jobs/{job['id']}/attempts")
    assert response.status_code == 200, response.text
    attempts = response.json()["items"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "succeeded"]
    for a in attempts:
        assert a["runner_id"] and a["started_at"] <= a["finished_at"]
    for a in attempts[:2]:
        assert a["error_type"] == "exception" and a["error_message"]
        assert "Traceback" in a["traceback"] and len(a["traceback"]) <= 4000
    assert attempts[2]["error_type"] is None and attempts[2]["traceback"] is None
    # The job's own error keeps no traceback.
    assert "traceback" not in (done["error"] or {})


def test_a_final_failure_and_a_timeout_are_recorded(api):
    tenant = create_tenant(api, balance_cents=10_000)
    failing = create_job_type(api, "test-fail-n-times", cost=7, max_attempts=1)
    slow = create_job_type(
        api, "test-sleep", cost=7, max_attempts=2, timeout_seconds=1, backoff_base_ms=0
    )
    failed = submit(api, tenant.customer_id, failing["id"], {"failures": 5})
    timed_out = submit(api, tenant.customer_id, slow["id"], {"seconds": 30})
    assert wait_for_status(api, failed["id"])["status"] == "failed"
    done = wait_for_status(api, timed_out["id"], timeout=30)
    assert done["status"] == "failed" and done["error"]["type"] == "timeout"

    (only,) = api.get(f"/jobs/{failed['id']}/attempts").json()["items"]
    assert only["outcome"] == "failed" and only["error_type"] == "exception"
    attempts = api.get(f"/jobs/{timed_out['id']}/attempts").json()["items"]
    assert [a["outcome"] for a in attempts] == ["timeout", "timeout"]


def test_attempts_of_unknown_job_is_404(api):
    response = api.get("/jobs/00000000-0000-4000-8000-00000000dead/attempts")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_pending_job_has_no_attempts(api):
    tenant = create_tenant(api, balance_cents=1_000)
    echo = create_job_type(api, "test-echo", cost=1)
    job = submit(api, tenant.customer_id, echo["id"], {}, run_at="2099-01-01T00:00:00Z")
    assert api.get(f"/jobs/{job['id']}/attempts").json() == {"items": []}
