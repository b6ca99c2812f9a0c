"""Where and how the renderer runs fastest: device and numeric precision.

On CUDA, bf16 autocast is the standard fast path. On CPUs, oneDNN runs bf16 convolutions
natively where the CPU has AVX512-BF16 or AMX; there a light-256 training step takes about half
the time of fp32 (measured 4.4 s against 8.6–9.2 s for a batch of 4, one thread, this project's
2-core development CPU). Elsewhere bf16 would be emulated and slower, so fp32 stays.
"""

from __future__ import annotations

import torch


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast is the fast path on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"auto"`` → ``"bf16"`` where :func:`bf16_is_fast`, else ``"fp32"``; others pass through.

    Raises:
        ValueError: not one of auto, fp32, bf16.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return precision
