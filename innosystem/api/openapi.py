"""The OpenAPI 3.1 document, generated from the routes Quart serves and the pydantic models their
handlers read and answer with.

Each handler declares itself with ``@operation(...)`` (its body, query and response models, the
errors it can answer). ``build_spec`` walks the app's URL map, so a route without a declaration
is found (``undocumented``) and a test fails on it; nothing is listed by hand twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from quart import Quart

from innosystem import __version__
from innosystem.api.schemas import ErrorOut

F = TypeVar("F", bound=Callable[..., Any])

ERROR_DESCRIPTIONS = {
    400: "malformed JSON body",
    402: "the wallet's open-to-buy does not cover it",
    404: "unknown id (in the path or the body)",
    409: "conflict with the resource's state (see the message)",
    413: "body larger than the configured limit",
    415: "body is not application/json",
    422: "a field of the body or query is missing, unknown, of the wrong type or out of range",
    503: "the database or the broker is unavailable",
}


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    status: int = 200
    response: Any = None  # a pydantic model; None: no JSON body
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    alternatives: dict[int, Any] = field(default_factory=dict)  # other success answers
    idempotent: bool = False
    raw_body: bool = False  # the body is the bytes of an upload, any content type
    binary: bool = False  # the answer is a file, not JSON
    description: str = ""


def operation(summary: str, tag: str, **kwargs: Any) -> Callable[[F], F]:
    """Declare a handler for the OpenAPI document."""

    def mark(view: F) -> F:
        view.__openapi__ = Operation(summary, tag, **kwargs)  # type: ignore[attr-defined]
        return view

    return mark


_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _PARAM.findall(rule):
        schema = {"type": "string", "format": "uuid"} if converter == "uuid" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule), params


def routes(app: Quart) -> list[tuple[str, str, Callable[..., Any], str]]:
    """(path template, method, view, endpoint) for every route the app serves."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path, _ = _path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method, app.view_functions[rule.endpoint], rule.endpoint))
    return found


def undocumented(app: Quart) -> list[str]:
    return [
        f"{method} {path}"
        for path, method, view, _ in routes(app)
        if getattr(view, "__openapi__", None) is None
    ]


def _models(ops: list[Operation]) -> list[tuple[Any, str]]:
    wanted: list[tuple[Any, str]] = [(ErrorOut, "serialization")]
    for op in ops:
        for model in (op.response, *op.alternatives.values()):
            if model is not None:
                wanted.append((model, "serialization"))
        for model in (op.body, op.query):
            if model is not None:
                wanted.append((model, "validation"))
    unique: dict[tuple[Any, str], None] = dict.fromkeys(wanted)
    return list(unique)


def build_spec(app: Quart) -> dict[str, Any]:
    found = routes(app)
    ops = [view.__openapi__ for _, _, view, _ in found if hasattr(view, "__openapi__")]
    refs, defs = models_json_schema(_models(ops), ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})

    def ref(model: Any, mode: str) -> dict[str, Any]:
        return refs[(model, mode)]

    def json_content(model: Any) -> dict[str, Any]:
        return {"application/json": {"schema": ref(model, "serialization")}}

    paths: dict[str, dict[str, Any]] = {}
    for rule_path, method, view, endpoint in found:
        op: Operation | None = getattr(view, "__openapi__", None)
        if op is None:
            continue
        _, path_params = _path(next(r.rule for r in app.url_map.iter_rules(endpoint)))
        parameters = list(path_params)
        if op.query is not None:
            query_schema = schemas[ref(op.query, "validation")["$ref"].rsplit("/", 1)[1]]
            required = set(query_schema.get("required", []))
            for name, prop in query_schema["properties"].items():
                param = {"name": name, "in": "query", "required": name in required}
                if "description" in prop:
                    param["description"] = prop["description"]
                param["schema"] = {k: v for k, v in prop.items() if k != "description"}
                parameters.append(param)
        if op.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "1..255 printable ASCII characters; a retry with the same "
                    "key and request returns the first response (docs/API.md, Idempotency)",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            )

        responses: dict[str, Any] = {}
        for status, model in ((op.status, op.response), *op.alternatives.items()):
            answer: dict[str, Any] = {"description": _success(status, op)}
            if op.binary and status == op.status:
                answer["content"] = {"application/octet-stream": {"schema": {}}}
            elif model is not None:
                answer["content"] = json_content(model)
            if op.idempotent:
                answer["headers"] = {
                    "Idempotent-Replayed": {
                        "description": "true when this is the stored first response",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                }
            responses[str(status)] = answer
        errors = set(op.errors) | {503}
        if op.body is not None:
            errors |= {400, 413, 415, 422}
        if op.raw_body:
            errors |= {413}
        if op.query is not None:
            errors |= {422}
        if path_params:
            errors |= {404}
        for status in sorted(errors):
            if str(status) in responses:  # e.g. /health answers 503 with its own body
                continue
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": json_content(ErrorOut),
            }

        entry: dict[str, Any] = {
            "operationId": f"{endpoint.replace('.', '_')}",
            "summary": op.summary,
            "tags": [op.tag],
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        elif op.raw_body:
            entry["requestBody"] = {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        paths.setdefault(rule_path, {})[method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "InnoSystem",
            "version": __version__,
            "description": "Multi-tenant job platform: tenants, wallets with open-to-buy, job "
            "types and jobs. Money is integer minor units; times are RFC 3339 UTC; every error "
            "is the envelope in components/schemas/ErrorOut.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas},
    }


def _success(status: int, op: Operation) -> str:
    if status == 204:
        return "deleted"
    if status == 201:
        return "created"
    if status >= 500:
        return "a dependency is down (the body names it)"
    if status == 202:
        return "accepted; the job is still running (poll GET /jobs/{id})"
    if op.status == 204 and status == 200:
        return "archived instead of deleted (it has history)"
    return "ok"
