"""The scores of renderer evaluation (:mod:`newsanchor.evaluate.renderer`): per frame of one output
stream (a renderer's or the static baseline's) PSNR, SSIM, LMD, mouth detail, identity and
flicker, their means over a segment and medians over segments, and the floors an anchor's
quality report holds a renderer to."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..features.face import FaceTracker
from ..features.mouth import MOUTH
from .image_metrics import crop_box, identity_distance, laplacian_variance, mouth_box, psnr, ssim

IDENTITY_EVERY = 10  # dlib's face descriptor takes ~0.1 s: measured on every 10th frame
# The floors of the lower-face renderer (its issue) that an anchor's quality report holds it to:
# the rendered mouth as detailed as the real one's (within 15 %), and the same person as close
# as dlib's descriptors can tell (< 0.6 is the same person for dlib; two clips of one person
# 0.05–0.3; real frames 200 ms apart 0.16–0.18, benchmarks/identity_floor.py).
SHARPNESS_TARGET = 0.85
IDENTITY_TARGET = 0.10


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
class FrameScores:
    """Per-frame scores of one output stream (a renderer's or the static baseline's)."""

    psnr: list[float] = field(default_factory=list)
    psnr_mouth: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    ssim_mouth: list[float] = field(default_factory=list)
    lmd: list[float] = field(default_factory=list)
    detail: list[float] = field(default_factory=list)  # Laplacian variance of the mouth box
    detail_real: list[float] = field(default_factory=list)  # the same on the real frame
    identity_dist: list[float] = field(default_factory=list)
    flicker: FlickerMeter = field(default_factory=FlickerMeter)
    flicker_face: FlickerMeter = field(default_factory=FlickerMeter)  # inside the lower face
    tracker: FaceTracker = field(default_factory=FaceTracker)

    def add(self, image: np.ndarray, real: np.ndarray, drawn: np.ndarray, keep_out: np.ndarray, *,
            whole: np.ndarray | None = None, identity: bool = False) -> None:
        """Score ``image`` against ``real`` (both [S, S, 3]); the whole-crop PSNR and SSIM score
        ``whole`` instead when given (a lower-face render pasted onto the static frame)."""
        box = mouth_box(drawn, real.shape[0])
        whole = image if whole is None else whole
        self.psnr.append(psnr(whole, real))
        self.psnr_mouth.append(psnr(crop_box(image, box), crop_box(real, box)))
        self.ssim.append(ssim(whole, real))
        self.ssim_mouth.append(ssim(crop_box(image, box), crop_box(real, box)))
        self.detail.append(laplacian_variance(image, box))
        self.detail_real.append(laplacian_variance(real, box))
        if identity:
            self.identity_dist.append(identity_distance(image, real, drawn))
        found = self.tracker.update(np.ascontiguousarray(image))
        self.lmd.append(np.nan if found is None else float(np.linalg.norm(found[MOUTH] - drawn[MOUTH], axis=-1).mean()))
        self.flicker.add(image, keep_out)
        self.flicker_face.add(image, ~keep_out)

    def summary(self) -> dict[str, float]:
        out = {k: finite_mean(getattr(self, k)) for k in ("psnr", "psnr_mouth", "ssim", "ssim_mouth", "lmd", "identity_dist")}
        out["flicker"] = self.flicker.value
        out["flicker_face"] = self.flicker_face.value
        out["lmd_found"] = float(np.isfinite(self.lmd).mean()) if self.lmd else float("nan")
        # ratio of mean detail over the same frames: 1.0 = as crisp as the real mouth
        out["sharpness_ratio"] = finite_mean(self.detail) / max(finite_mean(self.detail_real), 1e-9)
        return out


def finite_mean(values: list[float]) -> float:
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
