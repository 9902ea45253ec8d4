"""Artifacts over real HTTP: uploads as job inputs, processors' output files (io and CPU pool),
tenant-safe reads, and nothing served from a failed attempt."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from helpers import create_job_type, create_tenant, wait_for_status


def upload(
    api: httpx.Client, customer_id: str, name: str, data: bytes, content_type: str = "text/csv"
) -> httpx.Response:
    return api.post(
        "/artifacts",
        params={"customer_id": customer_id, "name": name},
        content=data,
        headers={"Content-Type": content_type},
    )


def run(api: httpx.Client, customer_id: str, logic_id: str, input_data: dict) -> dict:
    job_type = create_job_type(api, logic_id, cost=2)
    response = api.post(
        "/jobs",
        json={"customer_id": customer_id, "job_type_id": job_type["id"], "input_data": input_data},
    )
    assert response.status_code == 201, response.text
    return wait_for_status(api, response.json()["id"])


def test_upload_is_stored_and_readable_by_its_customers_jobs(api):
    tenant = create_tenant(api, balance_cents=1_000)
    data = b"id,name\n1,Alice\n2,Bob\n"
    response = upload(api, tenant.customer_id, "people.csv", data)
    assert response.status_code == 201, response.text
    artifact = response.json()
    assert artifact["kind"] == "upload" and artifact["size_bytes"] == len(data)
    assert artifact["sha256"] == hashlib.sha256(data).hexdigest()
    assert api.get(f"/artifacts/{artifact['id']}").json()["content_type"] == "text/csv"

    job = run(api, tenant.customer_id, "test-read-upload", {"artifact_id": artifact["id"]})
    assert job["status"] == "succeeded", job["error"]
    assert job["result"] == {"size": len(data), "sha256": artifact["sha256"]}


def test_another_customers_upload_cannot_be_read(api):
    owner = create_tenant(api, balance_cents=1_000)
    intruder = create_tenant(api, balance_cents=1_000)
    artifact = upload(api, owner.customer_id, "secret.txt", b"owner only").json()
    job = run(api, intruder.customer_id, "test-read-upload", {"artifact_id": artifact["id"]})
    assert job["status"] == "failed"
    assert "no upload" in job["error"]["message"]
    assert "owner only" not in str(job)


@pytest.mark.parametrize("logic_id", ["test-write-artifact", "test-write-artifact-cpu"])
def test_processor_output_files_are_served_with_type_and_length(api, server, logic_id):
    tenant = create_tenant(api, balance_cents=1_000)
    text = "report body, ünïcode included"
    job = run(
        api,
        tenant.customer_id,
        logic_id,
        {"name": "report.txt", "text": text, "content_type": "text/plain; charset=utf-8"},
    )
    assert job["status"] == "succeeded", job["error"]
    if logic_id.endswith("-cpu"):
        assert job["result"]["pid"] != server.proc.pid  # written from the process pool
    listing = api.get(f"/jobs/{job['id']}/artifacts").json()["items"]
    assert [(a["name"], a["kind"], a["size_bytes"]) for a in listing] == [
        ("report.txt", "output", len(text.encode()))
    ]
    download = api.get(f"/jobs/{job['id']}/artifacts/report.txt")
    assert download.status_code == 200
    assert download.content == text.encode()
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    assert download.headers["content-length"] == str(len(text.encode()))
    assert api.get(f"/jobs/{job['id']}/artifacts/other.txt").status_code == 404


def test_a_failed_attempts_files_are_not_served(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job = run(
        api,
        tenant.customer_id,
        "test-write-artifact",
        {"name": "partial.txt", "text": "half", "fail_after_write": True},
    )
    assert job["status"] == "failed"
    assert api.get(f"/jobs/{job['id']}/artifacts").json()["items"] == []
    assert api.get(f"/jobs/{job['id']}/artifacts/partial.txt").status_code == 404


def test_bad_uploads_are_refused_with_the_envelope(api):
    tenant = create_tenant(api, balance_cents=1_000)
    cases = [
        (api.post("/artifacts", params={"name": "a.txt"}, content=b"x"), 422, "customer_id"),
        (upload(api, "00000000-0000-4000-8000-00000000dead", "a.txt", b"x"), 404, "customer_id"),
        (upload(api, tenant.customer_id, "../etc/passwd", b"x"), 422, "name"),
        (upload(api, tenant.customer_id, "", b"x"), 422, "name"),
        (upload(api, tenant.customer_id, "empty.txt", b""), 422, "body"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["details"][0]["field"] == field
    assert api.get("/jobs/00000000-0000-4000-8000-00000000dead/artifacts").status_code == 404
    assert api.get("/artifacts/00000000-0000-4000-8000-00000000dead").status_code == 404


def test_upload_over_the_limit_is_413_and_json_bodies_keep_their_own_limit(make_server):
    srv = make_server(
        env={"INNOSYSTEM_MAX_ARTIFACT_BYTES": "4096", "INNOSYSTEM_MAX_BODY_BYTES": "2048"}
    ).start()
    with httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=1_000)
        big = upload(api, tenant.customer_id, "big.bin", b"x" * 5000)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"
        assert upload(api, tenant.customer_id, "ok.bin", b"x" * 3000).status_code == 201
        # An upload-sized JSON body is still over the JSON limit.
        response = api.post("/resellers", json={"name": "x" * 3000})
        assert response.status_code == 413
        assert api.get("/health").status_code == 200  # the connection survived
