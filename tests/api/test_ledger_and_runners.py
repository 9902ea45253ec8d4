"""GET /customers/{id}/wallet/transactions (the ledger, newest first, paginated) and
GET /runners (every worker process and its status; more in test_queues.py)."""

from helpers import create_job_type, create_tenant, submit, wait_for, wait_for_status


def test_ledger_lists_every_money_move_newest_first_and_sums_to_the_wallet(api):
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-echo", cost=30)
    jobs = [submit(api, tenant.customer_id, job_type["id"], {"n": i}) for i in range(3)]
    for job in jobs:
        assert wait_for_status(api, job["id"])["status"] == "succeeded"

    rows, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/customers/{tenant.customer_id}/wallet/transactions", params=params)
        assert page.status_code == 200, page.text
        rows += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(rows) == 1 + 3 * 2  # one top-up, then a hold and a capture per job
    assert rows[-1]["kind"] == "top_up" and rows[-1]["job_id"] is None
    assert sorted(r["kind"] for r in rows[:-1]) == ["capture"] * 3 + ["hold"] * 3
    assert {r["job_id"] for r in rows[:-1]} == {j["id"] for j in jobs}
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    wallet = api.get(f"/customers/{tenant.customer_id}/wallet").json()
    assert sum(r["amount_cents"] for r in rows) == wallet["balance_cents"] == 910
    assert sum(r["held_delta_cents"] for r in rows) == wallet["held_cents"] == 0
    assert rows[0]["balance_after_cents"] == wallet["balance_cents"]


def test_ledger_bad_input(api):
    tenant = create_tenant(api, balance_cents=0)
    path = f"/customers/{tenant.customer_id}/wallet/transactions"
    assert api.get(path, params={"limit": 0}).status_code == 422
    assert api.get(path, params={"cursor": "garbage"}).status_code == 422
    missing = api.get("/customers/00000000-0000-4000-8000-00000000dead/wallet/transactions")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_runners_lists_the_serving_process_as_active(api, server):
    def mine() -> dict | None:
        items = api.get("/runners").json()["items"]
        found = [r for r in items if r["id"] == server.runner_id]
        assert len(found) == 1, items
        # A heartbeat is due every poll interval; a slow tick may leave it briefly stale.
        return found[0] if found[0]["status"] == "active" else None

    runner = wait_for(mine, timeout=10, what="the serving runner is active")
    assert runner["kind"] == "serve" and runner["stopped_at"] is None
    assert runner["pid"] == server.proc.pid
    assert "test-echo" in runner["supported_job_types"]
    assert runner["capacity"] >= 1
    assert runner["processed_count"] >= runner["failed_count"] >= 0
