"""Helpers shared by the test modules: a real ``innosystem serve`` subprocess, backend
selection from the environment, and small builders over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BASE_DB_URL = os.environ.get("INNOSYSTEM_DATABASE_URL", "")
BROKER_URL = os.environ.get("INNOSYSTEM_BROKER_URL", "memory://")
IS_POSTGRES = BASE_DB_URL.startswith(("postgres://", "postgresql://"))
IS_REDIS = BROKER_URL.startswith("redis://")
BACKEND = f"{'postgres' if IS_POSTGRES else 'sqlite'}+{'redis' if IS_REDIS else 'memory'}"


# --- databases ----------------------------------------------------------------------------------
def _pg_admin_dsn() -> str:
    parts = urlsplit(BASE_DB_URL.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))


def _pg_exec(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(_pg_admin_dsn())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


class Databases:
    """Hands out fresh, empty databases of the configured backend and cleans them up."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []
        self.urls: list[str] = []

    def new_url(self) -> str:
        if not IS_POSTGRES:
            url = f"sqlite://{self.tmp / f'db-{uuid.uuid4().hex[:8]}.sqlite3'}"
            self.urls.append(url)
            return url
        name = f"innosystem_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        parts = urlsplit(BASE_DB_URL.replace("postgresql://", "postgres://", 1))
        url = urlunsplit(parts._replace(path=f"/{name}"))
        self.urls.append(url)
        return url

    def drop_all(self) -> None:
        for url in self.urls:
            drop_redis_namespace(namespace_for(url))
        for name in self.created:
            try:
                _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # leave it for the operator rather than fail teardown
                print(f"could not drop {name}: {exc}", file=sys.stderr)


# --- served app ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def namespace_for(database_url: str) -> str:
    """Broker namespace of every process on one test database: servers of different tests
    share the Redis database but never each other's queues."""
    return "t-" + hashlib.sha1(database_url.encode()).hexdigest()[:12]


def drop_redis_namespace(namespace: str) -> None:
    if IS_REDIS:
        import redis

        client = redis.Redis.from_url(BROKER_URL)
        keys = list(client.scan_iter(f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)


class ServerProcess:
    """``innosystem serve`` (or ``worker``) as a real subprocess with its own log file."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        command: str = "serve",
        runner_id: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = data_dir
        self.command = command
        self.port = free_port()
        self.runner_id = runner_id or f"test-{command}-{uuid.uuid4().hex[:6]}"
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"{self.runner_id}.log"
        self.url = f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INNOSYSTEM_")}
        env.update(
            {
                "INNOSYSTEM_DATABASE_URL": self.database_url,
                "INNOSYSTEM_BROKER_URL": BROKER_URL,
                "INNOSYSTEM_BROKER_NAMESPACE": namespace_for(self.database_url),
                "INNOSYSTEM_DATA_DIR": str(self.data_dir),
                "INNOSYSTEM_HOST": "127.0.0.1",
                "INNOSYSTEM_PORT": str(self.port),
                "INNOSYSTEM_RUNNER_ID": self.runner_id,
                "INNOSYSTEM_POLL_INTERVAL_MS": "250",
                "INNOSYSTEM_LEASE_SECONDS": "5",
                "INNOSYSTEM_REQUEUE_AFTER_SECONDS": "5",
                "INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS": "3",
                "INNOSYSTEM_TEST_ALLOW_CRASH": "1",
                "INNOSYSTEM_LOG_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "innosystem", self.command],
            env=self.env(),
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait and self.command == "serve":
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs, as in a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


# --- helpers for building tenants over HTTP -----------------------------------------------------
class Tenant:
    def __init__(self, reseller_id: str, customer_id: str, project_id: str) -> None:
        self.reseller_id = reseller_id
        self.customer_id = customer_id
        self.project_id = project_id


def create_tenant(
    client: httpx.Client, balance_cents: int = 10_000, credit_limit_cents: int = 0
) -> Tenant:
    suffix = uuid.uuid4().hex[:10]
    reseller = client.post("/resellers", json={"name": f"R {suffix}"})
    assert reseller.status_code == 201, reseller.text
    customer = client.post(
        "/customers",
        json={
            "reseller_id": reseller.json()["id"],
            "name": f"C {suffix}",
            "email": f"c-{suffix}@example.com",
            "credit_limit_cents": credit_limit_cents,
        },
    )
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    if balance_cents:
        top = client.post(
            f"/customers/{customer_id}/wallet/top-ups",
            json={"amount_cents": balance_cents, "reference": "test"},
        )
        assert top.status_code == 201, top.text
    project = client.post("/projects", json={"customer_id": customer_id, "name": "P"})
    assert project.status_code == 201, project.text
    return Tenant(reseller.json()["id"], customer_id, project.json()["id"])


def create_job_type(
    client: httpx.Client, logic_id: str = "test-echo", cost: int = 10, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": f"{logic_id} {uuid.uuid4().hex[:6]}",
        "description": "test",
        "processing_logic_id": logic_id,
        "processor_type": "async",
        "standard_cost_cents": cost,
        "enabled": True,
        **extra,
    }
    response = client.post("/job-types", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_for_status(
    client: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
    timeout: float = 30,
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(done, timeout)
