"""Helpers shared by the test modules: a real ``innosystem serve`` subprocess, backend
selection from the environment, the ``innosystem`` CLI as a subprocess, raw SQL reads of a test
database, and small builders and readers over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
BASE_DB_URL = os.environ.get("INNOSYSTEM_DATABASE_URL", "")
BROKER_URL = os.environ.get("INNOSYSTEM_BROKER_URL", "memory://")
IS_POSTGRES = BASE_DB_URL.startswith(("postgres://", "postgresql://"))
IS_REDIS = BROKER_URL.startswith("redis://")
BACKEND = f"{'postgres' if IS_POSTGRES else 'sqlite'}+{'redis' if IS_REDIS else 'memory'}"

FINAL = ("succeeded", "failed", "cancelled")
# the logic ids of the installed test plugin (tests/plugins/innosystem-test-processors)
TEST_LOGIC_IDS = (
    "test-echo",
    "test-noop",
    "test-sleep",
    "test-fail-n-times",
    "test-crash",
    "test-cpu-burn",
    "test-write-artifact",
    "test-write-artifact-cpu",
    "test-read-upload",
    "test-cpu-fail-first",
)

T = TypeVar("T")


# --- databases ----------------------------------------------------------------------------------
def _pg_admin_dsn() -> str:
    parts = urlsplit(BASE_DB_URL.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))


def _pg_run(dsn: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(connection)`` on a fresh asyncpg connection to ``dsn``, closed afterwards."""
    import asyncpg

    async def run() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _pg_exec(statement: str) -> None:
    _pg_run(_pg_admin_dsn(), lambda conn: conn.execute(statement))


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


# --- raw SQL reads of a test database (for what no HTTP route shows) ----------------------------
def db_query(database_url: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run one statement straight on a test database (``sqlite://`` or ``postgres://``) and
    return its rows as dicts, column name to value as the driver gives it.

    ``sql`` marks each parameter with ``{}`` (so literal braces are written ``{{ }}``); they become
    ``?`` for sqlite3 and ``$1..$n`` for asyncpg. Pass ``uuid.UUID`` for uuid columns: PostgreSQL
    gets it as is, SQLite (which stores UUIDs as text) gets ``str(value)``.
    """
    if database_url.startswith("sqlite://"):
        values = [str(p) if isinstance(p, uuid.UUID) else p for p in params]
        conn = sqlite3.connect(database_url[len("sqlite://") :])
        conn.row_factory = sqlite3.Row
        try:
            with conn:  # commits a write
                rows = conn.execute(sql.format(*["?"] * len(values)), values).fetchall()
        finally:
            conn.close()
        return [dict(row) for row in rows]

    statement = sql.format(*(f"${n}" for n in range(1, len(params) + 1)))
    dsn = database_url.replace("postgres://", "postgresql://", 1)
    records = _pg_run(dsn, lambda conn: conn.fetch(statement, *params))
    return [dict(record) for record in records]


def ledger_kinds_by_job(database_url: str, customer_id: str) -> dict[str, list[str]]:
    """Ledger row kinds per job, read straight from the database (there is no HTTP route)."""
    rows = db_query(
        database_url,
        "SELECT t.kind, t.job_id FROM wallet_transactions t "
        "JOIN wallets w ON w.id = t.wallet_id WHERE w.customer_id = {} AND t.job_id IS NOT NULL",
        [uuid.UUID(customer_id)],
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(str(row["job_id"]), []).append(row["kind"])
    return {job_id: sorted(kinds) for job_id, kinds in out.items()}


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


def clean_env(*, drop: Collection[str] = (), **extra: str) -> dict[str, str]:
    """This process's environment without any ``INNOSYSTEM_*`` variable (nor the names in
    ``drop``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNOSYSTEM_") and k not in drop}
    env.update(extra)
    return env


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m innosystem ARGS`` run to the end in ``cwd``, output captured as text; the
    environment is ``env`` or else :func:`clean_env`; ``input``, if given, is its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "innosystem", *args],
        env=clean_env() if env is None else env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


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
        env = clean_env()
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


@contextmanager
def running(*servers: ServerProcess) -> Iterator[None]:
    """Stop (SIGTERM, then SIGKILL) every server when the test ends, whatever happened."""
    try:
        yield
    finally:
        for srv in servers:
            srv.stop(timeout=15)


def start_worker(srv: ServerProcess) -> ServerProcess:
    """Start an ``innosystem worker`` and wait until its log says it consumes (it has no HTTP
    to poll)."""
    srv.start(wait=False)

    def consuming() -> bool:
        assert srv.proc is not None
        if srv.proc.poll() is not None:
            pytest.fail(f"worker exited with {srv.proc.returncode}:\n{srv.logs()}")
        return f"runner {srv.runner_id} consuming" in srv.logs()

    wait_for(consuming, timeout=60)
    return srv


def server_logs(servers: Sequence[ServerProcess]) -> str:
    return "".join(f"\n--- {s.command} {s.runner_id} log ---\n{s.logs()}" for s in servers)


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


# --- jobs, wallets and ledgers over HTTP --------------------------------------------------------
def later(hours: int = 1) -> str:
    """An RFC 3339 ``run_at`` some hours ahead."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def job_body(customer_id: str, job_type_id: str, input_data: dict[str, Any], **extra: Any) -> dict:
    return {
        "customer_id": customer_id,
        "job_type_id": job_type_id,
        "input_data": input_data,
        **extra,
    }


def submit(
    client: httpx.Client, customer_id: str, job_type_id: str, input_data: dict, **extra: Any
) -> dict:
    response = client.post("/jobs", json=job_body(customer_id, job_type_id, input_data, **extra))
    # 201; a Sync type answers 200 (finished in time) or 202 (still running).
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def submit_many(
    client: httpx.Client,
    customer_id: str,
    specs: list[tuple[str, dict]],
    max_workers: int = 8,
    **extra: Any,
) -> list[dict[str, Any]]:
    """Submit ``(job_type_id, input_data)`` specs from ``max_workers`` threads, in spec order."""
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda s: submit(client, customer_id, s[0], s[1], **extra), specs))


def all_jobs(
    client: httpx.Client, customer_id: str, limit: int = 200, status: str | None = None
) -> list[dict[str, Any]]:
    """Every job of a customer (of one status, if given), following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"customer_id": customer_id, "limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        page = client.get("/jobs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return items


def events_of(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wallet_of(client: httpx.Client, customer_id: str) -> dict[str, Any]:
    response = client.get(f"/customers/{customer_id}/wallet")
    assert response.status_code == 200, response.text
    return response.json()


def assert_reconciled(client: httpx.Client, customer_id: str) -> None:
    recon = client.get(f"/customers/{customer_id}/wallet/reconciliation").json()
    assert recon["matches"] is True, recon


# --- waiting ------------------------------------------------------------------------------------
def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30,
    interval: float = 0.1,
    *,
    what: str | None = None,
    servers: Sequence[ServerProcess] = (),
) -> Any:
    """Poll until ``predicate()`` is truthy; returns its value or fails the test. ``what`` names
    the condition in the failure, which also carries the log of each of ``servers``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception as exc:
            if servers:
                exc.add_note(server_logs(servers))
            raise
        if value:
            return value
        if time.monotonic() > deadline:
            message = (
                f"{what}: not within {timeout}s" if what else f"condition not met within {timeout}s"
            )
            pytest.fail(message + server_logs(servers))
        time.sleep(interval)


def wait_for_status(
    client: httpx.Client,
    job_id: str,
    statuses: tuple[str, ...] = FINAL,
    timeout: float = 30,
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(done, timeout)


def wait_all_final(
    client: httpx.Client,
    customer_id: str,
    servers: Sequence[ServerProcess] = (),
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Every job of a customer once all are final (the servers' logs if that never happens)."""

    def done() -> list[dict[str, Any]] | None:
        jobs = all_jobs(client, customer_id)
        return jobs if all(j["status"] in FINAL for j in jobs) else None

    return wait_for(
        done, timeout=timeout, interval=0.2, what="every job reaches a final state", servers=servers
    )


# --- error envelopes and list pages over HTTP ---------------------------------------------------
def assert_envelope(
    response: httpx.Response, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """A refused request answered with the one error envelope
    ``{"error": {"code", "message", "details": [{"field", "message"}]}}``; ``status`` is the exact
    status expected, or None for any 4xx. Returns the ``error`` object."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    else:
        assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), (content_type, response.text)
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], list), error
    for detail in error["details"]:
        assert isinstance(detail, dict) and set(detail) == {"field", "message"}, detail
    if code is not None:
        assert error["code"] == code, error
    return error


def walk_pages(
    client: httpx.Client, path: str, params: dict[str, Any] | None = None, limit: int = 2
) -> list[list[dict[str, Any]]]:
    """Every page of a list, following ``next_cursor``; bounded, so that a cursor that never
    ends fails the test instead of looping."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(200):
        query = {**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query)
        assert response.status_code == 200, (path, query, response.text)
        body = response.json()
        assert set(body) == {"items", "next_cursor"}, body
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    pytest.fail(f"{path} {params}: still a next_cursor after 200 pages")
