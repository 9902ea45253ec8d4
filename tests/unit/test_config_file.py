"""The shipped innosystem.toml is the configuration reference: it must list every key in
``FIELDS`` and nothing else, and it must state the defaults, so that keeping it in the working
directory changes nothing. A new setting without its line in the file fails here."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helpers import REPO

from innosystem.config import FIELDS, load_settings

CONFIG = REPO / "innosystem.toml"


def _document() -> dict:
    with CONFIG.open("rb") as fh:
        return tomllib.load(fh)


def test_every_setting_is_in_the_file() -> None:
    document = _document()
    missing = [
        f"{section}.{key}"
        for section, key in (f.toml for f in FIELDS)
        if key not in document.get(section, {})
    ]
    assert missing == []


def test_the_file_has_no_other_keys() -> None:
    known = {f.toml for f in FIELDS}
    present = {
        (section, key)
        for section, table in _document().items()
        for key in (table if isinstance(table, dict) else {"<not a table>": None})
    }
    assert sorted(present - known) == []


def test_the_file_states_the_defaults(tmp_path: Path) -> None:
    from_file = load_settings(env={}, cwd=REPO)
    built_in = load_settings(env={}, cwd=tmp_path)
    assert from_file.config_file == str(CONFIG)
    assert built_in.config_file is None
    assert from_file == built_in
