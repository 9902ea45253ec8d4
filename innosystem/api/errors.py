"""The one error envelope: ``{"error": {"code", "message", "details": [{"field", "message"}]}}``.

Every error leaves the API through here, including Quart's own HTTP errors (404 routing, 405,
413, ...) and unexpected exceptions (logged with a traceback, answered without one).
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from quart import Quart, Response, jsonify
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
        return error_response(exc.status, exc.code, exc.message, exc.details)

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
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        logger.opt(exception=exc).error("unhandled error")
        return error_response(500, "internal_error", "internal server error")
