"""``innosystem tester --url URL``: prove that a live instance works end to end.

It is the original system's "tester service": a client of the public REST API (docs/API.md),
nothing more. It creates its own reseller, customer, project and job type, moves money, runs a
job of every enabled seeded job type, checks the ledger to the cent, sends the bad requests the
contract promises to refuse, and archives what it created. Every check is one row of a table
(PASS / FAIL / SKIP); the exit code is 0 when nothing failed, 1 when something did and 2 when
the server cannot be reached at all, so a deploy pipeline can gate on it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from innosystem import __version__

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
FINAL = ("succeeded", "failed", "cancelled")
PREFERRED_PROCESSOR = "text-analysis-v1"

TOP_UP_CENTS = 100_000
CREDIT_LIMIT_CENTS = 5_000
ADJUSTMENTS = ((2_500, "tester: goodwill credit"), (-1_000, "tester: manual debit"))
OWN_TYPE_COST_CENTS = 10
LEDGER_PAGE = 7  # small on purpose: the ledger check also walks the cursor pagination
POLL_SECONDS = 0.25

# the documented refusals: (status, error code)
MALFORMED_JSON = (400, "malformed_json")
NO_FUNDS = (402, "insufficient_funds")
NOT_FOUND = (404, "not_found")
CONFLICT = (409, "conflict")
UNSUPPORTED_MEDIA = (415, "unsupported_media_type")
INVALID = (422, "validation_error")


# --- results ------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    result: str
    detail: str = ""


class Recorder:
    """Collects one row per check, so a failure is reported and the run goes on."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, result: str, detail: str = "") -> None:
        self.checks.append(Check(name, result, " ".join(detail.split())))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.add(name, PASS if ok else FAIL, detail)
        return ok

    def fail(self, name: str, detail: str) -> None:
        self.add(name, FAIL, detail)

    def skip(self, name: str, detail: str) -> None:
        self.add(name, SKIP, detail)

    def count(self, result: str) -> int:
        return sum(1 for c in self.checks if c.result == result)

    def summary(self) -> str:
        return f"{self.count(PASS)} passed, {self.count(FAIL)} failed, {self.count(SKIP)} skipped"

    def table(self, width: int = 110) -> str:
        rows = [("CHECK", "RESULT", "DETAIL")]
        rows += [(c.name, c.result, _cut(c.detail, width)) for c in self.checks]
        w0 = max(len(r[0]) for r in rows)
        lines = [f"{r[0].ljust(w0)}  {r[1].ljust(6)}  {r[2]}".rstrip() for r in rows]
        return "\n".join([*lines, "", self.summary()])

    def as_json(self, url: str) -> dict[str, Any]:
        return {
            "url": url,
            "checks": [
                {"check": c.name, "result": c.result, "detail": c.detail} for c in self.checks
            ],
            "summary": {
                "passed": self.count(PASS),
                "failed": self.count(FAIL),
                "skipped": self.count(SKIP),
            },
        }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class StepSkipped(Exception):
    """A step cannot run because an earlier one did not create what it needs."""


# --- state shared by the steps ------------------------------------------------------------------
@dataclass
class TrackedJob:
    label: str
    job: dict[str, Any]  # the latest answer of GET /jobs/{id}


@dataclass
class Context:
    client: httpx.Client
    rec: Recorder
    timeout: float
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processors: dict[str, dict[str, Any]] = field(default_factory=dict)
    reseller_id: str | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    project_id: str | None = None
    own_type: dict[str, Any] | None = None
    own_input: dict[str, Any] = field(default_factory=dict)
    priced_type_id: str | None = None  # created only when every usable type is free
    global_types: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[TrackedJob] = field(default_factory=list)
    cancelled_job: dict[str, Any] | None = None
    topup_key: str | None = None
    topped_up: int = 0
    adjusted: int = 0
    credit_limit: int = 0

    def require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise StepSkipped(f"needs {', '.join(missing)}, which an earlier step did not create")

    def wallet_path(self, customer_id: str | None = None) -> str:
        return f"/customers/{customer_id or self.customer_id}/wallet"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _said(response: httpx.Response) -> str:
    """A short account of an answer, for the detail column."""
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{response.status_code} {error.get('code')}: {error.get('message')}"
    if body is None:
        return f"{response.status_code} {response.text[:120]!r}"
    return str(response.status_code)


def _error_problem(response: httpx.Response, status: int, code: str) -> str | None:
    """Why ``response`` is not the documented error envelope with this status and code."""
    if response.status_code != status:
        return f"expected {status} {code}, got {_said(response)}"
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"{status} but not the JSON error envelope: {response.text[:120]!r}"
    if error.get("code") != code:
        return f"{status} with code {error.get('code')!r}, expected {code!r}"
    if not isinstance(error.get("message"), str) or not isinstance(error.get("details"), list):
        return f"{status} envelope lacks a string message or a details list: {error}"
    return None


# --- inputs for the seeded processors -----------------------------------------------------------
def tiny_png(width: int = 64, height: int = 48) -> bytes:
    """A valid RGB PNG with a colour gradient, built with zlib alone (no imaging library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00"  # filter type None
        + bytes(
            channel
            for x in range(width)
            for channel in ((x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def known_inputs() -> dict[str, dict[str, Any]]:
    """A small valid ``input_data`` for each logic id of the seed (see each plugin's README)."""
    email = (
        "From: InnoSystem Tester <tester@example.com>\n"
        "To: ops@example.com\n"
        "Subject: InnoSystem tester\n"
        "Message-ID: <tester@example.com>\n"
        "\n"
        "Hello, this message checks that email processing works end to end. Thank you!\n"
    )
    return {
        "text-analysis-v1": {
            "text": "The InnoSystem tester is checking that text analysis works. It looks great."
        },
        "image-recog-v2": {"image_base64": base64.b64encode(tiny_png()).decode()},
        "data-proc-v1": {
            "items": [{"name": "t", "format": "csv", "content": "id,value\n1,2.5\n2,3.5\n"}],
            "query": "SELECT SUM(value) AS total FROM t",
        },
        "report-gen-v1": {
            "template": "# Tester report\n\nHello {{ data.name }}.\n",
            "title": "InnoSystem tester",
            "data": {"name": "tester"},
        },
        "email-proc-v1": {"items": [{"raw": email}]},
    }


def _own_processor(processors: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict] | None:
    """The processor for the tester's own job type and an input for it: text-analysis-v1 when
    installed, else an async processor whose input is known, else any async one that needs no
    input fields."""
    inputs = known_inputs()
    if PREFERRED_PROCESSOR in processors:
        return processors[PREFERRED_PROCESSOR], inputs[PREFERRED_PROCESSOR]
    asynchronous = [
        p
        for p in processors.values()
        if p.get("processor_type") == "async" and p.get("kind") in ("io", "cpu")
    ]
    for p in asynchronous:
        if p["logic_id"] in inputs:
            return p, inputs[p["logic_id"]]
    for p in asynchronous:
        schema = p.get("input_schema")
        if not schema or not schema.get("required"):
            return p, {}
    return None


# --- HTTP helpers -------------------------------------------------------------------------------
def _list_all(ctx: Context, path: str, params: dict[str, Any], limit: int = 200) -> list[dict]:
    """Every item of a list endpoint, following ``next_cursor``; raises on a non-200 page or a
    cursor loop."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = ctx.client.get(path, params=query)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {_said(response)}")
        body = response.json()
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items
        if cursor in seen:
            raise RuntimeError(f"GET {path}: next_cursor repeats")
        seen.add(cursor)


def _wallet(ctx: Context, customer_id: str | None = None) -> dict[str, Any]:
    response = ctx.client.get(ctx.wallet_path(customer_id))
    if response.status_code != 200:
        raise RuntimeError(f"GET wallet: {_said(response)}")
    return response.json()


def _ledger(ctx: Context, customer_id: str | None = None, limit: int = 200) -> list[dict]:
    return _list_all(ctx, ctx.wallet_path(customer_id) + "/transactions", {}, limit)


def _wallet_state(ctx: Context, customer_id: str | None = None) -> tuple[dict, int]:
    """The wallet and the number of its ledger rows: what a refused request must not change."""
    return _wallet(ctx, customer_id), len(_ledger(ctx, customer_id))


def _unchanged(
    ctx: Context, before: tuple[dict, int], customer_id: str | None = None
) -> str | None:
    """What changed in the wallet since ``before`` (None: nothing)."""
    (wallet, rows), (old, old_rows) = _wallet_state(ctx, customer_id), before
    changes = [f"{k} {old.get(k)} -> {v}" for k, v in wallet.items() if old.get(k) != v]
    if rows != old_rows:
        changes.append(f"ledger rows {old_rows} -> {rows}")
    return f"the wallet changed: {', '.join(changes)}" if changes else None


def _refused(
    ctx: Context,
    name: str,
    response: httpx.Response,
    expected: tuple[int, str],
    unchanged: Callable[[], str | None] | None = None,
) -> bool:
    """Record that ``response`` is the documented error and (``unchanged``) had no effect."""
    problem = _error_problem(response, *expected)
    if problem is None and unchanged is not None:
        try:
            problem = unchanged()
        except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
            problem = f"refused, but could not verify that nothing changed: {exc}"
    detail = problem or _said(response) + ("; nothing changed" if unchanged else "")
    return ctx.rec.check(name, problem is None, detail)


def _dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def _answer(
    ctx: Context,
    name: str,
    response: httpx.Response,
    status: int,
    wanted: dict[str, Any] | None = None,
    show: str = "",
) -> bool:
    """Record whether ``response`` has ``status`` and the ``wanted`` fields (a dotted name
    reaches into a nested object); on success the detail shows the field ``show``."""
    body = _json(response)
    if response.status_code != status:
        problem = f"expected {status}, got {_said(response)}"
    elif wanted is not None and not isinstance(body, dict):
        problem = f"{status} but not a JSON object: {response.text[:120]!r}"
    else:
        wrong = [
            f"{key} is {_dig(body, key)!r}, expected {value!r}"
            for key, value in (wanted or {}).items()
            if _dig(body, key) != value
        ]
        problem = "; ".join(wrong) or None
    detail = f"{status} {show} {_dig(body, show)}" if show else str(status)
    return ctx.rec.check(name, problem is None, problem or detail)


def _wait_final(ctx: Context, jobs: list[TrackedJob]) -> None:
    """Poll GET /jobs/{id} until every job is final or ``ctx.timeout`` passes."""
    deadline = time.monotonic() + ctx.timeout
    waiting = [j for j in jobs if j.job.get("status") not in FINAL]
    while waiting:
        for tracked in waiting:
            response = ctx.client.get(f"/jobs/{tracked.job['id']}")
            if response.status_code == 200:
                tracked.job = response.json()
        waiting = [j for j in waiting if j.job.get("status") not in FINAL]
        if not waiting or time.monotonic() > deadline:
            return
        time.sleep(POLL_SECONDS)


def _new_customer(ctx: Context, label: str) -> httpx.Response:
    return ctx.client.post(
        "/customers",
        json={
            "reseller_id": ctx.reseller_id,
            "name": f"Tester {label} {ctx.run_id}",
            "email": f"tester-{uuid.uuid4()}@example.com",
        },
    )


# --- step 1: the system answers -----------------------------------------------------------------
def step_system(ctx: Context) -> None:
    """Health, the OpenAPI document and the installed processors: if these are wrong nothing
    else is worth trying, and the processor list decides which jobs can run."""
    client, rec = ctx.client, ctx.rec
    response = client.get("/health")
    body = _json(response) or {}
    rec.check(
        "health: GET /health",
        response.status_code == 200 and body.get("status") == "ok",
        f"{response.status_code}, database {body.get('database')}, broker {body.get('broker')}, "
        f"version {body.get('version')}",
    )

    response = client.get("/openapi.json")
    spec = _json(response) if response.status_code == 200 else None
    version = spec.get("openapi") if isinstance(spec, dict) else None
    paths = spec.get("paths") if isinstance(spec, dict) else None
    rec.check(
        "health: GET /openapi.json is OpenAPI 3.1",
        isinstance(version, str) and version.startswith("3.1"),
        f"openapi {version}, {len(paths or {})} paths" if spec else _said(response),
    )

    response = client.get("/processors")
    items = (_json(response) or {}).get("items") if response.status_code == 200 else None
    if isinstance(items, list):
        ctx.processors = {p["logic_id"]: p for p in items}
    rec.check(
        "health: GET /processors",
        bool(ctx.processors),
        ", ".join(sorted(ctx.processors)) or f"no processors installed ({_said(response)})",
    )


# --- step 2: tenants and money in ---------------------------------------------------------------
def step_tenants(ctx: Context) -> None:
    """A reseller, customer and project of the tester's own, and every way money enters a
    wallet: an idempotent top-up (replayed once), a credit limit and adjustments."""
    client = ctx.client
    response = client.post("/resellers", json={"name": f"Tester {ctx.run_id}"})
    _answer(ctx, "tenants: create reseller", response, 201, {"status": "active"}, "id")
    if response.status_code != 201:
        return
    ctx.reseller_id = response.json()["id"]

    email = f"tester-{uuid.uuid4()}@example.com"
    response = client.post(
        "/customers",
        json={"reseller_id": ctx.reseller_id, "name": f"Tester {ctx.run_id}", "email": email},
    )
    _answer(ctx, "tenants: create customer", response, 201, {"email": email}, "email")
    if response.status_code != 201:
        return
    ctx.customer_id, ctx.customer_email = response.json()["id"], email

    response = client.get(ctx.wallet_path())
    wanted = {"currency": "EUR", "balance_cents": 0, "held_cents": 0, "credit_limit_cents": 0}
    _answer(ctx, "wallet: a new wallet is empty, in EUR", response, 200, wanted, "currency")

    name = f"Tester {ctx.run_id} (renamed)"
    response = client.patch(f"/customers/{ctx.customer_id}", json={"name": name})
    _answer(ctx, "tenants: rename customer (PATCH)", response, 200, {"name": name}, "name")

    response = client.post(
        "/projects", json={"customer_id": ctx.customer_id, "name": f"Tester {ctx.run_id}"}
    )
    _answer(ctx, "tenants: create project", response, 201, {"status": "active"}, "id")
    if response.status_code == 201:
        ctx.project_id = response.json()["id"]

    _top_up_twice(ctx)

    response = client.patch(
        ctx.wallet_path(), json={"credit_limit_cents": CREDIT_LIMIT_CENTS, "reason": "tester"}
    )
    if response.status_code == 200:
        ctx.credit_limit = CREDIT_LIMIT_CENTS
    wanted = {
        "credit_limit_cents": CREDIT_LIMIT_CENTS,
        "open_to_buy_cents": ctx.topped_up + CREDIT_LIMIT_CENTS,
    }
    _answer(ctx, "wallet: set credit limit (PATCH)", response, 200, wanted, "open_to_buy_cents")

    for amount, reason in ADJUSTMENTS:
        response = client.post(
            ctx.wallet_path() + "/adjustments", json={"amount_cents": amount, "reason": reason}
        )
        wanted = {
            "balance_cents": ctx.topped_up + ctx.adjusted + amount,
            "transaction.kind": "adjustment",
            "transaction.amount_cents": amount,
        }
        if response.status_code == 201:
            ctx.adjusted += amount
        _answer(ctx, f"wallet: adjustment {amount:+d}", response, 201, wanted, "balance_cents")


def _top_up_twice(ctx: Context) -> None:
    """Stripe-style idempotency: the same key and body twice is one effect and one answer."""
    client = ctx.client
    key = f"tester-top-up-{uuid.uuid4()}"
    body = {"amount_cents": TOP_UP_CENTS, "reference": f"tester {ctx.run_id}"}
    first = client.post(ctx.wallet_path() + "/top-ups", json=body, headers={"Idempotency-Key": key})
    wanted = {
        "balance_cents": TOP_UP_CENTS,
        "transaction.kind": "top_up",
        "transaction.amount_cents": TOP_UP_CENTS,
    }
    _answer(ctx, "wallet: top-up with an Idempotency-Key", first, 201, wanted, "balance_cents")
    if first.status_code != 201:
        return
    ctx.topup_key, ctx.topped_up = key, TOP_UP_CENTS

    replay = client.post(
        ctx.wallet_path() + "/top-ups", json=body, headers={"Idempotency-Key": key}
    )
    balance = _wallet(ctx)["balance_cents"]
    problems = _replay_problems(first, replay)
    if balance != TOP_UP_CENTS:
        problems.append(f"balance {balance}, expected {TOP_UP_CENTS} (credited twice?)")
    ctx.rec.check(
        "wallet: top-up replay (same key) has no second effect",
        not problems,
        "; ".join(problems) or f"replayed; balance {balance}",
    )


def _replay_problems(first: httpx.Response, replay: httpx.Response) -> list[str]:
    """How ``replay`` differs from the documented replay of ``first``."""
    problems = []
    if replay.status_code != first.status_code:
        problems.append(f"status {_said(replay)}, first was {first.status_code}")
    if replay.headers.get("Idempotent-Replayed", "").lower() != "true":
        problems.append(f"Idempotent-Replayed is {replay.headers.get('Idempotent-Replayed')!r}")
    if _json(replay) != _json(first):
        problems.append("the body differs from the first answer")
    return problems


# --- step 3: jobs -------------------------------------------------------------------------------
def step_jobs(ctx: Context) -> None:
    """A job of every enabled seeded (global) job type and of a job type of the tester's own,
    each of which must succeed: the processors, the queue and the workers all work."""
    ctx.require("customer_id", "project_id")
    rec, inputs = ctx.rec, known_inputs()

    types = _list_all(ctx, "/job-types", {})
    ctx.global_types = [t for t in types if t.get("project_id") is None]
    statuses = sorted({str(t.get("status")) for t in types})
    rec.check(
        "jobs: list job types (active by default)",
        statuses in ([], ["active"]),
        f"{len(types)} listed, {len(ctx.global_types)} global, statuses {statuses}",
    )

    _create_own_type(ctx)

    for job_type in sorted(ctx.global_types, key=lambda t: t["name"]):
        label = f"jobs: {job_type['name']} ({job_type['processing_logic_id']})"
        logic_id = job_type["processing_logic_id"]
        if not job_type.get("enabled"):
            rec.skip(label, "job type is disabled")
        elif logic_id not in ctx.processors:
            rec.skip(label, f"processor {logic_id} is not installed")
        elif logic_id not in inputs:
            rec.skip(label, f"the tester has no input for {logic_id}")
        else:
            _submit(ctx, label, job_type, inputs[logic_id])

    if ctx.own_type is not None:
        _submit_own_job(ctx)

    _wait_final(ctx, ctx.jobs)
    for tracked in ctx.jobs:
        job = tracked.job
        status = job.get("status")
        detail = f"{status} after {job.get('attempts')} attempt(s), cost {job.get('cost_cents')}"
        if status == "failed":
            detail += f": {job.get('error')}"
        elif status not in FINAL:
            detail += f" (not final after {ctx.timeout:g}s)"
        rec.check(f"{tracked.label} succeeded", status == "succeeded", detail)


def _create_own_type(ctx: Context) -> None:
    """A job type scoped to the tester's project, on an installed processor."""
    name = "jobs: create own job type (project-scoped)"
    chosen = _own_processor(ctx.processors)
    if chosen is None:
        ctx.rec.skip(name, "no installed async processor the tester can give input to")
        return
    processor, own_input = chosen
    response = ctx.client.post(
        "/job-types",
        json={
            "name": f"Tester {ctx.run_id}",
            "description": "Created by innosystem tester; archived at the end of its run.",
            "processing_logic_id": processor["logic_id"],
            "processor_type": processor["processor_type"],
            "standard_cost_cents": OWN_TYPE_COST_CENTS,
            "enabled": True,
            "project_id": ctx.project_id,
        },
    )
    if response.status_code == 201:
        ctx.own_type, ctx.own_input = response.json(), own_input
    wanted = {"project_id": ctx.project_id, "status": "active", "enabled": True}
    _answer(ctx, name, response, 201, wanted, "processing_logic_id")


def _submit(
    ctx: Context, label: str, job_type: dict[str, Any], input_data: dict, key: str | None = None
) -> httpx.Response:
    """Submit a job of ``job_type`` in the tester's project; a job that was created is tracked
    (and must succeed), a refusal or a wrong price is a failure."""
    response = ctx.client.post(
        "/jobs",
        json={
            "customer_id": ctx.customer_id,
            "project_id": ctx.project_id,
            "job_type_id": job_type["id"],
            "input_data": input_data,
        },
        headers={"Idempotency-Key": key} if key else None,
    )
    job = _json(response) or {}
    # Async and Batch types answer 201; a Sync type answers in the request: 200 with the
    # finished job, or 202 when it runs past the type's sync timeout.
    wanted = {200, 202} if job_type.get("processor_type") == "sync" else {201}
    accepted = response.status_code in wanted
    if accepted:
        ctx.jobs.append(TrackedJob(label, job))
    if not accepted or job.get("cost_cents") != job_type["standard_cost_cents"]:
        price = job_type["standard_cost_cents"]
        ctx.rec.fail(
            f"{label} submitted",
            f"cost {job.get('cost_cents')}, price {price}" if accepted else _said(response),
        )
    return response


def _submit_own_job(ctx: Context) -> None:
    """The own type's job goes in with an Idempotency-Key and is replayed once."""
    assert ctx.own_type is not None
    label = f"jobs: own type ({ctx.own_type['processing_logic_id']})"
    key = f"tester-job-{uuid.uuid4()}"
    first = _submit(ctx, label, ctx.own_type, ctx.own_input, key)
    if first.status_code != 201:
        return
    replay = ctx.client.post(
        "/jobs",
        content=first.request.content,
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    problems = _replay_problems(first, replay)
    ctx.rec.check(
        "jobs: submit replay (same key) is the same job, created once",
        not problems,
        "; ".join(problems) or f"job {first.json()['id']} replayed",
    )


# --- step 4: the money adds up ------------------------------------------------------------------
def step_money(ctx: Context) -> None:
    """Holds, captures and releases in the ledger match the jobs to the cent, the wallet is what
    the movements say, and the server's own reconciliation agrees."""
    ctx.require("customer_id")
    _cancel_scheduled_job(ctx)
    rows = _ledger_in_pages(ctx)
    if rows is None:
        return
    captured = _check_job_rows(ctx, rows)
    _check_wallet_rows(ctx, rows, captured)


def _ledger_in_pages(ctx: Context) -> list[dict[str, Any]] | None:
    """The whole ledger, read in small pages: the cursor must neither repeat nor skip rows."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while len(pages) < 1000:
        params: dict[str, Any] = {"limit": LEDGER_PAGE, **({"cursor": cursor} if cursor else {})}
        response = ctx.client.get(ctx.wallet_path() + "/transactions", params=params)
        if response.status_code != 200:
            ctx.rec.fail("money: ledger read in pages (cursor)", _said(response))
            return None
        body = response.json()
        pages.append(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    rows = [row for page in pages for row in page]
    ids = [row["id"] for row in rows]
    ctx.rec.check(
        "money: ledger read in pages (cursor)",
        len(ids) == len(set(ids)) and all(len(p) <= LEDGER_PAGE for p in pages) and not cursor,
        f"{len(rows)} rows in {len(pages)} page(s) of {LEDGER_PAGE}",
    )
    return rows


def _check_job_rows(ctx: Context, rows: list[dict[str, Any]]) -> int:
    """One hold and one capture of its cost per succeeded job, and the cancelled job's hold
    released; returns the cents captured."""

    def of(job_id: str, kind: str) -> list[dict[str, Any]]:
        return [r for r in rows if r.get("job_id") == job_id and r["kind"] == kind]

    name = "money: one hold and one capture of its cost per succeeded job"
    problems, captured = [], 0
    succeeded = [t.job for t in ctx.jobs if t.job.get("status") == "succeeded"]
    for job in succeeded:
        cost, job_id = job["cost_cents"], job["id"]
        holds, captures = of(job_id, "hold"), of(job_id, "capture")
        want = 1 if cost > 0 else 0  # a free job places no hold
        if len(holds) != want or any(h["held_delta_cents"] != cost for h in holds):
            problems.append(f"job {job_id}: holds {[h['held_delta_cents'] for h in holds]}")
        if len(captures) != want or any(
            (c["amount_cents"], c["held_delta_cents"]) != (-cost, -cost) for c in captures
        ):
            problems.append(f"job {job_id}: captures {[c['amount_cents'] for c in captures]}")
        if of(job_id, "release"):
            problems.append(f"job {job_id}: released although it succeeded")
        captured += cost
    if succeeded:
        detail = "; ".join(problems) or f"{len(succeeded)} jobs, {captured} cents captured"
        ctx.rec.check(name, not problems, detail)
    else:
        ctx.rec.skip(name, "no job succeeded")

    if ctx.cancelled_job is not None:
        cost, job_id = ctx.cancelled_job["cost_cents"], ctx.cancelled_job["id"]
        holds = [h["held_delta_cents"] for h in of(job_id, "hold")]
        releases = [(r["amount_cents"], r["held_delta_cents"]) for r in of(job_id, "release")]
        ctx.rec.check(
            "money: the cancelled job's hold is released",
            holds == [cost] and releases == [(0, -cost)] and not of(job_id, "capture"),
            f"holds {holds}, releases (amount, held) {releases}",
        )
    return captured


def _check_wallet_rows(ctx: Context, rows: list[dict[str, Any]], captured: int) -> None:
    """The money movements of step 2 are in the ledger once each, and ledger, wallet and
    reconciliation agree."""
    rec = ctx.rec
    top_ups = [r["amount_cents"] for r in rows if r["kind"] == "top_up"]
    rec.check(
        "money: exactly one top-up row (the replay added none)",
        top_ups == ([ctx.topped_up] if ctx.topped_up else []),
        f"top-up rows {top_ups}",
    )
    limits = [r for r in rows if r["kind"] == "credit_limit"]
    rec.check(
        "money: the credit limit change is a ledger row of 0",
        [(r["amount_cents"], r["held_delta_cents"]) for r in limits]
        == ([(0, 0)] if ctx.credit_limit else []),
        f"credit_limit rows {[r.get('reference') for r in limits]}",
    )
    adjustments = sorted(r["amount_cents"] for r in rows if r["kind"] == "adjustment")
    rec.check(
        "money: adjustment rows",
        sum(adjustments) == ctx.adjusted and len(adjustments) <= len(ADJUSTMENTS),
        f"adjustment rows {adjustments}",
    )

    wallet = _wallet(ctx)
    balance, held, limit = wallet["balance_cents"], wallet["held_cents"], ctx.credit_limit
    ledger = (sum(r["amount_cents"] for r in rows), sum(r["held_delta_cents"] for r in rows))
    newest = (rows[0]["balance_after_cents"], rows[0]["held_after_cents"]) if rows else (0, 0)
    rec.check(
        "money: the ledger sums to the wallet",
        ledger == newest == (balance, held),
        f"ledger {ledger}, newest row {newest}, wallet {(balance, held)} (balance, held)",
    )
    expected = ctx.topped_up + ctx.adjusted - captured
    rec.check(
        "money: balance = top-up + adjustments - captured",
        balance == expected,
        f"{balance} = {ctx.topped_up} + {ctx.adjusted} - {captured}"
        if balance == expected
        else f"balance {balance}, expected {expected}",
    )
    response = ctx.client.get(ctx.wallet_path())
    wanted = {"held_cents": 0, "credit_limit_cents": limit, "open_to_buy_cents": balance + limit}
    _answer(ctx, "money: nothing held once every job is final", response, 200, wanted, "held_cents")
    response = ctx.client.get(ctx.wallet_path() + "/reconciliation")
    _answer(ctx, "money: reconciliation matches", response, 200, {"matches": True}, "matches")


def _cancel_scheduled_job(ctx: Context) -> None:
    """A job due in an hour stays pending, so cancelling it must release its hold."""
    job_type = ctx.own_type
    input_data = ctx.own_input
    if job_type is None:
        inputs = known_inputs()
        usable = [
            t
            for t in ctx.global_types
            if t.get("enabled")
            and t["standard_cost_cents"] > 0
            and t["processing_logic_id"] in inputs
            and t["processing_logic_id"] in ctx.processors
        ]
        if not usable:
            ctx.rec.skip("money: cancel a scheduled job", "no job type to schedule a job of")
            return
        job_type, input_data = usable[0], inputs[usable[0]["processing_logic_id"]]
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    response = ctx.client.post(
        "/jobs",
        json={
            "customer_id": ctx.customer_id,
            "project_id": ctx.project_id,
            "job_type_id": job_type["id"],
            "input_data": input_data,
            "run_at": run_at,
        },
    )
    job = _json(response) or {}
    if response.status_code != 201 or job.get("status") != "pending":
        ctx.rec.fail(
            "money: cancel a scheduled job", f"submit: {_said(response)} {job.get('status')}"
        )
        return
    held_before = _wallet(ctx)["held_cents"]
    response = ctx.client.post(f"/jobs/{job['id']}/cancel")
    body = _json(response) or {}
    held_after = _wallet(ctx)["held_cents"]
    ok = (
        response.status_code == 200
        and body.get("status") == "cancelled"
        and held_before - held_after == job["cost_cents"]
    )
    if response.status_code == 200 and body.get("status") == "cancelled":
        ctx.cancelled_job = body  # the ledger check looks for its release
    ctx.rec.check(
        "money: cancel a scheduled job",
        ok,
        f"status {body.get('status')}, held {held_before} -> {held_after}"
        if response.status_code == 200
        else _said(response),
    )


# --- step 5: bad requests -----------------------------------------------------------------------
def step_bad_requests(ctx: Context) -> None:
    """The contract's refusals: the right status, the one error envelope, and no effect."""
    ctx.require("reseller_id", "customer_id")
    client = ctx.client
    top_ups = ctx.wallet_path() + "/top-ups"

    response = client.post(
        "/resellers", content=b'{"name": "tester', headers={"Content-Type": "application/json"}
    )
    _refused(ctx, "errors: malformed JSON -> 400", response, MALFORMED_JSON)

    name = f"Tester plain text {ctx.run_id}"
    response = client.post(
        "/resellers",
        content=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "text/plain"},
    )

    def no_reseller_named() -> str | None:
        found = _list_all(ctx, "/resellers", {"name": name, "status": "all"})
        return f"a reseller was created: {found}" if found else None

    _refused(
        ctx,
        "errors: Content-Type text/plain -> 415",
        response,
        UNSUPPORTED_MEDIA,
        no_reseller_named,
    )

    def no_customer(email: str) -> Callable[[], str | None]:
        def check() -> str | None:
            found = _list_all(ctx, "/customers", {"email": email, "status": "all"})
            return f"a customer was created: {[c['id'] for c in found]}" if found else None

        return check

    email = f"tester-{uuid.uuid4()}@example.com"
    response = client.post(
        "/customers",
        json={"reseller_id": ctx.reseller_id, "name": "x", "email": email, "balance_cents": 100},
    )
    _refused(
        ctx,
        "errors: unknown body field -> 422",
        response,
        INVALID,
        no_customer(email),
    )

    before = _wallet_state(ctx)
    for amount in (-100, 0, 1.5, "100"):
        response = client.post(top_ups, json={"amount_cents": amount})
        _refused(
            ctx,
            f"errors: top-up amount {amount!r} -> 422",
            response,
            INVALID,
            lambda: _unchanged(ctx, before),
        )

    response = client.post(
        "/customers", json={"reseller_id": ctx.reseller_id, "name": "x", "email": "not-an-email"}
    )
    _refused(ctx, "errors: invalid email -> 422", response, INVALID)

    email = f"tester-{uuid.uuid4()}@example.com"
    response = client.post(
        "/customers",
        json={"reseller_id": ctx.reseller_id, "name": "x", "email": email, "currency": "XYZ"},
    )
    _refused(
        ctx,
        "errors: invalid currency XYZ -> 422",
        response,
        INVALID,
        no_customer(email),
    )

    response = client.get(f"/customers/{uuid.uuid4()}")
    _refused(ctx, "errors: unknown customer id -> 404", response, NOT_FOUND)

    for limit in (0, 201):
        response = client.get("/customers", params={"reseller_id": ctx.reseller_id, "limit": limit})
        _refused(ctx, f"errors: list limit={limit} -> 422", response, INVALID)

    response = client.get(ctx.wallet_path() + "/transactions", params={"cursor": "not-a-cursor"})
    _refused(ctx, "errors: malformed cursor -> 422", response, INVALID)

    assert ctx.customer_email is not None

    def one_customer() -> str | None:
        found = _list_all(ctx, "/customers", {"email": ctx.customer_email, "status": "all"})
        return None if len(found) == 1 else f"{len(found)} customers with that email"

    for label, dup in (("same", ctx.customer_email), ("other case", ctx.customer_email.upper())):
        response = client.post(
            "/customers", json={"reseller_id": ctx.reseller_id, "name": "x", "email": dup}
        )
        _refused(
            ctx,
            f"errors: duplicate email ({label}) -> 409",
            response,
            CONFLICT,
            one_customer,
        )

    done = next((t.job for t in ctx.jobs if t.job.get("status") == "succeeded"), None)
    if done is None:
        ctx.rec.skip("errors: cancel a succeeded job -> 409", "no job succeeded")
    else:
        before = _wallet_state(ctx)
        response = client.post(f"/jobs/{done['id']}/cancel")

        def still_succeeded() -> str | None:
            status = client.get(f"/jobs/{done['id']}").json()["status"]
            if status != "succeeded":
                return f"the job is now {status}"
            return _unchanged(ctx, before)

        _refused(ctx, "errors: cancel a succeeded job -> 409", response, CONFLICT, still_succeeded)

    _insufficient_funds(ctx)

    if ctx.topup_key is None:
        ctx.rec.skip("errors: Idempotency-Key reused, other body -> 409", "no keyed top-up")
    else:
        before = _wallet_state(ctx)
        response = client.post(
            top_ups,
            json={"amount_cents": TOP_UP_CENTS + 1, "reference": "tester: other body"},
            headers={"Idempotency-Key": ctx.topup_key},
        )
        _refused(
            ctx,
            "errors: Idempotency-Key reused, other body -> 409",
            response,
            CONFLICT,
            lambda: _unchanged(ctx, before),
        )


def _insufficient_funds(ctx: Context) -> None:
    """A customer without money cannot buy a priced job, nor be debited below open-to-buy."""
    name = "errors: job without funds -> 402"
    response = _new_customer(ctx, "poor")
    if response.status_code != 201:
        ctx.rec.fail(name, f"creating the second customer: {_said(response)}")
        return
    poor = response.json()["id"]
    project_id: str | None = None
    inputs = known_inputs()
    priced = sorted(
        (
            t
            for t in ctx.global_types
            if t.get("enabled")
            and t["standard_cost_cents"] > 0
            and t["processing_logic_id"] in ctx.processors
            and t["processing_logic_id"] in inputs
        ),
        key=lambda t: t["standard_cost_cents"],
    )
    if priced:
        job_type_id, input_data = priced[0]["id"], inputs[priced[0]["processing_logic_id"]]
    else:
        chosen = _own_processor(ctx.processors)
        response = ctx.client.post("/projects", json={"customer_id": poor, "name": "Tester poor"})
        if chosen is None or response.status_code != 201:
            ctx.rec.skip(name, "no priced job type and none could be created")
            return
        project_id = response.json()["id"]
        processor, input_data = chosen
        response = ctx.client.post(
            "/job-types",
            json={
                "name": f"Tester priced {ctx.run_id}",
                "processing_logic_id": processor["logic_id"],
                "processor_type": processor["processor_type"],
                "standard_cost_cents": 100,
                "enabled": True,
                "project_id": project_id,
            },
        )
        if response.status_code != 201:
            ctx.rec.fail(name, f"creating a priced job type: {_said(response)}")
            return
        job_type_id = ctx.priced_type_id = response.json()["id"]

    before = _wallet_state(ctx, poor)
    body: dict[str, Any] = {
        "customer_id": poor,
        "job_type_id": job_type_id,
        "input_data": input_data,
    }
    if project_id:
        body["project_id"] = project_id
    response = ctx.client.post("/jobs", json=body)

    def no_job_no_hold() -> str | None:
        jobs = _list_all(ctx, "/jobs", {"customer_id": poor})
        return f"a job was created: {jobs[0]['id']}" if jobs else _unchanged(ctx, before, poor)

    _refused(ctx, name, response, NO_FUNDS, no_job_no_hold)

    response = ctx.client.post(
        ctx.wallet_path(poor) + "/adjustments",
        json={"amount_cents": -1, "reason": "tester: debit below open-to-buy"},
    )
    _refused(
        ctx,
        "errors: debit below open-to-buy -> 402",
        response,
        NO_FUNDS,
        lambda: _unchanged(ctx, before, poor),
    )


# --- step 6: cleanup ----------------------------------------------------------------------------
def step_cleanup(ctx: Context) -> None:
    """Archive what the run created (it has history, so it is archived, not deleted): a tester
    run leaves nothing active behind. Runs whatever happened before."""
    client = ctx.client
    archived = {"status": "archived"}
    if ctx.reseller_id is None:
        raise StepSkipped("no reseller was created")
    response = client.delete(f"/resellers/{ctx.reseller_id}")
    if ctx.customer_id is None:  # a reseller without customers has no history: deleted
        _answer(ctx, "cleanup: DELETE reseller (no history) -> 204", response, 204)
        return
    _answer(ctx, "cleanup: DELETE reseller archives it", response, 200, archived, "status")
    response = client.get(f"/customers/{ctx.customer_id}")
    _answer(ctx, "cleanup: its customer is archived too", response, 200, archived, "status")
    if ctx.project_id:
        response = client.get(f"/projects/{ctx.project_id}")
        _answer(ctx, "cleanup: its project is archived too", response, 200, archived, "status")

    if ctx.own_type is not None:
        own_id = ctx.own_type["id"]
        has_jobs = bool(client.get("/jobs", params={"job_type_id": own_id}).json()["items"])
        response = client.delete(f"/job-types/{own_id}")
        if has_jobs:
            wanted = {"status": "archived", "enabled": False}
            name = "cleanup: DELETE own job type (has jobs) archives it"
            _answer(ctx, name, response, 200, wanted, "status")
        else:
            _answer(ctx, "cleanup: DELETE own job type (no jobs) -> 204", response, 204)
    if ctx.priced_type_id is not None:
        response = client.delete(f"/job-types/{ctx.priced_type_id}")
        _answer(ctx, "cleanup: DELETE unused priced job type -> 204", response, 204)

    response = client.get(f"/resellers/{ctx.reseller_id}")
    _answer(ctx, "cleanup: reseller reads as archived", response, 200, archived, "status")


STEPS: tuple[tuple[str, Callable[[Context], None]], ...] = (
    ("health", step_system),
    ("tenants", step_tenants),
    ("jobs", step_jobs),
    ("money", step_money),
    ("errors", step_bad_requests),
    ("cleanup", step_cleanup),
)


def _run_step(ctx: Context, name: str, step: Callable[[Context], None]) -> None:
    """Run one step; whatever goes wrong in it is one FAIL row, and the next step still runs."""
    try:
        step(ctx)
    except StepSkipped as exc:
        ctx.rec.skip(f"{name}: (step)", str(exc))
    except httpx.HTTPError as exc:
        ctx.rec.fail(f"{name}: (step)", f"request failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # an answer of an unexpected shape is the server's failure
        ctx.rec.fail(f"{name}: (step)", f"aborted: {type(exc).__name__}: {exc}")


# --- command line -------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``innosystem tester``."""
    parser.add_argument("--url", required=True, help="base URL of the instance to test")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for jobs (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--token",
        default=os.environ.get("INNOSYSTEM_TOKEN") or None,
        help="bearer token sent as Authorization (default: $INNOSYSTEM_TOKEN)",
    )


def run(args: argparse.Namespace) -> int:
    """Run every step against ``args.url`` and print the results: 0 all passed, 1 a check
    failed, 2 the server cannot be reached (nothing was tested)."""
    url = args.url.rstrip("/")
    headers = {"User-Agent": f"innosystem-tester/{__version__}"}
    token = args.token or os.environ.get("INNOSYSTEM_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    rec = Recorder()
    try:
        client = httpx.Client(base_url=url, headers=headers, timeout=max(float(args.timeout), 10.0))
    except (httpx.InvalidURL, ValueError) as exc:
        return _unreachable(args, url, f"invalid URL: {exc}")
    with client:
        try:
            client.get("/health")
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            return _unreachable(args, url, f"{type(exc).__name__}: {exc}")
        ctx = Context(client=client, rec=rec, timeout=float(args.timeout))
        for name, step in STEPS:
            _run_step(ctx, name, step)

    code = 1 if rec.count(FAIL) else 0
    if args.json:
        print(json.dumps({**rec.as_json(url), "exit_code": code}, indent=2))
    else:
        print(rec.table())
    return code


def _unreachable(args: argparse.Namespace, url: str, reason: str) -> int:
    if args.json:
        print(json.dumps({"url": url, "error": f"cannot reach {url}: {reason}", "exit_code": 2}))
    else:
        print(f"innosystem tester: cannot reach {url}: {reason}", file=sys.stderr)
    return 2
