"""The first thing a user does: health, then one echo job from submit to succeeded."""

from helpers import create_job_type, create_tenant, wait_for_status


def test_health_names_database_and_broker(api):
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"


def test_echo_job_succeeds_and_is_paid_for(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-echo", cost=25)
    response = api.post(
        "/jobs",
        json={
            "customer_id": tenant.customer_id,
            "job_type_id": job_type["id"],
            "input_data": {"hello": "world"},
        },
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] in ("pending", "running", "succeeded")
    assert job["cost_cents"] == 25

    done = wait_for_status(api, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"] == {"echo": {"hello": "world"}}
    assert done["attempts"] == 1

    wallet = api.get(f"/customers/{tenant.customer_id}/wallet").json()
    assert wallet["balance_cents"] == 975
    assert wallet["held_cents"] == 0
    recon = api.get(f"/customers/{tenant.customer_id}/wallet/reconciliation").json()
    assert recon["matches"] is True
    events = api.get(f"/jobs/{job['id']}/events").json()["items"]
    assert [e["to_status"] for e in events] == ["pending", "running", "succeeded"]
