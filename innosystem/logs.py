"""loguru as the one log sink: stdlib logging (hypercorn, Tortoise, Dramatiq) is routed into it, and
``job_id`` bound with ``logger.contextualize`` appears on every line logged while a job runs."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

from loguru import logger

_TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
    "<cyan>{extra[logger_name]}</cyan> {extra[job_prefix]}<level>{message}</level>"
)


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).bind(logger_name=record.name).log(
            level, record.getMessage()
        )


def _json_sink(message: Any) -> None:
    record = message.record
    extra = dict(record["extra"])
    extra.pop("job_prefix", None)
    payload: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": extra.pop("logger_name", record["name"]),
        "message": record["message"],
    }
    payload.update(
        {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in extra.items()}
    )
    if record["exception"] is not None:
        payload["exception"] = "".join(traceback.format_exception(*record["exception"]))[-4000:]
    sys.stderr.write(json.dumps(payload, default=str) + "\n")


def _patch(record: Any) -> None:
    record["extra"].setdefault("logger_name", record["name"])
    job_id = record["extra"].get("job_id")
    record["extra"]["job_prefix"] = f"[job {job_id}] " if job_id else ""


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure loguru once per process; safe to call again (tests, CLI re-entry)."""
    logger.remove()
    logger.configure(patcher=_patch)
    if fmt == "json":
        logger.add(_json_sink, level=level, enqueue=False, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=_TEXT_FORMAT, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in (
        "hypercorn.error",
        "hypercorn.access",
        "tortoise",
        "dramatiq",
        "quart.app",
        "quart.serving",
        "asyncio",
    ):
        std = logging.getLogger(name)
        std.handlers = [_InterceptHandler()]
        std.propagate = False
    # Per-query debug lines from Tortoise and per-message lines from Dramatiq are noise at INFO.
    quiet = logging.DEBUG if level in ("TRACE", "DEBUG") else logging.WARNING
    logging.getLogger("tortoise").setLevel(quiet)
    logging.getLogger("dramatiq").setLevel(max(quiet, logging.INFO))
    logging.getLogger("hypercorn.access").setLevel(quiet)
