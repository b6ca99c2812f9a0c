"""Compositing (pipeline stage 6, paper §4.4): paste-back of the rendered face, chroma key and
studio background, captions and the AI-disclosure label.

Order for one output frame: key the body template (:func:`chroma_key_mask`) and put it over the
studio (:func:`replace_background`), paste the rendered face (:func:`paste_back`), draw the lower
third (:func:`draw_lower_third`, keeping clear of :func:`disclosure_rect`), then the label
(:func:`apply_disclosure`) last, so nothing covers it.
"""

from newsanchor.composite.chroma import (
    DEFAULT_KEY,
    chroma_key_mask,
    fit_background,
    replace_background,
    suppress_spill,
)
from newsanchor.composite.overlay import (
    POSITIONS,
    DisclosureConfig,
    apply_disclosure,
    disclosure_rect,
    draw_disclosure_label,
    draw_lower_third,
    label_rect,
    lower_third_rect,
)
from newsanchor.composite.paste import blend_mask, box_tuple, match_colour, paste_back

__all__ = [
    "DEFAULT_KEY",
    "POSITIONS",
    "DisclosureConfig",
    "apply_disclosure",
    "blend_mask",
    "box_tuple",
    "chroma_key_mask",
    "disclosure_rect",
    "draw_disclosure_label",
    "draw_lower_third",
    "fit_background",
    "label_rect",
    "lower_third_rect",
    "match_colour",
    "paste_back",
    "replace_background",
    "suppress_spill",
]
