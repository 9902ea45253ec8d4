"""Throughput figures for the appliance core (not a test; prints numbers).

    .venv/bin/python tests/perf/throughput.py [--jobs 2000] [--concurrency 32]

Starts a real ``innosystem serve`` on a fresh database of the backend chosen by the environment
(as the test suite does), submits N no-op jobs over HTTP with C concurrent connections, and
reports submissions/s with latency percentiles, then end-to-end jobs/s (first submit to last
job succeeded). Set INNOSYSTEM_DATABASE_URL / INNOSYSTEM_BROKER_URL for PostgreSQL + Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import BACKEND, Databases, ServerProcess, create_job_type, create_tenant


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def submit_all(url: str, body: dict, n: int, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                start = time.perf_counter()
                response = await client.post("/jobs", json=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 201:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="innosystem-perf-"))
    dbs = Databases(tmp)
    server = ServerProcess(
        dbs.new_url(),
        tmp / "srv",
        env={
            "INNOSYSTEM_LOG_LEVEL": "WARNING",
            "INNOSYSTEM_MAX_CONCURRENT_JOBS": str(args.threads),
            "INNOSYSTEM_POLL_INTERVAL_MS": "1000",
        },
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            tenant = create_tenant(client, balance_cents=args.jobs * 10)
            job_type = create_job_type(client, "test-noop", cost=1)
            body = {
                "customer_id": tenant.customer_id,
                "job_type_id": job_type["id"],
                "input_data": {},
            }
            started = time.perf_counter()
            latencies, errors = asyncio.run(
                submit_all(server.url, body, args.jobs, args.concurrency)
            )
            submit_s = time.perf_counter() - started
            while True:
                page = client.get(
                    "/jobs",
                    params={"customer_id": tenant.customer_id, "status": "succeeded", "limit": 1},
                ).json()
                pending = client.get(
                    "/jobs",
                    params={"customer_id": tenant.customer_id, "status": "pending", "limit": 1},
                ).json()
                running = client.get(
                    "/jobs",
                    params={"customer_id": tenant.customer_id, "status": "running", "limit": 1},
                ).json()
                if page["items"] and not pending["items"] and not running["items"]:
                    break
                time.sleep(0.05)
            total_s = time.perf_counter() - started
            wallet = client.get(f"/customers/{tenant.customer_id}/wallet").json()
        done = args.jobs - errors
        print(
            f"backend {BACKEND}: {args.jobs} jobs, {args.concurrency} connections, "
            f"{args.threads} worker threads"
        )
        print(
            f"  submit : {args.jobs / submit_s:8.0f} req/s   p50 "
            f"{pct(latencies, 0.5) * 1000:.1f} ms  p95 {pct(latencies, 0.95) * 1000:.1f} ms  "
            f"p99 {pct(latencies, 0.99) * 1000:.1f} ms  max {max(latencies) * 1000:.1f} ms  "
            f"errors {errors}"
        )
        print(
            f"  e2e    : {done / total_s:8.0f} jobs/s  (first submit → last succeeded "
            f"{total_s:.2f} s; mean submit latency {statistics.mean(latencies) * 1000:.1f} ms)"
        )
        print(
            f"  wallet : balance {wallet['balance_cents']} held {wallet['held_cents']} "
            f"(expected {args.jobs * 10 - done} / 0)"
        )
    finally:
        server.stop()
        dbs.drop_all()


if __name__ == "__main__":
    main()
