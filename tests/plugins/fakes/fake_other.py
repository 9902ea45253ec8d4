"""A second well-behaved plugin with a distinct logic id."""

from __future__ import annotations

from typing import Any

from innosystem import JobContext, Processor, hookimpl


class FakeGamma(Processor):
    logic_id = "fake-gamma"
    name = "Fake gamma"
    version = "2.0"

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        return {}


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [FakeGamma()]
