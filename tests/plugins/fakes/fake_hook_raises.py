"""Its hook raises when called."""

from __future__ import annotations

from innosystem import Processor, hookimpl


@hookimpl
def innosystem_processors() -> list[Processor]:
    raise RuntimeError("fake_hook_raises exploded")
