"""``innosystem bench submit|drain|queries --smoke`` on the configured backend: each run ends
with exit code 0 and writes its figures as JSON, every figure present and positive. No
thresholds: the bench prints numbers, it does not judge them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import BASE_DB_URL, BROKER_URL, IS_POSTGRES, run_cli


def backend_args() -> list[str]:
    if not IS_POSTGRES:
        return []
    broker = BROKER_URL if BROKER_URL.startswith("redis://") else "redis://127.0.0.1:6379/15"
    return ["--backend", "postgres", "--database-url", BASE_DB_URL, "--broker-url", broker]


def bench(mode: str, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / f"{mode}.json"
    done = run_cli(
        "bench", mode, "--smoke", "--json", str(out), *backend_args(), cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert figures["mode"] == mode
    assert figures["target"].startswith("postgres" if IS_POSTGRES else "sqlite")
    assert figures["processor"] == "test-noop"
    assert done.stdout.startswith(f"bench {mode}:"), done.stdout
    return figures


def positive(figures: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert figures[key] > 0, (key, figures)


def test_submit(tmp_path: Path) -> None:
    figures = bench("submit", tmp_path)
    for side in ("innosystem", "bare"):
        positive(figures[side], "requests", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")
        assert figures[side]["errors"] == 0, figures
        assert figures[side]["statuses"] == {"201": figures[side]["requests"]}
    positive(figures, "ratio_rps")


def test_drain(tmp_path: Path) -> None:
    figures = bench("drain", tmp_path)
    assert figures["innosystem"]["succeeded"] == figures["jobs"] == 20
    positive(figures["innosystem"], "seconds", "jobs_per_s")
    positive(figures["innosystem"]["latency_due_to_finish"], "p50_ms", "p99_ms", "max_ms")
    assert figures["raw_dramatiq"]["messages"] == 20
    positive(figures["raw_dramatiq"], "seconds", "msgs_per_s", "enqueue_per_s")
    positive(figures["submit"], "requests", "rps")
    positive(figures, "ratio_rate")


def test_queries(tmp_path: Path) -> None:
    figures = bench("queries", tmp_path)
    assert figures["succeeded"] == figures["jobs"] == 3
    for phase in ("submit", "execute"):
        positive(
            figures[phase],
            "statements_per_job",
            "transactions_per_job",
            "round_trips_per_job",
            "min_statements",
        )
        assert figures[phase]["by_method_per_job"], figures


@pytest.mark.parametrize("mode", ["submit", "drain", "queries"])
def test_help_names_the_mode(mode: str, tmp_path: Path) -> None:
    done = run_cli("bench", mode, "--help", cwd=tmp_path)
    assert done.returncode == 0 and "--smoke" in done.stdout, done.stderr
