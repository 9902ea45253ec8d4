"""The innosystem_artifact_store hook: a plugin can replace where artifacts live (e.g. S3)."""

from __future__ import annotations

import pickle
import uuid
from types import SimpleNamespace

import pytest

from innosystem import hookimpl
from innosystem.artifacts import JobArtifacts, LocalArtifactStore
from innosystem.config import load_settings
from innosystem.plugins import load_registry


class MemoryStore:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.files[key] = data

    def read(self, key: str) -> bytes:
        return self.files[key]

    def delete(self, key: str) -> None:
        self.files.pop(key, None)


def test_a_plugin_store_replaces_the_local_default(tmp_path):
    store = MemoryStore()
    plugin = SimpleNamespace(innosystem_artifact_store=hookimpl(lambda settings: store))
    settings = load_settings(env={"INNOSYSTEM_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    registry = load_registry(entry_points=[], extra=[("memory-store", plugin)])
    assert registry.artifact_store(settings) is store

    artifacts = JobArtifacts(
        store=store, job_id=uuid.uuid4(), attempt=2, customer_id=uuid.uuid4(), max_bytes=1024
    )
    meta = artifacts.put("out.txt", b"hello", "text/plain")
    assert meta["size_bytes"] == 5
    assert list(store.files) == [f"jobs/{artifacts.job_id}/2/out.txt"]


def test_without_a_plugin_files_go_under_the_data_dir(tmp_path):
    settings = load_settings(env={"INNOSYSTEM_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    store = load_registry(entry_points=[]).artifact_store(settings)
    assert isinstance(store, LocalArtifactStore)
    assert store.root == tmp_path / "artifacts"
    assert pickle.loads(pickle.dumps(store)).root == store.root  # the CPU pool receives it


def test_local_store_refuses_keys_that_escape_and_names_that_could(tmp_path):
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(ValueError):
        store.put("../outside", b"x")
    artifacts = JobArtifacts(
        store=store, job_id=uuid.uuid4(), attempt=1, customer_id=uuid.uuid4(), max_bytes=10
    )
    for bad in ("../x", "a/b", "", "..", "x" * 256):
        with pytest.raises(ValueError):
            artifacts.put(bad, b"x", "text/plain")
    with pytest.raises(ValueError):
        artifacts.put("big.bin", b"x" * 11, "application/octet-stream")
    with pytest.raises(FileNotFoundError):
        artifacts.read(uuid.uuid4())
