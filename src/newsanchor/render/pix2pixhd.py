"""pix2pixHD generators (Wang et al. 2018) for the facial map → face renderer (paper §3.2).

Generators only: discriminators and losses live in :mod:`newsanchor.train`.

Input: the facial map of :mod:`newsanchor.facemap.draw` scaled to ``[-1, 1]``
(``[B, N_CHANNELS, S, S]``), optionally followed by ``appearance_channels`` extra channels
(e.g. the template frame's RGB in ``[-1, 1]``). Output: RGB ``[B, 3, S, S]`` in ``[-1, 1]`` (tanh).

Upsampling: by default nearest-neighbour ×2 followed by a reflection-padded 3×3 convolution
(``upsample="nearest"``) instead of pix2pixHD's stride-2 transposed convolutions, which
overlap unevenly and leave a faint checkerboard (Odena et al. 2016, "Deconvolution and
checkerboard artifacts"); ``upsample="transposed"`` gives the original layers.

Saved renderers are ``renderer.safetensors`` + ``renderer.json`` (no pickle), see
:func:`save_renderer` / :func:`load_renderer`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..errors import NewsanchorError
from ..facemap.draw import N_CHANNELS
from .lower_face import LowerFaceConfig, build_lower_face
from ..weights import WeightsFormat, config_from_meta, load_into, read_meta, save_weights

UPSAMPLE_MODES = ("nearest", "transposed")


@dataclass(frozen=True)
class RendererConfig:
    """Shape of a pix2pixHD generator.

    in_channels: facial-map channels (``len(facemap.draw.CHANNELS)``).
    appearance_channels: extra conditioning channels appended after the map (0 = none; 3 for
        the template frame's RGB).
    ngf: channels after the first 7×7 convolution (of the local branch when ``local_enhancer``;
        the global branch then uses ``2 * ngf``, as in pix2pixHD).
    n_downsampling: stride-2 convolutions in the global generator, each doubling channels.
    n_blocks: residual blocks at the bottleneck of the global generator.
    local_enhancer: wrap the global generator (run at S/2) in a full-resolution local branch.
    n_local_blocks: residual blocks of the local branch.
    upsample: ``"nearest"`` (upsample + conv, no checkerboard) or ``"transposed"``.
    norm: only ``"instance"`` (affine-free InstanceNorm2d, as pix2pixHD).
    """

    in_channels: int = N_CHANNELS
    appearance_channels: int = 0
    out_channels: int = 3
    ngf: int = 64
    n_downsampling: int = 4
    n_blocks: int = 9
    local_enhancer: bool = False
    n_local_blocks: int = 3
    upsample: str = "nearest"
    norm: str = "instance"

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "ngf"):
            if getattr(self, name) < 1:
                raise ValueError(f"RendererConfig: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("appearance_channels", "n_downsampling", "n_blocks", "n_local_blocks"):
            if getattr(self, name) < 0:
                raise ValueError(f"RendererConfig: {name} must be >= 0, got {getattr(self, name)}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"RendererConfig: upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.norm != "instance":
            raise ValueError(f"RendererConfig: only norm='instance' is supported, got {self.norm!r}")

    @property
    def input_channels(self) -> int:
        """Channels the generator reads: map + appearance."""
        return self.in_channels + self.appearance_channels

    @property
    def size_multiple(self) -> int:
        """S must be a multiple of this."""
        return 2 ** (self.n_downsampling + int(self.local_enhancer))


RENDERER_CONFIGS: dict[str, RendererConfig] = {
    # The paper's renderer: pix2pixHD's global generator defaults at 512×512.
    "full-512": RendererConfig(ngf=64, n_downsampling=4, n_blocks=9),
    # For CPUs: half the width, one downsampling less (256-channel bottleneck), 6 blocks.
    "light-256": RendererConfig(ngf=32, n_downsampling=3, n_blocks=6),
}
NATIVE_SIZES: dict[str, int] = {"full-512": 512, "light-256": 256}


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Reflection pad (same size at stride 1) → conv → InstanceNorm → ReLU."""
    pad = kernel // 2
    return [nn.ReflectionPad2d(pad), nn.Conv2d(c_in, c_out, kernel, stride=stride),
            nn.InstanceNorm2d(c_out), nn.ReLU(True)]


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    """Stride-2 3×3 conv (zero padding 1, as pix2pixHD) → IN → ReLU: ``[B, c_in, H, W] → [B, c_out, H/2, W/2]``."""
    return [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(True)]


def _up(c_in: int, c_out: int, mode: str) -> list[nn.Module]:
    """×2 upsampling → IN → ReLU: ``[B, c_in, H, W] → [B, c_out, 2H, 2W]``."""
    if mode == "transposed":
        conv: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)]
    else:
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3)]
    return conv + [nn.InstanceNorm2d(c_out), nn.ReLU(True)]


def _output_head(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(c_in, c_out, 7), nn.Tanh()]


class ResnetBlock(nn.Module):
    """``x + IN(conv3(relu(IN(conv3(x)))))`` with reflection padding; ``[B, C, H, W] → same``."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_block(channels, channels, 3),
                                  nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                  nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _check_input(x: torch.Tensor, config: RendererConfig, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != config.input_channels:
        raise ValueError(f"{who}: expected input [B, {config.input_channels}, S, S], got {list(x.shape)}")
    m = config.size_multiple
    if x.shape[2] % m or x.shape[3] % m:
        raise ValueError(f"{who}: image size {x.shape[2]}×{x.shape[3]} is not divisible by {m} "
                         f"(2**{'(n_downsampling + 1)' if config.local_enhancer else 'n_downsampling'})")


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator: ``[B, C_in, S, S] → [B, out_channels, S, S]`` in [-1, 1].

    7×7 conv (ngf) → n_downsampling × stride-2 3×3 conv (channels doubling) → n_blocks residual
    blocks (ngf·2^n_downsampling channels) → as many ×2 upsamplings (channels halving) → 7×7
    conv → tanh. ``features(x)`` returns the ``[B, ngf, S, S]`` map before the head (used by
    :class:`LocalEnhancer`). S must be divisible by ``2**n_downsampling``.
    """

    def __init__(self, config: RendererConfig):
        super().__init__()
        self.config = config
        c = config.ngf
        layers = _conv_block(config.input_channels, c, 7)
        for _ in range(config.n_downsampling):
            layers += _down(c, 2 * c)
            c *= 2
        layers += [ResnetBlock(c) for _ in range(config.n_blocks)]
        for _ in range(config.n_downsampling):
            layers += _up(c, c // 2, config.upsample)
            c //= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(*_output_head(c, config.out_channels))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, S, S] → [B, ngf, S, S]`` (everything but the output head)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.config, type(self).__name__)
        return self.head(self.body(x))


class LocalEnhancer(nn.Module):
    """pix2pixHD's local enhancer: ``[B, C_in, S, S] → [B, out_channels, S, S]`` in [-1, 1].

    A :class:`GlobalGenerator` with ``2 * ngf`` channels runs on the input average-pooled to
    S/2 and gives its last features ``[B, 2·ngf, S/2, S/2]`` (no head); the local front end
    (7×7 conv ngf, stride-2 conv 2·ngf) maps the full-resolution input to the same shape; their
    sum goes through ``n_local_blocks`` residual blocks, a ×2 upsampling, 7×7 conv and tanh.
    S must be divisible by ``2**(n_downsampling + 1)``.
    """

    def __init__(self, config: RendererConfig):
        super().__init__()
        self.config = config
        c = config.ngf
        self.global_generator = GlobalGenerator(dataclasses.replace(config, ngf=2 * c, local_enhancer=False))
        del self.global_generator.head  # only its features are used
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.front = nn.Sequential(*_conv_block(config.input_channels, c, 7), *_down(c, 2 * c))
        self.back = nn.Sequential(*[ResnetBlock(2 * c) for _ in range(config.n_local_blocks)],
                                  *_up(2 * c, c, config.upsample), *_output_head(c, config.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.config, type(self).__name__)
        coarse = self.global_generator.features(self.downsample(x))
        return self.back(self.front(x) + coarse)


def build_renderer(name_or_config: str | RendererConfig = "light-256", **overrides: Any
                   ) -> tuple[nn.Module, RendererConfig]:
    """A fresh generator from a :data:`RENDERER_CONFIGS` name or a config, with field overrides.

    Returns ``(model, config)``: a :class:`LocalEnhancer` when ``config.local_enhancer`` else a
    :class:`GlobalGenerator`.
    """
    if isinstance(name_or_config, RendererConfig):
        config = name_or_config
    elif name_or_config in RENDERER_CONFIGS:
        config = RENDERER_CONFIGS[name_or_config]
    else:
        raise ValueError(f"unknown renderer {name_or_config!r}; choose one of {', '.join(RENDERER_CONFIGS)}")
    if overrides:
        known = {f.name for f in dataclasses.fields(RendererConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"build_renderer: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        config = dataclasses.replace(config, **overrides)
    model = LocalEnhancer(config) if config.local_enhancer else GlobalGenerator(config)
    return model, config


@torch.no_grad()
def renderer_gflops(model: nn.Module, size: int, batch: int = 1, shape: tuple[int, int] | None = None) -> float:
    """GFLOPs (2 × multiply-accumulates of the Conv2d/ConvTranspose2d layers, biases and
    norms ignored) of one forward pass of ``batch`` images of ``size × size`` (or ``shape``),
    measured with forward hooks on a zero input on the model's device."""
    macs = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal macs
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        macs += output.numel() * k

    def tconv_hook(module: nn.ConvTranspose2d, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal macs
        k = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        macs += inputs[0].numel() * k

    handles = []
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(tconv_hook))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
    param = next(model.parameters())
    # nn.Module.__getattr__ is typed Tensor | Module; every renderer keeps its config here
    channels = cast("RendererConfig | LowerFaceConfig", model.config).input_channels
    try:
        model(torch.zeros(batch, channels, *(shape or (size, size)), device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
    return 2.0 * macs / batch / 1e9


# --- save / load ---------------------------------------------------------------------------

FORMAT = "newsanchor-renderer"
PIX2PIXHD = "pix2pixhd"
LOWER_FACE = "lower-face"
FORMAT_VERSION = 1
WEIGHTS_FILE = "renderer.safetensors"
META_FILE = "renderer.json"


class RendererError(NewsanchorError):
    """A saved renderer cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(f"{path}: {problem}")


RENDERER_FILES = WeightsFormat(FORMAT, FORMAT_VERSION, WEIGHTS_FILE, META_FILE, "renderer", RendererError)


def save_renderer(path_dir: str | os.PathLike[str], model: nn.Module, config: RendererConfig | LowerFaceConfig,
                  extra: dict | None = None) -> Path:
    """Write ``path_dir/renderer.safetensors`` then ``path_dir/renderer.json`` (atomically each;
    the JSON holds the format, version, the architecture (pix2pixHD or the lower-face renderer),
    config, the weights' SHA-256 and ``extra``).

    Returns the path of ``renderer.json``.
    """
    if isinstance(config, LowerFaceConfig):
        return save_weights(RENDERER_FILES, path_dir, model, config, extra, architecture=LOWER_FACE)
    if not isinstance(config, RendererConfig):
        raise TypeError(f"save_renderer: config must be a RendererConfig or LowerFaceConfig, got {type(config).__name__}")
    return save_weights(RENDERER_FILES, path_dir, model, config, extra)


def load_renderer(path_dir: str | os.PathLike[str], device: str | torch.device = "cpu"
                  ) -> tuple[nn.Module, RendererConfig | LowerFaceConfig, dict]:
    """Read a renderer written by :func:`save_renderer`: the paper's pix2pixHD (files without an
    ``architecture`` are) or the lower-face renderer (``config`` is then a :class:`LowerFaceConfig`).

    Returns ``(model, config, extra)``, the model on ``device`` in eval mode.

    Raises:
        RendererError (a NewsanchorError): one line naming the file that is missing, of another
        format or version, with a bad config, a wrong checksum, or weights that do not fit.
    """
    meta = read_meta(RENDERER_FILES, path_dir)
    architecture = meta.get("architecture", PIX2PIXHD)
    model: nn.Module
    if architecture == LOWER_FACE:
        config = config_from_meta(RENDERER_FILES, path_dir, LowerFaceConfig, meta["config"])
        model, _ = build_lower_face(config)
    elif architecture == PIX2PIXHD:
        config = config_from_meta(RENDERER_FILES, path_dir, RendererConfig, meta["config"])
        model, _ = build_renderer(config)
    else:
        raise RendererError(Path(path_dir) / META_FILE, f"unknown renderer architecture {architecture!r}")
    load_into(RENDERER_FILES, path_dir, meta, model, "the renderer config")
    return model.to(device).eval(), config, meta["extra"]


def is_lower_face(config: RendererConfig | LowerFaceConfig) -> bool:
    """Whether a loaded renderer paints only the lower-face region (else the whole crop)."""
    return isinstance(config, LowerFaceConfig)
