"""Renderer inference speed: frames/s of each config by each inference path, against the
machine's matrix-multiply peak measured in the same run.

    .venv/bin/python benchmarks/renderer.py [--configs lower-face,light-256,full-512] [--upsample nearest,transposed]
        [--compile] [--repeat 3] [--threads N] [--json-out benchmarks/results/renderer_speed.json]

``lower-face`` is the lower-face renderer at a 256² crop (it renders the 192×144 region only);
``--upsample`` applies to the pix2pixHD configs. ``--json-out`` writes the fastest path of each
config as ``{"configs": {NAME: {"fps", "path", "gflop", "batch"}}, "machine": …}``.

Random weights (speed does not depend on them). Paths (``render.runtime``): fp32 eager PyTorch,
bf16 weights and activations, ONNX Runtime (fp32) on an exported file. FLOPs are counted from
the convolutions (``render.pix2pixhd.renderer_gflops``). "vs fp32" is the PSNR of each path's
output against the fp32 output (what the faster arithmetic costs in image quality).
``--upsample`` also measures each config with the other decoder upsampling (``nearest`` is the
default; ``transposed`` is pix2pixHD's), ``--compile`` adds the bf16 path under torch.compile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from newsanchor.evaluate.image_metrics import psnr
from newsanchor.render.inputs import APPEARANCE_CHANNELS
from newsanchor.render.lower_face import LOWER_FACE_CONFIGS, build_lower_face
from newsanchor.render.pix2pixhd import NATIVE_SIZES, build_renderer, renderer_gflops
from newsanchor.render.runtime import RendererRunner, export_onnx, seconds_per_batch

BATCH = {"light-256": 4, "full-512": 1}
LOWER_FACE_BATCH = 4  # every lower-face preset
LOWER_FACE_CROP = 256


def matmul_peak(dtype: torch.dtype, repeat: int = 5) -> float:
    """GFLOP/s of a 2048² matrix multiply in ``dtype`` (median of ``repeat`` after a warm-up)."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    runner = type("MatMul", (), {"forward": lambda self, _: a @ b})()
    with torch.inference_mode():
        return 2 * n ** 3 / seconds_per_batch(runner, None, repeat) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="lower-face,light-256,full-512")
    parser.add_argument("--upsample", default="nearest", help="decoder upsamplings to measure, comma-separated")
    parser.add_argument("--compile", action="store_true", help="also time bf16 under torch.compile")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch and ONNX Runtime threads (0: torch's default)")
    parser.add_argument("--json-out", type=Path, help="write the fastest path of each config here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    machine = machine_line()
    print(f"{machine}; threads {torch.get_num_threads()}; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s")
    fastest: dict[str, dict] = {}
    print("| config | upsample | batch | GFLOP/frame | path | ms/frame | frames/s | GFLOP/s | % of peak | × fp32 speed | PSNR vs fp32 (dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        configs = [(n, u) for n in args.configs.split(",") for u in (args.upsample.split(",") if n in NATIVE_SIZES else ["—"])]
        for name, upsample in configs:
            if name in LOWER_FACE_CONFIGS:
                model, config = build_lower_face(name)
                size, shape = LOWER_FACE_CROP, config.region_shape(LOWER_FACE_CROP)
                batch = LOWER_FACE_BATCH
            else:
                model, _ = build_renderer(name, appearance_channels=APPEARANCE_CHANNELS, upsample=upsample)
                size = NATIVE_SIZES[name]
                shape = (size, size)
                batch = BATCH[name]
            model.eval()
            gflop = renderer_gflops(model, size, shape=shape)
            inputs = np.random.default_rng(0).uniform(-1, 1, (batch, model.config.input_channels, *shape)).astype(np.float32)
            onnx_file = export_onnx(model, size, Path(tmp) / f"{name}-{upsample}.onnx", shape=shape)
            reference = None
            fp32_seconds = None
            for path in ("fp32", "bf16", "onnx") + (("bf16 compiled",) if args.compile else ()):
                base_path = path.split()[0]
                runner = RendererRunner(model, base_path, onnx_file=onnx_file if path == "onnx" else None,
                                        compile_batch=batch if path.endswith("compiled") else None)
                seconds = seconds_per_batch(runner, inputs, args.repeat)
                images = runner.render(inputs)
                if path == "fp32":
                    reference, fp32_seconds = images, seconds
                    quality = "—"
                else:
                    quality = f"{np.mean([psnr(a, b) for a, b in zip(images, reference)]):.1f}"
                fps = batch / seconds
                achieved = gflop * fps
                peak = peaks["bf16" if base_path == "bf16" else "fp32"]
                print(f"| {name} | {upsample} | {batch} | {gflop:.1f} | {path} | {1000 / fps:.0f} | {fps:.2f} | {achieved:.0f} "
                      f"| {100 * achieved / peak:.0f}% | {fp32_seconds / seconds:.2f} | {quality} |", flush=True)
                key = name if upsample in ("—", "nearest") else f"{name} {upsample}"
                if path != "bf16 compiled" and fps > fastest.get(key, {}).get("fps", 0):
                    fastest[key] = {"fps": round(fps, 2), "path": path, "gflop": round(gflop, 2), "batch": batch}
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"configs": fastest, "machine": machine, "peaks_gflops": peaks}, indent=1) + "\n")
        print(f"wrote {args.json_out}")


def machine_line() -> str:
    """CPU model, cores and torch version, printed by every benchmark so a figure can be placed."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}"


if __name__ == "__main__":
    main()
