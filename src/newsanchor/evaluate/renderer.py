"""Renderer evaluation (paper §4.4): held-out frames rendered from their own facial maps.

For every test segment of the dataset's fixed split (``train.mouth_data``: contiguous blocks
no renderer was trained on), each face-found frame's map is drawn from its own edges and
landmarks, with the clip's appearance reference, exactly as in training, and rendered. Against
the real frame:

- PSNR and SSIM of the whole crop and of the mouth box (:func:`image_metrics.mouth_box` around
  the frame's real mouth landmarks);
- LMD: dlib's mouth landmarks found on the rendered frame (tracked through the segment, as in
  preparation) against those drawn into its map, in crop pixels;
- flicker: mean absolute frame-to-frame difference outside the lower faces of both frames
  (``flicker``), and inside them (``flicker_face``: what a lower-face renderer changes; it
  includes the speech's own motion, so compare it with the real footage's), beside the real
  footage's own;
- mouth sharpness: variance of the Laplacian in the mouth box, rendered over real on the same
  frames (``sharpness_ratio``; 1.0 = as crisp), and identity: distance of dlib's face-recognition
  descriptors of rendered and real frames (``identity_dist``, every 10th frame).

Beside each, the static baseline: the segment's first real frame repeated. On steady footage it
already scores high (GRID: ~25–31 dB); a renderer is worth what it adds, above all in the
mouth. Per segment the metrics are means over frames; the summary is the median over segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..dataset import PreparedDataset, Segment, dataset_split
from ..errors import NewsanchorError
from ..facemap.draw import lower_face_mask
from ..features.face import FaceTracker
from ..features.mouth import MOUTH
from ..render.inputs import (appearance_reference, compose_region, input_uses_edges, lower_face_input, region_alpha,
                             renderer_input)
from ..render.lower_face import LowerFaceConfig
from ..render.pix2pixhd import is_lower_face, load_renderer
from ..render.references import ReferenceChooser, load_reference_mouths, mouth_openness, reference_chooser
from ..render.runtime import RendererRunner, resolve_precision
from .renderer_scores import IDENTITY_EVERY, FlickerMeter, FrameScores, finite_mean, summarise

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


@dataclass
class _Frame:
    """One held-out frame: its index, real crop [S, S, 3], edges [S, S] and landmarks [68, 2]."""

    index: int
    real: np.ndarray
    edges: np.ndarray
    landmarks: np.ndarray


class _RendererUnderTest:
    """A saved renderer and how to make whole crops with it.

    pix2pixHD renders the whole crop from the frame's map and the clip's appearance reference.
    The lower-face renderer renders its region from the frame's map, the frame's own region
    with the lower face masked and its reference mouths (saved beside it) — the frame plays the
    template's part, as its map does — and the render is blended in through the mask twice: into
    the frame itself (the image every measure but the whole-crop ones scores: what synthesis
    shows) and onto the segment's first frame, the static baseline's, for the whole-crop PSNR and
    SSIM, so that no real pixel of the frame reaches them: what the renderer adds over a frozen
    frame is exactly what it painted.
    """

    def __init__(self, run: Path, device: torch.device, precision: str):
        model, self.config, extra = load_renderer(run, device)
        self.use_edges = input_uses_edges(extra)
        self.lower_face = is_lower_face(self.config)
        self.references = load_reference_mouths(run) if self.lower_face else None
        self.runner = RendererRunner(model, precision, device=device)
        self.chooser: ReferenceChooser | None = None

    def start_segment(self) -> None:
        """Frames of a new segment follow: a bank's references are chosen afresh for its first."""
        if isinstance(self.config, LowerFaceConfig) and self.references is not None:
            self.chooser = reference_chooser(self.config, self.references)

    def crops(self, frames: list[_Frame], reference: np.ndarray, static: _Frame) -> tuple[np.ndarray, np.ndarray]:
        """Whole crops ``[B, S, S, 3]`` uint8 for the frames: ``(in each frame, on the static frame)``
        (the same array twice for pix2pixHD)."""
        if not self.lower_face:
            out = self.runner.render(np.stack([renderer_input(f.edges, f.landmarks, reference, use_edges=self.use_edges)
                                               for f in frames]))
            return out, out
        config, references = self.config, self.references
        if not isinstance(config, LowerFaceConfig) or references is None:  # both hold whenever lower_face does
            raise RuntimeError("a lower-face renderer without its config or reference mouths")
        size = static.real.shape[0]
        box = config.region_box(size)
        x0, y0, w, h = box
        alphas = [region_alpha(np.stack([f.landmarks, static.landmarks]), box) for f in frames]
        chooser, warp, resample = self.chooser, config.reference_warp, config.reference_resample
        inputs = [lower_face_input(f.edges, f.landmarks, f.real[y0:y0 + h, x0:x0 + w], a,
                                   chooser.aligned(f.landmarks, box, warp, resample) if chooser else
                                   references.aligned(f.landmarks, box, warp, config.references, resample), box,
                                   use_edges=self.use_edges, masked_frame=config.masked_frame,
                                   match_colours=config.match_reference_colours, reference_warp=config.reference_warp)
                  for f, a in zip(frames, alphas)]
        regions = self.runner.render(np.stack(inputs))
        on_static = np.repeat(static.real[None], len(frames), axis=0)
        in_frame = np.stack([f.real for f in frames])
        for frame, own, still, region, alpha in zip(frames, in_frame, on_static, regions, alphas):
            own[y0:y0 + h, x0:x0 + w] = compose_region(frame.real[y0:y0 + h, x0:x0 + w], region, alpha)
            still[y0:y0 + h, x0:x0 + w] = compose_region(static.real[y0:y0 + h, x0:x0 + w], region, alpha)
        return in_frame, on_static


@dataclass
class _SegmentResult:
    scores: dict[str, FrameScores]
    static: FrameScores
    real_flicker: FlickerMeter
    real_flicker_face: FlickerMeter
    real_lmd: list[float]


def _evaluate_segment(dataset: PreparedDataset, segment: Segment, renderers: dict[str, _RendererUnderTest],
                      batch_size: int, on_frame: Callable[[list[np.ndarray]], None]) -> dict:
    """Render and score one held-out segment; ``on_frame`` gets each frame's row
    ``[static, each renderer's crop…, real]``. Returns the segment's row of the result."""
    landmarks = dataset.arrays(segment.clip)["landmarks"]
    found = ~np.isnan(landmarks[:, 0, 0])
    first_face = int(np.flatnonzero(found)[0])
    reference = appearance_reference(dataset.crop_frames(segment.clip, [first_face])[0], landmarks[first_face])
    result = _SegmentResult({name: FrameScores() for name in renderers}, FrameScores(), FlickerMeter(), FlickerMeter(), [])
    for renderer in renderers.values():
        renderer.start_segment()
    real_tracker = FaceTracker()
    static: _Frame | None = None
    pending: list[_Frame] = []
    scored = 0

    def flush() -> None:
        nonlocal scored
        if not pending:
            return
        first = static
        if first is None:  # set with the first frame that goes into pending
            raise RuntimeError("renderer evaluation: frames pending before the static frame")
        outputs = {name: r.crops(pending, reference, first) for name, r in renderers.items()}
        for j, frame in enumerate(pending):
            keep_out = lower_face_mask(frame.landmarks, frame.real.shape[0])
            identity = scored % IDENTITY_EVERY == 0
            for name in renderers:
                in_frame, on_static = outputs[name]
                result.scores[name].add(in_frame[j], frame.real, frame.landmarks, keep_out, whole=on_static[j],
                                        identity=identity)
            result.static.add(first.real, frame.real, frame.landmarks, keep_out, identity=identity)
            on_real = real_tracker.update(np.ascontiguousarray(frame.real))
            result.real_lmd.append(np.nan if on_real is None else
                                   float(np.linalg.norm(on_real[MOUTH] - frame.landmarks[MOUTH], axis=-1).mean()))
            result.real_flicker.add(frame.real, keep_out)
            result.real_flicker_face.add(frame.real, ~keep_out)
            scored += 1
            on_frame([first.real] + [outputs[n][0][j] for n in renderers] + [frame.real])
        pending.clear()

    for k, real, edges in _segment_frames(dataset, segment):
        if not found[k]:
            continue
        frame = _Frame(k, real, edges, landmarks[k].astype(np.float64))
        static = static or frame
        pending.append(frame)
        if len(pending) == batch_size:
            flush()
    flush()
    return {"clip": segment.clip, "start": segment.start, "stop": segment.stop,
            "runs": {name: s.summary() for name, s in result.scores.items()},
            "baseline_static": result.static.summary(),
            "real": {"flicker": result.real_flicker.value, "flicker_face": result.real_flicker_face.value,
                     "lmd": finite_mean(result.real_lmd)}}


class _SampleRows:
    """Chooses the sample rows of a samples PNG while frames are scored: ``wanted`` rows evenly
    spread over ``total`` frames, or (``open_mouths``) the frames whose real mouth opening (from
    ``openness``, [T] per segment, NaN where no face) is among the ``wanted`` widest."""

    def __init__(self, wanted: int, openness: list[np.ndarray], open_mouths: bool):
        self.wanted, self.open_mouths = wanted, open_mouths
        self.rows: list[np.ndarray] = []
        total = int(sum(np.isfinite(o).sum() for o in openness))
        self.every = max(1, total // wanted) if wanted else 0
        widest = np.sort(np.concatenate([o[np.isfinite(o)] for o in openness]))[::-1]
        self.threshold = widest[min(wanted, len(widest)) - 1] if wanted and len(widest) else np.inf

    def offer(self, row: list[np.ndarray], done: int, openness: float) -> None:
        """Frame number ``done`` (1-based, over all segments), its row of images [S, S, 3] each."""
        if len(self.rows) >= self.wanted:
            return
        if (openness >= self.threshold) if self.open_mouths else (done % self.every == 0):
            self.rows.append(np.concatenate(row, axis=1))


def _test_segments(dataset: PreparedDataset, clips: int | None, renderers: dict[str, _RendererUnderTest],
                   segments: Sequence[Segment] | None = None) -> list[Segment]:
    """The held-out segments to score (``segments`` as given, else ``clips`` of the test split
    evenly spread, or all), after checking that every renderer fits the dataset's crop size."""
    test = list(segments) if segments is not None else choose_segments(dataset_split(dataset)["test"], clips)
    if not test:
        raise NewsanchorError(f"{dataset.root}: the test split is empty; prepare more recordings")
    for name, r in renderers.items():
        if dataset.size % r.config.size_multiple:
            raise NewsanchorError(f"{name}: the renderer needs a crop size that is a multiple of "
                                  f"{r.config.size_multiple}; {dataset.root} has {dataset.size}")
    return test


def evaluate_renderers(dataset_dir: str | Path, runs: Sequence[str | Path], *, clips: int | None = None,
                       batch_size: int = 8, device: str | None = None, precision: str = "auto",
                       samples: int = 0, on_frames: Callable[[int, int], None] | None = None,
                       sample_open_mouths: bool = False, segments: Sequence[Segment] | None = None) -> dict:
    """Score renderers and the static baseline on the dataset's held-out test segments.

    Args:
        runs: directories holding ``renderer.json`` (train runs or snapshots).
        clips: evaluate this many test segments, evenly spread (default all).
        segments: score exactly these (held-out) segments instead.
        samples: keep this many sample rows (static | rendered per run | real) for a PNG: evenly
            spread, or (``sample_open_mouths``) the frames whose real mouth is most open.
        on_frames: progress callback ``(frames done, frames in all)``.

    Returns:
        ``{"dataset", "segments", "frames", "runs": {run: {metric: median}}, "baseline_static":
        {...}, "real": {"flicker", "lmd"}, "per_segment": [...], "samples": [RGB arrays]}``.
    """
    # 1. the renderers and the held-out segments
    device_t = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        precision = resolve_precision(precision, device_t)
    except ValueError as err:
        raise NewsanchorError(str(err)) from None
    renderers = {str(run): _RendererUnderTest(Path(run), device_t, precision) for run in runs}
    dataset = PreparedDataset(dataset_dir)
    test = _test_segments(dataset, clips, renderers, segments)
    openness = [mouth_openness(dataset.arrays(s.clip)["landmarks"][s.start:s.stop]) for s in test]
    total = int(sum(np.isfinite(o).sum() for o in openness))
    sample_rows = _SampleRows(samples, openness, sample_open_mouths)

    # 2. every segment scored, frame by frame (the frames with a face)
    done = 0
    per_segment: list[dict] = []
    for segment, segment_openness in zip(test, openness):
        with_face = iter(np.flatnonzero(np.isfinite(segment_openness)))

        def on_frame(row: list[np.ndarray]) -> None:
            nonlocal done
            done += 1
            sample_rows.offer(row, done, float(segment_openness[next(with_face)]))
            if on_frames and done % batch_size == 0:
                on_frames(done, total)

        per_segment.append(_evaluate_segment(dataset, segment, renderers, batch_size, on_frame))
    if on_frames:
        on_frames(total, total)

    # 3. medians over the segments
    result = {
        "dataset": str(dataset.root), "segments": len(test), "frames": total, "precision": precision,
        "runs": {name: summarise([p["runs"][name] for p in per_segment]) for name in renderers},
        "baseline_static": summarise([p["baseline_static"] for p in per_segment]),
        "real": summarise([p["real"] for p in per_segment]),
        "per_segment": per_segment,
    }
    if samples:
        result["samples"] = sample_rows.rows
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
    head = ("| | PSNR (dB) | mouth PSNR (dB) | SSIM | mouth SSIM | LMD (px) | flicker | lower-face flicker "
            "| mouth sharpness ratio | identity dist |")
    lines = [f"{result['segments']} test segments, {result['frames']} frames; medians over segments. "
             f"Real footage: flicker {result['real']['flicker']:.2f}, lower-face flicker {result['real']['flicker_face']:.2f}, "
             f"LMD of dlib on the real frames {result['real']['lmd']:.2f} px.", "", head, "|---" * 10 + "|"]
    rows = list(result["runs"].items()) + [("static baseline (first frame repeated)", result["baseline_static"])]
    for name, m in rows:
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['psnr_mouth']:.2f} | {m['ssim']:.3f} | {m['ssim_mouth']:.3f} "
                     f"| {m['lmd']:.2f} | {m['flicker']:.2f} | {m['flicker_face']:.2f} | {m['sharpness_ratio']:.2f} "
                     f"| {m['identity_dist']:.3f} |")
    return "\n".join(lines) + "\n"
