"""``innosystem tester`` against a live server on the configured backend: every check passes (the
run an operator does after a deploy), it can run again on the same instance, and an address
nobody listens on is exit code 2 with nothing tested."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import ServerProcess, clean_env, free_port, running


def run_tester(url: str, *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "innosystem", "tester", "--url", url, *extra],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def live(make_server: Callable[..., ServerProcess]) -> Iterator[ServerProcess]:
    srv = make_server().start()
    with running(srv):
        yield srv


def test_every_check_passes_against_a_live_server(live: ServerProcess, tmp_path: Path) -> None:
    done = run_tester(live.url, "--timeout", "120", cwd=tmp_path)
    report = f"{done.stdout}\n{done.stderr}\n--- server log ---\n{live.logs()}"
    assert done.returncode == 0, report
    lines = done.stdout.strip().splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "DETAIL"], report
    assert "FAIL" not in done.stdout, report
    assert re.fullmatch(r"\d+ passed, 0 failed, \d+ skipped", lines[-1]), report
    # the only rows skipped on a fresh instance are disabled seed types (Email Processing)
    skipped = [line for line in lines if "  SKIP  " in line]
    assert skipped and all("job type is disabled" in line for line in skipped), report


def test_json_output_and_a_second_run_on_the_same_instance(
    live: ServerProcess, tmp_path: Path
) -> None:
    done = run_tester(live.url, "--json", "--timeout", "120", cwd=tmp_path)
    report = f"{done.stdout}\n{done.stderr}\n--- server log ---\n{live.logs()}"
    assert done.returncode == 0, report
    result = json.loads(done.stdout)
    assert result["exit_code"] == 0 and result["summary"]["failed"] == 0, report
    checks = result["checks"]
    assert {c["result"] for c in checks} <= {"PASS", "SKIP"}, report
    assert all(c["detail"] == "job type is disabled" for c in checks if c["result"] == "SKIP")
    names = {c["check"] for c in checks}
    for expected in (
        "health: GET /health",
        "wallet: top-up replay (same key) has no second effect",
        "money: reconciliation matches",
        "errors: job without funds -> 402",
        "cleanup: reseller reads as archived",
    ):
        assert expected in names, report
    succeeded = [c for c in checks if c["check"].endswith(" succeeded")]
    assert len(succeeded) >= 5, report  # four enabled seed types and the tester's own


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_an_unreachable_server_is_exit_code_2(as_json: bool, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_tester(url, *(["--json"] if as_json else []), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    if as_json:
        assert json.loads(done.stdout)["exit_code"] == 2
    else:
        assert "cannot reach" in done.stderr and "PASS" not in done.stdout
