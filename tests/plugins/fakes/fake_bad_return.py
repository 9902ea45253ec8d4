"""Its hook returns something that is not a Processor."""

from __future__ import annotations

from innosystem import hookimpl


class NotAProcessor:
    logic_id = "fake-not-a-processor"


@hookimpl
def innosystem_processors() -> list[object]:
    return [NotAProcessor()]
