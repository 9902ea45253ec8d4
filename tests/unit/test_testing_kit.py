"""The plugin-author kit (``innosystem.testing``, a pytest11 plugin): its fixtures run real jobs
through an in-process InnoSystem, and loading it costs the suites that do not use it nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from innosystem import JobCancelled
from innosystem.testing import innosystem_artifact_bytes, innosystem_job_context


async def test_echo_job_succeeds(innosystem_run_job):
    job = await innosystem_run_job("test-echo", {"greeting": "hi", "n": [1, 2]})

    assert job["status"] == "succeeded", job
    assert job["result"] == {"echo": {"greeting": "hi", "n": [1, 2]}}
    assert job["attempts"] == 1
    assert job["error"] is None


async def test_permanent_failure_fails_at_once(innosystem_run_job):
    job = await innosystem_run_job(
        "test-fail-n-times", {"failures": 5, "permanent": True}, job_type={"max_attempts": 3}
    )

    assert job["status"] == "failed", job
    assert job["attempts"] == 1  # PermanentError: no retry despite max_attempts=3
    assert job["error"]["type"] == "permanent"
    assert "permanent failure on attempt 1" in job["error"]["message"]


async def test_retryable_failure_is_retried(innosystem_run_job):
    job = await innosystem_run_job("test-fail-n-times", {"failures": 2})

    assert job["status"] == "succeeded", job
    assert job["result"] == {"succeeded_on_attempt": 3}


async def test_cpu_processor_runs_in_the_process_pool(innosystem_run_job):
    job = await innosystem_run_job("test-cpu-burn", {"n": 1000})

    assert job["status"] == "succeeded", job
    assert job["result"]["sum_of_squares"] == sum(i * i for i in range(1000))
    assert job["result"]["pid"] != os.getpid()


async def test_bad_input_is_refused_at_submit(
    innosystem_client, innosystem_tenant, innosystem_create_job_type
):
    job_type = await innosystem_create_job_type("test-sleep")
    assert job_type["processor_type"] == "async"  # taken from the installed processor

    response = await innosystem_client.post(
        "/jobs",
        json={
            "customer_id": innosystem_tenant["customer_id"],
            "job_type_id": job_type["id"],
            "input_data": {"seconds": -1},
        },
    )

    assert response.status_code == 422
    body = await response.get_json()
    assert [d["field"] for d in body["error"]["details"]] == ["input_data.seconds"]


async def test_processors_endpoint_lists_the_installed_plugins(innosystem_client):
    response = await innosystem_client.get("/processors")

    assert response.status_code == 200
    logic_ids = {p["logic_id"] for p in (await response.get_json())["items"]}
    assert {"test-echo", "test-fail-n-times"} <= logic_ids


async def test_artifacts_written_by_a_job_are_served(innosystem_run_job, innosystem_client):
    job = await innosystem_run_job(
        "test-write-artifact", {"name": "out.txt", "text": "hello", "content_type": "text/plain"}
    )

    assert job["status"] == "succeeded", job
    assert job["result"]["artifact"]["size_bytes"] == 5
    listing = await (await innosystem_client.get(f"/jobs/{job['id']}/artifacts")).get_json()
    assert [a["name"] for a in listing["items"]] == ["out.txt"]
    download = await innosystem_client.get(f"/jobs/{job['id']}/artifacts/out.txt")
    assert download.status_code == 200
    assert await download.get_data() == b"hello"


async def test_uploads_are_read_by_a_job(innosystem_client, innosystem_tenant, innosystem_run_job):
    response = await innosystem_client.post(
        "/artifacts",
        query_string={"customer_id": innosystem_tenant["customer_id"], "name": "in.csv"},
        data=b"a,b\n1,2\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, await response.get_data()
    upload = await response.get_json()

    job = await innosystem_run_job("test-read-upload", {"artifact_id": upload["id"]})

    assert job["status"] == "succeeded", job
    assert job["result"] == {"size": 8, "sha256": upload["sha256"]}


def test_direct_context_records_progress_and_cancellation():
    progress: list[dict] = []
    ctx = innosystem_job_context(attempt=2, progress=progress)
    ctx.report_progress(done=1, total=3)
    assert ctx.attempt == 2
    assert progress == [{"done": 1, "total": 3}]
    ctx.raise_if_cancelled()  # not cancelled: no-op

    with pytest.raises(JobCancelled):
        innosystem_job_context(cancelled=True).raise_if_cancelled()


def test_loading_the_plugin_imports_neither_quart_nor_tortoise():
    code = (
        "import json, sys, innosystem.testing; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('quart', 'tortoise', 'hypercorn', 'dramatiq'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []


def test_the_plugin_is_registered_with_pytest(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("innosystem")


def test_direct_context_keeps_artifacts_in_memory():
    upload_id = str(uuid.uuid4())
    ctx = innosystem_job_context(uploads={upload_id: b"input bytes"})

    assert ctx.artifacts.read(upload_id) == b"input bytes"
    with pytest.raises(FileNotFoundError):
        ctx.artifacts.read(str(uuid.uuid4()))
    meta = ctx.artifacts.put("out.bin", b"\x00\x01", "application/octet-stream")
    assert meta["size_bytes"] == 2
    assert innosystem_artifact_bytes(ctx, "out.bin") == b"\x00\x01"
