"""``innosystem bench submit|drain|queries``: print performance figures; never asserts thresholds.

* ``submit``  POST /jobs over real HTTP against its own ``innosystem serve`` (or ``--url``) and,
  in the same run, the same load against a bare Quart route served by hypercorn the same way;
  prints requests/s, latency percentiles, errors and the ratio innosystem/bare.
* ``drain``   a backlog of no-op jobs (submitted with ``run_at`` a few seconds ahead, so they all
  become due at once) measured until every one has succeeded (counted in the database), then
  raw Dramatiq on the same broker kind with the same thread count over as many messages.
* ``queries`` database statements and transactions per submitted and per executed job, counted
  by wrapping the Tortoise client's execute methods, in process, through the service layer.

Every mode prints a table; ``--json PATH`` writes the figures; ``--smoke`` makes a run tiny.
The bare server is ``python -m innosystem.bench --bare-server PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
PREFERRED_LOGIC_ID = "test-noop"


# --- arguments ----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="bench_mode", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
        p.add_argument("--database-url", default=DEFAULT_PG, help="postgres admin URL")
        p.add_argument("--broker-url", default=DEFAULT_REDIS, help="redis URL (postgres backend)")
        p.add_argument("--json", dest="json_path", help="also write the figures as JSON here")
        p.add_argument("--smoke", action="store_true", help="tiny run for CI (a few seconds)")

    submit = modes.add_parser("submit", help="POST /jobs throughput and latency vs bare Quart")
    common(submit)
    submit.add_argument("--url", help="target a running server instead of starting one")
    submit.add_argument("--connections", type=int, default=32)
    submit.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    submit.add_argument("--threads", type=int, default=8, help="server worker threads")

    drain = modes.add_parser("drain", help="backlog drain jobs/s vs raw Dramatiq")
    common(drain)
    drain.add_argument("--jobs", type=int, default=2000)
    drain.add_argument("--threads", type=int, default=8, help="worker threads (both sides)")
    drain.add_argument("--connections", type=int, default=32, help="submit connections")

    queries = modes.add_parser("queries", help="statements and transactions per job")
    common(queries)
    queries.add_argument("--jobs", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    runners: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
        "submit": bench_submit,
        "drain": bench_drain,
        "queries": bench_queries,
    }
    try:
        figures = runners[args.bench_mode](args)
    except KeyboardInterrupt:
        return 130
    except BenchError as exc:
        print(f"innosystem bench: error: {exc}", file=sys.stderr)
        return 1
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


class BenchError(Exception):
    pass


# --- small helpers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_ms(values: list[float]) -> dict[str, float]:
    """Percentiles of ``values`` (seconds) in milliseconds."""
    return {
        "p50_ms": round(pct(values, 0.50) * 1000, 2),
        "p95_ms": round(pct(values, 0.95) * 1000, 2),
        "p99_ms": round(pct(values, 0.99) * 1000, 2),
        "max_ms": round(max(values, default=0.0) * 1000, 2),
    }


def table(rows: list[tuple[Any, ...]]) -> str:
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(text[0]))]
    return "\n".join(
        "  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r))
        for r in text
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNOSYSTEM_")}
    env.update(extra)
    return env


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"server at {url} not healthy within {timeout}s")


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- backends: a throwaway database and broker namespace ------------------------------------------
class Backend:
    """A fresh database (SQLite file in a temp dir, or ``innosystem_bench_<hex>`` on PostgreSQL)
    and a broker namespace of its own; removed by :meth:`cleanup`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.kind: str = args.backend
        self.hex = uuid.uuid4().hex[:10]
        self.tmp = Path(tempfile.mkdtemp(prefix="innosystem-bench-"))
        self.namespace = f"bench-{self.hex}"
        self._pg_db: str | None = None
        self.admin_url = args.database_url
        if self.kind == "postgres":
            self.broker_url = args.broker_url
            self._pg_db = f"innosystem_bench_{self.hex}"
            self._pg(f'CREATE DATABASE "{self._pg_db}"')
            parts = urlsplit(self.admin_url.replace("postgresql://", "postgres://", 1))
            self.database_url = urlunsplit(parts._replace(path=f"/{self._pg_db}"))
        else:
            self.broker_url = "memory://"
            self.database_url = f"sqlite://{self.tmp / 'bench.sqlite3'}"

    def _pg(self, statement: str) -> None:
        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(self.admin_url.replace("postgres://", "postgresql://", 1))
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(go())

    def label(self) -> str:
        return f"{self.kind}+{'redis' if self.broker_url.startswith('redis') else 'memory'}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """One read straight on the bench database (no parameters)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.database_url[len("sqlite://") :], timeout=30)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        import asyncpg

        async def go() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.database_url.replace("postgres://", "postgresql://"))
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(go())

    def cleanup(self) -> None:
        if self._pg_db:
            try:
                self._pg(f'DROP DATABASE IF EXISTS "{self._pg_db}" WITH (FORCE)')
            except Exception as exc:  # leave it for the operator rather than hide the figures
                print(f"could not drop {self._pg_db}: {exc}", file=sys.stderr)
        if self.broker_url.startswith("redis://"):
            drop_redis_keys(self.broker_url, self.namespace)
        shutil.rmtree(self.tmp, ignore_errors=True)


def drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@contextmanager
def backend(args: argparse.Namespace) -> Iterator[Backend]:
    b = Backend(args)
    try:
        yield b
    finally:
        b.cleanup()


class Server:
    """``innosystem serve`` as a subprocess on a free port."""

    def __init__(self, b: Backend, threads: int, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = b.tmp / f"serve-{self.port}.log"
        self.env = clean_env(
            INNOSYSTEM_DATABASE_URL=b.database_url,
            INNOSYSTEM_BROKER_URL=b.broker_url,
            INNOSYSTEM_BROKER_NAMESPACE=b.namespace,
            INNOSYSTEM_DATA_DIR=str(b.tmp / "data"),
            INNOSYSTEM_HOST="127.0.0.1",
            INNOSYSTEM_PORT=str(self.port),
            INNOSYSTEM_LOG_LEVEL="WARNING",
            INNOSYSTEM_AUTO_SEED="false",
            INNOSYSTEM_MAX_CONCURRENT_JOBS=str(threads),
            INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS="5",
            **env,
        )
        self.cwd = b.tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "innosystem", "serve"],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_healthy(self.url, self.proc, self.log)
        return self

    def __exit__(self, *exc: Any) -> None:
        stop_process(self.proc)


@contextmanager
def bare_server() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="innosystem-bench-bare-", suffix=".log")[1])
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "innosystem.bench", "--bare-server", str(port)],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop_process(proc)
        log.unlink(missing_ok=True)


def setup_tenant(url: str, balance_cents: int) -> tuple[dict[str, Any], str]:
    """A reseller, a customer with ``balance_cents`` and a 1-cent job type for a no-op
    processor; returns (POST /jobs body, logic id)."""
    with httpx.Client(base_url=url, timeout=30) as client:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = client.post(path, json=body)
            if r.status_code != 201:
                raise BenchError(f"POST {path}: HTTP {r.status_code}: {r.text[:300]}")
            return r.json()

        processors = client.get("/processors")
        logic_id = pick_processor(processors.json() if processors.status_code == 200 else None)
        suffix = uuid.uuid4().hex[:8]
        reseller = post("/resellers", {"name": f"bench {suffix}"})
        customer = post(
            "/customers",
            {
                "reseller_id": reseller["id"],
                "name": f"bench {suffix}",
                "email": f"bench-{suffix}@example.com",
            },
        )
        post(
            f"/customers/{customer['id']}/wallet/top-ups",
            {"amount_cents": balance_cents, "reference": "bench"},
        )
        job_type = post(
            "/job-types",
            {
                "name": f"bench {logic_id} {suffix}",
                "processing_logic_id": logic_id,
                "processor_type": "async",
                "standard_cost_cents": 1,
            },
        )
    body = {"customer_id": customer["id"], "job_type_id": job_type["id"], "input_data": {}}
    return body, logic_id


def pick_processor(listing: Any) -> str:
    """``test-noop`` if the server lists it, else its first async processor."""
    items = listing.get("items", listing) if isinstance(listing, dict) else listing or []
    asyncs = [
        p.get("logic_id") or p.get("processing_logic_id")
        for p in items
        if isinstance(p, dict) and p.get("processor_type", "async") == "async"
    ]
    asyncs = [a for a in asyncs if a]
    if PREFERRED_LOGIC_ID in asyncs or not asyncs:
        return PREFERRED_LOGIC_ID
    return asyncs[0]


# --- load generator: raw asyncio streams, HTTP/1.1 keep-alive ----------------------------------
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
        elif name == b"transfer-encoding":
            raise BenchError("chunked responses are not supported by the bench client")
    if length:
        await reader.readexactly(length)
    return status, keep


async def load(
    url: str,
    path: str,
    body: dict[str, Any],
    connections: int,
    *,
    duration: float = 0,
    total: int = 0,
) -> dict[str, Any]:
    """``connections`` keep-alive connections POSTing ``body`` for ``duration`` seconds (or
    ``total`` requests); returns rps, latency percentiles, errors and the client's CPU share."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    remaining = [total]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration if duration else None

    def more() -> bool:
        if deadline is not None:
            return loop.time() < deadline
        if remaining[0] <= 0:
            return False
        remaining[0] -= 1
        return True

    async def connection() -> None:
        nonlocal errors
        reader = writer = None
        while more():
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                start = time.perf_counter()
                writer.write(request)
                status, keep = await _read_response(reader)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status != 201:
                    errors += 1
                if not keep:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "rps": round(len(latencies) / wall, 1) if wall else 0.0,
        **latency_ms(latencies),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "client_cpu_percent": round(100 * cpu / wall, 1) if wall else 0.0,
    }


# --- submit -------------------------------------------------------------------------------------
def bench_submit(args: argparse.Namespace) -> dict[str, Any]:
    duration = 1.5 if args.smoke else args.duration
    connections = min(args.connections, 8) if args.smoke else args.connections
    balance = 10_000_000
    if args.url:
        body, logic_id = setup_tenant(args.url.rstrip("/"), balance)
        inno = asyncio.run(load(args.url, "/jobs", body, connections, duration=duration))
        label = f"url {args.url}"
    else:
        with backend(args) as b, Server(b, args.threads) as server:
            label = b.label()
            body, logic_id = setup_tenant(server.url, balance)
            inno = asyncio.run(load(server.url, "/jobs", body, connections, duration=duration))
    with bare_server() as bare_url:
        bare = asyncio.run(load(bare_url, "/jobs", body, connections, duration=duration))
    ratio = round(inno["rps"] / bare["rps"], 3) if bare["rps"] else 0.0
    figures = {
        "mode": "submit",
        "target": label,
        "processor": logic_id,
        "connections": connections,
        "duration_s": duration,
        "innosystem": inno,
        "bare": bare,
        "ratio_rps": ratio,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"bench submit: {label}, processor {logic_id}, {connections} connections, "
        f"{duration:g} s each"
    )
    keys = ("requests", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors")
    rows: list[tuple[Any, ...]] = [("TARGET", *[k.upper() for k in keys], "CLIENT_CPU%")]
    for name, f in (("innosystem POST /jobs", inno), ("bare Quart POST /jobs", bare)):
        rows.append((name, *[f[k] for k in keys], f["client_cpu_percent"]))
    print(table(rows))
    print(f"ratio innosystem/bare (rps): {ratio}")
    return figures


# --- drain --------------------------------------------------------------------------------------
def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def bench_drain(args: argparse.Namespace) -> dict[str, Any]:
    jobs = 20 if args.smoke else args.jobs
    threads = args.threads
    with backend(args) as b:
        label = b.label()
        with Server(b, threads, INNOSYSTEM_POLL_INTERVAL_MS="250") as server:
            body, logic_id = setup_tenant(server.url, jobs * 10 + 1000)
            # All jobs due at once: run_at far enough ahead to submit the whole backlog first.
            hold_s = 2.0 if args.smoke else max(5.0, jobs / 150)
            due = datetime.now(UTC) + timedelta(seconds=hold_s)
            body = {**body, "run_at": due.isoformat()}
            sub = asyncio.run(load(server.url, "/jobs", body, args.connections, total=jobs))
            submitted_early = datetime.now(UTC) < due
            done = 0
            deadline = time.monotonic() + hold_s + max(60.0, jobs / 20)
            while time.monotonic() < deadline:
                done = b.query("SELECT count(*) FROM jobs WHERE status = 'succeeded'")[0][0]
                if done >= sub["requests"] - sub["errors"]:
                    break
                time.sleep(0.05)
            rows = b.query(
                "SELECT created_at, run_at, started_at, finished_at FROM jobs "
                "WHERE status = 'succeeded'"
            )
        if not rows:
            raise BenchError("no job succeeded")
        starts = [max(_as_dt(r[0]), _as_dt(r[1])) for r in rows]
        finishes = [_as_dt(r[3]) for r in rows]
        span = (max(finishes) - min(starts)).total_seconds()
        inno_rate = round(len(rows) / span, 1) if span > 0 else 0.0
        due_to_finish = [(f - s).total_seconds() for s, f in zip(starts, finishes, strict=True)]
        raw = raw_dramatiq(b, jobs, threads)
    ratio = round(inno_rate / raw["msgs_per_s"], 3) if raw["msgs_per_s"] else 0.0
    figures = {
        "mode": "drain",
        "target": label,
        "processor": logic_id,
        "jobs": jobs,
        "threads": threads,
        "submit": sub,
        "submitted_before_due": submitted_early,
        "innosystem": {
            "succeeded": len(rows),
            "seconds": round(span, 3),
            "jobs_per_s": inno_rate,
            "latency_due_to_finish": latency_ms(due_to_finish),
        },
        "raw_dramatiq": raw,
        "ratio_rate": ratio,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"bench drain: {label}, processor {logic_id}, {jobs} jobs, {threads} worker threads")
    if not submitted_early:
        print("  note: the backlog was not fully submitted before it came due")
    lat = figures["innosystem"]["latency_due_to_finish"]
    print(
        table(
            [
                ("WHAT", "COUNT", "SECONDS", "PER_S", "P50_MS", "P95_MS", "P99_MS", "MAX_MS"),
                (
                    "innosystem drain",
                    len(rows),
                    round(span, 3),
                    inno_rate,
                    lat["p50_ms"],
                    lat["p95_ms"],
                    lat["p99_ms"],
                    lat["max_ms"],
                ),
                ("raw Dramatiq drain", raw["messages"], raw["seconds"], raw["msgs_per_s"])
                + ("-",) * 4,
                (
                    "submit (HTTP)",
                    sub["requests"],
                    sub["seconds"],
                    sub["rps"],
                    sub["p50_ms"],
                    sub["p95_ms"],
                    sub["p99_ms"],
                    sub["max_ms"],
                ),
            ]
        )
    )
    print(f"ratio innosystem/raw Dramatiq (per s): {ratio}")
    print("latency: finished_at - max(created_at, run_at), from the database")
    return figures


def raw_dramatiq(b: Backend, messages: int, threads: int) -> dict[str, Any]:
    """A no-op actor over ``messages`` messages, enqueued first, drained by an in-process
    ``dramatiq.Worker`` with ``threads`` threads on the same broker kind."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    if b.broker_url.startswith("redis://"):
        from dramatiq.brokers.redis import RedisBroker

        broker: Any = RedisBroker(url=b.broker_url, namespace=f"{b.namespace}-raw")
    else:
        broker = StubBroker()
    count = [0]
    lock = threading.Lock()
    finished = threading.Event()

    def noop() -> None:
        with lock:
            count[0] += 1
            if count[0] >= messages:
                finished.set()

    actor = dramatiq.actor(noop, broker=broker, actor_name="bench_noop", max_retries=0)
    t0 = time.perf_counter()
    for _ in range(messages):
        actor.send()
    enqueue_s = time.perf_counter() - t0
    worker = dramatiq.Worker(broker, worker_threads=threads)
    t1 = time.perf_counter()
    worker.start()
    finished.wait(timeout=max(60.0, messages / 50))
    seconds = time.perf_counter() - t1
    worker.stop()
    broker.close()
    return {
        "messages": count[0],
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count[0] / seconds, 1) if seconds else 0.0,
        "enqueue_per_s": round(messages / enqueue_s, 1) if enqueue_s else 0.0,
    }


# --- queries ------------------------------------------------------------------------------------
class Counter:
    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.by_method: dict[str, int] = {}


_counter: contextvars.ContextVar[Counter | None] = contextvars.ContextVar("bench_counter")
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_inside", default=False)
EXECUTE_METHODS = (
    "execute_query",
    "execute_query_dict",
    "execute_query_dict_with_affected",
    "execute_insert",
    "execute_many",
    "execute_script",
)


def _subclasses(cls: type) -> set[type]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _subclasses(sub)
    return out


def install_counters() -> Callable[[], None]:
    """Wrap every Tortoise client class's execute methods and transaction contexts so calls
    made while a :class:`Counter` is current (a context variable, so the app's background
    tasks are not counted) are counted; an execute method calling another counts once."""
    from tortoise.backends.base.client import BaseDBAsyncClient, TransactionContext

    undo: list[tuple[type, str, Any]] = []

    def wrap_execute(cls: type, name: str) -> None:
        original = cls.__dict__[name]

        async def wrapped(self: Any, *a: Any, **kw: Any) -> Any:
            counter = _counter.get(None)
            if counter is None or _inside.get():
                return await original(self, *a, **kw)
            counter.statements += 1
            counter.by_method[name] = counter.by_method.get(name, 0) + 1
            token = _inside.set(True)
            try:
                return await original(self, *a, **kw)
            finally:
                _inside.reset(token)

        undo.append((cls, name, original))
        setattr(cls, name, wrapped)

    def wrap_enter(cls: type) -> None:
        original = cls.__dict__["__aenter__"]

        async def wrapped(self: Any) -> Any:
            counter = _counter.get(None)
            if counter is not None and not _inside.get():
                counter.transactions += 1
            token = _inside.set(True)  # BEGIN (and nested super() calls) are not statements
            try:
                return await original(self)
            finally:
                _inside.reset(token)

        undo.append((cls, "__aenter__", original))
        cls.__aenter__ = wrapped  # type: ignore[attr-defined]

    for cls in _subclasses(BaseDBAsyncClient):
        for name in EXECUTE_METHODS:
            if name in cls.__dict__:
                wrap_execute(cls, name)
    for cls in _subclasses(TransactionContext):
        if "__aenter__" in cls.__dict__:
            wrap_enter(cls)

    def restore() -> None:
        for cls, name, original in reversed(undo):
            setattr(cls, name, original)

    return restore


async def _count(work: Callable[[], Any]) -> Counter:
    counter = Counter()
    token = _counter.set(counter)
    try:
        await work()
    finally:
        _counter.reset(token)
    return counter


class _NullDispatcher:
    """Accepts sends and forgets them: the bench executes jobs itself."""

    async def send(self, job_id: str, delay_ms: int | None = None, priority: str = "") -> None:
        return None

    async def send_many(self, jobs: list[tuple[str, str]]) -> None:
        return None


async def _queries(b: Backend, k: int) -> dict[str, Any]:
    from innosystem import broker, db
    from innosystem.config import load_settings
    from innosystem.logs import setup_logging
    from innosystem.models import Job
    from innosystem.plugins import get_registry
    from innosystem.services import billing, job_types, tenants
    from innosystem.services import jobs as job_service
    from innosystem.services.runners import RunnerState

    env = {
        "INNOSYSTEM_DATABASE_URL": b.database_url,
        "INNOSYSTEM_BROKER_URL": "memory://",
        "INNOSYSTEM_DATA_DIR": str(b.tmp / "data"),
        "INNOSYSTEM_RUNNER_ID": f"bench-{b.hex}",
        "INNOSYSTEM_LOG_LEVEL": "WARNING",
    }
    settings = load_settings(env=env, cwd=b.tmp)
    setup_logging(settings.log_level, settings.log_format)
    registry = get_registry()
    logic_id = PREFERRED_LOGIC_ID
    if registry.get(logic_id) is None:
        asyncs = [i for i in registry.logic_ids() if registry.get(i).processor_type == "async"]  # type: ignore[union-attr]
        if not asyncs:
            raise BenchError("no async processor installed")
        logic_id = asyncs[0]
    await db.migrate(settings)
    await db.connect(settings)
    previous = broker.get_dispatcher()
    broker.set_dispatcher(_NullDispatcher())  # type: ignore[arg-type]
    restore = install_counters()
    try:
        reseller = await tenants.create_reseller(f"bench {b.hex}")
        customer = await tenants.create_customer(
            reseller.id, f"bench {b.hex}", f"bench-{b.hex}@example.com"
        )
        await billing.top_up(customer.id, k * 10 + 1000, "bench")
        job_type = await job_types.create_job_type(
            {
                "name": f"bench {logic_id}",
                "processing_logic_id": logic_id,
                "processor_type": "async",
                "standard_cost_cents": 1,
            },
            registry,
        )
        state = RunnerState(settings=settings, registry=registry)
        submit_counts: list[Counter] = []
        ids: list[uuid.UUID] = []
        for _ in range(k):

            async def one() -> None:
                outcome = await job_service.submit(
                    customer_id=customer.id,
                    job_type_id=job_type.id,
                    input_data={},
                    registry=registry,
                )
                ids.append(outcome.result.id)  # type: ignore[union-attr]

            submit_counts.append(await _count(one))
        exec_counts = []
        for job_id in ids:
            exec_counts.append(
                await _count(lambda j=job_id: job_service.execute_job(str(j), state))
            )
        succeeded = await Job.filter(id__in=ids, status="succeeded").count()
    finally:
        restore()
        broker.set_dispatcher(previous)
        await db.close()

    def summary(counts: list[Counter]) -> dict[str, Any]:
        n = len(counts) or 1
        statements = sum(c.statements for c in counts)
        transactions = sum(c.transactions for c in counts)
        methods: dict[str, int] = {}
        for c in counts:
            for m, v in c.by_method.items():
                methods[m] = methods.get(m, 0) + v
        return {
            "statements_per_job": round(statements / n, 2),
            "transactions_per_job": round(transactions / n, 2),
            # each statement is one round trip; a transaction adds BEGIN and COMMIT
            "round_trips_per_job": round((statements + 2 * transactions) / n, 2),
            "min_statements": min(c.statements for c in counts),
            "max_statements": max(c.statements for c in counts),
            "by_method_per_job": {m: round(v / n, 2) for m, v in sorted(methods.items())},
        }

    return {
        "processor": logic_id,
        "jobs": k,
        "succeeded": succeeded,
        "submit": summary(submit_counts),
        "execute": summary(exec_counts),
    }


def bench_queries(args: argparse.Namespace) -> dict[str, Any]:
    k = 3 if args.smoke else args.jobs
    with backend(args) as b:
        label = b.label()
        result = asyncio.run(_queries(b, k))
    figures = {
        "mode": "queries",
        "target": label,
        **result,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"bench queries: {label} (in process), processor {result['processor']}, {k} jobs, "
        f"{result['succeeded']} succeeded"
    )
    rows: list[tuple[Any, ...]] = [
        ("PER JOB", "STATEMENTS", "TRANSACTIONS", "ROUND_TRIPS", "MIN", "MAX", "BY METHOD")
    ]
    for name in ("submit", "execute"):
        s = result[name]
        rows.append(
            (
                name,
                s["statements_per_job"],
                s["transactions_per_job"],
                s["round_trips_per_job"],
                s["min_statements"],
                s["max_statements"],
                " ".join(f"{m}={v}" for m, v in s["by_method_per_job"].items()),
            )
        )
    print(table(rows))
    print("round trips = statements + 2 per transaction (BEGIN, COMMIT)")
    return figures


# --- the bare server ----------------------------------------------------------------------------
def bare_app() -> Any:
    from quart import Quart, request

    app = Quart("bare")

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.post("/jobs")
    async def jobs() -> Any:
        body = await request.get_json()
        return {"id": str(uuid.uuid4()), "status": "pending", "input_data": body}, 201

    return app


async def _serve_bare(port: int) -> None:
    import logging
    import signal

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(bare_app(), config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-server":
        asyncio.run(_serve_bare(int(sys.argv[2])))
    else:
        print("usage: python -m innosystem.bench --bare-server PORT", file=sys.stderr)
        sys.exit(2)
