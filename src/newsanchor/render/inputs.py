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
