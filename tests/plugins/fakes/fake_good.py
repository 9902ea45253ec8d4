"""A well-behaved plugin with two processors."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from innosystem import JobContext, Processor, hookimpl


class CountInput(BaseModel):
    count: int = Field(ge=1, le=10)
    label: str = "x"


class FakeAlpha(Processor):
    logic_id = "fake-alpha"
    name = "Fake alpha"
    version = "1.2.3"
    processor_type = "sync"

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        return {"alpha": input_data}


class FakeBeta(Processor):
    logic_id = "fake-beta"
    name = "Fake beta"
    version = "0.1"
    processor_type = "batch"
    kind = "cpu"
    input_model = CountInput

    def process(self, ctx: JobContext, input_data: Any) -> dict:
        return {"beta": input_data["count"]}


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [FakeAlpha(), FakeBeta()]
