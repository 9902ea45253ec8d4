"""Request bodies, checked in this order: size (413, Quart's MAX_CONTENT_LENGTH while reading),
content type (415), strict JSON syntax (400), storable values and shape (422 naming each
field)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from quart import current_app, request

from innosystem import jsonsafe
from innosystem.api.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_details(
    exc: ValidationError, model: type[BaseModel] | None = None, unknown: str = "unknown field"
) -> list[dict[str, str]]:
    immutable = getattr(model, "immutable", frozenset())
    details = []
    for err in exc.errors(include_url=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "cannot be changed" if err["loc"][-1] in immutable else unknown
        details.append({"field": _field_name(err["loc"]), "message": message})
    return details


def _invalid(details: list[dict[str, str]]) -> ApiError:
    fields = ", ".join(d["field"] for d in details)
    return ApiError(422, "validation_error", f"invalid fields: {fields}", details)


def read_query(model: type[M]) -> M:
    """The query string as ``model``; an empty value counts as absent, a repeated one is 422."""
    data: dict[str, str] = {}
    for name in request.args:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise _invalid([{"field": name, "message": "given more than once"}])
        if values[0] != "":
            data[name] = values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(validation_details(exc, model, "unknown query parameter")) from None


async def read_json(model: type[M]) -> M:
    # Read the body first, even when refusing it: answering before it is consumed makes the
    # server drop a keep-alive connection the client will reuse.
    limit = current_app.config["INNOSYSTEM_SETTINGS"].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        await request.get_data()  # drain it, so the keep-alive connection stays usable
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {limit} bytes")
    raw = await request.get_data(as_text=False)
    if len(raw) > limit:  # chunked bodies have no Content-Length to check up front
        raise ApiError(413, "payload_too_large", f"JSON bodies are limited to {limit} bytes")
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    try:
        data = jsonsafe.loads(raw)
        bad = jsonsafe.problems(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if bad:
        raise _invalid(bad)
    if not isinstance(data, dict):
        raise ApiError(
            422,
            "validation_error",
            "the body must be a JSON object",
            [{"field": "body", "message": "must be a JSON object"}],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(validation_details(exc, model)) from None
