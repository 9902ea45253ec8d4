"""Every hook is declared, documented and tested (after Datasette's ``test_plugin_hooks_*``).

Adding a hook to ``innosystem/hookspecs.py`` without a docstring, without a heading in
``docs/PLUGINS.md`` or without a test that implements or calls it fails here; so does a
``@hookimpl`` in this repository whose name matches no hook (a typo pluggy would not notice
until ``check_pending``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from innosystem import hookspecs

REPO = Path(__file__).resolve().parents[2]
PLUGINS_DOC = REPO / "docs" / "PLUGINS.md"
#: Where hooks are exercised: the test suite (incl. its fake and test plugins) and the plugins.
EXERCISED_IN = (REPO / "tests", REPO / "plugins")
#: Where ``@hookimpl`` functions live that must name a declared hook.
IMPLEMENTED_IN = (*EXERCISED_IN, REPO / "docs" / "plugin-template", REPO / "innosystem")
THIS_FILE = Path(__file__).resolve()


def declared_hooks() -> list[str]:
    """Names of the functions in hookspecs.py that carry the ``@hookspec`` marker."""
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, marker)
    )


def _python_files(*roots: Path) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        files.extend(
            p
            for p in root.rglob("*.py")
            if p.resolve() != THIS_FILE and not any(part.startswith(".") for part in p.parts)
        )
    return files


_SOURCES: dict[Path, str] = {}


def _source(path: Path) -> str:
    if path not in _SOURCES:
        _SOURCES[path] = path.read_text(encoding="utf-8", errors="replace")
    return _SOURCES[path]


def documented(hook: str) -> bool:
    """The hook has a heading of its own in docs/PLUGINS.md."""
    heading = re.compile(rf"^#+ .*\b{re.escape(hook)}\b", re.MULTILINE)
    return bool(heading.search(PLUGINS_DOC.read_text(encoding="utf-8")))


def exercised(hook: str) -> bool:
    """Some test or plugin implements the hook (``def hook(`` or ``hook=hookimpl(...)``) or
    calls it (``pm.hook.hook(``, ``registry.hooks.hook(``)."""
    name = re.escape(hook)
    used = re.compile(rf"\bdef {name}\(|\b{name}\s*=\s*hookimpl\(|\bhooks?\.{name}\(")
    return any(used.search(_source(path)) for path in _python_files(*EXERCISED_IN))


def test_hooks_are_declared_and_registrable():
    hooks = declared_hooks()
    assert hooks, "hookspecs.py declares no hook"
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    assert sorted(n for n in dir(pm.hook) if not n.startswith("_")) == hooks
    for hook in hooks:
        assert hook.startswith("innosystem_"), f"{hook}: hook names carry the innosystem_ prefix"


@pytest.mark.parametrize("hook", declared_hooks())
def test_hook_has_a_docstring(hook: str):
    assert (inspect.getdoc(getattr(hookspecs, hook)) or "").strip(), f"{hook} has no docstring"


@pytest.mark.parametrize("hook", declared_hooks())
def test_hook_is_documented(hook: str):
    assert documented(hook), f"{hook} has no heading in {PLUGINS_DOC.relative_to(REPO)}"


@pytest.mark.parametrize("hook", declared_hooks())
def test_hook_is_exercised_by_a_test(hook: str):
    assert exercised(hook), f"no test or plugin under tests/ or plugins/ implements {hook}"


def test_the_checks_can_fail():
    """A hook nobody wrote must be reported as undocumented and untested."""
    assert not documented("innosystem_no_such_hook")
    assert not exercised("innosystem_no_such_hook")


def test_every_hookimpl_names_a_declared_hook():
    hooks = set(declared_hooks())
    decorated = re.compile(
        r"^[ \t]*@hookimpl\b[^\n]*\n(?:[ \t]*@[^\n]*\n)*[ \t]*(?:async )?def (\w+)\(",
        re.MULTILINE,
    )
    inline = re.compile(r"\b(innosystem_\w+)\s*=\s*hookimpl\(")
    unknown = [
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(*IMPLEMENTED_IN)
        for pattern in (decorated, inline)
        for name in pattern.findall(_source(path))
        if name not in hooks
    ]
    assert not unknown, f"@hookimpl functions that match no hookspec: {unknown}"
