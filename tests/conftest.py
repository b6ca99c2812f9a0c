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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """An untrained tiny audio→mouth model and renderer saved as runs (a bundle or the pipeline
    does not care how good they are): (mouth run, renderer run)."""
    from newsanchor.audio2mouth.checkpoint import save_mouth_model
    from newsanchor.audio2mouth.registry import build_model
    from newsanchor.render.pix2pixhd import build_renderer, save_renderer

    root = tmp_path_factory.mktemp("tiny_models")
    model, config = build_model("tcn", filters=16, dilations=(1, 2))
    save_mouth_model(root / "mouth", "tcn", model, config, {"closed_mouth": [0.0] * 10})
    renderer, renderer_config = build_renderer("light-256", appearance_channels=3, ngf=8, n_downsampling=2, n_blocks=1)
    save_renderer(root / "renderer", renderer, renderer_config, {"input": {"edges": True}})
    return root / "mouth", root / "renderer"
