"""A plugin that lives outside this repository, installed the way an operator installs one: a
package is written to a temp dir, ``pip install``-ed (not editable) into this interpreter's
environment, and a real ``innosystem serve`` discovers it through the ``innosystem`` entry point
group, lists it, and runs its jobs, io and cpu alike (the CPU pool resolves the processor again
in its own process, from the installed package). It is uninstalled whatever happens.

Its package and logic ids carry a random suffix, so a leftover (a killed run) can never clash
with another run's plugin: two plugins with one logic id would stop every server from starting.

Building offline. Nothing here touches a package index: ``--no-build-isolation --no-deps
--no-index``. A setuptools-built package cannot be used for that in this venv: setuptools older
than 70.1 (a venv made by Python 3.11 ships 65.5) builds wheels with the separate ``wheel``
package, and without it ``pip install --no-build-isolation`` fails with ``invalid command
'bdist_wheel'``. So the test package brings its own tiny PEP 517 backend (``backend-path``,
``requires = []``, standard library only), which builds with any pip, isolated or not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx
from helpers import create_job_type, create_tenant, run_cli, running, submit, wait_for_status

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]

BACKEND = '''\
"""A PEP 517 build backend with no dependencies: a pure-Python wheel from the package dir."""

import base64
import hashlib
import io
import zipfile
from pathlib import Path

DIST = "{dist}"
VERSION = "{version}"
MODULE = "{module}"
METADATA = (
    "Metadata-Version: 2.1\\nName: " + DIST + "\\nVersion: " + VERSION + "\\n"
    "Summary: out-of-tree InnoSystem test plugin\\nRequires-Dist: innosystem\\n"
)
WHEEL = "Wheel-Version: 1.0\\nGenerator: oot-backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
ENTRY_POINTS = "[innosystem]\\n" + DIST + " = " + MODULE + "\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    stem = DIST.replace("-", "_") + "-" + VERSION
    info = stem + ".dist-info"
    files = {{
        path.as_posix(): path.read_bytes()
        for path in sorted(Path(MODULE).rglob("*.py"))
    }}
    files[info + "/METADATA"] = METADATA.encode()
    files[info + "/WHEEL"] = WHEEL.encode()
    files[info + "/entry_points.txt"] = ENTRY_POINTS.encode()
    record = io.StringIO()
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(name + ",sha256=" + digest + "," + str(len(data)) + "\\n")
    record.write(info + "/RECORD,,\\n")
    files[info + "/RECORD"] = record.getvalue().encode()
    wheel_name = stem + "-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel_name
'''

PYPROJECT = """\
[build-system]
requires = []
build-backend = "oot_backend"
backend-path = ["_build"]
"""

PLUGIN = '''\
"""Out-of-tree InnoSystem plugin {dist}: one io and one cpu processor."""

import os

from pydantic import BaseModel, Field

from innosystem import JobContext, PermanentError, Processor, hookimpl


class ShoutInput(BaseModel):
    text: str = Field(min_length=1, max_length=100)
    times: int = Field(default=1, ge=1, le=5)


class Shout(Processor):
    logic_id = "{shout_id}"
    name = "Shout"
    version = "2.3"
    processor_type = "sync"
    description = "Upper-cases text."
    input_model = ShoutInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        if input_data["text"] == "never":
            raise PermanentError("refusing to shout never")
        return {{"shout": " ".join([input_data["text"].upper()] * input_data["times"]),
                "attempt": ctx.attempt}}


class CountInput(BaseModel):
    items: list[str] = Field(max_length=1000)


class Count(Processor):
    logic_id = "{count_id}"
    name = "Count"
    version = "2.3"
    processor_type = "batch"
    kind = "cpu"
    input_model = CountInput

    def process(self, ctx: JobContext, input_data: dict) -> dict:
        counts = {{}}
        for word in input_data["items"]:
            counts[word] = counts.get(word, 0) + 1
        return {{"counts": counts, "pid": os.getpid()}}


@hookimpl
def innosystem_processors():
    return [Shout(), Count()]
'''


def write_package(root: Path, dist: str, module: str, shout_id: str, count_id: str) -> Path:
    package = root / dist
    (package / "_build").mkdir(parents=True)
    (package / module).mkdir()
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "_build" / "oot_backend.py").write_text(
        BACKEND.format(dist=dist, version="2.3.0", module=module)
    )
    (package / module / "__init__.py").write_text(
        textwrap.dedent(PLUGIN).format(dist=dist, shout_id=shout_id, count_id=count_id)
    )
    return package


def test_out_of_tree_plugin_is_installed_listed_and_run(tmp_path: Path, make_server):
    suffix = uuid.uuid4().hex[:10]
    dist = f"innosystem-oot-{suffix}"
    module = f"innosystem_oot_{suffix}"
    shout_id, count_id = f"oot-shout-{suffix}", f"oot-count-{suffix}"
    package = write_package(tmp_path, dist, module, shout_id, count_id)

    try:
        install = subprocess.run(
            [*PIP, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", package],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert install.returncode == 0, install.stdout + install.stderr

        listed = run_cli("plugins", "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        plugin = next(p for p in json.loads(listed.stdout)["plugins"] if p["package"] == dist)
        assert (plugin["status"], plugin["version"]) == ("ok", "2.3.0")
        assert sorted(plugin["logic_ids"]) == sorted([count_id, shout_id])

        srv = make_server().start()
        with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
            processors = {p["logic_id"]: p for p in api.get("/processors").json()["items"]}
            assert processors[shout_id]["package"] == dist
            assert processors[shout_id]["package_version"] == "2.3.0"
            assert (processors[shout_id]["processor_type"], processors[shout_id]["kind"]) == (
                "sync",
                "io",
            )
            assert processors[shout_id]["input_schema"]["required"] == ["text"]
            assert (processors[count_id]["processor_type"], processors[count_id]["kind"]) == (
                "batch",
                "cpu",
            )

            # The job type must say the processor's own type.
            wrong = api.post(
                "/job-types",
                json={
                    "name": f"wrong {suffix}",
                    "processing_logic_id": shout_id,
                    "processor_type": "async",
                    "standard_cost_cents": 5,
                },
            )
            assert wrong.status_code == 422, wrong.text
            shout = create_job_type(api, shout_id, cost=5, processor_type="sync")
            count = create_job_type(api, count_id, cost=5, processor_type="batch")
            tenant = create_tenant(api)

            refused = api.post(
                "/jobs",
                json={
                    "customer_id": tenant.customer_id,
                    "job_type_id": shout["id"],
                    "input_data": {"text": "", "times": 9},
                },
            )
            assert refused.status_code == 422, refused.text
            fields = sorted(d["field"] for d in refused.json()["error"]["details"])
            assert fields == ["input_data.text", "input_data.times"]

            job = submit(api, tenant.customer_id, shout["id"], {"text": "hi", "times": 2})
            done = wait_for_status(api, job["id"], timeout=60)
            assert done["status"] == "succeeded", srv.logs()
            assert done["result"] == {"shout": "HI HI", "attempt": 1}

            job = submit(api, tenant.customer_id, shout["id"], {"text": "never"})
            done = wait_for_status(api, job["id"], timeout=60)
            assert (done["status"], done["attempts"]) == ("failed", 1), done
            assert done["error"]["type"] == "permanent"

            job = submit(api, tenant.customer_id, count["id"], {"items": ["a", "b", "a"]})
            done = wait_for_status(api, job["id"], timeout=90)
            assert done["status"] == "succeeded", srv.logs()
            assert done["result"]["counts"] == {"a": 2, "b": 1}
            assert done["result"]["pid"] != srv.proc.pid  # ran in the CPU pool
    finally:
        uninstall = subprocess.run(
            [*PIP, "uninstall", "-y", dist], capture_output=True, text=True, timeout=300
        )
    assert uninstall.returncode == 0, uninstall.stdout + uninstall.stderr
    shown = subprocess.run([*PIP, "show", dist], capture_output=True, text=True, timeout=120)
    assert shown.returncode != 0, f"{dist} is still installed"
