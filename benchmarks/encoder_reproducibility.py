"""Does the same video come out twice? One anchor's frames for one recording are rendered once,
then encoded N times in one process, as synthesis did before (CRF 18, x264's macroblock-tree rate control on) and as it does now
(CRF 20, macroblock tree off: `media.write_video(..., reproducible=True)`). Prints the number of
distinct video bitstreams, the file size and the PSNR of the decoded frames against the
rendered ones, side by side.

    .venv/bin/python benchmarks/encoder_reproducibility.py --anchor ANCHOR --audio SPEECH [--runs 12]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from renderer import machine_line  # noqa: E402

from newsanchor.bundle import load_bundle  # noqa: E402
from newsanchor.media import read_audio, write_video  # noqa: E402
from newsanchor.pipeline import AnchorPipeline, SynthesisSettings  # noqa: E402

SETTINGS = {"before (CRF 18, mbtree on)": (18, False), "now (CRF 20, mbtree off)": (20, True)}


def video_digest(path: Path) -> str:
    with av.open(str(path)) as container:
        return hashlib.sha256(b"".join(bytes(p) for p in container.demux(video=0))).hexdigest()[:12]


def psnr_of(path: Path, frames: np.ndarray) -> float:
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    mse = float(np.mean((decoded.astype(np.float64) - frames) ** 2))
    return 10 * np.log10(255.0 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchor", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    print(machine_line())
    pipeline = AnchorPipeline(load_bundle(args.anchor), settings=SynthesisSettings(precision="fp32"), device="cpu")
    frames = np.stack(list(pipeline.frames(pipeline.mouth_trajectory(read_audio(args.audio, 16000)))))
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{len(frames)} frames {frames.shape[2]}×{frames.shape[1]}, {args.runs} encodes each")
        print("| encoding | distinct bitstreams | size (kB) | PSNR vs rendered (dB) |\n|---|---|---|---|")
        for name, (crf, reproducible) in SETTINGS.items():
            digests = []
            for run in range(args.runs):
                out = Path(tmp) / f"{crf}_{run}.mp4"
                write_video(out, iter(frames), 25, crf=crf, reproducible=reproducible)
                digests.append(video_digest(out))
            print(f"| {name} | {len(set(digests))} ({', '.join(f'{d}×{digests.count(d)}' for d in sorted(set(digests)))}) "
                  f"| {out.stat().st_size / 1000:.0f} | {psnr_of(out, frames):.2f} |")


if __name__ == "__main__":
    main()
