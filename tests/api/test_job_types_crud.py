"""Job types CRUD (docs/API.md "Job types"): create against the installed processors, list with
filters and pagination, PATCH (enable/disable, price, policy; processor and scope are fixed),
project-scoped types, and DELETE that removes an unused type and archives (and disables) a used
one. A price change applies to new jobs only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import (
    TEST_LOGIC_IDS,
    assert_envelope,
    create_job_type,
    create_tenant,
    job_body,
    later,
    submit,
    walk_pages,
    wallet_of,
)


@pytest.fixture(scope="module")
def api(make_server) -> Iterator[httpx.Client]:
    """A server of this module's own: it creates dozens of job types, and the shared server's
    first page of ``GET /job-types`` (newest first) must keep showing the seeded ones to the
    other modules."""
    srv = make_server().start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            yield client
    finally:
        srv.stop()


def get(api: httpx.Client, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def all_items(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every job type matching ``params``, across pages."""
    return [t for page in walk_pages(api, "/job-types", params, limit=200) for t in page]


def all_ids(api: httpx.Client, **params: Any) -> list[str]:
    return [t["id"] for t in all_items(api, **params)]


def job_type_body(logic_id: str = "test-noop", processor_type: str = "async", **extra: Any) -> dict:
    return {
        "name": f"{logic_id} {uuid.uuid4().hex[:6]}",
        "description": "crud",
        "processing_logic_id": logic_id,
        "processor_type": processor_type,
        "standard_cost_cents": 10,
        "enabled": True,
        **extra,
    }


def post_job(api: httpx.Client, customer_id: str, job_type_id: str, **extra: Any):
    return api.post("/jobs", json=job_body(customer_id, job_type_id, {}, **extra))


# --- create ---------------------------------------------------------------------------------------
def test_unknown_processor_is_422_and_the_message_lists_the_installed_ones(api):
    logic_id = f"not-installed-{uuid.uuid4().hex[:6]}"
    response = api.post("/job-types", json=job_type_body(logic_id))
    error = assert_envelope(response, 422, "validation_error")
    assert "processing_logic_id" in [d["field"] for d in error["details"]], error
    for installed in (*TEST_LOGIC_IDS, "text-analysis-v1", "report-gen-v1"):
        assert installed in error["message"], (installed, error["message"])
    assert all_ids(api, processing_logic_id=logic_id, status="all") == []


@pytest.mark.parametrize(
    ("logic_id", "processor_type"),
    [("test-echo", "sync"), ("test-echo", "batch"), ("report-gen-v1", "async")],
)
def test_processor_type_that_does_not_match_the_processor_is_422(api, logic_id, processor_type):
    body = job_type_body(logic_id, processor_type)
    error = assert_envelope(api.post("/job-types", json=body), 422, "validation_error")
    assert "processor_type" in [d["field"] for d in error["details"]], error
    names = [t["name"] for t in all_items(api, processing_logic_id=logic_id, status="all")]
    assert body["name"] not in names


def test_create_with_every_policy_field(api):
    tenant = create_tenant(api, balance_cents=0)
    body = job_type_body(
        "test-echo",
        project_id=tenant.project_id,
        default_priority="high",
        max_attempts=5,
        backoff_base_ms=10,
        backoff_max_ms=20,
        timeout_seconds=60,
        sync_timeout_ms=1_000,
        enabled=False,
    )
    response = api.post("/job-types", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    for key, value in body.items():
        assert created[key] == value, key
    assert created["status"] == "active"
    assert get(api, f"/job-types/{created['id']}") == created


def test_no_job_type_is_created_under_an_archived_project(api):
    tenant = create_tenant(api, balance_cents=1_000)
    used = create_job_type(api, "test-noop", cost=1, project_id=tenant.project_id)
    submit(api, tenant.customer_id, used["id"], {}, project_id=tenant.project_id, run_at=later())
    archived = api.delete(f"/projects/{tenant.project_id}")
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "archived"
    body = job_type_body(project_id=tenant.project_id)
    assert_envelope(api.post("/job-types", json=body), 409, "conflict")
    names = [t["name"] for t in all_items(api, project_id=tenant.project_id, status="all")]
    assert body["name"] not in names


# --- list -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scoped(api: httpx.Client) -> dict[str, Any]:
    """One project with four job types of its own (one disabled, one archived), listed by
    filter."""
    tenant = create_tenant(api, balance_cents=1_000)
    pid = tenant.project_id
    echo = create_job_type(api, "test-echo", cost=1, project_id=pid)
    noop_off = create_job_type(api, "test-noop", cost=1, project_id=pid, enabled=False)
    report = create_job_type(api, "report-gen-v1", processor_type="sync", project_id=pid)
    data = create_job_type(api, "data-proc-v1", processor_type="batch", project_id=pid)
    used = create_job_type(api, "test-noop", cost=1, project_id=pid)
    submit(api, tenant.customer_id, used["id"], {}, project_id=pid, run_at=later())
    archived = api.delete(f"/job-types/{used['id']}")
    assert archived.status_code == 200, archived.text
    other_project = create_tenant(api, balance_cents=0).project_id
    elsewhere = create_job_type(api, "test-echo", cost=1, project_id=other_project)
    return {
        "tenant": tenant,
        "echo": echo["id"],
        "noop_off": noop_off["id"],
        "report": report["id"],
        "data": data["id"],
        "archived": used["id"],
        "elsewhere": elsewhere["id"],
    }


def test_list_filters_by_project(api, scoped):
    pid = scoped["tenant"].project_id
    mine = [scoped[k] for k in ("data", "report", "noop_off", "echo")]  # newest first
    assert all_ids(api, project_id=pid) == mine
    assert scoped["elsewhere"] not in all_ids(api, project_id=pid, status="all")
    for item in all_items(api, project_id=pid, status="all"):
        assert item["project_id"] == pid


def test_list_filters_by_enabled(api, scoped):
    pid = scoped["tenant"].project_id
    enabled = [scoped[k] for k in ("data", "report", "echo")]
    assert all_ids(api, project_id=pid, enabled="true") == enabled
    assert all_ids(api, project_id=pid, enabled="false") == [scoped["noop_off"]]
    everywhere_off = all_items(api, enabled="false")
    assert all(t["enabled"] is False for t in everywhere_off)
    names = {t["name"] for t in everywhere_off}
    assert "Email Processing" in names  # seeded disabled
    assert "Text Analysis" not in names


def test_list_filters_by_processing_logic_id(api, scoped):
    pid = scoped["tenant"].project_id
    assert all_ids(api, project_id=pid, processing_logic_id="test-noop") == [scoped["noop_off"]]
    everywhere = all_items(api, processing_logic_id="test-echo")
    assert {t["processing_logic_id"] for t in everywhere} == {"test-echo"}
    assert {scoped["echo"], scoped["elsewhere"]} <= {t["id"] for t in everywhere}
    assert all_ids(api, processing_logic_id=f"nothing-{uuid.uuid4().hex[:6]}") == []


def test_list_filters_by_processor_type(api, scoped):
    pid = scoped["tenant"].project_id
    assert all_ids(api, project_id=pid, processor_type="sync") == [scoped["report"]]
    assert all_ids(api, project_id=pid, processor_type="batch") == [scoped["data"]]
    assert all_ids(api, project_id=pid, processor_type="async") == [
        scoped["noop_off"],
        scoped["echo"],
    ]
    batch = all_items(api, processor_type="batch")
    assert {t["processor_type"] for t in batch} == {"batch"}
    assert "Data Processing" in {t["name"] for t in batch}


def test_list_filters_by_status(api, scoped):
    pid = scoped["tenant"].project_id
    assert scoped["archived"] not in all_ids(api, project_id=pid)
    assert scoped["archived"] not in all_ids(api)
    assert all_ids(api, project_id=pid, status="active") == all_ids(api, project_id=pid)
    assert all_ids(api, project_id=pid, status="archived") == [scoped["archived"]]
    assert all_ids(api, project_id=pid, status="all") == [
        scoped["archived"],
        scoped["data"],
        scoped["report"],
        scoped["noop_off"],
        scoped["echo"],
    ]
    archived_everywhere = all_items(api, status="archived")
    assert archived_everywhere and all(t["status"] == "archived" for t in archived_everywhere)


def test_list_pages_newest_first_without_duplicates_or_gaps(api):
    pid = create_tenant(api, balance_cents=0).project_id
    created = [create_job_type(api, "test-noop", project_id=pid)["id"] for _ in range(5)]
    pages = walk_pages(api, "/job-types", {"project_id": pid}, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [t["id"] for page in pages for t in page]
    assert seen == list(reversed(created))
    assert pages[0][0] == get(api, f"/job-types/{created[-1]}")


def test_unfiltered_walk_matches_one_big_page(api):
    one = api.get("/job-types", params={"limit": 200}).json()
    walked = [t["id"] for page in walk_pages(api, "/job-types", {}, limit=7) for t in page]
    assert len(walked) == len(set(walked))
    if one["next_cursor"] is None:
        assert walked == [t["id"] for t in one["items"]]
    else:
        assert walked[:200] == [t["id"] for t in one["items"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"enabled": "maybe"}, "enabled"),
        ({"processor_type": "quantum"}, "processor_type"),
        ({"status": "deleted"}, "status"),
        ({"project_id": "not-a-uuid"}, "project_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_list_parameter_is_422(api, params, field):
    error = assert_envelope(api.get("/job-types", params=params), 422, "validation_error")
    assert field in [d["field"] for d in error["details"]], error


# --- PATCH ----------------------------------------------------------------------------------------
def test_patch_every_mutable_field(api):
    job_type = create_job_type(api, "test-noop", cost=10)
    change = {
        "name": f"Renamed {uuid.uuid4().hex[:6]}",
        "description": "changed",
        "standard_cost_cents": 11,
        "enabled": False,
        "default_priority": "low",
        "max_attempts": 7,
        "backoff_base_ms": 5,
        "backoff_max_ms": 50,
        "timeout_seconds": 30,
        "sync_timeout_ms": 500,
    }
    response = api.patch(f"/job-types/{job_type['id']}", json=change)
    assert response.status_code == 200, response.text
    patched = response.json()
    for key, value in change.items():
        assert patched[key] == value, key
    for key in ("id", "processing_logic_id", "processor_type", "project_id", "created_at"):
        assert patched[key] == job_type[key], key
    assert get(api, f"/job-types/{job_type['id']}") == patched


def test_patch_one_field_leaves_the_others(api):
    job_type = create_job_type(api, "test-noop", cost=10)
    response = api.patch(f"/job-types/{job_type['id']}", json={"description": "only this"})
    assert response.status_code == 200, response.text
    expected = {**job_type, "description": "only this"}
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }


def test_disabled_type_refuses_jobs_until_enabled_again(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=10)
    off = api.patch(f"/job-types/{job_type['id']}", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False

    wallet = wallet_of(api, tenant.customer_id)
    assert_envelope(post_job(api, tenant.customer_id, job_type["id"]), 409, "conflict")
    assert wallet_of(api, tenant.customer_id) == wallet

    on = api.patch(f"/job-types/{job_type['id']}", json={"enabled": True})
    assert on.status_code == 200, on.text
    assert on.json()["enabled"] is True
    accepted = post_job(api, tenant.customer_id, job_type["id"], run_at=later())
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize(
    "change",
    [
        {"processing_logic_id": "test-echo"},
        {"processor_type": "sync"},
        {"project_id": "A_PROJECT"},
        {"name": "Allowed", "processing_logic_id": "test-echo"},
    ],
)
def test_processor_and_scope_cannot_change(api, change):
    job_type = create_job_type(api, "test-noop", cost=10)
    project_id = create_tenant(api, balance_cents=0).project_id
    change = {k: project_id if v == "A_PROJECT" else v for k, v in change.items()}
    response = api.patch(f"/job-types/{job_type['id']}", json=change)
    error = assert_envelope(response, 422, "validation_error")
    assert set(change) - {"name"} <= {d["field"] for d in error["details"]}, error
    assert get(api, f"/job-types/{job_type['id']}") == job_type


def test_scope_of_a_scoped_type_cannot_be_removed(api):
    project_id = create_tenant(api, balance_cents=0).project_id
    job_type = create_job_type(api, "test-noop", cost=10, project_id=project_id)
    response = api.patch(f"/job-types/{job_type['id']}", json={"project_id": None})
    assert_envelope(response, 422, "validation_error")
    assert get(api, f"/job-types/{job_type['id']}") == job_type


@pytest.mark.parametrize(
    "change",
    [
        {"standard_cost_cents": -1},
        {"standard_cost_cents": 1_000_000_001},
        {"standard_cost_cents": 1.5},
        {"standard_cost_cents": "10"},
        {"max_attempts": 0},
        {"max_attempts": 101},
        {"backoff_base_ms": -1},
        {"backoff_max_ms": 86_400_001},
        {"backoff_max_ms": 10},  # below the current backoff_base_ms (1000)
        {"timeout_seconds": 0},
        {"timeout_seconds": 86_401},
        {"sync_timeout_ms": -1},
        {"sync_timeout_ms": 600_001},
        {"default_priority": "urgent"},
        {"enabled": "yes"},
        {"enabled": None},
        {"name": ""},
        {"name": "x" * 201},
        {"id": "00000000-0000-4000-8000-000000000001"},
        {"status": "archived"},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"colour": "red"},
        {"standard_cost_cents": 20, "max_attempts": 0},
    ],
)
def test_patch_out_of_bounds_or_unknown_is_422_and_changes_nothing(api, change):
    job_type = create_job_type(api, "test-noop", cost=10)
    response = api.patch(f"/job-types/{job_type['id']}", json=change)
    assert_envelope(response, 422, "validation_error")
    assert get(api, f"/job-types/{job_type['id']}") == job_type


def test_price_change_applies_to_new_jobs_only(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=10)
    first = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())
    assert first["cost_cents"] == 10

    response = api.patch(f"/job-types/{job_type['id']}", json={"standard_cost_cents": 25})
    assert response.status_code == 200, response.text
    assert response.json()["standard_cost_cents"] == 25
    second = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())

    assert second["cost_cents"] == 25
    assert get(api, f"/jobs/{first['id']}")["cost_cents"] == 10
    assert get(api, f"/jobs/{second['id']}")["cost_cents"] == 25

    rows = [
        row
        for page in walk_pages(
            api, f"/customers/{tenant.customer_id}/wallet/transactions", {}, limit=200
        )
        for row in page
    ]
    holds = {row["job_id"]: row for row in rows if row["kind"] == "hold"}
    assert set(holds) == {first["id"], second["id"]}
    assert holds[first["id"]]["held_delta_cents"] == 10
    assert holds[second["id"]]["held_delta_cents"] == 25
    assert holds[first["id"]]["amount_cents"] == holds[second["id"]]["amount_cents"] == 0
    wallet = wallet_of(api, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 35)


# --- project-scoped job types ---------------------------------------------------------------------
def test_project_scoped_type_needs_its_own_project(api):
    owner = create_tenant(api, balance_cents=1_000)
    other = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=5, project_id=owner.project_id)
    assert job_type["project_id"] == owner.project_id
    wallets = (wallet_of(api, owner.customer_id), wallet_of(api, other.customer_id))

    without = post_job(api, owner.customer_id, job_type["id"])
    assert_envelope(without, 422, "validation_error")
    # a project of another customer: not found for this customer, whichever side asks
    assert_envelope(
        post_job(api, owner.customer_id, job_type["id"], project_id=other.project_id),
        404,
        "not_found",
    )
    assert_envelope(
        post_job(api, other.customer_id, job_type["id"], project_id=owner.project_id),
        404,
        "not_found",
    )
    assert (wallet_of(api, owner.customer_id), wallet_of(api, other.customer_id)) == wallets
    assert get(api, f"/jobs?customer_id={owner.customer_id}")["items"] == []

    accepted = post_job(
        api, owner.customer_id, job_type["id"], project_id=owner.project_id, run_at=later()
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["project_id"] == owner.project_id


# --- DELETE ---------------------------------------------------------------------------------------
def test_delete_unused_type_is_204_and_gone(api):
    job_type = create_job_type(api, "test-noop", cost=1)
    response = api.delete(f"/job-types/{job_type['id']}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_envelope(api.get(f"/job-types/{job_type['id']}"), 404, "not_found")
    assert job_type["id"] not in all_ids(api, processing_logic_id="test-noop", status="all")


def test_delete_used_type_archives_and_disables_it(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=1)
    job = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())

    response = api.delete(f"/job-types/{job_type['id']}")
    assert response.status_code == 200, response.text
    archived = response.json()
    assert (archived["id"], archived["status"], archived["enabled"]) == (
        job_type["id"],
        "archived",
        False,
    )
    assert get(api, f"/job-types/{job_type['id']}") == archived
    assert get(api, f"/jobs/{job['id']}")["job_type_id"] == job_type["id"]

    wallet = wallet_of(api, tenant.customer_id)
    assert_envelope(post_job(api, tenant.customer_id, job_type["id"]), 409, "conflict")
    assert wallet_of(api, tenant.customer_id) == wallet

    assert job_type["id"] not in all_ids(api, processing_logic_id="test-noop")
    assert job_type["id"] in all_ids(api, processing_logic_id="test-noop", status="archived")
    assert job_type["id"] in all_ids(api, processing_logic_id="test-noop", status="all")

    # archived: no PATCH brings it back
    again = api.patch(f"/job-types/{job_type['id']}", json={"enabled": True})
    assert_envelope(again, 409, "conflict")
    assert get(api, f"/job-types/{job_type['id']}") == archived


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_job_type_is_404(api, method):
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
    response = api.request(method, f"/job-types/{uuid.uuid4()}", **kwargs)
    assert_envelope(response, 404, "not_found")
