"""An anchor's quality report: measured on stretches of the recordings held out from training.

The held-out stretches are the dataset's test split (never seen by either model), at most
:attr:`CreatePlan.report_frames` frames, spread evenly. Two views of them:

- **the anchor speaking them**: the finished bundle driven by the stretches' own speech (the
  whole pipeline: audio→mouth, jaw, maps, renderer, paste-back, label), then measured from the
  outside like any video (``evaluate.lipsync``: dlib afresh on every frame) beside the real
  stretches: lip sync, face found, the mouth closed in pauses;
- **the renderer on the real frames' maps** (``evaluate.renderer``): mouth sharpness (rendered
  over real, same frames) and identity (dlib face descriptors of rendered vs real).

Each measure has its target (:func:`_verdicts`); the report is *met* when no measure fails (one
that cannot be judged — no pause in the held-out speech — does not fail it). The preview puts
the anchor and the real recording side by side with the held-out speech.
"""

from __future__ import annotations

import json
import math
from itertools import islice
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .. import media
from ..composite.overlay import DisclosureConfig
from ..dataset import PreparedDataset, Segment, dataset_split
from ..errors import NewsanchorError
from ..evaluate import lipsync
from ..evaluate.renderer import choose_segments, evaluate_renderers, without_nan
from ..evaluate.renderer_scores import IDENTITY_TARGET, SHARPNESS_TARGET
from ..timing import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

REPORT_JSON, REPORT_MD, PREVIEW = "report.json", "report.md", "preview.mp4"
PREVIEW_HEIGHT = 360
# (key, what it measures) in the order reports list them; values, targets and verdicts come from _verdicts
MEASURES = (
    ("lip_sync", "lip sync: r(mouth opening, speech envelope)"),
    ("face_found", "face found by dlib (every frame)"),
    ("closed_in_pauses", "mouth closed in pauses (median opening)"),
    ("mouth_sharpness", "mouth sharpness (rendered / real detail)"),
    ("identity", "identity distance (dlib face descriptors)"),
)


def held_out_segments(dataset: PreparedDataset, max_frames: int) -> list[Segment]:
    """The test split's segments, as many as fit in ``max_frames`` (evenly spread), the last
    one cut short when a single segment is longer than that."""
    test = dataset_split(dataset)["test"]
    if not test:
        raise NewsanchorError(f"{dataset.root}: nothing is held out for the quality report; record more")
    for count in range(len(test), 0, -1):
        chosen = choose_segments(test, count)
        if sum(len(s) for s in chosen) <= max_frames:
            return chosen
    first = test[0]
    return [Segment(first.clip, first.start, first.start + max_frames)]


def held_out_frames(dataset: PreparedDataset, max_frames: int) -> int:
    return sum(len(s) for s in held_out_segments(dataset, max_frames))


def write_held_out_clips(dataset: PreparedDataset, segments: list[Segment], folder: Path) -> list[Path]:
    """Each segment as an mp4 of the real face crops with their sound (the "recording" the
    anchor is compared with); returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, segment in enumerate(segments):
        audio = dataset.arrays(segment.clip)["audio"]
        wav = audio[segment.start * SAMPLES_PER_FRAME:segment.stop * SAMPLES_PER_FRAME].astype(np.float32) / 32768
        path = folder / f"held_out_{index:02d}.mp4"
        media.write_video(path, islice(dataset.crops(segment.clip), segment.start, segment.stop), FPS, audio=wav, crf=14)
        paths.append(path)
    return paths


def _side_by_side(anchor: np.ndarray, real: np.ndarray) -> np.ndarray:
    """[H, W1 + W2, 3]: the anchor's frame (it carries the AI-generated label already) beside
    the real crop, both scaled to :data:`PREVIEW_HEIGHT`."""
    def scaled(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        size = (max(2, round(width * PREVIEW_HEIGHT / height)), PREVIEW_HEIGHT)
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if height > PREVIEW_HEIGHT else cv2.INTER_CUBIC)

    left = scaled(anchor)
    right = np.ascontiguousarray(scaled(real))
    cv2.putText(right, "recording", (8, PREVIEW_HEIGHT - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([left, right], axis=1)


def write_preview(anchor_video: Path, real_clips: list[Path], out: Path) -> None:
    """The anchor speaking the held-out speech beside the real stretches, with that speech."""
    real_frames = (frame for clip in real_clips for frame in media.iter_video_frames(clip, FPS))
    frames = (_side_by_side(a, r) for a, r in zip(media.iter_video_frames(anchor_video, FPS), real_frames))
    audio = media.read_audio(anchor_video, SAMPLE_RATE)
    label = DisclosureConfig()
    media.write_video(out, frames, FPS, audio=audio, metadata={**label.metadata(), "newsanchor_ai_generated": "true"},
                      reproducible=True)


def _verdicts(lip: dict, renderer: dict) -> dict[str, dict]:
    """Each measure: the anchor's value, the recording's, the target (as text) and met (bool,
    or None where it cannot be judged)."""
    out, real, targets, checks = lip["output"], lip["real"] or {}, lip["targets"], lip["checks"]
    sharpness, identity = renderer.get("sharpness_ratio"), renderer.get("identity_dist")

    def finite(value: float | None) -> bool:
        return value is not None and not math.isnan(value)

    return {
        "lip_sync": {"value": out.get("correlation"), "recording": real.get("correlation"),
                     "target": (f"≥ {targets['correlation']:.3f} ({lipsync.CORRELATION_SHARE:.0%} of the recording's)"
                                if targets.get("correlation") is not None else "the recording shows no lip sync to compare"),
                     "met": checks["correlation"]},
        "face_found": {"value": out.get("face_found"), "recording": real.get("face_found"),
                       "target": f"≥ {lipsync.FACE_FOUND_TARGET:.0%}", "met": checks["face_found"]},
        "closed_in_pauses": {"value": out.get("pause_opening"), "recording": real.get("pause_opening"),
                             "target": (f"≤ {targets['pause_opening_max']:.3f}" if targets.get("pause_opening_max") is not None
                                        else "no pause in the held-out speech"),
                             "met": checks["closed_in_pauses"]},
        "mouth_sharpness": {"value": sharpness, "recording": 1.0, "target": f"≥ {SHARPNESS_TARGET:g}",
                            "met": sharpness is not None and finite(sharpness) and sharpness >= SHARPNESS_TARGET},
        "identity": {"value": identity, "recording": 0.0, "target": f"≤ {IDENTITY_TARGET:g}",
                     "met": identity is not None and finite(identity) and identity <= IDENTITY_TARGET},
    }


def measure_quality(bundle: Path, dataset_dir: Path, renderer_run: Path, folder: Path, *, max_frames: int,
                    device: str | None = None, on_frames: Callable[[int, int], None] | None = None) -> dict:
    """Measure an anchor on held-out stretches; writes the report and the preview into ``folder``.

    Returns the report: ``{"met", "not_met", "held_out_s", "segments", "measures": {key:
    {"value", "recording", "target", "met"}}, "lip_sync": {...}, "renderer": {...}}``.
    ``on_frames(done, total)`` counts the frames rendered and measured.
    """
    dataset = PreparedDataset(dataset_dir)
    segments = held_out_segments(dataset, max_frames)
    frames = sum(len(s) for s in segments)
    # the anchor speaks, both videos are measured, the renderer is scored: four passes of the frames
    total = 4 * frames
    clips = write_held_out_clips(dataset, segments, folder / "held_out")
    anchor_video = folder / "anchor.mp4"

    def lip_progress(name: str, part_done: int, part_total: int) -> None:
        offsets = {"synthesize": 0, "measure output": frames, "measure recordings": 2 * frames}
        if on_frames:
            on_frames(min(total, offsets.get(name, 0) + round(part_done / max(part_total, 1) * frames)), total)

    lip = lipsync.evaluate_lipsync(bundle, clips, anchor_video, device=device, progress=lip_progress)
    done = 3 * frames
    scored = evaluate_renderers(dataset_dir, [renderer_run], segments=segments, device=device,
                                on_frames=None if on_frames is None
                                else lambda d, n: on_frames(min(total, done + d * frames // max(n, 1)), total))
    renderer = scored["runs"][str(renderer_run)]
    measures = _verdicts(lip, renderer)
    not_met = [key for key, m in measures.items() if m["met"] is False]
    report = {
        "met": not not_met, "not_met": not_met, "held_out_s": frames / FPS, "segments": len(segments),
        "measures": measures, "lip_sync": {k: v for k, v in lip.items() if k != "per_recording"},
        "renderer": {"scores": renderer, "static_baseline": scored["baseline_static"], "real": scored["real"],
                     "frames": scored["frames"]},
    }
    report = without_nan(report)
    write_preview(anchor_video, clips, folder / PREVIEW)
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=1, allow_nan=False))
    (folder / REPORT_MD).write_text(markdown_report(report) + "\n")
    if on_frames:
        on_frames(total, total)
    return report


def markdown_report(report: dict, accepted: list[str] | None = None) -> str:
    """The report as a short table: each measure, the anchor beside the recording, the target,
    met / NOT met; then the recording problems that were accepted."""
    def cell(value, key: str) -> str:
        if value is None:
            return "—"
        return format(value, ".0%" if key == "face_found" else ".3f")

    verdict = {True: "met", False: "NOT met", None: "not judged"}
    lines = [f"Quality on {report['held_out_s']:.0f} s held out from training "
             f"({report['segments']} stretch{'es' if report['segments'] != 1 else ''}): "
             + ("all targets met" if report["met"] else "NOT met: " + ", ".join(
                 dict(MEASURES)[k] for k in report["not_met"])), "",
             "| measure | anchor | recording | target | |", "|---|---|---|---|---|"]
    for key, label in MEASURES:
        m = report["measures"][key]
        lines.append(f"| {label} | {cell(m['value'], key)} | {cell(m['recording'], key)} | {m['target']} | {verdict[m['met']]} |")
    problems = accepted if accepted is not None else report.get("accepted_problems", [])
    if problems:
        lines += ["", "Recording problems accepted when the anchor was made:"] + [f"- {p}" for p in problems]
    return "\n".join(lines)
