"""Renderer training losses (pix2pixHD): LSGAN, discriminator feature matching, VGG19 perceptual.

Discriminator outputs are :class:`~newsanchor.train.discriminators.MultiscaleDiscriminator`'s
``list[list[Tensor]]``: per scale, intermediate features then the patch logits last.

The VGG19 loss needs a local weights file: nothing is downloaded (see :class:`VGGPerceptualLoss`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import NewsanchorError

MultiscaleOutputs = list[list[torch.Tensor]]


def lsgan_loss(outputs: MultiscaleOutputs, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean over scales of ``MSE(logits, 1 if real else 0)`` where
    ``logits = outputs[scale][-1]``. Returns a scalar."""
    target = 1.0 if target_is_real else 0.0
    losses = [F.mse_loss(scale[-1], torch.full_like(scale[-1], target)) for scale in outputs]
    return torch.stack(losses).mean()


def feature_matching_loss(real_outputs: MultiscaleOutputs, fake_outputs: MultiscaleOutputs,
                          weight: float = 10.0) -> torch.Tensor:
    """pix2pixHD's feature-matching loss: ``weight`` × the mean over scales of the mean over
    intermediate layers (all but the logits) of ``L1(fake_feature, real_feature.detach())``.
    Returns a scalar; 0 when the fake features equal the real ones."""
    if len(real_outputs) != len(fake_outputs):
        raise ValueError(f"feature_matching_loss: {len(real_outputs)} real scales vs {len(fake_outputs)} fake")
    per_scale = []
    for real, fake in zip(real_outputs, fake_outputs):
        layers = [F.l1_loss(f, r.detach()) for r, f in zip(real[:-1], fake[:-1])]
        if layers:
            per_scale.append(torch.stack(layers).mean())
    if not per_scale:
        raise ValueError("feature_matching_loss: no intermediate features to match")
    return weight * torch.stack(per_scale).mean()


# torchvision's VGG19 ``features``: conv widths, "M" = 2×2 max-pool; each conv is followed by ReLU.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")
# pix2pixHD's slices end after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices in ``features``).
VGG_SLICE_ENDS = (2, 7, 12, 21, 30)
VGG_SLICE_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features() -> nn.Sequential:
    """VGG19's convolutional stack with torchvision's module indices (so ``features.N.weight``
    keys of a torchvision state dict load into it); ``[B, 3, H, W] → [B, 512, H/32, W/32]``."""
    layers: list[nn.Module] = []
    c = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            c = int(item)
    return nn.Sequential(*layers)


class VGGPerceptualLoss(nn.Module):
    """pix2pixHD's VGG loss: ``sum_i w_i · L1(vgg_i(fake), vgg_i(real).detach())`` over the
    relu1_1 … relu5_1 features with weights 1/32, 1/16, 1/8, 1/4, 1.

    Args:
        weights_path: a local safetensors file holding torchvision-compatible VGG19
            ``features.*`` tensors (other keys, e.g. ``classifier.*``, are ignored). Nothing is
            downloaded; without a file this raises :class:`NewsanchorError`.

    ``forward(fake, real)``: ``[B, 3, H, W]`` RGB in [-1, 1] each (mapped to [0, 1] and
    ImageNet-normalised inside, as the torchvision weights expect) → scalar. The VGG weights
    are frozen; gradients flow to ``fake`` only.
    """

    mean: torch.Tensor  # buffers registered in __init__ (nn.Module would type them Tensor | Module)
    std: torch.Tensor

    def __init__(self, weights_path: str | os.PathLike[str] | None):
        super().__init__()
        if weights_path is None:
            raise NewsanchorError("VGG perceptual loss needs local VGG19 weights: pass a safetensors file with "
                                  "torchvision-compatible 'features.*' tensors (nothing is downloaded), or turn the loss off")
        path = Path(weights_path)
        if not path.is_file():
            raise NewsanchorError(f"{path}: VGG19 weights file missing; pass a local safetensors file with "
                                  "torchvision-compatible 'features.*' tensors (nothing is downloaded)")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise NewsanchorError(f"{path}: not readable safetensors ({' '.join(str(err).split())})") from None
        features = vgg19_features()
        state = {k[len("features."):]: v for k, v in tensors.items() if k.startswith("features.")}
        try:
            features.load_state_dict(state, strict=True)
        except RuntimeError as err:
            problem = " ".join(str(err).split())
            raise NewsanchorError(f"{path}: not VGG19 'features.*' weights ({problem[:300]})") from None
        starts = (0,) + VGG_SLICE_ENDS[:-1]
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, VGG_SLICE_ENDS))
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        return super().train(False)  # frozen feature extractor: always eval

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if fake.shape != real.shape or fake.ndim != 4 or fake.shape[1] != 3:
            raise ValueError(f"VGGPerceptualLoss: expected two [B, 3, H, W], got {list(fake.shape)} and {list(real.shape)}")
        x = ((fake + 1) / 2 - self.mean) / self.std
        y = ((real.detach() + 1) / 2 - self.mean) / self.std
        loss = fake.new_zeros(())
        for weight, block in zip(VGG_SLICE_WEIGHTS, self.slices):
            x, y = block(x), block(y)
            loss = loss + weight * F.l1_loss(x, y.detach())
        return loss


def _gaussian_blur(x: torch.Tensor) -> torch.Tensor:
    """5-tap binomial blur of ``[B, C, H, W]`` (reflect padding), per channel."""
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype) / 16
    channels = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, 5).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, 5, 1).repeat(channels, 1, 1, 1), groups=channels)


def laplacian_pyramid(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """Band-pass levels of ``[B, C, H, W]``: ``x − blur(x)`` at full, half, … resolution
    (``levels`` of them), then the remaining low-pass image."""
    bands = []
    for _ in range(levels):
        low = _gaussian_blur(x)
        bands.append(x - low)
        x = F.avg_pool2d(low, 2)
    return bands + [x]


def laplacian_loss(fake: torch.Tensor, real: torch.Tensor, weight: torch.Tensor | None = None,
                   levels: int = 3) -> torch.Tensor:
    """Mean over pyramid levels of the L1 distance of the band-pass images (the fine detail that a
    plain L1 lets a renderer average away); ``weight [B, 1, H, W]`` scales the finest level per
    pixel (e.g. the mouth). Returns a scalar; 0 when ``fake`` equals ``real``."""
    losses = []
    for level, (f, r) in enumerate(zip(laplacian_pyramid(fake, levels), laplacian_pyramid(real, levels))):
        difference = (f - r).abs()
        if weight is not None and level == 0:
            difference = difference * weight
        losses.append(difference.mean())
    return torch.stack(losses).mean()
