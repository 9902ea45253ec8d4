"""Plugin discovery (entry-point group ``innosystem``), guarded loading and the processor registry.

A plugin that fails to import or whose hook raises is reported by name and skipped, so one broken
package never takes the platform down; two plugins claiming one logic id stop start-up, because
either choice would be a silent guess.
"""

from __future__ import annotations

import importlib.metadata as md
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
from loguru import logger

from innosystem import hookspecs
from innosystem.errors import PluginError
from innosystem.processors import Processor

ENTRY_POINT_GROUP = "innosystem"

#: Modules of the core that implement hooks; registered exactly like third-party plugins.
DEFAULT_PLUGINS: tuple[str, ...] = ()


@dataclass
class PluginInfo:
    name: str
    package: str
    version: str
    logic_ids: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "logic_ids": self.logic_ids,
            "status": "error" if self.error else "ok",
            "error": self.error,
        }


@dataclass
class ProcessorRegistry:
    processors: dict[str, Processor] = field(default_factory=dict)
    hooks: Any = None  # pluggy hook relay, for hooks other than innosystem_processors
    owners: dict[str, PluginInfo] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)

    def get(self, logic_id: str) -> Processor | None:
        return self.processors.get(logic_id)

    def artifact_store(self, settings: Any) -> Any:
        """The plugin-provided artifact store, else local files under the data dir."""
        from innosystem.artifacts import LocalArtifactStore

        store = None
        if self.hooks is not None:
            store = self.hooks.innosystem_artifact_store(settings=settings)
        return store if store is not None else LocalArtifactStore(settings.data_dir / "artifacts")

    def logic_ids(self) -> list[str]:
        return sorted(self.processors)

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for logic_id in self.logic_ids():
            info = self.owners[logic_id]
            out.append(
                {
                    **self.processors[logic_id].describe(),
                    "plugin": info.name,
                    "package": info.package,
                    "package_version": info.version,
                }
            )
        return out


def _short_error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def _candidates(
    entry_points: Iterable[md.EntryPoint] | None,
) -> list[tuple[str, str, str, Any]]:
    """(name, package, version, loader) for each plugin; loader() imports the module."""
    found: list[tuple[str, str, str, Any]] = []
    for mod_name in DEFAULT_PLUGINS:
        found.append(
            (
                mod_name,
                "innosystem",
                _own_version(),
                lambda m=mod_name: __import__(m, fromlist=["_"]),
            )
        )
    eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    for ep in sorted(eps, key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        package = dist.metadata["Name"] if dist is not None else ep.value.split(":")[0]
        version = dist.version if dist is not None else "?"
        found.append((ep.name, package, version, ep.load))
    return found


def _own_version() -> str:
    try:
        return md.version("innosystem")
    except md.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def load_registry(
    entry_points: Iterable[md.EntryPoint] | None = None,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
) -> ProcessorRegistry:
    """Discover plugins and build the registry; raises PluginError on a duplicate logic id.

    ``extra`` registers in-memory plugins (name, module-or-object): tests use it.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = ProcessorRegistry(hooks=pm.hook)

    loaded: list[tuple[PluginInfo, Any]] = []
    for name, package, version, loader in _candidates(entry_points):
        info = PluginInfo(name=name, package=package, version=version)
        registry.plugins.append(info)
        try:
            loaded.append((info, loader()))
        except Exception as exc:  # a broken plugin must not take the others down
            info.error = f"import failed: {_short_error(exc)}"
            logger.error(
                "plugin {!r} ({}) failed to import and is skipped: {}", name, package, info.error
            )
    for name, obj in extra:
        info = PluginInfo(name=name, package=getattr(obj, "__name__", name), version="0")
        registry.plugins.append(info)
        loaded.append((info, obj))

    for info, obj in loaded:
        # Two packages may use the same entry-point name; pluggy needs a unique one.
        key = f"{info.package}:{info.name}"
        try:
            pm.register(obj, name=key)
        except Exception as exc:
            info.error = f"registration failed: {_short_error(exc)}"
            logger.error("plugin {!r} could not be registered: {}", info.name, info.error)
            continue
        impls = [i for i in pm.hook.innosystem_processors.get_hookimpls() if i.plugin_name == key]
        for impl in impls:
            try:
                processors = list(impl.function() or [])
                for proc in processors:
                    _check_processor(proc)
            except Exception as exc:
                info.error = f"innosystem_processors() failed: {_short_error(exc)}"
                logger.error("plugin {!r} is skipped: {}", info.name, info.error)
                continue
            for proc in processors:
                if proc.logic_id in registry.processors:
                    other = registry.owners[proc.logic_id]
                    raise PluginError(
                        f"processing logic id {proc.logic_id!r} is provided by two plugins: "
                        f"{other.name!r} (package {other.package}) and {info.name!r} "
                        f"(package {info.package}); uninstall one of them"
                    )
                registry.processors[proc.logic_id] = proc
                registry.owners[proc.logic_id] = info
                info.logic_ids.append(proc.logic_id)
    return registry


def _check_processor(proc: Any) -> None:
    if not isinstance(proc, Processor):
        raise TypeError(f"{proc!r} is not an innosystem.Processor instance")
    if not getattr(proc, "logic_id", ""):
        raise TypeError(f"{type(proc).__name__} has no logic_id")
    if proc.processor_type not in ("sync", "async", "batch"):
        raise TypeError(f"{proc.logic_id}: processor_type must be sync, async or batch")
    if proc.kind not in ("io", "cpu"):
        raise TypeError(f"{proc.logic_id}: kind must be io or cpu")


_registry: ProcessorRegistry | None = None


def get_registry() -> ProcessorRegistry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def set_registry(registry: ProcessorRegistry | None) -> None:
    global _registry
    _registry = registry
