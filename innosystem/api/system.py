"""/health, /runners, /queues, /processors, and the API's own description (/openapi.json,
/docs)."""

from __future__ import annotations

import asyncio
from importlib.resources import files

from quart import Blueprint, Response, current_app, jsonify

from innosystem import __version__, db
from innosystem.api.body import read_query
from innosystem.api.openapi import build_spec, operation
from innosystem.api.schemas import (
    HealthOut,
    Items,
    ProcessorsOut,
    QueuesOut,
    RunnerListQuery,
    RunnerOut,
    runner_dict,
)
from innosystem.plugins import get_registry
from innosystem.services import queues as queue_service
from innosystem.services import runners

bp = Blueprint("system", __name__)

CHECK_TIMEOUT_S = 2.0


async def _check(coro) -> str:
    try:
        await asyncio.wait_for(coro, CHECK_TIMEOUT_S)
        return "ok"
    except Exception as exc:  # the message is for operators; no secrets are in these errors
        return f"error: {type(exc).__name__}: {exc}"[:300]


@bp.get("/health")
@operation(
    "Liveness and dependencies: 503 names the part that is down",
    "system",
    response=HealthOut,
    alternatives={503: HealthOut},
)
async def health():
    runtime = current_app.extensions.get("innosystem_runtime")
    database = await _check(db.ping())
    broker = await _check(runtime.health()) if runtime else "error: no worker runtime"
    ok = database == "ok" and broker == "ok"
    body = {
        "status": "ok" if ok else "error",
        "database": database,
        "broker": broker,
        "version": __version__,
        "runner_id": current_app.config["INNOSYSTEM_SETTINGS"].runner_id,
    }
    if not ok:
        failed = [name for name in ("database", "broker") if body[name] != "ok"]
        body["error"] = {
            "code": "unavailable",
            "message": f"{', '.join(failed)} unavailable",
            "details": [{"field": name, "message": body[name]} for name in failed],
        }
    return jsonify(body), 200 if ok else 503


@bp.get("/runners")
@operation(
    "Worker processes: active, stale (leases still hold) or gone, with their counters",
    "system",
    response=Items[RunnerOut],
    query=RunnerListQuery,
)
async def list_runners():
    q = read_query(RunnerListQuery)
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    rows = await runners.list_runners(settings, q.status)
    return jsonify({"items": [runner_dict(r, status) for r, status in rows]})


@bp.get("/queues")
@operation(
    "What waits to run: pending jobs by priority and job type, and which runners serve them",
    "system",
    response=QueuesOut,
)
async def queues():
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    return jsonify(await queue_service.overview(settings))


@bp.get("/processors")
@operation("Installed processor plugins and their logic ids", "system", response=ProcessorsOut)
async def processors():
    registry = get_registry()
    return jsonify(
        {"items": registry.describe(), "plugins": [p.as_dict() for p in registry.plugins]}
    )


@bp.get("/openapi.json")
@operation("This API as an OpenAPI 3.1 document", "system")
async def openapi():
    spec = current_app.extensions.get("innosystem_openapi")
    if spec is None:  # built once: the routes and models cannot change while serving
        spec = current_app.extensions["innosystem_openapi"] = build_spec(current_app)
    return jsonify(spec)


@bp.get("/docs")
@operation("Interactive API documentation (self-contained, no CDN)", "system")
async def docs():
    page = files("innosystem.api").joinpath("docs.html").read_text(encoding="utf-8")
    return Response(page, content_type="text/html; charset=utf-8")
