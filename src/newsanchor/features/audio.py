"""Audio features (pipeline stage 1): 13-D MFCC at exactly 100 Hz, aligned to 25 fps video.

Paper §4.2: "The sampling rate of 13-D MFCC features is 100 Hz." Four MFCC frames per video
frame, so a window of 200 MFCC frames drives 50 mouth frames (§3.1).

Alignment contract
------------------
Video frame ``k`` (25 fps) covers ``[40k, 40k + 40)`` ms and corresponds to MFCC rows
``4k .. 4k+3``. MFCC row ``j`` is computed from a 25 ms window *centred* at ``10j + 5`` ms,
i.e. at sample ``160j + 80``; the four rows of a video frame therefore sit symmetrically
inside it (centres at 5, 15, 25, 35 ms of the frame). Before framing, the waveform is padded
with :data:`EDGE_PAD_SAMPLES` zeros on both sides and framed with ``center=False``; see
:func:`mfcc` for the arithmetic.

Choices
-------
- ``n_fft = 512`` (next power of two above the 400-sample window; librosa zero-pads the
  Hann window centrally inside the FFT frame, which keeps the window centre at sample 256).
- ``n_mels = 40`` mel bands over 0–8 kHz (Slaney mel scale and area normalisation, librosa's
  defaults), DCT-II with orthonormal scaling, no liftering.
- Log-mel uses an *absolute* floor of -80 dB (``amin = 1e-8``) instead of librosa's default
  ``top_db=80`` relative to the loudest frame: the relative clamp would make every feature
  depend on the loudest moment of the whole clip, so a window computed on its own (streaming,
  overlapping windows) would differ from the same window inside a longer clip. The floor also
  keeps digital silence from TTS (-100 dB with librosa's ``amin=1e-10``) near the noise floor
  of real recordings (about -60 to -70 dB in the shared speech recordings).
- Padding is with zeros (silence), never reflection: a reflected edge invents speech energy
  that is not in the recording.

Everything is float32 and deterministic (no dither). No file I/O here: decoding and resampling
belong to ``newsanchor.media``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import librosa
import numpy as np

from ..timing import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

MFCC_HZ = 100
MFCC_PER_VIDEO_FRAME = MFCC_HZ // FPS  # 4
N_MFCC = 13

HOP_SAMPLES = SAMPLE_RATE // MFCC_HZ  # 160 samples = 10 ms
WINDOW_SAMPLES = SAMPLE_RATE * 25 // 1000  # 400 samples = 25 ms
N_FFT = 512
N_MELS = 40
LOG_MEL_FLOOR = 1e-8  # -80 dB, see the module docstring

# Row j's window centre must land on original sample 160j + 80 (= 10j + 5 ms). With
# center=False, row j's FFT frame starts at padded sample 160j and its window centre sits at
# N_FFT // 2 inside it, so the waveform must be shifted right by N_FFT // 2 - HOP // 2 = 176.
# The same pad on the right makes exactly 4 rows per 640 samples:
#   1 + (640T + 2*176 - 512) // 160 = 1 + (640T - 160) // 160 = 4T.
EDGE_PAD_SAMPLES = N_FFT // 2 - HOP_SAMPLES // 2  # 176

# Floor for MFCC standard deviations, so a coefficient that never varies (e.g. a constant
# training set) normalises to 0 instead of inf/NaN.
STD_FLOOR = 1e-5


def mfcc(wav: np.ndarray, sr: int = SAMPLE_RATE, *, n_video_frames: int | None = None) -> np.ndarray:
    """13-D MFCC of a mono 16 kHz waveform, 4 rows per 25 fps video frame.

    Args:
        wav: ``[S]`` mono waveform, float (cast to float32), nominally in [-1, 1].
        sr: its sample rate; must be 16000 (resample while decoding, not here).
        n_video_frames: the number ``T`` of video frames the features must cover. The waveform
            is zero-padded or trimmed to ``T * 640`` samples first. Default:
            ``ceil(S / 640)`` (the tail is zero-padded to a whole video frame).

    Returns:
        ``[4 * T, 13]`` float32. Row ``j`` describes the 25 ms centred at ``10j + 5`` ms;
        rows ``4k .. 4k+3`` belong to video frame ``k`` (``[40k, 40k + 40)`` ms).

    Raises:
        ValueError: ``sr`` is not 16000, ``wav`` is not 1-D, contains NaN/inf, or
            ``n_video_frames`` is negative.
    """
    if sr != SAMPLE_RATE:
        raise ValueError(f"mfcc: sample rate {sr} Hz, expected {SAMPLE_RATE} Hz (resample when decoding)")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"mfcc: waveform must be mono [S], got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ValueError("mfcc: waveform contains NaN or inf")
    if n_video_frames is None:
        n_video_frames = math.ceil(wav.shape[0] / SAMPLES_PER_FRAME)
    if n_video_frames < 0:
        raise ValueError(f"mfcc: n_video_frames must be >= 0, got {n_video_frames}")
    if n_video_frames == 0:
        return np.zeros((0, N_MFCC), dtype=np.float32)

    n_samples = n_video_frames * SAMPLES_PER_FRAME
    fitted = np.zeros(n_samples, dtype=np.float32)
    kept = min(n_samples, wav.shape[0])
    fitted[:kept] = wav[:kept]
    padded = np.pad(fitted, EDGE_PAD_SAMPLES)  # zeros = silence outside the recording

    mel_power = librosa.feature.melspectrogram(
        y=padded,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_SAMPLES,
        win_length=WINDOW_SAMPLES,
        window="hann",
        center=False,
        power=2.0,
        n_mels=N_MELS,
    )
    log_mel = librosa.power_to_db(mel_power, ref=1.0, amin=LOG_MEL_FLOOR, top_db=None)
    coefficients = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC, dct_type=2, norm="ortho", lifter=0)
    rows = coefficients.T.astype(np.float32, copy=False)
    if rows.shape != (MFCC_PER_VIDEO_FRAME * n_video_frames, N_MFCC):
        # Guards the alignment contract against a change in librosa's framing rules.
        raise RuntimeError(f"mfcc: got {rows.shape[0]} rows for {n_video_frames} video frames")
    return np.ascontiguousarray(rows)


@dataclass(frozen=True, eq=False)
class MfccStats:
    """Per-coefficient mean and standard deviation of MFCC over a training set.

    Attributes:
        mean: ``[13]`` float64.
        std: ``[13]`` float64, population std (ddof=0), floored at :data:`STD_FLOOR`.
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        std = np.asarray(self.std, dtype=np.float64)
        if mean.shape != (N_MFCC,) or std.shape != (N_MFCC,):
            raise ValueError(f"MfccStats: mean and std must be [{N_MFCC}], got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("MfccStats: mean must be finite and std finite and positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready ``{"mean": [13 floats], "std": [13 floats]}``."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> MfccStats:
        """Inverse of :meth:`to_dict`."""
        return cls(mean=np.asarray(data["mean"]), std=np.asarray(data["std"]))


def mfcc_stats(chunks: Iterable[np.ndarray]) -> MfccStats:
    """Mean and std per coefficient over many MFCC arrays, without concatenating them.

    Per-chunk moments are merged with Chan et al.'s parallel update (the batched form of
    Welford's algorithm) in float64, which stays accurate when the mean is large relative to
    the spread (coefficient 0 sits far from zero), unlike a raw sum-of-squares.

    Args:
        chunks: iterable of ``[N_i, 13]`` arrays (any float dtype; empty chunks are skipped).

    Returns:
        :class:`MfccStats` equal to ``mean``/``std`` (ddof=0) of the concatenation, with std
        floored at :data:`STD_FLOOR`.

    Raises:
        ValueError: a chunk is not ``[N, 13]`` or non-finite, or there are no rows at all.
    """
    count = 0
    mean = np.zeros(N_MFCC, dtype=np.float64)
    sum_sq_dev = np.zeros(N_MFCC, dtype=np.float64)  # sum of squared deviations from the mean
    for index, chunk in enumerate(chunks):
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[1] != N_MFCC:
            raise ValueError(f"mfcc_stats: chunk {index} must be [N, {N_MFCC}], got {chunk.shape}")
        if chunk.shape[0] == 0:
            continue
        if not np.all(np.isfinite(chunk)):
            raise ValueError(f"mfcc_stats: chunk {index} contains NaN or inf")
        chunk_count = chunk.shape[0]
        chunk_mean = chunk.mean(axis=0)
        chunk_sum_sq_dev = ((chunk - chunk_mean) ** 2).sum(axis=0)
        total = count + chunk_count
        delta = chunk_mean - mean
        mean = mean + delta * (chunk_count / total)
        sum_sq_dev = sum_sq_dev + chunk_sum_sq_dev + delta**2 * (count * chunk_count / total)
        count = total
    if count == 0:
        raise ValueError("mfcc_stats: no MFCC rows given")
    std = np.sqrt(sum_sq_dev / count)
    return MfccStats(mean=mean, std=np.maximum(std, STD_FLOOR))


def normalise_mfcc(features: np.ndarray, stats: MfccStats) -> np.ndarray:
    """Standardise MFCC per coefficient: ``(features - stats.mean) / stats.std``.

    Args:
        features: ``[..., 13]`` MFCC (usually ``[N, 13]``).
        stats: training-set statistics from :func:`mfcc_stats`.

    Returns:
        ``[..., 13]`` float32.
    """
    features = np.asarray(features)
    if features.shape[-1:] != (N_MFCC,):
        raise ValueError(f"normalise_mfcc: last axis must be {N_MFCC}, got shape {features.shape}")
    return ((features.astype(np.float64) - stats.mean) / stats.std).astype(np.float32)
