"""Plugin discovery and the processor registry, with fake plugin modules (tests/plugins/fakes/)
loaded through hand-built entry points: nothing is installed, nothing global is touched."""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from helpers import TEST_LOGIC_IDS, run_cli

from innosystem.errors import PluginError, ValidationFailed
from innosystem.plugins import ENTRY_POINT_GROUP, load_registry

FAKES = Path(__file__).resolve().parents[1] / "plugins" / "fakes"


@pytest.fixture(autouse=True)
def _fakes_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKES))
    # Each test imports the fakes afresh, so a failed import in one test cannot leak.
    for name in list(sys.modules):
        if name.startswith("fake_"):
            monkeypatch.delitem(sys.modules, name)


def ep(name: str, module: str) -> EntryPoint:
    return EntryPoint(name=name, value=module, group=ENTRY_POINT_GROUP)


def by_name(registry, name: str):
    return next(p for p in registry.plugins if p.name == name)


def test_good_plugin_registers_its_processors():
    registry = load_registry(entry_points=[ep("good", "fake_good")])

    assert registry.logic_ids() == ["fake-alpha", "fake-beta"]
    alpha = registry.get("fake-alpha")
    assert alpha is not None and alpha.processor_type == "sync"
    assert registry.get("fake-beta").kind == "cpu"
    assert registry.get("nope") is None
    info = by_name(registry, "good")
    assert info.error is None
    assert info.logic_ids == ["fake-alpha", "fake-beta"]
    assert info.as_dict()["status"] == "ok"
    described = {d["logic_id"]: d for d in registry.describe()}
    assert described["fake-alpha"]["plugin"] == "good"
    assert described["fake-alpha"]["version"] == "1.2.3"
    assert described["fake-beta"]["input_schema"]["properties"]["count"]["maximum"] == 10
    assert described["fake-alpha"]["input_schema"] is None


def test_two_plugins_with_distinct_ids_both_load():
    registry = load_registry(entry_points=[ep("good", "fake_good"), ep("other", "fake_other")])
    assert registry.logic_ids() == ["fake-alpha", "fake-beta", "fake-gamma"]
    assert registry.owners["fake-gamma"].name == "other"


def test_duplicate_logic_id_refuses_naming_both_plugins():
    with pytest.raises(PluginError) as info:
        load_registry(entry_points=[ep("good", "fake_good"), ep("impostor", "fake_duplicate")])
    message = str(info.value)
    assert "fake-alpha" in message
    assert "'good'" in message
    assert "'impostor'" in message


def test_plugin_whose_import_fails_is_skipped_and_reported():
    registry = load_registry(
        entry_points=[ep("broken", "fake_broken_import"), ep("good", "fake_good")]
    )

    broken = by_name(registry, "broken")
    assert broken.error is not None
    assert broken.error.startswith("import failed")
    assert "fake_broken_import needs a library" in broken.error
    assert broken.logic_ids == []
    assert broken.as_dict()["status"] == "error"
    # The rest keep working.
    assert by_name(registry, "good").error is None
    assert registry.logic_ids() == ["fake-alpha", "fake-beta"]


def test_plugin_returning_a_non_processor_is_skipped():
    registry = load_registry(entry_points=[ep("bad", "fake_bad_return"), ep("other", "fake_other")])

    bad = by_name(registry, "bad")
    assert bad.error is not None
    assert "not an innosystem.Processor" in bad.error
    assert bad.logic_ids == []
    assert registry.get("fake-not-a-processor") is None
    assert registry.logic_ids() == ["fake-gamma"]


def test_plugin_whose_hook_raises_is_skipped():
    registry = load_registry(
        entry_points=[ep("raises", "fake_hook_raises"), ep("good", "fake_good")]
    )
    raises = by_name(registry, "raises")
    assert raises.error is not None and "fake_hook_raises exploded" in raises.error
    assert registry.logic_ids() == ["fake-alpha", "fake-beta"]


def test_entry_point_names_need_not_be_unique_across_packages():
    """Entry-point names are only unique within one distribution: two packages may both call
    theirs ``processors``. Distinct logic ids do not conflict, so both plugins must load."""
    registry = load_registry(
        entry_points=[ep("processors", "fake_good"), ep("processors", "fake_other")]
    )
    assert [p.error for p in registry.plugins] == [None, None]
    assert registry.logic_ids() == ["fake-alpha", "fake-beta", "fake-gamma"]


def test_validate_input_reports_fields_under_input_data():
    registry = load_registry(entry_points=[ep("good", "fake_good")])
    beta = registry.get("fake-beta")

    assert beta.validate_input({"count": 3}) == {"count": 3, "label": "x"}
    with pytest.raises(ValidationFailed) as info:
        beta.validate_input({"count": 0, "label": 5})
    assert info.value.status == 422
    fields = sorted(d["field"] for d in info.value.details)
    assert fields == ["input_data.count", "input_data.label"]
    assert all(d["message"] for d in info.value.details)

    with pytest.raises(ValidationFailed) as missing:
        beta.validate_input({})
    assert [d["field"] for d in missing.value.details] == ["input_data.count"]

    with pytest.raises(ValidationFailed) as not_object:
        beta.validate_input("a string")
    assert all(d["field"].startswith("input_data") for d in not_object.value.details)

    # Without an input model the data passes through untouched.
    alpha = registry.get("fake-alpha")
    assert alpha.validate_input({"anything": [1, 2]}) == {"anything": [1, 2]}


def test_plugins_cli_lists_the_installed_test_plugin(tmp_path: Path):
    result = run_cli("plugins", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PLUGIN", "PACKAGE", "VERSION", "STATUS", "LOGIC", "IDS"]
    row = next(line for line in lines if "innosystem-test-processors" in line)
    assert " ok " in f" {row} "
    for logic_id in TEST_LOGIC_IDS:
        assert logic_id in row


def test_plugins_cli_json_is_valid(tmp_path: Path):
    result = run_cli("plugins", "--json", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    plugin = next(p for p in document["plugins"] if p["package"] == "innosystem-test-processors")
    assert plugin["status"] == "ok"
    assert plugin["error"] is None
    assert set(TEST_LOGIC_IDS) <= set(plugin["logic_ids"])
    processors = {p["logic_id"]: p for p in document["processors"]}
    assert set(TEST_LOGIC_IDS) <= set(processors)
    assert processors["test-cpu-burn"]["kind"] == "cpu"
    assert processors["test-sleep"]["input_schema"]["required"] == ["seconds"]
