"""How much mouth detail the reference warp keeps, bilinear beside bicubic, with no network.

    .venv/bin/python benchmarks/warp_detail.py DATA/obama DATA/grid_s1 [--work runs/warp_detail] [--frames 150]

For held-out frames (the test split, ``--frames`` evenly spread) of each prepared dataset, the
lower-face-bank preset's reference — the bank mouth shaped most like the frame's, chosen from the
training split as training chooses it — is warped onto the frame (``mouth`` warp: head pose,
then jaw and lips) with each resampling, and its mouth box is compared with the real frame's:
detail (variance of the Laplacian, as ``evaluate renderer``'s ``sharpness_ratio``: mean over the
frames, warped over real) and PSNR (median). The warped reference is what the blend head copies,
so its detail bounds the render's. Region caches are cut into ``--work`` (reused).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from newsanchor.dataset import PreparedDataset, dataset_split
from newsanchor.evaluate.image_metrics import crop_box, laplacian_variance, mouth_box, psnr
from newsanchor.render.lower_face import LOWER_FACE_CONFIGS
from newsanchor.render.references import RESAMPLING, mouth_shape, nearest_mouths, warp_references
from newsanchor.train.lower_face import LowerFaceTrainConfig, cache_regions
from newsanchor.train.lower_face_data import build_region_cache, choose_reference_bank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from renderer import machine_line  # noqa: E402  (one line for the machine in every benchmark)


def measure(data: Path, work: Path, frames: int) -> dict[str, tuple[float, float]]:
    """``{resample: (detail warped / real, median mouth PSNR)}`` on ``frames`` held-out frames."""
    dataset = PreparedDataset(data)
    preset = LOWER_FACE_CONFIGS["lower-face-bank"]
    box = preset.region_box(dataset.size)
    x0, y0, w, h = box
    train, _ = cache_regions(data, work, LowerFaceTrainConfig(config="lower-face-bank"))
    bank = choose_reference_bank(dataset, train, preset.bank_size, source=str(data)).mouths
    test = build_region_cache(dataset, dataset_split(dataset)["test"], box, work / "cache" / "test")
    picks = np.unique(np.linspace(0, len(test) - 1, frames).round().astype(int))
    out = {}
    for resample in RESAMPLING:
        warped_detail, real_detail, mouth_psnr = [], [], []
        for i in picks:
            landmarks = test.landmarks[i]
            nearest = nearest_mouths(bank.shapes, mouth_shape(landmarks), 1)
            warped = warp_references(bank.crops[nearest], bank.landmarks[nearest], landmarks, box, "mouth", resample)[0]
            mouth = mouth_box(landmarks - (x0, y0), max(h, w))
            warped_detail.append(laplacian_variance(warped, mouth))
            real_detail.append(laplacian_variance(np.asarray(test.regions[i]), mouth))
            mouth_psnr.append(psnr(crop_box(warped, mouth), crop_box(np.asarray(test.regions[i]), mouth)))
        out[resample] = (float(np.mean(warped_detail) / np.mean(real_detail)), float(np.median(mouth_psnr)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=Path("runs/warp_detail"))
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    print(machine_line())
    print("| dataset | resampling | warped reference's mouth detail / real | mouth PSNR (dB) |")
    print("|---|---|---|---|")
    for data in args.datasets:
        for resample, (detail, mouth_psnr) in measure(data, args.work / data.name, args.frames).items():
            print(f"| {data.name} | {resample} | {detail:.2f} | {mouth_psnr:.2f} |")


if __name__ == "__main__":
    main()
