"""Synthetic facial maps and jaw correction (paper §3.2; pipeline stages 3–4)."""

from newsanchor.facemap.draw import CHANNELS, facial_map, lower_face_mask, map_to_rgb
from newsanchor.facemap.jaw import JawModel, correct_jaw, fit_jaw, jaw_error

__all__ = [
    "CHANNELS",
    "JawModel",
    "correct_jaw",
    "facial_map",
    "fit_jaw",
    "jaw_error",
    "lower_face_mask",
    "map_to_rgb",
]
