"""Test harness. The backend comes from the environment, exactly as for the program:

* nothing set: SQLite files in a temp dir + the in-process broker (the embedded default);
* ``INNOSYSTEM_DATABASE_URL=postgres://USER@HOST:PORT/DB`` and
  ``INNOSYSTEM_BROKER_URL=redis://HOST:PORT/N``: every test server gets a fresh PostgreSQL
  database created on that server (and dropped afterwards), and the processes on one test
  database share a broker namespace of their own in Redis database N (its keys are deleted
  afterwards), so test runs never consume each other's messages.

Flows are tested over real HTTP against ``innosystem serve`` started as a subprocess
(:class:`ServerProcess`), so what is tested is what ships, crash tests included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from helpers import BACKEND, Databases, ServerProcess


def pytest_report_header(config: pytest.Config) -> str:
    return f"innosystem backend: {BACKEND}"


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("dbs"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def server(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One served app shared by the API tests (fresh database, migrated and seeded)."""
    srv = ServerProcess(databases.new_url(), tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def make_server(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ServerProcess]]:
    """Factory for tests that need their own server(s) on their own database."""
    started: list[ServerProcess] = []

    def make(database_url: str | None = None, **kwargs: Any) -> ServerProcess:
        srv = ServerProcess(
            database_url or databases.new_url(), tmp_path_factory.mktemp("srv"), **kwargs
        )
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
