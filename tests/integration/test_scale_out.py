"""Scale-out: ``innosystem serve`` plus ``innosystem worker`` processes on one database and one
Redis broker share the work; a worker honours SUPPORTED_JOB_TYPES; duplicate broker messages
never run a job twice. ``innosystem worker`` refuses the per-process memory broker.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    BROKER_URL,
    IS_REDIS,
    all_jobs,
    assert_reconciled,
    clean_env,
    create_job_type,
    create_tenant,
    events_of,
    ledger_kinds_by_job,
    namespace_for,
    run_cli,
    running,
    start_worker,
    submit_many,
    wait_all_final,
    wallet_of,
)

needs_redis = pytest.mark.skipif(
    not IS_REDIS,
    reason="scale-out needs a shared broker: set INNOSYSTEM_BROKER_URL=redis://... "
    "(the memory broker lives inside one process)",
)


# --- small helpers ------------------------------------------------------------------------------
def runs_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["to_status"] == "running"]


# --- the worker command refuses the memory broker ------------------------------------------------
def test_worker_with_memory_broker_exits_2_with_one_line(tmp_path: Path):
    env = clean_env(
        INNOSYSTEM_BROKER_URL="memory://",
        INNOSYSTEM_DATABASE_URL=f"sqlite://{tmp_path / 'w.sqlite3'}",
        INNOSYSTEM_DATA_DIR=str(tmp_path),
    )
    result = run_cli("worker", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("innosystem: error: ")
    assert "INNOSYSTEM_BROKER_URL" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- serve + two workers --------------------------------------------------------------------------
@needs_redis
def test_serve_and_two_workers_share_the_jobs(make_server):
    serve = make_server()
    workers = [
        make_server(
            serve.database_url,
            command="worker",
            runner_id=f"test-worker-{n}-{uuid.uuid4().hex[:4]}",
        )
        for n in (1, 2)
    ]
    with running(serve, *workers), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        for worker in workers:
            start_worker(worker)
        tenant = create_tenant(client, balance_cents=1_000)
        job_type = create_job_type(client, "test-sleep", cost=5, backoff_base_ms=50)

        jobs = submit_many(client, tenant.customer_id, [(job_type["id"], {"seconds": 0.2})] * 60)
        ids = {j["id"] for j in jobs}
        assert len(ids) == 60
        done = wait_all_final(client, tenant.customer_id, [serve, *workers])

        assert {j["id"] for j in done} == ids
        assert {j["status"] for j in done} == {"succeeded"}
        runner_ids = {j["runner_id"] for j in done}
        worker_ids = {w.runner_id for w in workers}
        assert runner_ids <= worker_ids | {serve.runner_id}, runner_ids
        assert runner_ids & worker_ids, f"no worker ran a job: {runner_ids}"
        for job in done:
            runs = runs_of(events_of(client, job["id"]))
            assert len(runs) == 1 and job["attempts"] == 1, runs
            assert runs[0]["runner_id"] == job["runner_id"]
        assert ledger_kinds_by_job(serve.database_url, tenant.customer_id) == {
            job_id: ["capture", "hold"] for job_id in ids
        }
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000 - 60 * 5, 0)
        assert_reconciled(client, tenant.customer_id)
        print(
            "jobs per runner:",
            {r: sum(j["runner_id"] == r for j in done) for r in sorted(runner_ids)},
        )


@needs_redis
def test_worker_runs_only_its_supported_job_types(make_server):
    # The API process runs only test-noop, the worker only test-echo: each job type has exactly
    # one home, so every job shows where it may run.
    serve = make_server(env={"SUPPORTED_JOB_TYPES": "test-noop"})
    worker = make_server(
        serve.database_url, command="worker", env={"SUPPORTED_JOB_TYPES": "test-echo"}
    )
    with running(serve, worker), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        start_worker(worker)
        tenant = create_tenant(client, balance_cents=1_000)
        echo = create_job_type(client, "test-echo", cost=2)
        noop = create_job_type(client, "test-noop", cost=3)
        specs = [(echo["id"], {"i": i}) if i % 2 else (noop["id"], {}) for i in range(20)]

        jobs = submit_many(client, tenant.customer_id, specs)
        done = wait_all_final(client, tenant.customer_id, [serve, worker])

        assert len(done) == 20
        assert {j["status"] for j in done} == {"succeeded"}
        for job in done:
            expected = worker.runner_id if job["job_type_id"] == echo["id"] else serve.runner_id
            assert job["runner_id"] == expected, job
            runs = runs_of(events_of(client, job["id"]))
            assert [r["runner_id"] for r in runs] == [expected]
        assert sum(j["job_type_id"] == echo["id"] for j in done) == 10
        assert {j["id"] for j in jobs} == {j["id"] for j in done}
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000 - 10 * 2 - 10 * 3, 0)
        assert_reconciled(client, tenant.customer_id)


# --- at-least-once delivery, exactly-once execution ----------------------------------------------
def inject_duplicates(namespace: str, job_ids: list[str], copies: int, due: datetime) -> None:
    """Put extra "run job X" messages on the deployment's queue, as a redelivering broker would:
    delayed so that they all fall due together, just after the jobs' own ``run_at``."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=BROKER_URL, namespace=namespace, middleware=[])
    try:
        broker.declare_queue("jobs")
        for job_id in job_ids:
            for _ in range(copies):
                delay_ms = int((due - datetime.now(UTC)).total_seconds() * 1000)
                assert delay_ms > 0, "injecting took too long; the jobs are already due"
                broker.enqueue(
                    dramatiq.Message(
                        queue_name="jobs",
                        actor_name="run_job",
                        args=(job_id,),
                        kwargs={},
                        options={},
                    ),
                    delay=delay_ms,
                )
    finally:
        broker.close()


@needs_redis
def test_duplicate_messages_run_each_job_once(make_server):
    # 30 jobs fall due at one moment, each with its own message plus ten duplicates; the API
    # process and a worker (8 threads each) race through all 330 deliveries.
    serve = make_server()
    worker = make_server(serve.database_url, command="worker")
    with running(serve, worker), httpx.Client(base_url=serve.url, timeout=30) as client:
        serve.start()
        start_worker(worker)
        tenant = create_tenant(client, balance_cents=1_000)
        echo = create_job_type(client, "test-echo", cost=4)
        run_at = datetime.now(UTC) + timedelta(seconds=4)
        jobs = submit_many(
            client,
            tenant.customer_id,
            [(echo["id"], {"i": i}) for i in range(30)],
            run_at=run_at.isoformat(),
        )
        ids = [j["id"] for j in jobs]
        inject_duplicates(
            namespace_for(serve.database_url), ids, 10, run_at + timedelta(milliseconds=50)
        )
        assert {j["status"] for j in all_jobs(client, tenant.customer_id)} == {"pending"}

        done = wait_all_final(client, tenant.customer_id, [serve, worker])

        assert {j["status"] for j in done} == {"succeeded"}
        for job in done:
            events = events_of(client, job["id"])
            assert job["attempts"] == 1
            assert [(e["from_status"], e["to_status"]) for e in events] == [
                (None, "pending"),
                ("pending", "running"),
                ("running", "succeeded"),
            ], events
        assert ledger_kinds_by_job(serve.database_url, tenant.customer_id) == {
            job_id: ["capture", "hold"] for job_id in ids
        }
        wallet = wallet_of(client, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000 - 30 * 4, 0)
        assert_reconciled(client, tenant.customer_id)
        print(
            "jobs per runner:",
            {r: sum(j["runner_id"] == r for j in done) for r in {j["runner_id"] for j in done}},
        )
