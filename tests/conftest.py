"""Shared fixtures: the real recordings beside the repository, when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the repository, or wherever NEWSANCHOR_TEST_DATA points
SHARED_DATA = Path(os.environ.get("NEWSANCHOR_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
# CI (.ci/run, with CI=true) installs every dependency a test needs; there a missing one means CI
# is broken, and a skipped test would let it go green without running what matters
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_dependency(reason: str):
    """Skip the test for want of ``reason`` (data, a program, a package, a server) on a
    developer's machine; fail it under CI, which must have everything."""
    if ON_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "grid_s1").is_dir():
        missing_dependency(f"real recordings not found at {SHARED_DATA} (../shared/data beside the repository)")
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


@pytest.fixture(scope="session")
def grid_anchor_bundle(grid10, tiny_models, tmp_path_factory) -> Path:
    """A tiny anchor bundle of real GRID clips (untrained models, a 30-frame template), built once
    per run; copy it into an anchors folder (it is small) rather than using it in place."""
    from newsanchor.bundle import Presenter, build_bundle
    from newsanchor.template import TemplateChoice

    return build_bundle(grid10.root, *tiny_models, tmp_path_factory.mktemp("bundles") / "grid-s1",
                        presenter=Presenter("GRID s1", "research licence"),
                        template=TemplateChoice(grid10.clips[0]["id"], 0, 30, 0, 0, 0, 0))


ACTOR_SENTENCES = 8  # ~25 s of speech: enough frames for the mouth PCA, a template and a split


@pytest.fixture(scope="session")
def actor_anchor_bundle() -> Path:
    """A tiny anchor of the demo's synthetic actor (untrained tiny models, 64² crops), built from
    nothing but the installed packages, so the service, bundle and pipeline tests run without
    ../shared. Cached across test runs under the user's cache directory (``$XDG_CACHE_HOME``),
    keyed by newsanchor's version and this recipe: ~1 min the first time, nothing after; the
    parts it is made of are kept beside it (:func:`actor_parts`). Copy it into an anchors folder
    rather than using it in place."""
    import hashlib
    import shutil
    import tempfile

    from newsanchor import __version__
    from newsanchor.audio2mouth.checkpoint import save_mouth_model
    from newsanchor.audio2mouth.registry import build_model
    from newsanchor.bundle import Presenter, build_bundle
    from newsanchor.config import PrepareConfig
    from newsanchor.demo.build import TRAINING_SENTENCES, DemoHooks, DemoPlan, cache_root, record_training_clips
    from newsanchor.prepare import prepare
    from newsanchor.render.lower_face import LowerFaceConfig, LowerFaceGenerator
    from newsanchor.render.pix2pixhd import save_renderer
    from newsanchor.template import template_in_dataset
    from newsanchor.train.lower_face import LowerFaceTrainConfig, prepare_frames
    from newsanchor.dataset import PreparedDataset

    recipe = f"{__version__} actor {ACTOR_SENTENCES} 64 lower-face ngf4 v2"
    bundle = cache_root() / f"test-anchor-{hashlib.sha256(recipe.encode()).hexdigest()[:10]}" / "actor"
    if (bundle / "anchor.json").is_file():
        return bundle
    bundle.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=bundle.parent))
    try:
        plan = DemoPlan(sentences=TRAINING_SENTENCES[:ACTOR_SENTENCES], clips=1, crop_size=64)
        # the recordings stay beside the bundle: the dataset (actor_parts) names them as its sources
        clips = record_training_clips(bundle.parent / "recordings", plan, DemoHooks())
        prepare([clips], work / "dataset", PrepareConfig(size=64), workers=1)
        dataset = PreparedDataset(work / "dataset")
        model, config = build_model("tcn", filters=16, dilations=(1, 2))
        save_mouth_model(work / "mouth", "tcn", model, config, {"closed_mouth": [0.0] * dataset.mouth_pca.n_components})
        renderer_config = LowerFaceConfig(ngf=4, n_downsampling=2, n_blocks=1, max_channels=16, reference_warp="mouth")
        renderer = work / "renderer"
        renderer.mkdir()
        prepare_frames(dataset, renderer, LowerFaceTrainConfig(batch_size=2), renderer_config)  # references.npz
        shutil.rmtree(renderer / "cache")
        save_renderer(renderer, LowerFaceGenerator(renderer_config), renderer_config,
                      {"input": {"edges": True}, "crop_size": 64, "references_file": "references.npz"})
        build_bundle(work / "dataset", work / "mouth", renderer, work / "actor",
                     presenter=Presenter("Synthetic test actor", "synthetic; no real person"),
                     template=template_in_dataset(work / "dataset", None, 25))
        parts = work / "parts"
        parts.mkdir()
        for name in ("dataset", "mouth", "renderer"):
            os.replace(work / name, parts / name)
        try:
            if not (bundle.parent / "parts").exists():
                os.replace(parts, bundle.parent / "parts")
            os.replace(work / "actor", bundle)  # last: the bundle's presence says the parts are there
        except OSError:  # another test run built it meanwhile: theirs is as good
            if not (bundle / "anchor.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bundle


@pytest.fixture(scope="session")
def actor_parts(actor_anchor_bundle):
    """What the actor's tiny anchor was built from (read only): ``.dataset`` (a prepared dataset
    of one clip, 64² crops), ``.mouth`` (an untrained tiny TCN) and ``.renderer`` (an untrained
    tiny lower-face renderer with its reference mouths), as paths."""
    from types import SimpleNamespace

    parts = actor_anchor_bundle.parent / "parts"
    return SimpleNamespace(dataset=parts / "dataset", mouth=parts / "mouth", renderer=parts / "renderer")


@pytest.fixture
def newsroom_dir(grid_anchor_bundle, tmp_path) -> Path:
    """A fresh anchors folder holding the grid-s1 bundle; the service keeps its database and
    outputs in it, so each test starts with an empty queue."""
    import shutil

    root = tmp_path / "anchors"
    shutil.copytree(grid_anchor_bundle, root / grid_anchor_bundle.name)
    return root


@pytest.fixture
def serve_processes(tmp_path):
    """Start real ``newsanchor serve`` processes: ``start(anchors_dir, workers=1)`` → a running
    :class:`ServeProcess`. Each runs in its own process group, so its worker processes can be
    found and every one of them is ended at teardown, whatever the test did or how it failed."""
    from serve_process import ServeProcess

    started: list[ServeProcess] = []

    def start(anchors_dir: Path, workers: int = 1) -> ServeProcess:
        server = ServeProcess(anchors_dir, workers=workers, log_path=tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
