"""Mouth closure in silence (beyond the paper): a voice activity detector and a closed-mouth blend.

Open lip-sync tools are most often faulted for a mouth that keeps mumbling through pauses: the
audio → mouth model sees pause audio rarely and regresses to an average, half-open mouth.
Here an energy VAD finds the pauses and the mouth is eased towards the speaker's own
closed-mouth pose there (measured from the data by :func:`closed_mouth_pose`).

VAD, per 40 ms video frame ``k`` (samples ``640k .. 640k+640``):

1. energy in dBFS above 100 Hz (Hann-windowed FFT of the frame; a full-scale sine is -3 dBFS).
   The low cut drops hum, rumble and DC, which carry no speech but much of the noise.
2. threshold = noise floor + ``max(12 dB, 0.4 * (speech level - noise floor))``, where the
   floor and the speech level are the 10th and 90th percentiles of the energies in a window of
   5 s before to 0.48 s after the frame, and never below -65 dBFS. The window adapts to the
   recording's noise and loudness; the 12 dB minimum keeps breaths and lip noise out when a
   window holds no speech (e.g. a long leading silence).
3. active runs are joined across gaps of up to 6 frames (240 ms: the pauses between words and
   stop closures), then runs shorter than 3 frames (120 ms: clicks) are dropped;
4. hangover: 2 frames (80 ms) before each run (the lips part before the voice starts) and
   3 frames (120 ms) after it (release);
5. soft edges: the activity falls linearly to 0 over 2 more frames.

Tuned on GRID s1 against its word alignments. Over all 900 clips, 97.7 % of the frames of the
leading/trailing silences (those 5 frames or more from a word) read as silent and 98.6 % of word
frames (a frame of alignment slack left out at each end) as active; the silent frames read as
speech are mostly breaths and lip noise just before the first word.

Every step looks a bounded number of frames ahead and back (:attr:`VadConfig.lookahead_frames`,
:attr:`VadConfig.history_frames`), so the streamer computes exactly the offline result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..timing import SAMPLE_RATE, SAMPLES_PER_FRAME

_ENERGY_EPS = 1e-10  # -100 dBFS: digital silence stays finite


@dataclass(frozen=True)
class VadConfig:
    """Energy VAD settings (see the module docstring for the reasoning)."""

    low_cut_hz: float = 100.0
    floor_percentile: float = 10.0
    level_percentile: float = 90.0
    past_frames: int = 125  # 5 s of history for floor and level
    future_frames: int = 12  # 0.48 s of look-ahead for floor and level
    threshold_ratio: float = 0.4
    min_margin_db: float = 12.0
    min_threshold_db: float = -65.0
    max_gap_frames: int = 6
    min_run_frames: int = 3
    onset_frames: int = 2
    release_frames: int = 3
    edge_frames: int = 2

    def __post_init__(self) -> None:
        counts = (self.past_frames, self.future_frames, self.max_gap_frames, self.min_run_frames,
                  self.onset_frames, self.release_frames, self.edge_frames)
        if min(counts) < 0:
            raise ValueError("VadConfig: frame counts must be >= 0")
        if not 0 <= self.floor_percentile <= self.level_percentile <= 100:
            raise ValueError("VadConfig: need 0 <= floor_percentile <= level_percentile <= 100")

    @property
    def lookahead_frames(self) -> int:
        """Future frames whose energy can change frame ``k``'s activity."""
        return self.future_frames + self.max_gap_frames + self.min_run_frames + self.onset_frames + self.edge_frames

    @property
    def history_frames(self) -> int:
        """Past frames whose energy can change frame ``k``'s activity."""
        return self.past_frames + self.max_gap_frames + self.min_run_frames + self.release_frames + self.edge_frames


DEFAULT_VAD = VadConfig()


_ENERGY_BLOCK_FRAMES = 1500  # 60 s of frames per FFT block


def frame_energy_db(wav: np.ndarray, n_video_frames: int, low_cut_hz: float = 100.0) -> np.ndarray:
    """Energy above ``low_cut_hz`` of each 40 ms frame, in dBFS.

    Args:
        wav: ``[S]`` mono 16 kHz float; zero-padded or trimmed to ``640 * n_video_frames``.
        n_video_frames: ``T``.

    Returns:
        ``[T]`` float64, >= -100 dBFS.

    The spectra are taken :data:`_ENERGY_BLOCK_FRAMES` frames at a time, so an hour of audio
    needs a few MB beside its waveform, not GBs.
    """
    wav = np.asarray(wav, dtype=np.float32)
    window = np.hanning(SAMPLES_PER_FRAME)
    band = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1.0 / SAMPLE_RATE) >= low_cut_hz
    energy = np.empty(n_video_frames, dtype=np.float64)
    for first in range(0, n_video_frames, _ENERGY_BLOCK_FRAMES):
        count = min(_ENERGY_BLOCK_FRAMES, n_video_frames - first)
        samples = np.zeros(count * SAMPLES_PER_FRAME, dtype=np.float64)
        block = wav[first * SAMPLES_PER_FRAME:(first + count) * SAMPLES_PER_FRAME]
        samples[:len(block)] = block
        spectrum = np.abs(np.fft.rfft(samples.reshape(count, SAMPLES_PER_FRAME) * window, axis=1)) ** 2
        # Parseval, one-sided, undoing the window's power: a sine of amplitude A gives A² / 2.
        power = 2.0 * spectrum[:, band].sum(axis=1) / (SAMPLES_PER_FRAME * np.sum(window**2))
        energy[first:first + count] = 10.0 * np.log10(power + _ENERGY_EPS)
    return energy


def _windowed_percentiles(values: np.ndarray, before: int, after: int, qs: tuple[float, ...]) -> np.ndarray:
    """``[len(qs), T]``: percentiles (linear interpolation) of ``values[k - before : k + after + 1]``,
    clipped to the array, for every k. One sort of all windows; ~20x faster than nanpercentile."""
    n = len(values)
    padded = np.concatenate([np.full(before, np.inf), values, np.full(after, np.inf)])
    ordered = np.sort(np.lib.stride_tricks.sliding_window_view(padded, before + after + 1), axis=1)  # padding sorts last
    k = np.arange(n)
    counts = np.minimum(k, before) + 1 + np.minimum(n - 1 - k, after)
    out = np.empty((len(qs), n))
    for i, q in enumerate(qs):
        position = (counts - 1) * (q / 100.0)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, counts - 1)
        low, high = ordered[k, below], ordered[k, above]
        out[i] = low + (high - low) * (position - below)
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the True runs of a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _bridge_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill False runs of at most ``max_gap`` frames that have True on both sides."""
    out = mask.copy()
    starts, ends = _runs(mask)
    for gap_start, gap_end in zip(ends[:-1], starts[1:]):
        if gap_end - gap_start <= max_gap:
            out[gap_start:gap_end] = True
    return out


def _drop_short_runs(mask: np.ndarray, min_run: int) -> np.ndarray:
    out = mask.copy()
    for start, end in zip(*_runs(mask)):
        if end - start < min_run:
            out[start:end] = False
    return out


def _dilate(mask: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[k] = any(mask[k - after .. k + before])``: runs grow ``before`` frames earlier and
    ``after`` frames later."""
    counts = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])  # integers: exact
    n = len(mask)
    k = np.arange(n)
    lo, hi = np.clip(k - after, 0, n), np.clip(k + before + 1, 0, n)
    return counts[hi] - counts[lo] > 0


def _soft_edges(mask: np.ndarray, edge_frames: int) -> np.ndarray:
    """1 on active frames, falling linearly to 0 over ``edge_frames`` frames beside them."""
    n = len(mask)
    if not mask.any():
        return np.zeros(n)
    k = np.arange(n)
    last = np.maximum.accumulate(np.where(mask, k, -n - edge_frames - 1))
    following = np.minimum.accumulate(np.where(mask, k, 2 * n + edge_frames + 1)[::-1])[::-1]
    distance = np.minimum(k - last, following - k)
    return np.clip(1.0 - distance / (edge_frames + 1.0), 0.0, 1.0)


def activity_from_energy(energy_db: np.ndarray, config: VadConfig = DEFAULT_VAD) -> np.ndarray:
    """Speech activity ``[T]`` in [0, 1] from frame energies ``[T]`` (dBFS), steps 2–5 above."""
    energy_db = np.asarray(energy_db, dtype=np.float64)
    if energy_db.size == 0:
        return np.zeros(0)
    floor, level = _windowed_percentiles(energy_db, config.past_frames, config.future_frames,
                                         (config.floor_percentile, config.level_percentile))
    margin = np.maximum(config.min_margin_db, config.threshold_ratio * (level - floor))
    threshold = np.maximum(floor + margin, config.min_threshold_db)
    active = _bridge_gaps(energy_db > threshold, config.max_gap_frames)
    active = _drop_short_runs(active, config.min_run_frames)
    active = _dilate(active, config.onset_frames, config.release_frames)
    return _soft_edges(active, config.edge_frames)


def speech_activity(wav16k: np.ndarray, n_video_frames: int, config: VadConfig = DEFAULT_VAD) -> np.ndarray:
    """Speech activity per 25 fps frame: ~1 while speaking, 0 in pauses, soft at the edges.

    Args:
        wav16k: ``[S]`` mono 16 kHz float (zero-padded or trimmed to ``640 * n_video_frames``).
        n_video_frames: ``T``.
        config: VAD settings.

    Returns:
        ``[T]`` float64 in [0, 1].
    """
    return activity_from_energy(frame_energy_db(wav16k, n_video_frames, config.low_cut_hz), config)


def closure_weights(activity: np.ndarray, ease_frames: int = 3) -> np.ndarray:
    """How much of the predicted mouth to keep per frame: ``[T]`` in [0, 1].

    The activity is averaged over ``2 * ease_frames + 1`` frames (ends repeated) and passed
    through smoothstep (``3w² - 2w³``): transitions ease in and out, and the weight never
    changes by more than ``1.5 / (2 * ease_frames + 1)`` between frames, whatever the input.
    """
    activity = np.clip(np.asarray(activity, dtype=np.float64), 0.0, 1.0)
    if activity.size == 0 or ease_frames == 0:
        smoothed = activity
    else:
        padded = np.pad(activity, ease_frames, mode="edge")
        # np.convolve sums each window in the same order wherever it sits: a stream computing a
        # slice gets the same bits as the whole clip (a cumulative sum would not).
        smoothed = np.convolve(padded, np.full(2 * ease_frames + 1, 1.0 / (2 * ease_frames + 1)), mode="valid")
        smoothed = np.clip(smoothed, 0.0, 1.0)
    return smoothed * smoothed * (3.0 - 2.0 * smoothed)


def close_mouth_in_silence(mouth: np.ndarray, activity: np.ndarray, closed_mouth: np.ndarray,
                           ease_frames: int = 3) -> np.ndarray:
    """Blend the mouth towards the closed pose where there is no speech.

    ``out[t] = closed + w[t] * (mouth[t] - closed)`` with ``w = closure_weights(activity)``:
    speech frames (activity 1 around them) are unchanged, long pauses get exactly the closed
    pose, transitions take about ``2 * ease_frames + 1`` frames without jumps.

    Args:
        mouth: ``[T, K]`` PCA mouth features.
        activity: ``[T]`` in [0, 1] (:func:`speech_activity`).
        closed_mouth: ``[K]`` the speaker's closed pose (:func:`closed_mouth_pose`).
        ease_frames: half-width of the transition smoothing.

    Returns:
        ``[T, K]`` float32.
    """
    mouth = np.asarray(mouth, dtype=np.float32)
    closed = np.asarray(closed_mouth, dtype=np.float32)
    if mouth.ndim != 2 or closed.shape != mouth.shape[1:] or np.shape(activity) != mouth.shape[:1]:
        raise ValueError(f"close_mouth_in_silence: need mouth [T, K], activity [T], closed [K]; got "
                         f"{mouth.shape}, {np.shape(activity)}, {closed.shape}")
    weights = closure_weights(activity, ease_frames).astype(np.float32)[:, None]
    return closed + weights * (mouth - closed)


def closed_mouth_pose(features: np.ndarray, *, activity: np.ndarray | None = None,
                      opening: np.ndarray | None = None, closed_share: float = 0.25) -> np.ndarray:
    """The speaker's closed-mouth pose, measured from their recordings.

    Frames are chosen in two steps: those without speech (``activity < 0.5``, when given), then
    of those the ``closed_share`` with the smallest inner-lip opening (when given; e.g. the
    height from :func:`newsanchor.features.mouth.mouth_size` of the normalised mouths). The
    pose is the per-coefficient median of the chosen frames, robust to stray landmark glitches.
    Rows with NaN (frames without a face) are ignored.

    Args:
        features: ``[N, K]`` PCA mouth features.
        activity: ``[N]`` speech activity of the same frames, or None.
        opening: ``[N]`` inner-lip opening of the same frames, or None.
        closed_share: share of the candidate frames with the smallest opening to keep.

    Returns:
        ``[K]`` float32.

    Raises:
        ValueError: shapes disagree, or no frame qualifies.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"closed_mouth_pose: features must be [N, K], got {features.shape}")
    chosen = np.all(np.isfinite(features), axis=1)
    for name, values in (("activity", activity), ("opening", opening)):
        if values is not None and np.shape(values) != features.shape[:1]:
            raise ValueError(f"closed_mouth_pose: {name} must be [{features.shape[0]}], got {np.shape(values)}")
    if activity is not None:
        chosen &= np.asarray(activity) < 0.5
    if opening is not None:
        opening = np.asarray(opening, dtype=np.float64)
        chosen &= np.isfinite(opening)
        if chosen.any():
            chosen &= opening <= np.quantile(opening[chosen], closed_share)
    if not chosen.any():
        raise ValueError("closed_mouth_pose: no frame qualifies (no silent frames with a face?)")
    return np.median(features[chosen], axis=0).astype(np.float32)
