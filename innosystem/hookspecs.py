"""Every hook InnoSystem calls, declared once. Plugins implement them with ``@hookimpl``.

Hook names carry the ``innosystem_`` prefix; a plugin package exposes its module through the
``innosystem`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from innosystem.artifacts import ArtifactStore
    from innosystem.config import Settings
    from innosystem.processors import Processor

PROJECT = "innosystem"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def innosystem_processors() -> list[Processor]:
    """Return the processors this plugin provides.

    Called once at start. Each processor's ``logic_id`` must be unique across all installed
    plugins: a duplicate stops start-up naming both packages, because silently picking one would
    run tenants' paid jobs through code the operator did not choose.
    """


@hookspec(firstresult=True)
def innosystem_artifact_store(settings: Settings) -> ArtifactStore | None:
    """Return the store for artifacts (job outputs and uploads), or None to leave it to others.

    The first plugin that returns a store wins; with none, files live under
    ``<data_dir>/artifacts``. Lets an operator move files to S3-compatible storage by installing a
    plugin, without a change to the core. The store must be picklable: CPU processors get it in
    their worker process.
    """
