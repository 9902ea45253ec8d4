"""Artifact storage: where processors' output files and customers' uploads live.

The store is pluggable (hook ``innosystem_artifact_store``) so S3-compatible storage can be added
by a plugin; the default keeps files under ``<data_dir>/artifacts``. Keys are built here only,
from ids the platform issued, so a tenant can never name another tenant's file.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from innosystem.errors import PermanentError

NAME = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


class ArtifactRefused(PermanentError, ValueError):
    """A bad artifact name or an oversized file: a processor bug, so no retry."""


class UploadNotFound(PermanentError, FileNotFoundError):
    """The input names an upload this customer does not have: retrying cannot help."""


class ArtifactStore(Protocol):
    """What a storage backend provides; instances must be picklable (the CPU pool gets one)."""

    def put(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalArtifactStore:
    """Files under a root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"artifact key {key!r} escapes the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name in (".", ".."):
        raise ArtifactRefused(
            f"artifact name {name!r} must be 1-255 characters of letters, digits, '.', '_', '-'"
        )
    return name


def upload_key(customer_id: uuid.UUID | str, artifact_id: uuid.UUID | str) -> str:
    return f"uploads/{customer_id}/{artifact_id}"


def output_key(job_id: uuid.UUID | str, attempt: int, name: str) -> str:
    return f"jobs/{job_id}/{attempt}/{name}"


def describe(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


@dataclass
class JobArtifacts:
    """``ctx.artifacts``: what one attempt of one job may write and read."""

    store: Any
    job_id: uuid.UUID
    attempt: int
    customer_id: uuid.UUID
    max_bytes: int
    written: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Store an output file of this attempt; the same name again replaces it."""
        check_name(name)
        if not isinstance(data, bytes | bytearray):
            raise TypeError("artifact data must be bytes")
        if len(data) > self.max_bytes:
            raise ArtifactRefused(f"artifact {name!r} is {len(data)} bytes; limit {self.max_bytes}")
        key = output_key(self.job_id, self.attempt, name)
        self.store.put(key, bytes(data))
        size, digest = describe(bytes(data))
        meta = {
            "name": name,
            "content_type": content_type or "application/octet-stream",
            "size_bytes": size,
            "sha256": digest,
        }
        self.written[name] = {**meta, "storage_key": key}
        return meta

    def read(self, artifact_id: uuid.UUID | str) -> bytes:
        """Bytes of one of this customer's uploads (the key cannot reach another tenant's)."""
        try:
            artifact_id = uuid.UUID(str(artifact_id))
        except ValueError:
            raise UploadNotFound(f"no upload {artifact_id!r}") from None
        try:
            return self.store.read(upload_key(self.customer_id, artifact_id))
        except (FileNotFoundError, KeyError):
            raise UploadNotFound(f"no upload {artifact_id} for this customer") from None

    def discard(self) -> None:
        """Remove what a failed attempt wrote (best effort)."""
        for meta in self.written.values():
            try:
                self.store.delete(meta["storage_key"])
            except Exception:  # storage hiccups must not change the job's outcome
                pass
        self.written.clear()
