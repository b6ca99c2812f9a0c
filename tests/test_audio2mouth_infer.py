"""Audio → mouth inference: windows and single pass, silence closure, closed pose, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from newsanchor.audio2mouth.infer import (
    mouth_from_audio,
    predict_mouth,
    predict_mouth_single_pass,
    predict_mouth_windowed,
    silence_mfcc_row,
)
from newsanchor.audio2mouth.registry import build_model
from newsanchor.audio2mouth.silence import (
    close_mouth_in_silence,
    closed_mouth_pose,
    closure_weights,
    speech_activity,
)
from newsanchor.audio2mouth.stream import MouthStreamer
from newsanchor.features.audio import MfccStats, mfcc, normalise_mfcc


pytestmark = pytest.mark.usefixtures("one_torch_thread")


SR = 16000
TINY_TCN = {"filters": 16, "frontend_channels": (8, 8, 8, 16), "fc_hidden": 8, "dilations": (1, 2)}  # ±8 frames
STATS = MfccStats(mean=np.r_[-350.0, np.zeros(12)], std=np.r_[80.0, np.full(12, 20.0)])


@pytest.fixture(scope="module")
def tcn():
    torch.manual_seed(0)
    return build_model("tcn", **TINY_TCN)[0].eval()


@pytest.fixture(scope="module")
def lstm():
    torch.manual_seed(0)
    return build_model("lstm", hidden=16, layers=1)[0].eval()


def _mfcc(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((4 * frames, 13)).astype(np.float32)


def _bursts(pattern: list[tuple[str, float]], seed: int = 0) -> np.ndarray:
    """Tone bursts ("tone", seconds) and near-silence ("gap", seconds) at 16 kHz: a vowel-like
    200 Hz tone with harmonics at about -20 dBFS, and -75 dBFS noise between."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in pattern:
        n = round(seconds * SR)
        t = np.arange(n) / SR
        noise = 10 ** (-75 / 20) * rng.standard_normal(n)
        tone = sum(0.1 / k * np.sin(2 * np.pi * 200 * k * t) for k in (1, 2, 3, 5)) if kind == "tone" else 0
        parts.append(tone + noise)
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("frames", [0, 1, 7, 50, 51, 333])
def test_predict_mouth_gives_one_frame_per_40_ms(tcn, lstm, frames):
    features = _mfcc(frames)
    for model in (tcn, lstm):
        for single_pass in (None, False):
            out = predict_mouth(model, features, single_pass=single_pass)
            assert out.shape == (frames, 10) and out.dtype == np.float32
            assert np.all(np.isfinite(out))
    with pytest.raises(ValueError, match=r"\[4T, 13\]"):
        predict_mouth(tcn, np.zeros((201, 13), np.float32))


def test_tcn_single_pass_equals_paper_windows_when_the_field_fits_in_the_overlap(tcn):
    assert tcn.receptive_field_video_frames <= 10  # the windows' kept frames never see padding
    features, pad = _mfcc(333, seed=1), silence_mfcc_row(STATS)
    windowed = predict_mouth_windowed(tcn, features, pad_row=pad)
    single = predict_mouth_single_pass(tcn, features, pad_row=pad)
    np.testing.assert_allclose(single, windowed, rtol=0, atol=1e-5)  # interior, seams and ends alike
    np.testing.assert_array_equal(predict_mouth(tcn, features, pad_row=pad), single)  # the default path
    # cutting a long pass into segments changes nothing
    np.testing.assert_allclose(predict_mouth_single_pass(tcn, features, pad_row=pad, max_frames=100), single,
                               rtol=0, atol=1e-5)


def test_paper_size_single_pass_matches_windows_that_hold_the_whole_field():
    torch.manual_seed(0)
    model = build_model("tcn", filters=32, frontend_channels=(8, 8, 8, 32), fc_hidden=8)[0].eval()
    field = model.receptive_field_video_frames  # 32 frames: more than the paper's 10 dropped
    features = _mfcc(150, seed=2)
    single = predict_mouth_single_pass(model, features, drop=field)
    windowed = predict_mouth_windowed(model, features, window=4 * (2 * field + 30), drop=field)
    np.testing.assert_allclose(single, windowed, rtol=0, atol=1e-5)


def test_predict_mouth_under_bf16_autocast(tcn):
    features = _mfcc(60, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = predict_mouth(tcn, features)
    np.testing.assert_allclose(fast, predict_mouth(tcn, features), atol=0.1)


def test_windows_are_stitched_from_the_central_frames(lstm):
    features, pad = _mfcc(100, seed=3), silence_mfcc_row(STATS)
    out = predict_mouth(lstm, features, pad_row=pad)
    padded = np.concatenate([np.tile(pad, (40, 1)), features, np.tile(pad, (4 * 120 - 400 - 40, 1))])
    with torch.no_grad():
        for w in range(4):  # window w: padded rows 120w .. 120w + 200 → frames 30w .. 30w + 30
            window = torch.from_numpy(padded[None, 120 * w:120 * w + 200])
            expected = lstm(window)[0, 10:40].numpy()
            np.testing.assert_allclose(out[30 * w:30 * w + 30], expected[:min(30, 100 - 30 * w)], atol=1e-6)


def test_predict_mouth_runs_in_eval_mode_and_restores_training():
    torch.manual_seed(0)
    model = build_model("tcn", dropout=0.5, **TINY_TCN)[0].train()
    features = _mfcc(60, seed=4)
    np.testing.assert_array_equal(predict_mouth(model, features), predict_mouth(model, features))
    assert model.training


def test_silence_row_is_normalised_mfcc_of_digital_silence():
    row = silence_mfcc_row(STATS)
    np.testing.assert_allclose(row, normalise_mfcc(mfcc(np.zeros(SR, np.float32))[10], STATS), atol=1e-6)
    assert row[0] < -1.5  # far below the mean speech frame (normalised zero)


def test_vad_marks_bursts_active_long_silence_silent_and_bridges_short_gaps():
    # 1 s silence, 1 s tone, 160 ms gap, 0.8 s tone, 2 s silence, 0.6 s tone, 1 s silence
    wav = _bursts([("gap", 1.0), ("tone", 1.0), ("gap", 0.16), ("tone", 0.8), ("gap", 2.0), ("tone", 0.6), ("gap", 1.0)])
    frames = math.ceil(len(wav) / 640)
    activity = speech_activity(wav, frames)
    assert activity.shape == (frames,) and activity.min() >= 0 and activity.max() <= 1
    assert np.all(activity[25:74] == 1)  # first burst, the 4-frame gap and the second burst
    assert np.all(activity[80:120] == 0)  # inside the 2 s silence, beyond hangover and edges
    assert np.all(activity[:18] == 0) and np.all(activity[-18:] == 0)
    assert np.all(activity[124:139] == 1)
    assert np.abs(np.diff(activity)).max() <= 1 / 3 + 1e-9  # soft edges, no jumps


def test_closure_gives_the_closed_pose_in_long_silence_and_no_jumps():
    wav = _bursts([("gap", 1.0), ("tone", 1.0), ("gap", 2.0), ("tone", 1.0), ("gap", 0.5)])
    frames = math.ceil(len(wav) / 640)
    activity = speech_activity(wav, frames)
    closed = np.linspace(-1, 1, 10).astype(np.float32)
    open_mouth = np.tile(closed + 2.0, (frames, 1))
    out = close_mouth_in_silence(open_mouth, activity, closed, ease_frames=3)
    np.testing.assert_array_equal(out[:15], np.tile(closed, (15, 1)))
    np.testing.assert_allclose(out[60:80], np.tile(closed, (20, 1)), atol=1e-6)
    np.testing.assert_allclose(out[28:47], open_mouth[28:47], atol=1e-6)  # speech untouched
    steps = np.abs(np.diff(out, axis=0)).max()
    assert steps <= 2.0 * 1.5 / 7 + 1e-5  # the weight moves at most 1.5 / (2 * 3 + 1) a frame
    assert np.abs(np.diff(closure_weights(np.r_[np.zeros(20), np.ones(20)], 3))).max() <= 1.5 / 7 + 1e-9


def test_closed_pose_is_the_median_of_silent_frames_with_the_smallest_opening():
    rng = np.random.default_rng(5)
    closed, speaking, breathing = np.full(10, -1.0), np.full(10, 2.0), np.full(10, 0.5)
    features = np.concatenate([closed + 0.01 * rng.standard_normal((30, 10)),
                               speaking + rng.standard_normal((100, 10)),
                               breathing + 0.01 * rng.standard_normal((60, 10)),
                               np.full((5, 10), np.nan)])
    activity = np.r_[np.zeros(30), np.ones(100), np.zeros(60), np.zeros(5)]
    opening = np.r_[np.full(30, 0.01), np.full(100, 0.2), np.full(60, 0.05), np.zeros(5)]
    pose = closed_mouth_pose(features, activity=activity, opening=opening, closed_share=0.25)
    np.testing.assert_allclose(pose, closed, atol=0.02)
    assert pose.shape == (10,) and pose.dtype == np.float32
    with pytest.raises(ValueError, match="no frame qualifies"):
        closed_mouth_pose(features[30:130], activity=activity[30:130])


@pytest.mark.parametrize("model_name", ["tcn", "lstm"])
@pytest.mark.parametrize("closure", [False, True])
def test_streaming_equals_offline(request, model_name, closure):
    model = request.getfixturevalue(model_name)
    wav = _bursts([("gap", 0.7), ("tone", 1.1), ("gap", 0.9), ("tone", 1.3), ("gap", 0.33)], seed=6)
    wav += 0.02 * np.random.default_rng(7).standard_normal(len(wav)).astype(np.float32) * (np.abs(wav) > 0.01)
    closed = np.linspace(0, 1, 10).astype(np.float32) if closure else None
    pad = silence_mfcc_row(STATS) if closure else None  # either padding streams exactly
    offline = mouth_from_audio(model, wav, STATS, closed_mouth=closed, pad_row=pad)
    assert offline.shape == (math.ceil(len(wav) / 640), 10)
    streamer = MouthStreamer(model, STATS, closed, pad_row=pad)
    lookahead = round(streamer.lookahead_ms * SR / 1000)
    rng = np.random.default_rng(8)
    outputs, position = [], 0
    while position < len(wav):
        size = int(rng.integers(1, 4000))
        outputs.append(streamer.push(wav[position:position + size]))
        position = min(len(wav), position + size)
        emitted = sum(len(o) for o in outputs)
        assert emitted <= position // 640  # never a frame before its audio
        assert emitted >= (position - lookahead) // 640  # every frame once its look-ahead is in
    outputs.append(streamer.flush())
    streamed = np.concatenate(outputs)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, rtol=0, atol=1e-4)
    # flush starts a new utterance
    again = np.concatenate([streamer.push(wav[:5000]), streamer.flush()])
    np.testing.assert_allclose(again, mouth_from_audio(model, wav[:5000], STATS, closed_mouth=closed, pad_row=pad),
                               atol=1e-4)


def test_long_streams_keep_bounded_buffers_and_stay_exact(tcn, lstm):
    wav = _bursts([("tone", 1.5), ("gap", 1.5), ("tone", 2.0), ("gap", 1.0)], seed=9)
    closed = np.zeros(10, np.float32)
    for model in (tcn, lstm):
        streamer = MouthStreamer(model, STATS, closed)
        streamer.trim_slack_rows, streamer.trim_slack_frames, streamer.trim_slack_samples = 8, 4, 640
        outputs, longest = [], 0
        for start in range(0, len(wav), 3200):
            outputs.append(streamer.push(wav[start:start + 3200]))
            longest = max(longest, len(streamer._audio))
        outputs.append(streamer.flush())
        assert longest < 2.5 * SR  # 6 s streamed; held: the look-ahead, margins and trimming slack
        np.testing.assert_allclose(np.concatenate(outputs), mouth_from_audio(model, wav, STATS, closed_mouth=closed),
                                   rtol=0, atol=1e-4)


def test_streamer_lookahead_follows_the_receptive_field_or_windows(tcn, lstm):
    assert MouthStreamer(tcn, STATS).lookahead_ms == pytest.approx(10 * (33 - 3) + 11)  # rows 4t+33, MFCC window
    assert MouthStreamer(lstm, STATS).lookahead_ms == pytest.approx(10 * 159 + 21 - 40)  # a window's first kept frame
    paper_tcn = build_model("tcn")[0]
    assert MouthStreamer(paper_tcn, STATS).lookahead_ms == pytest.approx(10 * 126 + 11)


def _align_frames(path, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(edge silence, word) masks at 25 fps from a GRID .align (1/25000 s units)."""
    segments = [(int(a) / 1000, int(b) / 1000, w) for a, b, w in (line.split() for line in path.read_text().splitlines())]
    words = [(a, b) for a, b, w in segments if w not in ("sil", "sp")]
    silence, speech = np.zeros(n_frames, bool), np.zeros(n_frames, bool)
    first, last = words[0][0], words[-1][1]
    silence[:max(0, math.floor(first) - 5)] = True  # leading silence, 5 frames of slack before the word
    silence[math.ceil(last) + 5:] = True
    for a, b in words:
        speech[math.ceil(a) + 1:math.floor(b)] = True  # alignment boundaries are loose by a frame
    return silence, speech


def test_vad_finds_the_silences_of_real_recordings(shared_data):
    from newsanchor.media import read_audio

    grid = shared_data / "grid_s1"
    silent, active = [], []
    for clip in sorted(path.stem for path in grid.glob("*.mp4"))[::75]:  # 12 of 900, spread over the corpus
        wav = read_audio(grid / f"{clip}.mp4")
        frames = math.ceil(len(wav) / 640)
        activity = speech_activity(wav, frames)
        silence, speech = _align_frames(grid / "align" / f"{clip}.align", frames)
        silent.append(activity[silence] < 0.5)
        active.append(activity[speech] > 0.5)
    assert np.mean(np.concatenate(silent)) >= 0.9  # 0.96: breaths before speaking account for most of the rest
    assert np.mean(np.concatenate(active)) >= 0.95  # 0.97
