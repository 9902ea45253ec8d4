"""Retention (docs/ARCHITECTURE.md "Retention"): ``innosystem prune`` and the sweeper's automatic
pruning delete old finished jobs with their events, attempts, output artifacts and files, and old
uploads, in bounded batches; pending, running and recent jobs stay, and the ledger is never
touched, so wallets still reconcile.

Jobs are run for real on a served app; "old" is made by writing a past ``finished_at`` (or an
upload's ``created_at``) straight into the database, as the clock reaching it would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from helpers import (
    IS_POSTGRES,
    ServerProcess,
    assert_reconciled,
    clean_env,
    create_job_type,
    create_tenant,
    db_query,
    later,
    run_cli,
    running,
    submit,
    submit_many,
    wait_for,
    wait_for_status,
    wallet_of,
)

OLD = datetime.now(UTC) - timedelta(days=3)


# --- helpers ------------------------------------------------------------------------------------
def _db_time(moment: datetime) -> Any:
    # Written the way Tortoise writes it: SQLite compares the text, PostgreSQL a timestamptz.
    if IS_POSTGRES:
        return moment
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def backdate(database_url: str, job_ids: Iterable[str], moment: datetime = OLD) -> None:
    for job_id in job_ids:
        db_query(
            database_url,
            "UPDATE jobs SET finished_at = {} WHERE id = {}",
            [_db_time(moment), uuid.UUID(job_id)],
        )


def count_rows(database_url: str, table: str, job_id: str) -> int:
    rows = db_query(
        database_url, f"SELECT COUNT(*) AS n FROM {table} WHERE job_id = {{}}", [uuid.UUID(job_id)]
    )
    return int(rows[0]["n"])


def ledger(database_url: str, customer_id: str) -> list[tuple[Any, ...]]:
    rows = db_query(
        database_url,
        "SELECT t.id, t.kind, t.job_id, t.amount_cents, t.held_delta_cents "
        "FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id "
        "WHERE w.customer_id = {} ORDER BY t.id",
        [uuid.UUID(customer_id)],
    )
    return [tuple(str(v) for v in row.values()) for row in rows]


def prune(srv: ServerProcess, *args: str, **env: str) -> Any:
    """``innosystem prune ARGS --json`` against the server's database and data dir."""
    result = run_cli(
        "prune",
        *args,
        cwd=srv.data_dir,
        env=clean_env(
            INNOSYSTEM_DATABASE_URL=srv.database_url,
            INNOSYSTEM_DATA_DIR=str(srv.data_dir),
            **env,
        ),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result


def prune_json(srv: ServerProcess, *args: str) -> dict[str, Any]:
    return json.loads(prune(srv, *args, "--json").stdout.strip().splitlines()[-1])


def upload(api: httpx.Client, customer_id: str, name: str) -> dict[str, Any]:
    response = api.post(
        "/artifacts",
        params={"customer_id": customer_id, "name": name},
        content=b"some,bytes\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def output_dir(srv: ServerProcess, job_id: str) -> Path:
    return srv.data_dir / "artifacts" / "jobs" / job_id


def served(make_server: Callable[..., ServerProcess], **env: str) -> ServerProcess:
    return make_server(env=env).start()


def finished(api: httpx.Client, jobs: list[dict[str, Any]]) -> list[str]:
    ids = [job["id"] for job in jobs]
    for job_id in ids:
        assert wait_for_status(api, job_id)["status"] in ("succeeded", "failed", "cancelled")
    return ids


# --- tests --------------------------------------------------------------------------------------
def test_prune_deletes_old_finished_jobs_and_keeps_the_rest_and_the_ledger(make_server):
    srv = served(make_server)
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=10_000)
        cid = tenant.customer_id
        echo = create_job_type(api, "test-echo", cost=7)
        writer = create_job_type(api, "test-write-artifact", cost=5)
        failing = create_job_type(api, "test-fail-n-times", cost=3, max_attempts=2)
        sleeper = create_job_type(api, "test-sleep", cost=2)

        old_ok = [submit(api, cid, echo["id"], {"n": i}) for i in range(3)]
        old_files = [
            submit(api, cid, writer["id"], {"name": "out.txt", "text": f"old {i}"})
            for i in range(2)
        ]
        old_failed = [submit(api, cid, failing["id"], {"failures": 5, "permanent": True})]
        to_cancel = submit(api, cid, echo["id"], {"n": 9}, run_at=later())
        assert api.post(f"/jobs/{to_cancel['id']}/cancel").status_code == 200
        old = finished(api, old_ok + old_files + old_failed + [to_cancel])
        recent = finished(
            api, [submit(api, cid, writer["id"], {"name": "out.txt", "text": "recent"})]
        )
        pending = submit(api, cid, echo["id"], {"n": 1}, run_at=later())
        busy = submit(api, cid, sleeper["id"], {"seconds": 120})
        wait_for_status(api, busy["id"], ("running",))
        for job_id in [old_files[0]["id"], recent[0]]:
            assert output_dir(srv, job_id).is_dir()
        old_upload = upload(api, cid, "old.csv")
        new_upload = upload(api, cid, "new.csv")

        backdate(srv.database_url, old)
        # A pending or running job is never pruned, whatever its finished_at says.
        backdate(srv.database_url, [pending["id"], busy["id"]])
        db_query(
            srv.database_url,
            "UPDATE artifacts SET created_at = {} WHERE id = {}",
            [_db_time(OLD), uuid.UUID(old_upload["id"])],
        )
        ledger_before = ledger(srv.database_url, cid)
        wallet_before = wallet_of(api, cid)
        assert {str(uuid.UUID(j)) for j in old} <= {row[2] for row in ledger_before}
        events_before = {j: count_rows(srv.database_url, "job_events", j) for j in old}
        assert all(events_before.values())

        result = prune(srv, "--older-than-days", "1")
        line = result.stdout.strip()
        assert len(line.splitlines()) == 1, line
        assert line.startswith(f"prune: deleted {len(old)} jobs, "), line
        assert "2 outputs, 1 uploads" in line and "in 1 batches" in line, line

        for job_id in old:
            assert api.get(f"/jobs/{job_id}").status_code == 404
            for table in ("job_events", "job_attempts", "artifacts"):
                assert count_rows(srv.database_url, table, job_id) == 0, (table, job_id)
            assert not output_dir(srv, job_id).exists()
        assert api.get(f"/artifacts/{old_upload['id']}").status_code == 404
        assert not (srv.data_dir / "artifacts" / "uploads" / cid / old_upload["id"]).exists()

        # What stays: recent, pending and running jobs, their events and files, new uploads.
        for job_id in [*recent, pending["id"], busy["id"]]:
            assert api.get(f"/jobs/{job_id}").status_code == 200
            assert count_rows(srv.database_url, "job_events", job_id) > 0
        assert api.get(f"/jobs/{recent[0]}/artifacts/out.txt").content == b"recent"
        assert api.get(f"/jobs/{busy['id']}").json()["status"] == "running"
        assert api.get(f"/artifacts/{new_upload['id']}").status_code == 200

        # The ledger is never pruned, so money still reconciles.
        assert ledger(srv.database_url, cid) == ledger_before
        assert wallet_of(api, cid) == wallet_before
        assert_reconciled(api, cid)

        # Nothing left to prune: a second run deletes nothing.
        again = prune_json(srv, "--older-than-days", "1")
        assert again["jobs"] == 0 and again["uploads"] == 0 and again["batches"] == 0, again
        api.post(f"/jobs/{busy['id']}/cancel")


def test_dry_run_counts_and_batches_are_bounded(make_server):
    srv = served(make_server)
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=10_000)
        echo = create_job_type(api, "test-echo", cost=1)
        jobs = submit_many(api, tenant.customer_id, [(echo["id"], {"n": i}) for i in range(37)])
        ids = finished(api, jobs)
        old, recent = ids[:35], ids[35:]
        backdate(srv.database_url, old)
        events = sum(count_rows(srv.database_url, "job_events", j) for j in old)
        attempts = sum(count_rows(srv.database_url, "job_attempts", j) for j in old)

        plan = prune_json(srv, "--older-than-days", "1", "--batch", "10", "--dry-run")
        assert plan["dry_run"] is True
        assert (plan["jobs"], plan["events"], plan["attempts"]) == (35, events, attempts), plan
        assert plan["batches"] == 4, plan
        assert all(api.get(f"/jobs/{j}").status_code == 200 for j in ids)
        assert "would delete 35 jobs" in prune(srv, "--older-than-days", "1", "--dry-run").stdout

        done = prune_json(srv, "--older-than-days", "1", "--batch", "10")
        assert done["dry_run"] is False
        assert (done["jobs"], done["events"], done["attempts"]) == (35, events, attempts), done
        assert done["batches"] == 4, done
        assert all(api.get(f"/jobs/{j}").status_code == 404 for j in old)
        assert all(api.get(f"/jobs/{j}").status_code == 200 for j in recent)
        assert_reconciled(api, tenant.customer_id)


def test_concurrent_pruners_split_the_work(make_server):
    """Several pruners at once (as many processes' sweepers are): each job is deleted once, none
    fails, and the counts add up."""
    srv = served(make_server)
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=10_000)
        echo = create_job_type(api, "test-echo", cost=1)
        jobs = submit_many(api, tenant.customer_id, [(echo["id"], {"n": i}) for i in range(60)])
        ids = finished(api, jobs)
        backdate(srv.database_url, ids)
        env = clean_env(
            INNOSYSTEM_DATABASE_URL=srv.database_url, INNOSYSTEM_DATA_DIR=str(srv.data_dir)
        )
        args = ["prune", "--older-than-days", "1", "--batch", "10", "--json"]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "innosystem", *args],
                env=env,
                cwd=srv.data_dir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
        reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        assert sum(r["jobs"] for r in reports) == 60, reports
        assert all(api.get(f"/jobs/{j}").status_code == 404 for j in ids)
        assert_reconciled(api, tenant.customer_id)


def test_prune_refuses_without_an_age_and_bad_flags(tmp_path):
    env = clean_env(INNOSYSTEM_DATABASE_URL=f"sqlite://{tmp_path / 'never-opened.sqlite3'}")
    missing = run_cli("prune", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert "--older-than-days" in missing.stderr, missing.stderr
    for args, named in [
        (("--older-than-days", "0"), "--older-than-days"),
        (("--older-than-days", "x"), "--older-than-days"),
        (("--older-than-days", "1", "--batch", "5"), "--batch"),
    ]:
        bad = run_cli("prune", *args, cwd=tmp_path, env=env)
        assert bad.returncode == 2 and named in bad.stderr, (args, bad.stderr)
    bad_env = run_cli("prune", cwd=tmp_path, env={**env, "INNOSYSTEM_RETENTION_DAYS": "-1"})
    assert bad_env.returncode == 2 and "INNOSYSTEM_RETENTION_DAYS" in bad_env.stderr
    assert not (tmp_path / "never-opened.sqlite3").exists()


def test_the_sweeper_prunes_automatically_when_retention_days_is_set(make_server):
    srv = served(make_server, INNOSYSTEM_RETENTION_DAYS="1", INNOSYSTEM_RETENTION_BATCH="10")
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
        tenant = create_tenant(api, balance_cents=10_000)
        writer = create_job_type(api, "test-write-artifact", cost=4)
        jobs = submit_many(
            api,
            tenant.customer_id,
            [(writer["id"], {"name": "out.txt", "text": f"t{i}"}) for i in range(25)],
        )
        ids = finished(api, jobs)
        old, recent = ids[:22], ids[22:]
        ledger_before = ledger(srv.database_url, tenant.customer_id)
        backdate(srv.database_url, old)

        # One batch of 10 per pass: three passes at least, a few seconds at most.
        wait_for(
            lambda: all(api.get(f"/jobs/{j}").status_code == 404 for j in old),
            timeout=30,
            interval=0.25,
            what="the sweeper prunes the back-dated jobs",
            servers=[srv],
        )
        assert not any(output_dir(srv, j).exists() for j in old)
        assert all(api.get(f"/jobs/{j}").status_code == 200 for j in recent)
        assert all(output_dir(srv, j).is_dir() for j in recent)
        assert ledger(srv.database_url, tenant.customer_id) == ledger_before
        assert_reconciled(api, tenant.customer_id)
        assert "retention: prune: deleted 10 jobs" in srv.logs()
