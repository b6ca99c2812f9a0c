"""MFCC at 100 Hz aligned to 25 fps video, and its normalisation statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from newsanchor.features.audio import (
    MFCC_PER_VIDEO_FRAME,
    N_MFCC,
    STD_FLOOR,
    MfccStats,
    mfcc,
    mfcc_stats,
    normalise_mfcc,
)
from newsanchor.timing import SAMPLE_RATE, SAMPLES_PER_FRAME



def noise(n_samples: int, seed: int = 0, level: float = 0.3) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(n_samples)).astype(np.float32)


@pytest.mark.parametrize("n_samples", [1, 639, 640, 641, 16000, 16001])
def test_four_rows_per_started_video_frame(n_samples):
    features = mfcc(noise(n_samples))
    expected_rows = MFCC_PER_VIDEO_FRAME * math.ceil(n_samples / SAMPLES_PER_FRAME)
    assert features.shape == (expected_rows, N_MFCC)
    assert features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_empty_waveform_gives_no_rows():
    assert mfcc(np.zeros(0, np.float32)).shape == (0, N_MFCC)
    assert mfcc(noise(1000), n_video_frames=0).shape == (0, N_MFCC)


def test_n_video_frames_trims_to_exactly_that_many_frames():
    wav = noise(10 * SAMPLES_PER_FRAME + 123)
    trimmed = mfcc(wav, n_video_frames=6)
    assert trimmed.shape == (24, N_MFCC)
    np.testing.assert_array_equal(trimmed, mfcc(wav[: 6 * SAMPLES_PER_FRAME]))
    # The trimmed-away audio must not leak in: the full clip differs in the last row.
    assert not np.allclose(trimmed[-1], mfcc(wav)[23], atol=1e-3)


def test_n_video_frames_pads_with_silence():
    wav = noise(3 * SAMPLES_PER_FRAME + 100)
    padded = mfcc(wav, n_video_frames=8)
    assert padded.shape == (32, N_MFCC)
    explicit = np.zeros(8 * SAMPLES_PER_FRAME, np.float32)
    explicit[: wav.size] = wav
    np.testing.assert_array_equal(padded, mfcc(explicit))
    silence_row = mfcc(np.zeros(SAMPLES_PER_FRAME, np.float32))[0]
    np.testing.assert_allclose(padded[-4:], np.tile(silence_row, (4, 1)), atol=1e-4)


def test_rejects_other_sample_rates_and_shapes():
    with pytest.raises(ValueError, match="44100"):
        mfcc(noise(44100), sr=44100)
    with pytest.raises(ValueError, match="mono"):
        mfcc(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        mfcc(np.full(1600, np.nan, np.float32))


@pytest.mark.parametrize("frame", [0, 3, 7])
def test_burst_in_one_video_frame_lights_up_its_four_rows(frame):
    n_frames = 8
    wav = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    start = frame * SAMPLES_PER_FRAME
    wav[start : start + SAMPLES_PER_FRAME] = noise(SAMPLES_PER_FRAME, seed=frame)
    energy = mfcc(wav)[:, 0]
    silence = mfcc(np.zeros_like(wav))[0, 0]

    own = energy[4 * frame : 4 * frame + 4]
    # Windows are 25 ms, so only the one row either side (half its window inside) may see it.
    neighbours = [energy[r] for r in (4 * frame - 1, 4 * frame + 4) if 0 <= r < energy.size]
    outside = np.delete(energy, np.arange(4 * frame - 1, 4 * frame + 5).clip(0, energy.size - 1))
    assert int(np.argmax(energy)) in range(4 * frame, 4 * frame + 4)
    assert own.min() > max(neighbours)
    assert min(neighbours) > silence + 100  # clearly not silence
    np.testing.assert_allclose(outside, silence, atol=1e-3)


def test_click_row_maps_back_to_its_time_within_5_ms():
    rng = np.random.default_rng(1)
    n_samples = 20 * SAMPLES_PER_FRAME
    for position in [0, 79, 80, 81, 159, *rng.integers(0, n_samples, 40)]:
        wav = np.zeros(n_samples, np.float32)
        wav[position] = 1.0
        row = int(np.argmax(mfcc(wav)[:, 0]))
        row_centre_ms = 10 * row + 5
        assert abs(row_centre_ms - position * 1000 / SAMPLE_RATE) <= 5.0, (position, row)


def test_rows_are_centred_time_reversal_reverses_rows():
    # Reversing time about the clip's midpoint maps the window centred at 10j + 5 ms onto the
    # one centred at 10(4T-1-j) + 5 ms only if every window is centred exactly as promised;
    # any offset in the padding breaks this equality. Sample n sits at time n / sr, so the
    # reversal about the midpoint is r[n] = w[N - n] (w[N] := 0, hence w[0] = 0 here).
    n_samples = 6 * SAMPLES_PER_FRAME
    wav = noise(n_samples, seed=4) * np.linspace(0.05, 1.0, n_samples, dtype=np.float32)
    wav[0] = 0.0
    reversed_wav = np.zeros_like(wav)
    reversed_wav[1:] = wav[:0:-1]
    np.testing.assert_allclose(mfcc(reversed_wav), mfcc(wav)[::-1], atol=2e-3)


def test_rows_depend_only_on_their_own_window():
    # A window computed on its own (streaming inference) must match the same rows inside a
    # longer clip, even when the rest of the clip is much louder (no clip-relative dB clamp).
    n_frames = 12
    wav = noise(n_frames * SAMPLES_PER_FRAME, seed=2, level=3e-4)
    loud = np.arange(3 * SAMPLES_PER_FRAME)
    wav[loud] = np.sin(2 * np.pi * 1000 * loud / SAMPLE_RATE)  # full scale, far above the rest
    first, last = 4, 9
    chunk = wav[first * SAMPLES_PER_FRAME : last * SAMPLES_PER_FRAME]
    whole = mfcc(wav)
    alone = mfcc(chunk)
    # Edge rows of the chunk see 7.5 ms across its boundary; all others are fully inside.
    np.testing.assert_allclose(alone[1:-1], whole[4 * first + 1 : 4 * last - 1], atol=1e-3)


def test_is_deterministic():
    wav = noise(5000, seed=3)
    np.testing.assert_array_equal(mfcc(wav), mfcc(wav.copy()))


def test_stats_equal_numpy_on_the_concatenation():
    rng = np.random.default_rng(5)
    offsets = np.linspace(-300, 20, N_MFCC)  # coefficient 0 sits far from zero, as in real MFCC
    chunks = [offsets + rng.normal(0, 1 + np.arange(N_MFCC), (n, N_MFCC)) for n in (1, 57, 0, 300, 2)]
    stats = mfcc_stats(iter(chunks))  # a one-shot iterator: the function may only pass once
    everything = np.concatenate(chunks)
    np.testing.assert_allclose(stats.mean, everything.mean(axis=0), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(stats.std, everything.std(axis=0), rtol=1e-10)


def test_stats_floor_constant_coefficients_and_reject_no_rows():
    stats = mfcc_stats([np.ones((4, N_MFCC)), np.ones((3, N_MFCC))])
    np.testing.assert_array_equal(stats.std, STD_FLOOR)
    assert np.all(np.isfinite(normalise_mfcc(np.ones((2, N_MFCC)), stats)))
    with pytest.raises(ValueError, match="no MFCC rows"):
        mfcc_stats([np.zeros((0, N_MFCC))])
    with pytest.raises(ValueError, match="chunk 1"):
        mfcc_stats([np.zeros((2, N_MFCC)), np.zeros((2, 12))])


def test_normalised_mfcc_has_zero_mean_unit_std():
    chunks = [mfcc(noise(4000, seed=s, level=0.05 * (s + 1))) for s in range(4)]
    stats = mfcc_stats(chunks)
    normalised = normalise_mfcc(np.concatenate(chunks), stats)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=0), 1.0, atol=1e-4)


def test_stats_survive_json():
    stats = MfccStats(mean=np.linspace(-3, 3, N_MFCC), std=np.linspace(0.5, 2, N_MFCC))
    restored = MfccStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.std, stats.std)
    with pytest.raises(ValueError):
        MfccStats(mean=np.zeros(12), std=np.ones(12))
