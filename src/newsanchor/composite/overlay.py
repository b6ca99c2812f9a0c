"""On-screen text: the AI disclosure label and a news-style lower third.

Layout, and how the two interact
--------------------------------
The disclosure label is a small box in one corner, ``margin`` (a fraction of the frame height)
from both edges; :func:`label_rect` gives its rectangle without drawing. The lower third is a
bar in the bottom band, left-aligned, ``width`` of the frame wide, its bottom edge ``bottom``
(fraction of the height) above the frame's bottom. With the defaults the label (bottom-right)
sits to the right of the bar on a 16:9 or square frame. Any rectangle passed in ``keep_clear``
(normally ``[label_rect(frame.shape, ...)]``) that the bar would overlap pushes the bar up to
sit above it, so the label is never covered, whichever corner it is in. Draw the lower third
first and the label last, so the label is on top even if a caller skips ``keep_clear``.

Text is drawn anti-aliased with OpenCV's built-in font (Hershey strokes in OpenCV 4, a TrueType
face in OpenCV 5; sizes are measured, not assumed, so both lay out the same). Only printable
ASCII is drawn the same by both, so other text is refused rather than drawn as question marks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
FONT = cv2.FONT_HERSHEY_SIMPLEX
DEFAULT_LABEL_TEXT = "AI-generated"
# Text height as a fraction of the frame height: 38 px at 1080p, 13 px at 360p; legible on a
# phone without dominating the picture.
DEFAULT_LABEL_HEIGHT = 0.035
DEFAULT_LABEL_MARGIN = 0.025  # label ↔ frame edges, fraction of the frame height
DEFAULT_LABEL_OPACITY = 0.6  # darkness of the box behind the label text
MIN_TEXT_PX = 8  # below this the glyphs stop being legible
# Gap between the lower-third bar and a rectangle it must keep clear of, fraction of the height.
KEEP_CLEAR_GAP = 0.015


@dataclass(frozen=True)
class DisclosureConfig:
    """The visible AI-disclosure label of every output video.

    ``relative_height``: text height / frame height. ``enabled`` only controls the visible label:
    :meth:`metadata` gives the file tags regardless, for :func:`newsanchor.media.write_video`.
    """

    enabled: bool = True
    text: str = DEFAULT_LABEL_TEXT
    position: str = "bottom-right"
    relative_height: float = DEFAULT_LABEL_HEIGHT
    margin: float = DEFAULT_LABEL_MARGIN
    opacity: float = DEFAULT_LABEL_OPACITY

    def __post_init__(self):
        _check_text(self.text, "text")
        _check_position(self.position)
        _check_fraction(self.relative_height, "relative_height", upper=0.5)
        _check_fraction(self.margin, "margin", upper=0.25, allow_zero=True)
        _check_fraction(self.opacity, "opacity", upper=1.0, allow_zero=True)

    def metadata(self) -> dict[str, str]:
        """MP4 tags (standard ``comment`` atom) that disclose the video as synthetic."""
        return {"comment": f"{self.text}: synthetic video made with newsanchor"}


def _check_text(text: str, name: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be non-empty text, got {text!r}")
    if not all(" " <= c <= "~" for c in text):
        raise ValueError(f"{name} {text!r}: only printable ASCII can be drawn (OpenCV's built-in font)")


def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {', '.join(POSITIONS)}; got {position!r}")


def _check_fraction(value: float, name: str, *, upper: float, allow_zero: bool = False) -> None:
    ok = (0.0 <= value if allow_zero else 0.0 < value) and value <= upper
    if not ok:
        raise ValueError(f"{name} must be in {'[' if allow_zero else '('}0, {upper}], got {value}")


def _frame_hw(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 3 or shape[2] != 3 or shape[0] <= 0 or shape[1] <= 0:
        raise ValueError(f"frame must be [H, W, 3], got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _check_frame(frame: np.ndarray, caller: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{caller}: frame must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
    return frame


def _font(text: str, height_px: float) -> tuple[float, int, int, int, int]:
    """Font scale and stroke for glyphs ``height_px`` tall → (scale, thickness, w, h, baseline)."""
    _, unit_h = cv2.getTextSize("X", FONT, 1.0, 1)[0]
    scale = height_px / unit_h
    thickness = max(1, round(height_px / 12))  # bold enough to survive video compression
    (w, h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    return scale, thickness, w, h, baseline + thickness


def _fit(text: str, height_px: float, max_width: int) -> tuple[str, float, int, int, int, int]:
    """The font for ``text`` in at most ``max_width`` px: shrink down to 60 %, then cut with '...'."""
    scale, thickness, w, h, base = _font(text, height_px)
    if w > max_width:
        smaller = max(MIN_TEXT_PX, height_px * max(0.6, max_width / w))
        scale, thickness, w, h, base = _font(text, smaller)
        while w > max_width and len(text) > 1:
            text = text[:-4].rstrip() + "..." if len(text) > 4 else text[:-1]
            scale, thickness, w, h, base = _font(text, smaller)
    return text, scale, thickness, w, h, base


def _darken(region: np.ndarray, opacity: float) -> None:
    """Blend a frame region in place towards black (the translucent box behind text)."""
    cv2.convertScaleAbs(region, dst=region, alpha=1.0 - opacity)


def label_rect(shape: Sequence[int], text: str = DEFAULT_LABEL_TEXT, *, position: str = "bottom-right",
               relative_height: float = DEFAULT_LABEL_HEIGHT,
               margin: float = DEFAULT_LABEL_MARGIN) -> tuple[int, int, int, int]:
    """Where :func:`draw_disclosure_label` puts its box in a frame of ``shape`` [H, W, 3].

    Returns:
        ``(x, y, w, h)`` frame pixels.

    Raises:
        ValueError: bad text, position or sizes, or a label that does not fit the frame.
    """
    height, width = _frame_hw(shape)
    _check_text(text, "text")
    _check_position(position)
    _check_fraction(relative_height, "relative_height", upper=0.5)
    _check_fraction(margin, "margin", upper=0.25, allow_zero=True)
    _, _, text_w, text_h, base = _font(text, max(MIN_TEXT_PX, relative_height * height))
    pad = max(2, round(0.4 * text_h))
    box_w, box_h = text_w + 2 * pad, text_h + base + 2 * pad
    gap = round(margin * height)
    if box_w + 2 * gap > width or box_h + 2 * gap > height:
        raise ValueError(f"label {text!r} ({box_w}×{box_h} px) does not fit a {width}×{height} frame; "
                         "use a smaller relative_height or margin")
    x = gap if position.endswith("left") else width - gap - box_w
    y = gap if position.startswith("top") else height - gap - box_h
    return x, y, box_w, box_h


def draw_disclosure_label(frame: np.ndarray, text: str = DEFAULT_LABEL_TEXT, *, position: str = "bottom-right",
                          relative_height: float = DEFAULT_LABEL_HEIGHT, margin: float = DEFAULT_LABEL_MARGIN,
                          opacity: float = DEFAULT_LABEL_OPACITY) -> np.ndarray:
    """White anti-aliased text on a translucent dark box in one corner of a frame.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB (not modified).
        text: printable ASCII.
        position: one of :data:`POSITIONS`.
        relative_height: text height / frame height (the size follows the frame's height).
        margin: distance from both frame edges / frame height.
        opacity: 0 (no box) … 1 (black box).

    Returns:
        ``[H, W, 3]`` uint8, a new frame; only pixels inside :func:`label_rect` differ.
    """
    frame = _check_frame(frame, "draw_disclosure_label")
    _check_fraction(opacity, "opacity", upper=1.0, allow_zero=True)
    x, y, box_w, box_h = label_rect(frame.shape, text, position=position, relative_height=relative_height,
                                    margin=margin)
    scale, thickness, _, text_h, _ = _font(text, max(MIN_TEXT_PX, relative_height * frame.shape[0]))
    pad = max(2, round(0.4 * text_h))
    out = frame.copy()
    region = out[y : y + box_h, x : x + box_w]
    _darken(region, opacity)
    # putText draws into a view of the copy; the origin is the text's baseline-left corner
    cv2.putText(region, text, (pad, pad + text_h), FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def apply_disclosure(frame: np.ndarray, config: DisclosureConfig = DisclosureConfig()) -> np.ndarray:
    """:func:`draw_disclosure_label` with a :class:`DisclosureConfig`; a copy when disabled."""
    if not config.enabled:
        return _check_frame(frame, "apply_disclosure").copy()
    return draw_disclosure_label(frame, config.text, position=config.position,
                                 relative_height=config.relative_height, margin=config.margin,
                                 opacity=config.opacity)


def disclosure_rect(shape: Sequence[int],
                    config: DisclosureConfig = DisclosureConfig()) -> tuple[int, int, int, int] | None:
    """The label's rectangle for ``config`` (None when disabled), for ``keep_clear``."""
    if not config.enabled:
        return None
    return label_rect(shape, config.text, position=config.position, relative_height=config.relative_height,
                      margin=config.margin)


def _overlaps(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two ``(x, y, w, h)`` rectangles overlap."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def lower_third_rect(shape: Sequence[int], *, relative_height: float = 0.11, width: float = 0.6,
                     bottom: float = 0.08, left: float = 0.04,
                     keep_clear: Sequence[tuple[int, int, int, int] | None] = ()) -> tuple[int, int, int, int]:
    """Where :func:`draw_lower_third` puts its bar: ``(x, y, w, h)`` frame pixels.

    The bar starts ``bottom`` × H above the frame's bottom and moves up past every ``keep_clear``
    rectangle it would overlap (with a small gap); refused when it is pushed out of the frame.
    """
    height, width_px = _frame_hw(shape)
    _check_fraction(relative_height, "relative_height", upper=0.5)
    _check_fraction(width, "width", upper=1.0)
    _check_fraction(bottom, "bottom", upper=0.9, allow_zero=True)
    _check_fraction(left, "left", upper=0.9, allow_zero=True)
    bar_h = max(2 * MIN_TEXT_PX, round(relative_height * height))
    x = round(left * width_px)
    bar_w = min(round(width * width_px), width_px - x)
    y = height - round(bottom * height) - bar_h
    gap = round(KEEP_CLEAR_GAP * height)
    rects = sorted((r for r in keep_clear if r is not None), key=lambda r: -r[1])  # lowest first
    for rect in rects:
        if _overlaps((x, y, bar_w, bar_h), tuple(int(v) for v in rect)):
            y = int(rect[1]) - gap - bar_h
    if y < 0 or bar_w <= 0:
        raise ValueError(f"lower third ({bar_w}×{bar_h} px) does not fit a {width_px}×{height} frame "
                         "with the rectangles it must keep clear of")
    return x, y, bar_w, bar_h


def draw_lower_third(frame: np.ndarray, title: str, subtitle: str | None = None, *,
                     relative_height: float = 0.11, width: float = 0.6, bottom: float = 0.08,
                     left: float = 0.04, keep_clear: Sequence[tuple[int, int, int, int] | None] = (),
                     accent: tuple[int, int, int] = (200, 30, 45), opacity: float = 0.75) -> np.ndarray:
    """A news caption bar: accent stripe, translucent dark bar, white title, grey subtitle.

    Args:
        frame: ``[H, W, 3]`` uint8 RGB (not modified).
        title: printable ASCII; shrunk (to 60 %) and then cut with '...' to fit the bar.
        subtitle: optional second, smaller line.
        relative_height, width, bottom, left: bar height, width, distance from the frame's
            bottom and left edge, as fractions of the frame's height (width, left: of its width).
        keep_clear: rectangles ``(x, y, w, h)`` not to cover, e.g. ``[disclosure_rect(shape, cfg)]``
            (None entries are ignored): see :func:`lower_third_rect` and the module's notes.
        accent: RGB of the stripe at the bar's left end.
        opacity: darkness of the bar, 0 … 1.

    Returns:
        ``[H, W, 3]`` uint8, a new frame; only pixels inside :func:`lower_third_rect` differ.
    """
    frame = _check_frame(frame, "draw_lower_third")
    _check_text(title, "title")
    if subtitle is not None:
        _check_text(subtitle, "subtitle")
    _check_fraction(opacity, "opacity", upper=1.0, allow_zero=True)
    if len(accent) != 3 or not all(0 <= int(c) <= 255 for c in accent):
        raise ValueError(f"accent must be an RGB triple of 0..255, got {accent}")
    x, y, bar_w, bar_h = lower_third_rect(frame.shape, relative_height=relative_height, width=width,
                                          bottom=bottom, left=left, keep_clear=keep_clear)
    stripe = max(2, round(0.1 * bar_h))
    pad = max(2, round(0.16 * bar_h))
    text_w = bar_w - stripe - 2 * pad
    if text_w < 4 * MIN_TEXT_PX:
        raise ValueError(f"lower third is too narrow for text ({bar_w} px); raise width")
    out = frame.copy()
    region = out[y : y + bar_h, x : x + bar_w]
    _darken(region, opacity)
    region[:, :stripe] = tuple(int(c) for c in accent)
    # two lines share the bar 60/40; one line is centred vertically
    lines = [(title, (0.36 if subtitle else 0.45) * bar_h, (255, 255, 255))]
    if subtitle:
        lines.append((subtitle, 0.22 * bar_h, (205, 205, 205)))
    fitted = [(*_fit(text, max(MIN_TEXT_PX, size), text_w), colour) for text, size, colour in lines]
    used = sum(h + base for _, _, _, _, h, base, _ in fitted)
    spacing = max(0, (bar_h - used) // (len(fitted) + 1))
    top = spacing
    for text, scale, thickness, _, h, base, colour in fitted:
        cv2.putText(region, text, (stripe + pad, top + h), FONT, scale, colour, thickness, cv2.LINE_AA)
        top += h + base + spacing
    return out
