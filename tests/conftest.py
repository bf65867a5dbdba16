"""Test-wide settings."""

from __future__ import annotations

import os

from hypothesis import settings

# In CI the property tests explore the same examples on every run, so a landing never depends on
# luck; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
