"""The lower-face renderer on real clips (10 GRID clips at 64²): region cache, reference mouths,
training and resuming, the ablations, evaluation beside the static frame, bundles and synthesis."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from newsanchor.bundle import Presenter, build_bundle, load_bundle
from newsanchor.cli import app
from newsanchor.dataset import PreparedDataset
from newsanchor.evaluate.renderer import evaluate_renderers
from newsanchor.pipeline import AnchorPipeline
from newsanchor.render.pix2pixhd import is_lower_face, load_renderer
from newsanchor.render.references import OPEN_ENOUGH, load_reference_mouths, mouth_openness
from newsanchor.template import TemplateChoice
from newsanchor.train.lower_face import LowerFaceTrainConfig, train_lower_face
from newsanchor.train.renderer import StepBatches
from newsanchor.train.lower_face_data import RegionCache, build_region_cache, choose_reference_bank, choose_references
from newsanchor.dataset import dataset_split

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
TINY = {"ngf": 4, "n_downsampling": 2, "n_blocks": 1}


def tiny_config(**changes) -> LowerFaceTrainConfig:
    values = dict(batch_size=2, max_steps=3, checkpoint_every=1, sample_every=3, loader_workers=0, precision="fp32",
                  val_frames=4, renderer_overrides=TINY)
    return LowerFaceTrainConfig(**(values | changes))


@pytest.fixture(scope="module")
def lower_face_run(grid10, tmp_path_factory):
    out = tmp_path_factory.mktemp("lower_face")
    train_lower_face(grid10.root, out, tiny_config(snapshot_steps=(2,)), device="cpu")
    return out


def test_the_cache_holds_the_regions_of_the_split_and_is_reused(grid10, tmp_path):
    box = (8, 28, 48, 32)
    segments = dataset_split(grid10)["val"]
    cache = build_region_cache(grid10, segments, box, tmp_path / "cache")
    assert cache.regions.shape[1:] == (32, 48, 3) and len(cache) == cache.edges.shape[0] == len(cache.landmarks)
    first = cache.clip_ids[int(cache.clip[0])], int(cache.frame[0])
    crop = grid10.crop_frames(first[0], [first[1]])[0]
    assert np.array_equal(cache.regions[0], crop[28:60, 8:56])
    mtime = (tmp_path / "cache" / "regions.npy").stat().st_mtime_ns
    again = build_region_cache(grid10, segments, box, tmp_path / "cache")
    assert (tmp_path / "cache" / "regions.npy").stat().st_mtime_ns == mtime and len(again) == len(cache)
    assert not (tmp_path / "cache.tmp").exists()
    # another box is another cache: cut again
    assert build_region_cache(grid10, segments, (8, 24, 48, 32), tmp_path / "cache").regions.shape[1:] == (32, 48, 3)


def test_references_cover_closed_to_open_and_a_never_open_presenter_is_named(grid10, tmp_path, caplog):
    cache = build_region_cache(grid10, dataset_split(grid10)["train"], (8, 28, 48, 32), tmp_path / "cache")
    pools = choose_references(grid10, cache, pool=4)
    best = pools.best(3)
    assert best.states == ("closed", "half", "open") and best.crops.shape == (3, 64, 64, 3)
    assert best.openness[0] < best.openness[1] < best.openness[2] >= OPEN_ENOUGH
    assert all(len(c) == 4 for c in pools.crops)
    # a presenter who never opens wide: every frame but the most closed dropped from the cache
    openness = mouth_openness(cache.landmarks)
    shut = np.flatnonzero(openness < np.nanquantile(openness, 0.2))
    closed_only = RegionCache(cache.regions[shut], cache.edges[shut], cache.landmarks[shut], cache.clip[shut],
                              cache.frame[shut], cache.clip_ids)
    with caplog.at_level(logging.WARNING, logger="newsanchor.train"):
        choose_references(grid10, closed_only, pool=4, source="closed.mp4")
    assert "closed.mp4: the presenter's mouth never opens wide" in caplog.text
    # the default preset's bank of mouths says the same, and still gives a bank to train with
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="newsanchor.train"):
        bank = choose_reference_bank(grid10, closed_only, 8, source="closed.mp4")
    assert "closed.mp4: the presenter's mouth never opens wide" in caplog.text and len(bank.mouths) == 8


def test_training_keeps_its_best_renderer_references_and_resumes(grid10, lower_face_run):
    model, config, extra = load_renderer(lower_face_run)
    assert is_lower_face(config) and extra["step"] in (1, 2, 3) and (lower_face_run / "sample_0000003.png").is_file()
    assert load_reference_mouths(lower_face_run).crops.shape == (3, 64, 64, 3)
    assert load_renderer(lower_face_run / "step_0000002")[2]["step"] == 2
    rows = (lower_face_run / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:6] == ["step", "g_gan", "g_fm", "g_l1", "g_lap", "d"] and len(rows) == 4
    counters = train_lower_face(grid10.root, lower_face_run, tiny_config(max_steps=4), device="cpu")
    assert counters["step"] == 4 and len((lower_face_run / "log.csv").read_text().splitlines()) == 5


def test_the_ablations_train_without_references_or_without_the_masked_frame(grid10, tmp_path):
    for name, change in (("no_refs", {"references": False}), ("no_frame", {"masked_frame": False})):
        train_lower_face(grid10.root, tmp_path / name, tiny_config(max_steps=1, **change), device="cpu")
        _, config, _ = load_renderer(tmp_path / name)
        assert config.references == (0 if name == "no_refs" else 3) and config.masked_frame == (name != "no_frame")


def test_the_nearest_choice_trains_on_a_bank_of_mouths_and_synthesises_from_it(grid10, tiny_models, tmp_path):
    run = tmp_path / "nearest"
    overrides = TINY | {"reference_choice": "nearest", "bank_size": 8, "reference_warp": "mouth-only", "head": "blend",
                        "match_reference_colours": True, "reference_hold": 0.2}
    train_lower_face(grid10.root, run, tiny_config(max_steps=2, renderer_overrides=overrides, lambda_choice=0.5),
                     device="cpu")
    _, config, _ = load_renderer(run)
    bank = load_reference_mouths(run)
    assert config.reference_choice == "nearest" and config.references == 3 and len(bank) == 8
    assert config.head == "blend" and config.reference_warp == "mouth-only"
    assert config.match_reference_colours and config.reference_hold == 0.2
    assert all(np.isfinite(float(v)) for v in (run / "log.csv").read_text().splitlines()[-1].split(",")[1:6])
    openness = mouth_openness(bank.landmarks)
    assert openness[0] < openness[-1] and set(bank.states) == {"bank"}
    result = evaluate_renderers(grid10.root, [run], clips=1, device="cpu", precision="fp32")
    assert result["runs"][str(run)]["sharpness_ratio"] > 0
    anchor = build_bundle(grid10.root, tiny_models[0], run, tmp_path / "anchor", presenter=Presenter("GRID s1", "research"),
                          template=TemplateChoice(grid10.clips[0]["id"], 0, 30, 0, 0, 0, 0))
    pipeline = AnchorPipeline(load_bundle(anchor), device="cpu")
    speech = grid10.arrays(grid10.clips[2]["id"])["audio"][:16000].astype(np.float32) / 32768
    assert len(list(pipeline.frames(pipeline.mouth_trajectory(speech)[:4]))) == 4


def test_evaluation_measures_sharpness_and_identity_beside_pix2pixhd_and_the_static_frame(grid10, lower_face_run):
    result = evaluate_renderers(grid10.root, [lower_face_run], clips=1, device="cpu", precision="fp32", samples=2,
                                sample_open_mouths=True)
    scores, static = result["runs"][str(lower_face_run)], result["baseline_static"]
    for row in (scores, static):
        assert set(row) >= {"psnr", "psnr_mouth", "ssim_mouth", "lmd", "flicker", "sharpness_ratio", "identity_dist"}
        assert row["sharpness_ratio"] > 0 and 0 <= row["identity_dist"] < 2
    # the static frame is a real frame: as detailed as the footage, and no flicker anywhere
    assert 0.5 < static["sharpness_ratio"] < 2 and static["flicker"] == 0 and static["flicker_face"] == 0
    # the lower-face render changes only the lower face: real flicker outside it, its own inside
    assert scores["flicker"] == pytest.approx(result["real"]["flicker"], rel=0.05) and scores["flicker_face"] > 0
    # the lower-face render is blended into the frame: nothing above the nose changes, so the
    # rendered face keeps the real one's identity better than a frame from elsewhere could
    assert scores["identity_dist"] < 0.6
    assert len(result["samples"]) == 2 and result["samples"][0].shape == (64, 64 * 3, 3)


def test_a_bundle_with_the_lower_face_renderer_synthesises_a_video(grid10, tiny_models, lower_face_run, tmp_path):
    anchor = build_bundle(grid10.root, tiny_models[0], lower_face_run, tmp_path / "anchor",
                          presenter=Presenter("GRID s1", "research licence"),
                          template=TemplateChoice(grid10.clips[0]["id"], 0, 30, 0, 0, 0, 0))
    bundle = load_bundle(anchor)
    assert bundle.manifest["renderer"]["architecture"] == "lower-face"
    assert "renderer/references.npz" in bundle.manifest["files"]
    speech = np.concatenate([grid10.arrays(c["id"])["audio"] for c in grid10.clips[2:3]]).astype(np.float32) / 32768
    pipeline = AnchorPipeline(bundle, device="cpu")
    frames = list(pipeline.frames(pipeline.mouth_trajectory(speech)[:6]))
    template = next(iter(bundle.template_frames()))
    changed = np.abs(frames[0].astype(int) - template.astype(int)).max(axis=-1) > 8
    rows, cols = np.nonzero(changed)
    x, y, w, h = (int(v) for v in bundle.template_arrays["crop_box"])
    # only the lower face changes (besides the disclosure label in its corner)
    face_rows = rows[(cols >= x) & (cols < x + w)]
    assert face_rows.size and face_rows.min() >= y + 0.4 * h
    result = pipeline.synthesize(speech, tmp_path / "news.mp4")
    assert result["frames"] == math.ceil(len(speech) / 640)
    # a renderer run whose references went missing cannot be bundled
    (lower_face_run / "references.npz").rename(tmp_path / "kept.npz")
    try:
        bad = CliRunner().invoke(app, ["bundle", "--dataset", str(grid10.root), "--mouth", str(tiny_models[0]),
                                       "--renderer", str(lower_face_run), "--presenter", "X", "--consent", "yes",
                                       "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 1 and "references.npz: missing" in bad.output and not (tmp_path / "bad").exists()
    finally:
        (tmp_path / "kept.npz").rename(lower_face_run / "references.npz")


def test_the_command_line_trains_the_lower_face_config(grid10, tmp_path):
    result = CliRunner().invoke(app, ["train", "renderer", str(grid10.root), "--preset", "lower-face", "--out",
                                      str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "2",
                                      "--loader-workers", "0", "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    assert is_lower_face(load_renderer(tmp_path / "run")[1])
    bad = CliRunner().invoke(app, ["train", "renderer", str(grid10.root), "--preset", "lower-face", "--out",
                                   str(tmp_path / "bad"), "--upsample", "transposed"])
    assert bad.exit_code == 1 and "pix2pixHD options" in bad.output
    assert isinstance(PreparedDataset(grid10.root), PreparedDataset)
    # settings from a YAML file, the command line's options over them; sizes stay the preset's
    settings = tmp_path / "train.yaml"
    settings.write_text("batch_size: 2\nmax_steps: 1\nloader_workers: 0\nprecision: fp32\nseed: 3\n"
                        "renderer_overrides: {ngf: 8}\n")
    result = CliRunner().invoke(app, ["train", "renderer", str(grid10.root), "--config", str(settings), "--out",
                                      str(tmp_path / "from_file"), "--seed", "4", "-q"])
    assert result.exit_code == 0, result.output
    model, config, extra = load_renderer(tmp_path / "from_file")
    assert config.ngf == 8 and extra["train_config"]["seed"] == 4 and extra["train_config"]["batch_size"] == 2
    settings.write_text("config: light-256\n")
    bad = CliRunner().invoke(app, ["train", "renderer", str(grid10.root), "--config", str(settings), "--out",
                                   str(tmp_path / "bad2")])
    assert bad.exit_code == 1 and "--preset" in bad.output


def test_training_draws_are_seeded_so_a_run_repeats_and_resumes_the_same_pairs(grid10, tmp_path):
    sampler = StepBatches(20, 4, seed=0, start=0, stop=6, rank=0, world=1, draws=True)
    batches = list(sampler)
    draws = [d for batch in batches for _, d in batch]
    assert draws == list(range(24))  # every training pair its own draw, numbered over the run
    assert list(StepBatches(20, 4, seed=0, start=3, stop=6, rank=0, world=1, draws=True)) == batches[3:]
    # the bank preset's random draws (which of the nearest mouths, which neighbour widens the mask)
    overrides = TINY | {"reference_choice": "nearest", "bank_size": 8, "references": 1, "head": "blend",
                        "reference_warp": "face-only", "match_reference_colours": True}
    logs = []
    for name in ("first", "second"):
        train_lower_face(grid10.root, tmp_path / name, tiny_config(max_steps=2, renderer_overrides=overrides), device="cpu")
        logs.append([row.split(",")[1:6] for row in (tmp_path / name / "log.csv").read_text().splitlines()[1:]])
    assert logs[0] == logs[1] and len(logs[0]) == 2
    other = train_lower_face(grid10.root, tmp_path / "seed1", tiny_config(max_steps=2, seed=1, renderer_overrides=overrides),
                             device="cpu")
    assert other["step"] == 2
    assert [row.split(",")[1:6] for row in (tmp_path / "seed1" / "log.csv").read_text().splitlines()[1:]] != logs[0]
