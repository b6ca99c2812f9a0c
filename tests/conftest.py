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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP threads waiting for
    each other cost seconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def grid10(tmp_path_factory, shared_data):
    """A small real dataset: the first 10 GRID s1 clips prepared at 64² (~10 s, once per run)."""
    from newsanchor.config import PrepareConfig
    from newsanchor.dataset import PreparedDataset
    from newsanchor.prepare import prepare

    out = tmp_path_factory.mktemp("grid10") / "dataset"
    prepare(sorted((shared_data / "grid_s1").glob("*.mp4"))[:10], out, PrepareConfig(size=64), workers=2)
    return PreparedDataset(out)
