"""Happy paths of the REST contract (DESIGN §6): tenants, job types, processors, job listing and
pagination, wallet top-ups, health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import (
    TEST_LOGIC_IDS,
    create_job_type,
    create_tenant,
    later,
    submit,
    wait_for_status,
)

SEEDED = {
    "Text Analysis": ("text-analysis-v1", "async", 100, True),
    "Image Recognition": ("image-recog-v2", "async", 200, True),
    "Data Processing": ("data-proc-v1", "batch", 50, True),
    "Report Generation": ("report-gen-v1", "sync", 75, True),
    "Email Processing": ("email-proc-v1", "batch", 25, False),
}


def is_uuid(value: Any) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError):
        return False


def is_utc_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    return datetime.fromisoformat(value.replace("Z", "+00:00")).utcoffset() == timedelta(0)


# --- tenants --------------------------------------------------------------------------------------
def test_create_and_get_reseller(api: httpx.Client):
    created = api.post("/resellers", json={"name": "Acme Resale"})
    assert created.status_code == 201, created.text
    reseller = created.json()
    assert is_uuid(reseller["id"])
    assert reseller["name"] == "Acme Resale"
    assert reseller["status"] == "active"
    assert is_utc_timestamp(reseller["created_at"])

    fetched = api.get(f"/resellers/{reseller['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == reseller


def test_create_customer_stores_email_lower_case_and_opens_a_wallet(api: httpx.Client):
    reseller = api.post("/resellers", json={"name": "R"}).json()
    local = f"Mixed.Case-{uuid.uuid4().hex[:8]}"
    created = api.post(
        "/customers",
        json={
            "reseller_id": reseller["id"],
            "name": "Mixed Case Ltd",
            "email": f"  {local}@Example.COM ",
            "currency": "usd",
            "credit_limit_cents": 500,
        },
    )
    assert created.status_code == 201, created.text
    customer = created.json()
    assert is_uuid(customer["id"])
    assert customer["email"] == f"{local.lower()}@example.com"
    assert customer["reseller_id"] == reseller["id"]
    assert customer["name"] == "Mixed Case Ltd"
    assert api.get(f"/customers/{customer['id']}").json() == customer

    wallet = api.get(f"/customers/{customer['id']}/wallet")
    assert wallet.status_code == 200
    assert wallet.json() == {
        "id": wallet.json()["id"],
        "customer_id": customer["id"],
        "currency": "USD",
        "balance_cents": 0,
        "held_cents": 0,
        "credit_limit_cents": 500,
        "open_to_buy_cents": 500,
    }
    assert is_uuid(wallet.json()["id"])


def test_create_and_get_project(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=0)
    created = api.post(
        "/projects",
        json={"customer_id": tenant.customer_id, "name": "Pipeline", "description": "nightly"},
    )
    assert created.status_code == 201, created.text
    project = created.json()
    assert is_uuid(project["id"])
    assert (project["customer_id"], project["name"], project["description"]) == (
        tenant.customer_id,
        "Pipeline",
        "nightly",
    )
    assert api.get(f"/projects/{project['id']}").json() == project


# --- job types ------------------------------------------------------------------------------------
def test_create_get_and_list_job_type(api: httpx.Client):
    name = f"Echo {uuid.uuid4().hex[:6]}"
    created = api.post(
        "/job-types",
        json={
            "name": name,
            "description": "says it back",
            "processing_logic_id": "test-echo",
            "processor_type": "async",
            "standard_cost_cents": 42,
            "enabled": True,
        },
    )
    assert created.status_code == 201, created.text
    job_type = created.json()
    assert is_uuid(job_type["id"])
    assert job_type["name"] == name
    assert job_type["processing_logic_id"] == "test-echo"
    assert job_type["processor_type"] == "async"
    assert job_type["standard_cost_cents"] == 42
    assert job_type["enabled"] is True
    assert job_type["project_id"] is None
    # Seed-compatible policy defaults.
    assert job_type["default_priority"] == "normal"
    assert job_type["max_attempts"] == 3
    assert job_type["timeout_seconds"] == 300

    assert api.get(f"/job-types/{job_type['id']}").json() == job_type
    listed = api.get("/job-types").json()["items"]
    assert job_type in listed


def test_seeded_job_types_are_listed(api: httpx.Client):
    listed = {t["name"]: t for t in api.get("/job-types").json()["items"]}
    for name, (logic_id, processor_type, cost, enabled) in SEEDED.items():
        assert name in listed, sorted(listed)
        job_type = listed[name]
        assert job_type["processing_logic_id"] == logic_id
        assert job_type["processor_type"] == processor_type
        assert job_type["standard_cost_cents"] == cost
        assert job_type["enabled"] is enabled, name
        assert api.get(f"/job-types/{job_type['id']}").json() == job_type


def test_processors_lists_the_test_processors(api: httpx.Client):
    response = api.get("/processors")
    assert response.status_code == 200
    body = response.json()
    processors = {p["logic_id"]: p for p in body["items"]}
    assert set(TEST_LOGIC_IDS) <= set(processors)
    for logic_id in TEST_LOGIC_IDS:
        p = processors[logic_id]
        assert {"logic_id", "name", "version", "processor_type", "kind", "input_schema"} <= set(p)
        assert p["processor_type"] in ("sync", "async", "batch")
        assert p["kind"] in ("io", "cpu")
        assert p["version"] == "1.0"
    assert processors["test-echo"]["name"] == "Echo"
    assert processors["test-echo"]["input_schema"] is None
    assert processors["test-cpu-burn"]["kind"] == "cpu"
    assert processors["test-echo"]["kind"] == "io"
    schema = processors["test-sleep"]["input_schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["seconds"]
    assert schema["properties"]["seconds"]["minimum"] == 0
    assert schema["properties"]["seconds"]["maximum"] == 3600
    plugin = next(p for p in body["plugins"] if p["package"] == "innosystem-test-processors")
    assert plugin["status"] == "ok"


# --- jobs -----------------------------------------------------------------------------------------
def test_submitted_job_has_the_documented_shape(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=7)
    run_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    job = submit(
        api,
        tenant.customer_id,
        job_type["id"],
        {},
        project_id=tenant.project_id,
        priority="high",
        run_at=run_at.isoformat(),
    )
    assert is_uuid(job["id"])
    assert job["status"] == "pending"
    assert job["cost_cents"] == 7
    assert job["attempts"] == 0
    assert job["priority"] == "high"
    assert job["project_id"] == tenant.project_id
    assert job["customer_id"] == tenant.customer_id
    assert job["job_type_id"] == job_type["id"]
    assert job["result"] is None and job["error"] is None
    assert job["run_at"] == run_at.isoformat().replace("+00:00", "Z")
    assert is_utc_timestamp(job["created_at"])
    assert api.get(f"/jobs/{job['id']}").json()["id"] == job["id"]
    wallet = api.get(f"/customers/{tenant.customer_id}/wallet").json()
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["open_to_buy_cents"]) == (
        1_000,
        7,
        993,
    )


def test_credit_limit_is_part_of_open_to_buy(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=50, credit_limit_cents=50)
    job_type = create_job_type(api, "test-noop", cost=100)
    job = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())
    assert job["cost_cents"] == 100
    wallet = api.get(f"/customers/{tenant.customer_id}/wallet").json()
    assert (wallet["held_cents"], wallet["open_to_buy_cents"]) == (100, 0)


def test_list_jobs_filters_by_status_customer_and_job_type(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=1_000)
    other = create_tenant(api, balance_cents=1_000)
    echo = create_job_type(api, "test-echo", cost=1)
    noop = create_job_type(api, "test-noop", cost=1)

    done = submit(api, tenant.customer_id, echo["id"], {})
    assert wait_for_status(api, done["id"])["status"] == "succeeded"
    waiting = submit(api, tenant.customer_id, noop["id"], {}, run_at=later())
    elsewhere = submit(api, other.customer_id, noop["id"], {}, run_at=later())

    def ids(**params: str) -> list[str]:
        response = api.get("/jobs", params={"limit": 200, **params})
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["items"]]

    mine = tenant.customer_id
    assert ids(customer_id=mine) == [waiting["id"], done["id"]]
    assert ids(customer_id=mine, status="pending") == [waiting["id"]]
    assert ids(customer_id=mine, status="succeeded") == [done["id"]]
    assert ids(customer_id=mine, status="failed") == []
    assert ids(customer_id=mine, job_type_id=echo["id"]) == [done["id"]]
    assert ids(job_type_id=noop["id"]) == [elsewhere["id"], waiting["id"]]
    assert ids(job_type_id=noop["id"], customer_id=other.customer_id) == [elsewhere["id"]]
    assert ids(customer_id=str(uuid.uuid4())) == []
    pending_everywhere = ids(status="pending")
    assert waiting["id"] in pending_everywhere and done["id"] not in pending_everywhere
    for job in api.get("/jobs", params={"status": "pending", "limit": 200}).json()["items"]:
        assert job["status"] == "pending"


def test_list_jobs_cursor_pagination_newest_first(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=1)
    created = [
        submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())["id"] for _ in range(5)
    ]

    seen: list[str] = []
    pages: list[int] = []
    cursor: str | None = None
    for _ in range(10):  # bounded: a broken cursor must not loop forever
        params: dict[str, Any] = {"customer_id": tenant.customer_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(len(page["items"]))
        seen.extend(j["id"] for j in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert seen == list(reversed(created))
    assert len(set(seen)) == 5


def test_list_jobs_exact_page_has_no_dangling_cursor(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=1)
    for _ in range(2):
        submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())
    page = api.get("/jobs", params={"customer_id": tenant.customer_id, "limit": 2}).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", ["1", "200"])
def test_list_jobs_limit_bounds_are_inclusive(api: httpx.Client, limit: str):
    response = api.get("/jobs", params={"limit": limit})
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) <= int(limit)


# --- wallet ---------------------------------------------------------------------------------------
def test_top_up_raises_balance_and_writes_a_ledger_row(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=0)
    before = api.get(f"/customers/{tenant.customer_id}/wallet/reconciliation").json()
    assert (before["ledger_balance_cents"], before["balance_cents"]) == (0, 0)

    response = api.post(
        f"/customers/{tenant.customer_id}/wallet/top-ups",
        json={"amount_cents": 2_500, "reference": "invoice 17"},
    )
    assert response.status_code == 201, response.text
    wallet = response.json()
    assert wallet["balance_cents"] == 2_500
    assert wallet["open_to_buy_cents"] == 2_500
    transaction = wallet.pop("transaction")
    assert (transaction["kind"], transaction["amount_cents"]) == ("top_up", 2_500)
    assert transaction["reference"] == "invoice 17"
    assert api.get(f"/customers/{tenant.customer_id}/wallet").json() == wallet

    second = api.post(f"/customers/{tenant.customer_id}/wallet/top-ups", json={"amount_cents": 1})
    assert second.status_code == 201
    assert second.json()["balance_cents"] == 2_501

    recon = api.get(f"/customers/{tenant.customer_id}/wallet/reconciliation").json()
    assert recon["wallet_id"] == wallet["id"]
    assert recon["ledger_balance_cents"] == 2_501
    assert recon["balance_cents"] == 2_501
    assert recon["ledger_held_cents"] == 0
    assert recon["matches"] is True


def test_top_up_at_the_maximum_is_accepted(api: httpx.Client):
    tenant = create_tenant(api, balance_cents=0)
    response = api.post(
        f"/customers/{tenant.customer_id}/wallet/top-ups", json={"amount_cents": 1_000_000_000}
    )
    assert response.status_code == 201, response.text
    assert response.json()["balance_cents"] == 1_000_000_000


# --- health ---------------------------------------------------------------------------------------
def test_health_is_ok(api: httpx.Client):
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["version"]
    assert body["runner_id"]
    assert "error" not in body
