"""Renderer evaluation (paper §4.4): held-out frames rendered from their own facial maps.

For every test segment of the dataset's fixed split (``train.mouth_data``: contiguous blocks
no renderer was trained on), each face-found frame's map is drawn from its own edges and
landmarks, with the clip's appearance reference, exactly as in training, and rendered. Against
the real frame:

- PSNR and SSIM of the whole crop and of the mouth box (:func:`image_metrics.mouth_box` around
  the frame's real mouth landmarks);
- LMD: dlib's mouth landmarks found on the rendered frame (tracked through the segment, as in
  preparation) against those drawn into its map, in crop pixels;
- flicker: mean absolute frame-to-frame difference outside the lower faces of both frames,
  rendered (``flicker``) beside the real footage's own (``flicker_real``).

Beside each, the static baseline: the segment's first real frame repeated. On steady footage it
already scores high (GRID: ~25–31 dB); a renderer is worth what it adds, above all in the
mouth. Per segment the metrics are means over frames; the summary is the median over segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..dataset import PreparedDataset
from ..errors import NewsanchorError
from ..facemap.draw import lower_face_mask
from ..features.face import FaceTracker
from ..features.mouth import MOUTH
from ..render.inputs import appearance_reference, input_uses_edges, renderer_input
from ..render.pix2pixhd import load_renderer
from ..render.runtime import RendererRunner, resolve_precision
from ..train.mouth_data import Segment, dataset_split
from .image_metrics import crop_box, mouth_box, psnr, ssim

METRICS = ("psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd", "flicker")


class FlickerMeter:
    """Streaming flicker: mean absolute difference (0–255, mean over RGB) between consecutive
    frames [S, S, 3], over pixels outside both frames' ``keep_out`` masks [S, S] bool."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, frame: np.ndarray, keep_out: np.ndarray) -> None:
        current = frame.astype(np.float32)
        if self._previous is not None:
            previous, previous_out = self._previous
            outside = ~(keep_out | previous_out)
            self.total += float(np.abs(current - previous).mean(axis=-1)[outside].sum())
            self.count += int(outside.sum())
        self._previous = (current, keep_out)

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


@dataclass
class _Scores:
    """Per-frame scores of one output stream (the renderer's or the static baseline's)."""

    psnr: list[float] = field(default_factory=list)
    psnr_mouth: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    ssim_mouth: list[float] = field(default_factory=list)
    lmd: list[float] = field(default_factory=list)
    flicker: FlickerMeter = field(default_factory=FlickerMeter)
    tracker: FaceTracker = field(default_factory=FaceTracker)

    def add(self, image: np.ndarray, real: np.ndarray, drawn: np.ndarray, keep_out: np.ndarray) -> None:
        box = mouth_box(drawn, real.shape[0])
        self.psnr.append(psnr(image, real))
        self.psnr_mouth.append(psnr(crop_box(image, box), crop_box(real, box)))
        self.ssim.append(ssim(image, real))
        self.ssim_mouth.append(ssim(crop_box(image, box), crop_box(real, box)))
        found = self.tracker.update(np.ascontiguousarray(image))
        self.lmd.append(np.nan if found is None else float(np.linalg.norm(found[MOUTH] - drawn[MOUTH], axis=-1).mean()))
        self.flicker.add(image, keep_out)

    def summary(self) -> dict[str, float]:
        out = {k: _finite_mean(getattr(self, k)) for k in ("psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd")}
        out["flicker"] = self.flicker.value
        out["lmd_found"] = float(np.isfinite(self.lmd).mean()) if self.lmd else float("nan")
        return out


def _finite_mean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _median(rows: list[dict[str, float]], key: str) -> float:
    values = np.asarray([r[key] for r in rows], dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Median over segments of each metric in the rows."""
    return {key: _median(rows, key) for key in rows[0]} if rows else {}


def choose_segments(segments: list[Segment], limit: int | None) -> list[Segment]:
    """All segments, or ``limit`` of them evenly spread over the list (deterministic)."""
    if limit is None or limit >= len(segments):
        return list(segments)
    if limit < 1:
        raise NewsanchorError(f"--clips must be at least 1, got {limit}")
    picks = np.linspace(0, len(segments) - 1, limit).round().astype(int)
    return [segments[i] for i in picks]


def _segment_frames(dataset: PreparedDataset, segment: Segment) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(frame index, real crop [S, S, 3] uint8, edges [S, S] bool) over the segment, one pass."""
    for index, (crop, edges) in enumerate(zip(dataset.crops(segment.clip), dataset.edge_maps(segment.clip))):
        if index >= segment.stop:
            break
        if index >= segment.start:
            yield index, crop, edges


class _RendererUnderTest:
    def __init__(self, run: Path, device: torch.device, precision: str):
        model, self.config, extra = load_renderer(run, device)
        self.use_edges = input_uses_edges(extra)
        self.runner = RendererRunner(model, precision, device=device)

    def render(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Inputs [8, S, S] float32 each → RGB [B, S, S, 3] uint8."""
        return self.runner.render(np.stack(inputs))


def evaluate_renderers(dataset_dir: str | Path, runs: list[str | Path], *, clips: int | None = None,
                       batch_size: int = 8, device: str | None = None, precision: str = "auto",
                       samples: int = 0, on_frames: Callable[[int, int], None] | None = None) -> dict:
    """Score renderers and the static baseline on the dataset's held-out test segments.

    Args:
        runs: directories holding ``renderer.json`` (train runs or snapshots).
        clips: evaluate this many test segments, evenly spread (default all).
        samples: keep this many sample rows (map-free: static | rendered per run | real) for a PNG.
        on_frames: progress callback ``(frames done, frames in all)``.

    Returns:
        ``{"dataset", "segments", "frames", "runs": {run: {metric: median}}, "baseline_static":
        {...}, "real": {"flicker", "lmd"}, "per_segment": [...], "samples": [RGB arrays]}``.
    """
    device_t = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        precision = resolve_precision(precision, device_t)
    except ValueError as err:
        raise NewsanchorError(str(err)) from None
    renderers = {str(run): _RendererUnderTest(Path(run), device_t, precision) for run in runs}
    dataset = PreparedDataset(dataset_dir)
    test = choose_segments(dataset_split(dataset)["test"], clips)
    if not test:
        raise NewsanchorError(f"{dataset.root}: the test split is empty; prepare more recordings")
    for name, r in renderers.items():
        if dataset.size % r.config.size_multiple:
            raise NewsanchorError(f"{name}: the renderer needs a crop size that is a multiple of "
                                  f"{r.config.size_multiple}; {dataset.root} has {dataset.size}")
    found_per_segment = [dataset.arrays(s.clip)["face_found"][s.start:s.stop] for s in test]
    total = int(sum(f.sum() for f in found_per_segment))
    done = 0
    per_segment: list[dict] = []
    sample_rows: list[np.ndarray] = []
    sample_every = max(1, total // samples) if samples else 0
    for segment, found in zip(test, found_per_segment):
        landmarks = dataset.arrays(segment.clip)["landmarks"]
        first_face = int(np.flatnonzero(~np.isnan(landmarks[:, 0, 0]))[0])
        reference = appearance_reference(dataset.crop_frames(segment.clip, [first_face])[0], landmarks[first_face])
        scores = {name: _Scores() for name in renderers}
        static = _Scores()
        real_tracker, real_flicker, real_lmd = FaceTracker(), FlickerMeter(), []
        static_frame = None
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []

        def flush() -> None:
            nonlocal done
            if not pending:
                return
            outputs = {name: r.render([renderer_input(edges, landmarks[k], reference, use_edges=r.use_edges)
                                       for k, _, edges in pending])
                       for name, r in renderers.items()}
            for j, (k, real, _) in enumerate(pending):
                keep_out = lower_face_mask(landmarks[k], real.shape[0])
                for name in renderers:
                    scores[name].add(outputs[name][j], real, landmarks[k], keep_out)
                static.add(static_frame, real, landmarks[k], keep_out)
                on_real = real_tracker.update(np.ascontiguousarray(real))
                real_lmd.append(np.nan if on_real is None else
                                float(np.linalg.norm(on_real[MOUTH] - landmarks[k][MOUTH], axis=-1).mean()))
                real_flicker.add(real, keep_out)
                done += 1
                if sample_every and done % sample_every == 0 and len(sample_rows) < samples:
                    sample_rows.append(np.concatenate([static_frame] + [outputs[n][j] for n in renderers] + [real], axis=1))
            pending.clear()
            if on_frames:
                on_frames(done, total)

        for k, real, edges in _segment_frames(dataset, segment):
            if not found[k - segment.start]:
                continue
            if static_frame is None:
                static_frame = real
            pending.append((k, real, edges))
            if len(pending) == batch_size:
                flush()
        flush()
        per_segment.append({"clip": segment.clip, "start": segment.start, "stop": segment.stop,
                            "runs": {name: s.summary() for name, s in scores.items()},
                            "baseline_static": static.summary(),
                            "real": {"flicker": real_flicker.value, "lmd": _finite_mean(real_lmd)}})

    result = {
        "dataset": str(dataset.root), "segments": len(test), "frames": total, "precision": precision,
        "runs": {name: summarise([p["runs"][name] for p in per_segment]) for name in renderers},
        "baseline_static": summarise([p["baseline_static"] for p in per_segment]),
        "real": summarise([p["real"] for p in per_segment]),
        "per_segment": per_segment,
    }
    if samples:
        result["samples"] = sample_rows
    return result


def without_nan(value):
    """The result with every NaN (e.g. LMD where dlib found no face at all) as None, for strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def markdown_table(result: dict) -> str:
    """One row per renderer and one for the static baseline; medians over test segments."""
    head = "| | PSNR (dB) | mouth PSNR (dB) | SSIM | mouth SSIM | LMD (px) | flicker |"
    lines = [f"{result['segments']} test segments, {result['frames']} frames; medians over segments. "
             f"Real footage: flicker {result['real']['flicker']:.2f}, LMD of dlib on the real frames "
             f"{result['real']['lmd']:.2f} px.", "", head, "|---|---|---|---|---|---|---|"]
    rows = list(result["runs"].items()) + [("static baseline (first frame repeated)", result["baseline_static"])]
    for name, m in rows:
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['psnr_mouth']:.2f} | {m['ssim']:.3f} | {m['ssim_mouth']:.3f} "
                     f"| {m['lmd']:.2f} | {m['flicker']:.2f} |")
    return "\n".join(lines) + "\n"
