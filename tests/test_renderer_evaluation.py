"""Renderer evaluation on held-out real frames (10 GRID clips at 64²), the ablation input and
equal-budget snapshots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor.cli import app
from newsanchor.evaluate.renderer import FlickerMeter, choose_segments, evaluate_renderers
from newsanchor.facemap.draw import CHANNELS
from newsanchor.render.inputs import input_uses_edges, renderer_input
from newsanchor.render.pix2pixhd import load_renderer
from newsanchor.dataset import Segment
from newsanchor.train.renderer import RendererTrainConfig, train_renderer

TINY = {"ngf": 8, "n_downsampling": 2, "n_blocks": 1}


def test_flicker_meter_ignores_masked_pixels_and_counts_the_rest():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0] = 200  # a change inside the mask of the second frame
    b[3, 3] = 40  # and one outside
    meter = FlickerMeter()
    mask = np.zeros((4, 4), bool)
    meter.add(a, mask)
    second = mask.copy()
    second[0, 0] = True
    meter.add(b, second)
    assert meter.value == pytest.approx(40 / 15)


def test_segments_are_spread_evenly_and_deterministically():
    segments = [Segment(f"c{i}", 0, 75) for i in range(10)]
    assert [s.clip for s in choose_segments(segments, 3)] == ["c0", "c4", "c9"]
    assert choose_segments(segments, None) == segments


def test_sample_rows_are_evenly_spread_or_the_widest_mouths():
    from newsanchor.evaluate.renderer import _SampleRows

    openness = [np.array([0.1, np.nan, 0.5, 0.2]), np.array([0.9, 0.3, 0.05])]  # 6 frames with a face

    def offered(rows):
        done = 0
        for segment in openness:
            for value in segment[np.isfinite(segment)]:
                done += 1
                rows.offer([np.full((2, 2, 3), done, np.uint8)], done, float(value))
        return [int(r[0, 0, 0]) for r in rows.rows]

    assert offered(_SampleRows(2, openness, open_mouths=False)) == [3, 6]  # every third of 6
    assert offered(_SampleRows(2, openness, open_mouths=True)) == [2, 4]  # openings 0.5 and 0.9
    assert offered(_SampleRows(0, openness, open_mouths=True)) == []


def test_the_ablation_input_has_an_empty_edge_channel():
    edges = np.ones((64, 64), bool)
    landmarks = np.stack(np.meshgrid(np.linspace(20, 44, 17), np.linspace(20, 44, 4)), -1).reshape(-1, 2)[:68]
    reference = np.full((64, 64, 3), 128, np.uint8)
    with_edges = renderer_input(edges, landmarks, reference)
    without = renderer_input(edges, landmarks, reference, use_edges=False)
    channel = CHANNELS.index("edges")
    assert with_edges[channel].max() == 1.0 and np.all(without[channel] == -1.0)
    np.testing.assert_array_equal(np.delete(with_edges, channel, 0), np.delete(without, channel, 0))
    assert input_uses_edges({}) and not input_uses_edges({"input": {"edges": False}})


@pytest.fixture(scope="module")
def tiny_runs(grid10, tmp_path_factory):
    """Two tiny renderers trained 3 steps on the real clips, with and without edges."""
    runs = {}
    for edges in (True, False):
        out = tmp_path_factory.mktemp("edges" if edges else "no_edges")
        config = RendererTrainConfig(batch_size=2, max_steps=3, checkpoint_every=3, sample_every=100, loader_workers=0,
                                     edges=edges, snapshot_steps=(2,), precision="fp32", renderer_overrides=TINY)
        train_renderer(grid10.root, out, config, device="cpu")
        runs[edges] = out
    return runs


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_snapshots_keep_the_renderer_of_their_step_and_record_the_input(tiny_runs):
    _, _, extra = load_renderer(tiny_runs[False] / "step_0000002")
    assert extra["step"] == 2 and extra["input"] == {"edges": False}
    _, _, extra = load_renderer(tiny_runs[True])
    assert extra["step"] == 3 and extra["input"] == {"edges": True}  # one checkpoint, at step 3


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_evaluation_scores_renderers_beside_the_static_baseline(grid10, tiny_runs):
    result = evaluate_renderers(grid10.root, [tiny_runs[True], tiny_runs[False]], device="cpu", precision="fp32", samples=2)
    assert result["segments"] >= 1 and result["frames"] > 0
    static = result["baseline_static"]
    assert static["flicker"] == 0.0  # a frozen frame does not flicker
    assert 15 < static["psnr"] < 50 and 0 < static["ssim"] <= 1 and static["psnr_mouth"] < static["psnr"] + 10
    assert result["real"]["flicker"] > 0
    for run in map(str, tiny_runs.values()):
        scores = result["runs"][run]
        assert set(scores) >= {"psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd", "flicker"}
        # three steps of training cannot compete with the real first frame
        assert scores["psnr"] < static["psnr"]
    assert len(result["samples"]) == 2 and result["samples"][0].shape == (64, 64 * 4, 3)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_renderer_command_prints_json_and_refuses_a_missing_run(grid10, tiny_runs, tmp_path):
    runner = CliRunner()
    png = tmp_path / "samples.png"
    result = runner.invoke(app, ["evaluate", "renderer", str(grid10.root), str(tiny_runs[True]), "--clips", "1",
                                 "--precision", "fp32", "--json", "-q", "--samples-png", str(png), "--samples", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["segments"] == 1 and str(tiny_runs[True]) in data["runs"] and png.stat().st_size > 0
    missing = runner.invoke(app, ["evaluate", "renderer", str(grid10.root), str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "nothing" in missing.output and "Traceback" not in missing.output
