"""Database lifecycle (Tortoise config, connect, migrate, close) and the few raw-SQL helpers the hot
path uses where the ORM cannot say it (conditional updates with RETURNING)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient

from innosystem.config import Settings, redacted_url
from innosystem.models import MODEL_MODULES

APP_LABEL = "models"


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.database_url
    if not settings.is_sqlite and "maxsize=" not in url:
        # Tortoise's default pool (5) would queue the API behind the embedded workers.
        url += ("&" if "?" in url else "?") + f"maxsize={settings.database_pool_size}"
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": url},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "migrations": "innosystem.migrations",
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(settings: Settings, target: str | None = None) -> None:
    """Apply the built-in Tortoise migrations up to ``target`` (default: latest)."""
    from tortoise.migrations.api import migrate as tortoise_migrate

    logger.info("migrating {} (target {})", redacted_url(settings.database_url), target or "latest")
    await tortoise_migrate(config=tortoise_config(settings), target=target)
    await Tortoise.close_connections()


async def connect(settings: Settings) -> None:
    """Open the ORM for this process (global fallback, so worker threads' coroutines see it)."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    if settings.is_sqlite:
        conn = connections.get("default")
        # WAL lets readers proceed while the single writer commits; busy_timeout waits instead
        # of failing when the worker and the API write at once.
        await conn.execute_script(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
        )


async def close() -> None:
    await Tortoise.close_connections()


def connection() -> BaseDBAsyncClient:
    return connections.get("default")


_QMARK = re.compile(r"\?")


def sql(conn: BaseDBAsyncClient, text: str) -> str:
    """Write SQL once with ``?`` placeholders; PostgreSQL's driver wants ``$1, $2, ...``."""
    if conn.capabilities.dialect != "postgres":
        return text
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _m: f"${next(counter)}", text)


async def fetch(conn: BaseDBAsyncClient, text: str, params: list[Any]) -> list[dict[str, Any]]:
    """Run a statement that returns rows (SELECT, or UPDATE ... RETURNING)."""
    return await conn.execute_query_dict(sql(conn, text), params)


def time_param(conn: BaseDBAsyncClient, moment: datetime) -> Any:
    """A UTC datetime as raw SQL compares it with stored ones: asyncpg takes the object; SQLite
    stores Tortoise's datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff+00:00' text."""
    if conn.capabilities.dialect == "postgres":
        return moment
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


async def ping() -> None:
    await connection().execute_query("SELECT 1")
