"""Anchor bundles (bundle.py, `newsanchor bundle`): built from real prepared clips, verified on load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor.audio2mouth.checkpoint import save_mouth_model
from newsanchor.audio2mouth.registry import build_model
from newsanchor.bundle import BundleError, Presenter, build_bundle, load_bundle
from newsanchor.cli import app
from newsanchor.dataset import PreparedDataset
from newsanchor.errors import NewsanchorError
from newsanchor.template import TemplateChoice

# built from the parts of the synthetic actor's tiny anchor (conftest: a prepared dataset of one
# clip at 64², untrained tiny models), so `make test` checks bundles without ../shared
pytestmark = [pytest.mark.usefixtures("one_torch_thread")]
PRESENTER = Presenter("Synthetic test actor", "synthetic; no real person")


@pytest.fixture(scope="module")
def actor_dataset(actor_parts):
    return PreparedDataset(actor_parts.dataset)


@pytest.fixture(scope="module")
def parts(actor_parts):
    return actor_parts.mouth, actor_parts.renderer


@pytest.fixture(scope="module")
def bundle_dir(actor_dataset, parts, tmp_path_factory):
    clip = actor_dataset.clips[0]["id"]
    out = tmp_path_factory.mktemp("bundles") / "anchor"
    build_bundle(actor_dataset.root, *parts, out, presenter=PRESENTER, template=TemplateChoice(clip, 5, 45, 0, 0, 0, 0))
    return out


def test_a_bundle_holds_everything_synthesis_needs(bundle_dir, actor_dataset):
    bundle = load_bundle(bundle_dir)
    assert bundle.presenter == PRESENTER and bundle.size == 64 and bundle.fps == 25
    template = bundle.template_arrays
    assert template["landmarks"].shape == (40, 68, 2) and template["edges"].shape == (40, 64, 64)
    assert template["edges"].dtype == bool and template["edges"].any()
    clip = actor_dataset.clips[0]["id"]
    np.testing.assert_array_equal(template["edges"][0], actor_dataset.edge_map(clip, 5))
    np.testing.assert_allclose(template["landmarks"], actor_dataset.arrays(clip)["landmarks"][5:45])
    frames = list(bundle.template_frames())
    assert len(frames) == 40 and frames[0].shape[0] > 64  # the recording's full frame, not the crop
    assert len(list(bundle.template_crops())) == 40
    assert bundle.mouth_model()[1] == "tcn" and bundle.renderer()[1].references == 3
    assert len(bundle.reference_mouths().crops) == 3
    assert bundle.mouth_pca.n_components == 10 and bundle.jaw.coefficients.shape[0] == 3
    assert bundle.background() is None


def test_a_changed_file_is_refused_by_name(actor_anchor_bundle, tmp_path):
    import shutil

    copy = tmp_path / "anchor"
    shutil.copytree(actor_anchor_bundle, copy)
    load_bundle(copy)  # whole, it loads
    weights = copy / "renderer" / "renderer.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum") as err:
        load_bundle(copy)
    assert str(weights) in str(err.value) and "\n" not in str(err.value)


def test_missing_unlisted_and_foreign_bundles_are_refused(actor_anchor_bundle, tmp_path):
    import shutil

    copy = tmp_path / "anchor"
    shutil.copytree(actor_anchor_bundle, copy)
    (copy / "extra.txt").write_text("smuggled")
    with pytest.raises(BundleError, match="not listed"):
        load_bundle(copy)
    (copy / "extra.txt").unlink()
    (copy / "jaw.npz").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(copy)
    manifest = json.loads((copy / "anchor.json").read_text())
    (copy / "anchor.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(BundleError, match="version 99"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="not an anchor bundle"):
        load_bundle(tmp_path)


def test_building_refuses_an_existing_target_and_parts_that_do_not_fit(actor_dataset, parts, bundle_dir, tmp_path):
    choice = TemplateChoice(actor_dataset.clips[0]["id"], 0, 20, 0, 0, 0, 0)
    with pytest.raises(BundleError, match="already exists"):
        build_bundle(actor_dataset.root, *parts, bundle_dir, presenter=PRESENTER, template=choice)
    model, config = build_model("tcn", n_mouth=6, filters=16, dilations=(1,))
    save_mouth_model(tmp_path / "mouth6", "tcn", model, config)
    with pytest.raises(BundleError, match="6 PCA components"):
        build_bundle(actor_dataset.root, tmp_path / "mouth6", parts[1], tmp_path / "b", presenter=PRESENTER, template=choice)
    with pytest.raises(BundleError, match="outside clip"):
        build_bundle(actor_dataset.root, *parts, tmp_path / "c", presenter=PRESENTER,
                     template=TemplateChoice(choice.clip, 50, 50_000, 0, 0, 0, 0))
    assert not any(p.name.startswith((".b", ".c", "b", "c")) for p in tmp_path.iterdir() if p.name != "mouth6")
    with pytest.raises(NewsanchorError, match="consent"):
        Presenter("Someone", " ")


def test_bundle_command_finds_a_template_and_reports_bad_specs(actor_dataset, parts, tmp_path):
    runner = CliRunner()
    common = ["bundle", "--dataset", str(actor_dataset.root), "--mouth", str(parts[0]), "--renderer", str(parts[1]),
              "--presenter", "Synthetic test actor", "--consent", "synthetic; no real person"]
    ok = runner.invoke(app, common + ["--out", str(tmp_path / "auto"), "--template-frames", "30"])
    assert ok.exit_code == 0, ok.output
    template = json.loads((tmp_path / "auto" / "anchor.json").read_text())["template"]
    assert template["stop"] - template["start"] == 30
    bad = runner.invoke(app, common + ["--out", str(tmp_path / "bad"), "--template", "nosuchclip"])
    assert bad.exit_code == 1 and "nosuchclip" in bad.output and not (tmp_path / "bad").exists()
    bad = runner.invoke(app, common + ["--out", str(tmp_path / "bad"), "--template", f"{actor_dataset.clips[0]['id']}:x-y"])
    assert bad.exit_code == 1 and "START-STOP" in bad.output
