"""Green-screen keying and a virtual studio background (paper §4.4, Fig. 9).

The key works in the chroma plane (Cb, Cr of BT.601), where lighting changes a colour's
brightness far more than its hue: each pixel's chroma vector is split into ``p``, its length
along the key colour's chroma direction, and ``q``, the part across it. ``keyness = (p − |q|) /
|key chroma|`` is 1 on the key colour, 0 on grey, black and white, and negative on skin and warm
colours. A key in shadow has a proportionally shorter chroma vector (a key at a third of its
brightness has keyness ≈ 0.33), which is why the default ``tolerance`` and ``softness`` are low:
such a shadow still keys fully, while a pale or olive green (keyness ≈ 0.05) stays foreground.

Everything is linear in RGB (p and q are dot products with fixed vectors), so the whole key is
one ``cv2.transform`` plus a few array operations on the frame.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

DEFAULT_KEY = (0, 177, 64)  # chroma-key green, RGB
DEFAULT_TOLERANCE = 0.1  # keyness at or below this is foreground (alpha 1)
DEFAULT_SOFTNESS = 0.2  # keyness above tolerance + softness is background (alpha 0)

# BT.601 RGB → (Cb, Cr) without the 128 offset (a difference of colours needs none)
_RGB_TO_CHROMA = np.array([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_LUMA = np.array([0.299, 0.587, 0.114])


def _key_axes(key_colour: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """RGB row vectors giving (p, q) of a pixel, and the key's chroma length."""
    key = np.asarray(key_colour, dtype=np.float64)
    if key.shape != (3,) or np.any(key < 0) or np.any(key > 255):
        raise ValueError(f"key_colour must be an RGB triple of 0..255, got {tuple(key_colour)}")
    chroma = _RGB_TO_CHROMA @ key
    length = float(np.hypot(*chroma))
    if length < 10.0:
        raise ValueError(f"key_colour {tuple(int(v) for v in key)} is too grey to key on")
    along = chroma / length
    across = np.array([-along[1], along[0]])
    return along @ _RGB_TO_CHROMA, across @ _RGB_TO_CHROMA, length


def _check_frame(frame: np.ndarray, name: str, caller: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{caller}: {name} must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
    return frame


def _keyness(frame: np.ndarray, key_colour: Sequence[int]) -> np.ndarray:
    """Keyness ``[H, W]`` float32 of an RGB frame ``[H, W, 3]`` uint8 (see the module notes)."""
    along, across, length = _key_axes(key_colour)
    matrix = np.stack([along, across]).astype(np.float32) / length
    pq = cv2.transform(frame.astype(np.float32), matrix)  # [H, W, 2]: p / |k|, q / |k|
    return pq[..., 0] - np.abs(pq[..., 1])


def chroma_key_mask(frame: np.ndarray, key_colour: Sequence[int] = DEFAULT_KEY, *,
                    tolerance: float = DEFAULT_TOLERANCE, softness: float = DEFAULT_SOFTNESS) -> np.ndarray:
    """Foreground alpha of a frame shot against a coloured screen.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB.
        key_colour: RGB of the screen (any clearly coloured screen: green, blue, ...).
        tolerance: keyness (0 grey … 1 the key's own chroma) up to which a pixel is foreground.
        softness: width of the ramp from foreground to background above ``tolerance``; > 0
            gives soft, anti-aliased edges (hair) instead of a binary cut.

    Returns:
        ``[H, W]`` float32 alpha: 1 = keep (foreground), 0 = screen.
    """
    frame = _check_frame(frame, "frame", "chroma_key_mask")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"chroma_key_mask: tolerance must be in [0, 1), got {tolerance}")
    if not softness > 0.0:
        raise ValueError(f"chroma_key_mask: softness must be > 0, got {softness}")
    keyness = _keyness(frame, key_colour)
    alpha = (tolerance + softness - keyness) * (1.0 / softness)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def fit_background(background: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Scale a background to cover ``shape`` (H, W[, 3]) and crop the centre ('cover' fit).

    Args:
        background: ``[H', W', 3]`` uint8 RGB.
        shape: the frame's shape.

    Returns:
        ``[H, W, 3]`` uint8; the input itself when it already has that size (it is never
        modified). Fit once per video and pass the result to :func:`replace_background`.
    """
    background = _check_frame(background, "background", "fit_background")
    height, width = int(shape[0]), int(shape[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"fit_background: shape must be positive, got {tuple(shape)}")
    if background.shape[:2] == (height, width):
        return background
    bh, bw = background.shape[:2]
    scale = max(width / bw, height / bh)
    new_w, new_h = max(width, round(bw * scale)), max(height, round(bh * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(background, (new_w, new_h), interpolation=interpolation)
    x0, y0 = (new_w - width) // 2, (new_h - height) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def suppress_spill(frame: np.ndarray, key_colour: Sequence[int] = DEFAULT_KEY, strength: float = 1.0) -> np.ndarray:
    """Remove the key's colour cast from a foreground ("spill": green light bounced onto hair,
    skin and edges).

    Each pixel loses ``strength`` × its keyness (clipped to [0, 1]) of the key's chroma,
    brightness unchanged: a greenish edge becomes neutral, skin and warm colours (negative
    keyness) are untouched, and a colour merely near the key's hue loses only its excess.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB.
        strength: 0 … 1.

    Returns:
        ``[H, W, 3]`` uint8, a new array.
    """
    frame = _check_frame(frame, "frame", "suppress_spill")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"suppress_spill: strength must be in [0, 1], got {strength}")
    key = np.asarray(key_colour, dtype=np.float64)
    # fraction of the key's chroma to remove, in 1/255 steps (≤ 0.5 level of error): with it as a
    # 4th uint8 channel the whole correction is one saturating cv2.transform, 5× faster than
    # float arrays on a 1080p frame
    spill = np.clip(_keyness(frame, key_colour) * (255.0 * strength), 0.0, 255.0)
    planes = [*cv2.split(frame), np.rint(spill).astype(np.uint8)]
    # the key's chroma as an RGB offset with zero luma: subtracting it keeps the brightness
    chroma_rgb = key - float(_LUMA @ key)
    matrix = np.hstack([np.eye(3), -chroma_rgb[:, None] / 255.0])
    return cv2.transform(cv2.merge(planes), matrix)


def replace_background(frame: np.ndarray, background: np.ndarray, alpha: np.ndarray, *,
                       key_colour: Sequence[int] | None = DEFAULT_KEY, spill: float = 1.0) -> np.ndarray:
    """Composite a keyed frame over a new background.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB shot against the screen (not modified).
        background: ``[H', W', 3]`` uint8 RGB; cover-fitted to the frame (:func:`fit_background`).
        alpha: ``[H, W]`` float foreground alpha from :func:`chroma_key_mask`.
        key_colour: the screen's RGB for spill suppression; None leaves the foreground as is.
        spill: :func:`suppress_spill` strength.

    Returns:
        ``[H, W, 3]`` uint8: ``alpha · foreground + (1 − alpha) · background``.
    """
    frame = _check_frame(frame, "frame", "replace_background")
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.shape != frame.shape[:2]:
        raise ValueError(f"replace_background: alpha must be {frame.shape[:2]}, got {alpha.shape}")
    if not np.all(np.isfinite(alpha)) or alpha.min() < 0 or alpha.max() > 1:
        raise ValueError("replace_background: alpha must be finite and in [0, 1]")
    background = fit_background(background, frame.shape)
    foreground = frame if key_colour is None or spill == 0 else suppress_spill(frame, key_colour, spill)
    # blendLinear normalises by the weight sum, so the two weights must not both be 0
    return cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)
