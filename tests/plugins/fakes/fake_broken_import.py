"""Fails at import time, as a plugin with a missing dependency would."""

from __future__ import annotations

raise ImportError("fake_broken_import needs a library that is not installed")
