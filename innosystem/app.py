"""``create_app(settings)``: wiring only. The app's lifecycle opens the database (migrating and
seeding first when configured) and starts the embedded workers on Quart's own loop."""

from __future__ import annotations

from loguru import logger
from quart import Quart

from innosystem import db
from innosystem.api import register_api
from innosystem.config import Settings
from innosystem.plugins import ProcessorRegistry, get_registry, set_registry
from innosystem.services.seed import apply_seed, find_seed_file
from innosystem.worker import WorkerRuntime


def create_app(settings: Settings, registry: ProcessorRegistry | None = None) -> Quart:
    app = Quart("innosystem")
    app.config["INNOSYSTEM_SETTINGS"] = settings
    # Quart fixes the limit per request before any handler runs: allow the larger of the two
    # here; read_json enforces max_body_bytes on JSON bodies.
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, settings.max_artifact_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documented field order
    if registry is not None:
        set_registry(registry)
    register_api(app)

    @app.before_serving
    async def _start() -> None:
        if settings.auto_migrate:
            await db.migrate(settings)
        await db.connect(settings)
        if settings.auto_seed:
            seed_file = find_seed_file(settings.seed_file)
            if seed_file is None:
                logger.warning("no seed file found (./seed/seed.toml); set INNOSYSTEM_SEED_FILE")
            else:
                await apply_seed(seed_file)
        runtime = WorkerRuntime(settings, get_registry(), kind="serve")
        await runtime.start()
        app.extensions["innosystem_runtime"] = runtime
        logger.info("InnoSystem ready on http://{}:{}", settings.host, settings.port)

    @app.after_serving
    async def _stop() -> None:
        runtime = app.extensions.pop("innosystem_runtime", None)
        if runtime is not None:
            await runtime.stop()
        await db.close()

    return app
