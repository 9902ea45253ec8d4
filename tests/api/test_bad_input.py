"""The error contract (DESIGN §6): every bad request gets the one JSON envelope with the right
status and field names, never a 500, and leaves the database exactly as it was."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import httpx
import pytest
from helpers import (
    TEST_LOGIC_IDS,
    ServerProcess,
    Tenant,
    create_job_type,
    create_tenant,
    later,
)


# --- helpers ------------------------------------------------------------------------------------
def assert_error(
    response: httpx.Response,
    status: int,
    code: str | None = None,
    fields: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The envelope ``{"error": {"code", "message", "details": [{"field", "message"}]}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}, detail
        assert isinstance(detail["field"], str) and detail["field"]
        assert isinstance(detail["message"], str) and detail["message"]
    if code is not None:
        assert error["code"] == code, error
    named = {d["field"] for d in error["details"]}
    for field in fields:
        assert field in named, (field, error)
    return error


def detail_fields(error: dict[str, Any]) -> list[str]:
    return [d["field"] for d in error["details"]]


def state(api: httpx.Client, tenant: Tenant | None = None) -> dict[str, Any]:
    """What a bad request must not change: the tenant's wallet and jobs, the job types, and the
    newest job on the whole server (so a job created for anyone shows up)."""
    snap: dict[str, Any] = {
        "job_types": len(api.get("/job-types").json()["items"]),
        "newest_job": [j["id"] for j in api.get("/jobs", params={"limit": 1}).json()["items"]],
    }
    if tenant is not None:
        wallet = api.get(f"/customers/{tenant.customer_id}/wallet")
        assert wallet.status_code == 200, wallet.text
        recon = api.get(f"/customers/{tenant.customer_id}/wallet/reconciliation").json()
        jobs = api.get("/jobs", params={"customer_id": tenant.customer_id, "limit": 200})
        snap.update(
            balance=wallet.json()["balance_cents"],
            held=wallet.json()["held_cents"],
            ledger=(recon["ledger_balance_cents"], recon["ledger_held_cents"], recon["matches"]),
            jobs=len(jobs.json()["items"]),
        )
    return snap


class Unchanged:
    """``with Unchanged(api, tenant): <bad request>`` asserts the state is identical after."""

    def __init__(self, api: httpx.Client, tenant: Tenant | None = None) -> None:
        self.api = api
        self.tenant = tenant

    def __enter__(self) -> Unchanged:
        self.before = state(self.api, self.tenant)
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is None:
            assert state(self.api, self.tenant) == self.before


def own_connection(server: ServerProcess) -> httpx.Client:
    """A client of its own for requests the server answers without reading their body (413,
    415, routing errors): the server may drop such a connection afterwards, and the shared
    ``api`` client must not be the one to trip over it. Keep-alive after an early answer is
    tested on its own in ``test_connection_stays_usable_after_an_early_error``."""
    return httpx.Client(base_url=server.url, timeout=30)


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def tenant(api: httpx.Client) -> Tenant:
    """A fresh funded tenant per test, so nothing one test leaves behind can move another's
    wallet while it is being compared."""
    return create_tenant(api, balance_cents=10_000)


@pytest.fixture(scope="module")
def echo_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=10)


@pytest.fixture(scope="module")
def sleep_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-sleep", cost=10)


@pytest.fixture
def job_body(tenant: Tenant, echo_type: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": tenant.customer_id,
        "job_type_id": echo_type["id"],
        "input_data": {"hello": "world"},
    }


# --- POST /jobs: body syntax, media type, size ----------------------------------------------------
def test_malformed_json_is_400(api, tenant, job_body):
    raw = json.dumps(job_body)[:-5].encode()
    with Unchanged(api, tenant):
        response = api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert_error(response, 400, "malformed_json")


def test_empty_body_is_400(api, tenant):
    with Unchanged(api, tenant):
        response = api.post("/jobs", content=b"", headers={"Content-Type": "application/json"})
        assert_error(response, 400, "malformed_json")


def test_body_that_is_an_array_is_422(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=[job_body])
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["body"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api, server, tenant, job_body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    with Unchanged(api, tenant), own_connection(server) as client:
        response = client.post("/jobs", content=json.dumps(job_body).encode(), headers=headers)
        assert_error(response, 415, "unsupported_media_type")


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str]] | None:
    """One HTTP/1.1 response from a raw socket: (status, headers), or None if the server closed
    the connection without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return None
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(":", 1) for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/job-types", 415),  # refused by the body reader
        (b"/artifacts?name=a.txt", 422),  # a service error raised by a handler
        (b"/jobs/00000000-0000-4000-8000-00000000dead/cancel", 404),  # a route reading no body
    ],
)
def test_connection_stays_usable_after_an_early_error(server, target, status):
    """A client that keeps its connection alive must not be surprised on its next request after
    an error answered before the body was read. The server either reads the body before
    answering and keeps the connection, or answers early and says ``Connection: close``;
    answering early and then silently dropping the connection makes the client's next request
    fail with "server disconnected"."""
    host, port = server.url.removeprefix("http://").split(":")
    body = b"name=x"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % (target, len(body))
        )
        # The body follows separately, as clients often send it (a second write/packet).
        sock.settimeout(1)
        try:
            first = _read_response(sock)  # an early answer, before the body was sent
        except TimeoutError:
            first = None  # the server waits for the body: also fine
        sock.settimeout(10)
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if first is None:
            first = _read_response(sock)
        assert first is not None and first[0] == status, first
        if "close" in first[1].get("connection", "").lower():
            return  # the client was told not to reuse the connection
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pytest.fail(f"connection dropped after a {status} without Connection: close")
        second = _read_response(sock)
        assert second is not None, f"connection dropped after a {status} without Connection: close"
        assert second[0] == 200


def test_json_with_charset_is_accepted(api, tenant, job_body):
    response = api.post(
        "/jobs",
        content=json.dumps(job_body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


def test_body_over_one_mebibyte_is_413(api, server, tenant, job_body):
    body = {**job_body, "input_data": {"blob": "x" * 1_100_000}}
    raw = json.dumps(body).encode()
    assert len(raw) > 1024 * 1024
    with Unchanged(api, tenant), own_connection(server) as client:
        response = client.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert_error(response, 413, "payload_too_large")


# --- POST /jobs: shape ----------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["customer_id", "job_type_id", "input_data"])
def test_missing_required_field_is_422_naming_it(api, tenant, job_body, missing):
    body = {k: v for k, v in job_body.items() if k != missing}
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=body)
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == [missing]
    assert missing in error["message"]


def test_all_required_fields_missing_are_each_named(api, tenant):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={})
        error = assert_error(response, 422, "validation_error")
    assert sorted(detail_fields(error)) == ["customer_id", "input_data", "job_type_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "abc"),
        ("customer_id", 12345),
        ("job_type_id", "not-a-uuid"),
        ("project_id", "abc"),
        ("input_data", "a string"),
        ("input_data", [1, 2, 3]),
        ("input_data", None),
        ("priority", "urgent"),
        ("priority", 1),
        ("run_at", "tomorrow"),
        ("run_at", "2030-01-01T00:00:00"),  # no timezone: ambiguous, refused
    ],
)
def test_mistyped_field_is_422_naming_it(api, tenant, job_body, field, value):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, field: value})
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == [field], error


def test_unknown_extra_field_is_422(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, "colour": "red"})
        error = assert_error(response, 422, "validation_error", ("colour",))
    assert detail_fields(error) == ["colour"]


# --- POST /jobs: references ----------------------------------------------------------------------
def test_unknown_customer_is_404(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, "customer_id": str(uuid.uuid4())})
        error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["customer_id"]


def test_unknown_job_type_is_404(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, "job_type_id": str(uuid.uuid4())})
        error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["job_type_id"]


def test_unknown_project_is_404(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, "project_id": str(uuid.uuid4())})
        error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["project_id"]


def test_project_of_another_customer_is_404(api, tenant, job_body):
    other = create_tenant(api, balance_cents=0)
    with Unchanged(api, tenant), Unchanged(api, other):
        response = api.post("/jobs", json={**job_body, "project_id": other.project_id})
        error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["project_id"]


def test_disabled_job_type_is_409(api, tenant):
    disabled = create_job_type(api, "test-echo", cost=10, enabled=False)
    assert disabled["enabled"] is False
    body = {"customer_id": tenant.customer_id, "job_type_id": disabled["id"], "input_data": {}}
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=body)
        error = assert_error(response, 409, "conflict")
    assert detail_fields(error) == ["job_type_id"]


def test_insufficient_funds_is_402(api):
    poor = create_tenant(api, balance_cents=99, credit_limit_cents=0)
    pricey = create_job_type(api, "test-echo", cost=100)
    body = {"customer_id": poor.customer_id, "job_type_id": pricey["id"], "input_data": {}}
    with Unchanged(api, poor):
        response = api.post("/jobs", json=body)
        error = assert_error(response, 402, "insufficient_funds")
    assert "100" in error["message"]
    assert detail_fields(error) == ["customer_id"]


def test_credit_limit_counts_but_not_beyond_it(api):
    tenant = create_tenant(api, balance_cents=50, credit_limit_cents=49)
    pricey = create_job_type(api, "test-echo", cost=100)
    body = {"customer_id": tenant.customer_id, "job_type_id": pricey["id"], "input_data": {}}
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=body)
        assert_error(response, 402, "insufficient_funds")


@pytest.mark.parametrize(
    ("input_data", "field"),
    [
        ({"seconds": -1}, "input_data.seconds"),
        ({"seconds": 3601}, "input_data.seconds"),
        ({"seconds": "soon"}, "input_data.seconds"),
        ({}, "input_data.seconds"),
    ],
)
def test_input_failing_the_processor_model_is_422(api, tenant, sleep_type, input_data, field):
    body = {
        "customer_id": tenant.customer_id,
        "job_type_id": sleep_type["id"],
        "input_data": input_data,
    }
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=body)
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == [field]
    assert all(f.startswith("input_data") for f in detail_fields(error))


# --- POST /jobs: hostile but syntactically plausible input --------------------------------------
def test_deeply_nested_json_is_refused_not_a_500(api, tenant):
    raw = b'{"input_data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with Unchanged(api, tenant):
        response = api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_malformed(api, tenant, job_body, constant):
    """NaN/Infinity are a Python extension, not JSON (RFC 8259): PostgreSQL refuses them and a
    client could not parse the job back."""
    raw = json.dumps({**job_body, "input_data": {"x": 1.5}}).replace("1.5", constant).encode()
    with Unchanged(api, tenant):
        response = api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        assert_error(response, 400, "malformed_json")


def test_nul_character_in_input_data_is_422(api, tenant, job_body):
    """U+0000 cannot be stored in PostgreSQL text/JSONB: refuse it on every backend alike."""
    with Unchanged(api, tenant):
        response = api.post("/jobs", json={**job_body, "input_data": {"text": "a\u0000b"}})
        error = assert_error(response, 422, "validation_error")
    assert all(f.startswith("input_data") for f in detail_fields(error)), error
    assert detail_fields(error)


def test_lone_surrogate_in_input_data_is_422(api, tenant, job_body):
    raw = json.dumps({**job_body, "input_data": {"text": "\ud800"}}).encode()
    assert b"\\ud800" in raw
    with Unchanged(api, tenant):
        response = api.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
        error = assert_error(response, 422, "validation_error")
    assert all(f.startswith("input_data") for f in detail_fields(error)), error
    assert detail_fields(error)


def test_nul_character_in_a_name_is_422(api):
    with Unchanged(api):
        response = api.post("/resellers", json={"name": "bad\u0000name"})
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["name"]


# --- Idempotency-Key ------------------------------------------------------------------------------
def test_idempotency_key_longer_than_255_is_422(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=job_body, headers={"Idempotency-Key": "k" * 256})
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["Idempotency-Key"]


def test_empty_idempotency_key_is_422(api, tenant, job_body):
    with Unchanged(api, tenant):
        response = api.post("/jobs", json=job_body, headers={"Idempotency-Key": ""})
        assert_error(response, 422, "validation_error", ("Idempotency-Key",))


def test_idempotency_key_of_255_characters_is_accepted(api, tenant, job_body):
    body = {**job_body, "run_at": later()}
    response = api.post("/jobs", json=body, headers={"Idempotency-Key": "k" * 255})
    assert response.status_code == 201, response.text


def test_same_key_same_body_returns_the_same_job_and_charges_once(api, tenant, job_body):
    # Scheduled an hour ahead, so the hold stays visible (nothing runs and captures meanwhile).
    body = {**job_body, "run_at": later()}
    key = f"order-{uuid.uuid4()}"
    before = state(api, tenant)

    first = api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    second = api.post("/jobs", json=body, headers={"Idempotency-Key": key})

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["cost_cents"] == 10
    after = state(api, tenant)
    assert after["jobs"] == before["jobs"] + 1
    assert after["held"] == before["held"] + 10
    assert after["balance"] == before["balance"]
    assert after["ledger"] == (before["balance"], before["held"] + 10, True)


def test_same_key_different_body_is_409(api, tenant, job_body):
    key = f"order-{uuid.uuid4()}"
    body = {**job_body, "run_at": later()}
    first = api.post("/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text

    with Unchanged(api, tenant):
        response = api.post(
            "/jobs",
            json={**body, "input_data": {"hello": "someone else"}},
            headers={"Idempotency-Key": key},
        )
        error = assert_error(response, 409, "conflict")
    assert detail_fields(error) == ["Idempotency-Key"]


def test_idempotency_keys_are_per_customer(api, tenant, job_body, echo_type):
    other = create_tenant(api, balance_cents=1_000)
    key = f"shared-{uuid.uuid4()}"
    mine = api.post("/jobs", json={**job_body, "run_at": later()}, headers={"Idempotency-Key": key})
    theirs = api.post(
        "/jobs",
        json={
            "customer_id": other.customer_id,
            "job_type_id": echo_type["id"],
            "input_data": {},
            "run_at": later(),
        },
        headers={"Idempotency-Key": key},
    )
    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 201, theirs.text
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["customer_id"] == other.customer_id


# --- paths and methods ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/jobs/not-a-uuid",
        f"/jobs/{uuid.uuid4()}",
        f"/jobs/{uuid.uuid4()}/events",
        f"/customers/{uuid.uuid4()}",
        f"/customers/{uuid.uuid4()}/wallet",
        f"/customers/{uuid.uuid4()}/wallet/reconciliation",
        f"/resellers/{uuid.uuid4()}",
        f"/projects/{uuid.uuid4()}",
        f"/job-types/{uuid.uuid4()}",
        "/job-types/not-a-uuid",
        "/no/such/route",
    ],
)
def test_unknown_resource_is_404_envelope(api, path):
    assert_error(api.get(path), 404, "not_found")


def test_cancel_unknown_job_is_404(api):
    with Unchanged(api):
        response = api.post(f"/jobs/{uuid.uuid4()}/cancel")
        assert_error(response, 404, "not_found")


def test_top_up_for_unknown_customer_is_404(api):
    with Unchanged(api):
        response = api.post(f"/customers/{uuid.uuid4()}/wallet/top-ups", json={"amount_cents": 5})
        assert_error(response, 404, "not_found")


def test_wrong_method_is_405_envelope(api):
    response = api.delete("/health")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers.get("Allow", "")


def test_wrong_method_on_a_collection_is_405(server):
    with own_connection(server) as client:
        assert_error(client.put("/jobs", json={}), 405, "method_not_allowed")


# --- POST /job-types ------------------------------------------------------------------------------
def job_type_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": f"bad input {uuid.uuid4().hex[:6]}",
        "description": "",
        "processing_logic_id": "test-echo",
        "processor_type": "async",
        "standard_cost_cents": 10,
        "enabled": True,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_job_type_for_unknown_processor_is_422_listing_installed(api):
    with Unchanged(api):
        response = api.post("/job-types", json=job_type_body(processing_logic_id="no-such-v9"))
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["processing_logic_id"]
    assert "no-such-v9" in error["message"]
    for logic_id in TEST_LOGIC_IDS:
        assert logic_id in error["message"]


@pytest.mark.parametrize("processor_type", ["sync", "batch"])
def test_job_type_with_mismatching_processor_type_is_422(api, processor_type):
    with Unchanged(api):
        response = api.post("/job-types", json=job_type_body(processor_type=processor_type))
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["processor_type"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("standard_cost_cents", "100"),
        ("standard_cost_cents", -1),
        ("standard_cost_cents", 1.5),
        ("standard_cost_cents", None),
        ("standard_cost_cents", ...),
        ("name", ...),
        ("name", ""),
        ("name", 5),
        ("processing_logic_id", ...),
        ("processor_type", "realtime"),
        ("enabled", "yes"),
        ("max_attempts", 0),
        ("timeout_seconds", 0),
        ("project_id", "abc"),
        ("owner", "me"),
    ],
)
def test_job_type_with_bad_field_is_422(api, field, value):
    with Unchanged(api):
        response = api.post("/job-types", json=job_type_body(**{field: value}))
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == [field], error


def test_job_type_for_unknown_project_is_404(api):
    with Unchanged(api):
        response = api.post("/job-types", json=job_type_body(project_id=str(uuid.uuid4())))
        error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["project_id"]


def test_job_type_body_must_be_json(api, server):
    with Unchanged(api), own_connection(server) as client:
        response = client.post(
            "/job-types", content=b"name=x", headers={"Content-Type": "text/plain"}
        )
        assert_error(response, 415, "unsupported_media_type")


# --- customers and wallets ------------------------------------------------------------------------
def test_duplicate_email_differing_only_in_case_is_409(api):
    reseller = api.post("/resellers", json={"name": "dup"}).json()
    local = f"Dup.{uuid.uuid4().hex[:8]}"
    first = api.post(
        "/customers",
        json={"reseller_id": reseller["id"], "name": "one", "email": f"{local}@Example.com"},
    )
    assert first.status_code == 201, first.text

    response = api.post(
        "/customers",
        json={
            "reseller_id": reseller["id"],
            "name": "two",
            "email": f"{local.upper()}@EXAMPLE.COM",
        },
    )
    error = assert_error(response, 409, "conflict")
    assert detail_fields(error) == ["email"]
    # The first customer is untouched.
    again = api.get(f"/customers/{first.json()['id']}").json()
    assert again["name"] == "one"
    assert again["email"] == f"{local.lower()}@example.com"


@pytest.mark.parametrize(
    "email", ["not-an-email", "alice@localhost", "a b@example.com", "@example.com", "x@", 42]
)
def test_invalid_email_is_422(api, email):
    reseller = api.post("/resellers", json={"name": "bad email"}).json()
    response = api.post(
        "/customers", json={"reseller_id": reseller["id"], "name": "x", "email": email}
    )
    error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["email"]


def test_customer_for_unknown_reseller_is_404(api):
    response = api.post(
        "/customers",
        json={"reseller_id": str(uuid.uuid4()), "name": "x", "email": "orphan@example.com"},
    )
    error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["reseller_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("currency", "EURO"), ("currency", "€€€"), ("credit_limit_cents", -1), ("name", "")],
)
def test_customer_with_bad_field_is_422(api, field, value):
    reseller = api.post("/resellers", json={"name": "bad customer"}).json()
    body = {"reseller_id": reseller["id"], "name": "x", "email": f"{uuid.uuid4().hex}@example.com"}
    response = api.post("/customers", json={**body, field: value})
    error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == [field]


def test_project_for_unknown_customer_is_404(api):
    response = api.post("/projects", json={"customer_id": str(uuid.uuid4()), "name": "p"})
    error = assert_error(response, 404, "not_found")
    assert detail_fields(error) == ["customer_id"]


@pytest.mark.parametrize(
    "amount",
    [0, -1, -500, 1.5, "10", None, True, 1_000_000_001, 10**20],
)
def test_invalid_top_up_is_422_and_wallet_unchanged(api, tenant, amount):
    with Unchanged(api, tenant):
        response = api.post(
            f"/customers/{tenant.customer_id}/wallet/top-ups", json={"amount_cents": amount}
        )
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["amount_cents"]


def test_top_up_without_amount_is_422(api, tenant):
    with Unchanged(api, tenant):
        response = api.post(f"/customers/{tenant.customer_id}/wallet/top-ups", json={})
        error = assert_error(response, 422, "validation_error")
    assert detail_fields(error) == ["amount_cents"]


# --- GET /jobs query parameters -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": "PENDING"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"job_type_id": "abc"}, "job_type_id"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
    ],
)
def test_bad_list_parameter_is_422(api, params, field):
    error = assert_error(api.get("/jobs", params=params), 422, "validation_error")
    assert detail_fields(error) == [field]


# --- contract tightening (lead) -----------------------------------------------------------------
def test_run_at_as_unix_number_is_422(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-echo", cost=1)
    response = api.post(
        "/jobs",
        json={
            "customer_id": tenant.customer_id,
            "job_type_id": job_type["id"],
            "input_data": {},
            "run_at": 1893456000,
        },
    )
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == ["run_at"]


def test_idempotency_fingerprint_ignores_the_utc_offset_spelling(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-echo", cost=1)
    body = {"customer_id": tenant.customer_id, "job_type_id": job_type["id"], "input_data": {}}
    headers = {"Idempotency-Key": "offset-spelling"}
    first = api.post("/jobs", json={**body, "run_at": "2099-01-01T12:00:00Z"}, headers=headers)
    again = api.post("/jobs", json={**body, "run_at": "2099-01-01T13:00:00+01:00"}, headers=headers)
    assert first.status_code == 201 and again.status_code == 201, again.text
    assert first.json()["id"] == again.json()["id"]


def test_backoff_base_above_max_is_422(api):
    response = api.post(
        "/job-types",
        json={
            "name": "bad backoff",
            "processing_logic_id": "test-echo",
            "processor_type": "async",
            "standard_cost_cents": 1,
            "backoff_base_ms": 5000,
            "backoff_max_ms": 1000,
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "backoff_max_ms"


def test_cursor_with_naive_time_is_422(api):
    import base64

    cursor = base64.urlsafe_b64encode(f"2030-01-01T00:00:00|{uuid.uuid4()}".encode()).decode()
    response = api.get("/jobs", params={"cursor": cursor.rstrip("=")})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "cursor"
