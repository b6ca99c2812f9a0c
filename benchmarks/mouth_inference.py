"""Audio→mouth inference speed: 60 s of audio → mouth trajectory, every model side by side.

    .venv/bin/python benchmarks/mouth_inference.py [--seconds 60] [--repeat 20] [--threads N]

Paper-size models with random weights (speed does not depend on the weights). The TCN's FLOPs
are counted from its layers (2 × multiply-adds of every Conv1d/Linear, by forward hooks) and set
against the machine's matrix-multiply peak measured in the same run, fp32 and bf16.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from newsanchor.audio2mouth.infer import predict_mouth
from newsanchor.audio2mouth.registry import build_model
from newsanchor.evaluate.mouth import median_seconds


def count_flops(model: torch.nn.Module, mfcc: torch.Tensor) -> float:
    """2 × multiply-adds of the Conv1d and Linear layers in one forward pass."""
    total = 0.0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv1d):
            total += 2 * output.numel() * module.in_channels // module.groups * module.kernel_size[0]
        elif isinstance(module, torch.nn.Linear):
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear))]
    with torch.inference_mode():
        model(mfcc)
    for h in handles:
        h.remove()
    return total


def matmul_peak(dtype: torch.dtype, repeat: int) -> float:
    """GFLOP/s of a large square matrix multiply in ``dtype``."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    with torch.inference_mode():
        seconds = median_seconds(lambda: a @ b, max(3, repeat // 4))
    return 2 * n ** 3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((int(args.seconds * 100), 13)).astype(np.float32)
    frames = len(audio) // 4

    tcn, _ = build_model("tcn")
    tcn.eval()
    flops = count_flops(tcn, torch.from_numpy(audio[None]))
    peak32, peak16 = matmul_peak(torch.float32, args.repeat), matmul_peak(torch.bfloat16, args.repeat)

    rows = []

    def bench(label: str, model, **options) -> float:
        seconds = median_seconds(lambda: predict_mouth(model, audio, **options), args.repeat)
        out = predict_mouth(model, audio, **options)
        assert out.shape[0] == frames
        rows.append((label, seconds))
        return seconds

    tcn_single = bench("tcn, single pass, fp32", tcn)
    bench("tcn, paper's overlapping windows, fp32", tcn, single_pass=False)
    for name in ("lstm", "bilstm"):
        model, _ = build_model(name)
        bench(f"{name}, overlapping windows, fp32", model.eval())
        # the recurrent way (and the paper's Table 2 setting): one sequential pass over the audio
        sequence = torch.from_numpy(audio[None])
        with torch.inference_mode():
            rows.append((f"{name}, one pass over the sequence, fp32", median_seconds(lambda: model(sequence), args.repeat)))

    print(f"{args.seconds:.0f} s of audio ({frames} mouth frames), {torch.get_num_threads()} torch threads; "
          f"matmul peak {peak32:.0f} GFLOP/s fp32, {peak16:.0f} GFLOP/s bf16; paper-size TCN forward "
          f"{flops / 1e9:.2f} GFLOP\n")
    print("| inference | time (ms) | × TCN single pass | achieved GFLOP/s |")
    print("|---|---|---|---|")
    for label, seconds in rows:
        achieved = f"{flops / seconds / 1e9:.0f}" if label.startswith("tcn, single") else "–"
        print(f"| {label} | {1000 * seconds:.1f} | {seconds / tcn_single:.2f} | {achieved} |")


if __name__ == "__main__":
    main()
