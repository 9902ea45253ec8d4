"""/health tells the truth: 503 naming the part that is really down."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import httpx
import pytest
from helpers import IS_POSTGRES, ServerProcess, free_port, wait_for


def wait_unhealthy(srv: ServerProcess) -> httpx.Response:
    """The server's /health answer once it is a 503."""

    def unhealthy() -> httpx.Response | None:
        response = httpx.get(srv.url + "/health", timeout=10)
        return response if response.status_code == 503 else None

    return wait_for(unhealthy, timeout=20)


@pytest.fixture
def private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            == "PONG"
        ):
            break
        time.sleep(0.05)
    yield proc, f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def test_broker_down_gives_503_naming_the_broker(make_server, private_redis):
    redis_proc, url = private_redis
    srv = make_server(env={"INNOSYSTEM_BROKER_URL": url}).start()
    assert httpx.get(srv.url + "/health").status_code == 200

    redis_proc.kill()
    redis_proc.wait()

    response = wait_unhealthy(srv)
    body = response.json()
    assert body["status"] == "error"
    assert body["broker"].startswith("error")
    assert body["database"] == "ok"
    assert body["error"]["code"] == "unavailable"
    assert [d["field"] for d in body["error"]["details"]] == ["broker"]


@pytest.mark.skipif(not IS_POSTGRES, reason="needs a database server that can go away")
def test_database_down_gives_503_naming_the_database(make_server, databases):
    from helpers import _pg_exec

    url = databases.new_url()
    srv = make_server(url).start()
    assert httpx.get(srv.url + "/health").status_code == 200
    name = url.rsplit("/", 1)[1].split("?")[0]
    _pg_exec(f'DROP DATABASE "{name}" WITH (FORCE)')

    body = wait_unhealthy(srv).json()
    assert body["database"].startswith("error")
    assert "database" in body["error"]["message"]

    # Every other route answers 503 with the envelope too, never a 500.
    for method, path, payload in (
        ("GET", "/job-types", None),
        ("GET", f"/jobs/{uuid.uuid4()}", None),
        ("POST", "/resellers", {"name": "r"}),
    ):
        response = httpx.request(method, srv.url + path, json=payload, timeout=10)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"]["code"] == "unavailable"
