"""Scale-out under a crash, on PostgreSQL + Redis: ``innosystem serve`` (4 threads) and two
``innosystem worker`` processes (A: 4 threads, every job type; B: 2 threads, only
``test-record`` and ``test-echo``) share 2,000 mixed jobs on one database and one broker. Worker
A is SIGKILLed when about a third of the jobs are done.

Every job still reaches its final state (A's running jobs come back once their 5 s lease
expires), no job ran on a runner that does not serve its logic id, no job succeeded twice, no
runner ran more jobs at once than its ``MAX_CONCURRENT_JOBS``, and every wallet reconciles with
one hold and one capture (or release) per job.

Where and when jobs ran is read from two independent sources: the attempt rows
(``GET /jobs/{id}/attempts``; read straight from ``job_attempts`` for 2,000 jobs, with a sample
compared to the HTTP answer) and the lines the ``test-record`` processor appends, in each
process, at the end of each call (job id, attempt, runner id, start, end).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    FINAL,
    IS_POSTGRES,
    IS_REDIS,
    all_jobs,
    assert_reconciled,
    create_job_type,
    create_tenant,
    db_query,
    ledger_kinds_by_job,
    running,
    server_logs,
    start_worker,
    submit_many,
    wait_for,
    wallet_of,
)

pytestmark = [
    pytest.mark.crash,
    pytest.mark.skipif(
        not (IS_REDIS and IS_POSTGRES),
        reason="scale-out with a crash needs PostgreSQL and a shared broker: set "
        "INNOSYSTEM_DATABASE_URL=postgres://... and INNOSYSTEM_BROKER_URL=redis://...",
    ),
]

THREADS = {"serve": 4, "a": 4, "b": 2}
B_SUPPORTS = ("test-echo", "test-record")
INITIAL = 20_000


def read_records(directory: Path) -> list[tuple[str, int, str, float, float, str]]:
    """Every line the ``test-record`` processor wrote, in any process: (job id, attempt,
    runner id, start, end, ``ok``/``fail``)."""
    records = []
    for path in sorted(directory.glob("*.log")):
        for line in path.read_text().splitlines():
            job_id, attempt, runner_id, start, end, outcome = line.split("\t")
            records.append((job_id, int(attempt), runner_id, float(start), float(end), outcome))
    return records


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end] open at one moment (one ending as another starts at the
    same instant do not overlap)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in points:  # at a tie, -1 sorts before +1
        current += step
        best = max(best, current)
    return best


def count_final(database_url: str, customer_id: str) -> int:
    rows = db_query(
        database_url,
        "SELECT count(*) AS n FROM jobs WHERE customer_id = {} AND status = ANY({})",
        [uuid.UUID(customer_id), list(FINAL)],
    )
    return rows[0]["n"]


def test_two_workers_and_serve_with_a_sigkill_mid_run(make_server, tmp_path):
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    common = {"INNOSYSTEM_TEST_RECORD_DIR": str(record_dir)}
    serve = make_server(
        env={**common, "INNOSYSTEM_MAX_CONCURRENT_JOBS": str(THREADS["serve"])},
        runner_id=f"test-serve-{uuid.uuid4().hex[:4]}",
    )
    worker_a = make_server(
        serve.database_url,
        command="worker",
        runner_id=f"test-worker-a-{uuid.uuid4().hex[:4]}",
        env={**common, "INNOSYSTEM_MAX_CONCURRENT_JOBS": str(THREADS["a"])},
    )
    worker_b = make_server(
        serve.database_url,
        command="worker",
        runner_id=f"test-worker-b-{uuid.uuid4().hex[:4]}",
        env={
            **common,
            "INNOSYSTEM_MAX_CONCURRENT_JOBS": str(THREADS["b"]),
            "INNOSYSTEM_SUPPORTED_JOB_TYPES": ",".join(B_SUPPORTS),
        },
    )
    limits = {
        serve.runner_id: THREADS["serve"],
        worker_a.runner_id: THREADS["a"],
        worker_b.runner_id: THREADS["b"],
    }
    everyone = [serve, worker_a, worker_b]
    began = time.monotonic()
    with running(*everyone), httpx.Client(base_url=serve.url, timeout=60) as api:
        serve.start()
        start_worker(worker_a)
        start_worker(worker_b)
        tenant = create_tenant(api, balance_cents=INITIAL)
        retry = {"max_attempts": 3, "backoff_base_ms": 50, "backoff_max_ms": 100}
        record = create_job_type(api, "test-record", cost=3, **retry)
        echo = create_job_type(api, "test-echo", cost=2)
        noop = create_job_type(api, "test-noop", cost=1)
        flaky = create_job_type(api, "test-fail-n-times", cost=5, **retry)
        logic_of = {
            record["id"]: "test-record",
            echo["id"]: "test-echo",
            noop["id"]: "test-noop",
            flaky["id"]: "test-fail-n-times",
        }
        specs: list[tuple[str, dict[str, Any]]] = (
            [(record["id"], {"sleep_ms": 30}) for _ in range(1_150)]
            + [(record["id"], {"sleep_ms": 30, "failures": 1}) for _ in range(200)]
            + [(echo["id"], {"i": i}) for i in range(300)]
            + [(noop["id"], {}) for _ in range(200)]
            + [(flaky["id"], {"failures": 1}) for _ in range(100)]
            + [(flaky["id"], {"failures": 5}) for _ in range(50)]  # fail after 3 attempts
        )
        random.Random(7).shuffle(specs)
        n_jobs = len(specs)
        assert n_jobs == 2_000

        # Submit from a thread; meanwhile, SIGKILL worker A once a third of the jobs are done.
        with ThreadPoolExecutor(max_workers=1) as pool:
            submitting = pool.submit(submit_many, api, tenant.customer_id, specs, max_workers=16)
            wait_for(
                lambda: count_final(serve.database_url, tenant.customer_id) >= n_jobs // 3,
                timeout=120,
                interval=0.1,
                what="a third of the jobs done",
                servers=everyone,
            )
            worker_a.kill()
            killed_at = time.monotonic() - began
            done_at_kill = count_final(serve.database_url, tenant.customer_id)
            submitted = submitting.result()
            submitted_at = time.monotonic() - began
        assert len({j["id"] for j in submitted}) == n_jobs

        wait_for(
            lambda: count_final(serve.database_url, tenant.customer_id) == n_jobs,
            timeout=150,
            interval=0.5,
            what="every job reaches a final state",
            servers=[serve, worker_b],
        )
        finished_at = time.monotonic() - began
        jobs = {j["id"]: j for j in all_jobs(api, tenant.customer_id)}
        assert set(jobs) == {j["id"] for j in submitted}

        # --- final states: the planned failures fail, everything else succeeds ---------------
        expected_status = {
            j["id"]: "failed" if spec[1].get("failures") == 5 else "succeeded"
            for j, spec in zip(submitted, specs, strict=True)
        }
        wrong = {
            i: (j["status"], j["attempts"], j["error"])
            for i, j in jobs.items()
            if j["status"] != expected_status[i]
        }
        assert not wrong, wrong

        # --- the attempt rows ------------------------------------------------------------------
        rows = db_query(
            serve.database_url,
            "SELECT a.job_id, a.number, a.runner_id, a.outcome, a.error_message "
            "FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE j.customer_id = {}",
            [uuid.UUID(tenant.customer_id)],
        )
        attempts: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        for row in rows:
            attempts[str(row["job_id"])][row["number"]] = row
        assert set(attempts) == set(jobs)
        for job_id, job in jobs.items():
            mine = attempts[job_id]
            assert sorted(mine) == list(range(1, job["attempts"] + 1)), (job, mine)
            outcomes = [mine[n]["outcome"] for n in sorted(mine)]
            assert "running" not in outcomes, (job_id, outcomes)
            # no job succeeded twice; a failed one never succeeded
            wins = outcomes.count("succeeded")
            assert wins == (1 if job["status"] == "succeeded" else 0), (job_id, outcomes)
            if wins:
                assert outcomes[-1] == "succeeded", (job_id, outcomes)
        # a sample through the documented route (and every job with a lost attempt) says the
        # same as the table
        sample = set(random.Random(3).sample(sorted(jobs), 25))
        sample |= {str(row["job_id"]) for row in rows if row["outcome"] == "lost"}
        for job_id in sorted(sample):
            items = api.get(f"/jobs/{job_id}/attempts").json()["items"]
            assert [(a["number"], a["runner_id"], a["outcome"]) for a in items] == [
                (n, attempts[job_id][n]["runner_id"], attempts[job_id][n]["outcome"])
                for n in sorted(attempts[job_id])
            ]

        # --- who ran what --------------------------------------------------------------------
        by_runner = Counter(row["runner_id"] for row in rows)
        assert set(by_runner) <= set(limits), by_runner
        for row in rows:
            if row["runner_id"] == worker_b.runner_id:
                logic_id = logic_of[jobs[str(row["job_id"])]["job_type_id"]]
                assert logic_id in B_SUPPORTS, (row, logic_id)
        assert by_runner[worker_b.runner_id] > 0, by_runner
        assert by_runner[worker_a.runner_id] > 0, by_runner
        # Only the killed worker lost attempts (a live runner's lease never lapsed), and it
        # had some in flight when it died: those came back after lease expiry.
        lost = [row for row in rows if row["outcome"] == "lost"]
        assert {row["runner_id"] for row in lost} == {worker_a.runner_id}, lost
        for row in lost:
            assert f"lease of runner {worker_a.runner_id} expired" in row["error_message"], row
            job = jobs[str(row["job_id"])]
            assert job["attempts"] > row["number"] or job["status"] == "failed", (row, job)

        # --- the processor's own records -------------------------------------------------------
        records = read_records(record_dir)
        per_call = Counter((job_id, attempt) for job_id, attempt, *_ in records)
        twice = {key: n for key, n in per_call.items() if n > 1}
        assert not twice, f"(job, attempt) recorded more than once: {twice}"
        for job_id, attempt, runner_id, start, end, outcome in records:
            row = attempts[job_id].get(attempt)
            assert row is not None, f"a call with no attempt row: {job_id} attempt {attempt}"
            assert row["runner_id"] == runner_id, (row, runner_id)
            assert logic_of[jobs[job_id]["job_type_id"]] == "test-record"
            assert start <= end
            if row["outcome"] == "lost":
                assert runner_id == worker_a.runner_id, row  # ran, then its runner died
            else:
                expected = "ok" if row["outcome"] == "succeeded" else "fail"
                assert outcome == expected, (row, outcome)
        # every succeeded test-record attempt is backed by a call of the processor
        for job_id, job in jobs.items():
            if logic_of[job["job_type_id"]] != "test-record":
                continue
            for number, row in attempts[job_id].items():
                if row["outcome"] in ("succeeded", "retrying", "failed"):
                    assert per_call[(job_id, number)] == 1, (job_id, number, row)

        # --- per-runner concurrency -------------------------------------------------------------
        intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for _job_id, _attempt, runner_id, start, end, _outcome in records:
            intervals[runner_id].append((start, end))
        overlap = {runner: max_overlap(spans) for runner, spans in intervals.items()}
        for runner, most in overlap.items():
            assert most <= limits[runner], (
                f"{runner} ran {most} jobs at once (limit {limits[runner]})"
            )
        # the measurement can see concurrency at all
        assert max(overlap.values()) >= 2, overlap

        # --- money -------------------------------------------------------------------------------
        kinds = ledger_kinds_by_job(serve.database_url, tenant.customer_id)
        assert kinds == {
            i: ["capture", "hold"] if j["status"] == "succeeded" else ["hold", "release"]
            for i, j in jobs.items()
        }
        cost = {record["id"]: 3, echo["id"]: 2, noop["id"]: 1, flaky["id"]: 5}
        spent = sum(cost[j["job_type_id"]] for j in jobs.values() if j["status"] == "succeeded")
        wallet = wallet_of(api, tenant.customer_id)
        assert (wallet["balance_cents"], wallet["held_cents"]) == (INITIAL - spent, 0)
        assert_reconciled(api, tenant.customer_id)

        print(
            f"\nsubmitted at {submitted_at:.1f}s; A killed at {killed_at:.1f}s with "
            f"{done_at_kill}/{n_jobs} done; all final at "
            f"{finished_at:.1f}s; attempts per runner {dict(by_runner)}; "
            f"{len(lost)} lost on A; max overlap per runner {overlap}; "
            f"{len(records)} records"
        )
        assert serve.proc is not None and serve.proc.poll() is None, server_logs([serve])
