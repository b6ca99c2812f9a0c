"""Known answers for the numbers behind the committed tables (benchmarks/RESULTS.md).

Every expected value here is worked out by hand in the test (small arrays, closed forms) or
computed by an independent library (scikit-image, SciPy) — never by the code under test:

- Table 1 (evaluate/mouth.py): MSE, MAE, Int-MSE and the mouth-landmark error of one clip,
  their pooling over clips and seeds, the training loss's Int-MSE, and the paired bootstrap;
- renderer table (evaluate/image_metrics.py, evaluate/renderer.py): PSNR, SSIM, LMD, flicker;
- lip sync (evaluate/lipsync.py): mouth opening, speech envelope, quiet frames, Pearson's r at
  lag 0 and the lag search.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from newsanchor.evaluate import image_metrics
from newsanchor.evaluate.image_metrics import landmark_distance, psnr, ssim
from newsanchor.evaluate.lipsync import LipSyncTrack, lipsync_scores, mouth_opening, quiet_mask, speech_envelope
from newsanchor.evaluate.mouth import (ClipErrors, _clip_errors, _mean_over_seeds, _metrics, markdown_tables,
                                       paired_bootstrap)
from newsanchor.evaluate.renderer_scores import FlickerMeter, FrameScores
from newsanchor.features.mouth import LEFT_EYE, MOUTH, NOSE, RIGHT_EYE, MouthPCA
from newsanchor.train.mouth import regression_losses


# --- Table 1: audio→mouth errors -------------------------------------------------------------

ROOT_20 = math.sqrt(20)


def mouth_shift_pca(rest_mouth: np.ndarray) -> MouthPCA:
    """A two-component PCA whose coefficients (a, b) move every one of the 20 mouth points of
    ``rest_mouth`` [20, 2] by (a, b) / √20 (IOD units): the axes are unit vectors that are
    1/√20 on every x (resp. y) entry of the row-major flattening (x48, y48, x49, ...)."""
    components = np.zeros((2, 40))
    components[0, 0::2] = 1 / ROOT_20
    components[1, 1::2] = 1 / ROOT_20
    return MouthPCA(mean=rest_mouth.reshape(40), components=components,
                    explained_variance=np.array([2.0, 1.0]), explained_variance_ratio=np.array([0.6, 0.3]))


def face_landmarks(mouth: np.ndarray, centre, angle: float, scale: float) -> np.ndarray:
    """[68, 2] pixels of a face whose normalised mouth is ``mouth`` [20, 2]: the nose points all
    at ``centre``, the eye centres one IOD (``scale`` px) apart on a line at ``angle``, and every
    point placed by centre + scale · R(angle) @ q, as features/mouth.py defines the pose."""
    canonical = np.zeros((68, 2))
    canonical[LEFT_EYE] = [-0.5, -1.0]
    canonical[RIGHT_EYE] = [0.5, -1.0]
    canonical[MOUTH] = mouth
    assert not canonical[NOSE].any()  # the nose centre is the origin of the normalised frame
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(centre, float) + scale * canonical @ np.array([[c, -s], [s, c]]).T


def rest_mouth() -> np.ndarray:
    """20 points on an ellipse about one IOD below the nose, as a mouth lies."""
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    return np.stack([0.4 * np.cos(t), 0.9 + 0.15 * np.sin(t)], axis=-1)


def test_one_clips_errors_by_hand_with_a_frame_without_face():
    scale = 40.0  # IOD in crop pixels
    pca = mouth_shift_pca(rest_mouth())
    target = np.zeros((5, 2))  # coefficients (0, 0): the mouth of the real landmarks, exactly
    pred = np.array([[3.0, 4.0], [0.0, 0.0], [100.0, 100.0], [1.0, 0.0], [1.0, 2.0]])
    found = np.array([True, True, False, True, True])
    landmarks = np.stack([face_landmarks(rest_mouth(), [120.0, 90.0], 0.3, scale)] * 5)
    landmarks[2] = np.nan  # what preparation stores where dlib found no face

    e = _clip_errors(pred, target, found, landmarks, pca)

    # squared errors of the found frames: 9 + 16, 0 + 0, 1 + 0, 1 + 4 over 4 frames × 2 components
    assert (e.se, e.ae, e.values) == (31.0, 11.0, 8)
    # Int-MSE pairs only consecutive found frames, (0, 1) and (3, 4): (-3, -4) and (0, 2)
    assert (e.int_se, e.int_values) == (29.0, 4)
    # every mouth point is moved by (a, b)/√20 IOD: |(a, b)| · scale / √20 px, whatever the pose
    per_frame_px = scale / ROOT_20 * np.array([5.0, 0.0, 1.0, math.sqrt(5)])
    assert e.points == 4 * 20
    assert e.px == pytest.approx(20 * per_frame_px.sum(), rel=1e-6)
    metrics = _metrics([e])
    assert metrics["mse"] == 31 / 8 and metrics["mae"] == 11 / 8 and metrics["int_mse"] == 29 / 4
    assert metrics["landmark_px"] == pytest.approx(per_frame_px.mean(), rel=1e-6)


def test_int_mse_is_zero_for_a_constant_offset_and_the_squared_step_for_a_drift():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(30, 10))
    found = np.ones(30, bool)
    landmarks = np.stack([face_landmarks(rest_mouth(), [64.0, 64.0], 0.0, 30.0)] * 30)
    pca = MouthPCA(mean=rest_mouth().reshape(40), components=np.eye(40)[:10],
                   explained_variance=np.ones(10), explained_variance_ratio=np.full(10, 0.1))

    offset = _metrics([_clip_errors(target + 0.5, target, found, landmarks, pca)])
    assert offset["mse"] == pytest.approx(0.25) and offset["mae"] == pytest.approx(0.5)
    assert offset["int_mse"] == pytest.approx(0.0, abs=1e-24)

    step = rng.normal(size=10)
    drift = target + np.arange(30)[:, None] * step  # off by t · step at frame t
    drifting = _metrics([_clip_errors(drift, target, found, landmarks, pca)])
    assert drifting["int_mse"] == pytest.approx(np.mean(step ** 2))
    # MSE: mean over t of t² · mean(step²), with Σ t² for t < 30 = 29 · 30 · 59 / 6
    assert drifting["mse"] == pytest.approx(29 * 30 * 59 / 6 / 30 * np.mean(step ** 2))


def test_training_losses_are_the_same_mse_and_int_mse():
    target = torch.zeros(2, 4, 3)
    step = torch.tensor([1.0, 2.0, 2.0])  # mean of squares 3
    pred = torch.arange(4.0)[None, :, None] * step  # [1, 4, 3], broadcast over the batch
    l2, inter = regression_losses(pred.expand(2, 4, 3), target)
    # L2: mean over t of t² (0, 1, 4, 9 → 3.5) times mean(step²) (3); L_int: mean(step²)
    assert l2.item() == pytest.approx(3.5 * 3) and inter.item() == pytest.approx(3.0)


def clip(se: float, values: int, int_se: float = 0.0, int_values: int = 1) -> ClipErrors:
    return ClipErrors(se=se, ae=0.0, values=values, int_se=int_se, int_values=int_values)


def test_clips_pool_by_frames_and_seeds_average_clip_by_clip():
    short, long = clip(se=10.0, values=10, int_se=4.0, int_values=8), clip(se=90.0, values=30, int_se=2.0, int_values=28)
    pooled = _metrics([short, long])
    # frame-weighted (100 / 40), not the mean of the clips' MSEs ((1 + 3) / 2)
    assert pooled["mse"] == pytest.approx(2.5) and pooled["int_mse"] == pytest.approx(6 / 36)
    seed_a = [clip(se=10.0, values=10), clip(se=90.0, values=30)]
    seed_b = [clip(se=30.0, values=10), clip(se=30.0, values=30)]
    merged = _mean_over_seeds([seed_a, seed_b])
    assert [m.se for m in merged] == [20.0, 60.0] and [m.values for m in merged] == [10, 30]
    # with the same frames in every run, the merged MSE is the mean of the runs' MSEs
    assert _metrics(merged)["mse"] == pytest.approx((_metrics(seed_a)["mse"] + _metrics(seed_b)["mse"]) / 2)


def random_clips(rng: np.random.Generator, n: int) -> tuple[list[ClipErrors], list[ClipErrors]]:
    """A model's and a reference's errors on the same n clips of different lengths."""
    frames = rng.integers(20, 200, n)
    model, reference = [], []
    for f in frames:
        model.append(clip(se=float(rng.gamma(2.0, f)), values=int(10 * f), int_se=float(rng.gamma(2.0, f)),
                          int_values=int(10 * (f - 1))))
        reference.append(clip(se=float(rng.gamma(2.5, f)), values=int(10 * f), int_se=float(rng.gamma(2.5, f)),
                              int_values=int(10 * (f - 1))))
    return model, reference


@pytest.mark.parametrize("key", ["mse", "int_mse"])
def test_bootstrap_is_the_percentile_interval_of_paired_resamples(key):
    rng = np.random.default_rng(7)
    model, reference = random_clips(rng, 23)
    samples, seed = 500, 3
    result = paired_bootstrap(model, reference, key=key, samples=samples, seed=seed)

    # brute force: the same clips drawn for both, each statistic pooled over the drawn clips'
    # frames; the interval is the 2.5th and 97.5th percentiles of model / reference − 1
    error_field, count_field = {"mse": ("se", "values"), "int_mse": ("int_se", "int_values")}[key]
    m_err, r_err = (np.array([getattr(c, error_field) for c in clips]) for clips in (model, reference))
    counts = np.array([getattr(c, count_field) for c in model])
    draws = np.random.default_rng(seed)
    ratios = []
    for _ in range(samples):
        pick = draws.integers(0, len(model), len(model))
        ratios.append((m_err[pick].sum() / counts[pick].sum()) / (r_err[pick].sum() / counts[pick].sum()) - 1)
    assert result["relative_difference"] == pytest.approx(m_err.sum() / r_err.sum() - 1, rel=1e-12)
    np.testing.assert_allclose(result["ci95"], np.percentile(ratios, [2.5, 97.5]), rtol=1e-12)
    assert result["ci95"][0] < result["relative_difference"] < result["ci95"][1]


def test_bootstrap_of_a_model_with_a_fixed_share_of_the_error_has_no_spread():
    # 0.8 × the reference's error on every clip: every resample gives −20 %, so the interval
    # collapses — it would not if the two were resampled independently (not paired)
    _, reference = random_clips(np.random.default_rng(1), 15)
    model = [clip(se=0.8 * c.se, values=c.values) for c in reference]
    result = paired_bootstrap(model, reference, samples=300)
    assert result["relative_difference"] == pytest.approx(-0.2, rel=1e-12)
    np.testing.assert_allclose(result["ci95"], [-0.2, -0.2], rtol=1e-12)


def test_bootstrap_of_two_clips_spans_exactly_the_possible_resamples():
    # Two clips: a resample is {0, 0} (p ¼), {1, 1} (p ¼) or {0, 1} (p ½). The smallest and the
    # largest of their three ratios each hold ~500 of 2000 draws, far past the 50 that the
    # 2.5 % tails hold, so the interval is exactly [smallest, largest].
    model = [clip(se=6.0, values=10), clip(se=2.0, values=10)]
    reference = [clip(se=4.0, values=10), clip(se=4.0, values=10)]
    result = paired_bootstrap(model, reference)
    only_first, only_second, both = 6 / 4 - 1, 2 / 4 - 1, 8 / 8 - 1
    assert result["relative_difference"] == pytest.approx(both, abs=1e-15)
    assert result["ci95"] == pytest.approx([only_second, only_first], abs=1e-15)


def test_table_1_prints_relative_differences_in_percent():
    entry = {"seeds": 2, "mse": 0.012341, "mae": 0.0876, "int_mse": 0.00123, "landmark_px": 1.234,
             "vs_mean_predictor": -0.4,
             "vs_tcn-gan": {"mse": {"relative_difference": 0.123, "ci95": [0.05, 0.2]}}}
    result = {"models": {"lstm": entry},
              "mean_predictor": {"mse": 0.02, "mae": 0.1, "int_mse": 0.002, "landmark_px": 2.0}}
    row = markdown_tables(result).splitlines()[4]
    assert row == "| lstm | 2 | 0.01234 | 0.0876 | 0.00123 | 1.23 | +12.3% [+5.0, +20.0] | -40.0% |"


# --- Renderer table: PSNR, SSIM, LMD, flicker -------------------------------------------------

def smooth_gray(seed: int, shape=(48, 64)) -> np.ndarray:
    """A uint8 image with structure at several scales (noise blurred), not just white noise."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape).astype(np.uint8), (0, 0), 2)


def as_rgb(gray: np.ndarray) -> np.ndarray:
    """Equal channels: their BT.601 luma is the gray value itself, so SSIM sees exactly ``gray``."""
    return np.repeat(gray[..., None], 3, axis=-1)


def test_psnr_matches_scikit_image_and_the_closed_form():
    real = smooth_gray(0)
    rendered = np.clip(real + np.random.default_rng(1).normal(0, 12, real.shape), 0, 255).astype(np.uint8)
    assert psnr(as_rgb(rendered), as_rgb(real)) == pytest.approx(
        peak_signal_noise_ratio(as_rgb(real), as_rgb(rendered), data_range=255), rel=1e-12)
    # off by exactly 1 everywhere: MSE 1, PSNR 20·log10(255) = 48.1308 dB
    assert psnr(as_rgb(real) // 2 + 1, as_rgb(real) // 2) == pytest.approx(48.1308036, abs=1e-6)
    assert psnr(as_rgb(real), as_rgb(real)) == math.inf  # identical images: no noise at all


def skimage_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """scikit-image's SSIM map with Wang et al.'s settings: Gaussian window σ 1.5 (11 × 11 at
    its default truncation), population covariances, K1 0.01, K2 0.03, data range 255."""
    _, full = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=255,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    return full


def test_ssim_is_scikit_images_map_averaged_over_the_whole_image():
    real = smooth_gray(2)
    for noise in (5, 20, 60):
        rendered = np.clip(real + np.random.default_rng(noise).normal(0, noise, real.shape), 0, 255).astype(np.uint8)
        expected = skimage_ssim_map(rendered, real)
        # ssim() averages every pixel, the 5-px border too (reflected); scikit-image's own mean
        # leaves that border out, so the map is what is compared
        assert ssim(as_rgb(rendered), as_rgb(real)) == pytest.approx(expected.mean(), abs=1e-12)


def test_ssim_of_colour_images_is_that_of_their_bt601_luma():
    # a palette whose luma 0.299 R + 0.587 G + 0.114 B is within 0.2 of a whole number, so no
    # rounding convention can change the gray value
    rng = np.random.default_rng(4)
    colours = rng.integers(0, 256, (400, 3))
    luma = colours @ [0.299, 0.587, 0.114]
    away_from_ties = np.abs(luma - np.rint(luma)) < 0.2
    colours, luma = colours[away_from_ties], np.rint(luma[away_from_ties])
    pick_a, pick_b = rng.integers(0, len(colours), (2, 32, 40))
    pick_b[:16] = pick_a[:16]  # half the image alike, so the answer is far from 0
    expected = skimage_ssim_map(luma[pick_a], luma[pick_b]).mean()
    assert ssim(colours[pick_a].astype(np.uint8), colours[pick_b].astype(np.uint8)) == pytest.approx(expected, abs=1e-12)


def test_ssim_of_flat_images_is_the_luminance_term_by_hand():
    # no variance anywhere: SSIM = (2 μa μb + C1) / (μa² + μb² + C1), C1 = (0.01 · 255)²
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1)
    assert ssim(np.full((20, 30, 3), 100, np.uint8), np.full((20, 30, 3), 150, np.uint8)) == pytest.approx(expected, rel=1e-9)
    image = as_rgb(smooth_gray(5))
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


class ScriptedTracker:
    """Stands in for dlib's tracker: returns the given landmarks [68, 2] (or None), in order."""

    def __init__(self, answers):
        self.answers = iter(answers)

    def update(self, frame):
        return next(self.answers)


def drawn_face(size: int = 64) -> np.ndarray:
    return face_landmarks(rest_mouth(), [size / 2, size / 3], 0.0, size / 3)


def lmd_cases(drawn: np.ndarray) -> tuple[list, list[float]]:
    """Landmarks "found" on three frames and the LMD of each, by hand."""
    moved = drawn.copy()
    moved[MOUTH] += [3.0, 4.0]  # every mouth point 5 px away
    moved[:17] += 50.0  # the jaw is not part of the mouth: must not count
    half = drawn.copy()
    half[48:58] += [0.0, 2.0]  # 10 points 2 px away,
    half[58:68] += [6.0, 8.0]  # 10 points 10 px away: mean 6 px
    return [moved, None, half], [5.0, math.nan, 6.0]


def test_landmark_distance_is_the_mean_mouth_point_distance(monkeypatch):
    drawn = drawn_face()
    found, expected = lmd_cases(drawn)
    monkeypatch.setattr(image_metrics, "FaceTracker", lambda: ScriptedTracker(found))
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    np.testing.assert_allclose(landmark_distance(frames, np.stack([drawn] * 3)), expected)


def test_renderer_evaluation_scores_lmd_the_same_way():
    drawn = drawn_face()
    found, expected = lmd_cases(drawn)
    scores = FrameScores()
    scores.tracker = ScriptedTracker(found)
    image = as_rgb(smooth_gray(6, (64, 64)))
    keep_out = np.zeros((64, 64), bool)
    for _ in found:
        scores.add(image, image, drawn, keep_out)
    np.testing.assert_allclose(scores.lmd, expected)
    summary = scores.summary()
    assert summary["lmd"] == pytest.approx(5.5) and summary["lmd_found"] == pytest.approx(2 / 3)


def test_flicker_is_the_mean_absolute_step_outside_both_frames_masks():
    first = np.zeros((4, 4, 3), np.uint8)
    second = first.copy()
    second[..., 0] = 30  # one channel of three: a mean step of 10 per pixel
    second[0, 0] = 255  # inside the second frame's mask: ignored
    previous_out, current_out = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    previous_out[3, 3] = True  # masked in the first frame only: ignored too
    current_out[0, 0] = True
    meter = FlickerMeter()
    meter.add(first, previous_out)
    meter.add(second, current_out)
    assert meter.value == pytest.approx(10.0)  # over the 14 pixels outside both masks
    assert meter.count == 14
    assert math.isnan(FlickerMeter().value)


# --- Lip sync ---------------------------------------------------------------------------------

def test_mouth_opening_by_hand():
    landmarks = np.zeros((68, 2))
    landmarks[36], landmarks[45] = [10.0, 20.0], [70.0, 100.0]  # outer eye corners 100 px apart
    landmarks[[61, 62, 63]] = [[40.0, 150.0], [50.0, 150.0], [60.0, 150.0]]
    landmarks[[67, 66, 65]] = [[40.0, 156.0], [50.0, 159.0], [63.0, 154.0]]  # gaps 6, 9, 5 (3-4-5)
    assert mouth_opening(landmarks) == pytest.approx((6 + 9 + 5) / 3 / 100)


def test_speech_envelope_of_a_sine_is_its_rms():
    # 250 Hz at 16 kHz: 64 samples a period, 10 whole periods in each 640-sample frame
    t = np.arange(3 * 640) / 16000
    wav = 0.6 * np.sin(2 * np.pi * 250 * t)
    np.testing.assert_allclose(speech_envelope(wav, 3), [0.6 / math.sqrt(2)] * 3, rtol=1e-12)


def test_quiet_frames_are_below_a_twentieth_of_the_95th_percentile():
    envelope = np.arange(1, 101) / 100  # 95th percentile (linear): 0.95 + 0.05 · 0.01 = 0.9505
    assert np.flatnonzero(quiet_mask(envelope)).tolist() == [0, 1, 2, 3]  # below 0.047525


def track(opening: np.ndarray, envelope: np.ndarray) -> LipSyncTrack:
    return LipSyncTrack(~np.isnan(opening), opening, envelope)


def test_correlation_of_a_hand_built_pair_is_0_8():
    # deviations from the means: (−2, −1, 0, 1, 2) and (−1, −2, 1, 0, 2): Σxy 8, Σx² Σy² 10 · 10
    scores = lipsync_scores(track(np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 5])))
    assert scores.correlation == pytest.approx(0.8, rel=1e-12)


def test_correlation_and_every_lag_match_scipy_over_face_found_frames():
    rng = np.random.default_rng(11)
    envelope = np.abs(rng.normal(size=120))
    opening = 0.5 * np.roll(envelope, 1) + rng.normal(0, 0.4, 120)  # loosely follows, one frame late
    opening[[5, 40, 41, 99]] = np.nan  # no face on these frames
    scores = lipsync_scores(track(opening, envelope))

    def r_at(lag: int) -> float:
        """Pearson's r of opening[t + lag] with envelope[t], over the t where both exist."""
        pairs = [(opening[t + lag], envelope[t]) for t in range(120) if 0 <= t + lag < 120 and not np.isnan(opening[t + lag])]
        return pearsonr(*np.array(pairs).T).statistic

    expected = {lag: r_at(lag) for lag in range(-3, 4)}
    assert scores.correlation == pytest.approx(expected[0], rel=1e-12)
    assert scores.best_lag_frames == max(expected, key=expected.get) == 1
    assert scores.best_lag_correlation == pytest.approx(expected[1], rel=1e-12)
    assert scores.face_found == pytest.approx(116 / 120)


@pytest.mark.parametrize("late", [2, -1, 3])
def test_a_mouth_that_copies_the_sound_late_or_early_peaks_at_that_lag(late):
    envelope = np.abs(np.random.default_rng(late + 10).normal(size=80))
    opening = 0.2 * np.roll(envelope, late) + 0.01  # opening[t] = envelope[t − late] (+ wrap-around)
    scores = lipsync_scores(track(opening, envelope))
    assert scores.best_lag_frames == late  # positive: the mouth moves after the sound
    assert scores.best_lag_correlation == pytest.approx(1.0, abs=1e-12)
    assert scores.correlation < 0.5


def test_a_frozen_mouth_or_no_face_has_no_correlation():
    envelope = np.abs(np.random.default_rng(3).normal(size=50))
    frozen = lipsync_scores(track(np.full(50, 0.05), envelope))
    assert math.isnan(frozen.correlation) and math.isnan(frozen.best_lag_correlation)
    assert frozen.best_lag_frames == 0
    faceless = lipsync_scores(track(np.full(50, np.nan), envelope))
    assert faceless.face_found == 0.0 and math.isnan(faceless.correlation) and math.isnan(faceless.speech_opening)


def test_pause_and_speech_openings_are_medians_of_their_frames():
    envelope = np.ones(30)
    envelope[10:20] = 0.0  # a 10-frame pause: frames 12–17 count, 2 at each end are left out
    opening = np.full(30, 0.3)
    opening[10:20] = [0.9, 0.9, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.9, 0.9]
    opening[[0, 1, 2]] = [0.1, 0.2, np.nan]  # speech frames: 17 at 0.3, two below, one without a face
    scores = lipsync_scores(track(opening, envelope))
    assert scores.pause_frames == 6 and scores.pause_opening == pytest.approx(0.035)
    assert scores.speech_opening == pytest.approx(0.3)
