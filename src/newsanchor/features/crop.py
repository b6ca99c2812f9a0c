"""One stable square face crop per clip, and Canny edge maps of the crops.

The crop box is fixed for a whole clip (a moving crop would add camera shake to everything the
renderer learns) and chosen from robust statistics of the face's landmark boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """Square region of the source frame, in whole pixels; may extend past the frame edges
    (those pixels are filled by replicating the border)."""

    x: int
    y: int
    side: int

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.side, self.side]

    @classmethod
    def from_list(cls, values: list[int]) -> CropBox:
        x, y, side, _ = values
        return cls(int(x), int(y), int(side))


def choose_crop_box(landmarks: np.ndarray, found: np.ndarray, margin: float, raise_: float,
                    frame_size: tuple[int, int] | None = None) -> CropBox:
    """Crop box from landmarks [T, 68, 2] (source pixels) of the found frames [T] bool.

    Median centre and median size of the landmark boxes, so a few bad frames or a brief lean do
    not move it; side = ``margin`` × size, centre raised by ``raise_`` × size to include hair.
    Given the frame's (width, height), a box that would reach past the frame is shrunk to the
    frame's shorter side and moved inside it (sources that are already face crops), rather than
    filled with smeared border pixels.
    """
    points = landmarks[found]
    lo, hi = points.min(axis=1), points.max(axis=1)  # [N, 2]
    centres = (lo + hi) / 2
    sizes = (hi - lo).max(axis=1)
    size = float(np.median(sizes))
    cx, cy = np.median(centres, axis=0)
    cy -= raise_ * size
    side = max(16, int(round(margin * size)))
    x, y = int(round(cx - side / 2)), int(round(cy - side / 2))
    if frame_size is not None:
        width, height = frame_size
        side = min(side, width, height)
        x = min(max(x, 0), width - side) if x < 0 or x + side > width else x
        y = min(max(y, 0), height - side) if y < 0 or y + side > height else y
    return CropBox(x, y, side)


def crop_frame(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of a frame [H, W, C] uint8 and resize to [size, size, C]."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box.x, box.y, box.x + box.side, box.y + box.side
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    patch = frame[y0:y1, x0:x1]
    if box.side == size:
        return np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if box.side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interp)


def to_crop_coords(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Source-frame pixel coordinates [..., 2] → crop pixel coordinates (pixel centres map through
    the resize exactly as cv2.resize maps them)."""
    scale = size / box.side
    return ((points - (box.x, box.y) + 0.5) * scale - 0.5).astype(np.float32)


def from_crop_coords(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Inverse of :func:`to_crop_coords`: crop pixels [..., 2] → source-frame pixels."""
    scale = size / box.side
    return ((points + 0.5) / scale - 0.5 + (box.x, box.y)).astype(np.float32)


def canny_edges(crop: np.ndarray, low: int, high: int, blur: int = 3) -> np.ndarray:
    """Canny edges of an RGB crop [S, S, 3] uint8 → [S, S] bool."""
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    if blur >= 3:
        gray = cv2.GaussianBlur(gray, (blur | 1, blur | 1), 0)
    return cv2.Canny(gray, low, high) > 0
