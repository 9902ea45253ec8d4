"""What a plugin author implements (``Processor``) and what a running job sees (``JobContext``)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from loguru import logger as _root_logger
from pydantic import ValidationError

from innosystem.errors import JobCancelled, ValidationFailed


class Processor:
    """Base class for processors.

    Subclass it, set the class attributes, implement ``process``. ``process`` may be ``async def``
    (for ``kind = "io"``: awaited on the worker loop) or a plain ``def`` (run in a thread for
    ``io``, in the process pool for ``cpu``) so CPU-heavy work never blocks the API.
    """

    logic_id: ClassVar[str]
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    processor_type: ClassVar[Literal["sync", "async", "batch"]] = "async"
    kind: ClassVar[Literal["io", "cpu"]] = "io"
    description: ClassVar[str] = ""
    #: Optional pydantic model; input that does not validate is refused at submit with 422.
    input_model: ClassVar[type[Any] | None] = None

    def validate_input(self, data: Any) -> Any:
        """Check ``input_data`` at submit time; returns the value the processor will receive."""
        if self.input_model is None:
            return data
        try:
            return self.input_model.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            details = [
                {
                    "field": "input_data" + "".join(f".{p}" for p in err["loc"]),
                    "message": err["msg"],
                }
                for err in exc.errors()
            ]
            raise ValidationFailed(
                "input_data does not match the processor's schema", details
            ) from None

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any] | Awaitable[dict]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        schema = None
        if self.input_model is not None and hasattr(self.input_model, "model_json_schema"):
            schema = self.input_model.model_json_schema()
        return {
            "logic_id": self.logic_id,
            "name": self.name or self.logic_id,
            "version": self.version,
            "processor_type": self.processor_type,
            "kind": self.kind,
            "description": self.description,
            "input_schema": schema,
        }


@dataclass
class JobContext:
    """Everything a processor may touch while it runs one attempt of one job."""

    job_id: uuid.UUID
    attempt: int
    job_type_id: uuid.UUID
    customer_id: uuid.UUID
    runner_id: str
    #: ``innosystem.artifacts.JobArtifacts``: put(name, data, content_type) / read(upload_id).
    artifacts: Any = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _progress: Callable[[dict[str, Any]], None] | None = None
    #: In a CPU pool process: asks the parent whether the job was cancelled.
    _cancel_check: Callable[[], bool] | None = None
    _cancel_async: asyncio.Event | None = None

    def request_cancel(self) -> None:
        """The runner's side (on its event loop): tell the processor to stop."""
        self._cancel.set()
        self.cancel_event().set()

    def cancel_event(self) -> asyncio.Event:
        """Set when a cancel is requested: what the runner awaits to enforce the grace period."""
        if self._cancel_async is None:
            self._cancel_async = asyncio.Event()
            if self._cancel.is_set():
                self._cancel_async.set()
        return self._cancel_async

    @property
    def logger(self) -> Any:
        return _root_logger.bind(job_id=str(self.job_id), attempt=self.attempt)

    def cancelled(self) -> bool:
        """True once the job was asked to stop; long processors should check it between steps."""
        if self._cancel_check is not None and not self._cancel.is_set() and self._cancel_check():
            self._cancel.set()
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled("the job was cancelled")

    def report_progress(self, **progress: Any) -> None:
        """Record progress (e.g. total/succeeded/failed); shown on ``GET /jobs/{id}``."""
        self.report_progress_dict(dict(progress))

    def report_progress_dict(self, progress: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress(progress)

    async def sleep(self, seconds: float) -> None:
        """Sleep that wakes early on cancellation (for async processors)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self.cancelled():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.1))
        raise JobCancelled("the job was cancelled")
