"""Paste a rendered face crop back into the template frame (pipeline stage 6, paper §4.4).

The renderer returns the whole crop, but only the lower face differs from the template in a way
that matters (new mouth, corrected jaw). Pasting the whole square would show its edge wherever
the render is a shade off the template, which is the seam viewers notice first in lip-sync
videos. So the render is blended in through a soft mask over the lower face only:

1. the mask: the lower-face polygon (jaw 2..14 + nose bottom 35..31, the region whose edges the
   facial map removes, :func:`newsanchor.facemap.lower_face_mask`) dilated by ``margin`` IODs,
   or a fixed ellipse over the lower face when no landmarks are given;
2. forced to zero within 3 σ of the box border, then Gaussian-blurred with σ = ``feather`` IODs,
   so its alpha is exactly 0 on the crop's border (the crop edge can never show) and changes
   smoothly everywhere;
3. colour matching (:func:`match_colour`) of the render to the template on the blend band, so
   the two sides of the band have the same tint before they are mixed.

Everything works on the box (and within it, on the mask's bounding rectangle), not the frame.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from newsanchor.facemap.draw import lower_face_mask
from newsanchor.features.crop import CropBox
from newsanchor.features.mouth import N_LANDMARKS, face_pose

# Blur σ of the mask edge, in inter-ocular distances (IOD ≈ 110 px for a 512 px box): wide enough
# that the band hides a small tint or sharpness difference, narrow enough to stay off the eyes.
DEFAULT_FEATHER = 0.12
# Dilation of the lower-face polygon, in IODs. About 2 σ: the polygon itself (where the renderer
# moved the jaw and mouth) stays at alpha ≥ 0.97 after the blur.
DEFAULT_MARGIN = 0.25
# Without landmarks: an ellipse over the lower face, (centre x, centre y, half width, half height)
# as fractions of the box. Derived from the dataset crop (PrepareConfig: side = 2.1 × landmark
# box, centre raised 0.12 box): the nose bottom sits near y ≈ 0.60, the chin near y ≈ 0.80 and the
# jaw is ≈ 0.4 of the side wide at mouth height.
DEFAULT_ELLIPSE = (0.5, 0.70, 0.23, 0.16)
# IOD as a fraction of the box side for the same crops (side ≈ 4.6 IOD); scales the feather when
# there are no landmarks to measure the face.
IOD_PER_SIDE = 0.22
# Below this total blend-band weight (α(1−α) summed over pixels) the statistics are too noisy.
MIN_BAND_WEIGHT = 10.0

# BT.601 full-range RGB → (Y, Cb, Cr) without the 128 offsets (they cancel in an affine match).
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


def box_tuple(crop_box: CropBox | Sequence[int]) -> tuple[int, int, int, int]:
    """A :class:`CropBox` or ``(x, y, w, h)`` in source pixels → ``(x, y, w, h)`` ints, w, h > 0."""
    values = crop_box.to_list() if isinstance(crop_box, CropBox) else list(crop_box)
    if len(values) != 4:
        raise ValueError(f"crop box must be (x, y, w, h), got {values}")
    x, y, w, h = (int(round(float(v))) for v in values)
    if w <= 0 or h <= 0:
        raise ValueError(f"crop box must have positive width and height, got {w}×{h}")
    return x, y, w, h


def _check_image(image: np.ndarray, name: str, caller: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{caller}: {name} must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
    return image


def _landmark_sets(landmarks: np.ndarray, caller: str) -> np.ndarray:
    """``[68, 2]`` or ``[N, 68, 2]`` → float64 ``[N, 68, 2]``, finite."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape[-2:] != (N_LANDMARKS, 2) or points.ndim not in (2, 3):
        raise ValueError(f"{caller}: landmarks must be [68, 2] or [N, 68, 2], got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{caller}: landmarks contain NaN or inf (a frame without a face?)")
    return points.reshape(-1, N_LANDMARKS, 2)


def blend_mask(shape: tuple[int, int], landmarks: np.ndarray | None = None, *,
               feather: float = DEFAULT_FEATHER, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Soft lower-face mask of one box.

    Args:
        shape: ``(h, w)`` of the box in frame pixels.
        landmarks: ``[68, 2]`` (or ``[N, 68, 2]``: the union of N faces, e.g. the template's and the
            rendered face's, so that neither chin shows) in the box's pixel coordinates, or None
            for :data:`DEFAULT_ELLIPSE`.
        feather: Gaussian σ of the edge in IODs (measured from the landmarks, else
            :data:`IOD_PER_SIDE` × the box's side).
        margin: dilation of the lower-face polygon in IODs (unused without landmarks).

    Returns:
        ``[h, w]`` float32 alpha in [0, 1]; exactly 0 on the box's outer 1-pixel border and
        wherever the blurred mask does not reach. A face reaching closer than 3 σ to the border
        is cut there: the crop edge never shows, at the price of the template showing there.
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"blend_mask: shape must be positive, got {shape}")
    if not feather > 0:
        raise ValueError(f"blend_mask: feather must be > 0, got {feather}")
    if margin < 0:
        raise ValueError(f"blend_mask: margin must be >= 0, got {margin}")
    sets = None if landmarks is None else _landmark_sets(landmarks, "blend_mask")
    iod = float(np.mean(face_pose(sets).scale)) if sets is not None else IOD_PER_SIDE * math.sqrt(h * w)
    sigma = max(0.5, feather * iod)
    # The mask is smooth, so build and blur it at a reduced resolution where σ is 2–4 pixels:
    # the blur's cost then no longer grows with the face size.
    factor = max(1, int(sigma // 2))
    hl, wl = -(-h // factor), -(-w // factor)
    sigma_low = sigma * wl / w
    if sets is not None:
        # pixel centres map through the resize exactly as cv2.resize maps them
        low = (sets + 0.5) * (wl / w, hl / h) - 0.5
        side = max(hl, wl)
        hard = np.zeros((hl, wl), dtype=bool)
        for points in low:
            hard |= lower_face_mask(points, side, margin=margin)[:hl, :wl]
        hard = hard.astype(np.float32)
    else:
        hard = np.zeros((hl, wl), dtype=np.uint8)
        cx, cy, ax, ay = DEFAULT_ELLIPSE
        shift = 4  # sub-pixel centre and axes (1/16 px)
        centre = (round((cx * wl - 0.5) * 16), round((cy * hl - 0.5) * 16))
        axes = (round(ax * wl * 16), round(ay * hl * 16))
        cv2.ellipse(hard, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, shift)
        hard = hard.astype(np.float32)
    radius = math.ceil(3 * sigma_low)
    # zero within the blur's reach of the border (+1 for the upsampling) → alpha 0 on the border
    edge = radius + 1
    hard[:edge], hard[hl - edge:], hard[:, :edge], hard[:, wl - edge:] = 0, 0, 0, 0
    soft = cv2.GaussianBlur(hard, (2 * radius + 1, 2 * radius + 1), sigma_low)
    alpha = soft if factor == 1 else cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(alpha, 0.0, 1.0, out=alpha)
    alpha[[0, -1], :] = 0.0
    alpha[:, [0, -1]] = 0.0
    return alpha


def _weighted_stats(image: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted per-channel mean and std [3] of an RGB image's pixels in (Y, Cb, Cr).

    From the RGB moments (two small matrix products), on every other row and column of large
    regions: the statistics of a smooth band barely change, and this is the paste's hot spot.
    """
    step = 2 if weights.size > 40_000 else 1
    wts = weights[::step, ::step].reshape(-1).astype(np.float64)
    if not wts.sum() > 0:  # the subsampling missed a tiny region: use all pixels
        step, wts = 1, weights.reshape(-1).astype(np.float64)
    pixels = image[::step, ::step].reshape(-1, 3).astype(np.float64) - 128.0  # centred: no cancellation
    total = wts.sum()
    mean_rgb = wts @ pixels / total
    second = (pixels * wts[:, None]).T @ pixels / total
    covariance = second - np.outer(mean_rgb, mean_rgb)
    mean = _RGB_TO_YCC @ (mean_rgb + 128.0)
    variance = np.einsum("ij,jk,ik->i", _RGB_TO_YCC, covariance, _RGB_TO_YCC)
    return mean, np.sqrt(np.maximum(variance, 0.0))


def match_colour(face: np.ndarray, reference: np.ndarray, region_mask: np.ndarray,
                 strength: float = 1.0, *, chroma_gain: bool = True) -> np.ndarray:
    """Shift the face's colour statistics to the reference's over a region.

    Per channel of (Y, Cb, Cr) (BT.601, full range), the face's weighted mean and std over
    ``region_mask`` are moved ``strength`` of the way to the reference's, and the same affine
    change is applied to every pixel. The statistics come from the same pixels of both images,
    which show the same content (the renderer reproduces the template around the mouth), so the
    difference is the renderer's tint and contrast error. A linear opponent space rather than
    Lab: the whole correction is then one 3×4 affine map in RGB (fast, and exactly the identity
    when the statistics agree), where cv2's float Lab round trip alone is off by up to a level.

    Args:
        face: ``[H, W, 3]`` uint8 RGB to correct.
        reference: ``[H, W, 3]`` uint8 RGB, same shape.
        region_mask: ``[H, W]`` bool, or float weights ≥ 0 (e.g. a blend band).
        strength: 0 (unchanged) … 1 (statistics matched).
        chroma_gain: False: Cb and Cr only shifted, their spread left alone. Statistics taken on
            skin then also suit colours far from it (teeth, a white wall): a chroma gain above 1
            pushes anything greyer than skin past grey, into green.

    Returns:
        ``[H, W, 3]`` uint8, a new array. Std gains are clamped to [0.5, 2] so that a nearly flat
        region cannot blow up the rest of the face.
    """
    face = _check_image(face, "face", "match_colour")
    reference = _check_image(reference, "reference", "match_colour")
    if face.shape != reference.shape:
        raise ValueError(f"match_colour: face {face.shape} and reference {reference.shape} differ in shape")
    weights = np.asarray(region_mask)
    if weights.shape != face.shape[:2]:
        raise ValueError(f"match_colour: region_mask must be {face.shape[:2]}, got {weights.shape}")
    weights = weights.astype(np.float32)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("match_colour: region_mask weights must be finite and >= 0")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"match_colour: strength must be in [0, 1], got {strength}")
    if not np.any(weights > 0):
        raise ValueError("match_colour: region_mask selects no pixels")
    if strength == 0:
        return face.copy()
    mean_f, std_f = _weighted_stats(face, weights)
    mean_r, std_r = _weighted_stats(reference, weights)
    target_std = std_f + strength * (std_r - std_f)
    gain = np.where(std_f > 1e-3, target_std / np.maximum(std_f, 1e-3), 1.0).clip(0.5, 2.0)
    if not chroma_gain:
        gain[1:] = 1.0
    target_mean = mean_f + strength * (mean_r - mean_f)
    # ycc' = gain ⊙ (ycc − mean_f) + target_mean, written as one affine map of RGB
    matrix = _YCC_TO_RGB @ np.diag(gain) @ _RGB_TO_YCC
    offset = _YCC_TO_RGB @ (target_mean - gain * mean_f)
    return cv2.transform(face, np.hstack([matrix, offset[:, None]]))


def paste_back(frame: np.ndarray, face: np.ndarray, crop_box: CropBox | Sequence[int],
               landmarks: np.ndarray | None = None, *, feather: float = DEFAULT_FEATHER,
               margin: float = DEFAULT_MARGIN, colour_strength: float = 1.0) -> np.ndarray:
    """Blend a rendered face crop into the frame it was cut from.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB template frame (not modified).
        face: ``[S, S, 3]`` uint8 RGB render of the crop (any ``[h', w', 3]`` is resized).
        crop_box: :class:`CropBox` or ``(x, y, w, h)`` in frame pixels; may reach past the frame
            (the outside part is dropped) but must overlap it.
        landmarks: ``[68, 2]`` (or ``[N, 68, 2]``, see :func:`blend_mask`) in the face crop's
            pixels, or None for a soft ellipse over the lower face.
        feather, margin: see :func:`blend_mask` (IOD units).
        colour_strength: :func:`match_colour` strength on the blend band; 0 turns it off.

    Returns:
        ``[H, W, 3]`` uint8, a new frame, equal to ``frame`` outside the mask and on the box border.
    """
    frame = _check_image(frame, "frame", "paste_back")
    face = _check_image(face, "face", "paste_back")
    if not 0.0 <= colour_strength <= 1.0:
        raise ValueError(f"paste_back: colour_strength must be in [0, 1], got {colour_strength}")
    x, y, w, h = box_tuple(crop_box)
    height, width = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
        raise ValueError(f"paste_back: crop box {(x, y, w, h)} lies outside the {width}×{height} frame")
    box_points = None
    if landmarks is not None:
        sets = _landmark_sets(landmarks, "paste_back")
        box_points = (sets + 0.5) * (w / face.shape[1], h / face.shape[0]) - 0.5
    alpha = blend_mask((h, w), box_points, feather=feather, margin=margin)

    # the part of the box inside the frame, shrunk to the rows and columns the mask touches
    visible = alpha[fy0 - y : fy1 - y, fx0 - x : fx1 - x] > 0
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    out = frame.copy()
    if rows.size == 0:
        return out
    by0, by1 = fy0 - y + rows[0], fy0 - y + rows[-1] + 1
    bx0, bx1 = fx0 - x + cols[0], fx0 - x + cols[-1] + 1

    # Shrinking by less than 1.5×, bilinear samples lie ≤ 1.5 px apart (little aliasing) and cost a
    # quarter of INTER_AREA at non-integer ratios; larger reductions need the area average.
    shrink = min(face.shape[1] / w, face.shape[0] / h)
    interpolation = cv2.INTER_AREA if shrink > 1.5 else cv2.INTER_LINEAR
    resized = face if face.shape[:2] == (h, w) else cv2.resize(face, (w, h), interpolation=interpolation)
    render = resized[by0:by1, bx0:bx1]
    template = frame[y + by0 : y + by1, x + bx0 : x + bx1]
    weight = alpha[by0:by1, bx0:bx1]
    if colour_strength > 0:
        band = weight * (1.0 - weight)  # peaks on the mask edge, where the two images meet
        if float(band.sum()) >= MIN_BAND_WEIGHT:
            render = match_colour(render, template, band, colour_strength)
    out[y + by0 : y + by1, x + bx0 : x + bx1] = cv2.blendLinear(render, template, weight, 1.0 - weight)
    return out
