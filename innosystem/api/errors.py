"""The one error envelope: ``{"error": {"code", "message", "details": [{"field", "message"}]}}``.

Every error leaves the API through here, including Quart's own HTTP errors (404 routing, 405,
413, ...) and unexpected exceptions (logged with a traceback, answered without one).
"""

from __future__ import annotations

import socket
from typing import Any

import asyncpg
from loguru import logger
from quart import Quart, Response, jsonify, request
from tortoise.exceptions import DBConnectionError, OperationalError
from werkzeug.exceptions import HTTPException

from innosystem.errors import ServiceError

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


class ApiError(ServiceError):
    """An error raised by the HTTP layer itself (body parsing, content type)."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, details)
        self.status = status
        self.code = code


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ServiceError)
    async def _service_error(exc: ServiceError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        await _keep_connection_usable(response, exc.status)
        return response

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: "no such resource",
            405: "method not allowed for this resource",
            413: "request body is larger than the configured limit",
        }
        response = error_response(
            status,
            _HTTP_CODES.get(status, "http_error"),
            messages.get(status, exc.description or exc.name),
        )
        await _keep_connection_usable(response, status)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        if is_dependency_down(exc):
            logger.warning("database unavailable: {}", exc)
            return error_response(
                503,
                "unavailable",
                "the database is unavailable; retry later",
                [{"field": "database", "message": "unavailable"}],
            )
        logger.opt(exception=exc).error("unhandled error")
        return error_response(500, "internal_error", "internal server error")


async def _keep_connection_usable(response: Response, status: int) -> None:
    """Hypercorn closes a keep-alive connection whose request body was never read (an error
    raised before the handler read it); drain it, or say so, or the client's next request on
    that connection fails with no response."""
    if not await _body_consumed(status):
        response.headers["Connection"] = "close"


async def _body_consumed(status: int) -> bool:
    """Read what is left of the request body (routing errors answer before any handler read
    it); False when it cannot be read, e.g. because it is over the size limit."""
    if not (request.content_length or request.headers.get("Transfer-Encoding")):
        return True
    if status == 413:
        return False
    try:
        await request.get_data()
    except Exception:
        return False
    return True


def is_dependency_down(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused database connection: that is
    a 503 the client may retry, not a bug."""
    down = (
        DBConnectionError,
        ConnectionError,
        socket.gaierror,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.InvalidCatalogNameError,
    )
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, down):
            return True
        if isinstance(current, OperationalError) and "database is locked" in str(current):
            return True  # SQLite busy past busy_timeout: retryable, not a bug
        for nested in (
            current.__cause__,
            current.__context__,
            *[a for a in current.args if isinstance(a, BaseException)],
        ):
            if nested is not None:
                stack.append(nested)
    return False
