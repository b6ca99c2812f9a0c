"""Preparation speed on real recordings: frames/s of `newsanchor prepare`, split by stage.

    .venv/bin/python benchmarks/prepare.py [--data ../shared/data] [--repeat 2]

For each clip: the whole `prepare` run (one worker), then each stage alone — decoding, face
detection, landmark prediction, and writing (crop + Canny + H.264) — and, side by side, the
same tracking with the detector on every frame (what tracking between key frames saves).
Stage times are per frame of the clip at 25 fps; `prepare` decodes every clip twice (once to
track, once to crop), so its total exceeds the sum of the single passes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from newsanchor import media
from newsanchor.config import PrepareConfig
from newsanchor.features.audio import mfcc
from newsanchor.features.crop import canny_edges, choose_crop_box, crop_frame
from newsanchor.features.face import FaceTracker
from newsanchor.prepare import prepare

CLIPS = {
    "hdtf_aoc (512², 25 fps)": ("clips/hdtf_aoc.mp4", 512),
    "mead_m030 (1080p, 29.97 fps)": ("clips/mead_m030_1080p.mp4", 512),
    "grid s1 bbaf2n (360×288)": ("grid_s1/bbaf2n.mp4", 256),
}


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(path: Path, size: int, repeat: int) -> dict[str, float]:
    info = media.probe(path)
    frames = media.count_output_frames(info, 25)
    config = PrepareConfig(size=size)

    decode = best_of(repeat, lambda: sum(1 for _ in media.iter_video_frames(path, info=info)))

    def track(key_interval: int) -> tuple[float, FaceTracker, list]:
        tracker = FaceTracker(replace(config.tracker, key_interval=key_interval))
        decoded = list(media.iter_video_frames(path, info=info))  # decoding is measured apart
        started = time.perf_counter()
        landmarks = [tracker.update(frame) for frame in decoded]
        return time.perf_counter() - started, tracker, landmarks

    tracked, tracker, landmarks = min((track(config.tracker.key_interval) for _ in range(repeat)), key=lambda r: r[0])
    every_frame, _, _ = min((track(1) for _ in range(repeat)), key=lambda r: r[0])

    found = np.array([points is not None for points in landmarks])
    stacked = np.stack([points if points is not None else np.zeros((68, 2), np.float32) for points in landmarks])
    box = choose_crop_box(stacked, found, config.crop_margin, config.crop_raise, (info.width, info.height))
    decoded = list(media.iter_video_frames(path, info=info))
    folder = Path(tempfile.mkdtemp())

    def write() -> None:
        def crops():
            for frame in decoded:
                crop = crop_frame(frame, box, size)
                np.packbits(canny_edges(crop, config.canny_low, config.canny_high, config.canny_blur), axis=-1)
                yield crop
        media.write_video(folder / "crops.mp4", crops(), 25, crf=config.crop_crf, preset=config.crop_preset,
                          keyframe_interval=config.crop_keyframe_interval)

    written = best_of(repeat, write)
    audio = best_of(repeat, lambda: mfcc(media.read_audio(path, info=info), n_video_frames=frames))

    def whole() -> None:
        shutil.rmtree(folder / "dataset", ignore_errors=True)
        prepare([path], folder / "dataset", config, workers=1)

    total = best_of(repeat, whole)
    shutil.rmtree(folder)
    return {
        "frames": frames,
        "prepare_fps": frames / total,
        "decode_ms": 1000 * decode / frames,
        "detect_ms": 1000 * tracker.seconds["detect"] / frames,
        "landmarks_ms": 1000 * tracker.seconds["landmarks"] / frames,
        "write_ms": 1000 * written / frames,
        "audio_ms": 1000 * audio / frames,
        "track_fps": frames / tracked,
        "every_frame_fps": frames / every_frame,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    args = parser.parse_args()

    header = ("clip", "frames", "prepare f/s", "decode ms", "detect ms", "landmarks ms", "write ms", "audio ms",
              "track f/s", "detect-every-frame f/s", "speed-up")
    rows = []
    for name, (relative, size) in CLIPS.items():
        r = measure(args.data / relative, size, args.repeat)
        rows.append((name, str(r["frames"]), f"{r['prepare_fps']:.1f}", f"{r['decode_ms']:.2f}", f"{r['detect_ms']:.2f}",
                     f"{r['landmarks_ms']:.2f}", f"{r['write_ms']:.2f}", f"{r['audio_ms']:.2f}", f"{r['track_fps']:.0f}",
                     f"{r['every_frame_fps']:.0f}", f"{r['track_fps'] / r['every_frame_fps']:.1f}×"))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print("\nms are per output frame (25 fps); prepare f/s is the whole command with one worker "
          "(decode twice + track + write + audio + dataset summary).")


if __name__ == "__main__":
    main()
