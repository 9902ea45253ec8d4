"""Test processors: small, deterministic behaviours the engine's tests need (success, delay,
transient and permanent failure, process death, CPU work)."""

from __future__ import annotations

import os
import signal
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


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [
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
    ]
