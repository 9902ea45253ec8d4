"""GET /customers/{id}/usage and GET /resellers/{id}/usage (docs/API.md, "Usage"): jobs created
in ``[from, to)`` counted by status, and the cents captured for them keyed by currency, grouped
by job type, project, day or (for a reseller) customer.

One module-wide scene on the shared server: a reseller with a EUR customer and a USD customer,
whose jobs succeed (test-echo), fail (test-fail-n-times, max_attempts 1) or are cancelled while
scheduled.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import create_job_type, later, submit, wait_for_status

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
ECHO_COST = 10
FAIL_COST = 7


@dataclass
class Customer:
    id: str
    name: str
    currency: str
    project_id: str
    project_name: str
    jobs: list[dict[str, Any]] = field(default_factory=list)  # final job bodies, oldest first


@dataclass
class Scene:
    reseller_id: str
    customers: list[Customer]
    echo_type: dict[str, Any]
    fail_type: dict[str, Any]


def _customer(api: httpx.Client, reseller_id: str, currency: str) -> Customer:
    suffix = uuid.uuid4().hex[:10]
    name = f"Usage {currency} {suffix}"
    created = api.post(
        "/customers",
        json={
            "reseller_id": reseller_id,
            "name": name,
            "email": f"usage-{suffix}@example.com",
            "currency": currency,
        },
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    top = api.post(f"/customers/{customer_id}/wallet/top-ups", json={"amount_cents": 10_000})
    assert top.status_code == 201, top.text
    project_name = f"Project {suffix}"
    project = api.post("/projects", json={"customer_id": customer_id, "name": project_name})
    assert project.status_code == 201, project.text
    return Customer(customer_id, name, currency, project.json()["id"], project_name)


@pytest.fixture(scope="module")
def scene(api: httpx.Client) -> Scene:
    reseller = api.post("/resellers", json={"name": f"Usage reseller {uuid.uuid4().hex[:8]}"})
    assert reseller.status_code == 201, reseller.text
    eur = _customer(api, reseller.json()["id"], "EUR")
    usd = _customer(api, reseller.json()["id"], "USD")
    echo = create_job_type(api, "test-echo", cost=ECHO_COST)
    fail = create_job_type(api, "test-fail-n-times", cost=FAIL_COST, max_attempts=1)

    def run(customer: Customer, job_type: dict, with_project: bool, cancel: bool = False) -> None:
        extra: dict[str, Any] = {"project_id": customer.project_id} if with_project else {}
        if cancel:
            extra["run_at"] = later()
        job = submit(api, customer.id, job_type["id"], {"failures": 1}, **extra)
        if cancel:
            assert api.post(f"/jobs/{job['id']}/cancel").status_code == 200
        customer.jobs.append(job)

    # EUR: 3 succeeded (2 in the project), 1 failed, 1 cancelled (in the project, newest)
    run(eur, echo, True)
    run(eur, echo, True)
    run(eur, echo, False)
    run(eur, fail, False)
    run(eur, echo, True, cancel=True)
    # USD: 2 succeeded (1 in the project), 1 failed
    run(usd, echo, True)
    run(usd, echo, False)
    run(usd, fail, False)
    for customer in (eur, usd):
        customer.jobs = [wait_for_status(api, job["id"]) for job in customer.jobs]
    assert [j["status"] for j in eur.jobs] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert [j["status"] for j in usd.jobs] == ["succeeded", "succeeded", "failed"]
    return Scene(reseller.json()["id"], [eur, usd], echo, fail)


# --- expected figures, computed from the jobs the scene ran --------------------------------------
def counts(statuses: list[str]) -> dict[str, int]:
    c = Counter(statuses)
    return {**{s: c.get(s, 0) for s in STATUSES}, "total": len(statuses)}


def captured(pairs: list[tuple[str, int]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for currency, cents in pairs:
        out[currency] += cents
    return {k: v for k, v in out.items() if v}


def expected(customers: list[Customer], key_of) -> dict[Any, dict[str, Any]]:
    """``{group key: {"jobs": counts, "captured_cents": {...}}}`` with ``key_of(customer, job)``."""
    groups: dict[Any, tuple[list[str], list[tuple[str, int]]]] = {}
    for customer in customers:
        for job in customer.jobs:
            statuses, money = groups.setdefault(key_of(customer, job), ([], []))
            statuses.append(job["status"])
            if job["status"] == "succeeded":
                money.append((customer.currency, job["cost_cents"]))
    return {k: {"jobs": counts(s), "captured_cents": captured(m)} for k, (s, m) in groups.items()}


def nonzero(money: dict[str, int]) -> dict[str, int]:
    """A currency with nothing captured may be listed with 0 or left out: both say nothing."""
    return {k: v for k, v in money.items() if v}


# --- reading an answer ----------------------------------------------------------------------------
def usage(api: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    # the documented fields (the answer may also name whose usage it is)
    assert {"from", "to", "group_by", "totals", "groups"} <= set(body), body
    assert set(body["totals"]) == {"jobs", "captured_cents"}, body
    assert set(body["totals"]["jobs"]) == {*STATUSES, "total"}, body
    for group in body["groups"]:
        assert set(group) == {"key", "name", "jobs", "captured_cents"}, group
        assert set(group["jobs"]) == {*STATUSES, "total"}, group
        assert sum(group["jobs"][s] for s in STATUSES) == group["jobs"]["total"], group
    keys = [g["key"] for g in body["groups"]]
    assert len(keys) == len(set(keys)), keys
    return body


def assert_totals_are_the_sum_of_groups(body: dict[str, Any]) -> None:
    groups = body["groups"]
    for status in (*STATUSES, "total"):
        assert body["totals"]["jobs"][status] == sum(g["jobs"][status] for g in groups), status
    summed: Counter[str] = Counter()
    for group in groups:
        summed.update(group["captured_cents"])
    assert nonzero(body["totals"]["captured_cents"]) == nonzero(dict(summed))


def as_expected(body: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {
        g["key"]: {"jobs": g["jobs"], "captured_cents": nonzero(g["captured_cents"])}
        for g in body["groups"]
    }


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cust_path(scene: Scene, i: int = 0) -> str:
    return f"/customers/{scene.customers[i].id}/usage"


def res_path(scene: Scene) -> str:
    return f"/resellers/{scene.reseller_id}/usage"


# --- customer usage -------------------------------------------------------------------------------
def test_customer_usage_by_job_type_is_the_default(api, scene):
    eur = scene.customers[0]
    body = usage(api, cust_path(scene))
    assert body["group_by"] == "job_type"
    assert body["totals"]["jobs"] == {
        "pending": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 1,
        "cancelled": 1,
        "total": 5,
    }
    assert nonzero(body["totals"]["captured_cents"]) == {"EUR": 3 * ECHO_COST}
    assert as_expected(body) == expected([eur], lambda c, j: j["job_type_id"])
    names = {g["key"]: g["name"] for g in body["groups"]}
    assert names == {
        scene.echo_type["id"]: scene.echo_type["name"],
        scene.fail_type["id"]: scene.fail_type["name"],
    }
    assert_totals_are_the_sum_of_groups(body)
    # the default window: the last 30 days, ending now
    start, end = parse(body["from"]), parse(body["to"])
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=5)
    assert abs((end - start) - timedelta(days=30)) <= timedelta(days=1)
    # asked for explicitly: the same answer
    explicit = usage(api, cust_path(scene), group_by="job_type")
    assert as_expected(explicit) == as_expected(body)


def test_customer_usage_by_project_puts_jobs_without_one_under_null(api, scene):
    eur = scene.customers[0]
    body = usage(api, cust_path(scene), group_by="project")
    assert body["group_by"] == "project"
    want = expected([eur], lambda c, j: j["project_id"])
    assert set(want) == {eur.project_id, None}
    assert as_expected(body) == want
    assert want[eur.project_id]["jobs"]["total"] == 3
    assert want[eur.project_id]["captured_cents"] == {"EUR": 2 * ECHO_COST}
    assert want[None]["captured_cents"] == {"EUR": ECHO_COST}
    names = {g["key"]: g["name"] for g in body["groups"]}
    assert names[eur.project_id] == eur.project_name
    assert_totals_are_the_sum_of_groups(body)


def test_customer_usage_by_day_keys_utc_dates(api, scene):
    eur = scene.customers[0]
    body = usage(api, cust_path(scene), group_by="day")
    assert body["group_by"] == "day"
    want = expected([eur], lambda c, j: z(parse(j["created_at"]))[:10])
    assert as_expected(body) == want
    for group in body["groups"]:
        assert group["name"] is None
        datetime.strptime(group["key"], "%Y-%m-%d")
    assert_totals_are_the_sum_of_groups(body)
    assert body["totals"]["jobs"]["total"] == 5


def test_customer_usage_cannot_group_by_customer(api, scene):
    response = api.get(cust_path(scene), params={"group_by": "customer"})
    expect_422(response, "group_by")


def test_each_customer_sees_only_its_own_jobs_in_its_currency(api, scene):
    usd = scene.customers[1]
    body = usage(api, cust_path(scene, 1))
    assert body["totals"]["jobs"] == counts(["succeeded", "succeeded", "failed"])
    assert nonzero(body["totals"]["captured_cents"]) == {"USD": 2 * ECHO_COST}
    assert as_expected(body) == expected([usd], lambda c, j: j["job_type_id"])


# --- reseller usage -------------------------------------------------------------------------------
def test_reseller_usage_by_customer_keeps_each_currency(api, scene):
    eur, usd = scene.customers
    body = usage(api, res_path(scene), group_by="customer")
    assert body["group_by"] == "customer"
    assert body["totals"]["jobs"] == counts([j["status"] for j in eur.jobs + usd.jobs])
    assert nonzero(body["totals"]["captured_cents"]) == {
        "EUR": 3 * ECHO_COST,
        "USD": 2 * ECHO_COST,
    }
    assert as_expected(body) == expected(scene.customers, lambda c, j: c.id)
    names = {g["key"]: g["name"] for g in body["groups"]}
    assert names == {eur.id: eur.name, usd.id: usd.name}
    assert_totals_are_the_sum_of_groups(body)


@pytest.mark.parametrize(
    ("group_by", "key_of"),
    [
        (None, lambda c, j: j["job_type_id"]),
        ("job_type", lambda c, j: j["job_type_id"]),
        ("project", lambda c, j: j["project_id"]),
        ("day", lambda c, j: z(parse(j["created_at"]))[:10]),
    ],
    ids=["default", "job_type", "project", "day"],
)
def test_reseller_usage_groups_across_customers(api, scene, group_by, key_of):
    params = {"group_by": group_by} if group_by else {}
    body = usage(api, res_path(scene), **params)
    assert body["group_by"] == (group_by or "job_type")
    assert as_expected(body) == expected(scene.customers, key_of)
    assert nonzero(body["totals"]["captured_cents"]) == {
        "EUR": 3 * ECHO_COST,
        "USD": 2 * ECHO_COST,
    }
    assert body["totals"]["jobs"]["total"] == 8
    assert_totals_are_the_sum_of_groups(body)
    if group_by in (None, "job_type"):
        echo = next(g for g in body["groups"] if g["key"] == scene.echo_type["id"])
        assert nonzero(echo["captured_cents"]) == {"EUR": 3 * ECHO_COST, "USD": 2 * ECHO_COST}


# --- the window -----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["customer", "reseller"])
def test_a_window_before_or_after_the_jobs_counts_nothing(api, scene, who):
    path = cust_path(scene) if who == "customer" else res_path(scene)
    now = datetime.now(UTC)
    for start, end in (
        (now - timedelta(days=300), now - timedelta(days=200)),
        (now + timedelta(hours=1), now + timedelta(hours=2)),
    ):
        body = usage(api, path, **{"from": z(start), "to": z(end)})
        assert parse(body["from"]) == start
        assert parse(body["to"]) == end
        assert body["totals"]["jobs"] == counts([])
        assert nonzero(body["totals"]["captured_cents"]) == {}
        assert [g for g in body["groups"] if g["jobs"]["total"]] == []


def test_from_is_inclusive_and_to_is_exclusive(api, scene):
    eur = scene.customers[0]
    ordered = sorted(eur.jobs, key=lambda j: parse(j["created_at"]))
    oldest, newest = ordered[0], ordered[-1]
    assert newest["status"] == "cancelled"  # submitted last
    body = usage(
        api, cust_path(scene), **{"from": oldest["created_at"], "to": newest["created_at"]}
    )
    assert body["totals"]["jobs"] == counts([j["status"] for j in ordered[:-1]])
    assert nonzero(body["totals"]["captured_cents"]) == {"EUR": 3 * ECHO_COST}

    # an explicit window around everything gives everything, 366 days being the widest
    now = datetime.now(UTC)
    wide = usage(
        api,
        cust_path(scene),
        **{"from": z(now - timedelta(days=365)), "to": z(now + timedelta(days=1))},
    )
    assert wide["totals"]["jobs"]["total"] == 5


def expect_422(response: httpx.Response, field: str | None = None) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error", error
    assert error["message"]
    if field is not None:
        assert field in {d["field"] for d in error["details"]}, error


_NOW = datetime(2025, 6, 1, tzinfo=UTC)
BAD_PARAMS = [
    ({"from": "yesterday"}, "from"),
    ({"from": "2025-01-01"}, "from"),
    ({"from": "1700000000"}, "from"),
    ({"from": "2025-01-01T00:00:00"}, "from"),  # no offset: not RFC 3339
    ({"to": "2025-13-01T00:00:00Z"}, "to"),
    ({"from": z(_NOW), "to": z(_NOW)}, None),
    ({"from": z(_NOW), "to": z(_NOW - timedelta(seconds=1))}, None),
    ({"from": z(_NOW - timedelta(days=367)), "to": z(_NOW)}, None),
    ({"from": z(_NOW - timedelta(days=366, seconds=1)), "to": z(_NOW)}, None),
    ({"group_by": "week"}, "group_by"),
    ({"group_by": "JOB_TYPE"}, "group_by"),
    ({"groupby": "day"}, None),
]
BAD_IDS = [
    "from-word",
    "from-date-only",
    "from-unix",
    "from-no-offset",
    "to-month-13",
    "from-equals-to",
    "from-after-to",
    "span-367-days",
    "span-366-days-and-a-second",
    "group-by-week",
    "group-by-upper",
    "unknown-parameter",
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS, ids=BAD_IDS)
@pytest.mark.parametrize("who", ["customer", "reseller"])
def test_bad_usage_query_is_422(api, scene, who, params, field):
    path = cust_path(scene) if who == "customer" else res_path(scene)
    expect_422(api.get(path, params=params), field)


@pytest.mark.parametrize("who", ["customer", "reseller"])
def test_a_span_of_exactly_366_days_is_accepted(api, scene, who):
    path = cust_path(scene) if who == "customer" else res_path(scene)
    end = datetime.now(UTC) + timedelta(hours=1)
    body = usage(api, path, **{"from": z(end - timedelta(days=366)), "to": z(end)})
    assert body["totals"]["jobs"]["total"] == (5 if who == "customer" else 8)


@pytest.mark.parametrize("who", ["customers", "resellers"])
def test_unknown_id_is_404(api, who):
    for unknown in ("00000000-0000-4000-8000-00000000dead", str(uuid.uuid4())):
        response = api.get(f"/{who}/{unknown}/usage")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
