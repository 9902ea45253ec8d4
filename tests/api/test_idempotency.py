"""``Idempotency-Key`` on POST /jobs, POST …/wallet/top-ups and POST …/wallet/adjustments
(docs/API.md, "Idempotency"): a retry replays the first answer and has no second effect, a
reused key with another request is 409, keys are per customer, failures are not recorded, and
concurrent retries of one key produce exactly one effect."""

from __future__ import annotations

import string
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from helpers import (
    all_jobs,
    assert_reconciled,
    create_job_type,
    later,
    wait_for_status,
    wallet_of,
)

ROUTES = ("jobs", "top-up", "adjustment")
REPLAYED = "Idempotent-Replayed"
COST = 30
# one fixed time (well ahead) so that retries built later send the very same body
RUN_AT = later(hours=6)


# --- helpers ------------------------------------------------------------------------------------
def new_customer(api: httpx.Client, balance_cents: int = 0, **extra: Any) -> str:
    suffix = uuid.uuid4().hex[:10]
    reseller = api.post("/resellers", json={"name": f"R {suffix}"})
    assert reseller.status_code == 201, reseller.text
    customer = api.post(
        "/customers",
        json={
            "reseller_id": reseller.json()["id"],
            "name": f"C {suffix}",
            "email": f"idem-{suffix}@example.com",
            **extra,
        },
    )
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    if balance_cents:
        top = api.post(
            f"/customers/{customer_id}/wallet/top-ups", json={"amount_cents": balance_cents}
        )
        assert top.status_code == 201, top.text
    return customer_id


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


def request_for(
    route: str, customer_id: str, job_type_id: str, n: int = 1
) -> tuple[str, dict[str, Any]]:
    """(path, body) of one request of ``route``; a different ``n`` is a different body."""
    if route == "jobs":
        body = {
            "customer_id": customer_id,
            "job_type_id": job_type_id,
            "input_data": {"n": n},
            "run_at": RUN_AT,  # stays pending: its hold stays visible
        }
        return "/jobs", body
    if route == "top-up":
        return f"/customers/{customer_id}/wallet/top-ups", {
            "amount_cents": 100 * n,
            "reference": "idempotent top-up",
        }
    return f"/customers/{customer_id}/wallet/adjustments", {
        "amount_cents": 7 * n,
        "reason": "idempotent adjustment",
    }


def post(
    api: httpx.Client, path: str, body: dict[str, Any], key: str | bytes | None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post(path, json=body, headers=headers)


def ledger(api: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/customers/{customer_id}/wallet/transactions", params=params)
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rows


def effects(api: httpx.Client, customer_id: str) -> dict[str, Any]:
    """Everything a request of any of the three routes can change for one customer."""
    wallet = wallet_of(api, customer_id)
    rows = ledger(api, customer_id)
    return {
        "balance": wallet["balance_cents"],
        "held": wallet["held_cents"],
        "ledger": [(r["kind"], r["amount_cents"], r["held_delta_cents"]) for r in rows],
        "jobs": sorted(j["id"] for j in all_jobs(api, customer_id)),
    }


def one_effect(route: str, before: dict[str, Any], after: dict[str, Any], n: int = 1) -> None:
    """``after`` is ``before`` plus exactly one effect of ``request_for(route, ..., n)``."""
    if route == "jobs":
        assert len(after["jobs"]) == len(before["jobs"]) + 1, (before, after)
        assert after["ledger"] == [("hold", 0, COST), *before["ledger"]]
        assert (after["balance"], after["held"]) == (before["balance"], before["held"] + COST)
    elif route == "top-up":
        assert after["ledger"] == [("top_up", 100 * n, 0), *before["ledger"]]
        assert (after["balance"], after["held"]) == (before["balance"] + 100 * n, before["held"])
        assert after["jobs"] == before["jobs"]
    else:
        assert after["ledger"] == [("adjustment", 7 * n, 0), *before["ledger"]]
        assert (after["balance"], after["held"]) == (before["balance"] + 7 * n, before["held"])
        assert after["jobs"] == before["jobs"]


def is_replay(response: httpx.Response) -> bool:
    return response.headers.get(REPLAYED, "").lower() == "true"


def expect_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return body["error"]


@pytest.fixture(scope="module")
def job_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=COST)


# --- replays --------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
def test_same_key_and_request_replays_the_first_response_with_one_effect(api, job_type, route):
    customer_id = new_customer(api, balance_cents=1_000)
    path, body = request_for(route, customer_id, job_type["id"])
    key = new_key()
    before = effects(api, customer_id)

    first = post(api, path, body, key)
    assert first.status_code == 201, first.text
    assert not is_replay(first)
    for _ in range(2):
        again = post(api, path, body, key)
        assert again.status_code == first.status_code, again.text
        assert again.json() == first.json()
        assert again.headers.get(REPLAYED) == "true", dict(again.headers)
    one_effect(route, before, effects(api, customer_id))
    assert_reconciled(api, customer_id)


@pytest.mark.parametrize("route", ROUTES)
def test_without_a_key_every_request_has_its_effect(api, job_type, route):
    customer_id = new_customer(api, balance_cents=1_000)
    path, body = request_for(route, customer_id, job_type["id"])
    before = effects(api, customer_id)
    first, second = post(api, path, body, None), post(api, path, body, None)
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert not is_replay(first) and not is_replay(second)
    assert first.json() != second.json()
    after = effects(api, customer_id)
    kind = {"jobs": "hold", "top-up": "top_up", "adjustment": "adjustment"}[route]
    assert [row[0] for row in after["ledger"][:2]] == [kind, kind]
    assert after["ledger"][2:] == before["ledger"]
    if route == "jobs":
        assert len(after["jobs"]) == len(before["jobs"]) + 2
        assert after["held"] == before["held"] + 2 * COST
    else:
        step = 100 if route == "top-up" else 7
        assert after["balance"] == before["balance"] + 2 * step


def test_top_up_replay_answers_the_first_body_even_after_the_wallet_moved(api, job_type):
    customer_id = new_customer(api)
    path, body = request_for("top-up", customer_id, job_type["id"])
    key = new_key()
    first = post(api, path, body, key)
    assert first.status_code == 201, first.text
    assert first.json()["balance_cents"] == 100
    other = post(api, path, {"amount_cents": 50}, None)
    assert other.status_code == 201 and other.json()["balance_cents"] == 150

    replay = post(api, path, body, key)
    assert replay.status_code == 201
    assert replay.json() == first.json()  # the stored answer, balance 100
    assert is_replay(replay)
    assert wallet_of(api, customer_id)["balance_cents"] == 150
    assert [r["kind"] for r in ledger(api, customer_id)] == ["top_up", "top_up"]


def test_job_replay_answers_the_first_body_after_the_job_finished(api, job_type):
    customer_id = new_customer(api, balance_cents=1_000)
    body = {"customer_id": customer_id, "job_type_id": job_type["id"], "input_data": {"a": 1}}
    key = new_key()
    first = post(api, "/jobs", body, key)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "pending"
    assert wait_for_status(api, first.json()["id"])["status"] == "succeeded"

    replay = post(api, "/jobs", body, key)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert is_replay(replay)
    assert [j["id"] for j in all_jobs(api, customer_id)] == [first.json()["id"]]
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000 - COST, 0)


# --- conflicts and scope --------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
def test_same_key_with_another_body_is_409_and_changes_nothing(api, job_type, route):
    customer_id = new_customer(api, balance_cents=1_000)
    path, body = request_for(route, customer_id, job_type["id"], n=1)
    _, other_body = request_for(route, customer_id, job_type["id"], n=2)
    key = new_key()
    first = post(api, path, body, key)
    assert first.status_code == 201, first.text
    before = effects(api, customer_id)

    expect_error(post(api, path, other_body, key), 409, "conflict")
    assert effects(api, customer_id) == before
    # the key still belongs to the first request
    replay = post(api, path, body, key)
    assert replay.status_code == 201 and replay.json() == first.json() and is_replay(replay)
    assert effects(api, customer_id) == before


def test_same_key_on_another_route_of_the_same_customer_is_409(api, job_type):
    customer_id = new_customer(api, balance_cents=1_000)
    key = new_key()
    path, body = request_for("top-up", customer_id, job_type["id"])
    assert post(api, path, body, key).status_code == 201
    before = effects(api, customer_id)
    for route in ("adjustment", "jobs"):
        other_path, other_body = request_for(route, customer_id, job_type["id"])
        expect_error(post(api, other_path, other_body, key), 409, "conflict")
    assert effects(api, customer_id) == before


@pytest.mark.parametrize("route", ROUTES)
def test_keys_are_scoped_per_customer(api, job_type, route):
    first_customer = new_customer(api, balance_cents=1_000)
    second_customer = new_customer(api, balance_cents=1_000)
    key = new_key()
    before = [effects(api, c) for c in (first_customer, second_customer)]

    answers = []
    for customer_id in (first_customer, second_customer):
        path, body = request_for(route, customer_id, job_type["id"])
        response = post(api, path, body, key)
        assert response.status_code == 201, response.text
        assert not is_replay(response)
        answers.append(response.json())
    assert answers[0] != answers[1]
    for customer_id, state in zip((first_customer, second_customer), before, strict=True):
        one_effect(route, state, effects(api, customer_id))


# --- key syntax -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "k" * 256,
        "",
        "tab\tinside",
        "bell\x07",
        "del\x7f",
        "esc\x1b[0m",
        "caf\xc3\xa9".encode("latin-1"),
    ],
    ids=["256-chars", "empty", "tab", "bell", "del", "escape", "non-ascii"],
)
@pytest.mark.parametrize("route", ROUTES)
def test_bad_key_is_422_and_changes_nothing(api, job_type, route, key):
    customer_id = new_customer(api, balance_cents=1_000)
    path, body = request_for(route, customer_id, job_type["id"])
    before = effects(api, customer_id)
    error = expect_error(post(api, path, body, key), 422, "validation_error")
    assert "Idempotency-Key" in {d["field"] for d in error["details"]}, error
    assert effects(api, customer_id) == before


@pytest.mark.parametrize(
    "key",
    ["k" * 255, "x", string.ascii_letters + string.digits + string.punctuation],
    ids=["255-chars", "one-char", "all-printable"],
)
def test_longest_shortest_and_punctuated_keys_are_accepted(api, job_type, key):
    customer_id = new_customer(api)
    path, body = request_for("top-up", customer_id, job_type["id"])
    first = post(api, path, body, key)
    assert first.status_code == 201, first.text
    replay = post(api, path, body, key)
    assert replay.status_code == 201 and replay.json() == first.json() and is_replay(replay)
    assert wallet_of(api, customer_id)["balance_cents"] == 100


# --- failures are not recorded --------------------------------------------------------------------
def test_a_refused_job_is_not_recorded_and_its_key_works_after_a_top_up(api, job_type):
    customer_id = new_customer(api)
    body = {"customer_id": customer_id, "job_type_id": job_type["id"], "input_data": {"z": 1}}
    key = new_key()
    expect_error(post(api, "/jobs", body, key), 402, "insufficient_funds")
    expect_error(post(api, "/jobs", body, key), 402, "insufficient_funds")  # ran again, no replay
    assert all_jobs(api, customer_id) == []

    topped = post(api, f"/customers/{customer_id}/wallet/top-ups", {"amount_cents": 100}, None)
    assert topped.status_code == 201, topped.text
    retry = post(api, "/jobs", body, key)
    assert retry.status_code == 201, retry.text
    assert not is_replay(retry)
    replay = post(api, "/jobs", body, key)
    assert replay.status_code == 201 and replay.json() == retry.json() and is_replay(replay)
    assert [j["id"] for j in all_jobs(api, customer_id)] == [retry.json()["id"]]


def test_a_refused_adjustment_is_not_recorded(api, job_type):
    customer_id = new_customer(api, balance_cents=100)
    path = f"/customers/{customer_id}/wallet/adjustments"
    body = {"amount_cents": -300, "reason": "fee"}
    key = new_key()
    expect_error(post(api, path, body, key), 402, "insufficient_funds")
    topped = post(api, f"/customers/{customer_id}/wallet/top-ups", {"amount_cents": 500}, None)
    assert topped.status_code == 201, topped.text
    retry = post(api, path, body, key)
    assert retry.status_code == 201, retry.text
    assert not is_replay(retry)
    assert retry.json()["balance_cents"] == 300
    assert post(api, path, body, key).json() == retry.json()
    assert wallet_of(api, customer_id)["balance_cents"] == 300


def test_an_invalid_request_is_not_recorded_so_the_key_takes_a_corrected_body(api, job_type):
    customer_id = new_customer(api)
    path = f"/customers/{customer_id}/wallet/top-ups"
    key = new_key()
    expect_error(post(api, path, {"amount_cents": 0}, key), 422, "validation_error")
    fixed = post(api, path, {"amount_cents": 250}, key)
    assert fixed.status_code == 201, fixed.text
    assert not is_replay(fixed)
    assert wallet_of(api, customer_id)["balance_cents"] == 250

    # a 404 on POST /jobs (unknown job type) does not bind the key either
    job_key = new_key()
    ghost = {"customer_id": customer_id, "job_type_id": str(uuid.uuid4()), "input_data": {}}
    expect_error(post(api, "/jobs", ghost, job_key), 404, "not_found")
    real = {"customer_id": customer_id, "job_type_id": job_type["id"], "input_data": {}}
    accepted = post(api, "/jobs", real, job_key)
    assert accepted.status_code == 201, accepted.text
    assert not is_replay(accepted)


# --- concurrent retries ---------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
def test_concurrent_retries_of_one_key_have_exactly_one_effect(api, server, job_type, route):
    n = 20
    customer_id = new_customer(api, balance_cents=1_000)
    path, body = request_for(route, customer_id, job_type["id"])
    key = new_key()
    before = effects(api, customer_id)
    barrier = threading.Barrier(n)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/health")  # connect before the race starts
            barrier.wait()
            return post(client, path, body, key)

    with ThreadPoolExecutor(max_workers=n) as pool:
        responses = list(pool.map(send, range(n)))

    assert [r.status_code for r in responses] == [201] * n, [r.text for r in responses][:3]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies), bodies
    assert sum(not is_replay(r) for r in responses) == 1
    assert sum(is_replay(r) for r in responses) == n - 1
    one_effect(route, before, effects(api, customer_id))
    assert_reconciled(api, customer_id)
