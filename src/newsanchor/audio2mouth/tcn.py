"""Non-causal temporal convolutional networks for audio → mouth (paper §3.1.1, Figure 2).

- :class:`TCNBlock`: the TCN block of keras-tcn (the paper's reference [26]) written anew: levels of
  two dilated convolutions (kernel 3, 256 filters, dilations 1, 2, 4, 8), each level with a
  residual connection, summed skip connections; non-causal "same" zero padding, so the output
  is as long as the input and sees past and future alike.
- :class:`TCNGenerator`: MFCC ``[B, 4T, 13]`` (100 Hz) → PCA mouth ``[B, T, 10]`` (25 fps): four
  Conv1d layers (two with stride 2: 100 → 50 → 25 Hz), the TCN block, two per-frame fully
  connected layers. Fully convolutional: any ``4T`` works, and one pass over a long sequence
  equals windowed passes wherever a window holds the whole receptive field.
- :class:`TCNDiscriminator`: a temporal PatchGAN over (MFCC, mouth) pairs → per-frame logits
  ``[B, T]``. Training only (the trainer imports it from here; inference never builds it).

Tensors are time-major at the boundaries (``[B, time, features]``, as the datasets store them)
and channel-major inside (``[B, C, time]``, what Conv1d wants).

Stride-2 layers use kernel 4 with padding 1. With that choice, 25 fps frame ``t`` is centred on
its own MFCC rows ``4t .. 4t+3`` (centre ``4t + 1.5``) and its receptive field is symmetric.
A kernel-3 stride-2 layer would shift every output half an input frame into the past.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

MFCC_PER_VIDEO_FRAME = 4


@dataclass(frozen=True)
class TCNConfig:
    """Sizes of the TCN generator and discriminator (defaults: the paper's §3.1.1).

    Attributes:
        n_mfcc: MFCC coefficients per 10 ms row (13).
        n_mouth: PCA mouth coefficients per 40 ms frame (10).
        filters: channels of every TCN block (256).
        kernel_size: TCN kernel, odd so that "same" padding is symmetric (3).
        dilations: one TCN level per dilation (1, 2, 4, 8).
        dropout: channel dropout after each dilated convolution while training (keras-tcn's
            SpatialDropout1D); 0 disables.
        use_skip_connections: the block's output is the sum of every level's convolution output
            (keras-tcn's default) instead of the last level's residual output.
        frontend_channels: output channels of the generator's 4 Conv1d layers
            (100 Hz k3, stride-2 k4, 50 Hz k3, stride-2 k4). The paper gives no sizes; they
            widen as the rate drops so that the 100 Hz layers stay cheap.
        fc_hidden: width of the first of the two per-frame fully connected layers.
        disc_audio_channels: output channels of the discriminator's two stride-2 MFCC convs.
    """

    n_mfcc: int = 13
    n_mouth: int = 10
    filters: int = 256
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dropout: float = 0.0
    use_skip_connections: bool = True
    frontend_channels: tuple[int, int, int, int] = (64, 128, 128, 256)
    fc_hidden: int = 128
    disc_audio_channels: tuple[int, int] = (64, 128)

    def __post_init__(self) -> None:
        # JSON gives lists back; tuples keep the config hashable and frozen.
        for name in ("dilations", "frontend_channels", "disc_audio_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive (symmetric 'same' padding), not {self.kernel_size}")
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"dilations must be positive integers, not {self.dilations}")
        if len(self.frontend_channels) != 4 or len(self.disc_audio_channels) != 2:
            raise ValueError("frontend_channels needs 4 sizes and disc_audio_channels 2")
        sizes = (self.n_mfcc, self.n_mouth, self.filters, self.fc_hidden, *self.frontend_channels, *self.disc_audio_channels)
        if min(sizes) < 1:
            raise ValueError("all sizes must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")


def conv_chain_extent(convs: Sequence[nn.Conv1d]) -> tuple[int, int, int]:
    """Which inputs a chain of Conv1d layers (in forward order) reads for one output.

    Output ``i`` of the chain depends on inputs ``stride * i + lo .. stride * i + hi``.

    Returns:
        ``(lo, hi, stride)``: offsets of the first and last input read, and the total stride.
    """
    lo = hi = 0
    for conv in reversed(convs):
        (kernel,), (stride,), (dilation,) = conv.kernel_size, conv.stride, conv.dilation
        padding = conv.padding[0] if isinstance(conv.padding, tuple) else 0
        lo = stride * lo - padding
        hi = stride * hi - padding + dilation * (kernel - 1)
    return lo, hi, math.prod(conv.stride[0] for conv in convs)


class _TCNLevel(nn.Module):
    """Two dilated convolutions with ReLU (+ dropout), and a residual connection.

    ``x [B, C_in, N] -> (residual output [B, F, N], skip output [B, F, N])``.
    """

    def __init__(self, in_channels: int, filters: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2  # "same", symmetric: non-causal
        self.conv1 = nn.Conv1d(in_channels, filters, kernel_size, padding=padding, dilation=dilation)
        self.conv2 = nn.Conv1d(filters, filters, kernel_size, padding=padding, dilation=dilation)
        # Dropout1d zeroes whole channels (keras' SpatialDropout1D): neighbouring time steps are
        # too correlated for element dropout to regularise anything.
        self.dropout = nn.Dropout1d(dropout) if dropout > 0 else nn.Identity()
        self.residual = nn.Conv1d(in_channels, filters, 1) if in_channels != filters else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(torch.relu(self.conv1(x)))
        h = self.dropout(torch.relu(self.conv2(h)))
        return torch.relu(self.residual(x) + h), h


class TCNBlock(nn.Module):
    """Non-causal dilated residual TCN block (keras-tcn design, 'same' zero padding).

    ``x [B, C_in, N] -> [B, filters, N]`` (channel-major, length preserved).
    """

    def __init__(self, in_channels: int, filters: int = 256, kernel_size: int = 3,
                 dilations: tuple[int, ...] = (1, 2, 4, 8), dropout: float = 0.0,
                 use_skip_connections: bool = True):
        super().__init__()
        self.use_skip_connections = use_skip_connections
        channels = [in_channels] + [filters] * len(dilations)
        self.levels = nn.ModuleList(
            _TCNLevel(channels[i], filters, kernel_size, d, dropout) for i, d in enumerate(dilations)
        )

    @property
    def longest_conv_path(self) -> list[nn.Conv1d]:
        """The convolutions on the longest input→output path (the 1×1 residuals are shorter)."""
        return [conv for level in self.typed_levels for conv in (level.conv1, level.conv2)]

    @property
    def typed_levels(self) -> list[_TCNLevel]:
        """``levels`` as what they are (torch types a ModuleList's items as plain Modules)."""
        return cast("list[_TCNLevel]", list(self.levels))

    @property
    def context(self) -> int:
        """One-sided receptive field in input steps: ``sum(2 * d * (k - 1) / 2)`` over levels."""
        lo, _, _ = conv_chain_extent(self.longest_conv_path)
        return -lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = None
        for level in self.levels:
            x, skip = level(x)
            skips = skip if skips is None else skips + skip
        if not self.use_skip_connections:
            return x
        if skips is None:  # TCNConfig refuses empty dilations
            raise ValueError("TCNBlock: no levels (dilations is empty)")
        return skips


# ---------------------------------------------------------------- time-major inference path
# One sequence on the CPU, time-major [N, C]: each convolution tap is one GEMM accumulated in
# place into the shifted output rows. MKL runs these GEMMs at ~160 GFLOP/s a core; oneDNN's
# conv1d is a little slower on the TCN's convolutions and ~30 % slower on the stride-2 ones.
# For 60 s of audio on one core of the 2-core dev machine: 46-49 ms against 51-57 ms.

def _same_conv_time_major(h: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """A stride-1 zero-padded Conv1d on ``h [N, C_in]`` → ``[N, C_out]``, equal to ``conv``."""
    if isinstance(conv.padding, str):  # this model's convolutions have numeric padding
        raise ValueError(f"time-major convolution: numeric padding needed, not {conv.padding!r}")
    taps = conv.weight.permute(2, 1, 0).contiguous()  # [k, in, out]: each tap a unit-stride GEMM operand
    (dilation,), padding, n = conv.dilation, conv.padding[0], h.shape[0]
    offsets = [j * dilation - padding for j in range(conv.kernel_size[0])]
    out = torch.addmm(_bias(conv), h, taps[offsets.index(0)])
    for tap, offset in zip(taps, offsets):
        if offset == 0 or abs(offset) >= n:  # centre done; a tap wholly in the padding adds nothing
            continue
        if offset < 0:  # out[t] += W x[t + offset] for t >= -offset
            out[-offset:].addmm_(h[:n + offset], tap)
        else:
            out[:n - offset].addmm_(h[offset:], tap)
    return out


def _bias(conv: nn.Conv1d) -> torch.Tensor:
    """The bias of a convolution (typed Optional: None only with bias=False, which no layer here uses)."""
    if conv.bias is None:
        raise ValueError("time-major convolution: the layer has no bias")
    return conv.bias


def _stride2_conv_time_major(h: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """The kernel-4, stride-2, padding-1 Conv1d on ``h [N, C_in]`` (N even) → ``[N/2, C_out]``:
    ``out[i] = b + W0 x[2i-1] + W1 x[2i] + W2 x[2i+1] + W3 x[2i+2]``."""
    assert conv.kernel_size == (4,) and conv.stride == (2,) and conv.padding == (1,) and conv.dilation == (1,)
    n, channels = h.shape
    taps = conv.weight.permute(2, 1, 0).contiguous()  # [4, in, out]
    pairs = h.reshape(n // 2, 2 * channels)  # row i = [x[2i], x[2i+1]]
    out = torch.addmm(_bias(conv), pairs, taps[1:3].reshape(2 * channels, -1))
    if n > 2:
        out[1:].addmm_(h[1:-2:2], taps[0])  # x[2i-1], i >= 1
        out[:-1].addmm_(h[2::2], taps[3])  # x[2i+2], i <= N/2 - 2
    return out


def check_mfcc_input(mfcc: torch.Tensor, n_mfcc: int, who: str) -> None:
    """Raise ValueError unless ``mfcc`` is ``[B, 4T, n_mfcc]``."""
    if mfcc.ndim != 3 or mfcc.shape[-1] != n_mfcc:
        raise ValueError(f"{who}: MFCC must be [B, 4T, {n_mfcc}], got {tuple(mfcc.shape)}")
    if mfcc.shape[1] % MFCC_PER_VIDEO_FRAME:
        raise ValueError(f"{who}: MFCC length {mfcc.shape[1]} is not a multiple of {MFCC_PER_VIDEO_FRAME}")


class TCNGenerator(nn.Module):
    """Audio → mouth TCN generator (the paper's "Non-Causal TCN"; with the discriminator, TCN-GAN).

    ``mfcc [B, 4T, n_mfcc] (normalised, 100 Hz) -> mouth [B, T, n_mouth] (PCA, 25 fps)``.
    Trained on 200-row windows (T = 50), but any ``4T`` works.
    """

    fully_convolutional = True  # predict_mouth may run one pass over a whole sequence

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        c0, c1, c2, c3 = config.frontend_channels
        self.frontend = nn.ModuleList([
            nn.Conv1d(config.n_mfcc, c0, 3, padding=1),       # 100 Hz
            nn.Conv1d(c0, c1, 4, stride=2, padding=1),        # 100 → 50 Hz
            nn.Conv1d(c1, c2, 3, padding=1),                  # 50 Hz
            nn.Conv1d(c2, c3, 4, stride=2, padding=1),        # 50 → 25 Hz
        ])
        self.tcn = TCNBlock(c3, config.filters, config.kernel_size, config.dilations, config.dropout,
                            config.use_skip_connections)
        self.fc1 = nn.Linear(config.filters, config.fc_hidden)
        self.fc2 = nn.Linear(config.fc_hidden, config.n_mouth)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        check_mfcc_input(mfcc, self.config.n_mfcc, "TCNGenerator")
        h = mfcc.transpose(1, 2)  # [B, 13, 4T]
        for conv in self.frontend:
            h = torch.relu(conv(h))
        h = self.tcn(h).transpose(1, 2)  # [B, T, filters]
        return self.fc2(torch.relu(self.fc1(h)))  # per-frame FC: [B, T, n_mouth]

    def forward_sequence(self, mfcc: torch.Tensor) -> torch.Tensor:
        """Inference on one sequence, time-major: ``mfcc [4T, n_mfcc] -> mouth [T, n_mouth]``.

        The same function as :meth:`forward` (eval mode, no dropout) computed as GEMMs (see
        above); inference uses it on the CPU. Not for training (in-place ``addmm_`` on views) nor
        under autocast (in-place ops need one dtype).
        """
        check_mfcc_input(mfcc[None], self.config.n_mfcc, "TCNGenerator")
        h = mfcc
        for conv in cast("Iterable[nn.Conv1d]", self.frontend):  # torch types a ModuleList's items as Modules
            conv_time_major = _stride2_conv_time_major if conv.stride == (2,) else _same_conv_time_major
            h = torch.relu_(conv_time_major(h, conv))
        skips = None
        for level in self.tcn.typed_levels:
            a = torch.relu_(_same_conv_time_major(h, level.conv1))
            a = torch.relu_(_same_conv_time_major(a, level.conv2))
            # the residual is an Identity or a 1×1 Conv1d
            residual = _same_conv_time_major(h, level.residual) if isinstance(level.residual, nn.Conv1d) else h
            h = residual.add_(a).relu_()  # in place: h is this pass's own intermediate
            if self.tcn.use_skip_connections:
                skips = a if skips is None else skips.add_(a)
        if self.tcn.use_skip_connections:
            if skips is None:  # TCNConfig refuses empty dilations
                raise ValueError("TCNGenerator: no TCN levels (dilations is empty)")
            h = skips
        return nn.functional.linear(torch.relu_(self.fc1(h)), self.fc2.weight, self.fc2.bias)

    @property
    def mfcc_extent(self) -> tuple[int, int]:
        """``(lo, hi)``: mouth frame ``t`` reads MFCC rows ``4t + lo .. 4t + hi`` (zero-padded
        outside the input). Computed from the layers: front end, then the TCN's longest path."""
        frontend = cast("list[nn.Conv1d]", list(self.frontend))  # torch types a ModuleList's items as Modules
        lo, hi, stride = conv_chain_extent(frontend + self.tcn.longest_conv_path)
        assert stride == MFCC_PER_VIDEO_FRAME
        return lo, hi

    @property
    def receptive_field_mfcc_frames(self) -> int:
        """One-sided context in MFCC rows beyond the frame's own four (126 for the paper size)."""
        lo, hi = self.mfcc_extent
        return max(-lo, hi - (MFCC_PER_VIDEO_FRAME - 1))

    @property
    def receptive_field_video_frames(self) -> int:
        """One-sided context in 25 fps frames: neighbours whose audio can change frame ``t``
        (32 for the paper size)."""
        return math.ceil(self.receptive_field_mfcc_frames / MFCC_PER_VIDEO_FRAME)

    @property
    def receptive_field_ms(self) -> float:
        """One-sided context in milliseconds between MFCC row centres (1260 ms for the paper
        size); each row's 25 ms window reaches another 12.5 ms further."""
        return 10.0 * self.receptive_field_mfcc_frames


class TCNDiscriminator(nn.Module):
    """Temporal PatchGAN: judges every 25 fps frame of an (audio, mouth) pair as real or fake.

    The MFCC are brought to 25 fps by two stride-2 convolutions (like the generator's front end),
    concatenated with the mouth coefficients along channels, passed through a TCN block, and a
    per-frame linear layer gives one logit per frame. Each logit sees only its receptive field
    (±30 frames of the TCN, ±1.3 s), so the loss averages many local real/fake judgements, as
    pix2pixHD's patch discriminators do over image patches.

    ``forward(mfcc [B, 4T, n_mfcc], mouth [B, T, n_mouth]) -> logits [B, T]`` — raw logits, no
    sigmoid, so the trainer can use BCE-with-logits or least squares (LSGAN).
    """

    def __init__(self, config: TCNConfig):
        super().__init__()
        self.config = config
        a0, a1 = config.disc_audio_channels
        self.audio_frontend = nn.ModuleList([
            nn.Conv1d(config.n_mfcc, a0, 4, stride=2, padding=1),  # 100 → 50 Hz
            nn.Conv1d(a0, a1, 4, stride=2, padding=1),             # 50 → 25 Hz
        ])
        self.tcn = TCNBlock(a1 + config.n_mouth, config.filters, config.kernel_size, config.dilations,
                            config.dropout, config.use_skip_connections)
        self.head = nn.Linear(config.filters, 1)

    def forward(self, mfcc: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
        check_mfcc_input(mfcc, self.config.n_mfcc, "TCNDiscriminator")
        n_frames = mfcc.shape[1] // MFCC_PER_VIDEO_FRAME
        if mouth.ndim != 3 or mouth.shape[0] != mfcc.shape[0] or mouth.shape[1:] != (n_frames, self.config.n_mouth):
            raise ValueError(f"TCNDiscriminator: mouth must be [{mfcc.shape[0]}, {n_frames}, "
                             f"{self.config.n_mouth}] for MFCC {tuple(mfcc.shape)}, got {tuple(mouth.shape)}")
        h = mfcc.transpose(1, 2)
        for conv in self.audio_frontend:
            h = torch.relu(conv(h))
        h = torch.cat([h, mouth.transpose(1, 2).to(h.dtype)], dim=1)  # [B, a1 + n_mouth, T]
        h = self.tcn(h).transpose(1, 2)  # [B, T, filters]
        return self.head(h).squeeze(-1)  # [B, T]
