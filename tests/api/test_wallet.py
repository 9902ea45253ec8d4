"""The wallet routes of docs/API.md ("Wallets"): reading a wallet, top-ups, adjustments, the
credit limit, the paginated ledger and reconciliation, over real HTTP against the shared server.

Every test makes its own customer, so the wallets and ledgers it compares are its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from helpers import (
    assert_reconciled,
    create_job_type,
    later,
    submit,
    wait_for_status,
    wallet_of,
)

WALLET_FIELDS = {
    "id",
    "customer_id",
    "currency",
    "balance_cents",
    "held_cents",
    "credit_limit_cents",
    "open_to_buy_cents",
}
ROW_FIELDS = {
    "kind",
    "amount_cents",
    "held_delta_cents",
    "balance_after_cents",
    "held_after_cents",
    "job_id",
    "reference",
    "created_at",
}
KINDS = ("top_up", "hold", "capture", "release", "adjustment", "credit_limit")
MISSING = "00000000-0000-4000-8000-00000000dead"


# --- helpers ------------------------------------------------------------------------------------
def new_customer(api: httpx.Client, **extra: Any) -> dict[str, Any]:
    """A fresh reseller and customer (its wallet empty); ``extra`` goes into the customer body
    (``currency``, ``credit_limit_cents``)."""
    suffix = uuid.uuid4().hex[:10]
    reseller = api.post("/resellers", json={"name": f"R {suffix}"})
    assert reseller.status_code == 201, reseller.text
    customer = api.post(
        "/customers",
        json={
            "reseller_id": reseller.json()["id"],
            "name": f"C {suffix}",
            "email": f"w-{suffix}@example.com",
            **extra,
        },
    )
    assert customer.status_code == 201, customer.text
    return customer.json()


def top_up(api: httpx.Client, customer_id: str, amount: Any, **extra: Any) -> httpx.Response:
    return api.post(
        f"/customers/{customer_id}/wallet/top-ups", json={"amount_cents": amount, **extra}
    )


def adjust(api: httpx.Client, customer_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/customers/{customer_id}/wallet/adjustments", json=body)


def set_credit(api: httpx.Client, customer_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.patch(f"/customers/{customer_id}/wallet", json=body)


def funded(api: httpx.Client, amount: int, **extra: Any) -> str:
    customer_id = new_customer(api, **extra)["id"]
    response = top_up(api, customer_id, amount)
    assert response.status_code == 201, response.text
    return customer_id


def ledger(api: httpx.Client, customer_id: str, limit: int = 200, **params: Any) -> list[dict]:
    """Every ledger row of a customer (newest first), following ``next_cursor``."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/customers/{customer_id}/wallet/transactions", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}, body
        rows += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


def money(api: httpx.Client, customer_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What a refused request must leave exactly as it was: the wallet and its whole ledger."""
    return wallet_of(api, customer_id), ledger(api, customer_id)


def expect_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    if field is not None:
        assert field in {d["field"] for d in error["details"]}, error
    return error


def otb(wallet: dict[str, Any]) -> int:
    return wallet["balance_cents"] + wallet["credit_limit_cents"] - wallet["held_cents"]


@pytest.fixture(scope="module")
def echo_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=40)


@pytest.fixture(scope="module")
def cheap_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=10)


@pytest.fixture(scope="module")
def fail_type(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-fail-n-times", cost=25, max_attempts=1)


# --- GET wallet -----------------------------------------------------------------------------------
def test_new_wallet_is_empty_and_in_eur_by_default(api):
    customer = new_customer(api)
    response = api.get(f"/customers/{customer['id']}/wallet")
    assert response.status_code == 200, response.text
    wallet = response.json()
    assert set(wallet) == WALLET_FIELDS
    assert str(uuid.UUID(wallet["id"])) == wallet["id"]
    assert wallet["customer_id"] == customer["id"]
    assert wallet["currency"] == "EUR"
    assert (
        wallet["balance_cents"],
        wallet["held_cents"],
        wallet["credit_limit_cents"],
        wallet["open_to_buy_cents"],
    ) == (0, 0, 0, 0)
    assert ledger(api, customer["id"]) == []


def test_wallet_currency_is_chosen_at_customer_creation(api):
    customer_id = funded(api, 1_234, currency="USD", credit_limit_cents=500)
    wallet = wallet_of(api, customer_id)
    assert wallet["currency"] == "USD"
    assert wallet["credit_limit_cents"] == 500
    assert wallet["balance_cents"] == 1_234
    assert wallet["open_to_buy_cents"] == 1_734
    # another customer keeps the default
    assert wallet_of(api, new_customer(api)["id"])["currency"] == "EUR"


def test_open_to_buy_is_balance_plus_credit_limit_minus_held(api, echo_type):
    customer_id = funded(api, 1_000, credit_limit_cents=300)
    job = submit(api, customer_id, echo_type["id"], {"x": 1}, run_at=later())  # stays pending
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["credit_limit_cents"]) == (
        1_000,
        40,
        300,
    )
    assert wallet["open_to_buy_cents"] == 1_000 + 300 - 40 == otb(wallet)
    assert api.post(f"/jobs/{job['id']}/cancel").status_code == 200
    assert wallet_of(api, customer_id)["open_to_buy_cents"] == 1_300


# --- top-ups --------------------------------------------------------------------------------------
def test_top_up_answers_the_wallet_and_its_ledger_row(api):
    customer_id = new_customer(api)["id"]
    response = top_up(api, customer_id, 2_500, reference="invoice 42")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == WALLET_FIELDS | {"transaction"}
    wallet = wallet_of(api, customer_id)
    assert {k: v for k, v in body.items() if k != "transaction"} == wallet
    assert wallet["balance_cents"] == 2_500 and wallet["open_to_buy_cents"] == 2_500

    tx = body["transaction"]
    assert ROW_FIELDS <= set(tx), tx
    assert tx["kind"] == "top_up"
    assert tx["amount_cents"] == 2_500
    assert tx["held_delta_cents"] == 0
    assert tx["balance_after_cents"] == 2_500
    assert tx["held_after_cents"] == 0
    assert tx["job_id"] is None
    assert tx["reference"] == "invoice 42"
    rows = ledger(api, customer_id)
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ROW_FIELDS} == {k: tx[k] for k in ROW_FIELDS}

    second = top_up(api, customer_id, 500)
    assert second.status_code == 201, second.text
    assert second.json()["balance_cents"] == 3_000
    assert second.json()["transaction"]["balance_after_cents"] == 3_000
    assert second.json()["transaction"]["reference"] == ""


@pytest.mark.parametrize("amount", [1, 1_000_000_000], ids=["min", "max"])
def test_top_up_amount_bounds_are_accepted(api, amount):
    customer_id = new_customer(api)["id"]
    response = top_up(api, customer_id, amount)
    assert response.status_code == 201, response.text
    assert wallet_of(api, customer_id)["balance_cents"] == amount


@pytest.mark.parametrize(
    "body",
    [
        {"amount_cents": 0},
        {"amount_cents": -1},
        {"amount_cents": 1.5},
        {"amount_cents": "100"},
        {"amount_cents": True},
        {"amount_cents": 10**12},
        {"amount_cents": 1_000_000_001},
        {"amount_cents": None},
        {},
        {"reference": "no amount"},
    ],
    ids=[
        "zero",
        "negative",
        "float",
        "string",
        "bool",
        "huge",
        "max-plus-one",
        "null",
        "empty",
        "missing",
    ],
)
def test_bad_top_up_amount_is_422_and_changes_nothing(api, body):
    customer_id = funded(api, 700)
    before = money(api, customer_id)
    response = api.post(f"/customers/{customer_id}/wallet/top-ups", json=body)
    expect_error(response, 422, "validation_error", "amount_cents")
    assert money(api, customer_id) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 100, "reference": "x" * 201}, "reference"),
        ({"amount_cents": 100, "reference": 7}, "reference"),
        ({"amount_cents": 100, "balance_cents": 100}, "balance_cents"),
    ],
    ids=["reference-too-long", "reference-not-text", "unknown-field"],
)
def test_bad_top_up_fields_are_422_and_change_nothing(api, body, field):
    customer_id = funded(api, 700)
    before = money(api, customer_id)
    response = api.post(f"/customers/{customer_id}/wallet/top-ups", json=body)
    expect_error(response, 422, "validation_error", field)
    assert money(api, customer_id) == before


def test_top_up_reference_of_200_characters_is_kept(api):
    customer_id = new_customer(api)["id"]
    reference = "r" * 200
    response = top_up(api, customer_id, 10, reference=reference)
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["reference"] == reference
    assert ledger(api, customer_id)[0]["reference"] == reference


# --- adjustments ----------------------------------------------------------------------------------
def test_positive_and_negative_adjustments_move_the_balance_and_are_ledger_rows(api):
    customer_id = funded(api, 1_000)

    credit = adjust(api, customer_id, {"amount_cents": 250, "reason": "goodwill credit"})
    assert credit.status_code == 201, credit.text
    body = credit.json()
    assert set(body) == WALLET_FIELDS | {"transaction"}
    assert body["balance_cents"] == 1_250 and body["open_to_buy_cents"] == 1_250
    assert body["transaction"]["kind"] == "adjustment"
    assert body["transaction"]["amount_cents"] == 250
    assert body["transaction"]["held_delta_cents"] == 0
    assert body["transaction"]["balance_after_cents"] == 1_250
    assert body["transaction"]["job_id"] is None
    assert "goodwill credit" in body["transaction"]["reference"]

    debit = adjust(api, customer_id, {"amount_cents": -400, "reason": "chargeback #7"})
    assert debit.status_code == 201, debit.text
    assert debit.json()["balance_cents"] == 850
    assert debit.json()["transaction"]["amount_cents"] == -400
    assert debit.json()["transaction"]["balance_after_cents"] == 850
    assert {k: v for k, v in debit.json().items() if k != "transaction"} == wallet_of(
        api, customer_id
    )

    rows = ledger(api, customer_id)
    assert [(r["kind"], r["amount_cents"]) for r in rows] == [
        ("adjustment", -400),
        ("adjustment", 250),
        ("top_up", 1_000),
    ]
    assert "chargeback #7" in rows[0]["reference"]
    assert "goodwill credit" in rows[1]["reference"]
    assert_reconciled(api, customer_id)


def test_adjustment_reason_of_200_characters_is_kept_and_201_is_refused(api):
    customer_id = funded(api, 100)
    reason = "because " + "z" * 192
    assert len(reason) == 200
    response = adjust(api, customer_id, {"amount_cents": 1, "reason": reason})
    assert response.status_code == 201, response.text
    assert response.json()["transaction"]["reference"] == reason
    assert ledger(api, customer_id)[0]["reference"] == reason

    too_long = adjust(api, customer_id, {"amount_cents": 1, "reason": reason + "!"})
    assert too_long.status_code == 422, too_long.text
    assert too_long.json()["error"]["details"][0]["field"] == "reason"
    assert len(ledger(api, customer_id)) == 2  # the top-up and the first adjustment only


@pytest.mark.parametrize("amount", [1_000_000_000, -1_000_000_000], ids=["max", "min"])
def test_adjustment_amount_bounds_are_accepted(api, amount):
    customer_id = new_customer(api, credit_limit_cents=1_000_000_000)["id"]
    response = adjust(api, customer_id, {"amount_cents": amount, "reason": "bounds"})
    assert response.status_code == 201, response.text
    assert wallet_of(api, customer_id)["balance_cents"] == amount


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 0, "reason": "nothing"}, "amount_cents"),
        ({"amount_cents": 1.5, "reason": "float"}, "amount_cents"),
        ({"amount_cents": "5", "reason": "string"}, "amount_cents"),
        ({"amount_cents": True, "reason": "bool"}, "amount_cents"),
        ({"amount_cents": 1_000_000_001, "reason": "too big"}, "amount_cents"),
        ({"amount_cents": -1_000_000_001, "reason": "too small"}, "amount_cents"),
        ({"reason": "no amount"}, "amount_cents"),
        ({"amount_cents": 5}, "reason"),
        ({"amount_cents": 5, "reason": ""}, "reason"),
        ({"amount_cents": 5, "reason": None}, "reason"),
        ({"amount_cents": 5, "reason": "r" * 501}, "reason"),
        ({"amount_cents": 5, "reason": "ok", "kind": "top_up"}, "kind"),
    ],
    ids=[
        "zero",
        "float",
        "string",
        "bool",
        "max-plus-one",
        "min-minus-one",
        "amount-missing",
        "reason-missing",
        "reason-empty",
        "reason-null",
        "reason-too-long",
        "unknown-field",
    ],
)
def test_bad_adjustment_is_422_and_changes_nothing(api, body, field):
    customer_id = funded(api, 700)
    before = money(api, customer_id)
    expect_error(adjust(api, customer_id, body), 422, "validation_error", field)
    assert money(api, customer_id) == before


def test_negative_adjustment_below_open_to_buy_is_402_and_changes_nothing(api, echo_type):
    customer_id = funded(api, 100, credit_limit_cents=50)
    submit(api, customer_id, echo_type["id"], {"x": 1}, run_at=later())  # holds 40
    wallet = wallet_of(api, customer_id)
    assert wallet["open_to_buy_cents"] == 100 + 50 - 40 == 110

    before = money(api, customer_id)
    refused = adjust(api, customer_id, {"amount_cents": -111, "reason": "one cent too many"})
    expect_error(refused, 402, "insufficient_funds")
    assert money(api, customer_id) == before

    exact = adjust(api, customer_id, {"amount_cents": -110, "reason": "all of it"})
    assert exact.status_code == 201, exact.text
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["open_to_buy_cents"]) == (
        -10,
        40,
        0,
    )
    expect_error(
        adjust(api, customer_id, {"amount_cents": -1, "reason": "x"}), 402, "insufficient_funds"
    )
    assert_reconciled(api, customer_id)


# --- credit limit ---------------------------------------------------------------------------------
def test_patch_wallet_sets_the_credit_limit_and_writes_a_ledger_row(api):
    customer_id = funded(api, 1_000)
    response = set_credit(
        api, customer_id, {"credit_limit_cents": 5_000, "reason": "trusted account"}
    )
    assert response.status_code == 200, response.text
    wallet = response.json()
    assert set(wallet) == WALLET_FIELDS
    assert wallet["credit_limit_cents"] == 5_000
    assert wallet["balance_cents"] == 1_000
    assert wallet["open_to_buy_cents"] == 6_000
    assert wallet_of(api, customer_id) == wallet

    rows = ledger(api, customer_id)
    assert [r["kind"] for r in rows] == ["credit_limit", "top_up"]
    row = rows[0]
    assert row["amount_cents"] == 0
    assert row["held_delta_cents"] == 0
    assert row["balance_after_cents"] == 1_000
    assert row["job_id"] is None
    assert "5000" in row["reference"] and "trusted account" in row["reference"], row

    # without a reason, back down to zero
    lowered = set_credit(api, customer_id, {"credit_limit_cents": 0})
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["credit_limit_cents"] == 0
    assert lowered.json()["open_to_buy_cents"] == 1_000
    rows = ledger(api, customer_id)
    assert [r["kind"] for r in rows] == ["credit_limit", "credit_limit", "top_up"]
    assert rows[0]["amount_cents"] == 0 and "5000" in rows[0]["reference"]
    assert_reconciled(api, customer_id)


def test_credit_limit_upper_bound_is_accepted(api):
    customer_id = new_customer(api)["id"]
    response = set_credit(api, customer_id, {"credit_limit_cents": 1_000_000_000})
    assert response.status_code == 200, response.text
    assert wallet_of(api, customer_id)["open_to_buy_cents"] == 1_000_000_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"credit_limit_cents": -1}, "credit_limit_cents"),
        ({"credit_limit_cents": 1_000_000_001}, "credit_limit_cents"),
        ({"credit_limit_cents": 1.5}, "credit_limit_cents"),
        ({"credit_limit_cents": "100"}, "credit_limit_cents"),
        ({"credit_limit_cents": None}, "credit_limit_cents"),
        ({}, "credit_limit_cents"),
        ({"balance_cents": 1_000_000}, "balance_cents"),
        ({"credit_limit_cents": 100, "balance_cents": 1_000_000}, "balance_cents"),
        ({"credit_limit_cents": 100, "held_cents": 0}, "held_cents"),
        ({"credit_limit_cents": 100, "currency": "USD"}, "currency"),
        ({"credit_limit_cents": 100, "reason": "r" * 501}, "reason"),
    ],
    ids=[
        "negative",
        "too-big",
        "float",
        "string",
        "null",
        "empty",
        "balance-only",
        "balance-too",
        "held",
        "currency",
        "reason-too-long",
    ],
)
def test_bad_credit_limit_patch_is_422_and_changes_nothing(api, body, field):
    customer_id = funded(api, 700)
    before = money(api, customer_id)
    expect_error(set_credit(api, customer_id, body), 422, "validation_error", field)
    assert money(api, customer_id) == before


def test_credit_limit_lets_jobs_be_submitted_beyond_the_balance(api, cheap_type):
    customer_id = new_customer(api)["id"]
    expect_error(
        api.post(
            "/jobs",
            json={"customer_id": customer_id, "job_type_id": cheap_type["id"], "input_data": {}},
        ),
        402,
        "insufficient_funds",
    )
    assert set_credit(api, customer_id, {"credit_limit_cents": 35}).status_code == 200

    jobs = [submit(api, customer_id, cheap_type["id"], {"i": i}) for i in range(3)]
    fourth = api.post(
        "/jobs",
        json={"customer_id": customer_id, "job_type_id": cheap_type["id"], "input_data": {}},
    )
    expect_error(fourth, 402, "insufficient_funds")
    for job in jobs:
        assert wait_for_status(api, job["id"])["status"] == "succeeded"
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["open_to_buy_cents"]) == (
        -30,
        0,
        5,
    )
    assert_reconciled(api, customer_id)


def test_lowering_the_credit_limit_below_held_is_allowed_and_blocks_new_holds(
    api, echo_type, cheap_type
):
    customer_id = new_customer(api, credit_limit_cents=100)["id"]
    first = submit(api, customer_id, echo_type["id"], {"n": 1}, run_at=later())
    submit(api, customer_id, echo_type["id"], {"n": 2}, run_at=later())
    assert wallet_of(api, customer_id)["held_cents"] == 80

    lowered = set_credit(api, customer_id, {"credit_limit_cents": 50, "reason": "risk review"})
    assert lowered.status_code == 200, lowered.text
    wallet = lowered.json()
    assert (wallet["credit_limit_cents"], wallet["held_cents"]) == (50, 80)
    assert wallet["open_to_buy_cents"] == 0 + 50 - 80 == -30

    before = money(api, customer_id)
    refused = api.post(
        "/jobs",
        json={"customer_id": customer_id, "job_type_id": cheap_type["id"], "input_data": {}},
    )
    expect_error(refused, 402, "insufficient_funds")
    assert money(api, customer_id) == before

    # it recovers once a hold is released
    assert api.post(f"/jobs/{first['id']}/cancel").status_code == 200
    assert wallet_of(api, customer_id)["open_to_buy_cents"] == 10
    job = submit(api, customer_id, cheap_type["id"], {"after": "recovery"})
    assert wait_for_status(api, job["id"])["status"] == "succeeded"
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["open_to_buy_cents"]) == (
        -10,
        40,
        0,
    )
    assert_reconciled(api, customer_id)


# --- transactions ---------------------------------------------------------------------------------
def test_transactions_are_newest_first_paginated_filterable_and_consistent(
    api, cheap_type, fail_type
):
    customer_id = funded(api, 1_000)
    assert adjust(api, customer_id, {"amount_cents": 15, "reason": "bonus"}).status_code == 201
    assert set_credit(api, customer_id, {"credit_limit_cents": 200}).status_code == 200
    ok = submit(api, customer_id, cheap_type["id"], {"ok": True})
    assert wait_for_status(api, ok["id"])["status"] == "succeeded"
    bad = submit(api, customer_id, fail_type["id"], {"failures": 1})
    assert wait_for_status(api, bad["id"])["status"] == "failed"
    assert top_up(api, customer_id, 300, reference="last").status_code == 201

    rows = ledger(api, customer_id)
    expected = [
        ("top_up", 300, 0, None),
        ("release", 0, -25, bad["id"]),
        ("hold", 0, 25, bad["id"]),
        ("capture", -10, -10, ok["id"]),
        ("hold", 0, 10, ok["id"]),
        ("credit_limit", 0, 0, None),
        ("adjustment", 15, 0, None),
        ("top_up", 1_000, 0, None),
    ]
    assert [
        (r["kind"], r["amount_cents"], r["held_delta_cents"], r["job_id"]) for r in rows
    ] == expected
    for row in rows:
        assert ROW_FIELDS <= set(row), row
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)

    # running sums: each row's *_after is the sum of every row up to it
    balance = held = 0
    for row in reversed(rows):
        balance += row["amount_cents"]
        held += row["held_delta_cents"]
        assert (row["balance_after_cents"], row["held_after_cents"]) == (balance, held), row
    wallet = wallet_of(api, customer_id)
    assert (wallet["balance_cents"], wallet["held_cents"]) == (balance, held) == (1_305, 0)

    # small pages give the same rows in the same order, each once
    paged = ledger(api, customer_id, limit=3)
    assert paged == rows
    first_page = api.get(f"/customers/{customer_id}/wallet/transactions", params={"limit": 3})
    assert len(first_page.json()["items"]) == 3 and first_page.json()["next_cursor"]

    # the kind filter
    for kind in KINDS:
        filtered = ledger(api, customer_id, kind=kind)
        assert filtered == [r for r in rows if r["kind"] == kind], kind
    holds = ledger(api, customer_id, kind="hold", limit=1)
    assert [r["job_id"] for r in holds] == [bad["id"], ok["id"]]


@pytest.mark.parametrize("kind", ["bogus", "TOP_UP", "top-up", "hold,capture"])
def test_transactions_bad_kind_is_422(api, kind):
    customer_id = funded(api, 10)
    response = api.get(f"/customers/{customer_id}/wallet/transactions", params={"kind": kind})
    expect_error(response, 422, "validation_error", "kind")


def test_transactions_unknown_query_parameter_is_422(api):
    customer_id = funded(api, 10)
    response = api.get(f"/customers/{customer_id}/wallet/transactions", params={"knd": "hold"})
    expect_error(response, 422, "validation_error")


# --- reconciliation -------------------------------------------------------------------------------
def test_reconciliation_matches_after_a_mix_of_everything(api, cheap_type, fail_type, echo_type):
    customer_id = funded(api, 500, currency="GBP")
    assert top_up(api, customer_id, 250).status_code == 201
    assert adjust(api, customer_id, {"amount_cents": 40, "reason": "promo"}).status_code == 201
    assert adjust(api, customer_id, {"amount_cents": -90, "reason": "fee"}).status_code == 201
    assert set_credit(api, customer_id, {"credit_limit_cents": 1_000}).status_code == 200
    succeeded = [submit(api, customer_id, cheap_type["id"], {"i": i}) for i in range(3)]
    failed = submit(api, customer_id, fail_type["id"], {"failures": 1})
    cancelled = submit(api, customer_id, echo_type["id"], {"later": 1}, run_at=later())
    pending = submit(api, customer_id, echo_type["id"], {"later": 2}, run_at=later())
    assert api.post(f"/jobs/{cancelled['id']}/cancel").status_code == 200
    for job in succeeded:
        assert wait_for_status(api, job["id"])["status"] == "succeeded"
    assert wait_for_status(api, failed["id"])["status"] == "failed"
    assert set_credit(api, customer_id, {"credit_limit_cents": 20}).status_code == 200

    wallet = wallet_of(api, customer_id)
    balance = 500 + 250 + 40 - 90 - 3 * 10
    assert (wallet["balance_cents"], wallet["held_cents"], wallet["credit_limit_cents"]) == (
        balance,
        40,
        20,
    )
    assert wallet["currency"] == "GBP"
    response = api.get(f"/customers/{customer_id}/wallet/reconciliation")
    assert response.status_code == 200, response.text
    recon = response.json()
    assert set(recon) == {
        "wallet_id",
        "balance_cents",
        "held_cents",
        "ledger_balance_cents",
        "ledger_held_cents",
        "matches",
    }
    assert recon == {
        "wallet_id": wallet["id"],
        "balance_cents": balance,
        "held_cents": 40,
        "ledger_balance_cents": balance,
        "ledger_held_cents": 40,
        "matches": True,
    }
    rows = ledger(api, customer_id)
    assert sum(r["amount_cents"] for r in rows) == balance
    assert sum(r["held_delta_cents"] for r in rows) == 40
    assert [r["job_id"] for r in rows if r["kind"] == "hold"].count(pending["id"]) == 1


# --- unknown customer -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/wallet", None),
        ("PATCH", "/wallet", {"credit_limit_cents": 100}),
        ("POST", "/wallet/top-ups", {"amount_cents": 100}),
        ("POST", "/wallet/adjustments", {"amount_cents": 100, "reason": "x"}),
        ("GET", "/wallet/transactions", None),
        ("GET", "/wallet/reconciliation", None),
    ],
    ids=["get", "patch", "top-up", "adjustment", "transactions", "reconciliation"],
)
def test_unknown_customer_is_404_on_every_wallet_route(api, method, path, body):
    for customer_id in (MISSING, str(uuid.uuid4())):
        response = api.request(method, f"/customers/{customer_id}{path}", json=body)
        expect_error(response, 404, "not_found")
