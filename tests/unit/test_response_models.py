"""The OpenAPI document is generated from the ``*Out`` models; the handlers answer with the
``*_dict`` serializers. These tests keep the two identical, field for field, so the published
schema is what clients really get."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from innosystem.api import schemas
from innosystem.api.openapi import build_spec, undocumented
from innosystem.app import create_app
from innosystem.config import load_settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def ns(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def ids(*names: str) -> dict[str, uuid.UUID]:
    return {name: uuid.uuid4() for name in names}


def wallet() -> SimpleNamespace:
    return ns(
        **ids("id", "customer_id"),
        currency="EUR",
        balance_cents=100,
        held_cents=10,
        credit_limit_cents=5,
        open_to_buy_cents=95,
    )


def transaction() -> SimpleNamespace:
    return ns(
        **ids("id", "job_id"),
        kind="hold",
        amount_cents=0,
        held_delta_cents=10,
        balance_after_cents=100,
        held_after_cents=10,
        reference="",
        created_at=NOW,
    )


CASES: list[tuple[type[BaseModel], Any, Any]] = [
    (
        schemas.ResellerOut,
        schemas.reseller_dict,
        ns(id=uuid.uuid4(), name="r", status="active", created_at=NOW, updated_at=NOW),
    ),
    (
        schemas.CustomerOut,
        schemas.customer_dict,
        ns(
            **ids("id", "reseller_id"),
            name="c",
            email="c@example.com",
            status="active",
            created_at=NOW,
            updated_at=NOW,
        ),
    ),
    (
        schemas.ProjectOut,
        schemas.project_dict,
        ns(
            **ids("id", "customer_id"),
            name="p",
            description="",
            status="archived",
            created_at=NOW,
            updated_at=NOW,
        ),
    ),
    (
        schemas.JobTypeOut,
        schemas.job_type_dict,
        ns(
            id=uuid.uuid4(),
            name="t",
            description="",
            processing_logic_id="test-echo",
            processor_type="async",
            standard_cost_cents=5,
            enabled=True,
            status="active",
            project_id=None,
            default_priority="normal",
            max_attempts=3,
            backoff_base_ms=1,
            backoff_max_ms=2,
            backoff_strategy="exponential",
            timeout_seconds=3,
            sync_timeout_ms=4,
            batch_max_failed_items=None,
            created_at=NOW,
            updated_at=NOW,
        ),
    ),
    (
        schemas.JobOut,
        schemas.job_dict,
        ns(
            **ids("id", "customer_id", "job_type_id"),
            project_id=None,
            status="succeeded",
            priority="high",
            input_data={"a": 1},
            result={"ok": True},
            error=None,
            cost_cents=5,
            attempts=1,
            runner_id="r-1",
            progress={"total": 3, "succeeded": 2, "failed": 1},
            cancel_requested_at=None,
            schedule_id=None,
            run_at=None,
            created_at=NOW,
            updated_at=NOW,
            started_at=NOW,
            finished_at=NOW,
        ),
    ),
    (
        schemas.EventOut,
        schemas.event_dict,
        ns(
            id=7,
            job_id=uuid.uuid4(),
            from_status=None,
            to_status="pending",
            attempt=0,
            runner_id=None,
            message="submitted",
            created_at=NOW,
        ),
    ),
    (
        schemas.AttemptOut,
        schemas.attempt_dict,
        ns(
            number=2,
            runner_id="r-1",
            started_at=NOW,
            finished_at=NOW,
            outcome="retrying",
            error_type="exception",
            error_message="ValueError: boom",
            traceback="Traceback (most recent call last): ...",
        ),
    ),
    (schemas.WalletOut, schemas.wallet_dict, wallet()),
    (schemas.TransactionOut, schemas.transaction_dict, transaction()),
    (
        schemas.WalletChangeOut,
        schemas.wallet_change_dict,
        ns(wallet=wallet(), transaction=transaction()),
    ),
    (
        schemas.ArtifactOut,
        schemas.artifact_dict,
        ns(
            **ids("id", "customer_id"),
            job_id=None,
            kind="upload",
            name="a.csv",
            content_type="text/csv",
            size_bytes=3,
            sha256="0" * 64,
            created_at=NOW,
        ),
    ),
    (
        schemas.ScheduleOut,
        schemas.schedule_dict,
        ns(
            **ids("id", "customer_id", "job_type_id", "last_job_id"),
            project_id=None,
            name="nightly",
            input_data={"a": 1},
            priority=None,
            cron="0 9 * * *",
            timezone="Europe/Berlin",
            enabled=True,
            next_run_at=NOW,
            last_run_at=NOW,
            last_error="wallet empty",
            created_at=NOW,
            updated_at=NOW,
        ),
    ),
]


@pytest.mark.parametrize(
    ("model", "serialize", "obj"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_serializer_answers_exactly_its_response_model(model, serialize, obj):
    body = serialize(obj)
    assert set(body) == {f.alias or name for name, f in model.model_fields.items()}
    model.model_validate(body)


def test_runner_serializer_matches_its_model():
    runner = ns(
        id="host-1",
        kind="serve",
        hostname="host",
        pid=1,
        supported_job_types=["test-echo"],
        capacity=8,
        in_flight=0,
        processed_count=3,
        failed_count=1,
        started_at=NOW,
        heartbeat_at=NOW,
        stopped_at=None,
    )
    body = schemas.runner_dict(runner, "active")
    assert set(body) == set(schemas.RunnerOut.model_fields)
    schemas.RunnerOut.model_validate(body)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('oa')}/db.sqlite3"
    return create_app(load_settings(env={"INNOSYSTEM_DATABASE_URL": url}))


def test_every_route_is_in_the_openapi_document(app):
    assert undocumented(app) == []
    spec = build_spec(app)
    assert spec["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<uuid:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], f"{method} {path}"


def test_every_operation_documents_its_errors_with_the_envelope(app):
    spec = build_spec(app)
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            errors = {code: r for code, r in op["responses"].items() if code.startswith("4")}
            if "{" in path:
                assert "404" in errors, f"{method} {path}"
            if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
                assert {"400", "413", "415", "422"} <= set(errors), f"{method} {path}"
            for response in errors.values():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}
            assert "503" in op["responses"]
