"""pix2pixHD's multi-scale PatchGAN discriminator for training the renderer (paper §3.2).

The discriminator sees the condition and the image together: ``[B, C_map + 3, S, S]``
(facial map [+ appearance channels] concatenated with a real or generated RGB frame, all in
[-1, 1]). Every scale returns all its intermediate feature maps, the patch logits last, so
that the trainer can compute pix2pixHD's feature-matching loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    """in_channels: condition + image channels (facial map 5 [+ appearance] + RGB 3).
    ndf: channels of the first layer (doubling per stride-2 layer, at most 512).
    n_layers: stride-2 layers per PatchGAN (3 → 70×70 receptive field).
    num_scales: PatchGANs, each on the input average-pooled once more than the previous.
    """

    in_channels: int = 8
    ndf: int = 64
    n_layers: int = 3
    num_scales: int = 3

    def __post_init__(self) -> None:
        for name in ("in_channels", "ndf", "n_layers", "num_scales"):
            if getattr(self, name) < 1:
                raise ValueError(f"DiscriminatorConfig: {name} must be >= 1, got {getattr(self, name)}")


class NLayerDiscriminator(nn.Module):
    """One PatchGAN: 4×4 convs (n_layers with stride 2, then two with stride 1), LeakyReLU 0.2,
    InstanceNorm on all but the first and last.

    ``[B, in_channels, H, W] → list`` of ``n_layers + 2`` tensors: the output of every block,
    the last being the patch logits ``[B, 1, ~H/2**n_layers, ~W/2**n_layers]``.
    """

    def __init__(self, in_channels: int, ndf: int, n_layers: int):
        super().__init__()
        kw, pad = 4, math.ceil((4 - 1) / 2)
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, ndf, kw, 2, pad), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(prev, nf, kw, stride, pad), nn.InstanceNorm2d(nf),
                                        nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, kw, 1, pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs; scale 0 sees the full-resolution input, scale i the input
    average-pooled (3×3, stride 2, ``count_include_pad=False``) i times.

    ``forward(x: [B, in_channels, S, S]) -> list[list[Tensor]]``: per scale (finest first),
    the intermediate feature maps followed by the patch logits.
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(NLayerDiscriminator(config.in_channels, config.ndf, config.n_layers)
                                    for _ in range(config.num_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"MultiscaleDiscriminator: expected [B, {self.config.in_channels}, H, W], got {list(x.shape)}")
        results = []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            results.append(scale(x))
        return results
