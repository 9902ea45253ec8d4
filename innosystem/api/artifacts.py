"""/artifacts (uploads) and /jobs/{id}/artifacts (a job's output files)."""

from __future__ import annotations

import uuid

from quart import Blueprint, Response, current_app, jsonify, request

from innosystem.api.body import read_query
from innosystem.api.errors import ApiError
from innosystem.api.openapi import operation
from innosystem.api.schemas import ArtifactOut, Items, UploadQuery, artifact_dict
from innosystem.plugins import get_registry
from innosystem.services import artifacts as artifact_service

bp = Blueprint("artifacts", __name__)


def _store():
    runtime = current_app.extensions.get("innosystem_runtime")
    if runtime is not None:
        return runtime.state.artifact_store
    return get_registry().artifact_store(current_app.config["INNOSYSTEM_SETTINGS"])


@bp.post("/artifacts")
@operation(
    "Upload a file a job can take as input (the body is the file)",
    "artifacts",
    status=201,
    response=ArtifactOut,
    query=UploadQuery,
    raw_body=True,
)
async def upload():
    """Raw bytes in the body (its Content-Type is stored); customer and name in the query."""
    settings = current_app.config["INNOSYSTEM_SETTINGS"]
    if request.content_length is not None and request.content_length > settings.max_artifact_bytes:
        await request.get_data()  # drain it, so the keep-alive connection stays usable
        raise ApiError(
            413, "payload_too_large", f"uploads are limited to {settings.max_artifact_bytes} bytes"
        )
    data = await request.get_data(as_text=False)
    q = read_query(UploadQuery)
    artifact = await artifact_service.upload(
        _store(),
        q.customer_id,
        q.name,
        request.content_type or "application/octet-stream",
        data,
    )
    return jsonify(artifact_dict(artifact)), 201


@bp.get("/artifacts/<uuid:artifact_id>")
@operation("Read an upload's metadata", "artifacts", response=ArtifactOut)
async def get_upload(artifact_id: uuid.UUID):
    return jsonify(artifact_dict(await artifact_service.get_upload(artifact_id)))


@bp.get("/jobs/<uuid:job_id>/artifacts")
@operation("A job's output files", "artifacts", response=Items[ArtifactOut])
async def list_job_artifacts(job_id: uuid.UUID):
    items = await artifact_service.list_for_job(job_id)
    return jsonify({"items": [artifact_dict(a) for a in items]})


@bp.get("/jobs/<uuid:job_id>/artifacts/<name>")
@operation("Download one output file of a job", "artifacts", binary=True)
async def download(job_id: uuid.UUID, name: str):
    artifact, data = await artifact_service.read_for_job(_store(), job_id, name)
    response = Response(data, content_type=artifact.content_type)
    response.headers["Content-Length"] = str(len(data))
    response.headers["Content-Disposition"] = f'attachment; filename="{artifact.name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
