"""Synthetic facial maps (paper §3.2.1, Fig. 3; pipeline stage 4).

"We draw the facial maps based on the composite face landmark and background edges." The map
is the renderer's (pix2pixHD's) input: ``[C, S, S]`` uint8 at the crop resolution, one channel
per kind of line, 0 = empty, 255 = fully on (anti-aliased lines have intermediate values).

Channel layout (:data:`CHANNELS`)
---------------------------------
0. ``edges`` — Canny edges of the frame, with the lower face removed (:func:`lower_face_mask`:
   inside the jawline 2..14 and below the nose, dilated by a margin). The template's own mouth
   and chin edges would contradict a generated mouth and a corrected jaw; everything else (hair,
   ears, clothes, background) keeps the renderer consistent from frame to frame.
1. ``contour`` — jawline 0..16, both brows 17..21 / 22..26, nose bridge 27..30 and bottom 31..35.
2. ``eyes`` — both eyes 36..41 / 42..47, closed polygons.
3. ``outer_lips`` — 48..59, closed.
4. ``inner_lips`` — 60..67, closed.

The lips get their own channels so that the renderer can tell the outer lip line from the
mouth opening without having to infer it from the geometry (a closed mouth makes the inner
polygon collapse onto a line inside the outer one).

The same function serves training (a real frame's own edges and landmarks) and inference (the
template frame's edges and the jaw-corrected landmarks with the generated mouth), so the
renderer sees identically built maps in both.

Lines are drawn anti-aliased (``cv2.LINE_AA``) from sub-pixel coordinates (fixed point with
:data:`SUBPIXEL_BITS` fractional bits), ``thickness = max(1, round(S / 256))`` pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from newsanchor.features.mouth import N_LANDMARKS, face_pose

CHANNELS = ("edges", "contour", "eyes", "outer_lips", "inner_lips")
N_CHANNELS = len(CHANNELS)

# (first, last) dlib indices, inclusive, and whether the polyline is closed; per channel.
_POLYLINES: dict[str, tuple[tuple[int, int, bool], ...]] = {
    "contour": ((0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False)),
    "eyes": ((36, 41, True), (42, 47, True)),
    "outer_lips": ((48, 59, True),),
    "inner_lips": ((60, 67, True),),
}

# cv2 drawing with shift=4 reads coordinates as fixed point with 1/16 px resolution.
SUBPIXEL_BITS = 4
# Default margin of the lower-face mask, in inter-ocular distances (IOD ≈ 50 px in a 256 crop of
# GRID, so ≈ 7 px): wide enough to swallow the chin's edge, which Canny puts a few pixels off the
# detected jaw points, and the lip edges around a slightly mis-detected mouth.
DEFAULT_LOWER_FACE_MARGIN = 0.15
# Polygon around the lower face: jawline 2..14 (ear to ear under the chin), then back along the
# nose bottom 35..31. Points 0, 1, 15, 16 are left out so that the ears and cheek edges stay.
_LOWER_FACE_POLYGON = tuple(range(2, 15)) + (35, 34, 33, 32, 31)

# Preview colours (RGB) per channel for map_to_rgb.
PREVIEW_COLOURS = {
    "edges": (160, 160, 160),
    "contour": (0, 220, 0),
    "eyes": (0, 200, 255),
    "outer_lips": (255, 40, 40),
    "inner_lips": (255, 230, 0),
}


def line_thickness(size: int) -> int:
    """Line thickness in pixels for an ``size × size`` map: 1 at 256, 2 at 512."""
    return max(1, round(size / 256))


def _check_landmarks(landmarks: np.ndarray, caller: str) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (N_LANDMARKS, 2):
        raise ValueError(f"{caller}: landmarks must be [{N_LANDMARKS}, 2], got {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError(f"{caller}: landmarks contain NaN or inf (a frame without a face?)")
    return landmarks


def _fixed_point(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[P, 2]`` → int32 fixed point for cv2's ``shift=SUBPIXEL_BITS``."""
    return np.round(points * (1 << SUBPIXEL_BITS)).astype(np.int32)


def lower_face_mask(landmarks: np.ndarray, size: int, *, margin: float = DEFAULT_LOWER_FACE_MARGIN) -> np.ndarray:
    """Region whose template edges would fight a new mouth and jaw.

    Args:
        landmarks: ``[68, 2]`` crop pixels, finite.
        size: S, the crop's side.
        margin: dilation in inter-ocular distances (scales with the face, not the crop).

    Returns:
        ``[S, S]`` bool, True inside the polygon jaw 2..14 + nose bottom 35..31, dilated by
        ``margin * IOD`` pixels.
    """
    landmarks = _check_landmarks(landmarks, "lower_face_mask")
    if margin < 0:
        raise ValueError(f"lower_face_mask: margin must be >= 0, got {margin}")
    mask: np.ndarray = np.zeros((size, size), dtype=np.uint8)
    polygon = _fixed_point(landmarks[list(_LOWER_FACE_POLYGON)])
    cv2.fillPoly(mask, [polygon], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    radius = round(margin * float(face_pose(landmarks).scale))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel)
    return mask.astype(bool)


def facial_map(
    edges: np.ndarray,
    landmarks: np.ndarray,
    *,
    lower_face_mask_margin: float = DEFAULT_LOWER_FACE_MARGIN,
) -> np.ndarray:
    """Build the renderer's input from a frame's edges and (possibly composited) landmarks.

    Args:
        edges: ``[S, S]`` bool Canny edges of the crop (``PreparedDataset.edge_map``).
        landmarks: ``[68, 2]`` float crop pixels, finite (sub-pixel positions are kept).
        lower_face_mask_margin: see :func:`lower_face_mask` (IOD units).

    Returns:
        ``[C, S, S]`` uint8, channels as :data:`CHANNELS`.

    Raises:
        ValueError: non-square or non-2-D edges, wrong landmark shape, NaN landmarks.
    """
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[0] != edges.shape[1]:
        raise ValueError(f"facial_map: edges must be [S, S], got {edges.shape}")
    landmarks = _check_landmarks(landmarks, "facial_map")
    size = edges.shape[0]
    thickness = line_thickness(size)

    facemap = np.zeros((N_CHANNELS, size, size), dtype=np.uint8)
    keep = edges.astype(bool) & ~lower_face_mask(landmarks, size, margin=lower_face_mask_margin)
    facemap[CHANNELS.index("edges")][keep] = 255
    for channel, polylines in _POLYLINES.items():
        # cv2 draws into a contiguous 2-D array; facemap[i] of a C-contiguous [C, S, S] is one.
        canvas = facemap[CHANNELS.index(channel)]
        for first, last, closed in polylines:
            points = _fixed_point(landmarks[first : last + 1])
            cv2.polylines(canvas, [points], closed, 255, thickness, cv2.LINE_AA, SUBPIXEL_BITS)
    return facemap


def map_to_rgb(facemap: np.ndarray) -> np.ndarray:
    """A preview image: each channel in its :data:`PREVIEW_COLOURS` colour, brightest wins.

    Args:
        facemap: ``[C, S, S]`` uint8 from :func:`facial_map`.

    Returns:
        ``[S, S, 3]`` uint8 RGB.
    """
    facemap = np.asarray(facemap)
    if facemap.ndim != 3 or facemap.shape[0] != N_CHANNELS:
        raise ValueError(f"map_to_rgb: map must be [{N_CHANNELS}, S, S], got {facemap.shape}")
    rgb = np.zeros(facemap.shape[1:] + (3,), dtype=np.float32)
    for index, name in enumerate(CHANNELS):
        layer = facemap[index].astype(np.float32)[..., None] / 255.0 * np.asarray(PREVIEW_COLOURS[name], np.float32)
        rgb = np.maximum(rgb, layer)
    return np.round(rgb).astype(np.uint8)
