"""Shared fixtures: the real recordings beside the repository, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "grid_s1").is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (../shared/data beside the repository)")
    return SHARED_DATA
