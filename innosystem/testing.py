"""Fixtures for plugin authors: run your processor against a real, in-process InnoSystem.

Registered as a pytest plugin (entry point group ``pytest11``), so every pytest run in an
environment where ``innosystem`` is installed has these fixtures; nothing needs importing. Every
name here starts with ``innosystem_`` so it never shadows a fixture of the project under test.

The app is real: a fresh SQLite database in a temp dir (migrated at start), the in-process
memory broker, the embedded workers, your installed plugins discovered through their entry
points, and Quart's test client speaking the public REST API. Nothing listens on a port.

Fixtures (all function-scoped)::

    innosystem_env            dict of INNOSYSTEM_* settings the app is built from (override it)
    innosystem_settings       the validated ``Settings``
    innosystem_registry       the processor registry (default: every installed plugin)
    innosystem_app            the running Quart app (migrations, workers started; async)
    innosystem_client         Quart test client of that app
    innosystem_tenant         a reseller, a customer with a funded wallet and a project (async)
    innosystem_create_job_type   async (logic_id, processor_type=None, **fields) -> job type
    innosystem_run_job        async (logic_id, input_data, processor_type=None, ...) -> job

and two plain functions for calling ``process`` directly, without an app:
:func:`innosystem_job_context` and :func:`innosystem_artifact_bytes`.

The app fixture is function-scoped on purpose: Tortoise ORM's global context holds one
initialised app per process at a time, so two apps cannot be up at once (and a wider scope would
hold Tortoise across tests that start their own), and each test gets an empty database. The async
fixtures are marked with ``pytest_asyncio.fixture`` (they work without ``asyncio_mode = auto``)
and use the event loop of the test, whose scope your pytest-asyncio configuration sets.

This module imports neither Quart nor Tortoise when pytest loads it: they are imported inside
the fixtures, so the plugin costs nothing to test suites that do not use it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from innosystem.processors import JobContext

if TYPE_CHECKING:  # pragma: no cover
    from quart import Quart

    from innosystem.config import Settings
    from innosystem.plugins import ProcessorRegistry

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is in innosystem's [test] extra
    pytest_asyncio = None  # type: ignore[assignment]

#: Statuses after which a job never changes again.
INNOSYSTEM_FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def _async_fixture(function: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture``, or, without pytest-asyncio, a fixture that says what is
    missing (a plugin that fails to import would break every pytest run in the venv)."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(function)

    def missing(request: pytest.FixtureRequest) -> Any:
        pytest.fail(
            f"the {request.fixturename} fixture needs pytest-asyncio: "
            "pip install 'pytest-asyncio>=1.0'",
            pytrace=False,
        )

    missing.__name__ = function.__name__
    missing.__doc__ = function.__doc__
    return pytest.fixture(name=function.__name__)(missing)


# --- direct calls -------------------------------------------------------------------------------
class _MemoryArtifactStore:
    """An artifact store in a dict (key -> bytes), for contexts made by
    :func:`innosystem_job_context`; picklable like every store."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.files[key] = bytes(data)

    def read(self, key: str) -> bytes:
        try:
            return self.files[key]
        except KeyError:
            raise FileNotFoundError(key) from None

    def delete(self, key: str) -> None:
        self.files.pop(key, None)


def innosystem_job_context(
    *,
    attempt: int = 1,
    job_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    progress: list[dict[str, Any]] | None = None,
    cancelled: bool = False,
    uploads: dict[str, bytes] | None = None,
    max_artifact_bytes: int = 50 * 1024 * 1024,
    runner_id: str = "innosystem-testing",
) -> JobContext:
    """A ``JobContext`` for calling ``processor.process(ctx, input_data)`` directly in a test.

    * ``progress``: a list that receives every ``ctx.report_progress(...)`` call as a dict.
    * ``cancelled=True``: the context starts cancelled; ``ctx.raise_if_cancelled()`` raises.
    * ``ctx.artifacts`` keeps files in memory: ``uploads`` maps upload ids (str of a UUID) to
      bytes that ``ctx.artifacts.read(id)`` returns; what ``ctx.artifacts.put`` stored is in
      ``ctx.artifacts.written[name]`` and its bytes in :func:`innosystem_artifact_bytes`.

    Pass ``processor.validate_input(raw)`` as the input, as the platform does at submit.
    """
    from innosystem.artifacts import JobArtifacts, upload_key

    job_id = job_id or uuid.uuid4()
    customer_id = customer_id or uuid.uuid4()
    store = _MemoryArtifactStore()
    for upload_id, data in (uploads or {}).items():
        store.put(upload_key(customer_id, uuid.UUID(str(upload_id))), data)
    ctx = JobContext(
        job_id=job_id,
        attempt=attempt,
        job_type_id=uuid.uuid4(),
        customer_id=customer_id,
        runner_id=runner_id,
        artifacts=JobArtifacts(
            store=store,
            job_id=job_id,
            attempt=attempt,
            customer_id=customer_id,
            max_bytes=max_artifact_bytes,
        ),
    )
    if progress is not None:
        ctx._progress = progress.append
    if cancelled:
        ctx._cancel.set()
    return ctx


def innosystem_artifact_bytes(ctx: JobContext, name: str) -> bytes:
    """The bytes a processor stored with ``ctx.artifacts.put(name, ...)`` on a context made by
    :func:`innosystem_job_context`."""
    meta = ctx.artifacts.written[name]
    return ctx.artifacts.store.read(meta["storage_key"])


# --- the in-process app -------------------------------------------------------------------------
@pytest.fixture
def innosystem_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The ``INNOSYSTEM_*`` settings of the test app, as environment variables.

    The process environment is NOT read (a test app never lands on a real database by
    accident). Override this fixture, or extend it, to change a setting::

        @pytest.fixture
        def innosystem_env(innosystem_env):
            return {**innosystem_env, "INNOSYSTEM_MAX_BODY_BYTES": "10485760"}
    """
    data_dir = tmp_path_factory.mktemp("innosystem")
    return {
        "INNOSYSTEM_DATA_DIR": str(data_dir),
        "INNOSYSTEM_DATABASE_URL": f"sqlite://{data_dir / 'innosystem.sqlite3'}",
        "INNOSYSTEM_BROKER_URL": "memory://",
        "INNOSYSTEM_RUNNER_ID": f"innosystem-testing-{uuid.uuid4().hex[:8]}",
        "INNOSYSTEM_AUTO_MIGRATE": "true",
        "INNOSYSTEM_AUTO_SEED": "false",
        "INNOSYSTEM_MAX_CONCURRENT_JOBS": "4",
        "INNOSYSTEM_POLL_INTERVAL_MS": "250",
        "INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS": "5",
    }


@pytest.fixture
def innosystem_settings(innosystem_env: dict[str, str]) -> Settings:
    """``Settings`` loaded from :func:`innosystem_env` only (no ``innosystem.toml`` is read)."""
    from innosystem.config import load_settings

    cwd = Path(innosystem_env.get("INNOSYSTEM_DATA_DIR", "."))
    return load_settings(env=innosystem_env, cwd=cwd)


@pytest.fixture
def innosystem_registry() -> ProcessorRegistry:
    """The processors the test app serves: every installed plugin (entry point group
    ``innosystem``), loaded afresh. Override it to serve a plugin module you have not installed::

        @pytest.fixture
        def innosystem_registry():
            from innosystem.plugins import load_registry
            import my_plugin
            return load_registry(entry_points=[], extra=[("my-plugin", my_plugin)])

    (``kind = "cpu"`` processors are resolved again inside the process pool, from the installed
    plugins only, so those must be installed.)
    """
    from innosystem.plugins import load_registry

    return load_registry()


@_async_fixture
async def innosystem_app(
    innosystem_settings: Settings, innosystem_registry: ProcessorRegistry
) -> AsyncIterator[Quart]:
    """A running InnoSystem app: database migrated, embedded workers consuming the memory broker.

    Function-scoped: Tortoise allows one initialised app per process at a time, and each test
    starts from an empty database. Stopped (workers drained, database closed) after the test.
    """
    from innosystem import plugins
    from innosystem.app import create_app

    previous = getattr(plugins, "_registry", None)
    app = create_app(innosystem_settings, innosystem_registry)
    test_app = app.test_app()
    # Quart's default of 6 s is short for migrations plus worker start on a slow CI machine.
    grace = int(innosystem_settings.shutdown_timeout_seconds) + 30
    test_app.startup_timeout = 60  # type: ignore[attr-defined]
    test_app.shutdown_timeout = grace  # type: ignore[attr-defined]
    try:
        async with test_app:
            if "innosystem_runtime" not in app.extensions:
                raise RuntimeError("the InnoSystem test app did not start (see the log above)")
            yield app
    finally:
        plugins.set_registry(previous)


@pytest.fixture
def innosystem_client(innosystem_app: Quart) -> Any:
    """Quart test client of :func:`innosystem_app`: ``await client.post("/jobs", json=...)``,
    then ``response.status_code`` and ``await response.get_json()``."""
    return innosystem_app.test_client()


async def _json(response: Any, expected: int, what: str) -> Any:
    body = await response.get_json()
    if response.status_code != expected:
        raise AssertionError(f"{what}: HTTP {response.status_code} (wanted {expected}): {body}")
    return body


@_async_fixture
async def innosystem_tenant(innosystem_client: Any) -> dict[str, str]:
    """A reseller, a customer whose wallet holds 1,000.00 (100000 cents) and a project, made
    through the API. Returns ``{"reseller_id", "customer_id", "project_id"}``."""
    client = innosystem_client
    suffix = uuid.uuid4().hex[:8]
    reseller = await _json(
        await client.post("/resellers", json={"name": f"Plugin tests {suffix}"}),
        201,
        "POST /resellers",
    )
    customer = await _json(
        await client.post(
            "/customers",
            json={
                "reseller_id": reseller["id"],
                "name": f"Plugin author {suffix}",
                "email": f"author-{suffix}@example.com",
            },
        ),
        201,
        "POST /customers",
    )
    await _json(
        await client.post(
            f"/customers/{customer['id']}/wallet/top-ups",
            json={"amount_cents": 100_000, "reference": "innosystem.testing"},
        ),
        201,
        "POST /customers/{id}/wallet/top-ups",
    )
    project = await _json(
        await client.post("/projects", json={"customer_id": customer["id"], "name": "Tests"}),
        201,
        "POST /projects",
    )
    return {
        "reseller_id": reseller["id"],
        "customer_id": customer["id"],
        "project_id": project["id"],
    }


@pytest.fixture
def innosystem_create_job_type(
    innosystem_client: Any, innosystem_registry: ProcessorRegistry
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await innosystem_create_job_type(logic_id, processor_type=None, **fields)``: create a
    job type over the API and return its JSON.

    ``processor_type`` defaults to the installed processor's own. Retries run at once
    (``backoff_base_ms=0``) unless ``fields`` says otherwise; any ``POST /job-types`` field
    (``max_attempts``, ``timeout_seconds``, ``standard_cost_cents``, ...) can be given.
    """

    async def create(
        logic_id: str, processor_type: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        if processor_type is None:
            processor = innosystem_registry.get(logic_id)
            processor_type = processor.processor_type if processor is not None else "async"
        body = {
            "name": f"{logic_id} {uuid.uuid4().hex[:8]}",
            "processing_logic_id": logic_id,
            "processor_type": processor_type,
            "standard_cost_cents": 10,
            "backoff_base_ms": 0,
            **fields,
        }
        return await _json(
            await innosystem_client.post("/job-types", json=body), 201, "POST /job-types"
        )

    return create


@pytest.fixture
def innosystem_run_job(
    innosystem_client: Any,
    innosystem_tenant: dict[str, str],
    innosystem_create_job_type: Callable[..., Awaitable[dict[str, Any]]],
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await innosystem_run_job(logic_id, input_data, processor_type=None, *, job_type=None,
    wait_seconds=60)``: create a job type for ``logic_id`` (``job_type``: extra ``POST /job-types``
    fields), submit ``input_data`` for the funded test customer, wait until the job is
    succeeded, failed or cancelled, and return the job's JSON (``status``, ``result``,
    ``error``, ``attempts``, ...).

    A submit that is refused (e.g. 422 for input your ``input_model`` rejects) fails the test
    with the response body; test refusals with ``innosystem_client`` directly.
    """

    async def run(
        logic_id: str,
        input_data: dict[str, Any],
        processor_type: str | None = None,
        *,
        job_type: dict[str, Any] | None = None,
        wait_seconds: float = 60.0,
    ) -> dict[str, Any]:
        created_type = await innosystem_create_job_type(
            logic_id, processor_type, **(job_type or {})
        )
        job = await _json(
            await innosystem_client.post(
                "/jobs",
                json={
                    "customer_id": innosystem_tenant["customer_id"],
                    "job_type_id": created_type["id"],
                    "input_data": input_data,
                },
            ),
            201,
            "POST /jobs",
        )
        deadline = time.monotonic() + wait_seconds
        while job["status"] not in INNOSYSTEM_FINAL_STATUSES:
            if time.monotonic() > deadline:
                events = await (await innosystem_client.get(f"/jobs/{job['id']}/events")).get_json()
                pytest.fail(
                    f"job {job['id']} ({logic_id}) is still {job['status']} after {wait_seconds}s: "
                    f"{job}\nevents: {events}",
                    pytrace=False,
                )
            await asyncio.sleep(0.05)
            job = await _json(
                await innosystem_client.get(f"/jobs/{job['id']}"), 200, "GET /jobs/{id}"
            )
        return job

    return run
