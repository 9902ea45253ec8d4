"""innosystem command line: serve | worker | migrate | seed | prune | plugins.

Configuration problems and plugin conflicts end the program with one clear line and exit code 2,
never a traceback: an operator should see at once which key or package to fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from loguru import logger

from innosystem import __version__, db
from innosystem.config import Settings, describe, load_settings
from innosystem.errors import ConfigError, PluginError, ServiceError
from innosystem.logs import setup_logging
from innosystem.plugins import get_registry


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="overrides INNOSYSTEM_DATABASE_URL")
    parser.add_argument("--broker-url", help="overrides INNOSYSTEM_BROKER_URL")
    parser.add_argument("--log-level", help="overrides INNOSYSTEM_LOG_LEVEL")
    parser.add_argument("--log-format", help="text or json; overrides INNOSYSTEM_LOG_FORMAT")
    parser.add_argument("--data-dir", help="overrides INNOSYSTEM_DATA_DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="innosystem", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"innosystem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="HTTP API + embedded workers in one process")
    _add_common(serve)
    serve.add_argument("--host", help="listen address (INNOSYSTEM_HOST, default 127.0.0.1)")
    serve.add_argument("--port", help="listen port (INNOSYSTEM_PORT, default 8080)")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    serve.add_argument("--no-seed", action="store_true", help="do not load seed data at start")
    serve.add_argument("--threads", help="worker threads (MAX_CONCURRENT_JOBS)")

    worker = sub.add_parser("worker", help="worker only (no HTTP); needs a redis:// broker")
    _add_common(worker)
    worker.add_argument("--runner-id", help="RUNNER_ID")
    worker.add_argument("--threads", help="MAX_CONCURRENT_JOBS")
    worker.add_argument("--supported-job-types", help="SUPPORTED_JOB_TYPES, comma-separated")

    migrate = sub.add_parser("migrate", help="apply database migrations")
    _add_common(migrate)
    migrate.add_argument("--target", help="APP.MIGRATION to migrate to (default: latest)")

    seed = sub.add_parser("seed", help="load seed/seed.toml (idempotent)")
    _add_common(seed)
    seed.add_argument("--file", dest="seed_file", help="seed file (INNOSYSTEM_SEED_FILE)")

    prune = sub.add_parser(
        "prune", help="delete finished jobs and uploads past retention (never the ledger)"
    )
    _add_common(prune)
    prune.add_argument(
        "--older-than-days",
        help="finished before now minus N days (default: retention.days, 1..36500)",
    )
    prune.add_argument("--batch", help="jobs per transaction (default: retention.batch)")
    prune.add_argument("--dry-run", action="store_true", help="only count what would go")
    prune.add_argument("--json", action="store_true", help="print the counts as JSON")

    from innosystem import cli_auth

    cli_auth.add_parsers(sub, _add_common)

    plugins = sub.add_parser("plugins", help="list discovered processor plugins")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    from innosystem import tester

    tester.add_arguments(
        sub.add_parser("tester", help="drive a live instance end to end; non-zero on a failure")
    )

    from innosystem import bench

    bench.add_arguments(sub.add_parser("bench", help="print performance figures (no thresholds)"))
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "database_url": "database_url",
        "broker_url": "broker_url",
        "log_level": "log_level",
        "log_format": "log_format",
        "data_dir": "data_dir",
        "host": "host",
        "port": "port",
        "threads": "worker_threads",
        "runner_id": "runner_id",
        "supported_job_types": "supported_job_types",
        "seed_file": "seed_file",
    }
    out = {
        target: getattr(args, attr)
        for attr, target in names.items()
        if getattr(args, attr, None) is not None
    }
    if getattr(args, "no_migrate", False):
        out["auto_migrate"] = False
    if getattr(args, "no_seed", False):
        out["auto_seed"] = False
    return out


async def _serve(settings: Settings) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from innosystem.app import create_app

    app = create_app(settings)
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # routed into loguru
    # Hypercorn must wait longer than the workers' own graceful stop (DESIGN §7).
    config.graceful_timeout = settings.shutdown_timeout_seconds + 5
    config.startup_timeout = 300
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


async def _migrate(settings: Settings, target: str | None) -> None:
    await db.migrate(settings, target)
    logger.info("migrations applied")


async def _seed(settings: Settings) -> None:
    from innosystem.services.seed import apply_seed, find_seed_file

    seed_file = find_seed_file(settings.seed_file)
    if seed_file is None:
        raise ConfigError("INNOSYSTEM_SEED_FILE: no seed file found (looked for ./seed/seed.toml)")
    if settings.auto_migrate:
        await db.migrate(settings)
    await db.connect(settings)
    try:
        await apply_seed(seed_file)
    finally:
        await db.close()


async def _prune(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import timedelta

    from innosystem.config import FIELDS
    from innosystem.services import retention

    def check(name: str, flag: str, value: Any) -> int:
        spec = next(f for f in FIELDS if f.name == name)
        return int(spec.parse(value, flag))

    if args.older_than_days is not None:
        days = check("retention_days", "--older-than-days", args.older_than_days)
        if days == 0:
            raise ConfigError("--older-than-days: must be at least 1")
    elif settings.retention_days == 0:
        raise ConfigError(
            "retention.days is 0 (keep forever): pass --older-than-days N to say what to prune"
        )
    else:
        days = settings.retention_days
    batch = settings.retention_batch
    if args.batch is not None:
        batch = check("retention_batch", "--batch", args.batch)
    await db.connect(settings)
    try:
        if args.dry_run:
            report = await retention.count(timedelta(days=days), batch=batch)
        else:
            store = get_registry().artifact_store(settings)
            report = await retention.prune(timedelta(days=days), batch=batch, store=store)
    finally:
        await db.close()
    print(json.dumps(report.as_dict()) if args.json else report.summary())


def _plugins(as_json: bool) -> int:
    registry = get_registry()
    if as_json:
        print(
            json.dumps(
                {
                    "plugins": [p.as_dict() for p in registry.plugins],
                    "processors": registry.describe(),
                },
                indent=2,
            )
        )
        return 0
    if not registry.plugins:
        print("no plugins installed (entry point group 'innosystem')")
        return 0
    rows = [("PLUGIN", "PACKAGE", "VERSION", "STATUS", "LOGIC IDS")]
    for p in registry.plugins:
        rows.append(
            (
                p.name,
                p.package,
                p.version,
                "ok" if not p.error else "error",
                ", ".join(p.logic_ids) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for p in registry.plugins:
        if p.error:
            print(f"\n{p.name}: {p.error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "tester":  # a client of some other instance: no local settings apply
        from innosystem import tester

        return tester.run(args)
    if args.command == "bench":  # starts its own servers and databases
        from innosystem import bench

        return bench.run(args)
    try:
        settings = load_settings(_overrides(args))
        setup_logging(settings.log_level, settings.log_format)
        if args.command == "plugins":
            return _plugins(args.json)
        get_registry()  # a duplicate logic id must stop start-up before anything else
        logger.debug("settings: {}", describe(settings))
        runners: dict[str, Callable[[], Any]] = {
            "serve": lambda: _serve(settings),
            "worker": lambda: _worker(settings),
            "migrate": lambda: _migrate(settings, args.target),
            "seed": lambda: _seed(settings),
            "users": lambda: _auth_command(settings, args),
            "tokens": lambda: _auth_command(settings, args),
            "prune": lambda: _prune(settings, args),
        }
        asyncio.run(runners[args.command]())
        return 0
    except (ConfigError, PluginError) as exc:
        print(f"innosystem: error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:  # a refused request of `users`/`tokens` (unknown email, ...)
        print(f"innosystem: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _auth_command(settings: Settings, args: argparse.Namespace) -> None:
    from innosystem import cli_auth

    await cli_auth.run(settings, args)


async def _worker(settings: Settings) -> None:
    from innosystem.worker import run_worker_process

    await run_worker_process(settings, get_registry())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
