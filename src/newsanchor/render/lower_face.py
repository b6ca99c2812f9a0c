"""The lower-face renderer: only the region from the nose to below the chin is rendered, from the
presenter's own pixels.

The paper's pix2pixHD (:mod:`newsanchor.render.pix2pixhd`) paints the whole crop from lines, and
paste-back then keeps only the lower face. This generator instead reads, for one fixed box of the
stable crop (:class:`FaceRegion`):

- the facial map of the region (landmarks, edges, jaw correction: ``MAP_CHANNELS``);
- the frame's own region with the lower face blanked by a soft mask, and the mask itself, so
  that skin, light and stubble continue into what it paints;
- ``references`` mouths of the same person (closed, half open, wide open with teeth), chosen
  automatically from the recordings, each warped so that its head pose matches the frame's and
  (``reference_warp="mouth"``) bent onto the frame's drawn jaw and lips
  (:mod:`newsanchor.render.references`).

A small U-Net (skip connections at every scale, no normalisation) turns them into the region
(optionally as a per-pixel mix of its own colours and the references: ``head="blend"``);
the caller blends it in through the same mask (:func:`newsanchor.render.inputs.compose_region`).
Its skip connections let it copy texture from the references and the masked frame rather than
invent it. Input ``[B, input_channels, h, w]`` in [-1, 1], output ``[B, 3, h, w]`` (tanh), with
``(h, w) = config.region_shape(S)`` for crops of side S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..facemap.draw import N_CHANNELS
from .references import CHOICES, RESAMPLING, WARPS

ARCHITECTURE = "lower-face"


@dataclass(frozen=True)
class FaceRegion:
    """The rendered box as fractions of the crop side: ``(x, y, w, h)``.

    The dataset's crops put the face at a fixed scale (side = 2.1 × the landmark box, centre raised
    0.12 box): the nose bottom sits near 0.60 of the side, the chin near 0.80, the jaw spans about
    0.26–0.74. The head moves within a clip's crop (the Obama clips: nose bottom 0.46–0.65, chin
    0.74–0.93, jaw 0.16–0.83), so the default box (0.125..0.875 × 0.44..1.0) holds the nose tip,
    both jaw corners and the chin wherever the head is.
    """

    x: float = 0.125
    y: float = 0.4375
    w: float = 0.75
    h: float = 0.5625

    def pixels(self, size: int, multiple: int = 1) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` in pixels of an ``size × size`` crop, w and h multiples of ``multiple``."""
        w = max(multiple, int(round(self.w * size / multiple)) * multiple)
        h = max(multiple, int(round(self.h * size / multiple)) * multiple)
        x0 = min(max(0, int(round(self.x * size))), size - w)
        y0 = min(max(0, int(round(self.y * size))), size - h)
        return x0, y0, w, h


@dataclass(frozen=True)
class LowerFaceConfig:
    """Shape of a lower-face generator.

    map_channels: facial-map channels. references: reference mouths read beside the frame.
    ngf: channels at full resolution (doubling per downsampling, at most ``max_channels``).
    n_downsampling: stride-2 levels of the U-Net. n_blocks: residual blocks at the bottom.
    region: the rendered box (:class:`FaceRegion` fields x, y, w, h).
    masked_frame: read the frame's own region with the lower face blanked (False: the ablation
        without it; the mask channel stays).
    reference_warp: how the reference mouths are brought onto the frame (``references.WARPS``):
        ``"head"`` by eyes and nose only (the first trained renderers), ``"mouth"`` also bent
        onto the frame's drawn jaw and lips (the ``lower-face`` preset), ``"mouth-only"`` then
        kept only inside the jaw below the nose, ``"face-only"`` only inside the jaw (not below it).
    reference_resample: how the warp reads a reference's pixels (``references.RESAMPLING``):
        ``"linear"`` (every renderer before the bank preset took ``"cubic"``) softens them,
        ``"cubic"`` keeps their detail.
    head: ``"rgb"`` paints every pixel (tanh); ``"blend"`` also predicts per-pixel weights
        (softmax) over its painted colour and the (warped) reference mouths, and outputs their
        mix: copying a reference's texture is then a choice, not something to learn to paint.
    reference_choice: ``"states"``: the same ``references`` mouths (closed, half, open) for every
        frame; ``"nearest"``: a bank of ``bank_size`` mouths covering the presenter's mouth shapes
        is stored, and each frame reads the ``references`` whose shapes are nearest its own (so the
        warp bends them little and their texture fits).
    match_reference_colours: bring each warped reference to the frame's colours first
        (:func:`newsanchor.render.inputs.match_reference_colours`): references from other light
        or another session then continue the frame's skin instead of their own.
    reference_hold: with the ``"nearest"`` choice, keep the previous frame's references while
        they are at most this fraction farther from the frame's mouth than the nearest
        (:class:`newsanchor.render.references.ReferenceChooser`): read only when frames are
        rendered in order (synthesis, evaluation), never in training.
    """

    map_channels: int = N_CHANNELS
    references: int = 3
    ngf: int = 16
    n_downsampling: int = 4
    n_blocks: int = 4
    max_channels: int = 192
    region: tuple[float, float, float, float] = (0.125, 0.4375, 0.75, 0.5625)
    masked_frame: bool = True
    reference_warp: str = "head"
    reference_resample: str = "linear"
    head: str = "rgb"
    reference_choice: str = "states"
    bank_size: int = 48
    match_reference_colours: bool = False
    reference_hold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("map_channels", "ngf", "max_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"LowerFaceConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("references", "n_downsampling", "n_blocks"):
            if getattr(self, name) < 0:
                raise ValueError(f"LowerFaceConfig: {name} must be >= 0, got {getattr(self, name)}")
        if self.head not in ("rgb", "blend"):
            raise ValueError(f"LowerFaceConfig: head must be rgb or blend, got {self.head!r}")
        if self.head == "blend" and self.references == 0:
            raise ValueError("LowerFaceConfig: the blend head needs reference mouths")
        if self.reference_choice not in CHOICES:
            raise ValueError(f"LowerFaceConfig: reference_choice must be one of {CHOICES}, got {self.reference_choice!r}")
        if self.reference_choice == "nearest" and self.bank_size < max(self.references, 1):
            raise ValueError(f"LowerFaceConfig: a bank of {self.bank_size} mouths cannot give {self.references} references")
        if self.reference_hold < 0:
            raise ValueError(f"LowerFaceConfig: reference_hold must be >= 0, got {self.reference_hold}")
        if self.reference_resample not in RESAMPLING:
            raise ValueError(f"LowerFaceConfig: reference_resample must be one of {tuple(RESAMPLING)}, "
                             f"got {self.reference_resample!r}")
        if self.reference_warp not in WARPS:
            raise ValueError(f"LowerFaceConfig: reference_warp must be one of {WARPS}, got {self.reference_warp!r}")
        x, y, w, h = self.region
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9):
            raise ValueError(f"LowerFaceConfig: region {self.region} must lie inside the crop")

    @property
    def input_channels(self) -> int:
        """Map + mask (1) + masked frame (3, unless ablated) + 3 per reference."""
        return self.map_channels + 1 + 3 * int(self.masked_frame) + 3 * self.references

    @property
    def size_multiple(self) -> int:
        """The region's sides must be multiples of this."""
        return 2 ** self.n_downsampling

    @property
    def face_region(self) -> FaceRegion:
        return FaceRegion(*self.region)

    def region_box(self, size: int) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` of the rendered region in an ``size × size`` crop."""
        return self.face_region.pixels(size, self.size_multiple)

    def region_shape(self, size: int) -> tuple[int, int]:
        """``(h, w)`` of the network's input and output for crops of side ``size``."""
        _, _, w, h = self.region_box(size)
        return h, w


LOWER_FACE_CONFIGS: dict[str, LowerFaceConfig] = {
    # CPU real time at 256² crops: a 192×144 region, 3.4 GFLOP a frame, 4.2 M parameters.
    "lower-face": LowerFaceConfig(reference_warp="mouth"),
    # the same network reading, per frame, the three of 48 stored mouths shaped most like its own
    "lower-face-nearest": LowerFaceConfig(reference_warp="mouth", reference_choice="nearest"),
    # each frame reads the one bank mouth shaped most like its own (held while it stays close),
    # in the frame's colours, kept over the face inside the jaw but not the collar below it, and
    # mixes it per pixel with its own painting (benchmarks/RESULTS.md, "one per frame, held")
    "lower-face-bank": LowerFaceConfig(reference_warp="face-only", reference_choice="nearest", references=1,
                                       head="blend", match_reference_colours=True, reference_hold=0.2,
                                       reference_resample="cubic"),
}


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]


class _Residual(nn.Module):
    """``x + conv(lrelu(conv(x)))`` at the U-Net's bottom: ``[B, C, h, w] → same``."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(channels, channels), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LowerFaceGenerator(nn.Module):
    """U-Net ``[B, input_channels, h, w] → [B, 3, h, w]`` in [-1, 1].

    Encoder: 3×3 conv to ``ngf``, then ``n_downsampling`` × (stride-2 conv doubling the channels,
    3×3 conv); ``n_blocks`` residual blocks; decoder: bilinear ×2, concatenation with the
    encoder's features of that scale, two 3×3 convs; 3×3 conv to RGB, tanh. LeakyReLU 0.2, no
    normalisation (a frame's output does not depend on the others in its batch).
    """

    def __init__(self, config: LowerFaceConfig):
        super().__init__()
        self.config = config
        widths = [min(config.ngf * 2 ** i, config.max_channels) for i in range(config.n_downsampling + 1)]
        self.head = nn.Sequential(*_conv(config.input_channels, widths[0]))
        self.down = nn.ModuleList(nn.Sequential(*_conv(widths[i], widths[i + 1], 2), *_conv(widths[i + 1], widths[i + 1]))
                                  for i in range(config.n_downsampling))
        self.bottom = nn.Sequential(*[_Residual(widths[-1]) for _ in range(config.n_blocks)])
        self.up = nn.ModuleList(nn.Sequential(*_conv(widths[i + 1] + widths[i], widths[i]), *_conv(widths[i], widths[i]))
                                for i in reversed(range(config.n_downsampling)))
        blend = config.references + 1 if config.head == "blend" else 0
        self.out = nn.Conv2d(widths[0], 3 + blend, 3, padding=1)
        # the blend head's logits of the last forward pass, [B, K+1, h, w], for the trainer's
        # penalty (see train.lower_face: unpenalised, Adam drove them to ±25,000 and the mix
        # to one reference everywhere, where no gradient reaches it again)
        self.blend_logits: torch.Tensor | None = None
        if blend:
            # start from the same mix at every pixel, mostly the references (the painted colour ≈ 0.1):
            # the references bent onto the drawn mouth are already close to the real region, and a
            # start that favoured the painted colour (≈ 0.6) trained 2.5× worse by step 200
            bias = self.out.bias  # typed Optional: None only for a Conv2d made with bias=False
            if bias is None:
                raise RuntimeError("LowerFaceGenerator: the output convolution has no bias")
            with torch.no_grad():
                self.out.weight[3:].zero_()
                bias[3:].zero_()
                bias[3] = -1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        config = self.config
        if x.ndim != 4 or x.shape[1] != config.input_channels:
            raise ValueError(f"LowerFaceGenerator: expected input [B, {config.input_channels}, h, w], got {list(x.shape)}")
        if x.shape[2] % config.size_multiple or x.shape[3] % config.size_multiple:
            raise ValueError(f"LowerFaceGenerator: region {x.shape[2]}×{x.shape[3]} is not divisible by {config.size_multiple}")
        skips = [self.head(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = self.bottom(skips.pop())
        for block in self.up:
            skip = skips.pop()
            y = block(torch.cat([_upsample(y, skip.shape[-2:]), skip], 1))
        out = self.out(y)
        painted = torch.tanh(out[:, :3])
        if config.head == "rgb":
            return painted
        # the references are the input's last 3·K channels
        b, _, h, w = x.shape
        k = config.references
        sources = torch.cat([painted.unsqueeze(1), x[:, -3 * k:].reshape(b, k, 3, h, w).to(painted.dtype)], 1)
        logits = out[:, 3:].float()
        self.blend_logits = logits if self.training else None
        weights = torch.softmax(logits, 1).to(painted.dtype).unsqueeze(2)
        return (weights * sources).sum(1)


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear resize of ``[B, C, h, w]`` to ``size``; bf16 tensors on the CPU are resized in fp32
    (exact for bf16 inputs, and 3× faster there than the bf16 kernel, which took a sixth of a
    light frame's time) and cast back."""
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":
        return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False).to(torch.bfloat16)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def build_lower_face(config: str | LowerFaceConfig = "lower-face") -> tuple[LowerFaceGenerator, LowerFaceConfig]:
    """A fresh generator from a :data:`LOWER_FACE_CONFIGS` name or a config."""
    if isinstance(config, str):
        if config not in LOWER_FACE_CONFIGS:
            raise ValueError(f"unknown lower-face renderer {config!r}; choose one of {', '.join(LOWER_FACE_CONFIGS)}")
        config = LOWER_FACE_CONFIGS[config]
    return LowerFaceGenerator(config), config
