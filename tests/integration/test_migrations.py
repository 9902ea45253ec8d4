"""``innosystem migrate`` and ``innosystem seed`` on the configured backend, run as subprocesses on
a fresh empty database (so Tortoise's global state in the test process is never touched)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import IS_POSTGRES, Databases, clean_env, db_query, run_cli

from innosystem.config import load_settings

TABLES = (
    "resellers",
    "customers",
    "projects",
    "wallets",
    "wallet_transactions",
    "job_types",
    "jobs",
    "job_events",
    "runners",
)
DEMO_CUSTOMER = "00000000-0000-4000-8000-000000000002"
COUNTS = {
    "job_types": "SELECT COUNT(*) FROM job_types",
    "resellers": "SELECT COUNT(*) FROM resellers",
    "customers": "SELECT COUNT(*) FROM customers",
    "projects": "SELECT COUNT(*) FROM projects",
    "wallets": "SELECT COUNT(*) FROM wallets",
    "top_ups": (
        "SELECT COUNT(*) FROM wallet_transactions t JOIN wallets w ON w.id = t.wallet_id "
        f"WHERE t.kind = 'top_up' AND w.customer_id = '{DEMO_CUSTOMER}'"
    ),
    "ledger_rows": "SELECT COUNT(*) FROM wallet_transactions",
    "demo_balance": f"SELECT balance_cents FROM wallets WHERE customer_id = '{DEMO_CUSTOMER}'",
}


def cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(drop=("DATABASE_URL",), INNOSYSTEM_DATABASE_URL=database_url)
    result = run_cli(*args, cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, f"innosystem {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in db_query(database_url, sql)]


def tables(database_url: str) -> set[str]:
    if IS_POSTGRES:
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {row[0] for row in query(database_url, sql)}


def counts(database_url: str) -> dict[str, Any]:
    return {name: query(database_url, sql)[0][0] for name, sql in COUNTS.items()}


@pytest.fixture
def fresh_url(databases: Databases) -> str:
    url = databases.new_url()
    assert load_settings(env={"INNOSYSTEM_DATABASE_URL": url}).is_sqlite is not IS_POSTGRES
    return url


def test_migrate_to_target_then_head_creates_every_table(fresh_url: str, tmp_path: Path):
    assert not set(TABLES) & tables(fresh_url)

    cli(fresh_url, tmp_path, "migrate", "--target", "models.0001_initial")
    assert set(TABLES) <= tables(fresh_url)

    cli(fresh_url, tmp_path, "migrate")
    present = tables(fresh_url)
    assert set(TABLES) <= present
    schema_before = present
    applied = query(fresh_url, "SELECT COUNT(*) FROM tortoise_migrations")[0][0]
    assert applied >= 1

    # Running it again is a no-op that succeeds.
    cli(fresh_url, tmp_path, "migrate")
    assert tables(fresh_url) == schema_before
    assert query(fresh_url, "SELECT COUNT(*) FROM tortoise_migrations")[0][0] == applied
    for table in TABLES:
        assert query(fresh_url, f"SELECT COUNT(*) FROM {table}")[0][0] == 0


def test_seed_is_idempotent(fresh_url: str, tmp_path: Path):
    cli(fresh_url, tmp_path, "migrate")
    cli(fresh_url, tmp_path, "seed")
    first = counts(fresh_url)
    assert first == {
        "job_types": 5,
        "resellers": 1,
        "customers": 1,
        "projects": 1,
        "wallets": 1,
        "top_ups": 1,
        "ledger_rows": 1,
        "demo_balance": 100_000,
    }

    cli(fresh_url, tmp_path, "seed")
    assert counts(fresh_url) == first

    names = {
        row[0]: (row[1], row[2])
        for row in query(fresh_url, "SELECT name, processing_logic_id, enabled FROM job_types")
    }
    assert names["Email Processing"] == ("email-proc-v1", False)
    assert names["Text Analysis"][0] == "text-analysis-v1"
    assert bool(names["Text Analysis"][1]) is True


def test_seed_migrates_an_empty_database_first(fresh_url: str, tmp_path: Path):
    cli(fresh_url, tmp_path, "seed")
    assert set(TABLES) <= tables(fresh_url)
    assert counts(fresh_url)["job_types"] == 5
