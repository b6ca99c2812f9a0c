"""What the renderer reads and writes, shared by training, evaluation and synthesis.

Input ``[8, S, S]`` float32 in ``[-1, 1]``: the five facial-map channels of
:mod:`newsanchor.facemap.draw`, then three appearance channels — a reference crop of the same
recording (in training: the clip's first frame with a face; at inference: the template frame)
with its lower face blacked out. The map carries no colour, and a person's recordings come from
several sessions (GRID s1: one in a green shirt); the reference tells the renderer which
session's colours to paint without showing it any mouth to copy.

Output ``[3, S, S]`` in ``[-1, 1]`` (tanh) ↔ RGB uint8 ``[S, S, 3]``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..facemap.draw import CHANNELS, facial_map, lower_face_mask

MAP_CHANNELS = len(CHANNELS)
APPEARANCE_CHANNELS = 3


def appearance_reference(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A reference crop [S, S, 3] uint8 with its lower face (mouth, jaw) blacked out."""
    masked = crop.copy()
    masked[lower_face_mask(landmarks, crop.shape[0])] = 0
    return masked


def renderer_input(edges: np.ndarray, landmarks: np.ndarray, reference: np.ndarray, *, use_edges: bool = True) -> np.ndarray:
    """Network input [8, S, S] float32 in [-1, 1] from edges [S, S] bool, landmarks [68, 2] crop
    pixels and a masked reference [S, S, 3] uint8.

    ``use_edges=False`` leaves the edge channel empty (the paper's Fig. 7 ablation); a renderer
    trained so must be fed so, which its saved ``extra["input"]["edges"]`` records."""
    drawn = facial_map(edges, landmarks).astype(np.float32) / 127.5 - 1.0
    if not use_edges:
        drawn[CHANNELS.index("edges")] = -1.0
    appearance = reference.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return np.concatenate([drawn, appearance])


def to_image_tensor(crop: np.ndarray) -> torch.Tensor:
    """RGB crop [S, S, 3] uint8 → [3, S, S] float32 in [-1, 1]."""
    return torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """[3, S, S] in [-1, 1] → RGB [S, S, 3] uint8."""
    return ((tensor.detach().float().clamp(-1, 1).cpu().numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)


def input_uses_edges(extra: dict) -> bool:
    """Whether a saved renderer (its ``extra``) was trained with the edge channel; older
    renderers, saved before the ablation existed, were."""
    return bool(extra.get("input", {}).get("edges", True))


# --- the lower-face renderer (render.lower_face) ------------------------------------------------

def region_alpha(landmarks: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Where the lower-face renderer paints: the paste-back mask (the lower-face polygon dilated
    and feathered, :func:`newsanchor.composite.paste.blend_mask`) of landmarks ``[68, 2]`` or the
    union of ``[N, 68, 2]`` (crop pixels), built in the region ``box = (x0, y0, w, h)`` so that it
    is exactly 0 on the region's border. Returns ``[h, w]`` float32 in [0, 1]."""
    from ..composite.paste import blend_mask  # composite imports facemap only; no cycle

    x0, y0, w, h = box
    return blend_mask((h, w), np.asarray(landmarks, np.float64) - (x0, y0))


def skin_band(landmarks: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Weights ``[h, w]`` float32 of the region's pixels on the edge of the paste-back mask
    ``alpha [h, w]`` (``alpha · (1 − alpha)``, where render and frame meet) that lie on the face:
    inside the hull of the jaw 0..16 and the top of the nose bridge (landmarks ``[68, 2]``, crop
    pixels), so that the neck and collar below the chin do not count."""
    x0, y0, _, _ = box
    hull = np.zeros(alpha.shape, np.uint8)
    points = np.asarray(landmarks, np.float64)[list(range(17)) + [27]] - (x0, y0)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points * 16).astype(np.int32)), 1, cv2.LINE_8, 4)
    return (alpha * (1.0 - alpha) * hull).astype(np.float32)


def match_reference_colours(references: np.ndarray, frame_region: np.ndarray, alpha: np.ndarray, landmarks: np.ndarray,
                            box: tuple[int, int, int, int], warp: str = "mouth") -> np.ndarray:
    """Reference mouths ``[K, h, w, 3]`` uint8 (aligned to the frame by ``warp``) with their colour
    statistics moved to the frame region's ``[h, w, 3]``: a reference from another moment (other
    light, another session) then continues the frame's skin, and a renderer copying its texture
    copies the right colours: brightness, contrast and the shift of hue, but not the spread of
    hue (a gain on it, measured on skin, turns teeth green). Measured over the skin where the
    copy meets the frame: the edge of the mask (:func:`skin_band`), or for a ``"mouth-only"``
    reference (black outside :func:`~newsanchor.render.references.mouth_support`) its chin and
    cheeks without the lips; a reference cut to its support stays black outside it. Unchanged
    when there is too little skin to measure (a face mostly outside the region)."""
    from ..composite.paste import MIN_BAND_WEIGHT, match_colour
    from .references import reference_support

    support = reference_support(landmarks, box, warp)
    if warp == "mouth-only" and support is not None:
        x0, y0, w, _ = box
        lips = np.zeros(alpha.shape, np.uint8)
        cv2.fillPoly(lips, [np.round((np.asarray(landmarks, np.float64)[48:60] - (x0, y0)) * 16).astype(np.int32)], 1,
                     cv2.LINE_8, 4)
        near_lips = cv2.dilate(lips, np.ones((3, 3), np.uint8), iterations=max(1, round(0.02 * w)))
        weights = ((support > 0.9) & (near_lips == 0)).astype(np.float32)
    else:
        weights = skin_band(landmarks, alpha, box)
        if support is not None:  # face-only: where the reference is itself, not its feathered edge
            weights = weights * (support > 0.9)
    if not len(references) or float(weights.sum()) < MIN_BAND_WEIGHT:
        return references
    matched = np.stack([match_colour(r, frame_region, weights, chroma_gain=False) for r in references])
    if support is not None:  # an affine colour map moves black too: keep the reference's own outline
        matched = (matched * support[None, ..., None]).round().astype(np.uint8)
    return matched


def lower_face_input(edges: np.ndarray, landmarks: np.ndarray, frame_region: np.ndarray, alpha: np.ndarray,
                     references: np.ndarray, box: tuple[int, int, int, int], *, use_edges: bool = True,
                     masked_frame: bool = True, match_colours: bool = False, reference_warp: str = "mouth") -> np.ndarray:
    """Network input ``[C, h, w]`` float32 in [-1, 1] of the lower-face renderer.

    Args:
        edges: ``[S, S]`` bool edges of the crop; landmarks: ``[68, 2]`` crop pixels (drawn).
        frame_region: ``[h, w, 3]`` uint8, the region of the frame the render will be blended into.
        alpha: ``[h, w]`` float32 from :func:`region_alpha`; the frame is blanked where it is 1.
        references: ``[K, h, w, 3]`` uint8 reference mouths aligned to this frame.
        box: the region ``(x0, y0, w, h)`` in the crop.

    Channels: the facial map's five, the mask, the masked frame (unless ``masked_frame`` is
    False: the ablation), then each reference's RGB (``match_colours``: first brought to the
    frame's colours, :func:`match_reference_colours`, knowing the ``reference_warp`` that aligned them).
    """
    x0, y0, w, h = box
    drawn = facial_map(edges, landmarks)[:, y0:y0 + h, x0:x0 + w].astype(np.float32) / 127.5 - 1.0
    if not use_edges:
        drawn[CHANNELS.index("edges")] = -1.0
    parts = [drawn, (alpha * 2.0 - 1.0)[None].astype(np.float32)]
    if masked_frame:
        masked = frame_region.astype(np.float32) * (1.0 - alpha)[..., None]
        parts.append(masked.transpose(2, 0, 1) / 127.5 - 1.0)
    if len(references):
        if match_colours:
            references = match_reference_colours(references, frame_region, alpha, landmarks, box, reference_warp)
        parts.append(references.transpose(0, 3, 1, 2).reshape(-1, h, w).astype(np.float32) / 127.5 - 1.0)
    return np.concatenate(parts)


def compose_region(frame_region: np.ndarray, rendered: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The frame's region with the render blended in: ``alpha · rendered + (1 − alpha) · frame``,
    all ``[h, w, 3]`` uint8 (alpha ``[h, w]``)."""
    return cv2.blendLinear(np.ascontiguousarray(rendered), np.ascontiguousarray(frame_region),
                           np.ascontiguousarray(alpha, np.float32), np.ascontiguousarray(1.0 - alpha, np.float32))
