"""Audio → mouth inference for any length of audio (paper §3.1.3, §4.3.4): one mouth frame per 40 ms.

Two ways to run a model over ``T`` frames, with the same padding at the ends:

- **windows** (the paper's scheme; any model): windows of 200 MFCC rows (50 frames) stepping by
  30 frames; of each window's 50 outputs the first and last ``drop = 10`` are thrown away (they
  see the TCN's zero padding, Figure 5) and the central 30 are kept, so consecutive windows
  tile the output without gaps or overlaps.
- **single pass** (fully convolutional models, the TCN): one forward over the whole padded
  sequence, cut into segments only when very long. A frame then sees its whole receptive field
  of real audio, there are no seams, and the work is not repeated on overlaps (5/3 of it with
  the paper's windows) — the fast path. Where the receptive field fits in ``drop`` frames it
  gives exactly the windowed result; for the paper-size TCN (±32 frames > 10) it differs from
  windows in that no kept frame ever sees zero padding, which is what the overlaps approximate.

Padding at the ends: ``pad_row`` fills ``drop`` frames (windows) or ``max(drop, receptive
field)`` frames (single pass) at both ends, so that the first and last frames get the context of
interior frames. The default is zeros, the mean normalised frame. The MFCC of digital silence
(:func:`silence_mfcc_row`) looks like the more honest value, but it lies far outside what models
trained on real recordings have seen (c0 at -2.6 std where GRID's quietest 1 % of rows sit
above -1.34, their silences being room noise): on the GRID s1 test split, silence padding raised
the MSE of the TCN by 3 % and of the LSTMs by 50-80 %, and repeating the edge rows by 0.3-5 %,
against zeros. Pauses are better served by closing the mouth (``silence.py``) than by the pad.

Models tell inference what they are: ``fully_convolutional`` and, for TCNs,
``receptive_field_video_frames``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn

from ..features.audio import (
    MFCC_PER_VIDEO_FRAME,
    N_MFCC,
    MfccStats,
    mfcc,
    normalise_mfcc,
)
from .silence import DEFAULT_VAD, VadConfig, close_mouth_in_silence, speech_activity

WINDOW = 200  # MFCC rows per window (paper: a ∈ R^{200×13})
DROP = 10  # output frames dropped at each end of a window (paper §4.3.4)
MAX_FRAMES_PER_PASS = 15000  # 10 min: longer single passes are cut into exact segments


def silence_mfcc_row(stats: MfccStats) -> np.ndarray:
    """Normalised MFCC ``[13]`` float32 of digital silence (a ``pad_row`` for models trained on
    clean audio, e.g. TTS; see the module docstring for why it is not the default)."""
    rows = mfcc(np.zeros(3 * 640, np.float32), n_video_frames=3)
    return normalise_mfcc(rows[len(rows) // 2], stats)


class FullyConvolutional(Protocol):
    """What single-pass inference reads of a fully convolutional model (the TCN generator)."""

    @property
    def receptive_field_video_frames(self) -> int: ...

    @property
    def mfcc_extent(self) -> tuple[int, int]: ...

    def forward_sequence(self, mfcc: torch.Tensor) -> torch.Tensor: ...


def as_fully_convolutional(model: nn.Module) -> FullyConvolutional:
    """``model`` as a :class:`FullyConvolutional` one, for the type checker only (nn.Module types
    the attributes of its subclasses as Tensor | Module)."""
    return cast(FullyConvolutional, model)


def is_fully_convolutional(model: nn.Module) -> bool:
    return bool(getattr(model, "fully_convolutional", False))


def receptive_field_frames(model: nn.Module) -> int:
    """One-sided receptive field of a fully convolutional model, in 25 fps frames."""
    return int(as_fully_convolutional(model).receptive_field_video_frames)


def window_geometry(window: int, drop: int) -> tuple[int, int]:
    """``(frames per window, frames kept per window)``; ValueError if they make no sense."""
    if window <= 0 or window % MFCC_PER_VIDEO_FRAME:
        raise ValueError(f"window must be a positive multiple of {MFCC_PER_VIDEO_FRAME} MFCC rows, not {window}")
    frames = window // MFCC_PER_VIDEO_FRAME
    if drop < 0 or frames - 2 * drop <= 0:
        raise ValueError(f"drop={drop} leaves no frame of a {frames}-frame window")
    return frames, frames - 2 * drop


def _check_mfcc(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != N_MFCC or features.shape[0] % MFCC_PER_VIDEO_FRAME:
        raise ValueError(f"predict_mouth: MFCC must be [4T, {N_MFCC}], got {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError("predict_mouth: MFCC contain NaN or inf")
    return features


def pad_rows(pad_row: np.ndarray | None, n_rows: int) -> np.ndarray:
    """``[n_rows, 13]`` copies of ``pad_row`` (zeros if None), as a read-only broadcast view."""
    row = np.zeros(N_MFCC, np.float32) if pad_row is None else np.asarray(pad_row, np.float32)
    if row.shape != (N_MFCC,):
        raise ValueError(f"pad_row must be [{N_MFCC}], got {row.shape}")
    return np.broadcast_to(row, (n_rows, N_MFCC))


@contextmanager
def evaluating(model: nn.Module, device: str | torch.device | None) -> Iterator[tuple[torch.device, torch.dtype]]:
    """Eval mode (no dropout) and inference mode for the duration; the training flag is restored."""
    if device is not None:
        model.to(device)
    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield parameter.device, parameter.dtype
    finally:
        model.train(was_training)


def forward_batch(model: nn.Module, batch: np.ndarray, device: torch.device, dtype: torch.dtype) -> np.ndarray:
    """``[B, 4N, 13]`` numpy → ``[B, N, K]`` float32 numpy."""
    x = torch.as_tensor(np.array(batch, dtype=np.float32), device=device).to(dtype)  # copy: views may be read-only
    if len(x) == 1 and device.type == "cpu" and hasattr(model, "forward_sequence") and not torch.is_autocast_enabled("cpu"):
        return as_fully_convolutional(model).forward_sequence(x[0])[None].float().numpy()  # the TCN's faster CPU path, same result
    return model(x).float().cpu().numpy()


def predict_mouth_windowed(model: nn.Module, mfcc_normalised: np.ndarray, *, window: int = WINDOW, drop: int = DROP,
                           pad_row: np.ndarray | None = None, device: str | torch.device | None = None,
                           batch_size: int = 64) -> np.ndarray:
    """The paper's overlapping windows (any model): ``[4T, 13] -> [T, K]`` float32.

    The sequence is padded with ``4 * drop`` rows of ``pad_row`` in front and enough at the end
    for whole windows; window ``w`` reads padded rows ``4 * keep * w .. + window`` and supplies
    frames ``keep * w .. keep * w + keep`` (``keep = window / 4 - 2 * drop``).
    """
    features = _check_mfcc(mfcc_normalised)
    n_frames = features.shape[0] // MFCC_PER_VIDEO_FRAME
    _, keep = window_geometry(window, drop)
    with evaluating(model, device) as (dev, dtype):
        if n_frames == 0:
            return np.zeros((0, output_size(model)), np.float32)
        n_windows = math.ceil(n_frames / keep)
        padded_frames = n_windows * keep + 2 * drop
        back = MFCC_PER_VIDEO_FRAME * (padded_frames - drop - n_frames)
        padded = np.concatenate([pad_rows(pad_row, MFCC_PER_VIDEO_FRAME * drop), features, pad_rows(pad_row, back)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, (window, N_MFCC))[::MFCC_PER_VIDEO_FRAME * keep, 0]
        kept = [forward_batch(model, windows[i:i + batch_size], dev, dtype)[:, drop:drop + keep]
                for i in range(0, n_windows, batch_size)]
    out = np.concatenate(kept)
    return np.ascontiguousarray(out.reshape(-1, out.shape[-1])[:n_frames])


def output_size(model: nn.Module) -> int:
    """``K``, the mouth coefficients per frame a model writes (its ``config.n_mouth``)."""
    config: Any = model.config  # nn.Module types it Tensor | Module: it is the model's config dataclass
    return int(config.n_mouth)


def single_pass_margin(model: nn.Module, drop: int = DROP) -> int:
    """Frames of padding at each end of a single pass: ``max(drop, receptive field)``."""
    return max(drop, receptive_field_frames(model))


def run_segments(model: nn.Module, padded: np.ndarray, first: int, stop: int, context: int,
                 device: torch.device, dtype: torch.dtype, max_frames: int = MAX_FRAMES_PER_PASS) -> np.ndarray:
    """Outputs for padded frames ``first .. stop`` of a fully convolutional model, exactly as one
    pass over all of ``padded`` ([4N, 13]) gives them: each piece is run with ``context`` frames
    of input on either side (the receptive field), clipped at the ends of ``padded``.

    Returns ``[stop - first, K]`` float32.
    """
    total = padded.shape[0] // MFCC_PER_VIDEO_FRAME
    pieces = []
    for start in range(first, stop, max_frames):
        end = min(stop, start + max_frames)
        lo, hi = max(0, start - context), min(total, end + context)
        out = forward_batch(model, padded[None, MFCC_PER_VIDEO_FRAME * lo:MFCC_PER_VIDEO_FRAME * hi], device, dtype)[0]
        pieces.append(out[start - lo:end - lo])
    return np.concatenate(pieces)


def predict_mouth_single_pass(model: nn.Module, mfcc_normalised: np.ndarray, *, drop: int = DROP,
                              pad_row: np.ndarray | None = None, device: str | torch.device | None = None,
                              max_frames: int = MAX_FRAMES_PER_PASS) -> np.ndarray:
    """One forward over the whole padded sequence (fully convolutional models): ``[4T, 13] -> [T, K]``.

    Pads ``max(drop, receptive field)`` frames of ``pad_row`` at both ends. Sequences longer than
    ``max_frames`` are cut into segments that overlap by the receptive field: same result, bounded
    memory.
    """
    if not is_fully_convolutional(model):
        raise ValueError(f"predict_mouth_single_pass: {type(model).__name__} is not fully convolutional; use windows")
    features = _check_mfcc(mfcc_normalised)
    n_frames = features.shape[0] // MFCC_PER_VIDEO_FRAME
    margin = single_pass_margin(model, drop)
    pad = pad_rows(pad_row, MFCC_PER_VIDEO_FRAME * margin)
    padded = np.concatenate([pad, features, pad])
    with evaluating(model, device) as (dev, dtype):
        if n_frames == 0:
            return np.zeros((0, output_size(model)), np.float32)
        return run_segments(model, padded, margin, margin + n_frames, receptive_field_frames(model), dev, dtype, max_frames)


def predict_mouth(model: nn.Module, mfcc_normalised: np.ndarray, *, window: int = WINDOW, drop: int = DROP,
                  pad_row: np.ndarray | None = None, device: str | torch.device | None = None,
                  batch_size: int = 64, single_pass: bool | None = None) -> np.ndarray:
    """Mouth features for normalised MFCC of any length: exactly one frame per 4 MFCC rows.

    Args:
        model: an audio → mouth generator (``[B, 4N, 13] -> [B, N, K]``); run in eval mode
            (its training flag is restored afterwards) under ``torch.inference_mode``.
        mfcc_normalised: ``[4T, 13]`` normalised MFCC (``T`` may be 0 or shorter than a window).
        window, drop: the windowing of §4.3.4 (200 rows, 10 frames dropped at each end).
        pad_row: ``[13]`` normalised MFCC row to pad both ends with; None: zeros, the mean
            frame (measured best, see the module docstring).
        device: where to run (the model is moved there); default: where the model is.
        batch_size: windows per forward.
        single_pass: one pass instead of windows; default: when the model is fully
            convolutional (see the module docstring for how the two relate).

    Returns:
        ``[T, K]`` float32.
    """
    if single_pass is None:
        single_pass = is_fully_convolutional(model)
    if single_pass:
        window_geometry(window, drop)  # the same argument checks either way
        return predict_mouth_single_pass(model, mfcc_normalised, drop=drop, pad_row=pad_row, device=device)
    return predict_mouth_windowed(model, mfcc_normalised, window=window, drop=drop, pad_row=pad_row,
                                  device=device, batch_size=batch_size)


def mouth_from_audio(model: nn.Module, wav16k: np.ndarray, stats: MfccStats, *, closed_mouth: np.ndarray | None = None,
                     vad: VadConfig = DEFAULT_VAD, ease_frames: int = 3, **predict_options) -> np.ndarray:
    """Waveform → mouth trajectory, offline: MFCC, normalisation, :func:`predict_mouth`, and (with
    ``closed_mouth``) closure in pauses. What :class:`~newsanchor.audio2mouth.stream.MouthStreamer`
    streams.

    Args:
        wav16k: ``[S]`` mono 16 kHz float32; ``T = ceil(S / 640)`` frames (the tail is padded
            with silence to a whole frame).
        stats: the MFCC statistics the model was trained with.
        closed_mouth: ``[K]`` the speaker's closed pose, or None for no closure.
        predict_options: ``window``, ``drop``, ``pad_row``, ``device``, ``batch_size``, ``single_pass``.

    Returns:
        ``[T, K]`` float32.
    """
    wav16k = np.asarray(wav16k, dtype=np.float32)
    n_frames = math.ceil(len(wav16k) / (MFCC_PER_VIDEO_FRAME * 160))
    features = normalise_mfcc(mfcc(wav16k, n_video_frames=n_frames), stats)
    mouth = predict_mouth(model, features, **predict_options)
    if closed_mouth is None:
        return mouth
    return close_mouth_in_silence(mouth, speech_activity(wav16k, n_frames, vad), closed_mouth, ease_frames)
