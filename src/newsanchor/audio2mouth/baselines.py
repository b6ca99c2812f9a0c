"""Recurrent baselines of paper §4.3.2: time-delayed LSTM and bidirectional LSTM.

Both read the same input as the TCN, normalised MFCC ``[B, 4T, 13]`` at 100 Hz, and write PCA
mouth ``[B, T, 10]`` at 25 fps. The four MFCC rows of each video frame are stacked into one
52-D step (``[B, T, 52]``: rows ``4t .. 4t+3`` are step ``t``), so the recurrence runs at the
video rate, as in Suwajanakorn et al. and ObamaNet (Kumar et al., the paper's [16]).

Time-delayed LSTM (Suwajanakorn's time delay): the prediction for frame ``t`` is read ``D``
steps later, at step ``t + D``, so it has seen ``D`` video frames (``4D`` MFCC rows) of future
audio. The delay is given in MFCC rows (``delay_audio_frames``, 20 = 200 ms as in ObamaNet) and
rounded *up* to whole video steps, ``D = ceil(d / 4)``: never less look-ahead than asked for.
The input's end is padded with ``D`` zero steps so that every frame, the last included, gets
an output.

Sizes: ObamaNet uses one layer of 60 units. Here the default is two layers of 256 (about 0.84 M
parameters against the TCN's 1.8 M) so that the baseline is not starved of capacity and the
comparison in Table 1 measures the architecture rather than its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .tcn import MFCC_PER_VIDEO_FRAME, check_mfcc_input


@dataclass(frozen=True)
class LSTMConfig:
    """Sizes of the LSTM baselines.

    Attributes:
        n_mfcc: MFCC coefficients per 10 ms row (13).
        n_mouth: PCA mouth coefficients per frame (10).
        hidden: LSTM units per layer and direction.
        layers: stacked LSTM layers.
        delay_audio_frames: look-ahead ``d`` in MFCC rows (10 ms); rounded up to whole 40 ms
            steps. Must be 0 when ``bidirectional`` (the backward pass already sees the future).
        bidirectional: BiLSTM (paper's "Bi-LSTM") instead of the time-delayed LSTM.
        dropout: between stacked layers while training (PyTorch's LSTM dropout).
    """

    n_mfcc: int = 13
    n_mouth: int = 10
    hidden: int = 256
    layers: int = 2
    delay_audio_frames: int = 20
    bidirectional: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if min(self.n_mfcc, self.n_mouth, self.hidden, self.layers) < 1:
            raise ValueError("n_mfcc, n_mouth, hidden and layers must be positive")
        if self.delay_audio_frames < 0:
            raise ValueError(f"delay_audio_frames must be >= 0, not {self.delay_audio_frames}")
        if self.bidirectional and self.delay_audio_frames:
            raise ValueError("a bidirectional LSTM takes no time delay (set delay_audio_frames=0)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def delay_video_frames(self) -> int:
        """``D = ceil(d / 4)``: the delay in 25 fps steps."""
        return math.ceil(self.delay_audio_frames / MFCC_PER_VIDEO_FRAME)


class LSTMGenerator(nn.Module):
    """Time-delayed LSTM or BiLSTM: ``mfcc [B, 4T, n_mfcc] -> mouth [B, T, n_mouth]``.

    State starts at zero for every call: a sequence is processed as one utterance, which is why
    :func:`~newsanchor.audio2mouth.infer.predict_mouth` feeds it overlapping 200-row windows
    (its training length) rather than one long pass.
    """

    fully_convolutional = False  # recurrent: long audio goes through overlapping windows

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=MFCC_PER_VIDEO_FRAME * config.n_mfcc,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        self.out = nn.Linear(config.hidden * (2 if config.bidirectional else 1), config.n_mouth)

    @property
    def lookahead_mfcc_frames(self) -> int | None:
        """Future MFCC rows beyond a frame's own four that its output depends on; ``None`` for
        the BiLSTM (the whole rest of the sequence)."""
        if self.config.bidirectional:
            return None
        return MFCC_PER_VIDEO_FRAME * self.config.delay_video_frames

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        check_mfcc_input(mfcc, self.config.n_mfcc, "LSTMGenerator")
        batch, rows, _ = mfcc.shape
        steps = mfcc.reshape(batch, rows // MFCC_PER_VIDEO_FRAME, -1)  # [B, T, 52]: rows 4t..4t+3
        delay = self.config.delay_video_frames
        if delay:
            steps = nn.functional.pad(steps, (0, 0, 0, delay))  # D zero steps after the end
        hidden, _ = self.lstm(steps)
        return self.out(hidden[:, delay:])  # frame t is read at step t + D: [B, T, n_mouth]
