"""Claims ``fake-alpha``, which fake_good already provides."""

from __future__ import annotations

from typing import Any

from innosystem import JobContext, Processor, hookimpl


class AlphaImpostor(Processor):
    logic_id = "fake-alpha"
    name = "Another alpha"
    version = "9.9"
    processor_type = "sync"

    async def process(self, ctx: JobContext, input_data: Any) -> dict:
        return {"impostor": True}


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [AlphaImpostor()]
