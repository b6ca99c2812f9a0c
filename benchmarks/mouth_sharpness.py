"""Mouth sharpness of a finished video against the presenter's own recordings, measured from
outside the pipeline: dlib's face detector and 68-point model run afresh on every sampled frame
(no tracking, no landmarks from the anchor), the mouth box (points 48–67, widened by a quarter of
its width) is scaled to 96 px wide, and the variance of its Laplacian is averaged; the ratio is
output over recordings (1.0 = as crisp as the real mouth).

    .venv/bin/python benchmarks/mouth_sharpness.py demo.mp4 [RECORDING…] [--every 2] [--json-out FILE]

Without recordings it measures against the demo actor's recordings in the demo cache (what
``make demo`` trained on). The label's corner and captions are outside the mouth box.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from renderer import machine_line  # noqa: E402

from newsanchor.evaluate.image_metrics import laplacian_variance, mouth_box  # noqa: E402
from newsanchor.features.face import detect_faces, landmarks_in_box  # noqa: E402
from newsanchor.media import iter_video_frames  # noqa: E402


def mouth_details(video: Path, every: int) -> list[float]:
    """Laplacian variance of the mouth box of every ``every``-th frame where dlib finds one face."""
    values = []
    for index, frame in enumerate(iter_video_frames(video, 25)):
        if index % every:
            continue
        faces = detect_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        if len(faces) != 1:
            continue
        landmarks = landmarks_in_box(frame, faces[0][0])
        values.append(laplacian_variance(frame, mouth_box(landmarks, max(frame.shape[:2]))))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("recordings", type=Path, nargs="*")
    parser.add_argument("--every", type=int, default=2, help="measure every N-th frame")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    recordings = args.recordings
    if not recordings:
        from newsanchor.demo.build import demo_cache

        recordings = sorted((demo_cache() / "recordings").glob("*.mp4"))
        if not recordings:
            raise SystemExit("no recordings given and no demo recordings cached (run `make demo` first)")
    output = mouth_details(args.video, args.every)
    real = [v for r in recordings for v in mouth_details(r, args.every)]
    ratio = float(np.mean(output) / np.mean(real))
    print(f"{machine_line()}")
    print("| video | frames measured | mean Laplacian variance of the mouth (96 px wide) |")
    print("|---|---|---|")
    print(f"| {args.video.name} | {len(output)} | {np.mean(output):.1f} |")
    print(f"| recordings ({len(recordings)}) | {len(real)} | {np.mean(real):.1f} |")
    print(f"\nmouth sharpness, output over recordings: **{ratio:.2f}**")
    if args.json_out:
        args.json_out.write_text(json.dumps({"video": str(args.video), "recordings": [str(r) for r in recordings],
                                             "frames": len(output), "recording_frames": len(real),
                                             "sharpness_ratio": round(ratio, 3)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
