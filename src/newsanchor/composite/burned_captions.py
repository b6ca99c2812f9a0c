"""Captions burned into the picture: the cue being spoken, centred near the bottom of the frame.

For players and platforms that show no caption files (social video is mostly watched muted).
Text is drawn with DejaVu Sans (shipped with matplotlib, so nothing is downloaded), which
covers the Latin, Greek and Cyrillic letters, dashes, quotes and currency signs of news
scripts; OpenCV's built-in font, used for the short ASCII labels, cannot. Each cue is drawn
once into a small image with an alpha channel and blended into every frame it is shown on.

The caption keeps clear of the disclosure label and the lower third the same way the lower
third keeps clear of the label: it moves up above any rectangle it would overlap.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..speech.captions import Cue
from .overlay import KEEP_CLEAR_GAP, _check_fraction, _check_frame, _frame_hw, _overlaps

DEFAULT_CAPTION_HEIGHT = 0.045  # size of the text (the font's em) as a fraction of the frame height
DEFAULT_CAPTION_BOTTOM = 0.05  # gap between the caption box and the frame's bottom, fraction of height
MAX_CAPTION_WIDTH = 0.9  # of the frame's width; longer lines are drawn smaller
MIN_CAPTION_PX = 10


@lru_cache(maxsize=1)
def _font_file() -> Path:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the caption font is missing from matplotlib's data")
    return path


@lru_cache(maxsize=16)
def _font(size_px: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(_font_file()), size_px)


def render_caption(text: str, size_px: int, max_width: int, *, opacity: float = 0.7) -> np.ndarray:
    """One cue as an image: white lines, centred, on a translucent dark box.

    Args:
        text: the cue; lines separated by ``\\n``.
        size_px: font size; lowered (to ``MIN_CAPTION_PX`` at least) until the widest line fits.
        max_width: the box's widest allowed size in pixels.
        opacity: darkness of the box.

    Returns:
        ``[h, w, 4]`` uint8 RGBA, straight (not premultiplied) alpha.
    """
    from PIL import Image, ImageDraw

    lines = [line for line in text.split("\n") if line.strip()] or [" "]
    while True:
        font = _font(size_px)
        widths = [font.getlength(line) for line in lines]
        pad = max(2, round(0.35 * size_px))
        if max(widths) + 2 * pad <= max_width or size_px <= MIN_CAPTION_PX:
            break
        size_px = max(MIN_CAPTION_PX, int(size_px * (max_width - 2 * pad) / max(widths)))
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    box_w = min(max_width, int(np.ceil(max(widths))) + 2 * pad)
    box_h = line_h * len(lines) + 2 * pad
    image = Image.new("RGBA", (box_w, box_h), (0, 0, 0, round(255 * opacity)))
    draw = ImageDraw.Draw(image)
    for i, (line, width) in enumerate(zip(lines, widths)):
        draw.text(((box_w - width) / 2, pad + i * line_h), line, font=font, fill=(255, 255, 255, 255))
    return np.asarray(image)


def caption_rect(shape: Sequence[int], patch_hw: tuple[int, int], *, bottom: float = DEFAULT_CAPTION_BOTTOM,
                 keep_clear: Sequence[tuple[int, int, int, int] | None] = ()) -> tuple[int, int, int, int]:
    """Where a caption image of ``patch_hw`` (h, w) goes: ``(x, y, w, h)``, centred, ``bottom`` × H
    above the frame's bottom, moved up past every ``keep_clear`` rectangle it would overlap."""
    height, width = _frame_hw(shape)
    h, w = patch_hw
    x = (width - w) // 2
    y = height - round(bottom * height) - h
    gap = round(KEEP_CLEAR_GAP * height)
    for rect in sorted((r for r in keep_clear if r is not None), key=lambda r: -r[1]):  # lowest first
        if _overlaps((x, y, w, h), tuple(int(v) for v in rect)):
            y = int(rect[1]) - gap - h
    return x, max(0, y), w, h


class CaptionBurner:
    """Draws, on the frame shown at time ``t``, the cue spoken at ``t`` (nothing between cues).

    Frames must come in time order for the cache to help (a pipeline's do); any order is correct.
    """

    def __init__(self, cues: Sequence[Cue], *, relative_height: float = DEFAULT_CAPTION_HEIGHT,
                 bottom: float = DEFAULT_CAPTION_BOTTOM, opacity: float = 0.7):
        _check_fraction(relative_height, "relative_height", upper=0.25)
        _check_fraction(bottom, "bottom", upper=0.9, allow_zero=True)
        self.cues = sorted(cues, key=lambda cue: cue.start)
        self._starts = [cue.start for cue in self.cues]
        self.relative_height, self.bottom, self.opacity = relative_height, bottom, opacity
        self._drawn: tuple[int, tuple[int, int], np.ndarray] | None = None  # (cue index, frame hw, RGBA)

    def cue_at(self, t: float) -> int | None:
        """Index of the cue shown at ``t`` seconds, or None."""
        i = bisect_right(self._starts, t) - 1
        return i if i >= 0 and t < self.cues[i].end else None

    def _patch(self, index: int, frame_hw: tuple[int, int]) -> np.ndarray:
        if self._drawn is None or self._drawn[:2] != (index, frame_hw):
            height, width = frame_hw
            size = max(MIN_CAPTION_PX, round(self.relative_height * height))
            patch = render_caption(self.cues[index].text, size, int(MAX_CAPTION_WIDTH * width), opacity=self.opacity)
            self._drawn = (index, frame_hw, patch)
        return self._drawn[2]

    def __call__(self, frame: np.ndarray, t: float,
                 keep_clear: Sequence[tuple[int, int, int, int] | None] = ()) -> np.ndarray:
        """``frame`` ``[H, W, 3]`` uint8 with the cue at ``t`` seconds blended in (a new array when
        a cue is shown, ``frame`` itself otherwise)."""
        frame = _check_frame(frame, "CaptionBurner")
        index = self.cue_at(t)
        if index is None:
            return frame
        patch = self._patch(index, frame.shape[:2])
        x, y, w, h = caption_rect(frame.shape, patch.shape[:2], bottom=self.bottom, keep_clear=keep_clear)
        h, w = min(h, frame.shape[0] - y), min(w, frame.shape[1] - x)
        out = frame.copy()
        region = out[y:y + h, x:x + w].astype(np.float32)
        alpha = patch[:h, :w, 3:4].astype(np.float32) / 255
        out[y:y + h, x:x + w] = np.rint(region * (1 - alpha) + patch[:h, :w, :3] * alpha).astype(np.uint8)
        return out
