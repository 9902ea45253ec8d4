"""The retry policy as the attempt rows show it (docs/API.md, "How jobs run"): attempts are
numbered 1..n, each failed attempt but the last is ``retrying``, the next one starts after the
documented backoff (50-100 % of ``min(backoff_max_ms, backoff_base_ms * 2^(k-1))`` after attempt
k), a permanent error stops at once, the last allowed attempt fails the job and releases its
hold, and an attempt past ``timeout_seconds`` ends as ``timeout`` and is retried."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest
from helpers import (
    assert_reconciled,
    create_job_type,
    create_tenant,
    ledger_kinds_by_job,
    submit,
    wait_for_status,
    wallet_of,
)

#: Added to the upper bound of a backoff gap: the retry's broker message (or the sweeper, every
#: 250 ms in tests) and the claim take a moment after the retry falls due.
SLACK_S = 0.6
#: Taken off the lower bound: a failed attempt's ``finished_at`` is stamped a moment after the
#: retry time (failure + backoff) was chosen, so the measured gap may be short by that moment.
STAMP_S = 0.05


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def attempts_of(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/jobs/{job_id}/attempts")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def assert_settled(api: httpx.Client, database_url: str, customer_id: str, job: dict) -> None:
    """Hold + capture for a succeeded job, hold + release for a failed one; nothing held."""
    kinds = ledger_kinds_by_job(database_url, customer_id)
    expected = ["capture", "hold"] if job["status"] == "succeeded" else ["hold", "release"]
    assert kinds == {job["id"]: expected}, kinds
    assert wallet_of(api, customer_id)["held_cents"] == 0
    assert_reconciled(api, customer_id)


def test_backoff_between_attempts_follows_the_policy(api, server):
    base_ms, max_ms = 400, 1000
    tenant = create_tenant(api, balance_cents=1_000)
    flaky = create_job_type(
        api,
        "test-fail-n-times",
        cost=7,
        max_attempts=4,
        backoff_base_ms=base_ms,
        backoff_max_ms=max_ms,
    )
    job = submit(api, tenant.customer_id, flaky["id"], {"failures": 3})
    done = wait_for_status(api, job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 4, done
    assert done["result"] == {"succeeded_on_attempt": 4}

    attempts = attempts_of(api, job["id"])
    assert [a["number"] for a in attempts] == [1, 2, 3, 4]
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "retrying", "succeeded"]
    gaps = []
    for k, (before, after) in enumerate(pairwise(attempts), start=1):
        ceiling = min(max_ms, base_ms * 2 ** (k - 1)) / 1000
        gap = (ts(after["started_at"]) - ts(before["finished_at"])).total_seconds()
        gaps.append((k, round(gap, 3), ceiling))
        assert 0.5 * ceiling - STAMP_S <= gap <= ceiling + SLACK_S, (
            f"gap after attempt {k}: {gap:.3f}s, the policy allows "
            f"{0.5 * ceiling:.3f}..{ceiling:.3f}s",
            attempts,
        )
    print("gaps (attempt, seconds, ceiling):", gaps)
    for a in attempts[:3]:
        assert a["error_type"] == "exception" and "planned failure" in a["error_message"]
    assert_settled(api, server.database_url, tenant.customer_id, done)
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_000 - 7


def test_fixed_backoff_waits_the_base_every_time(api, server):
    tenant = create_tenant(api, balance_cents=1_000)
    flaky = create_job_type(
        api,
        "test-fail-n-times",
        cost=7,
        max_attempts=3,
        backoff_strategy="fixed",
        backoff_base_ms=500,  # backoff_max_ms keeps its default (300 s): no doubling
    )
    assert flaky["backoff_strategy"] == "fixed"
    job = submit(api, tenant.customer_id, flaky["id"], {"failures": 2})
    done = wait_for_status(api, job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 3, done

    attempts = attempts_of(api, job["id"])
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "succeeded"]
    for before, after in pairwise(attempts):
        gap = (ts(after["started_at"]) - ts(before["finished_at"])).total_seconds()
        assert 0.5 - STAMP_S <= gap <= 0.5 + SLACK_S, (gap, attempts)
    assert_settled(api, server.database_url, tenant.customer_id, done)


def test_a_permanent_error_stops_after_one_attempt(api, server):
    tenant = create_tenant(api, balance_cents=1_000)
    flaky = create_job_type(
        api, "test-fail-n-times", cost=7, max_attempts=4, backoff_base_ms=10, backoff_max_ms=20
    )
    job = submit(api, tenant.customer_id, flaky["id"], {"failures": 5, "permanent": True})
    done = wait_for_status(api, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1, done
    assert done["error"]["type"] == "permanent"
    (only,) = attempts_of(api, job["id"])
    assert (only["number"], only["outcome"], only["error_type"]) == (1, "failed", "permanent")
    assert "permanent failure on attempt 1" in only["error_message"]
    assert_settled(api, server.database_url, tenant.customer_id, done)
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_000


def test_max_attempts_reached_fails_the_job_and_releases_the_hold(api, server):
    tenant = create_tenant(api, balance_cents=1_000)
    flaky = create_job_type(
        api, "test-fail-n-times", cost=7, max_attempts=3, backoff_base_ms=50, backoff_max_ms=100
    )
    job = submit(api, tenant.customer_id, flaky["id"], {"failures": 5})
    done = wait_for_status(api, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 3, done
    assert done["error"]["type"] == "exception"
    assert "planned failure on attempt 3" in done["error"]["message"]
    attempts = attempts_of(api, job["id"])
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "failed"]
    assert_settled(api, server.database_url, tenant.customer_id, done)
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_000


def test_a_timeout_ends_the_attempt_and_is_retried(api, server):
    tenant = create_tenant(api, balance_cents=1_000)
    slow = create_job_type(
        api,
        "test-sleep",
        cost=7,
        max_attempts=2,
        timeout_seconds=1,
        backoff_base_ms=50,
        backoff_max_ms=100,
    )
    job = submit(api, tenant.customer_id, slow["id"], {"seconds": 30})
    done = wait_for_status(api, job["id"], timeout=30)
    assert done["status"] == "failed" and done["attempts"] == 2, done
    assert done["error"]["type"] == "timeout"
    attempts = attempts_of(api, job["id"])
    assert [a["number"] for a in attempts] == [1, 2]
    assert [a["outcome"] for a in attempts] == ["timeout", "timeout"]
    for a in attempts:
        lasted = (ts(a["finished_at"]) - ts(a["started_at"])).total_seconds()
        assert lasted == pytest.approx(1.0, abs=0.4), (lasted, a)
        assert a["error_type"] == "timeout"
    assert_settled(api, server.database_url, tenant.customer_id, done)
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_000
