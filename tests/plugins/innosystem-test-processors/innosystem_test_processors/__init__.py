"""Test processors: small, deterministic behaviours the engine's tests need (success, delay,
transient and permanent failure, process death, CPU work)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from pydantic import BaseModel, Field

from innosystem import JobContext, PermanentError, Processor, RetryableError, hookimpl


class Echo(Processor):
    logic_id = "test-echo"
    name = "Echo"
    version = "1.0"
    description = "Returns its input."

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        ctx.logger.info("echoing {} keys", len(input_data))
        return {"echo": input_data}


class Noop(Processor):
    logic_id = "test-noop"
    name = "No-op"
    version = "1.0"

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        return {}


class SleepInput(BaseModel):
    seconds: float = Field(ge=0, le=3600)


class Sleep(Processor):
    logic_id = "test-sleep"
    name = "Sleep"
    version = "1.0"
    input_model = SleepInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        await ctx.sleep(input_data["seconds"])
        return {"slept": input_data["seconds"]}


class FailInput(BaseModel):
    failures: int = Field(ge=0, le=100)
    permanent: bool = False


class FailNTimes(Processor):
    logic_id = "test-fail-n-times"
    name = "Fail n times"
    version = "1.0"
    input_model = FailInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        if ctx.attempt <= input_data["failures"]:
            if input_data["permanent"]:
                raise PermanentError(f"permanent failure on attempt {ctx.attempt}")
            raise RetryableError(f"planned failure on attempt {ctx.attempt}")
        return {"succeeded_on_attempt": ctx.attempt}


class Crash(Processor):
    logic_id = "test-crash"
    name = "Crash the process"
    version = "1.0"

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        if os.environ.get("INNOSYSTEM_TEST_ALLOW_CRASH") != "1":
            raise PermanentError("test-crash is disabled (set INNOSYSTEM_TEST_ALLOW_CRASH=1)")
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class CpuInput(BaseModel):
    n: int = Field(ge=0, le=50_000_000)


class CpuBurn(Processor):
    logic_id = "test-cpu-burn"
    name = "CPU burn"
    version = "1.0"
    kind = "cpu"
    input_model = CpuInput

    def process(self, ctx: JobContext, input_data: dict) -> dict:
        total = sum(i * i for i in range(input_data["n"]))
        return {"sum_of_squares": total, "pid": os.getpid()}


class ArtifactInput(BaseModel):
    name: str
    text: str
    content_type: str = "text/plain"
    fail_after_write: bool = False


def _write(ctx: JobContext, input_data: dict) -> dict:
    meta = ctx.artifacts.put(
        input_data["name"], input_data["text"].encode(), input_data["content_type"]
    )
    if input_data["fail_after_write"]:
        raise PermanentError("failed after writing an artifact")
    return {"artifact": meta, "pid": os.getpid()}


class WriteArtifact(Processor):
    logic_id = "test-write-artifact"
    name = "Write an artifact"
    version = "1.0"
    input_model = ArtifactInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        return _write(ctx, input_data)


class WriteArtifactCpu(Processor):
    logic_id = "test-write-artifact-cpu"
    name = "Write an artifact from the process pool"
    version = "1.0"
    kind = "cpu"
    input_model = ArtifactInput

    def process(self, ctx: JobContext, input_data: dict) -> dict:
        return _write(ctx, input_data)


class UploadInput(BaseModel):
    artifact_id: str


class ReadUpload(Processor):
    logic_id = "test-read-upload"
    name = "Read an uploaded artifact"
    version = "1.0"
    input_model = UploadInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        import hashlib

        try:
            data = ctx.artifacts.read(input_data["artifact_id"])
        except FileNotFoundError as exc:
            raise PermanentError(str(exc)) from None
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class OddError(Exception):
    """Cannot be rebuilt from its args: unpickling it in the parent would fail."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} ({code})")


class CpuFailFirst(Processor):
    logic_id = "test-cpu-fail-first"
    name = "Fail the first attempt in the process pool"
    version = "1.0"
    kind = "cpu"

    def process(self, ctx: JobContext, input_data: dict) -> dict:
        if ctx.attempt == 1:
            if input_data.get("how") == "die":
                if os.environ.get("INNOSYSTEM_TEST_ALLOW_CRASH") != "1":
                    raise PermanentError("dying is disabled (set INNOSYSTEM_TEST_ALLOW_CRASH=1)")
                os._exit(3)  # the pool process dies: the pool is broken for everyone
            raise OddError("odd failure", 7)
        return {"attempt": ctx.attempt, "pid": os.getpid()}


class SyncSleep(Processor):
    """A Sync type: POST /jobs waits for it up to the job type's sync timeout."""

    logic_id = "test-sync-sleep"
    name = "Sync sleep"
    version = "1.0"
    processor_type = "sync"
    input_model = SleepInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        await ctx.sleep(input_data["seconds"])
        return {"slept": input_data["seconds"]}


class BatchItem(BaseModel):
    ok: bool = True
    seconds: float = Field(default=0, ge=0, le=60)


class BatchInput(BaseModel):
    items: list[BatchItem] = Field(min_length=1, max_length=1000)


class Batch(Processor):
    """A Batch type: one item at a time, progress after each, per-item results and errors."""

    logic_id = "test-batch"
    name = "Batch"
    version = "1.0"
    processor_type = "batch"
    input_model = BatchInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        items = input_data["items"]
        results: list[dict[str, Any]] = []
        succeeded = failed = 0
        ctx.report_progress(total=len(items), succeeded=0, failed=0)
        for index, item in enumerate(items):
            await ctx.sleep(item["seconds"])
            if item["ok"]:
                succeeded += 1
                results.append({"index": index, "value": index * 2})
            else:
                failed += 1
                results.append({"index": index, "error": f"item {index} refused"})
            ctx.report_progress(total=len(items), succeeded=succeeded, failed=failed)
        return {"items": results, "summary": {"succeeded": succeeded, "failed": failed}}


class BatchLax(Processor):
    """A Batch type with no input model: only the engine checks ``input_data.items``."""

    logic_id = "test-batch-lax"
    name = "Batch without an input model"
    version = "1.0"
    processor_type = "batch"

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        items = input_data.get("items")
        count = len(items) if isinstance(items, list) else None
        ctx.report_progress(total=count or 0, succeeded=count or 0, failed=0)
        return {"count": count}


class Stubborn(Processor):
    """Ignores cancellation: the runner must stop it by force after the grace period."""

    logic_id = "test-stubborn"
    name = "Stubborn"
    version = "1.0"
    input_model = SleepInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        await asyncio.sleep(input_data["seconds"])
        return {"slept": input_data["seconds"]}


class CpuSpin(Processor):
    """Busy CPU work that never looks at ctx.cancelled(): only killing its process stops it."""

    logic_id = "test-cpu-spin"
    name = "CPU spin"
    version = "1.0"
    kind = "cpu"
    input_model = SleepInput

    def process(self, ctx: JobContext, input_data: dict) -> dict:
        ctx.report_progress(pid=os.getpid())
        deadline = time.monotonic() + input_data["seconds"]
        spins = 0
        while time.monotonic() < deadline:
            spins += 1
        return {"spins": spins, "pid": os.getpid()}


def _append_line(path: str, line: str) -> None:
    """Open, append, flush, close: a process killed afterwards keeps the line."""
    with open(path, "a") as out:
        out.write(line)
        out.flush()


class RecordInput(BaseModel):
    sleep_ms: int = Field(default=30, ge=0, le=60_000)
    failures: int = Field(default=0, ge=0, le=100)


class Record(Processor):
    """Leaves a trace of every invocation for tests that check where, when and how often jobs
    ran: one line per call, appended at the end of ``process()`` to
    ``$INNOSYSTEM_TEST_RECORD_DIR/<pid>.log`` (one file per process), tab-separated:
    job id, attempt, runner id, start, end (``time.time()``), ``ok`` or ``fail``. The file is
    opened, appended and flushed per line, so a SIGKILL loses at most the calls in flight.
    Sleeps ``sleep_ms`` between start and end (so overlapping calls are observable) and raises
    a retryable error on the first ``failures`` attempts."""

    logic_id = "test-record"
    name = "Record"
    version = "1.0"
    input_model = RecordInput

    async def process(self, ctx: JobContext, input_data: dict) -> dict:
        start = time.time()
        await asyncio.sleep(input_data["sleep_ms"] / 1000)
        failing = ctx.attempt <= input_data["failures"]
        end = time.time()
        directory = os.environ.get("INNOSYSTEM_TEST_RECORD_DIR")
        if directory:
            line = (
                f"{ctx.job_id}\t{ctx.attempt}\t{ctx.runner_id}\t{start:.6f}\t{end:.6f}\t"
                f"{'fail' if failing else 'ok'}\n"
            )
            _append_line(os.path.join(directory, f"{os.getpid()}.log"), line)
        if failing:
            raise RetryableError(f"planned failure on attempt {ctx.attempt}")
        return {"attempt": ctx.attempt, "runner_id": ctx.runner_id}


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [
        SyncSleep(),
        Batch(),
        Stubborn(),
        CpuSpin(),
        Echo(),
        Noop(),
        Sleep(),
        FailNTimes(),
        Crash(),
        CpuBurn(),
        WriteArtifact(),
        WriteArtifactCpu(),
        ReadUpload(),
        CpuFailFirst(),
        Record(),
        BatchLax(),
    ]
