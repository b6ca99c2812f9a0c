"""Shared fixtures: the real recordings beside the repository, when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the repository, or wherever NEWSANCHOR_TEST_DATA points
SHARED_DATA = Path(os.environ.get("NEWSANCHOR_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "grid_s1").is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA
