"""Tenants CRUD (docs/API.md "Tenants" and "Lists"): resellers, customers and projects are
created, read, listed (filters, newest-first cursor pagination, status), changed by PATCH (only
the listed fields), and deleted — removed when they have no history, archived (with cascade)
when they have. Nothing new is created under an archived resource."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import (
    assert_envelope,
    create_job_type,
    create_tenant,
    later,
    submit,
    wait_for_status,
    walk_pages,
    wallet_of,
)

RESOURCES = ("resellers", "customers", "projects")


# --- builders -------------------------------------------------------------------------------------
def tag() -> str:
    return uuid.uuid4().hex[:12]


def new_reseller(api: httpx.Client, name: str | None = None) -> dict[str, Any]:
    response = api.post("/resellers", json={"name": name or f"R {tag()}"})
    assert response.status_code == 201, response.text
    return response.json()


def new_email() -> str:
    return f"crud-{tag()}@example.com"


def new_customer(api: httpx.Client, reseller_id: str, **extra: Any) -> dict[str, Any]:
    body = {"reseller_id": reseller_id, "name": f"C {tag()}", "email": new_email(), **extra}
    response = api.post("/customers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_project(api: httpx.Client, customer_id: str, **extra: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "name": f"P {tag()}", **extra}
    response = api.post("/projects", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def top_up(api: httpx.Client, customer_id: str, amount: int = 1_000) -> None:
    response = api.post(f"/customers/{customer_id}/wallet/top-ups", json={"amount_cents": amount})
    assert response.status_code == 201, response.text


def get(api: httpx.Client, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def list_ids(api: httpx.Client, path: str, **params: Any) -> list[str]:
    """The ids of a whole (small) list, one page of up to 200."""
    response = api.get(path, params={"limit": 200, **params})
    assert response.status_code == 200, (path, params, response.text)
    body = response.json()
    assert body["next_cursor"] is None, "test lists are small"
    return [item["id"] for item in body["items"]]


def assert_walk(pages: list[list[dict[str, Any]]], expected_newest_first: list[str]) -> None:
    """Pages of 2 that together are exactly the expected ids, in order, once each."""
    sizes = [len(p) for p in pages]
    expected_sizes = [2] * (len(expected_newest_first) // 2) + (
        [1] if len(expected_newest_first) % 2 else []
    )
    assert sizes == expected_sizes, sizes
    seen = [item["id"] for page in pages for item in page]
    assert seen == expected_newest_first
    assert len(set(seen)) == len(seen)


def archived_tenant(api: httpx.Client) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A reseller, customer (with a ledger row) and project, all archived by DELETE of the
    reseller."""
    reseller = new_reseller(api)
    customer = new_customer(api, reseller["id"])
    top_up(api, customer["id"])
    project = new_project(api, customer["id"])
    response = api.delete(f"/resellers/{reseller['id']}")
    assert response.status_code == 200, response.text
    return reseller, customer, project


# --- create and read ------------------------------------------------------------------------------
def test_created_tenants_are_active_and_read_back_identically(api):
    reseller = new_reseller(api)
    customer = new_customer(api, reseller["id"])
    project = new_project(api, customer["id"], description="d")
    for kind, resource in (("resellers", reseller), ("customers", customer), ("projects", project)):
        assert resource["status"] == "active", resource
        assert get(api, f"/{kind}/{resource['id']}") == resource
    assert customer["reseller_id"] == reseller["id"]
    assert project["customer_id"] == customer["id"]
    assert project["description"] == "d"


@pytest.mark.parametrize("currency", ["XYZ", "eur1", "", "EU", "E1R"])
def test_customer_with_a_currency_that_is_not_iso_4217_is_422(api, currency):
    reseller = new_reseller(api)
    email = new_email()
    response = api.post(
        "/customers",
        json={"reseller_id": reseller["id"], "name": "C", "email": email, "currency": currency},
    )
    error = assert_envelope(response, 422, "validation_error")
    assert "currency" in [d["field"] for d in error["details"]], error
    assert list_ids(api, "/customers", email=email, status="all") == []


@pytest.mark.parametrize("currency", ["JPY", "chf", "GBP"])
def test_customer_with_a_real_currency_gets_a_wallet_in_it(api, currency):
    reseller = new_reseller(api)
    customer = new_customer(api, reseller["id"], currency=currency)
    assert wallet_of(api, customer["id"])["currency"] == currency.upper()


def test_customer_email_is_unique_case_insensitively(api):
    first = new_reseller(api)
    second = new_reseller(api)
    email = new_email()
    new_customer(api, first["id"], email=email)
    response = api.post(
        "/customers",
        json={"reseller_id": second["id"], "name": "Dup", "email": email.upper()},
    )
    assert_envelope(response, 409, "conflict")
    assert list_ids(api, "/customers", reseller_id=second["id"], status="all") == []


# --- lists ----------------------------------------------------------------------------------------
def test_resellers_list_filters_by_name_and_pages_newest_first(api):
    name = f"Paged {tag()}"
    created = [new_reseller(api, name)["id"] for _ in range(5)]
    other = new_reseller(api, f"Other {tag()}")["id"]

    pages = walk_pages(api, "/resellers", {"name": name}, limit=2)
    assert_walk(pages, list(reversed(created)))
    assert other not in list_ids(api, "/resellers", name=name)
    for item in pages[0]:
        assert item == get(api, f"/resellers/{item['id']}")


def test_resellers_list_without_filter_shows_the_newest_first(api):
    newest = new_reseller(api)
    items = get(api, "/resellers?limit=1")["items"]
    assert [r["id"] for r in items] == [newest["id"]]


def test_customers_list_filters_by_reseller_and_email_and_pages_newest_first(api):
    reseller = new_reseller(api)
    created = [new_customer(api, reseller["id"]) for _ in range(5)]
    elsewhere = new_customer(api, new_reseller(api)["id"])

    pages = walk_pages(api, "/customers", {"reseller_id": reseller["id"]}, limit=2)
    assert_walk(pages, [c["id"] for c in reversed(created)])
    assert elsewhere["id"] not in [c["id"] for page in pages for c in page]
    assert pages[0][0] == get(api, f"/customers/{created[-1]['id']}")

    assert list_ids(api, "/customers", email=created[2]["email"]) == [created[2]["id"]]
    assert list_ids(api, "/customers", email=f"nobody-{tag()}@example.com") == []
    both = list_ids(api, "/customers", reseller_id=reseller["id"], email=elsewhere["email"])
    assert both == []


def test_projects_list_filters_by_customer_and_pages_newest_first(api):
    customer = new_customer(api, new_reseller(api)["id"])
    created = [new_project(api, customer["id"]) for _ in range(5)]
    other = create_tenant(api, balance_cents=0)

    pages = walk_pages(api, "/projects", {"customer_id": customer["id"]}, limit=2)
    assert_walk(pages, [p["id"] for p in reversed(created)])
    assert other.project_id not in [p["id"] for page in pages for p in page]
    assert pages[-1][0] == get(api, f"/projects/{created[0]['id']}")


BAD_LIST_PARAMS = [
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"cursor": "garbage"}, "cursor"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),  # base64 of "not-a-cursor"
    ({"status": "deleted"}, "status"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize(("params", "field"), BAD_LIST_PARAMS)
def test_bad_list_parameter_is_422(api, resource, params, field):
    error = assert_envelope(api.get(f"/{resource}", params=params), 422, "validation_error")
    assert field in [d["field"] for d in error["details"]], error


@pytest.mark.parametrize(
    ("resource", "params"),
    [
        ("customers", {"reseller_id": "not-a-uuid"}),
        ("projects", {"customer_id": "not-a-uuid"}),
        ("resellers", {"reseller_id": str(uuid.uuid4())}),  # a filter of another list
        ("projects", {"email": "a@example.com"}),
    ],
)
def test_list_filter_of_the_wrong_kind_is_422(api, resource, params):
    assert_envelope(api.get(f"/{resource}", params=params), 422, "validation_error")


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("limit", ["1", "200"])
def test_list_limit_bounds_are_inclusive(api, resource, limit):
    create_tenant(api, balance_cents=0)  # at least one of each
    response = api.get(f"/{resource}", params={"limit": limit})
    assert response.status_code == 200, response.text
    assert 1 <= len(response.json()["items"]) <= int(limit)


# --- PATCH ----------------------------------------------------------------------------------------
def test_patch_reseller_name(api):
    reseller = new_reseller(api)
    response = api.patch(f"/resellers/{reseller['id']}", json={"name": "Renamed"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed"
    assert response.json()["created_at"] == reseller["created_at"]
    assert get(api, f"/resellers/{reseller['id']}") == response.json()


def test_patch_customer_name_and_email(api):
    customer = new_customer(api, new_reseller(api)["id"])
    email = new_email()
    response = api.patch(
        f"/customers/{customer['id']}", json={"name": "New Name", "email": email.upper()}
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "New Name"
    assert patched["email"].lower() == email
    assert (patched["reseller_id"], patched["status"]) == (customer["reseller_id"], "active")
    assert get(api, f"/customers/{customer['id']}") == patched
    assert list_ids(api, "/customers", email=email) == [customer["id"]]
    assert list_ids(api, "/customers", email=customer["email"]) == []


def test_patch_customer_email_to_its_own_in_another_case_is_not_a_conflict(api):
    customer = new_customer(api, new_reseller(api)["id"])
    response = api.patch(f"/customers/{customer['id']}", json={"email": customer["email"].upper()})
    assert response.status_code == 200, response.text
    assert response.json()["email"].lower() == customer["email"]


def test_patch_project_name_and_description(api):
    project = new_project(api, create_tenant(api, balance_cents=0).customer_id)
    response = api.patch(f"/projects/{project['id']}", json={"description": "now described"})
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "now described"
    assert response.json()["name"] == project["name"]
    response = api.patch(f"/projects/{project['id']}", json={"name": "Renamed"})
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["description"]) == ("Renamed", "now described")
    assert get(api, f"/projects/{project['id']}") == response.json()


FORBIDDEN_COMMON = [
    {"status": "archived"},
    {"id": "00000000-0000-4000-8000-000000000001"},
    {"created_at": "2020-01-01T00:00:00Z"},
    {"updated_at": "2020-01-01T00:00:00Z"},
    {"colour": "red"},
    {"name": "Allowed", "status": "archived"},
    {"name": "Allowed", "colour": "red"},
]


@pytest.mark.parametrize("body", FORBIDDEN_COMMON)
def test_patch_reseller_with_a_field_it_may_not_set_is_422_and_changes_nothing(api, body):
    reseller = new_reseller(api)
    response = api.patch(f"/resellers/{reseller['id']}", json=body)
    assert_envelope(response, 422, "validation_error")
    assert get(api, f"/resellers/{reseller['id']}") == reseller


@pytest.mark.parametrize(
    "body",
    [
        *FORBIDDEN_COMMON,
        {"reseller_id": "OTHER_RESELLER"},
        {"name": "Allowed", "reseller_id": "OTHER_RESELLER"},
        {"currency": "USD"},
        {"balance_cents": 100},
        {"credit_limit_cents": 100},
        {"held_cents": 0},
    ],
)
def test_patch_customer_with_a_field_it_may_not_set_is_422_and_changes_nothing(api, body):
    customer = new_customer(api, new_reseller(api)["id"])
    other = new_reseller(api)
    body = {k: other["id"] if v == "OTHER_RESELLER" else v for k, v in body.items()}
    wallet = wallet_of(api, customer["id"])
    response = api.patch(f"/customers/{customer['id']}", json=body)
    assert_envelope(response, 422, "validation_error")
    assert get(api, f"/customers/{customer['id']}") == customer
    assert wallet_of(api, customer["id"]) == wallet
    assert list_ids(api, "/customers", reseller_id=other["id"], status="all") == []


@pytest.mark.parametrize(
    "body",
    [
        *FORBIDDEN_COMMON,
        {"customer_id": "OTHER_CUSTOMER"},
        {"name": "Allowed", "customer_id": "OTHER_CUSTOMER"},
    ],
)
def test_patch_project_with_a_field_it_may_not_set_is_422_and_changes_nothing(api, body):
    tenant = create_tenant(api, balance_cents=0)
    other = create_tenant(api, balance_cents=0)
    body = {k: other.customer_id if v == "OTHER_CUSTOMER" else v for k, v in body.items()}
    before = get(api, f"/projects/{tenant.project_id}")
    response = api.patch(f"/projects/{tenant.project_id}", json=body)
    assert_envelope(response, 422, "validation_error")
    assert get(api, f"/projects/{tenant.project_id}") == before
    assert tenant.project_id not in list_ids(api, "/projects", customer_id=other.customer_id)


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("name", ["", 5, None, ["x"]])
def test_patch_with_a_bad_name_is_422(api, resource, name):
    tenant = create_tenant(api, balance_cents=0)
    rid = {
        "resellers": tenant.reseller_id,
        "customers": tenant.customer_id,
        "projects": tenant.project_id,
    }[resource]
    before = get(api, f"/{resource}/{rid}")
    assert_envelope(api.patch(f"/{resource}/{rid}", json={"name": name}), 422, "validation_error")
    assert get(api, f"/{resource}/{rid}") == before


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.com", "two@@example.com", 7])
def test_patch_customer_with_an_invalid_email_is_422(api, email):
    customer = new_customer(api, new_reseller(api)["id"])
    response = api.patch(f"/customers/{customer['id']}", json={"email": email})
    error = assert_envelope(response, 422, "validation_error")
    assert "email" in [d["field"] for d in error["details"]], error
    assert get(api, f"/customers/{customer['id']}") == customer


def test_patch_customer_email_to_another_customers_in_any_case_is_409(api):
    reseller = new_reseller(api)
    taken = new_customer(api, reseller["id"])
    customer = new_customer(api, new_reseller(api)["id"])
    response = api.patch(
        f"/customers/{customer['id']}",
        json={"name": "Should Not Stick", "email": taken["email"].upper()},
    )
    assert_envelope(response, 409, "conflict")
    assert get(api, f"/customers/{customer['id']}") == customer
    assert get(api, f"/customers/{taken['id']}") == taken


@pytest.mark.parametrize("resource", RESOURCES)
def test_patch_of_an_archived_resource_is_409_and_changes_nothing(api, resource):
    reseller, customer, project = archived_tenant(api)
    rid = {"resellers": reseller, "customers": customer, "projects": project}[resource]["id"]
    before = get(api, f"/{resource}/{rid}")
    assert before["status"] == "archived"
    response = api.patch(f"/{resource}/{rid}", json={"name": "Too Late"})
    assert_envelope(response, 409, "conflict")
    assert get(api, f"/{resource}/{rid}") == before


# --- unknown ids ----------------------------------------------------------------------------------
@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404_with_the_envelope(api, resource, method):
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
    response = api.request(method, f"/{resource}/{uuid.uuid4()}", **kwargs)
    assert_envelope(response, 404, "not_found")


# --- DELETE without history: removed --------------------------------------------------------------
def test_delete_reseller_without_customers_is_204_and_gone(api):
    reseller = new_reseller(api)
    response = api.delete(f"/resellers/{reseller['id']}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_envelope(api.get(f"/resellers/{reseller['id']}"), 404, "not_found")
    assert list_ids(api, "/resellers", name=reseller["name"], status="all") == []


def test_delete_customer_without_history_is_204_and_its_wallet_goes_with_it(api):
    reseller = new_reseller(api)
    customer = new_customer(api, reseller["id"])
    response = api.delete(f"/customers/{customer['id']}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_envelope(api.get(f"/customers/{customer['id']}"), 404, "not_found")
    assert_envelope(api.get(f"/customers/{customer['id']}/wallet"), 404, "not_found")
    assert list_ids(api, "/customers", reseller_id=reseller["id"], status="all") == []
    # the email is free again
    new_customer(api, reseller["id"], email=customer["email"])


def test_delete_project_without_jobs_or_job_types_is_204_and_gone(api):
    tenant = create_tenant(api, balance_cents=0)
    response = api.delete(f"/projects/{tenant.project_id}")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_envelope(api.get(f"/projects/{tenant.project_id}"), 404, "not_found")
    assert list_ids(api, "/projects", customer_id=tenant.customer_id, status="all") == []
    assert get(api, f"/customers/{tenant.customer_id}")["status"] == "active"


# --- DELETE with history: archived ----------------------------------------------------------------
def test_delete_reseller_with_customers_archives_it_and_cascades(api):
    reseller = new_reseller(api)
    tenant_customer = new_customer(api, reseller["id"])
    top_up(api, tenant_customer["id"])
    projects = [new_project(api, tenant_customer["id"]) for _ in range(2)]
    plain_customer = new_customer(api, reseller["id"])  # no history of its own
    other = create_tenant(api, balance_cents=0)

    response = api.delete(f"/resellers/{reseller['id']}")
    assert response.status_code == 200, response.text
    archived = response.json()
    assert archived["status"] == "archived"
    assert {k: v for k, v in archived.items() if k not in ("status", "updated_at")} == {
        k: v for k, v in reseller.items() if k not in ("status", "updated_at")
    }
    assert get(api, f"/resellers/{reseller['id']}")["status"] == "archived"
    for customer in (tenant_customer, plain_customer):
        assert get(api, f"/customers/{customer['id']}")["status"] == "archived"
    for project in projects:
        assert get(api, f"/projects/{project['id']}")["status"] == "archived"
    # another tenant is untouched
    assert get(api, f"/resellers/{other.reseller_id}")["status"] == "active"
    assert get(api, f"/customers/{other.customer_id}")["status"] == "active"
    assert get(api, f"/projects/{other.project_id}")["status"] == "active"

    # gone from the default lists, there with status=archived and status=all
    name = reseller["name"]
    assert list_ids(api, "/resellers", name=name) == []
    assert list_ids(api, "/resellers", name=name, status="archived") == [reseller["id"]]
    assert list_ids(api, "/resellers", name=name, status="all") == [reseller["id"]]
    customers = [plain_customer["id"], tenant_customer["id"]]
    assert list_ids(api, "/customers", reseller_id=reseller["id"]) == []
    assert list_ids(api, "/customers", reseller_id=reseller["id"], status="archived") == customers
    assert list_ids(api, "/customers", reseller_id=reseller["id"], status="all") == customers
    project_ids = [p["id"] for p in reversed(projects)]
    assert list_ids(api, "/projects", customer_id=tenant_customer["id"]) == []
    archived_projects = list_ids(
        api, "/projects", customer_id=tenant_customer["id"], status="archived"
    )
    assert archived_projects == project_ids


def test_archived_reseller_takes_no_new_customers(api):
    reseller, _customer, _project = archived_tenant(api)
    email = new_email()
    response = api.post(
        "/customers", json={"reseller_id": reseller["id"], "name": "Late", "email": email}
    )
    assert_envelope(response, 409, "conflict")
    assert list_ids(api, "/customers", email=email, status="all") == []


def test_delete_customer_with_ledger_rows_archives_it(api):
    reseller = new_reseller(api)
    customer = new_customer(api, reseller["id"])
    top_up(api, customer["id"], 500)
    response = api.delete(f"/customers/{customer['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert response.json()["id"] == customer["id"]
    assert get(api, f"/customers/{customer['id']}")["status"] == "archived"
    assert get(api, f"/resellers/{reseller['id']}")["status"] == "active"
    assert list_ids(api, "/customers", reseller_id=reseller["id"]) == []
    assert list_ids(api, "/customers", reseller_id=reseller["id"], status="archived") == [
        customer["id"]
    ]


def test_delete_customer_with_a_project_archives_both(api):
    customer = new_customer(api, new_reseller(api)["id"])
    project = new_project(api, customer["id"])
    response = api.delete(f"/customers/{customer['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert get(api, f"/projects/{project['id']}")["status"] == "archived"


def test_archived_customer_settles_accounts_but_gets_nothing_new(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=10)
    response = api.delete(f"/customers/{tenant.customer_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert get(api, f"/projects/{tenant.project_id}")["status"] == "archived"

    wallet = wallet_of(api, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 0)
    jobs = api.post(
        "/jobs",
        json={"customer_id": tenant.customer_id, "job_type_id": job_type["id"], "input_data": {}},
    )
    assert_envelope(jobs, 409, "conflict")
    projects = api.post("/projects", json={"customer_id": tenant.customer_id, "name": "Late"})
    assert_envelope(projects, 409, "conflict")
    assert wallet_of(api, tenant.customer_id) == wallet
    assert list_ids(api, "/jobs", customer_id=tenant.customer_id) == []
    assert list_ids(api, "/projects", customer_id=tenant.customer_id, status="all") == [
        tenant.project_id
    ]

    top = api.post(
        f"/customers/{tenant.customer_id}/wallet/top-ups",
        json={"amount_cents": 250, "reference": "final settlement"},
    )
    assert top.status_code == 201, top.text
    assert top.json()["balance_cents"] == 1_250
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_250
    adjusted = api.post(
        f"/customers/{tenant.customer_id}/wallet/adjustments",
        json={"amount_cents": -50, "reason": "closing fee"},
    )
    assert adjusted.status_code == 201, adjusted.text
    assert wallet_of(api, tenant.customer_id)["balance_cents"] == 1_200
    recon = get(api, f"/customers/{tenant.customer_id}/wallet/reconciliation")
    assert recon["matches"] is True


def test_jobs_queued_before_their_customer_is_archived_still_run(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-echo", cost=10)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    job = submit(api, tenant.customer_id, job_type["id"], {"k": "v"}, run_at=soon)
    response = api.delete(f"/customers/{tenant.customer_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    done = wait_for_status(api, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"echo": {"k": "v"}}
    wallet = wallet_of(api, tenant.customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (990, 0)


def test_delete_project_with_a_job_archives_it_and_it_takes_no_new_jobs(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=10)
    job = submit(
        api, tenant.customer_id, job_type["id"], {}, project_id=tenant.project_id, run_at=later()
    )
    response = api.delete(f"/projects/{tenant.project_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert response.json()["id"] == tenant.project_id
    assert get(api, f"/customers/{tenant.customer_id}")["status"] == "active"
    assert get(api, f"/jobs/{job['id']}")["project_id"] == tenant.project_id

    wallet = wallet_of(api, tenant.customer_id)
    refused = api.post(
        "/jobs",
        json={
            "customer_id": tenant.customer_id,
            "job_type_id": job_type["id"],
            "input_data": {},
            "project_id": tenant.project_id,
        },
    )
    assert_envelope(refused, 409, "conflict")
    assert wallet_of(api, tenant.customer_id) == wallet
    assert list_ids(api, "/jobs", customer_id=tenant.customer_id) == [job["id"]]
    # the customer itself still takes jobs without that project
    submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())

    assert list_ids(api, "/projects", customer_id=tenant.customer_id) == []
    assert list_ids(api, "/projects", customer_id=tenant.customer_id, status="archived") == [
        tenant.project_id
    ]


def test_delete_project_with_a_job_type_archives_it(api):
    tenant = create_tenant(api, balance_cents=0)
    create_job_type(api, "test-noop", cost=1, project_id=tenant.project_id)
    response = api.delete(f"/projects/{tenant.project_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"
    assert get(api, f"/projects/{tenant.project_id}")["status"] == "archived"
