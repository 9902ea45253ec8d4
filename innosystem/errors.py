"""The one error hierarchy. Service errors carry the HTTP status and code of the public contract,
so the API maps them to the envelope without knowing any business rule."""

from __future__ import annotations

from typing import Any


class InnoSystemError(Exception):
    """Base of every error InnoSystem raises on purpose."""


class ConfigError(InnoSystemError):
    """A configuration value is invalid; the message names the key."""


class PluginError(InnoSystemError):
    """The plugin set cannot be used (e.g. two plugins claim one logic id)."""


# --- raised by processors -------------------------------------------------------------------
class ProcessorError(InnoSystemError):
    """Base for errors a processor raises to steer the retry policy."""


class RetryableError(ProcessorError):
    """A transient failure: the job is retried by its job type's policy."""


class PermanentError(ProcessorError):
    """The input can never succeed: the job fails now, without further attempts."""


class JobCancelled(ProcessorError):
    """Raised inside a processor when ``ctx.raise_if_cancelled()`` sees a cancel request."""


# --- raised by services, mapped to HTTP by the API --------------------------------------------
class ServiceError(InnoSystemError):
    """A request the service layer refuses; ``status`` and ``code`` are the public contract."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationFailed(ServiceError):
    status = 422
    code = "validation_error"

    @classmethod
    def field(cls, name: str, message: str) -> ValidationFailed:
        return cls(f"{name}: {message}", [{"field": name, "message": message}])


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class InsufficientFunds(ServiceError):
    status = 402
    code = "insufficient_funds"


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"
