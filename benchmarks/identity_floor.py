"""What `identity_dist` reads between two *real* frames of the same person: the floor any
renderer's figure should be read against. `evaluate renderer` compares dlib's face-recognition
descriptors of a rendered and the real frame (both at the real frame's landmarks); here the
rendered frame is replaced by the real frame 1, 5 or 25 frames (40 ms, 200 ms, 1 s) earlier,
on the dataset's held-out test segments.

    .venv/bin/python benchmarks/identity_floor.py DATASET… [--segments 6] [--every 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from renderer import machine_line  # noqa: E402

from newsanchor.dataset import PreparedDataset, dataset_split  # noqa: E402
from newsanchor.evaluate.image_metrics import identity_distance  # noqa: E402

GAPS = (1, 5, 25)


def real_to_real(dataset: PreparedDataset, segments: int, every: int) -> dict[int, list[float]]:
    """Identity distances between real frame i and real frame i + gap, for every ``every``-th
    frame of ``segments`` test segments spread evenly, per gap (frames without a face skipped)."""
    test = dataset_split(dataset)["test"]
    picks = [test[i] for i in np.unique(np.linspace(0, len(test) - 1, min(segments, len(test))).astype(int))]
    found: dict[int, list[float]] = {gap: [] for gap in GAPS}
    for segment in picks:
        arrays = dataset.arrays(segment.clip)
        starts = [i for i in range(segment.start, segment.stop - max(GAPS), every)]
        wanted = sorted({i + gap for i in starts for gap in (0, *GAPS)})
        frames = dict(zip(wanted, dataset.crop_frames(segment.clip, wanted)))
        for i in starts:
            for gap in GAPS:
                j = i + gap
                if arrays["face_found"][i] and arrays["face_found"][j]:
                    found[gap].append(identity_distance(frames[i], frames[j], arrays["landmarks"][j]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--segments", type=int, default=6, help="test segments, spread evenly")
    parser.add_argument("--every", type=int, default=10, help="frames between the pairs' first frames")
    args = parser.parse_args()
    print(machine_line())
    print("| dataset | " + " | ".join(f"real vs real {gap} frame(s) later" for gap in GAPS) + " | pairs |")
    print("|---|" + "---|" * (len(GAPS) + 1))
    for path in args.datasets:
        found = real_to_real(PreparedDataset(path), args.segments, args.every)
        cells = " | ".join(f"{np.median(found[gap]):.3f}" for gap in GAPS)
        print(f"| {path.name} | {cells} | {len(found[GAPS[0]])} |")
    print("(medians of identity_dist; evaluate renderer's target for a render is ≤ 0.10)")


if __name__ == "__main__":
    main()
