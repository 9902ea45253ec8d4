"""What JSON the platform stores: the common ground of SQLite and PostgreSQL ``jsonb``.

PostgreSQL refuses U+0000 and lone surrogates in text and JSON, and JSON itself has no NaN or
Infinity. Request bodies and processor results are both checked here, so the two backends
store the same things and nothing fails later at commit time.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class TooDeep(ValueError):
    """Nesting deeper than MAX_DEPTH: refuse rather than recurse without bound."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str) -> Any:
    """Strict JSON: no NaN/Infinity; deep nesting raises TooDeep instead of RecursionError."""
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None


def problems(value: Any, path: str = "", depth: int = 0) -> list[dict[str, str]]:
    """Fields (dotted paths) holding values the database cannot store; [] when all is well."""
    found: list[dict[str, str]] = []
    _walk(value, path, depth, found)
    return found


def _walk(value: Any, path: str, depth: int, found: list[dict[str, str]]) -> None:
    if depth > MAX_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            found.append({"field": path or "body", "message": "must not contain U+0000 (NUL)"})
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                found.append({"field": path or "body", "message": "is not valid Unicode"})
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            found.append({"field": path or "body", "message": "NaN and Infinity are not JSON"})
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            _walk(key, child, depth + 1, found)
            _walk(item, child, depth + 1, found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}" if path else str(index), depth + 1, found)
