"""Streaming audio → mouth: audio chunks in, final mouth frames out as soon as they are known.

:class:`MouthStreamer` gives the frames :func:`~newsanchor.audio2mouth.infer.mouth_from_audio`
gives for the whole recording (same MFCC, padding, windows or single pass, VAD and closure),
whatever the chunk sizes. It emits frame ``t`` once every input that can change it has
arrived:

- MFCC row ``j`` (25 ms window centred at ``10j + 5`` ms) is final once sample ``160j + 336``
  has arrived; rows are recomputed from one video frame before the first new row, so that
  every row is computed from exactly the samples the offline MFCC uses.
- single pass (TCN): frame ``t`` needs the rows of its receptive field (``4t + 3 + 126`` for the
  paper-size TCN); it is computed from a segment holding that field, i.e. exactly.
- windows (LSTMs): frames ``30w .. 30w + 29`` come out together when window ``w`` is complete.
- closure: the VAD's bounded look-ahead plus the easing half-width.

:attr:`MouthStreamer.lookahead_ms` is the worst of these delays: how long after a frame's audio
ends the frame is emitted (plus compute time). Paper sizes: 1271 ms for the TCN, 1571 ms for
windows (the first of a window's 30 frames; the last waits 411 ms), 1120 ms for the closure.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..features.audio import (
    EDGE_PAD_SAMPLES,
    HOP_SAMPLES,
    MFCC_PER_VIDEO_FRAME,
    N_FFT,
    MfccStats,
    mfcc,
    normalise_mfcc,
)
from ..timing import SAMPLE_RATE, SAMPLES_PER_FRAME
from .infer import (
    DROP,
    WINDOW,
    as_fully_convolutional,
    evaluating,
    forward_batch,
    is_fully_convolutional,
    output_size,
    pad_rows,
    receptive_field_frames,
    run_segments,
    single_pass_margin,
    window_geometry,
)
from .silence import (
    DEFAULT_VAD,
    VadConfig,
    activity_from_energy,
    closure_weights,
    frame_energy_db,
)

# Row j's window ends at original sample 160j - 176 + 512 (see features.audio's contract).
_ROW_END_OFFSET = N_FFT - EDGE_PAD_SAMPLES  # 336


class MouthStreamer:
    """Incremental :func:`~newsanchor.audio2mouth.infer.mouth_from_audio`.

    ``push(chunk)`` takes 16 kHz mono float32 samples and returns the mouth frames ``[k, K]``
    that became final; ``flush()`` ends the utterance, returns the rest and makes the streamer
    ready for a new one. The concatenated output equals the offline result for the
    concatenated audio (to float rounding), frame count included.

    Args:
        model: audio → mouth generator (eval mode is used while predicting).
        mfcc_stats: the MFCC statistics the model was trained with.
        closed_mouth: ``[K]`` closed pose for closure in silence, or None for none.
        device: where to run the model (default: where it is).
        window, drop, single_pass, pad_row: as in :func:`~newsanchor.audio2mouth.infer.predict_mouth`.
        vad, ease_frames: as in :func:`~newsanchor.audio2mouth.infer.mouth_from_audio`.
        batch_size: windows per forward.
    """

    # How far behind the oldest still-needed item a buffer may grow before it is cut (cutting
    # copies the buffer, so not on every push).
    trim_slack_rows = 4096  # MFCC rows, 41 s
    trim_slack_frames = 1024  # energy frames, 41 s
    trim_slack_samples = 16 * SAMPLE_RATE

    def __init__(self, model: nn.Module, mfcc_stats: MfccStats, closed_mouth: np.ndarray | None = None,
                 device: str | torch.device | None = None, *, window: int = WINDOW, drop: int = DROP,
                 single_pass: bool | None = None, vad: VadConfig = DEFAULT_VAD, ease_frames: int = 3,
                 batch_size: int = 64, pad_row: np.ndarray | None = None):
        self.model, self.stats, self.device, self.batch_size = model, mfcc_stats, device, batch_size
        self.n_outputs = output_size(model)
        self.closed_mouth = None if closed_mouth is None else np.asarray(closed_mouth, np.float32)
        self.vad, self.ease_frames = vad, ease_frames
        self.window, self.drop = window, drop
        self.frames_per_window, self.keep = window_geometry(window, drop)
        self.single_pass = is_fully_convolutional(model) if single_pass is None else single_pass
        self.pad_row = pad_row
        if self.single_pass:
            self.context = receptive_field_frames(model)
            self.margin = single_pass_margin(model, drop)  # pad frames in front, as offline
            _, hi = as_fully_convolutional(model).mfcc_extent
            self.right_rows = hi  # frame t needs rows up to 4t + hi
        else:
            self.margin = drop
            self.right_rows = window - MFCC_PER_VIDEO_FRAME * drop - 1  # relative to the window's first kept frame
        self.reset()

    def reset(self) -> None:
        """Forget the current utterance."""
        self._audio = np.zeros(0, np.float32)  # samples from global sample self._audio_start on
        self._audio_start = 0
        self._n_samples = 0
        self._rows = np.zeros((0, 13), np.float32)  # normalised MFCC from global row self._rows_start
        self._rows_start = 0
        self._energy = np.zeros(0)  # frame energies from global frame self._energy_start
        self._energy_start = 0
        self._mouth = np.zeros((0, self.n_outputs), np.float32)  # computed, not emitted, from frame self._emitted
        self._mouth_done = 0  # frames whose mouth is computed
        self._emitted = 0

    # ------------------------------------------------------------------ delays
    @property
    def lookahead_ms(self) -> float:
        """Worst-case time from the end of a frame's audio to its emission, in ms (compute time
        not included): the larger of the model's need (receptive field or window completion,
        plus the MFCC window) and, with closure, the VAD's look-ahead plus easing."""
        if self.single_pass:
            last_row_of_frame = MFCC_PER_VIDEO_FRAME - 1
            mouth = HOP_SAMPLES * (self.right_rows - last_row_of_frame) + _ROW_END_OFFSET - HOP_SAMPLES
        else:  # the first kept frame of a window waits for the window's last row
            mouth = HOP_SAMPLES * self.right_rows + _ROW_END_OFFSET - SAMPLES_PER_FRAME
        closure = 0 if self.closed_mouth is None else SAMPLES_PER_FRAME * (self.vad.lookahead_frames + self.ease_frames)
        return 1000.0 * max(mouth, closure) / SAMPLE_RATE

    # ------------------------------------------------------------------ public
    def push(self, wav_chunk: np.ndarray) -> np.ndarray:
        """Add samples; return the mouth frames ``[k, K]`` float32 that became final."""
        chunk = np.asarray(wav_chunk, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, chunk])
        self._n_samples += len(chunk)
        return self._advance(final=False)

    def flush(self) -> np.ndarray:
        """End of the utterance: the remaining frames ``[k', K]``; then start afresh."""
        out = self._advance(final=True)
        self.reset()
        return out

    # ------------------------------------------------------------------ steps
    def _advance(self, final: bool) -> np.ndarray:
        n_frames = math.ceil(self._n_samples / SAMPLES_PER_FRAME) if final else None
        self._update_mfcc(n_frames)
        self._update_energy(n_frames)
        self._update_mouth(n_frames)
        out = self._emit(n_frames)
        self._trim()
        return out

    def _update_mfcc(self, n_frames: int | None) -> None:
        """Compute the MFCC rows that became final (all rows at the end of the utterance)."""
        done = self._rows_start + len(self._rows)
        if n_frames is None:
            available = self._n_samples - _ROW_END_OFFSET  # row j final iff 160j <= available
            target = available // HOP_SAMPLES + 1 if available >= 0 else 0
        else:
            target = MFCC_PER_VIDEO_FRAME * n_frames
        if target <= done:
            return
        # Start one video frame before the first new row: rows >= 2 of a segment see only its
        # own samples, so the new rows are computed from the same samples as offline.
        first_frame = max(0, done // MFCC_PER_VIDEO_FRAME - 1)
        start = first_frame * SAMPLES_PER_FRAME
        segment = self._audio[start - self._audio_start:]
        # Cover every sample that has arrived: a shorter segment would put zeros inside the
        # windows of the last rows (at the end of the utterance the two agree).
        n_segment_frames = max(math.ceil(target / MFCC_PER_VIDEO_FRAME), math.ceil(self._n_samples / SAMPLES_PER_FRAME)) - first_frame
        rows = mfcc(segment, n_video_frames=n_segment_frames)
        offset = MFCC_PER_VIDEO_FRAME * first_frame
        new = normalise_mfcc(rows[done - offset:target - offset], self.stats)
        self._rows = np.concatenate([self._rows, new])

    def _update_energy(self, n_frames: int | None) -> None:
        done = self._energy_start + len(self._energy)
        target = n_frames if n_frames is not None else self._n_samples // SAMPLES_PER_FRAME
        if target > done:
            samples = self._audio[done * SAMPLES_PER_FRAME - self._audio_start:]
            self._energy = np.concatenate([self._energy, frame_energy_db(samples, target - done, self.vad.low_cut_hz)])

    def _padded_rows(self, first_row: int, stop_row: int, n_frames: int | None) -> np.ndarray:
        """Padded-coordinate MFCC rows ``first_row .. stop_row``: silence before the audio (and,
        at the end of an utterance, after it), computed rows in between."""
        front = MFCC_PER_VIDEO_FRAME * self.margin
        real_stop = self._rows_start + len(self._rows)
        if n_frames is not None:
            real_stop = MFCC_PER_VIDEO_FRAME * n_frames
        parts = []
        if first_row < front:
            parts.append(pad_rows(self.pad_row, min(front, stop_row) - first_row))
        lo, hi = max(first_row, front) - front, min(stop_row - front, real_stop)
        if hi > lo:
            parts.append(self._rows[lo - self._rows_start:hi - self._rows_start])
        tail = (stop_row - first_row) - sum(len(part) for part in parts)
        if tail > 0:  # silence after the end, or filler beyond what has arrived (never read)
            parts.append(pad_rows(self.pad_row, tail))
        return np.concatenate(parts)

    def _update_mouth(self, n_frames: int | None) -> None:
        real_rows = self._rows_start + len(self._rows)
        if self.single_pass:
            ready = n_frames if n_frames is not None else (real_rows - self.right_rows - 1) // MFCC_PER_VIDEO_FRAME + 1
        elif n_frames is not None:
            ready = n_frames
        else:  # whole windows: window w supplies frames keep*w .. keep*w + keep
            complete = (real_rows - self.right_rows - 1) // (MFCC_PER_VIDEO_FRAME * self.keep) + 1
            ready = self.keep * max(0, complete)
        ready = min(ready, n_frames) if n_frames is not None else ready
        if ready <= self._mouth_done:
            return
        first, stop = self._mouth_done, ready
        with evaluating(self.model, self.device) as (dev, dtype):
            if self.single_pass:
                lo = max(0, first + self.margin - self.context)
                end = stop + self.margin + self.context
                if n_frames is not None:
                    end = min(end, n_frames + 2 * self.margin)  # the offline pass ends there
                rows = self._padded_rows(MFCC_PER_VIDEO_FRAME * lo, MFCC_PER_VIDEO_FRAME * end, n_frames)
                new = run_segments(self.model, rows, first + self.margin - lo, stop + self.margin - lo,
                                   self.context, dev, dtype)
            else:
                step = MFCC_PER_VIDEO_FRAME * self.keep
                first_window, n_windows = first // self.keep, math.ceil((stop - first) / self.keep)
                rows = self._padded_rows(step * first_window, step * (first_window + n_windows - 1) + self.window, n_frames)
                windows = np.lib.stride_tricks.sliding_window_view(rows, (self.window, rows.shape[1]))[::step, 0]
                new = np.concatenate([forward_batch(self.model, windows[i:i + self.batch_size], dev, dtype)
                                      for i in range(0, len(windows), self.batch_size)])[:, self.drop:self.drop + self.keep]
                new = new.reshape(-1, new.shape[-1])[:stop - first]
        self._mouth = np.concatenate([self._mouth, new])
        self._mouth_done = stop

    def _emit(self, n_frames: int | None) -> np.ndarray:
        stop = self._mouth_done
        if self.closed_mouth is not None and n_frames is None:
            n_energy = self._energy_start + len(self._energy)
            stop = min(stop, n_energy - self.vad.lookahead_frames - self.ease_frames)
        if stop <= self._emitted:
            return np.zeros((0, self.n_outputs), np.float32)
        mouth = self._mouth[:stop - self._emitted]
        if self.closed_mouth is not None:
            # Activity and easing of a slice equal the offline ones away from its ends: start it
            # far enough back; it ends at the last energy frame (the clip's end when final).
            lo = max(self._energy_start, self._emitted - self.vad.history_frames - self.ease_frames)
            activity = activity_from_energy(self._energy[lo - self._energy_start:], self.vad)
            weights = closure_weights(activity, self.ease_frames)[self._emitted - lo:stop - lo]
            weights = weights.astype(np.float32)[:, None]
            mouth = self.closed_mouth + weights * (mouth - self.closed_mouth)
        self._mouth = self._mouth[stop - self._emitted:]
        self._emitted = stop
        return np.ascontiguousarray(mouth, dtype=np.float32)

    def _trim(self) -> None:
        """Drop audio, MFCC rows and energies no future frame can need."""
        next_frame = self._emitted
        keep_rows_from = max(0, MFCC_PER_VIDEO_FRAME * (self._mouth_done - self.margin - 2 * self.frames_per_window
                                                       - (self.context if self.single_pass else 0)))
        if keep_rows_from - self._rows_start > self.trim_slack_rows:
            self._rows = self._rows[keep_rows_from - self._rows_start:]
            self._rows_start = keep_rows_from
        keep_energy_from = max(0, next_frame - self.vad.history_frames - self.ease_frames - 1)
        if keep_energy_from - self._energy_start > self.trim_slack_frames:
            self._energy = self._energy[keep_energy_from - self._energy_start:]
            self._energy_start = keep_energy_from
        # Samples: from one video frame before the oldest frame MFCC or energy may still need.
        rows_done = self._rows_start + len(self._rows)
        keep_samples_from = SAMPLES_PER_FRAME * max(0, min(rows_done // MFCC_PER_VIDEO_FRAME - 1,
                                                                 self._energy_start + len(self._energy)))
        if keep_samples_from - self._audio_start > self.trim_slack_samples:
            self._audio = self._audio[keep_samples_from - self._audio_start:]
            self._audio_start = keep_samples_from
