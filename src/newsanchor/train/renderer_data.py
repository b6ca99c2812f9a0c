"""Renderer training pairs from a prepared dataset: (facial map + appearance, real face crop).

Input channels: the five facial-map channels of :mod:`newsanchor.facemap.draw` drawn from the
frame's own landmarks and edges (at inference: template edges + generated mouth — the same
function), followed by three appearance channels: a reference frame of the same clip (its first
frame with a face) with the lower face blacked out. The map carries no colour, and GRID s1 was
filmed in several sessions (one in a green shirt); the reference tells the renderer which
session's colours to paint without showing it any mouth to copy. At inference the reference is
the template frame, masked the same way.

Splits are the dataset's (``train.mouth_data.dataset_split``): the renderer is evaluated on the
same held-out contiguous blocks as the audio→mouth models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..dataset import PreparedDataset
from ..facemap.draw import facial_map, lower_face_mask
from .mouth_data import Segment, dataset_split

MAP_CHANNELS = 5
APPEARANCE_CHANNELS = 3


def appearance_reference(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A reference crop [S, S, 3] uint8 with its lower face (mouth, jaw) blacked out."""
    masked = crop.copy()
    masked[lower_face_mask(landmarks, crop.shape[0])] = 0
    return masked


def renderer_input(edges: np.ndarray, landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Network input [8, S, S] float32 in [-1, 1]: facial map (5) + masked reference RGB (3)."""
    drawn = facial_map(edges, landmarks).astype(np.float32) / 127.5 - 1.0
    appearance = reference.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
    return np.concatenate([drawn, appearance])


def to_image_tensor(crop: np.ndarray) -> torch.Tensor:
    """RGB crop [S, S, 3] uint8 → [3, S, S] float32 in [-1, 1]."""
    return torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """[3, S, S] in [-1, 1] → RGB [S, S, 3] uint8."""
    return ((tensor.detach().float().clamp(-1, 1).cpu().numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)


@dataclass(frozen=True)
class FrameRef:
    clip: str
    frame: int


class RendererFrames(torch.utils.data.Dataset):
    """Face-found frames of the given segments as (input [8, S, S], target [3, S, S]) tensors."""

    def __init__(self, dataset: PreparedDataset, segments: list[Segment]):
        self.dataset = dataset
        self.frames: list[FrameRef] = []
        for seg in segments:
            found = dataset.arrays(seg.clip)["face_found"]
            self.frames += [FrameRef(seg.clip, k) for k in range(seg.start, seg.stop) if found[k]]

    @classmethod
    def split(cls, dataset: PreparedDataset, name: str) -> RendererFrames:
        return cls(dataset, dataset_split(dataset)[name])

    def __len__(self) -> int:
        return len(self.frames)

    @lru_cache(maxsize=64)
    def _landmarks(self, clip: str) -> np.ndarray:
        return self.dataset.arrays(clip)["landmarks"]

    @lru_cache(maxsize=64)
    def reference(self, clip: str) -> np.ndarray:
        landmarks = self._landmarks(clip)
        first = int(np.flatnonzero(~np.isnan(landmarks[:, 0, 0]))[0])
        return appearance_reference(self.dataset.crop_frames(clip, [first])[0], landmarks[first])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        ref = self.frames[index]
        landmarks = self._landmarks(ref.clip)[ref.frame]
        crop = self.dataset.crop_frames(ref.clip, [ref.frame])[0]
        inputs = renderer_input(self.dataset.edge_map(ref.clip, ref.frame), landmarks, self.reference(ref.clip))
        return torch.from_numpy(inputs), to_image_tensor(crop)
