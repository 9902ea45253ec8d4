"""GET /jobs filters and pagination, and POST /jobs/{id}/cancel (docs/API.md "Jobs"): filters by
status, customer, project, job type and creation time (``created_from`` inclusive,
``created_to`` exclusive, RFC 3339); cancelling a pending job releases its hold."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from helpers import (
    assert_envelope,
    create_job_type,
    create_tenant,
    events_of,
    later,
    submit,
    wait_for_status,
    walk_pages,
    wallet_of,
)


def ids(api: httpx.Client, **params: Any) -> list[str]:
    response = api.get("/jobs", params={"limit": 200, **params})
    assert response.status_code == 200, (params, response.text)
    body = response.json()
    assert body["next_cursor"] is None, "test lists are small"
    return [job["id"] for job in body["items"]]


def ledger(api: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    path = f"/customers/{customer_id}/wallet/transactions"
    return [row for page in walk_pages(api, path, {}, limit=200) for row in page]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- filters --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jobs(api: httpx.Client) -> dict[str, Any]:
    """One tenant's jobs: ``done`` (echo, in its project, succeeded), ``loose`` (noop, no
    project, pending) and ``planned`` (noop, in its project, pending); plus another tenant's
    pending noop job ``foreign``."""
    tenant = create_tenant(api, balance_cents=1_000)
    other = create_tenant(api, balance_cents=1_000)
    echo = create_job_type(api, "test-echo", cost=1)
    noop = create_job_type(api, "test-noop", cost=1)
    done = submit(api, tenant.customer_id, echo["id"], {"x": 1}, project_id=tenant.project_id)
    assert wait_for_status(api, done["id"])["status"] == "succeeded"
    loose = submit(api, tenant.customer_id, noop["id"], {}, run_at=later())
    planned = submit(
        api, tenant.customer_id, noop["id"], {}, project_id=tenant.project_id, run_at=later()
    )
    foreign = submit(
        api, other.customer_id, noop["id"], {}, project_id=other.project_id, run_at=later()
    )
    return {
        "tenant": tenant,
        "other": other,
        "echo": echo["id"],
        "noop": noop["id"],
        "done": done["id"],
        "loose": loose["id"],
        "planned": planned["id"],
        "foreign": foreign["id"],
    }


def test_filter_by_customer(api, jobs):
    assert ids(api, customer_id=jobs["tenant"].customer_id) == [
        jobs["planned"],
        jobs["loose"],
        jobs["done"],
    ]
    assert ids(api, customer_id=jobs["other"].customer_id) == [jobs["foreign"]]
    assert ids(api, customer_id=str(uuid.uuid4())) == []


def test_filter_by_project(api, jobs):
    assert ids(api, project_id=jobs["tenant"].project_id) == [jobs["planned"], jobs["done"]]
    assert ids(api, project_id=jobs["other"].project_id) == [jobs["foreign"]]
    mine = jobs["tenant"]
    assert ids(api, project_id=mine.project_id, status="pending") == [jobs["planned"]]
    assert ids(api, project_id=mine.project_id, customer_id=jobs["other"].customer_id) == []
    assert ids(api, project_id=str(uuid.uuid4())) == []


def test_filter_by_job_type(api, jobs):
    assert ids(api, job_type_id=jobs["echo"]) == [jobs["done"]]
    assert ids(api, job_type_id=jobs["noop"]) == [jobs["foreign"], jobs["planned"], jobs["loose"]]
    assert ids(api, job_type_id=jobs["noop"], customer_id=jobs["tenant"].customer_id) == [
        jobs["planned"],
        jobs["loose"],
    ]


def test_filter_by_status(api, jobs):
    customer_id = jobs["tenant"].customer_id
    assert ids(api, customer_id=customer_id, status="pending") == [jobs["planned"], jobs["loose"]]
    assert ids(api, customer_id=customer_id, status="succeeded") == [jobs["done"]]
    assert ids(api, customer_id=customer_id, status="cancelled") == []
    everywhere = api.get("/jobs", params={"status": "succeeded", "limit": 200}).json()["items"]
    assert everywhere and all(job["status"] == "succeeded" for job in everywhere)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"project_id": "not-a-uuid"}, "project_id"),
        ({"job_type_id": "12"}, "job_type_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"colour": "red"}, "colour"),
        ({"created_from": "yesterday"}, "created_from"),
        ({"created_to": "yesterday"}, "created_to"),
        ({"created_from": "2024-13-01T00:00:00Z"}, "created_from"),
        ({"created_to": "2024-01-01T25:00:00Z"}, "created_to"),
        ({"created_from": "1700000000"}, "created_from"),
        ({"created_from": "2024-01-01T00:00:00"}, "created_from"),  # no offset
    ],
)
def test_bad_list_parameter_is_422(api, params, field):
    error = assert_envelope(api.get("/jobs", params=params), 422, "validation_error")
    assert field in [d["field"] for d in error["details"]], error


# --- created_from / created_to --------------------------------------------------------------------
@pytest.fixture(scope="module")
def timeline(api: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """Three pending jobs of one customer, created some milliseconds apart."""
    tenant = create_tenant(api, balance_cents=1_000)
    noop = create_job_type(api, "test-noop", cost=1)
    created = []
    for _ in range(3):
        created.append(submit(api, tenant.customer_id, noop["id"], {}, run_at=later()))
        time.sleep(0.02)
    stamps = [parse(job["created_at"]) for job in created]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3, stamps
    return tenant.customer_id, created


def test_created_from_is_inclusive(api, timeline):
    customer_id, (j1, j2, j3) = timeline
    assert ids(api, customer_id=customer_id, created_from=j2["created_at"]) == [j3["id"], j2["id"]]
    assert ids(api, customer_id=customer_id, created_from=j1["created_at"]) == [
        j3["id"],
        j2["id"],
        j1["id"],
    ]
    after_last = rfc3339(parse(j3["created_at"]) + timedelta(microseconds=1))
    assert ids(api, customer_id=customer_id, created_from=after_last) == []


def test_created_to_is_exclusive(api, timeline):
    customer_id, (j1, j2, j3) = timeline
    assert ids(api, customer_id=customer_id, created_to=j2["created_at"]) == [j1["id"]]
    assert ids(api, customer_id=customer_id, created_to=j1["created_at"]) == []
    just_after = rfc3339(parse(j3["created_at"]) + timedelta(microseconds=1))
    assert ids(api, customer_id=customer_id, created_to=just_after) == [
        j3["id"],
        j2["id"],
        j1["id"],
    ]


def test_created_from_and_to_together(api, timeline):
    customer_id, (j1, j2, j3) = timeline
    window = {"created_from": j1["created_at"], "created_to": j3["created_at"]}
    assert ids(api, customer_id=customer_id, **window) == [j2["id"], j1["id"]]
    same = {"created_from": j2["created_at"], "created_to": j2["created_at"]}
    assert ids(api, customer_id=customer_id, **same) == []


def test_created_bounds_take_any_utc_offset(api, timeline):
    customer_id, (_j1, j2, j3) = timeline
    plus_two = parse(j2["created_at"]).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert not plus_two.endswith(("Z", "+00:00"))
    assert ids(api, customer_id=customer_id, created_from=plus_two) == [j3["id"], j2["id"]]
    utc_spelled = parse(j2["created_at"]).isoformat()  # "+00:00" rather than "Z"
    assert ids(api, customer_id=customer_id, created_from=utc_spelled) == [j3["id"], j2["id"]]


def test_created_window_pages(api, timeline):
    customer_id, (j1, j2, j3) = timeline
    pages = walk_pages(
        api, "/jobs", {"customer_id": customer_id, "created_from": j1["created_at"]}, limit=1
    )
    assert [[job["id"] for job in page] for page in pages] == [[j3["id"]], [j2["id"]], [j1["id"]]]


# --- pagination -----------------------------------------------------------------------------------
def test_filtered_pages_are_newest_first_without_duplicates_or_gaps(api):
    tenant = create_tenant(api, balance_cents=1_000)
    noop = create_job_type(api, "test-noop", cost=1)
    echo = create_job_type(api, "test-echo", cost=1)
    wanted = []
    for i in range(7):
        wanted.append(submit(api, tenant.customer_id, noop["id"], {}, run_at=later())["id"])
        if i % 3 == 0:  # interleave jobs the filter must skip
            submit(api, tenant.customer_id, echo["id"], {}, run_at=later())
    params = {"customer_id": tenant.customer_id, "job_type_id": noop["id"], "status": "pending"}
    pages = walk_pages(api, "/jobs", params, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    seen = [job["id"] for page in pages for job in page]
    assert seen == list(reversed(wanted))
    assert len(ids(api, customer_id=tenant.customer_id)) == 10


# --- cancel ---------------------------------------------------------------------------------------
def test_cancel_a_pending_job_releases_its_hold(api):
    tenant = create_tenant(api, balance_cents=1_000)
    noop = create_job_type(api, "test-noop", cost=15)
    job = submit(api, tenant.customer_id, noop["id"], {}, run_at=later())
    assert wallet_of(api, tenant.customer_id)["held_cents"] == 15

    response = api.post(f"/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["id"] == job["id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert cancelled["cost_cents"] == 15
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"

    wallet = wallet_of(api, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["open_to_buy_cents"]) == (
        1_000,
        0,
        1_000,
    )
    rows = [row for row in ledger(api, tenant.customer_id) if row["job_id"] == job["id"]]
    assert [row["kind"] for row in rows] == ["release", "hold"]  # newest first
    release, hold = rows
    assert (release["amount_cents"], release["held_delta_cents"]) == (0, -15)
    assert (hold["amount_cents"], hold["held_delta_cents"]) == (0, 15)
    assert release["held_after_cents"] == 0
    assert [e["to_status"] for e in events_of(api, job["id"])] == ["pending", "cancelled"]
    assert ids(api, customer_id=tenant.customer_id, status="cancelled") == [job["id"]]
    assert ids(api, customer_id=tenant.customer_id, status="pending") == []

    again = api.post(f"/jobs/{job['id']}/cancel")
    assert_envelope(again, 409, "conflict")
    assert wallet_of(api, tenant.customer_id) == wallet
    assert len([r for r in ledger(api, tenant.customer_id) if r["job_id"] == job["id"]]) == 2


def test_cancel_a_succeeded_job_is_409(api):
    tenant = create_tenant(api, balance_cents=1_000)
    echo = create_job_type(api, "test-echo", cost=5)
    job = submit(api, tenant.customer_id, echo["id"], {"a": 1})
    assert wait_for_status(api, job["id"])["status"] == "succeeded"
    wallet = wallet_of(api, tenant.customer_id)
    assert_envelope(api.post(f"/jobs/{job['id']}/cancel"), 409, "conflict")
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"
    assert wallet_of(api, tenant.customer_id) == wallet == {**wallet, "balance_cents": 995}


def test_cancel_an_unknown_job_is_404(api):
    assert_envelope(api.post(f"/jobs/{uuid.uuid4()}/cancel"), 404, "not_found")
